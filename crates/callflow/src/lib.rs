//! One call leg's life: routing, fetching its XML, running the verbs, and handing
//! MultiPartyCall to the room service.

pub mod call_status;
pub mod calls;
pub mod dial;
pub mod executor;
pub mod input;
pub mod leg;
pub mod manager;
pub mod media_setup;
pub mod playback;
pub mod record_journal;
pub mod router;

pub use call_status::CallStatusCallback;
pub use calls::{CallInfo, Calls};
pub use dial::{dial_participant, DialError, DialRace, DialRequest, SettleHook, Settled};
pub use executor::{AfterAnswer, ConfirmKey};
/// The room port, re-exported for the call flow's users: `CallContext::rooms` is a
/// [`Rooms`].
pub use huddle_roomport::{
    member_news, HangupCause, JoinRefused, JoinRequest, Left, MemberInput, MemberLink,
    MemberOutput, Membership, RoomExit, Rooms, TickAudio,
};
pub use manager::{run, CallContext, MediaSettings, RecordingFiles};
pub use record_journal::{CallRecording, RecordJournal};
pub use router::{RouteAction, RouteMatch, RouteRule, Router};
