//! Addresses of the calls huddle dials out (add participant with `from` and `to`): what an API
//! user writes (`15557654321`, `+15557654321`, `alice@pbx.example.com`, `sip:bob@10.0.0.9`)
//! becomes a proper Request-URI, To and From, and the caller name and custom headers become
//! header text that cannot smuggle anything else into the INVITE.
//!
//! Everything here comes from the network (the REST API), so every input is checked against a
//! narrow character set before it is written into a message: a CR, LF, `<`, `>`, quote or
//! space in the wrong place would otherwise let a request add headers of its own.

use thiserror::Error;

/// Why an address, caller name or header cannot be used; the text is for the API's 400.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct AddressError(String);

impl AddressError {
    fn new(text: impl Into<String>) -> Self {
        AddressError(text.into())
    }
}

/// Longest address, caller name or header value accepted (far above any real one).
const MAX_LEN: usize = 256;

/// Where a dialled leg goes, or who it is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A number (bare or E.164 with `+`) or user name that the trunk routes: it becomes
    /// `sip:USER@TRUNK_HOST` (or `@our address` in From).
    User(String),
    /// A full `sip:`/`sips:` URI (given as such, or as `user@host`), used as it is.
    Uri(String),
}

/// Characters of a bare user or number: RFC 3261 `unreserved` without the marks that mean
/// something to parsers, plus `+` (E.164), `*` and `#` (dialled as such; `#` is escaped).
fn is_user_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '_' | '.' | '!' | '~' | '*' | '#' | '%')
}

/// Characters of a host (name, IPv4, bracketed IPv6) with an optional port.
fn is_hostport_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')
}

/// Characters of URI parameters (`;transport=tcp;user=phone`).
fn is_param_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '!' | '~' | '*' | '%' | '=' | ';')
}

fn check_user(user: &str, what: &str) -> Result<(), AddressError> {
    if user.is_empty() {
        return Err(AddressError::new(format!("{what} has an empty user part")));
    }
    if let Some(bad) = user.chars().find(|c| !is_user_char(*c)) {
        return Err(AddressError::new(format!(
            "{what} has a character not allowed in a number or SIP user: {bad:?}"
        )));
    }
    if user.len() > 1 && user[1..].contains('+') {
        return Err(AddressError::new(format!(
            "{what}: '+' may only start a number"
        )));
    }
    Ok(())
}

fn check_hostport(hostport: &str, what: &str) -> Result<(), AddressError> {
    if hostport.is_empty() || hostport.starts_with(':') {
        return Err(AddressError::new(format!("{what} has no host")));
    }
    if let Some(bad) = hostport.chars().find(|c| !is_hostport_char(*c)) {
        return Err(AddressError::new(format!(
            "{what} has a character not allowed in a host: {bad:?}"
        )));
    }
    if crate::headers::split_host_port(hostport).is_none() {
        return Err(AddressError::new(format!(
            "{what} has an unreadable host or port"
        )));
    }
    Ok(())
}

/// `#` is not allowed unescaped in a SIP user part (RFC 3261 §25.1).
fn escape_user(user: &str) -> String {
    user.replace('#', "%23")
}

