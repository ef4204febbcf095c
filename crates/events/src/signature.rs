//! Plivo request signatures (callbacks.md §2): every request huddle sends to a customer URL
//! carries the V3 and V2 header sets, so that receivers can check it came from us with
//! Plivo's own validators (`plivo.utils.validate_v3_signature`, `validate_signature`).

use std::collections::BTreeMap;

use base64::Engine;
use hmac::{KeyInit, Mac};
use huddle_xml::HttpMethod;
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// V3 signature with the account's token.
pub const V3: &str = "X-Plivo-Signature-V3";
/// V3 signature with the main account's token (the same account here).
pub const MA_V3: &str = "X-Plivo-Signature-Ma-V3";
/// The nonce both V3 signatures use.
pub const V3_NONCE: &str = "X-Plivo-Signature-V3-Nonce";
/// Legacy V2 signature.
pub const V2: &str = "X-Plivo-Signature-V2";
/// Legacy V2 signature with the main account's token.
pub const MA_V2: &str = "X-Plivo-Signature-Ma-V2";
/// The nonce both V2 signatures use.
pub const V2_NONCE: &str = "X-Plivo-Signature-V2-Nonce";

/// Signs requests with the account's auth token.
#[derive(Clone)]
pub struct Signer {
    auth_token: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    /// A signer for `auth_token` (`http.auth_token` in the configuration).
    pub fn new(auth_token: &str) -> Self {
        Signer {
            auth_token: auth_token.to_string(),
        }
    }

    /// The six signature headers for a request to `url` (as requested: fragment removed,
    /// parameters not yet appended) carrying `params`, with fresh nonces.
    pub fn headers(
        &self,
        method: HttpMethod,
        url: &str,
        params: &[(String, String)],
    ) -> [(&'static str, String); 6] {
        let v3_nonce = nonce();
        let v2_nonce = nonce();
        let v3 = v3_signature(&self.auth_token, method, url, params, &v3_nonce);
        let v2 = v2_signature(&self.auth_token, url, &v2_nonce);
        [
            (V3, v3.clone()),
            (MA_V3, v3),
            (V3_NONCE, v3_nonce),
            (V2, v2.clone()),
            (MA_V2, v2),
            (V2_NONCE, v2_nonce),
        ]
    }
}

/// Twenty random decimal digits, as Plivo's nonces look.
fn nonce() -> String {
    let random = u128::from_be_bytes(*uuid::Uuid::new_v4().as_bytes());
    format!("{:020}", random % 100_000_000_000_000_000_000)
}

/// `scheme://netloc/path` and the query of a URL without fragment.
fn split_query(url: &str) -> (&str, &str) {
    url.split_once('?').unwrap_or((url, ""))
}

/// The query's pairs, decoded the way Python's `parse_qs` decodes them (blank values kept),
/// grouped by key with each key's values sorted.
fn query_map(query: &str) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if query.is_empty() {
        return map;
    }
    let Ok(parsed) = reqwest::Url::parse(&format!("http://q/?{query}")) else {
        return map;
    };
    for (key, value) in parsed.query_pairs() {
        map.entry(key.into_owned())
            .or_default()
            .push(value.into_owned());
    }
    map.values_mut().for_each(|values| values.sort());
    map
}

/// `key=value` pairs sorted by key, then value, joined by `&`, values not re-encoded.
fn sorted_query(map: &BTreeMap<String, Vec<String>>) -> String {
    let mut out = String::new();
    for (key, values) in map {
        for value in values {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(key);
            out.push('=');
            out.push_str(value);
        }
    }
    out
}

/// The string V3 signs, before the nonce (callbacks.md §2.2 steps 1–5).
pub fn v3_message(method: HttpMethod, url: &str, params: &[(String, String)]) -> String {
    let (base, query) = split_query(url);
    let mut own = query_map(query);
    let mut message = base.to_string();
    match method {
        HttpMethod::Post if !params.is_empty() => {
            let own_query = sorted_query(&own);
            message.push('?');
            message.push_str(&own_query);
            if !own_query.is_empty() {
                message.push('.');
            }
            let mut pairs: Vec<&(String, String)> = params.iter().collect();
            pairs.sort();
            for (key, value) in pairs {
                message.push_str(key);
                message.push_str(value);
            }
        }
        _ => {
            // The URL's own query wins over a parameter of the same name.
            let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (key, value) in params {
                if !own.contains_key(key) {
                    extra.entry(key.clone()).or_default().push(value.clone());
                }
            }
            for (key, mut values) in extra {
                values.sort();
                own.insert(key, values);
            }
            if !own.is_empty() {
                message.push('?');
                message.push_str(&sorted_query(&own));
            }
        }
    }
    message
}

