//! Chooses what a new inbound call runs, from the Request-URI user and the configured routes.

use std::time::Duration;

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
                RouteAction::Xml(template) => {
                    let mut xml = String::new();
                    caps.expand(template, &mut xml);
                    RouteAction::Xml(xml)
                }
                other => other.clone(),
            };
            Some(RouteMatch {
                index,
                action,
                max_duration: rule.max_duration,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        Router::new(vec![
            RouteRule {
                user: Regex::new("^echo$").unwrap(),
                action: RouteAction::Echo,
                max_duration: None,
            },
            RouteRule {
                user: Regex::new(r"^(?P<role>agent|customer)-(?P<mpc>[A-Za-z0-9_.-]+)$").unwrap(),
                action: RouteAction::Xml(
                    r#"<Response><MultiPartyCall role="$role">$mpc</MultiPartyCall></Response>"#
                        .into(),
                ),
                max_duration: Some(Duration::from_secs(5)),
            },
            RouteRule {
                user: Regex::new(".*").unwrap(),
                action: RouteAction::AnswerUrl {
                    url: "http://127.0.0.1:9000/answer".into(),
                    method: "POST".into(),
                },
                max_duration: None,
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
}
