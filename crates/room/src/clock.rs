//! Plivo's timestamp format, kept where every request to a customer is built.

pub use huddle_events::clock::plivo_timestamp;
