//! Writing SDP text: CRLF line ends throughout (RFC 4566 §5).

use std::fmt::Write;

use crate::direction::Direction;
use crate::local::LocalMedia;
use crate::session::MediaDescription;

/// s= we write.
const SESSION_NAME: &str = "huddle";

/// One payload format of an audio m= line we write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FormatLine<'a> {
    pub pt: u8,
    pub name: &'a str,
    pub clock_rate: u32,
    pub channels: u8,
    pub fmtp: Option<&'a str>,
}

/// v=, o=, s=, c= and t=: everything before the first m= line.
pub(crate) fn session_header(out: &mut String, local: &LocalMedia) {
    let family = if local.ip.is_ipv6() { "IP6" } else { "IP4" };
    let username =
        if !local.username.is_empty() && local.username.chars().all(|c| c.is_ascii_graphic()) {
            local.username.as_str()
        } else {
            "-"
        };
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "v=0\r\no={username} {} {} IN {family} {ip}\r\ns={SESSION_NAME}\r\nc=IN {family} {ip}\r\nt=0 0\r\n",
        local.session_id,
        local.session_version,
        ip = local.ip,
    );
}

/// An audio m= line with its rtpmap/fmtp, ptime and direction.
pub(crate) fn audio_media(
    out: &mut String,
    port: u16,
    proto: &str,
    formats: &[FormatLine<'_>],
    ptime: u32,
    direction: Direction,
) {
    let _ = write!(out, "m=audio {port} {proto}");
    for f in formats {
        let _ = write!(out, " {}", f.pt);
    }
    out.push_str("\r\n");
    for f in formats {
        let _ = write!(out, "a=rtpmap:{} {}/{}", f.pt, f.name, f.clock_rate);
        if f.channels > 1 {
            let _ = write!(out, "/{}", f.channels);
        }
        out.push_str("\r\n");
        if let Some(fmtp) = f.fmtp.filter(|p| !p.is_empty()) {
            let _ = write!(out, "a=fmtp:{} {fmtp}\r\n", f.pt);
        }
    }
    let _ = write!(out, "a=ptime:{ptime}\r\na={}\r\n", direction.as_str());
}

/// A refused m= line: same media, transport and formats, port 0 (RFC 3264 §6).
pub(crate) fn rejected_media(out: &mut String, m: &MediaDescription) {
    let _ = write!(out, "m={} 0 {}", m.kind, m.proto);
    if m.formats.is_empty() {
        // Only a hand-built description gets here; SDP needs at least one format.
        out.push_str(" 0");
    }
    for f in &m.formats {
        let _ = write!(out, " {f}");
    }
    out.push_str("\r\n");
}
