//! Reading a session description: the `sdp` crate parses it, then we pull out per m= line what
//! offer/answer needs.

use std::collections::HashMap;
use std::io::Cursor;
use std::net::IpAddr;

use crate::attributes;
use crate::codec::static_payload_type;
use crate::direction::Direction;
use crate::error::{quoted, SdpError};
use crate::scan::{is_rtp_proto, scan, MediaLineText};
use crate::session::{MediaDescription, Origin, RtcpAttribute, RtpFormat, SessionOffer};

/// Longest message taken from the `sdp` crate's errors.
const MAX_SYNTAX_MESSAGE: usize = 120;

/// Parses an SDP body (an offer, or the answer to our offer).
///
/// Every m= line is kept, whatever its media type or transport, so that an answer can mirror
/// them all. Malformed input gives an [`SdpError`] naming the problem; no input panics.
pub fn parse_offer(body: &[u8]) -> Result<SessionOffer, SdpError> {
    let scanned = scan(body)?;
    let desc = sdp::SessionDescription::unmarshal(&mut Cursor::new(scanned.text.as_bytes()))
        .map_err(|e| SdpError::Syntax(e.to_string().chars().take(MAX_SYNTAX_MESSAGE).collect()))?;
    if desc.media_descriptions.len() != scanned.media.len() {
        return Err(SdpError::Syntax("m= lines out of place".into()));
    }

    let connection = connection_address(desc.connection_information.as_ref())?;
    let direction = direction_of(&desc.attributes);
    let mut media = Vec::with_capacity(scanned.media.len());
    for (i, (m, text)) in desc
        .media_descriptions
        .iter()
        .zip(scanned.media)
        .enumerate()
    {
        media.push(media_description(i + 1, m, text, connection, direction)?);
    }
    Ok(SessionOffer {
        origin: Origin {
            username: desc.origin.username,
            session_id: desc.origin.session_id,
            session_version: desc.origin.session_version,
            address: desc.origin.unicast_address,
        },
        connection,
        direction,
        media,
    })
}

fn media_description(
    number: usize,
    m: &sdp::description::media::MediaDescription,
    text: MediaLineText,
    session_connection: Option<IpAddr>,
    session_direction: Option<Direction>,
) -> Result<MediaDescription, SdpError> {
    // The scan checked these ranges; a failure here would mean the two passes disagree.
    let port = u16::try_from(m.media_name.port.value).map_err(|_| SdpError::BadPort {
        media: number,
        value: m.media_name.port.value.to_string(),
    })?;
    let port_count = m.media_name.port.range.and_then(|r| u16::try_from(r).ok());
    let connection = match connection_address(m.connection_information.as_ref())? {
        Some(addr) => Some(addr),
        None => session_connection,
    };
    if port != 0 && connection.is_none() {
        return Err(SdpError::MissingConnection { media: number });
    }

    let mut rtpmaps = HashMap::new();
    let mut fmtps = HashMap::new();
    let mut ptime = None;
    let mut maxptime = None;
    let mut rtcp = None;
    let mut rtcp_mux = false;
    let mut crypto = Vec::new();
    for a in &m.attributes {
        let value = a.value.as_deref().unwrap_or("");
        match a.key.as_str() {
            "rtpmap" => {
                if let Some(map) = attributes::rtpmap(value) {
                    rtpmaps.entry(map.pt).or_insert(map);
                }
            }
            "fmtp" => {
                if let Some((pt, params)) = attributes::fmtp(value) {
                    fmtps.entry(pt).or_insert(params);
                }
            }
            "ptime" => ptime = ptime.or_else(|| attributes::milliseconds(value)),
            "maxptime" => maxptime = maxptime.or_else(|| attributes::milliseconds(value)),
            "rtcp" => {
                rtcp = rtcp.or_else(|| {
                    attributes::rtcp(value).map(|(port, address)| RtcpAttribute { port, address })
                })
            }
            "rtcp-mux" => rtcp_mux = true,
            // A handful at most in real offers; more is somebody probing.
            "crypto" if crypto.len() < 16 => crypto.push(value.to_string()),
            _ => {}
        }
    }

    let mut rtp_formats = Vec::new();
    if is_rtp_proto(&text.proto) {
        for token in &m.media_name.formats {
            let Ok(pt) = token.parse::<u8>() else {
                continue;
            };
            let (encoding, clock_rate, channels) = match rtpmaps.get(&pt) {
                Some(map) => {
                    let rate = map
                        .clock_rate
                        .or_else(|| static_payload_type(pt).map(|(_, r)| r))
                        .unwrap_or(0);
                    (map.encoding.to_string(), rate, map.channels)
                }
                None => match static_payload_type(pt) {
                    Some((name, rate)) => (name.to_string(), rate, 1),
                    None => continue,
                },
            };
            rtp_formats.push(RtpFormat {
                payload_type: pt,
                encoding,
                clock_rate,
                channels,
                fmtp: fmtps.get(&pt).map(|p| p.to_string()),
            });
        }
    }

    Ok(MediaDescription {
        kind: text.kind,
        port,
        port_count,
        proto: text.proto,
        formats: m.media_name.formats.clone(),
        rtp_formats,
        connection,
        direction: direction_of(&m.attributes)
            .or(session_direction)
            .unwrap_or(Direction::SendRecv),
        ptime,
        maxptime,
        rtcp,
        rtcp_mux,
        crypto,
    })
}