impl Destination {
    /// Reads a `to` or `from` value; `what` names it in the error.
    pub fn parse(text: &str, what: &str) -> Result<Destination, AddressError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(AddressError::new(format!("{what} is empty")));
        }
        if text.len() > MAX_LEN {
            return Err(AddressError::new(format!(
                "{what} is longer than {MAX_LEN} characters"
            )));
        }
        let lower = text.to_ascii_lowercase();
        let (scheme, rest) = if lower.starts_with("sips:") {
            ("sips", &text[5..])
        } else if lower.starts_with("sip:") {
            ("sip", &text[4..])
        } else if text.contains(':') && !text.contains('@') {
            return Err(AddressError::new(format!(
                "{what} must be a number, user@host, or a sip: or sips: URI"
            )));
        } else {
            ("", text)
        };
        if rest.contains('?') {
            return Err(AddressError::new(format!(
                "{what} may not carry URI headers ('?')"
            )));
        }
        let (address, params) = match rest.split_once(';') {
            Some((address, params)) => (address, Some(params)),
            None => (rest, None),
        };
        if let Some(params) = params {
            if let Some(bad) = params.chars().find(|c| !is_param_char(*c)) {
                return Err(AddressError::new(format!(
                    "{what} has a character not allowed in URI parameters: {bad:?}"
                )));
            }
        }
        match address.split_once('@') {
            Some((user, hostport)) => {
                check_user(user, what)?;
                check_hostport(hostport, what)?;
                let scheme = if scheme.is_empty() { "sip" } else { scheme };
                let params = params.map(|p| format!(";{p}")).unwrap_or_default();
                Ok(Destination::Uri(format!(
                    "{scheme}:{}@{hostport}{params}",
                    escape_user(user)
                )))
            }
            None if scheme.is_empty() => {
                if params.is_some() {
                    return Err(AddressError::new(format!(
                        "{what}: a number cannot have URI parameters"
                    )));
                }
                check_user(address, what)?;
                Ok(Destination::User(escape_user(address)))
            }
            None => {
                check_hostport(address, what)?;
                Ok(Destination::Uri(text.to_string()))
            }
        }
    }

    /// The user part as it goes on the wire to the trunk: the `+` of an E.164 number kept or
    /// stripped as the trunk wants.
    fn trunk_user(user: &str, strip_plus: bool) -> &str {
        if strip_plus {
            user.strip_prefix('+').unwrap_or(user)
        } else {
            user
        }
    }

    /// The Request-URI (and To URI) for this destination through the trunk `trunk_uri`:
    /// a number becomes `sip:NUMBER@TRUNK_HOST[:PORT][;transport=...]`, a URI stays as it is.
    /// None when the trunk URI is unreadable.
    pub fn request_uri(&self, trunk_uri: &str, strip_plus: bool) -> Option<String> {
        match self {
            Destination::Uri(uri) => Some(uri.clone()),
            Destination::User(user) => {
                let trunk = TrunkAddress::parse(trunk_uri)?;
                Some(format!(
                    "{}:{}@{}{}",
                    trunk.scheme,
                    Self::trunk_user(user, strip_plus),
                    trunk.hostport,
                    trunk.transport
                ))
            }
        }
    }

    /// The From URI for this caller id: a number becomes `sip:NUMBER@OUR_ADDRESS` (the `+`
    /// treated as for the trunk), a URI stays as it is. `host` is already bracketed for IPv6.
    pub fn from_uri(&self, host: &str, strip_plus: bool) -> String {
        match self {
            Destination::Uri(uri) => uri.clone(),
            Destination::User(user) => format!("sip:{}@{host}", Self::trunk_user(user, strip_plus)),
        }
    }

    /// What the API shows and answer_url requests carry for it: the number, or the URI.
    pub fn as_str(&self) -> &str {
        match self {
            Destination::User(user) | Destination::Uri(user) => user,
        }
    }
}

/// The parts of the trunk URI a number is put on.
struct TrunkAddress<'a> {
    scheme: &'a str,
    hostport: &'a str,
    /// `;transport=...` or empty.
    transport: String,
}

impl<'a> TrunkAddress<'a> {
    fn parse(uri: &'a str) -> Option<TrunkAddress<'a>> {
        let (scheme, rest) = uri.trim().split_once(':')?;
        if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
            return None;
        }
        let rest = rest.split('?').next().unwrap_or(rest);
        let mut parts = rest.split(';');
        let hostport = parts.next()?;
        let hostport = hostport.rsplit_once('@').map_or(hostport, |(_, h)| h);
        if hostport.is_empty() || !hostport.chars().all(is_hostport_char) {
            return None;
        }
        let transport = parts
            .find(|p| {
                p.split('=')
                    .next()
                    .is_some_and(|k| k.trim().eq_ignore_ascii_case("transport"))
            })
            .filter(|p| p.chars().all(is_param_char))
            .map(|p| format!(";{}", p.trim()))
            .unwrap_or_default();
        Some(TrunkAddress {
            scheme,
            hostport,
            transport,
        })
    }
}

