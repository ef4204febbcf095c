//! Plivo XML for huddle: parse and validate a `<Response>` into typed verbs ([`model`]), and
//! render the model back into XML.
//!
//! Parsing reports every problem in a document at once ([`XmlError`], sorted by position) and
//! is safe on hostile input: no DTDs or custom entities, a size limit, a depth limit, and no
//! panics.

#![warn(missing_docs)]

mod attrs;
mod conference;
mod error;
mod ivr;
pub mod model;
mod mpc;
mod parse;
mod position;
mod render;
mod tree;
mod values;
mod verbs;

pub use error::XmlError;
pub use model::*;
pub use parse::{parse, parse_audio_only, parse_bytes, Parsed};
pub use render::render;

/// Largest document accepted: Plivo's 100 KB limit on an XML response.
pub const MAX_DOCUMENT_BYTES: usize = 100 * 1024;

/// Deepest element nesting accepted (`<Response>` is depth 1).
pub const MAX_DEPTH: usize = 32;
