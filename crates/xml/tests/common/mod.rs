//! Helpers shared by the integration tests.
#![allow(dead_code)]

use huddle_xml::{parse, MultiPartyCall, Parsed, Verb, XmlError};

/// `<Response>` around one `<MultiPartyCall {attrs}>{body}</MultiPartyCall>`.
pub fn mpc_doc(attrs: &str, body: &str) -> String {
    format!("<Response><MultiPartyCall {attrs}>{body}</MultiPartyCall></Response>")
}

/// Parses a document that must succeed, showing the errors otherwise.
pub fn ok(xml: &str) -> Parsed {
    match parse(xml) {
        Ok(parsed) => parsed,
        Err(errors) => panic!("expected {xml:?} to parse, got:\n{}", list(&errors)),
    }
}

/// Parses a document that must fail.
pub fn errors(xml: &str) -> Vec<XmlError> {
    match parse(xml) {
        Ok(parsed) => panic!("expected {xml:?} to fail, got {:?}", parsed.document),
        Err(errors) => errors,
    }
}

/// Parses a document that must fail with exactly one error.
pub fn one_error(xml: &str) -> XmlError {
    let errors = errors(xml);
    assert_eq!(
        errors.len(),
        1,
        "expected one error for {xml:?}, got:\n{}",
        list(&errors)
    );
    errors.into_iter().next().unwrap()
}

/// The single verb of a successful document.
pub fn only_verb(xml: &str) -> Verb {
    let parsed = ok(xml);
    assert_eq!(parsed.document.verbs.len(), 1, "{xml}");
    parsed.document.verbs.into_iter().next().unwrap()
}

/// The `<MultiPartyCall role="Agent" {attrs}>room</MultiPartyCall>` model.
pub fn mpc(attrs: &str) -> MultiPartyCall {
    match only_verb(&mpc_doc(&format!(r#"role="Agent" {attrs}"#), "room")) {
        Verb::MultiPartyCall(m) => *m,
        other => panic!("not an MPC: {other:?}"),
    }
}

/// The one error of `<MultiPartyCall role="Agent" {attrs}>room</MultiPartyCall>`.
pub fn mpc_error(attrs: &str) -> XmlError {
    one_error(&mpc_doc(&format!(r#"role="Agent" {attrs}"#), "room"))
}

/// Errors one per line, for assertion messages.
pub fn list(errors: &[XmlError]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}
