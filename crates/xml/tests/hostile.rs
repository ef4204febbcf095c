//! Hostile and broken input: clear errors, bounded time, no panics.

mod common;

use std::time::{Duration, Instant};

use common::{errors, one_error};
use huddle_xml::{parse, parse_audio_only, parse_bytes, render, MAX_DEPTH, MAX_DOCUMENT_BYTES};

/// Generous bound for "fast": debug build on a slow, shared CI machine.
const QUICK: Duration = Duration::from_secs(2);

fn timed<T>(f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    assert!(start.elapsed() < QUICK, "took {:?}", start.elapsed());
    out
}

#[test]
fn billion_laughs() {
    let mut xml =
        String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n");
    for i in 1..10 {
        let prev = if i == 1 {
            "lol".to_string()
        } else {
            format!("lol{}", i - 1)
        };
        xml.push_str(&format!(
            " <!ENTITY lol{i} \"{}\">\n",
            format!("&{prev};").repeat(10)
        ));
    }
    xml.push_str("]>\n<Response><Speak>&lol9;</Speak></Response>");
    let errs = timed(|| parse_bytes(xml.as_bytes())).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].message.contains("DTDs are not allowed"),
        "{}",
        errs[0]
    );
    assert_eq!((errs[0].line, errs[0].column), (2, 1));

    // A DOCTYPE anywhere, not only in the prolog.
    let e = one_error("<Response><!DOCTYPE x><Play>https://a/b</Play></Response>");
    assert!(e.message.contains("DTDs are not allowed"), "{e}");
    // And an entity without a DTD is simply unknown.
    let e = one_error("<Response><Speak>ha &lol9;</Speak></Response>");
    assert!(e.message.contains("unknown entity `&lol9;`"), "{e}");
    assert_eq!(
        e.allowed.as_deref().map(|a| a.contains("&amp;")),
        Some(true)
    );
}

#[test]
fn oversized_documents() {
    let ten_mb = vec![b' '; 10 * 1024 * 1024];
    let errs = timed(|| parse_bytes(&ten_mb)).unwrap_err();
    assert_eq!(errs.len(), 1);
    let message = errs[0].to_string();
    assert!(message.contains("10485760 bytes"), "{message}");
    assert!(message.contains("102400"), "{message}");
    assert!(parse_audio_only(&ten_mb).is_err());

    // The same through parse(&str), and the limit itself.
    let body = "<Response><Speak>x</Speak></Response>";
    let at_limit = format!("{body}{}", " ".repeat(MAX_DOCUMENT_BYTES - body.len()));
    assert!(parse(&at_limit).is_ok());
    let over = format!("{at_limit} ");
    assert!(errors(&over)[0].message.contains("102401 bytes"));
    // Invalid UTF-8 past the limit does not matter: the size is checked first.
    let mut big = vec![0xFF; MAX_DOCUMENT_BYTES + 1];
    big[0] = b'<';
    assert!(parse_bytes(&big).unwrap_err()[0].message.contains("limit"));
}

#[test]
fn deep_nesting() {
    // Short names keep 10,000 levels under the size limit (the size check would win otherwise).
    let depth = 10_000;
    let xml = format!(
        "<Response>{}{}</Response>",
        "<s>".repeat(depth),
        "</s>".repeat(depth)
    );
    assert!(xml.len() <= MAX_DOCUMENT_BYTES);
    let errs = timed(|| parse(&xml)).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].message.contains("nested more than 32 deep"),
        "{}",
        errs[0]
    );
    // Unclosed too: still one error, no stack growth.
    let errs = parse(&"<Response>".repeat(depth)).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");

    // Exactly MAX_DEPTH levels is fine: Response, Speak and SSML inside.
    let inner = MAX_DEPTH - 2;
    let ok_xml = format!(
        "<Response><Speak>{}hi{}</Speak></Response>",
        "<s>".repeat(inner),
        "</s>".repeat(inner)
    );
    assert!(parse(&ok_xml).is_ok());
    let too_deep = format!(
        "<Response><Speak>{}hi{}</Speak></Response>",
        "<s>".repeat(inner + 1),
        "</s>".repeat(inner + 1)
    );
    assert!(parse(&too_deep).is_err());
}

