//! Plivo XML for huddle: parse and validate a `<Response>` into typed verbs ([`model`]), and
//! render the model back into XML.

pub mod model;

pub use model::*;
