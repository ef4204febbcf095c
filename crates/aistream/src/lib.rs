//! The ai-agent stream (spec/ai-stream.md, design.md "AI agents"): a member of an MPC whose
//! voice is what a WebSocket AI service sends (`playAudio`) and whose ears are the service's
//! `media` frames of the member's own mix-minus.
//!
//! - [`protocol`]: the JSON messages both ways, strictly checked.
//! - [`audio`]: the three content types and resampling with rubato.
//! - [`queue`]: the bounded, allocation-free frame queues between the mixing thread and the
//!   stream's task: the room never waits for the service.
//! - [`stream`]: the task that dials the service (signed like every request huddle makes),
//!   streams, reconnects with backoff and sends the stream's status callbacks.
//! - [`member`]: joining the room through `roomport::Rooms`, like any call.

pub mod audio;
pub mod member;
pub mod protocol;
pub mod queue;
pub mod settings;
pub mod stream;

pub use audio::{Encoding, MediaFormat};
pub use member::{join, Finished, StreamMember};
pub use settings::{SettingsError, StreamSettings};
pub use stream::{Backoff, StreamDeps, StreamEnd};
