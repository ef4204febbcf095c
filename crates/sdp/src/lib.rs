//! SDP offer/answer (RFC 3264) for an audio media server.
//!
//! The `sdp` crate parses the description (it keeps every m= line, including `m=image`, which an
//! answer must mirror); rtpmap, fmtp, ptime and direction are read here, with the static
//! payload-type table for offers that omit rtpmap.

use std::io::Cursor;
use std::net::{IpAddr, SocketAddr};

use thiserror::Error;

/// Why an offer cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SdpError {
    /// Not parseable SDP.
    #[error("malformed SDP: {0}")]
    Malformed(String),
    /// Parsed, but nothing we can talk to (answer 488).
    #[error("no common codec in the offer")]
    NoCommonCodec,
    /// No body at all.
    #[error("no SDP offer")]
    Empty,
}

/// Media direction attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// sendrecv
    SendRecv,
    /// sendonly
    SendOnly,
    /// recvonly
    RecvOnly,
    /// inactive
    Inactive,
}

impl Direction {
    fn parse(key: &str) -> Option<Direction> {
        match key {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// The answer's direction for this offered one (RFC 3264 §6.1).
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            other => other,
        }
    }

    /// Attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Whether the side with this direction sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the side with this direction receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// A codec we can run. The list is data so Opus and G.722 are new entries, not new code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecSpec {
    /// Encoding name as in rtpmap (case-insensitive match).
    pub name: &'static str,
    /// RTP clock rate.
    pub clock_rate: u32,
    /// Channels.
    pub channels: u8,
    /// Static payload type, if it has one.
    pub static_pt: Option<u8>,
}

/// G.711 µ-law.
pub const PCMU: CodecSpec = CodecSpec {
    name: "PCMU",
    clock_rate: 8000,
    channels: 1,
    static_pt: Some(0),
};
/// G.711 A-law.
pub const PCMA: CodecSpec = CodecSpec {
    name: "PCMA",
    clock_rate: 8000,
    channels: 1,
    static_pt: Some(8),
};

/// RFC 3551 static payload types that often arrive without rtpmap.
fn static_pt(pt: u8) -> Option<(&'static str, u32)> {
    match pt {
        0 => Some(("PCMU", 8000)),
        3 => Some(("GSM", 8000)),
        8 => Some(("PCMA", 8000)),
        9 => Some(("G722", 8000)),
        13 => Some(("CN", 8000)),
        18 => Some(("G729", 8000)),
        _ => None,
    }
}

/// One offered format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    /// Payload type.
    pub pt: u8,
    /// Encoding name.
    pub name: String,
    /// Clock rate.
    pub clock_rate: u32,
    /// fmtp parameters, raw.
    pub fmtp: Option<String>,
}

/// One m= line of an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaOffer {
    /// audio, video, image, ...
    pub kind: String,
    /// Port (0 = disabled).
    pub port: u16,
    /// Transport protocol, e.g. RTP/AVP.
    pub proto: String,
    /// Format tokens as offered (kept to mirror rejected lines).
    pub format_tokens: Vec<String>,
    /// Parsed RTP formats, in offer order.
    pub formats: Vec<Format>,
    /// Effective connection address (media level wins).
    pub address: Option<IpAddr>,
    /// Effective direction.
    pub direction: Direction,
    /// a=ptime, ms.
    pub ptime: Option<u32>,
}

/// A parsed offer (or answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOffer {
    /// o= session id.
    pub session_id: u64,
    /// o= session version.
    pub session_version: u64,
    /// m= lines in order.
    pub media: Vec<MediaOffer>,
}

