//! SDP offer/answer (RFC 3264, RFC 4566) for an audio media server.
//!
//! - [`parse_offer`] reads a description with the `sdp` crate (which keeps every m= line,
//!   `m=image` T.38 included) and extracts per m= line what offer/answer needs: rtpmap, fmtp,
//!   ptime, maxptime, direction, connection address, rtcp. Payload types without rtpmap are
//!   looked up in the RFC 3551 static table.
//! - [`negotiate`] answers an offer against the codecs the caller supports ([`CodecSpec`]
//!   values such as [`PCMU`] and [`PCMA`]), mirroring every offered m= line.
//! - [`build_offer`] and [`parse_answer`] are the UAC side.
//! - [`classify_reoffer`] tells a session refresh from a hold or a resume in a re-INVITE.
//!
//! All SDP we write uses CRLF line ends.

#![warn(missing_docs)]

mod attributes;
mod codec;
mod crypto;
mod direction;
mod error;
mod local;
mod negotiate;
mod offer;
mod parse;
mod reinvite;
mod scan;
mod session;
mod writer;

pub use codec::{
    fmtp_param, static_payload_type, CodecSpec, G722, OPUS, OPUS_FMTP, OPUS_FULLBAND,
    OPUS_FULLBAND_FMTP, PCMA, PCMU, STATIC_PAYLOAD_TYPES, TELEPHONE_EVENT,
    TELEPHONE_EVENT_DEFAULT_EVENTS, TELEPHONE_EVENT_FMTP,
};
pub use crypto::{parse_crypto, CryptoOffer, CryptoSuite, SrtpKeys, SrtpPolicy};
pub use direction::Direction;
pub use error::{AnswerError, NegotiationError, SdpError};
pub use local::{LocalMedia, DEFAULT_PTIME};
pub use negotiate::{negotiate, negotiate_secure, Answer, NegotiatedMedia};
pub use offer::{build_offer, parse_answer};
pub use parse::parse_offer;
pub use reinvite::{classify_reoffer, is_hold, is_unchanged, ReofferKind};
pub use scan::MAX_SDP_BYTES;
pub use session::{MediaDescription, Origin, RtcpAttribute, RtpFormat, SessionOffer};
