//! A first pass over the raw body, before the `sdp` crate sees it.
//!
//! It gives the errors a caller can act on (which line, which m= line, which field) instead of
//! the crate's generic ones, and it keeps m= lines the crate would refuse: the crate knows only
//! some media and transport names, while an answer must mirror every offered m= line
//! (RFC 3264 §6), including ones like `m=application 9 TCP/BFCP *`. Such lines are handed to
//! the crate with placeholder names and their real names are kept here.

use crate::error::{quoted, SdpError};

/// Largest SDP body we read. Trunk offers are well under 2 KiB.
pub const MAX_SDP_BYTES: usize = 16 * 1024;

/// Media names the `sdp` crate accepts on an m= line.
const CRATE_MEDIA: &[&str] = &["audio", "video", "text", "application", "message", "image"];

/// Transport tokens the `sdp` crate accepts in an m= line's proto.
const CRATE_PROTO_TOKENS: &[&str] = &[
    "UDP", "RTP", "AVP", "SAVP", "SAVPF", "TLS", "DTLS", "SCTP", "AVPF", "udptl",
];

/// An m= line's media and proto as written by the peer.
#[derive(Debug)]
pub(crate) struct MediaLineText {
    pub kind: String,
    pub proto: String,
}

/// The body checked line by line, re-joined with CRLF for the `sdp` crate.
#[derive(Debug)]
pub(crate) struct Scanned {
    pub text: String,
    pub media: Vec<MediaLineText>,
}

