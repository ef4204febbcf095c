//! SIP message model, parsing and serialisation.
//!
//! The wire grammar lives behind this module so the parser can be swapped. We split the
//! message into start line, header lines (unfolding continuation lines) and body ourselves,
//! because the codec crates either reject extension methods or ignore `Content-Length`
//! (see crates.md pitfall 4). `rsipstack::sip` supplies what it does well: canonical header
//! names (compact forms such as `i:` and `v:` become `Call-ID` and `Via`), method names and
//! URI grammar. Headers keep their raw values, so Via lines are copied into responses
//! verbatim as RFC 3261 §8.2.6.2 requires.

use std::fmt;

use bytes::Bytes;
use rsipstack::sip::headers::make_header;

use crate::error::{ParseError, ParseErrorKind};

/// A SIP request method. Extension methods are kept by name so the server can answer 405.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// INVITE
    Invite,
    /// ACK
    Ack,
    /// BYE
    Bye,
    /// CANCEL
    Cancel,
    /// OPTIONS
    Options,
    /// REGISTER
    Register,
    /// INFO
    Info,
    /// UPDATE
    Update,
    /// PRACK
    Prack,
    /// SUBSCRIBE
    Subscribe,
    /// NOTIFY
    Notify,
    /// REFER
    Refer,
    /// MESSAGE
    Message,
    /// PUBLISH
    Publish,
    /// Any other RFC 3261 token.
    Extension(String),
}

impl Method {
    /// Parses a method token; anything that is a valid token but unknown becomes `Extension`.
    pub fn parse(s: &str) -> Result<Method, ParseError> {
        if s.is_empty() || !s.bytes().all(is_token_char) {
            return Err(ParseError::new(
                ParseErrorKind::StartLine,
                format!("invalid method {:?}", truncate(s, 32)),
            ));
        }
        // rsipstack knows the standard methods; its parse is case-insensitive but SIP methods are
        // case-sensitive (RFC 3261 §7.1), so only an exact upper-case match maps to a known one.
        let known = match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other => Method::Extension(other.to_string()),
        };
        Ok(known)
    }

    /// The method name as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Extension(name) => name,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// RFC 3261 `token` characters.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// One header line: canonical name and raw (unfolded, trimmed) value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Canonical name (`Call-ID`, not `i`).
    pub name: String,
    /// Raw value as received, continuation lines joined by one space.
    pub value: String,
}

/// An ordered header list with case-insensitive lookups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<Header>);

impl Headers {
    /// First value of the named header.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// Every value of the named header, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// Every comma-separated element of every header with this name (Via, Route, ...).
    pub fn elements<'a>(&'a self, name: &'a str) -> Vec<&'a str> {
        self.get_all(name).flat_map(split_header_list).collect()
    }

    /// Appends a header.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push(Header {
            name: name.into(),
            value: value.into(),
        });
    }

    /// Replaces every header of this name with one value.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.remove(name);
        self.push(name.to_string(), value);
    }

    /// Removes every header of this name.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|h| !h.name.eq_ignore_ascii_case(name));
    }

    /// Number of header lines.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is no header at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// Request-URI as received.
    pub uri: String,
    /// Headers.
    pub headers: Headers,
    /// Body (exactly Content-Length bytes).
    pub body: Bytes,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code, 100..=699.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Headers.
    pub headers: Headers,
    /// Body.
    pub body: Bytes,
}

/// A parsed SIP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipMessage {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

impl SipMessage {
    /// Headers of either kind.
    pub fn headers(&self) -> &Headers {
        match self {
            SipMessage::Request(r) => &r.headers,
            SipMessage::Response(r) => &r.headers,
        }
    }

    /// Serialises to wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            SipMessage::Request(r) => r.to_bytes(),
            SipMessage::Response(r) => r.to_bytes(),
        }
    }
}

/// How the bytes arrived, which decides what a missing or short Content-Length means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One datagram is one message: a missing Content-Length means "the rest of the datagram".
    Datagram,
    /// Already framed out of a stream by [`crate::framing::StreamFramer`].
    Stream,
}

