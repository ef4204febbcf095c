//! Chooses what a new inbound call runs, from the Request-URI user and the configured routes.

use std::time::Duration;

pub use huddle_config::{Latching, SrtpMode};
use huddle_sip::access::{Cidr, RouteNetworks};
use huddle_sip::auth::RouteAuth;
use regex::Regex;

/// What a matched route does with the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteAction {
    /// Answer and send the caller's audio back (diagnostic echo test).
    Echo,
    /// Run this Plivo XML document (named groups already substituted).
    Xml(String),
    /// Fetch the XML to run from this URL.
    AnswerUrl {
        /// URL.
        url: String,
        /// GET or POST.
        method: String,
    },
}

/// One `[[route]]` entry.
#[derive(Debug, Clone)]
pub struct RouteRule {
    /// Matched against the Request-URI user part.
    pub user: Regex,
    /// What to do.
    pub action: RouteAction,
    /// Hang up after this long (None: no limit).
    pub max_duration: Option<Duration>,
    /// The only networks this route takes calls from (None: every trusted source). The SIP
    /// layer enforces it before a call exists, through [`RouteNetworks`].
    pub from_networks: Option<Vec<Cidr>>,
    /// Whom the route's calls take media from.
    pub latching: Latching,
    /// Whether the route's calls use SRTP.
    pub srtp: SrtpMode,
}

/// The result of routing one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// Index of the rule in the table.
    pub index: usize,
    /// Action with `$name` / `${name}` placeholders of XML templates filled from named groups.
    pub action: RouteAction,
    /// Hang-up limit.
    pub max_duration: Option<Duration>,
    /// Whom the call takes media from.
    pub latching: Latching,
    /// Whether the call uses SRTP.
    pub srtp: SrtpMode,
}

/// The ordered route table: the first rule whose regex matches wins.
#[derive(Debug, Clone, Default)]
pub struct Router {
    rules: Vec<RouteRule>,
}

impl Router {
    /// A router over these rules, in order.
    pub fn new(rules: Vec<RouteRule>) -> Self {
        Router { rules }
    }

    /// Routes a call by the Request-URI user (empty string when the URI has none).
    pub fn route(&self, user: &str) -> Option<RouteMatch> {
        self.rules.iter().enumerate().find_map(|(index, rule)| {
            let caps = rule.user.captures(user)?;
            let action = match &rule.action {
                RouteAction::Xml(template) => RouteAction::Xml(expand_escaped(template, &caps)),
                other => other.clone(),
            };
            Some(RouteMatch {
                index,
                action,
                max_duration: rule.max_duration,
                latching: rule.latching,
                srtp: rule.srtp,
            })
        })
    }
}

impl RouteNetworks for Router {
    /// The same first match as [`Router::route`].
    fn route_networks(&self, user: &str) -> Option<&[Cidr]> {
        self.rules
            .iter()
            .find(|rule| rule.user.is_match(user))
            .and_then(|rule| rule.from_networks.as_deref())
    }
}

/// Which routes require digest authentication (`auth = true`), by the same first match as
/// [`Router::route`]: the SIP layer challenges their new INVITEs through [`RouteAuth`].
#[derive(Debug, Clone)]
pub struct AuthRoutes {
    router: Router,
    required: Vec<bool>,
}

impl AuthRoutes {
    /// `required[i]` tells whether rule `i` of `router` requires authentication (missing
    /// entries: no).
    pub fn new(router: Router, required: Vec<bool>) -> AuthRoutes {
        AuthRoutes { router, required }
    }

    /// True when any route requires authentication.
    pub fn any(&self) -> bool {
        self.required.iter().any(|r| *r)
    }
}

impl RouteAuth for AuthRoutes {
    fn requires_auth(&self, user: &str) -> bool {
        self.router
            .rules
            .iter()
            .position(|rule| rule.user.is_match(user))
            .and_then(|i| self.required.get(i).copied())
            .unwrap_or(false)
    }
}

impl Router {
    /// True when some route restricts the networks it takes calls from.
    pub fn restricts_networks(&self) -> bool {
        self.rules.iter().any(|r| r.from_networks.is_some())
    }
}

