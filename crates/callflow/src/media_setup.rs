//! Turns an SDP offer into our answer and the media leg's parameters.

use std::net::{IpAddr, SocketAddr};

use huddle_media::codec::Codec;
use huddle_media::session::{Direction, LatchPolicy, MediaParams};
use huddle_sdp::{LocalMedia, SdpError, PCMA, PCMU};
use thiserror::Error;

use crate::manager::MediaSettings;
use crate::router::Latching;

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
    #[error("no common codec (we support PCMU and PCMA)")]
    NoCommonCodec,
}

impl SetupError {
    /// The SIP status and reason to refuse with.
    pub fn sip_status(&self) -> (u16, &'static str) {
        match self {
            SetupError::Malformed(_) => (400, "Bad Request (malformed SDP)"),
            SetupError::Offerless | SetupError::NoCommonCodec => (488, "Not Acceptable Here"),
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
}

/// Negotiates an offer against our codec list.
pub fn negotiate(
    offer: &[u8],
    local_ip: IpAddr,
    local_port: u16,
    version: u64,
) -> Result<Negotiated, SetupError> {
    let parsed = huddle_sdp::parse_offer(offer).map_err(|e| match e {
        SdpError::Empty => SetupError::Offerless,
        other => SetupError::Malformed(other.to_string()),
    })?;
    let local = LocalMedia::new(local_ip, local_port, u64::from(local_port), version);
    // Every negotiation failure (no audio, no common codec) is answered 488.
    let answer = huddle_sdp::negotiate(&parsed, &[PCMU, PCMA], &local)
        .map_err(|_| SetupError::NoCommonCodec)?;
    let n = answer.media;
    Ok(Negotiated {
        answer_sdp: answer.sdp,
        remote_rtp: n.remote_rtp,
        remote_direction: direction(n.remote_direction),
        codec: Codec::from_name(n.codec.name).unwrap_or(Codec::Pcmu),
        payload_type: n.payload_type,
        telephone_event_pt: n.telephone_event_pt,
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
    }
}

fn direction(d: huddle_sdp::Direction) -> Direction {
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
        codec: Codec::from_name(n.codec.name).unwrap_or(Codec::Pcmu),
        payload_type: n.payload_type,
        telephone_event_pt: n.telephone_event_pt,
        remote_direction: direction(n.remote_direction),
        jitter_min_ms: settings.jitter_min_ms,
        jitter_max_ms: settings.jitter_max_ms,
        rtp_timeout: settings.rtp_timeout,
        latching: LatchPolicy::Signalled,
    }
}
