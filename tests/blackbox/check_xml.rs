//! `huddle check-xml PATH|-`: every problem printed, exit 1 on any, 0 on valid XML.

use std::io::Write;
use std::process::{Command, Stdio};

fn huddle() -> Command {
    Command::new(env!("CARGO_BIN_EXE_huddle"))
}

fn temp_file(name: &str, content: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("huddle-check-xml-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn valid_documents_exit_zero() {
    let path = temp_file(
        "ok.xml",
        r#"<Response><MultiPartyCall role="Agent" maxDuration="300">sales</MultiPartyCall></Response>"#,
    );
    let out = huddle().arg("check-xml").arg(&path).output().unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn every_problem_is_printed_and_the_exit_code_is_one() {
    let path = temp_file(
        "bad.xml",
        "<Response>\n  <MultiPartyCall role=\"boss\" maxDuration=\"299\">sales</MultiPartyCall>\n  <Play loop=\"x\">http://example.com/a.wav</Play>\n  <Dial>123</Dial>\n</Response>\n",
    );
    let out = huddle().arg("check-xml").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "role",
        "boss",
        "maxDuration",
        "299",
        "loop",
        "unsupported verb Dial",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert!(text.contains("line 2"), "positions are printed:\n{text}");
    assert!(text.contains("line 4"), "positions are printed:\n{text}");
}

#[test]
fn stdin_is_read_with_a_dash() {
    for (doc, code) in [
        ("<Response><Speak>Hello</Speak></Response>", 0),
        ("<Response><Speak>Hello</Response>", 1),
        ("", 1),
    ] {
        let mut child = huddle()
            .args(["check-xml", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(doc.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{doc:?}: {out:?}");
    }
}

#[test]
fn oversized_and_missing_inputs_are_errors() {
    let big = format!(
        "<Response>{}</Response>",
        "<Wait length=\"1\"/>".repeat(20_000)
    );
    let path = temp_file("big.xml", &big);
    let out = huddle().arg("check-xml").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("102400"),
        "{out:?}"
    );
    let out = huddle()
        .args(["check-xml", "/nonexistent/huddle.xml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}
