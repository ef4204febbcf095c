//! Offers inside an established dialog: session refreshes and hold (RFC 3264 §8).

use crate::session::{Origin, SessionOffer};

/// What a new offer in an existing dialog asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReofferKind {
    /// Same o= session and version: nothing changed (a session-timer refresh, RFC 3264 §8).
    /// Answer with our previous SDP, version unchanged, and keep the current media state.
    Unchanged,
    /// The peer puts us on hold: it will not receive our audio (see [`is_hold`]).
    /// Negotiate it; the answer says recvonly or inactive.
    Hold,
    /// Media should flow to the peer: a resume, or a new address or codec. Negotiate it.
    Active,
}

/// Whether an offer puts us on hold: its first active audio stream is sendonly or inactive,
/// or uses the RFC 2543 connection address 0.0.0.0. A recvonly stream is not a hold (the peer
/// still listens to us).
pub fn is_hold(offer: &SessionOffer) -> bool {
    offer
        .first_active_audio()
        .is_some_and(|(_, m)| !m.effective_direction().receives())
}

/// Whether `offer` repeats the description last seen from the peer (`previous`, its o= line):
/// same session and same version.
pub fn is_unchanged(previous: &Origin, offer: &SessionOffer) -> bool {
    offer.origin.same_session(previous) && offer.origin.session_version == previous.session_version
}

/// Classifies a re-INVITE's (or UPDATE's) offer against the peer's previous o= line.
pub fn classify_reoffer(previous: &Origin, offer: &SessionOffer) -> ReofferKind {
    if is_unchanged(previous, offer) {
        ReofferKind::Unchanged
    } else if is_hold(offer) {
        ReofferKind::Hold
    } else {
        ReofferKind::Active
    }
}
