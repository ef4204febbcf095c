//! Error types of the SIP crate.

use thiserror::Error;

/// What is wrong with a message, so that callers decide on the kind (505 or 400, say) and never
/// on the wording, which is for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParseErrorKind {
    /// The message ends early: no empty line after the headers, or fewer body bytes than its
    /// Content-Length.
    Truncated,
    /// The Content-Length header is not a number or appears with different values.
    ContentLength,
    /// The header section is not UTF-8.
    Encoding,
    /// The request or status line is malformed: spacing, method, Request-URI or status code.
    StartLine,
    /// A SIP version other than 2.0 (a request gets 505 Version Not Supported).
    VersionNotSupported,
    /// A header line cannot be read: no colon, a bad name, a stray continuation, too many lines.
    HeaderLine,
    /// A header value does not follow its grammar (Via, CSeq, From/To/Contact, Max-Forwards).
    HeaderValue,
    /// A mandatory header (Via, From, To, Call-ID, CSeq) is missing, empty or repeated.
    MandatoryHeader,
    /// A digest challenge we cannot answer.
    Challenge,
}

/// A message that could not be parsed or is not acceptable; the text is safe to log
/// (untrusted input is truncated) and to put in a reason phrase.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{reason}")]
pub struct ParseError {
    /// What kind of problem it is.
    pub kind: ParseErrorKind,
    /// Human-readable reason.
    pub reason: String,
}

impl ParseError {
    /// Creates an error of a kind with a reason.
    pub fn new(kind: ParseErrorKind, reason: impl Into<String>) -> Self {
        ParseError {
            kind,
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
