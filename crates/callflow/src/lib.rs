//! One call leg's life: routing, fetching its XML, running the verbs, and handing
//! MultiPartyCall to the room service.

pub mod calls;
pub mod cause;
pub mod dial;
pub mod executor;
pub mod fetch;
pub mod leg;
pub mod manager;
pub mod media_setup;
pub mod playback;
pub mod room_port;
pub mod router;

pub use calls::{CallInfo, Calls};
pub use cause::HangupCause;
pub use dial::{dial_participant, DialError, DialRace, DialRequest};
pub use manager::{run, CallContext, MediaSettings};
pub use room_port::{
    member_news_epoch, JoinRefused, JoinRequest, Left, MemberInput, MemberLink, MemberOutput,
    Membership, RoomExit, Rooms, TickAudio,
};
pub use router::{RouteAction, RouteMatch, RouteRule, Router};