#[test]
fn broken_xml_gives_clear_errors() {
    let cases: &[(&[u8], &str)] = &[
        (b"<Response><Play>https://a/b", "<Play>: it is never closed"),
        (
            b"<Response><Play",
            "malformed XML: syntax error: tag not closed",
        ),
        (
            b"<Response><Play>https://a/b</Speak></Response>",
            "expected `</Play>`, but `</Speak>` was found",
        ),
        (
            b"<Response></Response></Play>",
            "does not match any open tag",
        ),
        (
            b"<Response><Play loop=2>https://a/b</Play></Response>",
            "attribute value must be in quotes",
        ),
        (
            b"<Response><Play loop>https://a/b</Play></Response>",
            "attribute name without `=value`",
        ),
        (
            b"<Response><Play loop=\"2>https://a/b</Play></Response>",
            "malformed XML",
        ),
        (b"<Response>\xff\xfe</Response>", "invalid UTF-8 at byte 10"),
        (
            b"<Response>\0</Response>",
            "character U+0000 is not allowed",
        ),
        (
            b"<Response><Speak>a\x01b</Speak></Response>",
            "character U+0001 is not allowed",
        ),
        (
            b"<Response><Speak>&#0;</Speak></Response>",
            "character reference",
        ),
        (
            b"<Response><Speak>&#1;</Speak></Response>",
            "U+0001, which XML does not allow",
        ),
        (
            b"<Response><Speak>&#xD800;</Speak></Response>",
            "character reference",
        ),
        (
            b"<Response><Speak>fish & chips</Speak></Response>",
            "malformed XML",
        ),
        (
            b"<Response><Speak>&nbsp;</Speak></Response>",
            "unknown entity `&nbsp;`",
        ),
        (
            b"<Response><Play loop=\"&foo;\">https://a/b</Play></Response>",
            "bad entity or character reference",
        ),
        (b"<Response><!-- unterminated", "comment not closed"),
        (b"<Response><![CDATA[x</Response>", "CDATA not closed"),
        (
            b"<Response><Speak>x</Speak>",
            "<Response>: it is never closed",
        ),
    ];
    for &(input, fragment) in cases {
        let errs = parse_bytes(input).unwrap_err();
        let shown = common::list(&errs);
        assert!(
            shown.contains(fragment),
            "{:?}: {shown}",
            String::from_utf8_lossy(input)
        );
    }
    // Positions point at the problem.
    let e = parse_bytes(b"<Response>\n  <Speak>ok \xff</Speak></Response>")
        .unwrap_err()
        .remove(0);
    assert_eq!((e.line, e.column), (2, 13), "{e}");
    let e = one_error("<Response>\n<Play loop=2>https://a/b</Play></Response>");
    assert_eq!((e.line, e.column), (2, 12), "{e}");
}

#[test]
fn big_but_valid_documents_are_linear() {
    // ~100 KB of verbs, of entity references, and of attributes on one element.
    let verbs = format!("<Response>{}</Response>", "<Wait/>".repeat(14_000));
    let parsed = timed(|| parse(&verbs)).unwrap();
    assert_eq!(parsed.document.verbs.len(), 14_000);

    let refs = format!(
        "<Response><Speak>{}</Speak></Response>",
        "&amp;".repeat(19_000)
    );
    timed(|| parse(&refs)).unwrap();

    let attrs: String = (0..9_000).map(|i| format!(" a{i}=\"\"")).collect();
    let many = format!("<Response><Wait{attrs}/></Response>");
    let parsed = timed(|| parse(&many)).unwrap();
    assert_eq!(parsed.warnings.len(), 9_000);

    // Every one of many errors is reported.
    let bad = format!("<Response>{}</Response>", "<Dial/>".repeat(14_000));
    assert_eq!(timed(|| parse(&bad)).unwrap_err().len(), 14_000);
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const SEED_DOC: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <PreAnswer><Speak voice="MAN">Hi &amp; welcome<break/>now</Speak><Wait length="2"/></PreAnswer>
  <Play loop="2">https://a.example/x.mp3</Play>
  <MultiPartyCall role="Agent" maxDuration="600" statusCallbackUrl="https://cb/" statusCallbackEvents="mpc-state-changes, participant-speak-events" enterSound="none" relayDtmfInputs="true" aiAgentStreamContentType="audio/x-l16;rate=16000">
    room-1
  </MultiPartyCall>
  <!-- comment -->
  <Hangup reason="busy" schedule="5"/>
  <Redirect method="GET">https://a.example/next</Redirect>
</Response>"#;

/// Bytes worth inserting: markup characters make the parser take other paths.
const INTERESTING: &[u8] = b"<>/&;\"'=!?[]-#x0 \n\xff\x00\xc3";

#[test]
fn mutations_never_panic() {
    let original = SEED_DOC.as_bytes();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut accepted, mut rejected) = (0, 0);
    for _ in 0..20_000 {
        let mut doc = original.to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(doc.len() + 1);
            match rng.below(4) {
                0 if at < doc.len() => doc[at] ^= 1 << rng.below(8),
                1 => {
                    let byte = if rng.below(2) == 0 {
                        INTERESTING[rng.below(INTERESTING.len())]
                    } else {
                        rng.next() as u8
                    };
                    doc.insert(at, byte);
                }
                2 if at < doc.len() => {
                    let end = (at + 1 + rng.below(8)).min(doc.len());
                    doc.drain(at..end);
                }
                _ => {
                    // Duplicate a slice somewhere else: repeats tags and attributes.
                    let start = rng.below(doc.len());
                    let end = (start + 1 + rng.below(16)).min(doc.len());
                    let piece = doc[start..end].to_vec();
                    let at = rng.below(doc.len() + 1);
                    doc.splice(at..at, piece);
                }
            }
        }
        let _ = parse_audio_only(&doc);
        match parse_bytes(&doc) {
            Ok(parsed) => {
                accepted += 1;
                let again = parse(&render(&parsed.document)).expect("rendered documents parse");
                assert_eq!(
                    again.document,
                    parsed.document,
                    "{}",
                    String::from_utf8_lossy(&doc)
                );
            }
            Err(errs) => {
                rejected += 1;
                assert!(!errs.is_empty());
                assert!(errs
                    .windows(2)
                    .all(|w| (w[0].line, w[0].column) <= (w[1].line, w[1].column)));
            }
        }
    }
    // The loop exercised both outcomes.
    assert!(
        accepted > 100 && rejected > 100,
        "accepted {accepted}, rejected {rejected}"
    );
}
