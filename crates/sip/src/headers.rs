//! Typed views of the few headers the stack reasons about: Via, CSeq and name-addr headers
//! (From, To, Contact, Route, Record-Route). Values stay raw in [`Headers`]; these parse on demand.

use std::net::SocketAddr;

use crate::error::{ParseError, ParseErrorKind};
use crate::message::{split_header_list, truncate, Headers, Method, Request};
use crate::transaction::TransportKind;

/// The magic cookie that marks an RFC 3261 branch.
pub const BRANCH_COOKIE: &str = "z9hG4bK";

/// One Via entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Transport token (UDP, TCP, TLS, ...), upper-cased.
    pub transport: String,
    /// sent-by host (IPv6 without brackets).
    pub host: String,
    /// sent-by port, if given.
    pub port: Option<u16>,
    /// branch parameter.
    pub branch: Option<String>,
    /// `rport` present (RFC 3581), with its value if any.
    pub rport: Option<Option<u16>>,
    /// received parameter.
    pub received: Option<String>,
}

impl Via {
    /// Parses one Via element (`SIP/2.0/UDP host:port;params`).
    pub fn parse(value: &str) -> Result<Via, ParseError> {
        let bad = |why: &str| {
            ParseError::new(
                ParseErrorKind::HeaderValue,
                format!("bad Via {:?}: {why}", truncate(value, 80)),
            )
        };
        // sent-protocol allows LWS around each '/' (RFC 3261 §25.1; RFC 4475 "wsinv").
        let (name, after_name) = value.split_once('/').ok_or_else(|| bad("no protocol"))?;
        let (version, after_version) = after_name
            .split_once('/')
            .ok_or_else(|| bad("no transport"))?;
        if !name.trim().eq_ignore_ascii_case("SIP") || version.trim() != "2.0" {
            return Err(bad("protocol is not SIP/2.0"));
        }
        let after_version = after_version.trim_start();
        let (transport, rest) = after_version
            .split_once([' ', '\t'])
            .ok_or_else(|| bad("no sent-by"))?;
        if transport.is_empty() {
            return Err(bad("no transport"));
        }
        let transport = transport.to_ascii_uppercase();
        let mut params = rest.split(';');
        let sent_by = params.next().unwrap_or("").trim();
        let (host, port) = split_host_port(sent_by).ok_or_else(|| bad("bad sent-by"))?;
        let mut via = Via {
            transport,
            host,
            port,
            branch: None,
            rport: None,
            received: None,
        };
        for p in params {
            if p.trim().is_empty() {
                return Err(bad("empty parameter"));
            }
            let (k, v) = match p.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (p.trim(), None),
            };
            if k.eq_ignore_ascii_case("branch") {
                via.branch = v.filter(|b| !b.is_empty()).map(str::to_string);
                if via.branch.is_none() {
                    return Err(bad("empty branch"));
                }
            } else if k.eq_ignore_ascii_case("rport") {
                via.rport = Some(v.and_then(|v| v.parse().ok()));
            } else if k.eq_ignore_ascii_case("received") {
                via.received = v.map(str::to_string);
            }
        }
        Ok(via)
    }

    /// True when the branch carries the RFC 3261 magic cookie.
    pub fn is_rfc3261_branch(&self) -> bool {
        self.branch
            .as_deref()
            .is_some_and(|b| b.starts_with(BRANCH_COOKIE))
    }
}

/// Splits `host[:port]`, `[v6]:port` or a bare IPv6 literal.
pub fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.trim().parse().ok()?),
            None if after.trim().is_empty() => None,
            None => return None,
        };
        return Some((host.to_string(), port));
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            Some((host.trim().to_string(), Some(port.trim().parse().ok()?)))
        }
        Some(_) => Some((s.to_string(), None)), // bare IPv6
        None => Some((s.to_string(), None)),
    }
}

/// CSeq: sequence number and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number (< 2^31 per RFC 3261 §8.1.1.5).
    pub seq: u32,
    /// Method.
    pub method: Method,
}

impl CSeq {
    /// Parses `1 INVITE`.
    pub fn parse(value: &str) -> Result<CSeq, ParseError> {
        let bad = || {
            ParseError::new(
                ParseErrorKind::HeaderValue,
                format!("bad CSeq {:?}", truncate(value, 40)),
            )
        };
        let mut it = value.split_whitespace();
        let seq: u32 = it.next().and_then(|n| n.parse().ok()).ok_or_else(bad)?;
        if seq >= 1 << 31 {
            return Err(bad());
        }
        let method = Method::parse(it.next().ok_or_else(bad)?)?;
        if it.next().is_some() {
            return Err(bad());
        }
        Ok(CSeq { seq, method })
    }
}

/// A name-addr or addr-spec with header parameters (From, To, Contact, Route, Record-Route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name without quotes, if any.
    pub display: Option<String>,
    /// The URI inside the angle brackets (or the bare addr-spec).
    pub uri: String,
    /// Header parameters after the URI (`tag`, `lr` lives in the URI, `expires`, ...).
    pub params: Vec<(String, Option<String>)>,
}

