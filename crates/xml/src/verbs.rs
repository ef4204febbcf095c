//! The simple verbs: `Play`, `Speak`, `Wait`, `Hangup`, `Redirect` and `PreAnswer`.

use crate::attrs::Attrs;
use crate::error::{Diagnostics, Problem};
use crate::model::{Hangup, HttpMethod, Play, PreAnswer, Redirect, Speak, Verb, Wait};
use crate::tree::{is_blank, Element, Node};
use crate::values::{self, is_xml_space, trim};

/// Most repetitions `loop` accepts (0 means "until interrupted").
pub(crate) const MAX_LOOP: u32 = 10_000;
/// Longest `<Wait length>` in seconds (one day).
pub(crate) const MAX_WAIT_SECS: u32 = 86_400;

/// SSML elements `<Speak>` may contain (the Python SDK's nestables).
pub(crate) const SSML_ELEMENTS: [&str; 11] = [
    "break", "cont", "emphasis", "lang", "p", "phoneme", "prosody", "s", "say-as", "sub", "w",
];

/// The verbs allowed inside `<PreAnswer>` (and in audio-only documents).
pub(crate) const AUDIO_VERBS: [&str; 3] = ["Play", "Speak", "Wait"];

/// The text of an element that may hold only text; child elements are errors.
pub(crate) fn text_only(element: &Element, diag: &mut Diagnostics) -> String {
    let mut text = String::new();
    for child in &element.children {
        match child {
            Node::Text(t) => text.push_str(&t.text),
            Node::Element(child) => diag.error(
                Problem::at(
                    child.offset,
                    format!(
                        "child element <{}> is not allowed: <{}> holds only text",
                        child.name, element.name
                    ),
                )
                .element(&element.name),
            ),
        }
    }
    trim(&text).to_string()
}

/// Checks that an element has neither text nor child elements.
fn empty(element: &Element, diag: &mut Diagnostics) {
    let text = text_only(element, diag);
    if !text.is_empty() {
        diag.error(
            Problem::at(element.offset, format!("<{}> takes no text", element.name))
                .element(&element.name)
                .value(&text),
        );
    }
}

/// Records a problem with an element's text.
fn bad_text(element: &Element, text: &str, invalid: values::Invalid, diag: &mut Diagnostics) {
    diag.error(
        Problem::at(element.offset, invalid.message)
            .element(&element.name)
            .value(text)
            .allowed(invalid.allowed),
    );
}

/// `<Play loop>URL</Play>`.
pub(crate) fn play(element: &Element, diag: &mut Diagnostics) -> Play {
    let attrs = Attrs::new(element, &["loop"], diag);
    let loop_count = attrs.integer("loop", 0, MAX_LOOP, diag).unwrap_or(1);
    let text = text_only(element, diag);
    let url = if text.is_empty() {
        bad_text(
            element,
            &text,
            invalid("the audio URL (element text) is required", "an http(s) URL"),
            diag,
        );
        text
    } else {
        match values::http_url(&text) {
            Ok(url) => url,
            Err(e) => {
                bad_text(element, &text, e, diag);
                text
            }
        }
    };
    Play { url, loop_count }
}

fn invalid(message: &str, allowed: &str) -> values::Invalid {
    values::Invalid {
        message: message.to_string(),
        allowed: Some(allowed.to_string()),
    }
}

/// `<Speak voice language loop>text</Speak>`, SSML flattened to its text.
pub(crate) fn speak(element: &Element, diag: &mut Diagnostics) -> Speak {
    let attrs = Attrs::new(element, &["voice", "language", "loop"], diag);
    let voice = attrs
        .get("voice", diag, values::voice)
        .unwrap_or_else(|| "WOMAN".to_string());
    let language = attrs
        .get("language", diag, values::language)
        .unwrap_or_else(|| "en-US".to_string());
    let loop_count = attrs.integer("loop", 0, MAX_LOOP, diag).unwrap_or(1);

    let mut raw = String::new();
    flatten_ssml(element, &mut raw, diag);
    // Indentation and line breaks in the document are not meant to be spoken: collapse every
    // run of whitespace to one space. Idempotent, so rendered text parses back unchanged.
    let text = raw
        .split(is_xml_space)
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if text.is_empty() {
        bad_text(
            element,
            &text,
            invalid(
                "the text to speak (element text) is required",
                "non-empty text",
            ),
            diag,
        );
    }
    Speak {
        text,
        voice,
        language,
        loop_count,
    }
}

