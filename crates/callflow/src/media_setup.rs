//! Turns an SDP offer into our answer and the media leg's parameters.

use std::net::{IpAddr, SocketAddr};

use huddle_media::codec::{Codec, OpusOptions};
use huddle_media::session::{Direction, LatchPolicy, MediaParams, SrtpKeying, SrtpSuite};
use huddle_sdp::{
    CodecSpec, CryptoSuite, LocalMedia, NegotiationError, SdpError, SrtpPolicy, G722, OPUS,
    OPUS_FULLBAND, PCMA, PCMU,
};
use thiserror::Error;

use crate::manager::MediaSettings;
use crate::router::{Latching, SrtpMode};

/// Why an offer was refused.
#[derive(Debug, Error)]
pub enum SetupError {
    /// No body.
    #[error("INVITE without an SDP offer")]
    Offerless,
    /// Unparseable body.
    #[error("{0}")]
    Malformed(String),
    /// No codec in common.
    #[error("no common codec (rtp.codecs lists what we support)")]
    NoCommonCodec,
    /// The route requires SRTP and the offer is plain RTP.
    #[error("the route requires SRTP (RTP/SAVP with a=crypto) and the offer has none")]
    SrtpRequired,
}

impl SetupError {
    /// The SIP status and reason to refuse with.
    pub fn sip_status(&self) -> (u16, &'static str) {
        match self {
            SetupError::Malformed(_) => (400, "Bad Request (malformed SDP)"),
            SetupError::Offerless | SetupError::NoCommonCodec | SetupError::SrtpRequired => {
                (488, "Not Acceptable Here")
            }
        }
    }
}

/// A successful negotiation.
#[derive(Debug, Clone)]
pub struct Negotiated {
    /// Our SDP answer.
    pub answer_sdp: String,
    /// Remote RTP address.
    pub remote_rtp: SocketAddr,
    /// Remote direction.
    pub remote_direction: Direction,
    /// Codec.
    pub codec: Codec,
    /// Its payload type.
    pub payload_type: u8,
    /// telephone-event payload type.
    pub telephone_event_pt: Option<u8>,
    /// SRTP keys, when the stream is RTP/SAVP.
    pub srtp: Option<SrtpKeying>,
}

/// How a route's calls secure and latch their media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaPolicy {
    /// Whom media is taken from.
    pub latching: LatchPolicy,
    /// Whether SRTP is refused, offered or required.
    pub srtp: SrtpPolicy,
}

impl Default for MediaPolicy {
    /// Media only from the SDP's address; SRTP when offered.
    fn default() -> Self {
        MediaPolicy {
            latching: LatchPolicy::Signalled,
            srtp: SrtpPolicy::Optional,
        }
    }
}

impl MediaPolicy {
    /// The policy of a route's call whose SIP came from `signalling`.
    pub fn for_route(latching: Latching, srtp: SrtpMode, signalling: SocketAddr) -> Self {
        MediaPolicy {
            latching: latch_policy(latching, signalling),
            srtp: match srtp {
                SrtpMode::Off => SrtpPolicy::Off,
                SrtpMode::Optional => SrtpPolicy::Optional,
                SrtpMode::Required => SrtpPolicy::Required,
            },
        }
    }
}

/// A fresh SRTP master key and salt from the OS's generator.
fn new_key(len: usize) -> Vec<u8> {
    let mut key = vec![0u8; len];
    if getrandom::fill(&mut key).is_err() {
        // Without the OS generator no key can be trusted: an empty key fails the leg's
        // SRTP set-up instead of protecting media with something guessable.
        key.clear();
    }
    key
}

/// The SDP codecs named by `rtp.codecs` (names the configuration validated; unknown ones are
/// skipped), in the configuration's order; Opus answered up to `opus_max_rate`
/// (`rtp.opus_max_rate`: 16000, wideband, or 48000, fullband).
pub fn codec_specs(names: &[String], opus_max_rate: u32) -> Vec<CodecSpec> {
    let opus = if opus_max_rate > 16000 {
        OPUS_FULLBAND
    } else {
        OPUS
    };
    names
        .iter()
        .filter_map(|name| {
            [PCMU, PCMA, opus, G722]
                .into_iter()
                .find(|c| c.name.eq_ignore_ascii_case(name))
        })
        .collect()
}

