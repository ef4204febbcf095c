//! Error types of the SIP crate.

use thiserror::Error;

/// A message that could not be parsed or is not acceptable; the text is safe to log
/// (untrusted input is truncated) and to put in a reason phrase.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{reason}")]
pub struct ParseError {
    /// Human-readable reason.
    pub reason: String,
}

impl ParseError {
    /// Creates an error with a reason.
    pub fn new(reason: impl Into<String>) -> Self {
        ParseError {
            reason: reason.into(),
        }
    }
}

/// Errors of the stream framer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FramingError {
    /// The headers or the whole message exceed the size cap.
    #[error("message larger than {limit} bytes")]
    TooLarge {
        /// The cap.
        limit: usize,
    },
    /// The Content-Length header is unusable, so the stream cannot be re-synchronised.
    #[error("bad Content-Length: {0}")]
    BadContentLength(String),
}
