//! Entry points: size and encoding checks, then the `<Response>` children.

use crate::conference::conference;
use crate::error::{Diagnostics, Problem, XmlError};
use crate::ivr;
use crate::model::{Document, Verb};
use crate::mpc::multi_party_call;
use crate::position::Locator;
use crate::tree::{self, is_blank, Element, Node};
use crate::values::trim;
use crate::verbs::{self, AUDIO_VERBS};
use crate::MAX_DOCUMENT_BYTES;

/// A successful parse plus non-fatal warnings (unknown attributes are warned and ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The verbs, with every default applied.
    pub document: Document,
    /// Things ignored on the way (unknown attributes, skipped verbs), sorted by position.
    pub warnings: Vec<XmlError>,
}

/// Plivo verbs we recognise but do not run.
const UNSUPPORTED_VERBS: [&str; 2] = ["Dial", "Message"];

/// Which verbs a document may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A call's `<Response>`: every supported verb.
    Call,
    /// Wait/hold music, enter/exit sounds, recording audio: only Play, Speak and Wait are
    /// honoured; other elements are skipped with a warning (mpc-xml.md §6.1).
    AudioOnly,
}

/// Parses a whole `<Response>`; on failure returns every error found in the document (not just
/// the first), sorted by position.
pub fn parse(input: &str) -> Result<Parsed, Vec<XmlError>> {
    parse_str(input, Mode::Call)
}

/// Same as [`parse`] from bytes: rejects documents over [`MAX_DOCUMENT_BYTES`] (without
/// looking at their content) and non-UTF-8 input.
pub fn parse_bytes(input: &[u8]) -> Result<Parsed, Vec<XmlError>> {
    parse_str(utf8(input)?, Mode::Call)
}

/// For wait/hold music, enter/exit sound and recording-audio documents: only `Play`, `Speak`
/// and `Wait` are honoured; any other verb (known or unknown) is skipped with a warning instead
/// of an error (mpc-xml.md §6.1). Malformed XML still errors.
pub fn parse_audio_only(input: &[u8]) -> Result<Parsed, Vec<XmlError>> {
    parse_str(utf8(input)?, Mode::AudioOnly)
}

/// Size limit first (cheap, and before any scan), then UTF-8.
fn utf8(input: &[u8]) -> Result<&str, Vec<XmlError>> {
    check_size(input.len())?;
    std::str::from_utf8(input).map_err(|e| {
        let valid = e.valid_up_to();
        // The prefix up to the bad byte is valid by definition; use it to place the error.
        let prefix = std::str::from_utf8(&input[..valid]).unwrap_or_default();
        let (line, column) = Locator::new(prefix).locate(valid);
        vec![XmlError {
            line,
            column,
            element: None,
            attribute: None,
            value: None,
            allowed: None,
            message: format!("invalid UTF-8 at byte {valid}: documents must be UTF-8"),
        }]
    })
}

fn check_size(len: usize) -> Result<(), Vec<XmlError>> {
    if len <= MAX_DOCUMENT_BYTES {
        return Ok(());
    }
    Err(vec![XmlError {
        line: 1,
        column: 1,
        element: None,
        attribute: None,
        value: None,
        allowed: Some(format!("at most {MAX_DOCUMENT_BYTES} bytes")),
        message: format!(
            "document is {len} bytes, over the {MAX_DOCUMENT_BYTES}-byte (100 KB) limit"
        ),
    }])
}

fn parse_str(input: &str, mode: Mode) -> Result<Parsed, Vec<XmlError>> {
    check_size(input.len())?;
    // A UTF-8 byte order mark is harmless; quick-xml would see it as text before the root.
    let input = input.strip_prefix('\u{FEFF}').unwrap_or(input);
    let mut diag = Diagnostics::default();
    let document = tree::build(input, &mut diag).map(|root| response(&root, mode, &mut diag));
    let warnings = diag.finish(input)?;
    Ok(Parsed {
        document: document.unwrap_or_default(),
        warnings,
    })
}

/// The children of `<Response>`.
fn response(root: &Element, mode: Mode, diag: &mut Diagnostics) -> Document {
    for attr in &root.attrs {
        diag.error(
            Problem::at(attr.offset, "<Response> takes no attributes")
                .element(&root.name)
                .attribute(&attr.name),
        );
    }
    let mut verbs = Vec::new();
    for child in &root.children {
        match child {
            Node::Text(t) if is_blank(&t.text) => {}
            Node::Text(t) => diag.error(
                Problem::at(t.offset, "text is not allowed directly inside <Response>")
                    .element(&root.name)
                    .value(trim(&t.text)),
            ),
            Node::Element(element) => {
                let verb = match mode {
                    Mode::Call => verb(element, diag),
                    Mode::AudioOnly => audio_only_verb(element, diag),
                };
                verbs.extend(verb);
            }
        }
    }
    Document { verbs }
}

/// A child of a call's `<Response>`.
fn verb(element: &Element, diag: &mut Diagnostics) -> Option<Verb> {
    let name = element.name.as_str();
    let verb = match name {
        "Play" | "Speak" | "Wait" => return verbs::audio_verb(element, diag),
        "Hangup" => Verb::Hangup(verbs::hangup(element, diag)),
        "Redirect" => Verb::Redirect(verbs::redirect(element, diag)),
        "PreAnswer" => Verb::PreAnswer(verbs::pre_answer(element, diag)),
        "MultiPartyCall" => Verb::MultiPartyCall(Box::new(multi_party_call(element, diag))),
        "GetDigits" => Verb::GetDigits(Box::new(ivr::get_digits(element, diag))),
        "GetInput" => Verb::GetInput(Box::new(ivr::get_input(element, diag))),
        "DTMF" => Verb::Dtmf(ivr::dtmf(element, diag)),
        "Record" => Verb::Record(Box::new(ivr::record(element, diag))),
        "Conference" => Verb::Conference(Box::new(conference(element, diag))),
        "Stream" => Verb::Stream(Box::new(ivr::stream(element, diag))),
        _ => {
            let message = if UNSUPPORTED_VERBS.contains(&name) {
                format!("unsupported verb {name}: this server does not run it")
            } else {
                format!("unknown element {name} (element names are case-sensitive)")
            };
            diag.error(Problem::at(element.offset, message).element(name));
            return None;
        }
    };
    Some(verb)
}

/// A child of an audio-only `<Response>`: Play, Speak and Wait; the rest skipped.
fn audio_only_verb(element: &Element, diag: &mut Diagnostics) -> Option<Verb> {
    let verb = verbs::audio_verb(element, diag);
    if verb.is_none() {
        diag.warn(
            Problem::at(
                element.offset,
                format!(
                    "<{}> skipped: audio documents honour only {}",
                    element.name,
                    AUDIO_VERBS.join(", ")
                ),
            )
            .element(&element.name),
        );
    }
    verb
}