/// Appends the text of `element`'s content to `out`; SSML children contribute their text.
/// Recursion is bounded by the tree's depth limit.
fn flatten_ssml(element: &Element, out: &mut String, diag: &mut Diagnostics) {
    for child in &element.children {
        match child {
            Node::Text(t) => out.push_str(&t.text),
            Node::Element(child) if SSML_ELEMENTS.contains(&child.name.as_str()) => {
                // A break is a pause and paragraphs/sentences are separate: keep words apart.
                let separate = matches!(child.name.as_str(), "break" | "p" | "s");
                if separate {
                    out.push(' ');
                }
                flatten_ssml(child, out, diag);
                if separate {
                    out.push(' ');
                }
            }
            Node::Element(child) => diag.error(
                Problem::at(
                    child.offset,
                    format!("unknown SSML element <{}> inside <Speak>", child.name),
                )
                .element(&child.name)
                .allowed(Some(SSML_ELEMENTS.join(", "))),
            ),
        }
    }
}

/// `<Wait length silence minSilence beep/>`.
pub(crate) fn wait(element: &Element, diag: &mut Diagnostics) -> Wait {
    let attrs = Attrs::new(element, &["length", "silence", "minSilence", "beep"], diag);
    let wait = Wait {
        length_secs: attrs.integer("length", 0, MAX_WAIT_SECS, diag).unwrap_or(1),
        silence: attrs.boolean("silence", false, diag),
        min_silence_ms: attrs.integer("minSilence", 0, u32::MAX, diag),
        beep: attrs.get("beep", diag, values::beep),
    };
    empty(element, diag);
    wait
}

/// `<Hangup reason schedule/>`.
pub(crate) fn hangup(element: &Element, diag: &mut Diagnostics) -> Hangup {
    let attrs = Attrs::new(element, &["reason", "schedule"], diag);
    let hangup = Hangup {
        reason: attrs.get("reason", diag, values::hangup_reason),
        schedule_secs: attrs.integer("schedule", 1, u32::MAX, diag),
    };
    empty(element, diag);
    hangup
}

/// `<Redirect method>URL</Redirect>`.
pub(crate) fn redirect(element: &Element, diag: &mut Diagnostics) -> Redirect {
    let attrs = Attrs::new(element, &["method"], diag);
    let method = attrs.method("method", HttpMethod::Post, diag);
    let text = text_only(element, diag);
    let url = match values::http_url(&text) {
        Ok(url) => url,
        Err(mut e) => {
            if text.is_empty() {
                e.message = "the URL to fetch (element text) is required".to_string();
            }
            bad_text(element, &text, e, diag);
            text
        }
    };
    Redirect { url, method }
}

/// `<PreAnswer>` with `Play`, `Speak` and `Wait` children.
pub(crate) fn pre_answer(element: &Element, diag: &mut Diagnostics) -> PreAnswer {
    // No attributes are defined: any given are warned about as unknown.
    Attrs::new(element, &[], diag);
    let mut verbs = Vec::new();
    for child in &element.children {
        match child {
            Node::Text(t) if is_blank(&t.text) => {}
            Node::Text(t) => diag.error(
                Problem::at(t.offset, "text is not allowed directly inside <PreAnswer>")
                    .element(&element.name)
                    .value(trim(&t.text)),
            ),
            Node::Element(child) => match audio_verb(child, diag) {
                Some(verb) => verbs.push(verb),
                None => diag.error(
                    Problem::at(
                        child.offset,
                        format!("<{}> is not allowed inside <PreAnswer>", child.name),
                    )
                    .element(&child.name)
                    .allowed(Some(AUDIO_VERBS.join(", "))),
                ),
            },
        }
    }
    PreAnswer { verbs }
}

/// Parses `element` if it is `Play`, `Speak` or `Wait`; `None` for anything else.
pub(crate) fn audio_verb(element: &Element, diag: &mut Diagnostics) -> Option<Verb> {
    match element.name.as_str() {
        "Play" => Some(Verb::Play(play(element, diag))),
        "Speak" => Some(Verb::Speak(speak(element, diag))),
        "Wait" => Some(Verb::Wait(wait(element, diag))),
        _ => None,
    }
}