/// The media layer's codec for the negotiated SDP codec and the peer's fmtp.
pub fn media_codec(codec: &CodecSpec, remote_fmtp: Option<&str>) -> Codec {
    match Codec::from_name(codec.name) {
        Some(Codec::Opus(_)) => Codec::Opus(OpusOptions {
            // RFC 7587 §6.1: usedtx=1 says the peer prefers that we send DTX.
            dtx: remote_fmtp.and_then(|f| huddle_sdp::fmtp_param(f, "usedtx")) == Some("1"),
            pcm_rate: opus_rate(remote_fmtp, our_opus_rate(codec)),
        }),
        Some(other) => other,
        None => Codec::Pcmu,
    }
}

/// The highest rate our answer for `codec` (an Opus spec) offers to run at: its own
/// `maxplaybackrate`.
fn our_opus_rate(codec: &CodecSpec) -> u32 {
    codec
        .fmtp
        .and_then(|f| huddle_sdp::fmtp_param(f, "maxplaybackrate"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(16000)
}

/// The rate an Opus leg runs at: `ours` (16 kHz, wideband, or 48 kHz, fullband, as
/// `rtp.opus_max_rate` says) unless the peer says it plays or captures less (RFC 7587 §6.1:
/// `maxplaybackrate` is what it can play, `sprop-maxcapturerate` what it sends; both default
/// to 48000 when absent), then the next rate down of 48000, 16000 and 8000 that it covers. One
/// rate serves both directions, so the lower of the two decides. A value that is not a number
/// is ignored, as if absent: a peer's typo must not cost the call.
pub fn opus_rate(remote_fmtp: Option<&str>, ours: u32) -> u32 {
    let theirs = |name: &str| {
        remote_fmtp
            .and_then(|f| huddle_sdp::fmtp_param(f, name))
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(48000)
    };
    let limit = theirs("maxplaybackrate")
        .min(theirs("sprop-maxcapturerate"))
        .min(ours);
    if limit >= 48000 {
        48000
    } else if limit >= 16000 {
        16000
    } else {
        8000
    }
}

/// Negotiates an offer against `codecs` under the route's SRTP policy.
pub fn negotiate(
    offer: &[u8],
    local_ip: IpAddr,
    local_port: u16,
    version: u64,
    srtp: SrtpPolicy,
    codecs: &[CodecSpec],
) -> Result<Negotiated, SetupError> {
    negotiate_keyed(
        offer,
        local_ip,
        local_port,
        version,
        srtp,
        codecs,
        &mut new_key,
    )
}

/// Answers a re-INVITE's offer for a call whose media runs with `current` keys (None: plain
/// RTP) and the `running` codec (None: a leg we dialled, which runs one of the G.711 codecs we
/// offered). A leg's codec state is not swapped mid-call either, so the re-offer must still
/// carry the running codec (488 otherwise), and the answer keeps it. The leg's SRTP contexts cannot be swapped mid-call, so the re-offer must keep the
/// call's security and the remote's key: we answer with our key of the call, and a re-offer
/// that drops SRTP, adds it or changes the remote key is refused (488).
pub fn renegotiate(
    offer: &[u8],
    local_ip: IpAddr,
    local_port: u16,
    version: u64,
    current: Option<&SrtpKeying>,
    running: Option<Codec>,
) -> Result<Negotiated, SetupError> {
    let codecs: &[CodecSpec] = match running {
        Some(Codec::Pcmu) => &[PCMU],
        Some(Codec::Pcma) => &[PCMA],
        Some(Codec::Opus(o)) if o.pcm_rate > 16000 => &[OPUS_FULLBAND],
        Some(Codec::Opus(_)) => &[OPUS],
        Some(Codec::G722) => &[G722],
        None => &[PCMU, PCMA],
    };
    let policy = if current.is_some() {
        SrtpPolicy::Required
    } else {
        SrtpPolicy::Off
    };
    let mut same_key = |len: usize| {
        current
            .map(|k| k.local.clone())
            .filter(|k| k.len() == len)
            .unwrap_or_default()
    };
    let n = negotiate_keyed(
        offer,
        local_ip,
        local_port,
        version,
        policy,
        codecs,
        &mut same_key,
    )?;
    match (current, &n.srtp) {
        (Some(now), Some(offered)) if now != offered => Err(SetupError::SrtpRequired),
        _ => Ok(n),
    }
}

fn negotiate_keyed(
    offer: &[u8],
    local_ip: IpAddr,
    local_port: u16,
    version: u64,
    srtp: SrtpPolicy,
    codecs: &[CodecSpec],
    new_key: &mut dyn FnMut(usize) -> Vec<u8>,
) -> Result<Negotiated, SetupError> {
    let parsed = huddle_sdp::parse_offer(offer).map_err(|e| match e {
        SdpError::Empty => SetupError::Offerless,
        other => SetupError::Malformed(other.to_string()),
    })?;
    let local = LocalMedia::new(local_ip, local_port, u64::from(local_port), version);
    // Every negotiation failure (no audio, no common codec, no SRTP) is answered 488.
    let answer = huddle_sdp::negotiate_secure(&parsed, codecs, &local, srtp, new_key).map_err(
        |e| match e {
            NegotiationError::SrtpRequired => SetupError::SrtpRequired,
            _ => SetupError::NoCommonCodec,
        },
    )?;
    let n = answer.media;
    Ok(Negotiated {
        answer_sdp: answer.sdp,
        remote_rtp: n.remote_rtp,
        remote_direction: direction(n.remote_direction),
        codec: media_codec(&n.codec, n.remote_fmtp.as_deref()),
        payload_type: n.payload_type,
        telephone_event_pt: n.telephone_event_pt,
        srtp: n.srtp.map(|k| SrtpKeying {
            suite: match k.suite {
                CryptoSuite::AesCm128HmacSha1_80 => SrtpSuite::AesCm128HmacSha1_80,
                CryptoSuite::AeadAes128Gcm => SrtpSuite::AeadAes128Gcm,
            },
            remote: k.remote,
            local: k.local,
        }),
    })
}

/// Whom a call from `signalling` takes media from under a route's `latching`.
pub fn latch_policy(latching: Latching, signalling: SocketAddr) -> LatchPolicy {
    match latching {
        Latching::Sdp => LatchPolicy::Signalled,
        Latching::SignallingIp => LatchPolicy::SignallingIp(signalling.ip()),
    }
}

/// Media parameters for a negotiated leg.
pub fn params(settings: &MediaSettings, n: &Negotiated, latching: LatchPolicy) -> MediaParams {
    let srtp = n.srtp.clone();
    MediaParams {
        remote_rtp: n.remote_rtp,
        codec: n.codec,
        payload_type: n.payload_type,
        telephone_event_pt: n.telephone_event_pt,
        remote_direction: n.remote_direction,
        jitter_min_ms: settings.jitter_min_ms,
        jitter_max_ms: settings.jitter_max_ms,
        rtp_timeout: settings.rtp_timeout,
        latching,
        srtp,
    }
}

pub(crate) fn direction(d: huddle_sdp::Direction) -> Direction {
    match d {
        huddle_sdp::Direction::SendRecv => Direction::SendRecv,
        huddle_sdp::Direction::SendOnly => Direction::SendOnly,
        huddle_sdp::Direction::RecvOnly => Direction::RecvOnly,
        huddle_sdp::Direction::Inactive => Direction::Inactive,
    }
}

/// Media parameters for a leg we dialled, from the callee's answer to our offer. Its media
/// comes only from the address its answer signalled.
pub fn answered_params(settings: &MediaSettings, n: &huddle_sdp::NegotiatedMedia) -> MediaParams {
    MediaParams {
        remote_rtp: n.remote_rtp,
        codec: media_codec(&n.codec, n.remote_fmtp.as_deref()),
        payload_type: n.payload_type,
        telephone_event_pt: n.telephone_event_pt,
        remote_direction: direction(n.remote_direction),
        jitter_min_ms: settings.jitter_min_ms,
        jitter_max_ms: settings.jitter_max_ms,
        rtp_timeout: settings.rtp_timeout,
        latching: LatchPolicy::Signalled,
        srtp: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn offer(formats: &str, lines: &str) -> Vec<u8> {
        format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP {formats}\r\n{lines}"
        )
        .into_bytes()
    }

    fn opus_first() -> Vec<u8> {
        offer(
            "111 0",
            "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1;usedtx=1\r\n",
        )
    }

    #[test]
    fn opus_is_answered_when_configured_and_its_dtx_wish_kept() {
        let all = codec_specs(&["PCMU".into(), "PCMA".into(), "opus".into()], 16000);
        let n = negotiate(&opus_first(), LOCAL, 20000, 1, SrtpPolicy::Off, &all).unwrap();
        assert_eq!(n.payload_type, 111);
        assert_eq!(
            n.codec,
            Codec::Opus(OpusOptions {
                dtx: true,
                pcm_rate: 16000
            })
        );
        assert!(
            n.answer_sdp
                .contains("maxplaybackrate=16000;sprop-maxcapturerate=16000"),
            "{}",
            n.answer_sdp
        );
        let g711 = codec_specs(&["PCMU".into(), "PCMA".into()], 16000);
        let n = negotiate(&opus_first(), LOCAL, 20000, 1, SrtpPolicy::Off, &g711).unwrap();
        assert_eq!((n.codec, n.payload_type), (Codec::Pcmu, 0));
    }

    #[test]
    fn opus_runs_wideband_unless_the_peer_limits_it() {
        let opus_rate = |fmtp| opus_rate(fmtp, 16000);
        assert_eq!(opus_rate(None), 16000);
        assert_eq!(opus_rate(Some("useinbandfec=1")), 16000);
        assert_eq!(opus_rate(Some("maxplaybackrate=48000")), 16000);
        assert_eq!(
            opus_rate(Some("maxplaybackrate=16000;sprop-maxcapturerate=16000")),
            16000
        );
        assert_eq!(opus_rate(Some("maxplaybackrate=8000")), 8000);
        assert_eq!(
            opus_rate(Some("maxplaybackrate=24000; sprop-maxcapturerate=12000")),
            8000
        );
        // Hostile or broken values are ignored, never a panic.
        assert_eq!(
            opus_rate(Some("maxplaybackrate=abc;sprop-maxcapturerate=-1")),
            16000
        );
        assert_eq!(
            opus_rate(Some("maxplaybackrate=99999999999999999999")),
            16000
        );
        assert_eq!(opus_rate(Some(";;==;maxplaybackrate")), 16000);
    }

    #[test]
    fn a_fullband_server_runs_opus_at_48_khz_unless_the_peer_limits_it() {
        assert_eq!(opus_rate(None, 48000), 48000);
        assert_eq!(opus_rate(Some("maxplaybackrate=48000"), 48000), 48000);
        assert_eq!(opus_rate(Some("maxplaybackrate=24000"), 48000), 16000);
        assert_eq!(
            opus_rate(
                Some("maxplaybackrate=48000;sprop-maxcapturerate=16000"),
                48000
            ),
            16000
        );
        assert_eq!(opus_rate(Some("sprop-maxcapturerate=8000"), 48000), 8000);
        let full = codec_specs(&["opus".into()], 48000);
        let n = negotiate(&opus_first(), LOCAL, 20000, 1, SrtpPolicy::Off, &full).unwrap();
        assert_eq!(
            n.codec,
            Codec::Opus(OpusOptions {
                dtx: true,
                pcm_rate: 48000
            })
        );
        assert!(
            n.answer_sdp
                .contains("maxplaybackrate=48000;sprop-maxcapturerate=48000"),
            "{}",
            n.answer_sdp
        );
    }

    #[test]
    fn a_reinvite_keeps_the_running_codec() {
        let n = renegotiate(&opus_first(), LOCAL, 20000, 2, None, Some(Codec::Pcmu)).unwrap();
        assert_eq!(
            (n.codec, n.payload_type),
            (Codec::Pcmu, 0),
            "not switched to Opus"
        );
        let opus_only = offer("111", "a=rtpmap:111 opus/48000/2\r\n");
        assert!(matches!(
            renegotiate(&opus_only, LOCAL, 20000, 2, None, Some(Codec::Pcmu)),
            Err(SetupError::NoCommonCodec)
        ));
        let running = Codec::Opus(OpusOptions::default());
        let n = renegotiate(&opus_first(), LOCAL, 20000, 2, None, Some(running)).unwrap();
        assert_eq!(n.payload_type, 111);
    }
}
