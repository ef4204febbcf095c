//! The port between a call leg and the MPC room it joins, in a crate of its own so that the
//! call flow (SIP, SDP, prompts) and the room (mixer, recording) depend on it and not on each
//! other: the [`Rooms`] service, the join request and its answer, the member links both sides
//! hold, the hangup causes that cross it, and the typed identifiers (MemberID, CallUUID,
//! MPCUUID, recording id) with the source new ones are drawn from.

pub mod cause;
pub mod ids;
pub mod port;

pub use cause::HangupCause;
/// The audio a leg lends a room: received and sent on the room's own tick.
pub use huddle_media::TickAudio;
pub use ids::{CallUuid, IdSource, MemberId, MpcUuid, OsIds, RecordingId, SeededIds};
pub use port::{
    member_news, JoinRefused, JoinRequest, Left, MemberInput, MemberLink, MemberOutput, Membership,
    RoomExit, Rooms,
};
