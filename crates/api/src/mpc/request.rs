//! Reading what SDKs send, leniently where they differ (mpc-api.md §1): booleans as JSON
//! booleans or `"true"`/`"false"`, numbers or numeric strings, one-element lists for scalars
//! (Python's `{"status": ["active"]}`), unknown keys ignored; strictly where a value is wrong.

use axum::http::StatusCode;
use huddle_roomport::MemberId;
use serde_json::{Map, Value};

use super::ApiError;

/// A request's JSON object body (an empty body is an empty object).
pub struct Body(Map<String, Value>);

impl Body {
    /// Parses `bytes`; anything but a JSON object is a 400.
    pub fn parse(bytes: &[u8]) -> Result<Body, ApiError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body(Map::new()));
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Ok(Body(map)),
            Ok(_) => Err(bad("the request body must be a JSON object")),
            Err(e) => Err(bad(&format!("the request body is not valid JSON: {e}"))),
        }
    }

    /// A key's value as a scalar (a one-element list unwrapped), if present and not null.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.scalar(key)
    }

    fn scalar(&self, key: &str) -> Option<&Value> {
        match self.0.get(key)? {
            Value::Array(items) if items.len() == 1 => items.first(),
            Value::Null => None,
            other => Some(other),
        }
    }

    /// A boolean, if present.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.scalar(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(other) => Err(bad(&format!("{key} must be true or false, not {other}"))),
        }
    }

    /// A string, if present.
    pub fn string(&self, key: &str) -> Result<Option<String>, ApiError> {
        match self.scalar(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(bad(&format!("{key} must be a string, not {other}"))),
        }
    }
}

/// Which participants a path's `{member}` segment names: `all`, one id, or a comma list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Members {
    /// `all`.
    All,
    /// These ids.
    Ids(Vec<MemberId>),
}

impl Members {
    /// Parses the segment; a malformed one is a 400.
    pub fn parse(segment: &str) -> Result<Members, ApiError> {
        if segment.trim().eq_ignore_ascii_case("all") {
            return Ok(Members::All);
        }
        let ids: Result<Vec<MemberId>, _> = segment
            .split(',')
            .map(|id| id.trim().parse::<MemberId>())
            .collect();
        match ids {
            Ok(ids) if !ids.is_empty() => Ok(Members::Ids(ids)),
            _ => Err(bad(&format!(
                "member id must be a number, a comma-separated list of numbers, or all; not {segment:?}"
            ))),
        }
    }
}

/// A 400 with `message`.
pub fn bad(message: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

/// `limit` (1–`max`, default `max`) and `offset` (≥ 0, default 0) from a query.
pub fn page(query: &[(String, String)], max: usize) -> Result<(usize, usize), ApiError> {
    let get = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let limit = match get("limit") {
        None => max,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=max).contains(l))
            .ok_or_else(|| bad(&format!("limit must be between 1 and {max}, not {v:?}")))?,
    };
    let offset = match get("offset") {
        None => 0,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| bad(&format!("offset must be 0 or more, not {v:?}")))?,
    };
    Ok((limit, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_strings_and_python_lists_are_read() {
        let body = Body::parse(br#"{"mute": "TRUE", "hold": false, "status": ["active"], "n": 3}"#)
            .unwrap();
        assert_eq!(body.bool("mute").unwrap(), Some(true));
        assert_eq!(body.bool("hold").unwrap(), Some(false));
        assert_eq!(body.bool("absent").unwrap(), None);
        assert_eq!(body.string("status").unwrap().as_deref(), Some("active"));
        assert!(body.bool("n").is_err());
        assert!(body.string("n").is_err());
    }

    #[test]
    fn bodies_that_are_not_objects_are_refused() {
        assert!(Body::parse(b"").is_ok());
        assert!(Body::parse(b"  \n").is_ok());
        for bad_body in [&b"[1]"[..], b"\"x\"", b"{", b"\xff\xfe", b"null"] {
            assert!(Body::parse(bad_body).is_err(), "{bad_body:?}");
        }
    }

    #[test]
    fn member_segments() {
        assert_eq!(Members::parse("all").unwrap(), Members::All);
        assert_eq!(Members::parse("ALL").unwrap(), Members::All);
        assert_eq!(
            Members::parse("12").unwrap(),
            Members::Ids(vec![MemberId(12)])
        );
        assert_eq!(
            Members::parse("12, 13").unwrap(),
            Members::Ids(vec![MemberId(12), MemberId(13)])
        );
        for bad_segment in ["", "x", "1,,2", "-1", "1;2"] {
            assert!(Members::parse(bad_segment).is_err(), "{bad_segment:?}");
        }
    }

    #[test]
    fn paging_bounds() {
        let q = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(page(&q(&[]), 20).unwrap(), (20, 0));
        assert_eq!(
            page(&q(&[("limit", "5"), ("offset", "10")]), 20).unwrap(),
            (5, 10)
        );
        for bad_query in [
            q(&[("limit", "0")]),
            q(&[("limit", "21")]),
            q(&[("limit", "x")]),
            q(&[("offset", "-1")]),
        ] {
            assert!(page(&bad_query, 20).is_err());
        }
    }
}