/// Fills `$name`, `${name}` and `$1` from the captures like `Captures::expand`, but
/// XML-escapes every value: the Request-URI user comes from the network and must not be able
/// to inject elements or attributes into the document.
fn expand_escaped(template: &str, caps: &regex::Captures<'_>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let (name, after) = if let Some(braced) = rest.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], &braced[end + 1..]),
                None => {
                    out.push('$');
                    continue;
                }
            }
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        if name.is_empty() {
            out.push('$');
            continue;
        }
        let value = match name.parse::<usize>() {
            Ok(i) => caps.get(i),
            Err(_) => caps.name(name),
        };
        out.push_str(&escape_xml(value.map_or("", |m| m.as_str())));
        rest = after;
    }
    out.push_str(rest);
    out
}

fn escape_xml(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_follows_the_first_matching_route() {
        let rule = |re: &str| RouteRule {
            user: Regex::new(re).unwrap(),
            action: RouteAction::Echo,
            max_duration: None,
            from_networks: None,
            latching: Latching::Sdp,
            srtp: SrtpMode::Optional,
        };
        let router = Router::new(vec![rule("^agent-"), rule("^agent-x$"), rule(".*")]);
        let auth = AuthRoutes::new(router, vec![true, false]);
        assert!(auth.any());
        assert!(auth.requires_auth("agent-x"), "the first match decides");
        assert!(auth.requires_auth("agent-sales"));
        assert!(!auth.requires_auth("customer-sales"));
        assert!(!AuthRoutes::new(Router::default(), vec![]).requires_auth("agent-x"));
    }

    fn router() -> Router {
        Router::new(vec![
            RouteRule {
                user: Regex::new("^echo$").unwrap(),
                action: RouteAction::Echo,
                max_duration: None,
                from_networks: None,
                latching: Latching::Sdp,
                srtp: SrtpMode::Optional,
            },
            RouteRule {
                user: Regex::new(r"^(?P<role>agent|customer)-(?P<mpc>[A-Za-z0-9_.-]+)$").unwrap(),
                action: RouteAction::Xml(
                    r#"<Response><MultiPartyCall role="$role">$mpc</MultiPartyCall></Response>"#
                        .into(),
                ),
                max_duration: Some(Duration::from_secs(5)),
                from_networks: Some(vec!["10.1.0.0/16".parse().unwrap()]),
                latching: Latching::Sdp,
                srtp: SrtpMode::Optional,
            },
            RouteRule {
                user: Regex::new(".*").unwrap(),
                action: RouteAction::AnswerUrl {
                    url: "http://127.0.0.1:9000/answer".into(),
                    method: "POST".into(),
                },
                max_duration: None,
                from_networks: None,
                latching: Latching::Sdp,
                srtp: SrtpMode::Optional,
            },
        ])
    }

    #[test]
    fn first_match_wins_and_groups_fill_templates() {
        let r = router();
        assert_eq!(r.route("echo").unwrap().action, RouteAction::Echo);
        let m = r.route("agent-sales.1").unwrap();
        assert_eq!(
            m.action,
            RouteAction::Xml(
                r#"<Response><MultiPartyCall role="agent">sales.1</MultiPartyCall></Response>"#
                    .into()
            )
        );
        assert_eq!(m.max_duration, Some(Duration::from_secs(5)));
        assert_eq!(r.route("anything").unwrap().index, 2);
        assert!(Router::new(vec![]).route("echo").is_none());
    }

    #[test]
    fn route_networks_follow_the_first_matching_route() {
        let r = router();
        assert!(r.restricts_networks());
        assert!(r.route_networks("echo").is_none());
        let nets = r.route_networks("agent-sales").unwrap();
        assert_eq!(nets[0].to_string(), "10.1.0.0/16");
        assert!(r.route_networks("anything").is_none());
        assert!(Router::new(vec![]).route_networks("x").is_none());
        assert!(!Router::new(vec![]).restricts_networks());
    }

    #[test]
    fn captured_values_are_escaped_in_templates() {
        let r = Router::new(vec![RouteRule {
            user: Regex::new("^(?P<mpc>.*)$").unwrap(),
            action: RouteAction::Xml("<Response><MultiPartyCall role=\"customer\">$mpc ${mpc} $1 $$ $</MultiPartyCall></Response>".into()),
            max_duration: None,
            from_networks: None,
            latching: Latching::Sdp,
                srtp: SrtpMode::Optional,
        }]);
        let m = r.route("a\"</MultiPartyCall><Hangup/>&").unwrap();
        let RouteAction::Xml(xml) = m.action else {
            panic!("not xml")
        };
        let v = "a&quot;&lt;/MultiPartyCall&gt;&lt;Hangup/&gt;&amp;";
        assert_eq!(xml, format!("<Response><MultiPartyCall role=\"customer\">{v} {v} {v} $ $</MultiPartyCall></Response>"));
    }
}
