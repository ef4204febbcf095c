//! Just enough SIP over UDP for a caller (RFC 3261): reading what the server sends and writing
//! the INVITE, the ACKs, the BYE and responses to the server's requests.
//!
//! Everything read comes from the network, so the parser gives up (None) on anything it does
//! not understand rather than guessing, and no value it keeps can carry a line break into a
//! message we write.

use std::fmt::Write as _;
use std::net::SocketAddr;

/// Most header lines read from one message; a longer message is dropped, not truncated.
const MAX_HEADERS: usize = 64;

/// Longest remote target (Contact URI) we will put in a Request-URI.
const MAX_URI: usize = 256;

/// The first line of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// A request and its method.
    Request(String),
    /// A response and its status code.
    Response(u16),
}

/// A parsed SIP message.
#[derive(Debug, Clone)]
pub struct Message {
    /// Request or response.
    pub start: StartLine,
    /// Header lines in order, names in their long form.
    headers: Vec<(&'static str, String)>,
    /// The body, cut to Content-Length.
    pub body: Vec<u8>,
}

/// The long form of the headers we read; anything else is ignored.
fn canonical(name: &str) -> Option<&'static str> {
    const NAMES: [(&str, &str); 9] = [
        ("via", "Via"),
        ("v", "Via"),
        ("from", "From"),
        ("f", "From"),
        ("to", "To"),
        ("t", "To"),
        ("call-id", "Call-ID"),
        ("i", "Call-ID"),
        ("cseq", "CSeq"),
    ];
    const MORE: [(&str, &str); 4] = [
        ("contact", "Contact"),
        ("m", "Contact"),
        ("content-length", "Content-Length"),
        ("l", "Content-Length"),
    ];
    NAMES
        .iter()
        .chain(MORE.iter())
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, long)| *long)
}

impl Message {
    /// Parses one datagram; None for keepalives and anything malformed.
    pub fn parse(datagram: &[u8]) -> Option<Message> {
        let split = datagram.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&datagram[..split]).ok()?;
        let rest = &datagram[split + 4..];
        if head.contains(['\0']) {
            return None;
        }
        let mut lines = head.split("\r\n");
        let first = lines.next()?;
        let start = if let Some(status) = first.strip_prefix("SIP/2.0 ") {
            let code: u16 = status.get(..3)?.parse().ok()?;
            if !(100..=699).contains(&code) {
                return None;
            }
            StartLine::Response(code)
        } else {
            let mut parts = first.split(' ');
            let method = parts.next()?;
            parts.next()?;
            if parts.next()? != "SIP/2.0" || !method.bytes().all(|b| b.is_ascii_uppercase()) {
                return None;
            }
            StartLine::Request(method.to_string())
        };
        let mut headers = Vec::new();
        for line in lines {
            // A bare CR or LF, or a folded line: not something we need to read.
            if line.contains(['\r', '\n']) || line.starts_with([' ', '\t']) {
                return None;
            }
            let (name, value) = line.split_once(':')?;
            if let Some(name) = canonical(name.trim()) {
                if headers.len() == MAX_HEADERS {
                    return None;
                }
                headers.push((name, value.trim().to_string()));
            }
        }
        let body = match headers.iter().find(|(n, _)| *n == "Content-Length") {
            Some((_, len)) => rest.get(..len.parse::<usize>().ok()?)?.to_vec(),
            None => rest.to_vec(),
        };
        Some(Message {
            start,
            headers,
            body,
        })
    }

    /// The first value of a header (long name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response(code) => Some(code),
            StartLine::Request(_) => None,
        }
    }

    /// The method of a request.
    pub fn method(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request(method) => Some(method),
            StartLine::Response(_) => None,
        }
    }

    /// The Call-ID.
    pub fn call_id(&self) -> Option<&str> {
        self.header("Call-ID").filter(|v| !v.is_empty())
    }

    /// The CSeq number and method.
    pub fn cseq(&self) -> Option<(u32, &str)> {
        let mut parts = self.header("CSeq")?.split_ascii_whitespace();
        let number = parts.next()?.parse().ok()?;
        Some((number, parts.next()?))
    }

    /// The To tag, when it is a well-formed token.
    pub fn to_tag(&self) -> Option<&str> {
        tag_param(self.header("To")?)
    }

    /// The Contact URI (the remote target of the dialog), when it is a plain SIP URI.
    pub fn contact_uri(&self) -> Option<&str> {
        let value = self.header("Contact")?;
        let uri = match value.split_once('<') {
            Some((_, rest)) => rest.split_once('>')?.0,
            None => value.split(';').next()?,
        };
        let usable = uri.len() <= MAX_URI
            && uri.starts_with("sip:")
            && !uri.contains(|c: char| c.is_ascii_whitespace() || c.is_ascii_control());
        usable.then_some(uri)
    }
}

