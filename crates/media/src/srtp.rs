//! SRTP (RFC 3711) for a leg with SDES keys, on the webrtc-rs `srtp` crate: one context
//! protects what we send, another unprotects what the peer sends, with a replay window.

use bytes::Bytes;
use webrtc_srtp::context::Context;
use webrtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use webrtc_srtp::protection_profile::ProtectionProfile;

/// Packets behind the newest one that may still arrive (RFC 3711 §3.3.2 asks for ≥ 64).
const REPLAY_WINDOW: usize = 128;

/// Longest authentication tag of the suites below, which a protected packet adds.
pub const MAX_TAG: usize = 16;

/// The SRTP suites a leg runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrtpSuite {
    /// AES_CM_128_HMAC_SHA1_80.
    AesCm128HmacSha1_80,
    /// AEAD_AES_128_GCM.
    AeadAes128Gcm,
}

impl SrtpSuite {
    fn profile(self) -> ProtectionProfile {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            SrtpSuite::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
        }
    }
}

/// A leg's SRTP keys: each side's master key followed by its master salt.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKeying {
    /// The suite.
    pub suite: SrtpSuite,
    /// What the peer protects with.
    pub remote: Vec<u8>,
    /// What we protect with.
    pub local: Vec<u8>,
}

impl std::fmt::Debug for SrtpKeying {
    // Keys never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpKeying")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

/// Why SRTP could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("SRTP keys unusable: {0}")]
pub struct SrtpError(String);

/// Both directions' SRTP state.
pub struct SrtpSession {
    tx: Context,
    rx: Context,
}

fn context(suite: SrtpSuite, key_salt: &[u8], replay: bool) -> Result<Context, SrtpError> {
    let profile = suite.profile();
    let key_len = profile.key_len();
    if key_salt.len() != key_len + profile.salt_len() {
        return Err(SrtpError(format!(
            "{} bytes of key and salt for {suite:?}",
            key_salt.len()
        )));
    }
    let (key, salt) = key_salt.split_at(key_len);
    let (rtp, rtcp) = if replay {
        (
            Some(srtp_replay_protection(REPLAY_WINDOW)),
            Some(srtcp_replay_protection(REPLAY_WINDOW)),
        )
    } else {
        (None, None)
    };
    Context::new(key, salt, profile, rtp, rtcp).map_err(|e| SrtpError(e.to_string()))
}

impl SrtpSession {
    /// Contexts for `keys`.
    pub fn new(keys: &SrtpKeying) -> Result<SrtpSession, SrtpError> {
        Ok(SrtpSession {
            tx: context(keys.suite, &keys.local, false)?,
            rx: context(keys.suite, &keys.remote, true)?,
        })
    }

    /// Protects the RTP packet in `buf[..len]` in place; returns the new length, or None when
    /// it does not fit (or the key is spent, after 2^48 packets).
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Option<usize> {
        let protected = self.tx.encrypt_rtp(buf.get(..len)?).ok()?;
        buf.get_mut(..protected.len())?.copy_from_slice(&protected);
        Some(protected.len())
    }

    /// Unprotects an SRTP packet: the plain RTP packet, or None when it does not
    /// authenticate, is a replay, or is malformed.
    pub fn unprotect_rtp(&mut self, packet: &[u8]) -> Option<Bytes> {
        self.rx.decrypt_rtp(packet).ok()
    }

    /// Protects an RTCP compound packet.
    pub fn protect_rtcp(&mut self, packet: &[u8]) -> Option<Bytes> {
        self.tx.encrypt_rtcp(packet).ok()
    }
}