/// A caller name as a quoted display name (RFC 3261 `quoted-string`, `"` and `\` escaped).
/// Plivo allows 1 to 50 characters; control characters (CR, LF, ...) are refused.
pub fn display_name(name: &str) -> Result<String, AddressError> {
    if name.is_empty() || name.chars().count() > 50 {
        return Err(AddressError::new(
            "caller_name must have 1 to 50 characters",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(AddressError::new(
            "caller_name may not contain control characters (CR, LF, tab, ...)",
        ));
    }
    let mut quoted = String::with_capacity(name.len() + 2);
    quoted.push('"');
    for c in name.chars() {
        if matches!(c, '"' | '\\') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    Ok(quoted)
}

/// Largest number of custom headers one leg may carry.
const MAX_HEADERS: usize = 20;

/// Plivo's `sip_headers` (`key=value,key2=value2`) as `X-key: value` header pairs. Keys are
/// letters, digits and `-`; values letters, digits and `%-_.~+` (Plivo asks callers to
/// percent-encode anything else); a key already starting with `X-` is not prefixed again.
pub fn custom_headers(spec: &str) -> Result<Vec<(String, String)>, AddressError> {
    let mut headers = Vec::new();
    if spec.trim().is_empty() {
        return Ok(headers);
    }
    if spec.len() > 4 * MAX_LEN {
        return Err(AddressError::new("sip_headers is too long"));
    }
    for pair in spec.split(',') {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(AddressError::new(format!(
                "sip_headers: {pair:?} is not key=value"
            )));
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(AddressError::new(format!(
                "sip_headers: key {key:?} must be letters, digits and '-'"
            )));
        }
        if !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '%' | '-' | '_' | '.' | '~' | '+'))
        {
            return Err(AddressError::new(format!(
                "sip_headers: the value of {key:?} may hold only letters, digits and %-_.~+ (percent-encode the rest)"
            )));
        }
        let name = if key.len() > 2 && key[..2].eq_ignore_ascii_case("x-") {
            key.to_string()
        } else {
            format!("X-{key}")
        };
        headers.push((name, value.to_string()));
    }
    if headers.len() > MAX_HEADERS {
        return Err(AddressError::new(format!(
            "sip_headers has more than {MAX_HEADERS} headers"
        )));
    }
    Ok(headers)
}

/// Everything the INVITE of one dialled leg says about who calls whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundCall {
    /// The callee.
    pub to: Destination,
    /// The caller id.
    pub from: Destination,
    /// The quoted display name of From (from [`display_name`]), if any.
    pub display_name: Option<String>,
    /// Extra headers (from [`custom_headers`]).
    pub headers: Vec<(String, String)>,
}