/// The `tag` parameter of a From or To value (after the URI's closing `>` when there is one).
fn tag_param(value: &str) -> Option<&str> {
    let params = match value.rfind('>') {
        Some(end) => &value[end + 1..],
        None => value,
    };
    params
        .split(';')
        .skip(1)
        .filter_map(|p| p.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("tag"))
        .map(|(_, tag)| tag.trim())
        .filter(|tag| !tag.is_empty() && tag.len() <= 128 && tag.bytes().all(is_token_byte))
}

/// RFC 3261 `token` characters.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// One call's side of its dialog: what every request of ours repeats.
#[derive(Debug, Clone)]
pub struct Leg {
    /// Our SIP address (the Via and Contact).
    pub local: SocketAddr,
    /// The server.
    pub server: SocketAddr,
    /// The user called (`agent-r7`).
    pub user: String,
    /// Call-ID.
    pub call_id: String,
    /// Our From tag.
    pub local_tag: String,
    /// The server's To tag, once answered.
    pub remote_tag: Option<String>,
    /// Where requests in the dialog are addressed (the answer's Contact).
    pub remote_target: Option<String>,
}

impl Leg {
    fn request_uri(&self) -> String {
        format!("sip:{}@{}", self.user, self.server)
    }

    fn common(&self, out: &mut String, method: &str, uri: &str, branch: &str) {
        let _ = write!(
            out,
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:loadgen@{local}>;tag={tag}\r\nCall-ID: {cid}\r\n",
            local = self.local,
            tag = self.local_tag,
            cid = self.call_id,
        );
    }

    /// The INVITE carrying `sdp` (CSeq 1).
    pub fn invite(&self, branch: &str, sdp: &str) -> String {
        let mut out = String::with_capacity(512 + sdp.len());
        let uri = self.request_uri();
        self.common(&mut out, "INVITE", &uri, branch);
        let _ = write!(
            out,
            "To: <{uri}>\r\nCSeq: 1 INVITE\r\nContact: <sip:loadgen@{}>\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            self.local,
            sdp.len()
        );
        out
    }

    /// The ACK of a non-2xx final response: part of the INVITE's transaction, so the same
    /// branch, with the response's To (RFC 3261 §17.1.1.3).
    pub fn ack_failure(&self, branch: &str, response: &Message) -> String {
        let mut out = String::with_capacity(400);
        let uri = self.request_uri();
        self.common(&mut out, "ACK", &uri, branch);
        let to = response
            .header("To")
            .map(str::to_string)
            .unwrap_or_else(|| format!("<{uri}>"));
        let _ = write!(out, "To: {to}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n");
        out
    }

    /// A request inside the dialog: the ACK of the 2xx (CSeq 1, its own branch) or the BYE.
    pub fn in_dialog(&self, method: &str, cseq: u32, branch: &str) -> String {
        let mut out = String::with_capacity(400);
        let uri = self
            .remote_target
            .clone()
            .unwrap_or_else(|| self.request_uri());
        self.common(&mut out, method, &uri, branch);
        let _ = write!(out, "To: <{}>", self.request_uri());
        if let Some(tag) = &self.remote_tag {
            let _ = write!(out, ";tag={tag}");
        }
        let _ = write!(
            out,
            "\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
        );
        out
    }
}