fn hmac_base64(token: &str, message: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(token.as_bytes()).expect("any key length");
    mac.update(message.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// `X-Plivo-Signature-V3` for a request.
pub fn v3_signature(
    token: &str,
    method: HttpMethod,
    url: &str,
    params: &[(String, String)],
    nonce: &str,
) -> String {
    let message = format!("{}.{nonce}", v3_message(method, url, params));
    hmac_base64(token, &message)
}

/// `X-Plivo-Signature-V2`: the URL without its query, then the nonce.
pub fn v2_signature(token: &str, url: &str, nonce: &str) -> String {
    let (base, _) = split_query(url);
    hmac_base64(token, &format!("{base}{nonce}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "change-me";
    const NONCE: &str = "05429567804466091622";

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The vectors of callbacks.md §2.3, computed with plivo-python 4.63.0.
    #[test]
    fn plivo_python_vectors() {
        let cases = [
            (
                HttpMethod::Post,
                "http://127.0.0.1:9000/status/",
                pairs(&[
                    ("EventName", "MPCStart"),
                    ("MPCUUID", "8742d531-292a-46aa-8754-836be1092885"),
                    ("MPCName", "room1"),
                ]),
                "http://127.0.0.1:9000/status/?EventNameMPCStartMPCNameroom1MPCUUID8742d531-292a-46aa-8754-836be1092885",
                "Hwuwfm7NE9HJEOkDHfUmnrLyRzGpnHdEP3e9EF/GYPo=",
            ),
            (
                HttpMethod::Post,
                "http://127.0.0.1:9000/status/?b=2&a=1",
                pairs(&[("EventName", "MPCStart")]),
                "http://127.0.0.1:9000/status/?a=1&b=2.EventNameMPCStart",
                "Fec2reaybSku5fqzuNS7q65Wt1nSRtB57sAJCdRIQoE=",
            ),
            (
                HttpMethod::Post,
                "http://127.0.0.1:9000/status/",
                Vec::new(),
                "http://127.0.0.1:9000/status/",
                "PMw7vdm2kPpsBjxCnBNhihhhyaSOuh4gYveRv/3RNdI=",
            ),
            (
                HttpMethod::Get,
                "http://127.0.0.1:9000/status/?z=9",
                pairs(&[("EventName", "MPCStart"), ("MPCName", "room 1")]),
                "http://127.0.0.1:9000/status/?EventName=MPCStart&MPCName=room 1&z=9",
                "LkiY8rYhyg8HA2DlG1cHJdRS8/ek18ajI/jrQT5+Wnw=",
            ),
        ];
        for (method, url, params, message, signature) in cases {
            assert_eq!(v3_message(method, url, &params), message, "{url}");
            assert_eq!(
                v3_signature(TOKEN, method, url, &params, NONCE),
                signature,
                "{url}"
            );
        }
    }

    #[test]
    fn get_query_wins_over_a_parameter_of_the_same_name_and_decodes_values() {
        let message = v3_message(
            HttpMethod::Get,
            "http://h/cb?MPCName=a%20b&x=",
            &pairs(&[("MPCName", "other"), ("EventName", "MPCEnd")]),
        );
        assert_eq!(message, "http://h/cb?EventName=MPCEnd&MPCName=a b&x=");
    }

    #[test]
    fn v2_signs_the_url_without_query() {
        let with_query = v2_signature(TOKEN, "http://h/cb?a=1", NONCE);
        assert_eq!(with_query, v2_signature(TOKEN, "http://h/cb", NONCE));
        assert_ne!(with_query, v2_signature(TOKEN, "http://h/other", NONCE));
    }

    #[test]
    fn headers_carry_fresh_twenty_digit_nonces_and_verifiable_signatures() {
        let signer = Signer::new(TOKEN);
        let params = pairs(&[("EventName", "MPCStart")]);
        let first = signer.headers(HttpMethod::Post, "http://h/cb", &params);
        let second = signer.headers(HttpMethod::Post, "http://h/cb", &params);
        let get = |headers: &[(&str, String)], name: &str| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        let nonce = get(&first, V3_NONCE);
        assert_eq!(nonce.len(), 20);
        assert!(nonce.bytes().all(|b| b.is_ascii_digit()));
        assert_ne!(nonce, get(&second, V3_NONCE));
        assert_eq!(
            get(&first, V3),
            v3_signature(TOKEN, HttpMethod::Post, "http://h/cb", &params, &nonce)
        );
        assert_eq!(get(&first, V3), get(&first, MA_V3));
        let v2_nonce = get(&first, V2_NONCE);
        assert_eq!(
            get(&first, V2),
            v2_signature(TOKEN, "http://h/cb", &v2_nonce)
        );
    }
}
