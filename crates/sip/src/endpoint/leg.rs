//! One call leg and its states. Each state carries exactly the data that exists in it, so a
//! dialling leg has no dialog, an unanswered one no re-INVITE, and a confirmed one no CANCEL.

use std::net::IpAddr;

use crate::dialog::Dialog;
use crate::message::Request;
use crate::transaction::{Peer, TxId};

/// A call leg: one INVITE and the dialog it creates.
#[derive(Debug)]
pub(super) struct Leg {
    /// Inbound: the INVITE as received. Outbound: the INVITE as last sent (with credentials
    /// once a challenge was answered).
    pub invite: Request,
    /// The INVITE's transaction: the server transaction of an inbound leg, the client
    /// transaction of an outbound one. It outlives the dialling state because retransmitted
    /// and forked 2xx still arrive on it and must be acknowledged.
    pub invite_tx: TxId,
    /// Inbound: where the INVITE came from. Outbound: the trunk.
    pub peer: Peer,
    /// Our tag in the dialog.
    pub local_tag: String,
    /// Where the leg is in its life.
    pub state: LegState,
    /// Inbound, until the caller confirms it (ACK of our 2xx) or it ends: the source IP whose
    /// unconfirmed calls it counts among (`sip.max_unconfirmed_per_source`).
    pub unconfirmed_from: Option<IpAddr>,
}

/// Where a leg is in its life.
#[derive(Debug)]
pub(super) enum LegState {
    /// Inbound, no final response sent yet (provisional responses may have gone out).
    Ringing,
    /// Outbound, INVITE sent, no 2xx yet.
    Dialling(Dialling),
    /// Inbound, our 2xx sent and retransmitted until the ACK comes.
    Accepted {
        /// The dialog our 2xx created.
        session: Session,
        /// The application hung up before the ACK: send BYE as soon as it arrives, because
        /// a BYE before the ACK could overtake the 2xx on the far side.
        bye_after_ack: bool,
    },
    /// The dialog is confirmed: media flows, re-INVITEs may come and go.
    Confirmed(Session),
    /// Our BYE is on its way; the leg ends with its final response or its timeout.
    Terminating(Session),
}

/// The data of an outbound leg that has no answer yet.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Dialling {
    /// Credentials were sent once; another challenge means they are wrong and fails the call.
    pub auth_tried: bool,
    /// We sent CANCEL: the final response ends the leg without telling the application (it
    /// asked for it), and a 2xx that crossed the CANCEL gets ACK and BYE.
    pub cancelled: bool,
}

/// A dialog and the offer/answer exchanges running in it.
#[derive(Debug)]
pub(super) struct Session {
    /// The dialog (RFC 3261 §12).
    pub dialog: Dialog,
    /// A re-INVITE of the far end waiting for the application's answer.
    pub remote_reinvite: Option<RemoteReinvite>,
    /// Our re-INVITE, until its final response. While it is pending a re-INVITE from the far
    /// end is glare and gets 491 (RFC 3261 §14.2). Both can be pending only when the
    /// application re-INVITEs before answering the far end's re-INVITE, which §14.1 forbids;
    /// the far end then answers ours with 491.
    pub local_reinvite: Option<TxId>,
}

/// A re-INVITE received and not answered yet.
#[derive(Debug)]
pub(super) struct RemoteReinvite {
    /// Its server transaction.
    pub tx: TxId,
    /// The request, which the answer copies its headers from.
    pub request: Request,
}

impl Session {
    /// A fresh session on a dialog, with no exchange running.
    pub fn new(dialog: Dialog) -> Session {
        Session {
            dialog,
            remote_reinvite: None,
            local_reinvite: None,
        }
    }
}

impl Leg {
    /// The session, in the states that have a dialog.
    pub fn session(&self) -> Option<&Session> {
        match &self.state {
            LegState::Accepted { session, .. }
            | LegState::Confirmed(session)
            | LegState::Terminating(session) => Some(session),
            LegState::Ringing | LegState::Dialling(_) => None,
        }
    }

    /// The session, mutably.
    pub fn session_mut(&mut self) -> Option<&mut Session> {
        match &mut self.state {
            LegState::Accepted { session, .. }
            | LegState::Confirmed(session)
            | LegState::Terminating(session) => Some(session),
            LegState::Ringing | LegState::Dialling(_) => None,
        }
    }

    /// The dialog, in the states that have one.
    pub fn dialog(&self) -> Option<&Dialog> {
        self.session().map(|s| &s.dialog)
    }

    /// Moves the leg to `Terminating`, keeping its session. Returns false (and changes
    /// nothing) when the leg has no dialog to send a BYE in, or already sent one.
    pub fn start_terminating(&mut self) -> bool {
        let state = std::mem::replace(&mut self.state, LegState::Ringing);
        let (state, moved) = match state {
            LegState::Accepted { session, .. } | LegState::Confirmed(session) => {
                (LegState::Terminating(session), true)
            }
            other => (other, false),
        };
        self.state = state;
        moved
    }
}