/// Largest number of header lines accepted; more is a resource attack, not a phone call.
const MAX_HEADERS: usize = 256;

/// Parses one complete SIP message.
pub fn parse(data: &[u8], framing: Framing) -> Result<SipMessage, ParseError> {
    let sep = find_subslice(data, b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| find_subslice(data, b"\n\n").map(|i| (i, 2)))
        .ok_or_else(|| {
            ParseError::new(
                ParseErrorKind::Truncated,
                "no empty line after the headers (truncated message?)",
            )
        })?;
    let head = std::str::from_utf8(&data[..sep.0]).map_err(|_| {
        ParseError::new(
            ParseErrorKind::Encoding,
            "header section is not valid UTF-8",
        )
    })?;
    let rest = &data[sep.0 + sep.1..];

    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start = lines.next().unwrap_or("");
    let headers = parse_header_lines(lines)?;

    let body = match content_length(&headers)? {
        Some(len) if len > rest.len() => {
            return Err(ParseError::new(
                ParseErrorKind::Truncated,
                format!(
                    "Content-Length {len} exceeds the {} body bytes received",
                    rest.len()
                ),
            ))
        }
        Some(len) => Bytes::copy_from_slice(&rest[..len]),
        None if framing == Framing::Datagram => Bytes::copy_from_slice(rest),
        None => Bytes::new(),
    };

    if let Some(status_line) = start.strip_prefix("SIP/") {
        let (version, tail) = status_line.split_once(' ').unwrap_or((status_line, ""));
        if version != "2.0" {
            return Err(ParseError::new(
                ParseErrorKind::VersionNotSupported,
                format!("unsupported SIP version SIP/{}", truncate(version, 16)),
            ));
        }
        let (code, reason) = tail.split_once(' ').unwrap_or((tail, ""));
        let status: u16 = code
            .parse()
            .ok()
            .filter(|c| (100..=699).contains(c) && code.len() == 3)
            .ok_or_else(|| {
                ParseError::new(
                    ParseErrorKind::StartLine,
                    format!("bad status code {:?}", truncate(code, 16)),
                )
            })?;
        return Ok(SipMessage::Response(Response {
            status,
            reason: reason.to_string(),
            headers,
            body,
        }));
    }

    // Request-Line = Method SP Request-URI SP SIP-Version; exactly single spaces (RFC 4475 lwsruri).
    let mut parts = start.split(' ');
    let (method, uri, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(u), Some(v), None) => (m, u, v),
        _ => {
            return Err(ParseError::new(
                ParseErrorKind::StartLine,
                format!("malformed request line {:?}", truncate(start, 80)),
            ))
        }
    };
    if version != "SIP/2.0" {
        return Err(ParseError::new(
            ParseErrorKind::VersionNotSupported,
            format!("unsupported version {:?}", truncate(version, 16)),
        ));
    }
    let method = Method::parse(method)?;
    validate_request_uri(uri)?;
    Ok(SipMessage::Request(Request {
        method,
        uri: uri.to_string(),
        headers,
        body,
    }))
}

fn parse_header_lines<'a>(lines: impl Iterator<Item = &'a str>) -> Result<Headers, ParseError> {
    let mut headers: Vec<Header> = Vec::new();
    for line in lines {
        if line.starts_with(' ') || line.starts_with('\t') {
            // RFC 3261 §7.3.1 line folding: a continuation joins the previous value with one SP.
            let last = headers.last_mut().ok_or_else(|| {
                ParseError::new(
                    ParseErrorKind::HeaderLine,
                    "continuation line before any header",
                )
            })?;
            last.value.push(' ');
            last.value.push_str(line.trim());
            continue;
        }
        let (name, value) = line.split_once(':').ok_or_else(|| {
            ParseError::new(
                ParseErrorKind::HeaderLine,
                format!("header line without ':' {:?}", truncate(line, 60)),
            )
        })?;
        let name = name.trim_end_matches([' ', '\t']);
        if name.is_empty() || !name.bytes().all(is_token_char) {
            return Err(ParseError::new(
                ParseErrorKind::HeaderLine,
                format!("bad header name {:?}", truncate(name, 40)),
            ));
        }
        if headers.len() >= MAX_HEADERS {
            return Err(ParseError::new(
                ParseErrorKind::HeaderLine,
                "too many header lines",
            ));
        }
        headers.push(Header {
            name: canonical_name(name),
            value: value.trim().to_string(),
        });
    }
    Ok(Headers(headers))
}

