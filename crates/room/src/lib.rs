//! The multi-party call (MPC): a sans-IO state machine ([`state::Room`]) for membership,
//! roles, hold/mute/coach, lifecycle and limits; the actor that runs it with the 20 ms mixer;
//! and the registry that implements the call flow's room port.

mod actor;
pub mod causes;
pub mod clock;
pub mod events;
pub mod journal;
mod lateness;
mod priority;
pub mod recording;
pub mod registry;
mod scheduler;
pub mod shared;
pub mod snapshot;
pub mod sounds;
pub mod state;

pub use causes::{ExitCause, TerminationCause};
pub use events::{EventName, MemberRef, RoomEvent};
pub use journal::{LiveMpc, LiveRecording, MpcJournal, RecordingKind};
pub use priority::MixerPriority;
pub use registry::{RegistryError, RoomRegistry};
pub use snapshot::{MpcSnapshot, ParticipantSnapshot};
pub use state::{
    Command, CommandError, DialMusic, Target, TrackKind, TrackRecording, TrackSource, TrackType,
};
