//! Typed errors: reading SDP, negotiating an offer, reading an answer.

use thiserror::Error;

/// Longest piece of offending input copied into an error, so a hostile body cannot make log
/// lines huge.
const MAX_QUOTED: usize = 40;

/// Copies at most [`MAX_QUOTED`] characters of `value` for an error message.
pub(crate) fn quoted(value: &str) -> String {
    value.chars().take(MAX_QUOTED).collect()
}

/// Why a body is not usable SDP. Media lines are numbered from 1 in the order they appear.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SdpError {
    /// No body, or only whitespace.
    #[error("empty SDP body")]
    Empty,
    /// Larger than we accept.
    #[error("SDP body of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Body length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not UTF-8 text.
    #[error("SDP body is not UTF-8 (invalid byte at offset {offset})")]
    NotUtf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// A line that is not `<letter>=<value>`.
    #[error("SDP line {line}: {reason}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A required line is absent.
    #[error("SDP has no {0} line")]
    Missing(&'static str),
    /// An m= line that cannot be read.
    #[error("m= line {media}: {reason}")]
    BadMediaLine {
        /// 1-based m= line number.
        media: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An m= port that is not 0..=65535.
    #[error("m= line {media}: port {value:?} is not a number from 0 to 65535")]
    BadPort {
        /// 1-based m= line number.
        media: usize,
        /// The port as written (truncated).
        value: String,
    },
    /// An RTP payload type that is not 0..=127.
    #[error("m= line {media}: payload type {value:?} is not a number from 0 to 127")]
    BadPayloadType {
        /// 1-based m= line number.
        media: usize,
        /// The format token as written (truncated).
        value: String,
    },
    /// A c= address we cannot use.
    #[error("connection address {value:?}: {reason}")]
    BadAddress {
        /// The address as written (truncated).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An active m= line with no c= at media or session level (RFC 4566 §5.7).
    #[error("m= line {media} has no connection address (no c= line at media or session level)")]
    MissingConnection {
        /// 1-based m= line number.
        media: usize,
    },
    /// Rejected by the SDP grammar (line order, o= fields, ...).
    #[error("malformed SDP: {0}")]
    Syntax(String),
}

/// Why an offer cannot be answered. Every variant means "answer 488 Not Acceptable Here".
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NegotiationError {
    /// No audio m= line with a non-zero port and the RTP/AVP profile.
    #[error("the offer has no active RTP/AVP audio stream")]
    NoAudio,
    /// Audio was offered, but none of its codecs is one we support.
    #[error("no common codec in the offered audio")]
    NoCommonCodec,
    /// The route requires SRTP and the offer has no RTP/SAVP audio with a usable key.
    #[error("SRTP is required and no RTP/SAVP audio with a usable a=crypto key was offered")]
    SrtpRequired,
    /// The chosen audio stream has no connection address.
    #[error("m= line {media} (audio) has no connection address")]
    NoConnectionAddress {
        /// 1-based m= line number.
        media: usize,
    },
}

/// Why the answer to our offer cannot be used (UAC side).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AnswerError {
    /// The body is not usable SDP.
    #[error(transparent)]
    Sdp(#[from] SdpError),
    /// The answerer set our audio stream's port to 0.
    #[error("the answer rejected our audio stream (port 0)")]
    Rejected,
    /// No audio, no codec we offered, or no address.
    #[error(transparent)]
    Negotiation(#[from] NegotiationError),
}