/// Maps compact and odd-case names to their canonical spelling via rsipstack's header table.
fn canonical_name(name: &str) -> String {
    // rsipstack's table misses a few compact forms; RFC 3261 §7.3.3 and RFC 3515/3841 list them.
    let expanded = match name {
        "k" | "K" => "Supported",
        "e" | "E" => "Content-Encoding",
        "s" | "S" => "Subject",
        "r" | "R" => "Refer-To",
        "o" | "O" => "Event",
        "u" | "U" => "Allow-Events",
        other => other,
    };
    make_header(expanded, String::new()).name().to_string()
}

/// The Content-Length value, if present; several different values or a non-number is an error.
pub fn content_length(headers: &Headers) -> Result<Option<usize>, ParseError> {
    let mut found: Option<usize> = None;
    for v in headers.get_all("Content-Length") {
        let n: usize = v
            .trim()
            .parse()
            .ok()
            .filter(|_| v.trim().len() <= 9)
            .ok_or_else(|| {
                ParseError::new(
                    ParseErrorKind::ContentLength,
                    format!("bad Content-Length {:?}", truncate(v, 20)),
                )
            })?;
        if found.is_some_and(|f| f != n) {
            return Err(ParseError::new(
                ParseErrorKind::ContentLength,
                "conflicting Content-Length headers",
            ));
        }
        found = Some(n);
    }
    Ok(found)
}

fn validate_request_uri(uri: &str) -> Result<(), ParseError> {
    let bad = |why: &str| {
        ParseError::new(
            ParseErrorKind::StartLine,
            format!("bad Request-URI {:?}: {why}", truncate(uri, 80)),
        )
    };
    let (scheme, rest) = uri.split_once(':').ok_or_else(|| bad("no scheme"))?;
    if scheme.is_empty()
        || !scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return Err(bad("bad scheme"));
    }
    if rest.is_empty()
        || uri
            .bytes()
            .any(|b| b <= b' ' || b == b'<' || b == b'>' || b == 0x7f)
    {
        return Err(bad("illegal characters"));
    }
    if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        rsipstack::sip::parse_uri(uri).map_err(|_| bad("not a SIP URI"))?;
    }
    Ok(())
}

/// Splits a header value at top-level commas (not inside quotes or angle brackets).
pub fn split_header_list(value: &str) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut escaped, mut start) = (0i32, false, false, 0usize);
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => depth -= 1,
            ',' if !quoted && depth <= 0 => {
                parts.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(value[start..].trim());
    parts.into_iter().filter(|p| !p.is_empty())
}