/// A response to the server's request, echoing its Via, From, To, Call-ID and CSeq; None when
/// the request lacks one of them (there is nowhere to send an answer to it).
pub fn response(request: &Message, status: u16, reason: &str) -> Option<String> {
    let mut out = format!("SIP/2.0 {status} {reason}\r\n");
    let vias: Vec<&str> = request
        .headers
        .iter()
        .filter(|(n, _)| *n == "Via")
        .map(|(_, v)| v.as_str())
        .collect();
    if vias.is_empty() {
        return None;
    }
    for via in vias {
        let _ = write!(out, "Via: {via}\r\n");
    }
    for name in ["From", "To", "Call-ID", "CSeq"] {
        let _ = write!(out, "{name}: {}\r\n", request.header(name)?);
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKa;rport=5070\r\n\
        f: <sip:loadgen@127.0.0.1:5070>;tag=abc\r\nTo: <sip:agent-r1@127.0.0.1:5060>;tag=srv-9\r\n\
        Call-ID: c1@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:huddle@127.0.0.1:5060;transport=udp>\r\n\
        Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\nextra";

    #[test]
    fn a_2xx_is_read() {
        let m = Message::parse(OK.as_bytes()).unwrap();
        assert_eq!(m.status(), Some(200));
        assert_eq!(m.cseq(), Some((1, "INVITE")));
        assert_eq!(m.to_tag(), Some("srv-9"));
        assert_eq!(m.call_id(), Some("c1@127.0.0.1"));
        assert_eq!(
            m.contact_uri(),
            Some("sip:huddle@127.0.0.1:5060;transport=udp")
        );
        assert_eq!(m.body, b"v=0\r\n");
    }

    #[test]
    fn malformed_messages_are_dropped() {
        for bad in [
            "",
            "\r\n\r\n",
            "SIP/2.0 2x0 OK\r\n\r\n",
            "SIP/2.0 999 Odd\r\n\r\n",
            "bye sip:x SIP/2.0\r\n\r\n",
            "BYE sip:x SIP/3.0\r\n\r\n",
            "SIP/2.0 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            "SIP/2.0 200 OK\r\nContent-Length: -1\r\n\r\n",
            "SIP/2.0 200 OK\r\nTo: a\rb\r\n\r\n",
            "SIP/2.0 200 OK\r\nno colon here\r\n\r\n",
        ] {
            assert!(Message::parse(bad.as_bytes()).is_none(), "{bad:?}");
        }
        let many = format!("SIP/2.0 200 OK\r\n{}\r\n", "Via: x\r\n".repeat(65));
        assert!(Message::parse(many.as_bytes()).is_none());
    }

    #[test]
    fn hostile_tags_and_contacts_are_not_used() {
        let m = Message::parse(
            b"SIP/2.0 200 OK\r\nTo: <sip:a@b;tag=uri-param>;tag=bad tag\r\n\
              Contact: <http://elsewhere>\r\n\r\n",
        )
        .unwrap();
        assert_eq!(m.to_tag(), None);
        assert_eq!(m.contact_uri(), None);
        let m = Message::parse(b"SIP/2.0 200 OK\r\nTo: <sip:a@b;tag=inside>\r\n\r\n").unwrap();
        assert_eq!(m.to_tag(), None, "a parameter of the URI is not the tag");
    }

    #[test]
    fn a_bye_is_answered_with_its_own_headers() {
        let bye = Message::parse(
            b"BYE sip:loadgen@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKs\r\n\
              From: <sip:agent-r1@127.0.0.1>;tag=srv\r\nTo: <sip:loadgen@127.0.0.1>;tag=abc\r\n\
              Call-ID: c1\r\nCSeq: 7 BYE\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(bye.method(), Some("BYE"));
        let ok = response(&bye, 200, "OK").unwrap();
        let back = Message::parse(ok.as_bytes()).unwrap();
        assert_eq!(back.status(), Some(200));
        assert_eq!(back.cseq(), Some((7, "BYE")));
        assert!(ok.contains("Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKs\r\n"));
    }

    #[test]
    fn requests_in_the_dialog_carry_both_tags_and_go_to_the_contact() {
        let leg = Leg {
            local: "127.0.0.1:5070".parse().unwrap(),
            server: "127.0.0.1:5060".parse().unwrap(),
            user: "customer-r3".into(),
            call_id: "c1".into(),
            local_tag: "abc".into(),
            remote_tag: Some("srv-9".into()),
            remote_target: Some("sip:huddle@127.0.0.1:5060".into()),
        };
        let bye = leg.in_dialog("BYE", 2, "z9hG4bKb");
        let m = Message::parse(bye.as_bytes()).unwrap();
        assert!(bye.starts_with("BYE sip:huddle@127.0.0.1:5060 SIP/2.0\r\n"));
        assert_eq!(m.to_tag(), Some("srv-9"));
        assert_eq!(m.cseq(), Some((2, "BYE")));
        let invite = Message::parse(leg.invite("z9hG4bKi", "v=0\r\n").as_bytes()).unwrap();
        assert_eq!(invite.body, b"v=0\r\n");
        assert_eq!(invite.to_tag(), None);
    }
}
