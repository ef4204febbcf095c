//! Media for huddle: G.711 and Opus, RTP validation and latching, jitter buffer, RFC 4733 DTMF, tones,
//! RTP port pairs, and the per-leg UDP session.

pub mod codec;
pub mod driver;
pub mod dtmf;
pub mod g711;
pub mod g722;
pub mod jitter;
pub mod news;
pub mod opus;
pub mod ports;
pub mod resample;
pub mod rtp_leg;
pub mod rtp_rx;
pub mod session;
pub mod srtp;
pub mod tone;
pub mod udp_batch;

pub use driver::{LentAudio, TickAudio};
pub use session::Direction;