fn find_subslice(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Shortens untrusted text for error messages and logs.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn write_common(out: &mut Vec<u8>, headers: &Headers, body: &[u8]) {
    for h in &headers.0 {
        if h.name.eq_ignore_ascii_case("Content-Length") {
            continue;
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // Content-Length is always written by us, from the body we actually send.
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
}

impl Request {
    /// Serialises to wire bytes, writing Content-Length from the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.body.len());
        out.extend_from_slice(format!("{} {} SIP/2.0\r\n", self.method, self.uri).as_bytes());
        write_common(&mut out, &self.headers, &self.body);
        out
    }

    /// The user part of the Request-URI (`echo` in `sip:echo@host`), percent-decoded.
    pub fn uri_user(&self) -> Option<String> {
        uri_user(&self.uri)
    }
}

impl Response {
    /// Serialises to wire bytes, writing Content-Length from the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.body.len());
        out.extend_from_slice(format!("SIP/2.0 {} {}\r\n", self.status, self.reason).as_bytes());
        write_common(&mut out, &self.headers, &self.body);
        out
    }
}

/// The user part of a sip:/sips:/tel: URI, percent-decoded.
pub fn uri_user(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once(':')?;
    if scheme.eq_ignore_ascii_case("tel") {
        let number = rest.split(';').next().unwrap_or(rest);
        return Some(percent_decode(number));
    }
    let parsed = rsipstack::sip::parse_uri(uri).ok()?;
    parsed.user().map(percent_decode)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The identifying headers of a message that did not parse, pulled out line by line so that a
/// 400 can still be addressed to the sender (RFC 3261 §8.2.6 needs Via, From, To, Call-ID, CSeq).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawIds {
    /// True when the start line looks like a request (a response is never answered).
    pub is_request: bool,
    /// Every Via line, verbatim.
    pub vias: Vec<String>,
    /// From value.
    pub from: Option<String>,
    /// To value.
    pub to: Option<String>,
    /// Call-ID value.
    pub call_id: Option<String>,
    /// CSeq value.
    pub cseq: Option<String>,
}

impl RawIds {
    /// Extracts what it can; never fails.
    pub fn extract(data: &[u8]) -> RawIds {
        let text = String::from_utf8_lossy(&data[..data.len().min(64 * 1024)]);
        let mut ids = RawIds::default();
        let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
        let start = lines.next().unwrap_or("");
        ids.is_request = !start.starts_with("SIP/")
            && start
                .trim_end()
                .rsplit(' ')
                .next()
                .is_some_and(|v| v.starts_with("SIP/"));
        for line in lines {
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim().to_string();
            match canonical_name(name.trim()).as_str() {
                "Via" => ids.vias.push(value),
                "From" => ids.from = ids.from.or(Some(value)),
                "To" => ids.to = ids.to.or(Some(value)),
                "Call-ID" => ids.call_id = ids.call_id.or(Some(value)),
                "CSeq" => ids.cseq = ids.cseq.or(Some(value)),
                _ => {}
            }
        }
        ids
    }

    /// True when a response can be routed back (a Via is all that is strictly needed).
    pub fn can_reply(&self) -> bool {
        self.is_request && !self.vias.is_empty()
    }

    /// Builds the error response to send back.
    pub fn response(&self, status: u16, reason: &str) -> Response {
        let mut headers = Headers::default();
        for v in &self.vias {
            headers.push("Via", v.clone());
        }
        for (name, value) in [
            ("From", &self.from),
            ("To", &self.to),
            ("Call-ID", &self.call_id),
            ("CSeq", &self.cseq),
        ] {
            if let Some(v) = value {
                headers.push(name, v.clone());
            }
        }
        Response {
            status,
            reason: reason.to_string(),
            headers,
            body: Bytes::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:echo@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1;rport\r\n\
v: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-0\r\n\
From: \"Alice\" <sip:alice@127.0.0.1>;tag=abc\r\n\
t: <sip:echo@127.0.0.1>\r\n\
i: call-1@host\r\n\
CSeq: 1 INVITE\r\n\
Subject: a folded\r\n  value\r\n\
Max-Forwards: 70\r\n\
Content-Type: application/sdp\r\n\
l: 4\r\n\r\nv=0\r\nEXTRA";

    #[test]
    fn parses_compact_folded_and_content_length() {
        let SipMessage::Request(r) = parse(INVITE.as_bytes(), Framing::Datagram).unwrap() else {
            panic!("not a request")
        };
        assert_eq!(r.method, Method::Invite);
        assert_eq!(r.uri_user().as_deref(), Some("echo"));
        assert_eq!(r.headers.get("call-id"), Some("call-1@host"));
        assert_eq!(r.headers.get("To"), Some("<sip:echo@127.0.0.1>"));
        assert_eq!(r.headers.get_all("Via").count(), 2);
        assert_eq!(r.headers.get("Subject"), Some("a folded value"));
        assert_eq!(&r.body[..], b"v=0\r");
    }

    #[test]
    fn rejects_lying_content_length() {
        let msg = INVITE.replace("l: 4", "l: 400");
        let err = parse(msg.as_bytes(), Framing::Datagram).unwrap_err();
        assert!(err.to_string().contains("Content-Length"), "{err}");
    }

    #[test]
    fn extension_method_and_response() {
        let SipMessage::Request(r) =
            parse(b"FOO sip:a@b SIP/2.0\r\nVia: x\r\n\r\n", Framing::Stream).unwrap()
        else {
            panic!()
        };
        assert_eq!(r.method, Method::Extension("FOO".into()));
        let SipMessage::Response(r) = parse(
            b"SIP/2.0 180 Ringing\r\nCSeq: 1 INVITE\r\n\r\n",
            Framing::Stream,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!((r.status, r.reason.as_str()), (180, "Ringing"));
    }

    #[test]
    fn bad_start_lines() {
        for bad in [
            &b"INVITE  sip:a@b SIP/2.0\r\n\r\n"[..],
            b"INVITE sip:a@b SIP/7.0\r\n\r\n",
            b"SIP/2.0 99 Nope\r\n\r\n",
            b"INVITE <sip:a@b> SIP/2.0\r\n\r\n",
            b"\xff\xfe\r\n\r\n",
            b"INVITE sip:a@b SIP/2.0\r\nVia: x",
            b"",
        ] {
            assert!(
                parse(bad, Framing::Datagram).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn errors_carry_their_kind() {
        let kind = |data: &[u8]| parse(data, Framing::Datagram).unwrap_err().kind;
        assert_eq!(
            kind(b"INVITE sip:a@b SIP/7.0\r\n\r\n"),
            ParseErrorKind::VersionNotSupported
        );
        assert_eq!(
            kind(b"SIP/3.0 200 OK\r\n\r\n"),
            ParseErrorKind::VersionNotSupported
        );
        assert_eq!(
            kind(b"INVITE  sip:a@b SIP/2.0\r\n\r\n"),
            ParseErrorKind::StartLine
        );
        assert_eq!(
            kind(b"INVITE sip:a@b SIP/2.0\r\nVia: x"),
            ParseErrorKind::Truncated
        );
        assert_eq!(
            kind(INVITE.replace("l: 4", "l: 400").as_bytes()),
            ParseErrorKind::Truncated
        );
        assert_eq!(
            kind(INVITE.replace("l: 4", "l: four").as_bytes()),
            ParseErrorKind::ContentLength
        );
        assert_eq!(
            kind(b"INVITE sip:a@b SIP/2.0\r\nno colon\r\n\r\n"),
            ParseErrorKind::HeaderLine
        );
        assert_eq!(kind(b"\xff\xfe\r\n\r\n"), ParseErrorKind::Encoding);
    }

    #[test]
    fn serialise_round_trip() {
        let msg = parse(INVITE.as_bytes(), Framing::Datagram).unwrap();
        let again = parse(&msg.to_bytes(), Framing::Datagram).unwrap();
        assert_eq!(msg, again);
    }

    #[test]
    fn raw_ids_from_garbage() {
        let ids = RawIds::extract(b"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nCSeq: 1 INVITE\r\nbroken\r\n");
        assert!(ids.can_reply());
        let resp = ids.response(400, "Bad Request");
        assert_eq!(
            resp.headers.get("Via"),
            Some("SIP/2.0/UDP h;branch=z9hG4bKx")
        );
        assert!(!RawIds::extract(b"\x00\x01garbage").can_reply());
    }

    #[test]
    fn header_list_split_respects_quotes() {
        let v: Vec<_> = split_header_list("\"a, b\" <sip:x>, <sip:y;p=1,2>, sip:z").collect();
        assert_eq!(v, vec!["\"a, b\" <sip:x>", "<sip:y;p=1,2>", "sip:z"]);
    }
}