impl NameAddr {
    /// Parses one element.
    pub fn parse(value: &str) -> Result<NameAddr, ParseError> {
        let bad = |why: &str| {
            ParseError::new(
                ParseErrorKind::HeaderValue,
                format!("bad address {:?}: {why}", truncate(value, 80)),
            )
        };
        let v = value.trim();
        let (display, uri, after) = if let Some(lt) = find_unquoted(v, '<') {
            let display = v[..lt].trim().trim_matches('"').trim();
            let close = v[lt..].find('>').ok_or_else(|| bad("missing '>'"))? + lt;
            let display = (!display.is_empty()).then(|| display.to_string());
            (display, v[lt + 1..close].trim(), &v[close + 1..])
        } else {
            // addr-spec form: parameters after the first ';' belong to the header, not the URI.
            match v.split_once(';') {
                Some((u, _)) => (None, u.trim(), &v[u.len()..]),
                None => (None, v, ""),
            }
        };
        if uri.is_empty() || !uri.contains(':') {
            return Err(bad("no URI"));
        }
        let after = after.trim();
        let after = match after.strip_prefix(';') {
            Some(rest) => rest,
            None if after.is_empty() => after,
            None => return Err(bad("junk after the address")),
        };
        if !after.is_empty() && after.split(';').any(|p| p.trim().is_empty()) {
            return Err(bad("empty parameter"));
        }
        let params = after
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.trim().to_string(), Some(v.trim().to_string())),
                None => (p.to_string(), None),
            })
            .collect();
        Ok(NameAddr {
            display,
            uri: uri.to_string(),
            params,
        })
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&str> {
        self.param("tag")
    }

    /// A header parameter's value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_deref())
    }

    /// Renders back as `"display" <uri>;params`.
    pub fn render(&self) -> String {
        let mut s = match &self.display {
            Some(d) => format!("\"{d}\" <{}>", self.uri),
            None => format!("<{}>", self.uri),
        };
        for (k, v) in &self.params {
            s.push(';');
            s.push_str(k);
            if let Some(v) = v {
                s.push('=');
                s.push_str(v);
            }
        }
        s
    }
}

fn find_unquoted(s: &str, needle: char) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' && quoted {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == needle && !quoted {
            return Some(i);
        }
    }
    None
}

/// The `tag` parameter of a From or To value.
pub fn tag_of(value: Option<&str>) -> Option<String> {
    value
        .and_then(|v| NameAddr::parse(v).ok())
        .and_then(|na| na.tag().map(str::to_string))
}

/// Where a SIP URI points: host and port (default 5060, 5061 for TLS), and an explicit
/// `transport` param.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriTarget {
    /// Host or IP literal.
    pub host: String,
    /// Port (5060 when absent, 5061 for a sips: URI or `transport=tls`).
    pub port: u16,
    /// The URI's scheme is `sips:` (TLS on every hop).
    pub sips: bool,
    /// `transport=` parameter, upper-cased.
    pub transport: Option<String>,
    /// Whether the URI has `lr` (loose routing).
    pub loose_route: bool,
}

impl UriTarget {
    /// Parses the host part of a sip:/sips: URI.
    pub fn parse(uri: &str) -> Option<UriTarget> {
        let (scheme, rest) = uri.split_once(':')?;
        if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
            return None;
        }
        let rest = rest.split('?').next().unwrap_or(rest);
        let mut parts = rest.split(';');
        let hostport = parts.next()?;
        let hostport = hostport.rsplit_once('@').map_or(hostport, |(_, h)| h);
        let (host, port) = split_host_port(hostport)?;
        let mut target = UriTarget {
            host,
            port: 0,
            sips: scheme.eq_ignore_ascii_case("sips"),
            transport: None,
            loose_route: false,
        };
        for p in parts {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            if k.eq_ignore_ascii_case("transport") {
                target.transport = Some(v.to_ascii_uppercase());
            } else if k.eq_ignore_ascii_case("lr") {
                target.loose_route = true;
            }
        }
        target.port = port.unwrap_or(match target.transport_kind() {
            TransportKind::Tls => 5061,
            _ => 5060,
        });
        Some(target)
    }

    /// The transport the URI asks for: TLS for `transport=tls` or a sips: URI, TCP for
    /// `transport=tcp`, UDP otherwise.
    pub fn transport_kind(&self) -> TransportKind {
        if self.sips {
            return TransportKind::Tls;
        }
        self.transport
            .as_deref()
            .and_then(TransportKind::from_uri_param)
            .unwrap_or(TransportKind::Udp)
    }

    /// The socket address when the host is an IP literal (we do not resolve names on the call path).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.host
            .parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, self.port))
    }
}