/// Checks the body's shape and prepares it for the `sdp` crate.
pub(crate) fn scan(body: &[u8]) -> Result<Scanned, SdpError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(SdpError::Empty);
    }
    if body.len() > MAX_SDP_BYTES {
        return Err(SdpError::TooLarge {
            len: body.len(),
            max: MAX_SDP_BYTES,
        });
    }
    let text = std::str::from_utf8(body).map_err(|e| SdpError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;

    let mut out = String::with_capacity(text.len() + 32);
    let mut media = Vec::new();
    let mut seen = Seen::default();
    for (i, raw) in text.split('\n').enumerate() {
        let line_no = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        // Blank lines (a trailing CRLF, a stray empty line) carry nothing; the crate skips them too.
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason| SdpError::BadLine {
            line: line_no,
            reason,
        };
        if line.chars().any(|c| c.is_control() && c != '\t') {
            return Err(bad("contains a control character"));
        }
        let (kind, value) = match line.as_bytes() {
            [k, b'=', ..] if k.is_ascii_lowercase() => (*k, line.get(2..).unwrap_or("")),
            _ => return Err(bad("not a <letter>=<value> line")),
        };
        if !seen.any && kind != b'v' {
            return Err(bad("SDP must start with v="));
        }
        seen.any = true;
        match kind {
            b'v' => seen.v = true,
            b'o' => seen.o = true,
            b's' => seen.s = true,
            b't' => seen.t = true,
            b'm' => {
                let (rewritten, original) = media_line(value, media.len() + 1)?;
                media.push(original);
                out.push_str(&rewritten);
                out.push_str("\r\n");
                continue;
            }
            _ => {}
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    for (present, name) in [
        (seen.v, "v="),
        (seen.o, "o="),
        (seen.s, "s="),
        (seen.t, "t="),
        (!media.is_empty(), "m="),
    ] {
        if !present {
            return Err(SdpError::Missing(name));
        }
    }
    Ok(Scanned { text: out, media })
}

#[derive(Default)]
struct Seen {
    any: bool,
    v: bool,
    o: bool,
    s: bool,
    t: bool,
}

/// Checks `<media> <port>[/<count>] <proto> <fmt> ...` and returns the line to give the
/// crate plus the names as written.
fn media_line(value: &str, number: usize) -> Result<(String, MediaLineText), SdpError> {
    let fields: Vec<&str> = value.split_ascii_whitespace().collect();
    let [kind, port_field, proto, formats @ ..] = fields.as_slice() else {
        return Err(SdpError::BadMediaLine {
            media: number,
            reason: "needs a media type, a port, a transport and at least one format",
        });
    };
    if formats.is_empty() {
        return Err(SdpError::BadMediaLine {
            media: number,
            reason: "needs a media type, a port, a transport and at least one format",
        });
    }
    let (port, count) = match port_field.split_once('/') {
        Some((p, c)) => (p, Some(c)),
        None => (*port_field, None),
    };
    if port.parse::<u16>().is_err() {
        return Err(SdpError::BadPort {
            media: number,
            value: quoted(port),
        });
    }
    if let Some(count) = count {
        if !count.parse::<u16>().is_ok_and(|c| c > 0) {
            return Err(SdpError::BadMediaLine {
                media: number,
                reason: "the port count after '/' is not a number from 1 to 65535",
            });
        }
    }
    if is_rtp_proto(proto) {
        if let Some(bad) = formats
            .iter()
            .find(|f| !f.parse::<u8>().is_ok_and(|pt| pt <= 127))
        {
            return Err(SdpError::BadPayloadType {
                media: number,
                value: quoted(bad),
            });
        }
    }
    let crate_kind = if CRATE_MEDIA.contains(kind) {
        kind
    } else {
        "application"
    };
    let crate_proto = if proto.split('/').all(|t| CRATE_PROTO_TOKENS.contains(&t)) {
        proto
    } else {
        "UDP"
    };
    let rewritten = format!(
        "m={crate_kind} {port_field} {crate_proto} {}",
        formats.join(" ")
    );
    Ok((
        rewritten,
        MediaLineText {
            kind: (*kind).to_string(),
            proto: (*proto).to_string(),
        },
    ))
}

/// Whether a transport carries RTP, so its formats are payload type numbers (RFC 4566 §5.14).
pub(crate) fn is_rtp_proto(proto: &str) -> bool {
    proto.split('/').any(|t| t.eq_ignore_ascii_case("RTP"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n";

    fn with_m(m: &str) -> String {
        format!("{MIN}c=IN IP4 192.0.2.1\r\n{m}\r\n")
    }

    #[test]
    fn keeps_media_names_the_crate_does_not_know() {
        let s = scan(with_m("m=application 9 TCP/BFCP *").as_bytes()).unwrap();
        assert_eq!(s.media[0].kind, "application");
        assert_eq!(s.media[0].proto, "TCP/BFCP");
        assert!(s.text.contains("m=application 9 UDP *\r\n"));
        let s = scan(with_m("m=data 9 UDPTL t38").as_bytes()).unwrap();
        assert_eq!(
            (s.media[0].kind.as_str(), s.media[0].proto.as_str()),
            ("data", "UDPTL")
        );
    }

    #[test]
    fn names_what_is_wrong() {
        let cases: &[(&str, SdpError)] = &[
            ("", SdpError::Empty),
            (" \r\n\r\n", SdpError::Empty),
            (
                "hello",
                SdpError::BadLine {
                    line: 1,
                    reason: "not a <letter>=<value> line",
                },
            ),
            (
                "o=- 1 1 IN IP4 1.2.3.4\r\n",
                SdpError::BadLine {
                    line: 1,
                    reason: "SDP must start with v=",
                },
            ),
            ("v=0\r\ns=-\r\nt=0 0\r\n", SdpError::Missing("o=")),
            (MIN, SdpError::Missing("m=")),
            (
                &with_m("m=audio 70000 RTP/AVP 0"),
                SdpError::BadPort {
                    media: 1,
                    value: "70000".into(),
                },
            ),
            (
                &with_m("m=audio -1 RTP/AVP 0"),
                SdpError::BadPort {
                    media: 1,
                    value: "-1".into(),
                },
            ),
            (
                &with_m("m=audio 4000 RTP/AVP 0 128"),
                SdpError::BadPayloadType {
                    media: 1,
                    value: "128".into(),
                },
            ),
            (
                &with_m("m=audio 4000 RTP/AVP"),
                SdpError::BadMediaLine {
                    media: 1,
                    reason: "needs a media type, a port, a transport and at least one format",
                },
            ),
            (
                &with_m("m=audio 4000/0 RTP/AVP 0"),
                SdpError::BadMediaLine {
                    media: 1,
                    reason: "the port count after '/' is not a number from 1 to 65535",
                },
            ),
        ];
        for (body, want) in cases {
            assert_eq!(scan(body.as_bytes()).unwrap_err(), *want, "{body:?}");
        }
    }

    #[test]
    fn rejects_bytes_that_are_not_text() {
        assert_eq!(
            scan(b"v=0\r\n\xff\xfe").unwrap_err(),
            SdpError::NotUtf8 { offset: 5 }
        );
        let nul = format!("{MIN}a=x\0y\r\n");
        assert_eq!(
            scan(nul.as_bytes()).unwrap_err(),
            SdpError::BadLine {
                line: 5,
                reason: "contains a control character"
            }
        );
        let huge = vec![b'a'; MAX_SDP_BYTES + 1];
        assert!(matches!(scan(&huge), Err(SdpError::TooLarge { .. })));
    }

    #[test]
    fn accepts_lf_only_and_blank_lines() {
        let body = "v=0\no=- 1 1 IN IP4 192.0.2.1\n\ns=-\nt=0 0\nm=audio 4000 RTP/AVP 0\n\n";
        let s = scan(body.as_bytes()).unwrap();
        assert!(s.text.ends_with("m=audio 4000 RTP/AVP 0\r\n"));
        assert!(!s.text.contains("\r\n\r\n"));
    }
}
