//! The boundary between a call leg and the MPC room it joins. The leg owns SIP; the room owns
//! the mix. The leg lends the room its audio (a [`TickAudio`]), which the room receives and
//! sends on its own tick; digits and the reason the leg left go through the leg's task.

use std::future::Future;
use std::pin::Pin;

use huddle_media::news::{self, Epoch, NewsBell, NewsWatch};
use huddle_xml::{MultiPartyCall, UrlWithMethod};
use tokio::sync::{mpsc, oneshot};

use crate::cause::HangupCause;
use crate::ids::CallUuid;
pub use crate::TickAudio;

/// Why a leg left its room on its own (rather than being released by the room).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Left {
    /// The call ended, for this cause.
    Hangup(HangupCause),
    /// The call was moved elsewhere (the API's add participant with its CallUUID) and goes on.
    Transferred,
}

/// A call asking to join (or create) an MPC.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// The leg's CallUUID.
    pub call_uuid: CallUuid,
    /// Caller.
    pub from: String,
    /// Callee.
    pub to: String,
    /// The verb with every attribute resolved.
    pub mpc: Box<MultiPartyCall>,
    /// Sample rate of the frames the joiner's audio exchanges (its [`TickAudio::rate`]); an AI
    /// stream member's queues are made at this rate.
    pub sample_rate: u32,
}

/// What the leg sends into the room besides audio.
#[derive(Debug)]
pub enum MemberInput {
    /// A DTMF digit the caller pressed (RFC 4733).
    Dtmf {
        /// The digit.
        digit: char,
        /// How long it was held.
        duration_ms: u32,
    },
}

/// What the room sends to the leg besides audio.
#[derive(Debug)]
pub enum MemberOutput {
    /// A digit relayed from another member, to be sent as RFC 4733.
    Dtmf {
        /// The digit.
        digit: char,
        /// How long to hold it.
        duration_ms: u32,
    },
}

/// How the leg's stay in the room ended, decided by the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomExit {
    /// Continue with the next verb, or with this URL's XML (onExitActionUrl), requested with
    /// these extra parameters.
    Continue {
        /// onExitActionUrl with its method, when set.
        on_exit: Option<UrlWithMethod>,
        /// Parameters for the on-exit request.
        params: Vec<(String, String)>,
    },
    /// End the call with this cause (MPC ended, kicked out).
    Hangup(HangupCause),
}

/// Bumped whenever any member link rings: a room's tick compares this one process-wide
/// counter with the value it saw last before looking at its own doorbell (see
/// [`huddle_media::news`]).
static MEMBER_NEWS: Epoch = Epoch::new();

/// A room's doorbell on the process-wide member-news epoch: the bell goes into every
/// [`MemberLink`] of the room, the watch stays with the room's tick.
pub fn member_news() -> (NewsBell, NewsWatch) {
    news::channel(&MEMBER_NEWS)
}

/// The leg's way into the room: digits, and that it hung up. Every message also rings the
/// room's doorbell, so that the room's tick looks at its members' queues only when one of
/// them has news instead of polling every member's channels 50 times a second; dropping the
/// link rings it too (a leg that went away).
#[derive(Debug)]
pub struct MemberLink {
    inputs: mpsc::Sender<MemberInput>,
    left: Option<oneshot::Sender<Left>>,
    doorbell: NewsBell,
}

impl MemberLink {
    /// A link over the room's queues for this member and the room's doorbell.
    pub fn new(
        inputs: mpsc::Sender<MemberInput>,
        left: oneshot::Sender<Left>,
        doorbell: NewsBell,
    ) -> Self {
        MemberLink {
            inputs,
            left: Some(left),
            doorbell,
        }
    }

    /// Passes an input to the room; false when its queue is full or the room is gone (the
    /// leg never waits on the room).
    pub fn send(&self, input: MemberInput) -> bool {
        let sent = self.inputs.try_send(input).is_ok();
        self.ring();
        sent
    }

    /// Tells the room the leg left, and why.
    pub fn leave(&mut self, why: Left) {
        if let Some(left) = self.left.take() {
            let _ = left.send(why);
        }
        self.ring();
    }

    fn ring(&self) {
        self.doorbell.ring();
    }
}

impl Drop for MemberLink {
    fn drop(&mut self) {
        self.ring();
    }
}

/// A leg's membership of a room. The room holds the leg's audio for as long as the membership
/// lasts and drops it (giving it back) when the leg leaves.
pub struct Membership {
    /// The member's id in the room (the API's MemberID).
    pub member_id: crate::ids::MemberId,
    /// The MPC's uuid (MPCUUID), for what the member reports on its own (stream callbacks).
    pub mpc_uuid: crate::ids::MpcUuid,
    /// Digits and the hang-up into the room.
    pub to_room: MemberLink,
    /// The room's output for this caller.
    pub from_room: mpsc::Receiver<MemberOutput>,
    /// Resolves when the room lets the leg go.
    pub exit: oneshot::Receiver<RoomExit>,
}

/// Why the room would not take the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRefused {
    /// Human-readable reason (for example the MPC is full).
    pub reason: String,
}

/// The room service: the MPC feature implements it.
pub trait Rooms: Send + Sync {
    /// Adds the call to the named MPC, creating it when no live one exists. The room keeps
    /// `audio` while the call is a member; a refusal drops it at once.
    fn join(
        &self,
        request: JoinRequest,
        audio: Box<dyn TickAudio>,
    ) -> Pin<Box<dyn Future<Output = Result<Membership, JoinRefused>> + Send + '_>>;
}