/// Parses an SDP body.
pub fn parse_offer(body: &[u8]) -> Result<SessionOffer, SdpError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(SdpError::Empty);
    }
    if body.len() > 16 * 1024 {
        return Err(SdpError::Malformed("larger than 16 KiB".into()));
    }
    let text = std::str::from_utf8(body).map_err(|_| SdpError::Malformed("not UTF-8".into()))?;
    // The sdp crate wants CRLF or LF consistently; normalise bare CR-less input.
    let normalised = text.replace("\r\n", "\n").replace('\n', "\r\n");
    let desc = sdp::SessionDescription::unmarshal(&mut Cursor::new(normalised.as_bytes()))
        .map_err(|e| SdpError::Malformed(e.to_string().chars().take(120).collect()))?;
    let session_addr = desc
        .connection_information
        .as_ref()
        .and_then(|c| c.address.as_ref())
        .and_then(|a| a.address.parse::<IpAddr>().ok());
    let session_dir = desc
        .attributes
        .iter()
        .find_map(|a| Direction::parse(&a.key))
        .unwrap_or(Direction::SendRecv);
    let mut media = Vec::new();
    for m in &desc.media_descriptions {
        let port = u16::try_from(m.media_name.port.value)
            .map_err(|_| SdpError::Malformed(format!("bad port {}", m.media_name.port.value)))?;
        let address = m
            .connection_information
            .as_ref()
            .and_then(|c| c.address.as_ref())
            .and_then(|a| {
                a.address
                    .split('/')
                    .next()
                    .and_then(|ip| ip.parse::<IpAddr>().ok())
            })
            .or(session_addr);
        let mut direction = m
            .attributes
            .iter()
            .find_map(|a| Direction::parse(&a.key))
            .unwrap_or(session_dir);
        if address.is_some_and(|a| a.is_unspecified()) {
            // RFC 2543 hold: c=0.0.0.0.
            direction = Direction::Inactive;
        }
        let mut formats = Vec::new();
        for token in &m.media_name.formats {
            let Ok(pt) = token.parse::<u8>() else {
                continue; // non-RTP formats (t38, webrtc-datachannel) are mirrored, not used
            };
            let rtpmap = m.attributes.iter().find_map(|a| {
                let v = a.value.as_deref()?;
                (a.key == "rtpmap" && v.split_whitespace().next() == Some(token)).then_some(v)
            });
            let (name, clock_rate) = match rtpmap {
                Some(v) => {
                    let enc = v.split_whitespace().nth(1).unwrap_or("");
                    let mut parts = enc.split('/');
                    let name = parts.next().unwrap_or("").to_string();
                    let rate = parts.next().and_then(|r| r.parse().ok()).unwrap_or(8000);
                    (name, rate)
                }
                None => match static_pt(pt) {
                    Some((n, r)) => (n.to_string(), r),
                    None => (String::new(), 0),
                },
            };
            let fmtp = m.attributes.iter().find_map(|a| {
                let v = a.value.as_deref()?;
                let (p, rest) = v.split_once(' ')?;
                (a.key == "fmtp" && p == token).then(|| rest.to_string())
            });
            formats.push(Format {
                pt,
                name,
                clock_rate,
                fmtp,
            });
        }
        let ptime = m
            .attributes
            .iter()
            .find(|a| a.key == "ptime")
            .and_then(|a| a.value.as_deref()?.trim().parse().ok());
        media.push(MediaOffer {
            kind: m.media_name.media.clone(),
            port,
            proto: m.media_name.protos.join("/"),
            format_tokens: m.media_name.formats.clone(),
            formats,
            address,
            direction,
            ptime,
        });
    }
    if media.is_empty() {
        return Err(SdpError::Malformed("no m= line".into()));
    }
    Ok(SessionOffer {
        session_id: desc.origin.session_id,
        session_version: desc.origin.session_version,
        media,
    })
}

/// Our side of the negotiation.
#[derive(Debug, Clone)]
pub struct LocalMedia {
    /// Address for o= and c=.
    pub ip: IpAddr,
    /// Our RTP port.
    pub rtp_port: u16,
    /// o= session id.
    pub session_id: u64,
    /// o= version (increment on every new answer in the dialog).
    pub session_version: u64,
}

/// The outcome of negotiating one offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The SDP answer text.
    pub answer: String,
    /// Chosen codec.
    pub codec: CodecSpec,
    /// Its payload type.
    pub payload_type: u8,
    /// telephone-event payload type, when offered at the codec's rate.
    pub telephone_event_pt: Option<u8>,
    /// Where to send RTP.
    pub remote_rtp: SocketAddr,
    /// The offerer's direction.
    pub remote_direction: Direction,
    /// Packet time in ms.
    pub ptime: u32,
}

