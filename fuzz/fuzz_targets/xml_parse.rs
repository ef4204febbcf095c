//! Any bytes: parsing never panics, and whatever parses renders to XML that parses back to the
//! same model.

#![no_main]

use huddle_xml::{parse, parse_audio_only, parse_bytes, render, Document, MAX_DOCUMENT_BYTES};
use libfuzzer_sys::fuzz_target;

/// Renders `document` and parses it again with `reparse`, expecting the same model.
fn round_trip(document: &Document, reparse: fn(&str) -> Result<Document, String>) {
    let xml = render(document);
    // Rendering writes every attribute, so a dense document under the limit can render over
    // it; such output is (correctly) refused for its size and there is nothing to compare.
    if xml.len() > MAX_DOCUMENT_BYTES {
        return;
    }
    match reparse(&xml) {
        Ok(again) => assert_eq!(&again, document, "round trip changed the model:\n{xml}"),
        Err(e) => panic!("rendered document does not parse: {e}\n{xml}"),
    }
}

fn errors(errors: Vec<huddle_xml::XmlError>) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = parse_bytes(data) {
        round_trip(&parsed.document, |xml| {
            parse(xml).map(|p| p.document).map_err(errors)
        });
    }
    if let Ok(parsed) = parse_audio_only(data) {
        round_trip(&parsed.document, |xml| {
            parse_audio_only(xml.as_bytes())
                .map(|p| p.document)
                .map_err(errors)
        });
    }
});