impl OutboundCall {
    /// A call to `to` from `from` with no display name or extra headers.
    pub fn new(to: &str, from: &str) -> Result<OutboundCall, AddressError> {
        Ok(OutboundCall {
            to: Destination::parse(to, "to")?,
            from: Destination::parse(from, "from")?,
            display_name: None,
            headers: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRUNK: &str = "sip:127.0.0.1:5070";

    fn uri(to: &str, trunk: &str, strip: bool) -> String {
        Destination::parse(to, "to")
            .unwrap()
            .request_uri(trunk, strip)
            .unwrap()
    }

    #[test]
    fn numbers_go_on_the_trunks_host() {
        assert_eq!(
            uri("15557654321", TRUNK, false),
            "sip:15557654321@127.0.0.1:5070"
        );
        assert_eq!(
            uri("+15557654321", TRUNK, false),
            "sip:+15557654321@127.0.0.1:5070"
        );
        assert_eq!(
            uri("+15557654321", TRUNK, true),
            "sip:15557654321@127.0.0.1:5070"
        );
        assert_eq!(
            uri("15557654321", "sip:10.0.0.1;transport=tcp;lr", false),
            "sip:15557654321@10.0.0.1;transport=tcp"
        );
        assert_eq!(
            uri("4000", "sips:trunkuser@[::1]:5061", false),
            "sips:4000@[::1]:5061"
        );
        assert_eq!(uri("*72#", TRUNK, false), "sip:*72%23@127.0.0.1:5070");
    }

    #[test]
    fn uris_and_user_at_host_are_kept() {
        assert_eq!(uri("sip:bob@10.0.0.9", TRUNK, true), "sip:bob@10.0.0.9");
        assert_eq!(
            uri("SIPS:bob@pbx.example.com:5061;transport=tls", TRUNK, false),
            "sips:bob@pbx.example.com:5061;transport=tls"
        );
        assert_eq!(
            uri("alice@pbx.example.com", TRUNK, false),
            "sip:alice@pbx.example.com"
        );
        assert_eq!(uri("sip:10.0.0.9:5080", TRUNK, false), "sip:10.0.0.9:5080");
    }

    #[test]
    fn the_caller_id_is_ours_unless_a_uri() {
        let from = Destination::parse("+14155550100", "from").unwrap();
        assert_eq!(
            from.from_uri("192.0.2.1", false),
            "sip:+14155550100@192.0.2.1"
        );
        assert_eq!(from.from_uri("[::1]", true), "sip:14155550100@[::1]");
        let from = Destination::parse("sip:desk@example.com", "from").unwrap();
        assert_eq!(from.from_uri("192.0.2.1", false), "sip:desk@example.com");
    }

    #[test]
    fn injection_and_garbage_are_refused() {
        for bad in [
            "",
            " ",
            "1555\r\nX-Evil: 1",
            "1555\nVia: x",
            "<sip:a@b>",
            "sip:a@b>",
            "a b",
            "sip:a b@host",
            "\"x\"",
            "sip:a@host?Subject=hi",
            "sip:a@",
            "sip:@host",
            "alice@",
            "@host",
            "tel:+1555",
            "1+555",
            "15;user=phone",
            "sip:a@host;trans port=udp",
            "sip:a@ho\tst",
            "sip:a@host,sip:b@host",
        ] {
            assert!(Destination::parse(bad, "to").is_err(), "{bad:?} accepted");
        }
        assert!(Destination::parse(&"1".repeat(300), "to").is_err());
    }

    #[test]
    fn display_names_are_quoted_and_escaped() {
        assert_eq!(display_name("Help Desk").unwrap(), "\"Help Desk\"");
        assert_eq!(
            display_name("A \"B\" \\C").unwrap(),
            "\"A \\\"B\\\" \\\\C\""
        );
        assert!(display_name("x\r\nVia: y").is_err());
        assert!(display_name("").is_err());
        assert!(display_name(&"n".repeat(51)).is_err());
        assert!(display_name(&"é".repeat(50)).is_ok());
    }

    #[test]
    fn custom_headers_become_x_headers() {
        assert_eq!(
            custom_headers("Account=42,x-Queue=sales%20west").unwrap(),
            vec![
                ("X-Account".to_string(), "42".to_string()),
                ("x-Queue".to_string(), "sales%20west".to_string())
            ]
        );
        assert!(custom_headers("").unwrap().is_empty());
        for bad in [
            "a",
            "=1",
            "a b=1",
            "a=1\r\nVia: x",
            "a=b c",
            "a=<x>",
            "a:b=1",
            "a=1,,b=2",
        ] {
            assert!(custom_headers(bad).is_err(), "{bad:?} accepted");
        }
        let many: Vec<String> = (0..21).map(|i| format!("k{i}=v")).collect();
        assert!(custom_headers(&many.join(",")).is_err());
    }
}