/// Chooses the first codec in the offerer's order that we support (what trunks expect: they
/// list their preference first) and builds the answer, mirroring every m= line.
pub fn negotiate(
    offer: &SessionOffer,
    supported: &[CodecSpec],
    local: &LocalMedia,
) -> Result<Negotiated, SdpError> {
    // (m= index, codec, its PT, telephone-event PT and fmtp)
    type Choice = (usize, CodecSpec, u8, Option<(u8, Option<String>)>);
    let mut chosen: Option<Choice> = None;
    for (i, m) in offer.media.iter().enumerate() {
        if m.kind != "audio" || m.port == 0 || !m.proto.starts_with("RTP/AVP") {
            continue;
        }
        let pick = m.formats.iter().find_map(|f| {
            supported
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(&f.name) && c.clock_rate == f.clock_rate)
                .map(|c| (*c, f.pt))
        });
        if let Some((codec, pt)) = pick {
            let te = m
                .formats
                .iter()
                .find(|f| {
                    f.name.eq_ignore_ascii_case("telephone-event")
                        && f.clock_rate == codec.clock_rate
                })
                .map(|f| (f.pt, f.fmtp.clone()));
            chosen = Some((i, codec, pt, te));
            break;
        }
    }
    let (index, codec, pt, te) = chosen.ok_or(SdpError::NoCommonCodec)?;
    let m = &offer.media[index];
    let remote_ip = m
        .address
        .ok_or_else(|| SdpError::Malformed("no c= address for audio".into()))?;
    let ptime = m.ptime.filter(|p| (10..=120).contains(p)).unwrap_or(20);
    let family = if local.ip.is_ipv6() { "IP6" } else { "IP4" };
    let mut s = format!(
        "v=0\r\no=huddle {} {} IN {family} {ip}\r\ns=huddle\r\nc=IN {family} {ip}\r\nt=0 0\r\n",
        local.session_id,
        local.session_version,
        ip = local.ip
    );
    for (i, line) in offer.media.iter().enumerate() {
        if i != index {
            let formats = if line.format_tokens.is_empty() {
                "0".to_string()
            } else {
                line.format_tokens.join(" ")
            };
            s.push_str(&format!("m={} 0 {} {formats}\r\n", line.kind, line.proto));
            continue;
        }
        let mut fmts = vec![pt.to_string()];
        if let Some((tpt, _)) = &te {
            fmts.push(tpt.to_string());
        }
        s.push_str(&format!(
            "m=audio {} {} {}\r\n",
            local.rtp_port,
            line.proto,
            fmts.join(" ")
        ));
        s.push_str(&format!(
            "a=rtpmap:{pt} {}/{}\r\n",
            codec.name, codec.clock_rate
        ));
        if let Some((tpt, fmtp)) = &te {
            s.push_str(&format!(
                "a=rtpmap:{tpt} telephone-event/{}\r\n",
                codec.clock_rate
            ));
            s.push_str(&format!(
                "a=fmtp:{tpt} {}\r\n",
                fmtp.as_deref().unwrap_or("0-16")
            ));
        }
        s.push_str(&format!("a=ptime:{ptime}\r\n"));
        s.push_str(&format!("a={}\r\n", line.direction.answer().as_str()));
    }
    Ok(Negotiated {
        answer: s,
        codec,
        payload_type: pt,
        telephone_event_pt: te.map(|t| t.0),
        remote_rtp: SocketAddr::new(remote_ip, m.port),
        remote_direction: m.direction,
        ptime,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIPP: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

    fn local() -> LocalMedia {
        LocalMedia {
            ip: "10.0.0.5".parse().unwrap(),
            rtp_port: 20000,
            session_id: 1,
            session_version: 1,
        }
    }

    #[test]
    fn sipp_offer() {
        let n = negotiate(
            &parse_offer(SIPP.as_bytes()).unwrap(),
            &[PCMU, PCMA],
            &local(),
        )
        .unwrap();
        assert_eq!(n.codec, PCMU);
        assert_eq!(n.remote_rtp, "127.0.0.1:6000".parse().unwrap());
        assert!(n.answer.contains("m=audio 20000 RTP/AVP 0\r\n"));
        assert!(n.answer.contains("c=IN IP4 10.0.0.5"));
        assert!(n.answer.contains("a=sendrecv"));
    }

    #[test]
    fn trunk_offer_with_dtmf_ptime_video_and_t38() {
        let offer = "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 18 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:30\r\na=sendonly\r\n\
m=video 4002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\nm=image 4004 udptl t38\r\n";
        let n = negotiate(
            &parse_offer(offer.as_bytes()).unwrap(),
            &[PCMU, PCMA],
            &local(),
        )
        .unwrap();
        assert_eq!(
            (n.codec, n.payload_type),
            (PCMA, 8),
            "offerer's order, G729 skipped"
        );
        assert_eq!(n.telephone_event_pt, Some(101));
        assert_eq!(n.ptime, 30);
        assert_eq!(n.remote_direction, Direction::SendOnly);
        assert!(n.answer.contains("a=recvonly"));
        assert!(n.answer.contains("a=fmtp:101 0-15"));
        assert!(n.answer.contains("m=video 0 RTP/AVP 96\r\n"));
        assert!(n.answer.contains("m=image 0 udptl t38\r\n"));
    }

    #[test]
    fn no_common_codec_and_hold_and_ipv6() {
        let g729 = SIPP
            .replace("RTP/AVP 0", "RTP/AVP 18")
            .replace("a=rtpmap:0 PCMU/8000\r\n", "");
        assert_eq!(
            negotiate(
                &parse_offer(g729.as_bytes()).unwrap(),
                &[PCMU, PCMA],
                &local()
            ),
            Err(SdpError::NoCommonCodec)
        );
        let hold = SIPP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
        assert_eq!(
            parse_offer(hold.as_bytes()).unwrap().media[0].direction,
            Direction::Inactive
        );
        let v6 = SIPP.replace("IN IP4 127.0.0.1", "IN IP6 2001:db8::1");
        let mut l = local();
        l.ip = "2001:db8::5".parse().unwrap();
        let n = negotiate(&parse_offer(v6.as_bytes()).unwrap(), &[PCMU], &l).unwrap();
        assert_eq!(n.remote_rtp, "[2001:db8::1]:6000".parse().unwrap());
        assert!(n.answer.contains("c=IN IP6 2001:db8::5"));
    }

    #[test]
    fn hostile_bodies_are_errors() {
        for bad in [
            &b""[..],
            b"garbage",
            b"v=0\r\n",
            b"\xff\xfe\xfd",
            b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 99999 RTP/AVP 0\r\n",
            b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n",
        ] {
            assert!(
                parse_offer(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let huge = vec![b'a'; 20_000];
        assert!(parse_offer(&huge).is_err());
    }
}