/// The first direction attribute in a list.
fn direction_of(attributes: &[sdp::description::common::Attribute]) -> Option<Direction> {
    attributes
        .iter()
        .find_map(|a| Direction::from_attribute(&a.key))
}

/// A c= line's address: `None` when there is no c= or it has no address.
fn connection_address(
    c: Option<&sdp::description::common::ConnectionInformation>,
) -> Result<Option<IpAddr>, SdpError> {
    let Some(c) = c else {
        return Ok(None);
    };
    let Some(address) = c.address.as_ref() else {
        return Ok(None);
    };
    let written = address.address.as_str();
    // Multicast addresses carry /<ttl> and /<count> suffixes (RFC 4566 §5.7).
    let host = written.split('/').next().unwrap_or(written);
    let bad = |reason| SdpError::BadAddress {
        value: quoted(written),
        reason,
    };
    let ip = host
        .parse::<IpAddr>()
        .map_err(|_| bad("not an IP address (host names are not resolved)"))?;
    match (c.address_type.as_str(), ip) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Ok(Some(ip)),
        _ => Err(bad("address does not match its IP4/IP6 address type")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIPP: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

    #[test]
    fn reads_sipp_default_offer() {
        let o = parse_offer(SIPP.as_bytes()).unwrap();
        assert_eq!(o.origin.username, "user1");
        assert_eq!(o.origin.session_id, 53655765);
        assert_eq!(o.origin.session_version, 2353687637);
        let m = &o.media[0];
        assert_eq!(
            (m.kind.as_str(), m.port, m.proto.as_str()),
            ("audio", 6000, "RTP/AVP")
        );
        assert_eq!(m.connection, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(m.direction, Direction::SendRecv);
        assert_eq!(m.rtp_formats.len(), 1);
        assert_eq!(m.rtp_formats[0].encoding, "PCMU");
    }

    #[test]
    fn media_level_wins_over_session_level() {
        let body = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\na=sendonly\r\n\
m=audio 4000 RTP/AVP 0\r\nc=IN IP4 192.0.2.9\r\na=recvonly\r\n\
m=audio 4002 RTP/AVP 0\r\n";
        let o = parse_offer(body.as_bytes()).unwrap();
        assert_eq!(o.direction, Some(Direction::SendOnly));
        assert_eq!(o.media[0].direction, Direction::RecvOnly);
        assert_eq!(o.media[0].connection, Some("192.0.2.9".parse().unwrap()));
        assert_eq!(o.media[1].direction, Direction::SendOnly);
        assert_eq!(o.media[1].connection, Some("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn connection_addresses_are_checked() {
        let with_c = |c: &str| {
            format!("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc={c}\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n")
        };
        let multicast = parse_offer(with_c("IN IP4 224.2.1.1/127").as_bytes()).unwrap();
        assert_eq!(multicast.connection, Some("224.2.1.1".parse().unwrap()));
        let v6 = parse_offer(with_c("IN IP6 2001:db8::1").as_bytes()).unwrap();
        assert_eq!(v6.connection, Some("2001:db8::1".parse().unwrap()));
        for bad in [
            "IN IP4 pbx.example.com",
            "IN IP4 2001:db8::1",
            "IN IP6 192.0.2.1",
        ] {
            assert!(
                matches!(
                    parse_offer(with_c(bad).as_bytes()),
                    Err(SdpError::BadAddress { .. })
                ),
                "{bad}"
            );
        }
        let no_c = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\nm=video 0 RTP/AVP 31\r\n";
        assert_eq!(
            parse_offer(no_c.as_bytes()),
            Err(SdpError::MissingConnection { media: 1 })
        );
    }

    #[test]
    fn syntax_errors_from_the_grammar_are_reported() {
        let bad_origin = SIPP.replace(
            "o=user1 53655765 2353687637 IN IP4 127.0.0.1",
            "o=user1 x y",
        );
        assert!(matches!(
            parse_offer(bad_origin.as_bytes()),
            Err(SdpError::Syntax(_))
        ));
        let unknown_line = SIPP.replace("t=0 0\r\n", "t=0 0\r\ny=what\r\n");
        assert!(matches!(
            parse_offer(unknown_line.as_bytes()),
            Err(SdpError::Syntax(_))
        ));
    }
}