/// Why a syntactically parsed request is still unacceptable (answered with 400).
pub fn validate_request(req: &Request) -> Result<(), ParseError> {
    let h = &req.headers;
    // An empty element in a Via list (`a,,b`) is a syntax error, not something to skip.
    for value in h.get_all("Via") {
        if value.split(',').any(|e| e.trim().is_empty()) {
            return Err(ParseError::new(
                ParseErrorKind::HeaderValue,
                "empty Via element",
            ));
        }
    }
    let vias = h.elements("Via");
    let top = vias
        .first()
        .ok_or_else(|| ParseError::new(ParseErrorKind::MandatoryHeader, "missing Via header"))?;
    Via::parse(top)?;
    for name in ["From", "To", "Call-ID", "CSeq"] {
        let mut values = h.get_all(name);
        let first = values.next().ok_or_else(|| {
            ParseError::new(
                ParseErrorKind::MandatoryHeader,
                format!("missing {name} header"),
            )
        })?;
        if values.next().is_some() {
            return Err(ParseError::new(
                ParseErrorKind::MandatoryHeader,
                format!("more than one {name} header"),
            ));
        }
        if first.trim().is_empty() {
            return Err(ParseError::new(
                ParseErrorKind::MandatoryHeader,
                format!("empty {name} header"),
            ));
        }
    }
    let cseq = CSeq::parse(h.get("CSeq").unwrap_or_default())?;
    if cseq.method != req.method {
        return Err(ParseError::new(
            ParseErrorKind::HeaderValue,
            format!(
                "CSeq method {} does not match request method {}",
                cseq.method, req.method
            ),
        ));
    }
    NameAddr::parse(h.get("From").unwrap_or_default())?;
    NameAddr::parse(h.get("To").unwrap_or_default())?;
    if let Some(mf) = h.get("Max-Forwards") {
        mf.trim().parse::<u8>().map_err(|_| {
            ParseError::new(
                ParseErrorKind::HeaderValue,
                format!("bad Max-Forwards {:?}", truncate(mf, 20)),
            )
        })?;
    }
    for contact in h.elements("Contact") {
        if contact != "*" {
            NameAddr::parse(contact)?;
        }
    }
    Ok(())
}

/// The canonical Via-derived transaction branch and sent-by, used as a transaction key.
pub fn top_via(headers: &Headers) -> Option<Via> {
    headers
        .elements("Via")
        .first()
        .and_then(|v| Via::parse(v).ok())
}

/// Splits comma-joined name-addr lists (Route, Record-Route, Contact).
pub fn name_addrs(headers: &Headers, name: &str) -> Vec<NameAddr> {
    headers
        .get_all(name)
        .flat_map(split_header_list)
        .filter_map(|v| NameAddr::parse(v).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_forms() {
        let v = Via::parse("SIP/2.0/udp 10.0.0.1:5070;branch=z9hG4bK776;rport;received=1.2.3.4")
            .unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!((v.host.as_str(), v.port), ("10.0.0.1", Some(5070)));
        assert_eq!(v.rport, Some(None));
        assert!(v.is_rfc3261_branch());
        let v6 = Via::parse("SIP/2.0/TCP [2001:db8::1]:5060;branch=z9hG4bKa").unwrap();
        assert_eq!(v6.host, "2001:db8::1");
        assert!(Via::parse("SIP/3.0/UDP h").is_err());
        assert!(Via::parse("garbage").is_err());
        assert!(Via::parse("SIP/2.0/UDP h;branch=").is_err());
    }

    #[test]
    fn name_addr_forms() {
        let a = NameAddr::parse("\"Bob <x>\" <sip:bob@h;lr>;tag=99").unwrap();
        assert_eq!(a.display.as_deref(), Some("Bob <x>"));
        assert_eq!(a.uri, "sip:bob@h;lr");
        assert_eq!(a.tag(), Some("99"));
        let b = NameAddr::parse("sip:carol@h;tag=1").unwrap();
        assert_eq!((b.uri.as_str(), b.tag()), ("sip:carol@h", Some("1")));
        assert!(NameAddr::parse("<sip:x").is_err());
        assert!(NameAddr::parse("nothing").is_err());
    }

    #[test]
    fn cseq_and_uri_target() {
        assert_eq!(CSeq::parse("7 BYE").unwrap().seq, 7);
        assert!(CSeq::parse("4294967296 INVITE").is_err());
        assert!(CSeq::parse("1").is_err());
        let t = UriTarget::parse("sip:trunk@127.0.0.1:5070;transport=tcp;lr").unwrap();
        assert_eq!(t.port, 5070);
        assert_eq!(t.transport.as_deref(), Some("TCP"));
        assert!(t.loose_route);
        assert_eq!(t.transport_kind(), TransportKind::Tcp);
        let t = UriTarget::parse("sip:127.0.0.1;transport=TLS").unwrap();
        assert_eq!((t.port, t.transport_kind()), (5061, TransportKind::Tls));
        let t = UriTarget::parse("sips:trunk@127.0.0.1:5071").unwrap();
        assert_eq!((t.port, t.transport_kind()), (5071, TransportKind::Tls));
        assert_eq!(
            UriTarget::parse("sip:1.2.3.4").unwrap().transport_kind(),
            TransportKind::Udp
        );
        assert_eq!(
            UriTarget::parse("sip:[::1]")
                .unwrap()
                .socket_addr()
                .unwrap()
                .port(),
            5060
        );
    }
}
