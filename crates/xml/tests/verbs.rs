//! Play, Speak, Wait, Hangup, Redirect, PreAnswer; Response-level rules; several errors at once;
//! audio-only documents.

mod common;

use common::{errors, list, ok, one_error, only_verb};
use huddle_xml::{
    parse_audio_only, Hangup, HangupReason, HttpMethod, Play, PreAnswer, Redirect, Speak, Verb,
    Wait,
};

fn doc(body: &str) -> String {
    format!("<Response>{body}</Response>")
}

fn play(url: &str, loop_count: u32) -> Verb {
    Verb::Play(Play {
        url: url.into(),
        loop_count,
    })
}

fn speak(text: &str, voice: &str, language: &str, loop_count: u32) -> Verb {
    Verb::Speak(Speak {
        text: text.into(),
        voice: voice.into(),
        language: language.into(),
        loop_count,
    })
}

fn wait(length_secs: u32, silence: bool, min_silence_ms: Option<u32>, beep: Option<&str>) -> Verb {
    Verb::Wait(Wait {
        length_secs,
        silence,
        min_silence_ms,
        beep: beep.map(String::from),
    })
}

/// (document body, expected verb)
fn check_ok(cases: &[(&str, Verb)]) {
    for (body, want) in cases {
        assert_eq!(&only_verb(&doc(body)), want, "{body}");
    }
}

/// (document body, element, attribute, message or allowed fragment)
fn check_err(cases: &[(&str, &str, Option<&str>, &str)]) {
    for &(body, element, attribute, fragment) in cases {
        let e = one_error(&doc(body));
        assert_eq!(e.element.as_deref(), Some(element), "{body}: {e}");
        assert_eq!(e.attribute.as_deref(), attribute, "{body}: {e}");
        assert!(
            e.to_string().contains(fragment),
            "{body}: {e} lacks {fragment:?}"
        );
    }
}

#[test]
fn play_cases() {
    check_ok(&[
        (
            "<Play>https://a.example/x.mp3</Play>",
            play("https://a.example/x.mp3", 1),
        ),
        (
            "<Play loop=\"0\">\n  http://a/x.wav\n</Play>",
            play("http://a/x.wav", 0),
        ),
        (
            "<Play LOOP=\"10000\">https://a/x?y=1&amp;z=2</Play>",
            play("https://a/x?y=1&z=2", 10000),
        ),
        (
            "<Play><![CDATA[https://a/b.mp3]]></Play>",
            play("https://a/b.mp3", 1),
        ),
    ]);
    check_err(&[
        (
            "<Play loop=\"10001\">https://a/x</Play>",
            "Play",
            Some("loop"),
            "0 to 10000",
        ),
        (
            "<Play loop=\"-1\">https://a/x</Play>",
            "Play",
            Some("loop"),
            "0 to 10000",
        ),
        (
            "<Play></Play>",
            "Play",
            None,
            "audio URL (element text) is required",
        ),
        ("<Play/>", "Play", None, "required"),
        (
            "<Play>ftp://a/x.mp3</Play>",
            "Play",
            None,
            "text \"ftp://a/x.mp3\"",
        ),
        (
            "<Play>https://a/x<Speak>hi</Speak></Play>",
            "Play",
            None,
            "child element <Speak>",
        ),
    ]);
}

#[test]
fn speak_cases() {
    check_ok(&[
        ("<Speak>Hello</Speak>", speak("Hello", "WOMAN", "en-US", 1)),
        (
            "<Speak voice=\"MAN\" language=\"fr-FR\" loop=\"2\">Bonjour</Speak>",
            speak("Bonjour", "MAN", "fr-FR", 2),
        ),
        (
            "<Speak voice=\"Polly.Joanna\">  Welcome &amp; thanks  </Speak>",
            speak("Welcome & thanks", "Polly.Joanna", "en-US", 1),
        ),
        (
            "<Speak voice=\"woman\">Press<break time=\"1s\"/>one. <emphasis level=\"strong\">Now</emphasis> <say-as interpret-as=\"digits\">123</say-as></Speak>",
            speak("Press one. Now 123", "woman", "en-US", 1),
        ),
        (
            "<Speak><p><s>One</s><s>two</s></p><prosody rate=\"slow\"><w>three</w></prosody></Speak>",
            speak("One two three", "WOMAN", "en-US", 1),
        ),
        (
            "<Speak>\n    Line one\n    line &lt;two&gt; &#38; &#x41;\n</Speak>",
            speak("Line one line <two> & A", "WOMAN", "en-US", 1),
        ),
        ("<Speak language=\"cmn-Hans-CN\" loop=\"0\">x</Speak>", speak("x", "WOMAN", "cmn-Hans-CN", 0)),
    ]);
    check_err(&[
        ("<Speak></Speak>", "Speak", None, "text to speak"),
        (
            "<Speak>  <break/>  </Speak>",
            "Speak",
            None,
            "text to speak",
        ),
        (
            "<Speak voice=\"robot\">x</Speak>",
            "Speak",
            Some("voice"),
            "WOMAN, MAN, Polly.<Name>",
        ),
        (
            "<Speak language=\"en_US\">x</Speak>",
            "Speak",
            Some("language"),
            "language tag",
        ),
        (
            "<Speak loop=\"x\">x</Speak>",
            "Speak",
            Some("loop"),
            "0 to 10000",
        ),
        (
            "<Speak>hi <bold>there</bold></Speak>",
            "bold",
            None,
            "unknown SSML element <bold>",
        ),
        (
            "<Speak>hi <Play>https://a/b</Play></Speak>",
            "Play",
            None,
            "unknown SSML element",
        ),
    ]);
}

#[test]
fn wait_cases() {
    check_ok(&[
        ("<Wait/>", wait(1, false, None, None)),
        ("<Wait length=\"0\"/>", wait(0, false, None, None)),
        (
            "<Wait length=\"86400\" silence=\"TRUE\" minSilence=\"3000\"/>",
            wait(86400, true, Some(3000), None),
        ),
        (
            "<Wait beep=\"true\"></Wait>",
            wait(1, false, None, Some("true")),
        ),
        (
            "<Wait beep=\"duration=300,inter_silence=50,intra_silence=500,threshold=256\"/>",
            wait(
                1,
                false,
                None,
                Some("duration=300,inter_silence=50,intra_silence=500,threshold=256"),
            ),
        ),
        ("<Wait>  </Wait>", wait(1, false, None, None)),
    ]);
    check_err(&[
        (
            "<Wait length=\"86401\"/>",
            "Wait",
            Some("length"),
            "0 to 86400",
        ),
        (
            "<Wait silence=\"maybe\"/>",
            "Wait",
            Some("silence"),
            "true, false",
        ),
        (
            "<Wait minSilence=\"1.5\"/>",
            "Wait",
            Some("minSilence"),
            "whole number",
        ),
        ("<Wait beep=\"loud\"/>", "Wait", Some("beep"), "key=value"),
        (
            "<Wait beep=\"volume=3\"/>",
            "Wait",
            Some("beep"),
            "unknown beep parameter `volume`",
        ),
        ("<Wait>5</Wait>", "Wait", None, "takes no text"),
        (
            "<Wait><Play>https://a/b</Play></Wait>",
            "Wait",
            None,
            "child element <Play>",
        ),
    ]);
}

#[test]
fn hangup_cases() {
    check_ok(&[
        ("<Hangup/>", Verb::Hangup(Hangup::default())),
        (
            "<Hangup reason=\"busy\"/>",
            Verb::Hangup(Hangup {
                reason: Some(HangupReason::Busy),
                schedule_secs: None,
            }),
        ),
        (
            "<Hangup reason=\"REJECTED\" schedule=\"60\"></Hangup>",
            Verb::Hangup(Hangup {
                reason: Some(HangupReason::Rejected),
                schedule_secs: Some(60),
            }),
        ),
    ]);
    check_err(&[
        (
            "<Hangup reason=\"gone\"/>",
            "Hangup",
            Some("reason"),
            "rejected, busy",
        ),
        (
            "<Hangup schedule=\"0\"/>",
            "Hangup",
            Some("schedule"),
            "from 1",
        ),
        ("<Hangup>bye</Hangup>", "Hangup", None, "takes no text"),
    ]);
}

#[test]
fn redirect_cases() {
    check_ok(&[
        (
            "<Redirect>https://a/next.xml</Redirect>",
            Verb::Redirect(Redirect {
                url: "https://a/next.xml".into(),
                method: HttpMethod::Post,
            }),
        ),
        (
            "<Redirect method=\"get\"> https://a/next </Redirect>",
            Verb::Redirect(Redirect {
                url: "https://a/next".into(),
                method: HttpMethod::Get,
            }),
        ),
    ]);
    check_err(&[
        (
            "<Redirect method=\"PUT\">https://a/</Redirect>",
            "Redirect",
            Some("method"),
            "GET, POST",
        ),
        (
            "<Redirect></Redirect>",
            "Redirect",
            None,
            "URL to fetch (element text) is required",
        ),
        (
            "<Redirect>/relative</Redirect>",
            "Redirect",
            None,
            "http:// or https://",
        ),
    ]);
}

#[test]
fn pre_answer_cases() {
    check_ok(&[
        ("<PreAnswer/>", Verb::PreAnswer(PreAnswer::default())),
        (
            "<PreAnswer>\n <Speak>Hi</Speak>\n <Play>https://a/b</Play>\n <Wait length=\"2\"/>\n</PreAnswer>",
            Verb::PreAnswer(PreAnswer {
                verbs: vec![speak("Hi", "WOMAN", "en-US", 1), play("https://a/b", 1), wait(2, false, None, None)],
            }),
        ),
    ]);
    for child in [
        "<Hangup/>",
        "<Redirect>https://a/</Redirect>",
        "<MultiPartyCall role=\"Agent\">r</MultiPartyCall>",
        "<Dial>1</Dial>",
        "<play>x</play>",
        "<PreAnswer/>",
    ] {
        let e = one_error(&doc(&format!("<PreAnswer>{child}</PreAnswer>")));
        assert!(
            e.message.contains("is not allowed inside <PreAnswer>"),
            "{e}"
        );
        assert_eq!(e.allowed.as_deref(), Some("Play, Speak, Wait"), "{e}");
        assert!(
            child.starts_with(&format!("<{}", e.element.as_deref().unwrap_or("?"))),
            "{e}"
        );
    }
    check_err(&[(
        "<PreAnswer>hello</PreAnswer>",
        "PreAnswer",
        None,
        "text is not allowed",
    )]);
    // Attributes are not defined: warned and ignored.
    let parsed = ok(&doc("<PreAnswer x=\"1\"/>"));
    assert_eq!(parsed.warnings.len(), 1);
}

#[test]
fn response_rules() {
    let cases: &[(&str, &str)] = &[
        (
            "<Response><Dial>123</Dial></Response>",
            "unsupported verb Dial",
        ),
        (
            "<Response><Message>m</Message></Response>",
            "unsupported verb Message",
        ),
        (
            "<Response><play>https://a/b</play></Response>",
            "unknown element play",
        ),
        ("<Response><Foo/></Response>", "unknown element Foo"),
        (
            "<Response>hello</Response>",
            "text is not allowed directly inside <Response>",
        ),
        (
            "<Response version=\"1\"/>",
            "<Response> takes no attributes",
        ),
        ("<response/>", "root element must be <Response>"),
        ("", "no <Response> element"),
        ("<!-- only a comment -->", "no <Response> element"),
        ("<Response/><Response/>", "content after </Response>"),
        ("<Response/>trailing", "text outside <Response>"),
    ];
    for &(xml, fragment) in cases {
        let e = one_error(xml);
        assert!(e.message.contains(fragment), "{xml}: {e}");
    }
    let e = one_error("<Response><Dial>123</Dial></Response>");
    assert!(e.message.starts_with("unsupported verb Dial"), "{e}");
    assert_eq!(e.element.as_deref(), Some("Dial"));
    assert_eq!((e.line, e.column), (1, 11));
}

#[test]
fn every_error_is_reported_with_its_position() {
    let xml = "<Response>\n  <MultiPartyCall role=\"Agent\" maxDuration=\"5\">a</MultiPartyCall>\n  <Play loop=\"x\">https://a/b</Play>\n  <Dial>1</Dial>\n\t<Wait length=\"-2\" silence=\"no\"/>\n  <Play>https://ok/</Play>\n  <MultiPartyCall>\n  </MultiPartyCall>\n</Response>";
    let errs = errors(xml);
    let got: Vec<(u32, u32, Option<&str>)> = errs
        .iter()
        .map(|e| (e.line, e.column, e.attribute.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            (2, 32, Some("maxDuration")),
            (3, 9, Some("loop")),
            (4, 3, None),
            (5, 8, Some("length")),
            (5, 20, Some("silence")),
            (7, 3, None),
            (7, 3, None),
        ],
        "{}",
        list(&errs)
    );
    assert!(errs[2].message.starts_with("unsupported verb Dial"));
    // The empty MPC: no name and no role, both reported.
    assert!(errs[5].message.contains("MPC name"), "{}", errs[5]);
    assert!(
        errs[6].message.contains("`role` is required"),
        "{}",
        errs[6]
    );
    assert_eq!(
        errs[0].to_string(),
        "line 2, column 32: <MultiPartyCall> attribute `maxDuration` = \"5\": out of range (allowed: 300 to 28800)"
    );
}

#[test]
fn columns_count_characters() {
    let e = one_error("<Response><Speak>é</Speak><Wait length=\"x\"/></Response>");
    assert_eq!((e.line, e.column), (1, 33), "{e}");
}

#[test]
fn unknown_attributes_are_warnings() {
    let parsed = ok(&doc(
        "<Play foo=\"1\" bar=\"2\">https://a/b</Play>\n<Speak xml:lang=\"en\">x</Speak>",
    ));
    assert_eq!(parsed.document.verbs.len(), 2);
    let names: Vec<_> = parsed
        .warnings
        .iter()
        .map(|w| w.attribute.clone().unwrap_or_default())
        .collect();
    assert_eq!(names, ["foo", "bar", "xml:lang"]);
    assert!(parsed.warnings[0]
        .to_string()
        .contains("unknown attribute ignored"));
}

#[test]
fn audio_only_documents() {
    let xml = br#"<Response>
  <Play>https://a/music.mp3</Play>
  <Speak>Please hold</Speak>
  <Wait length="5"/>
  <Dial>123</Dial>
  <MultiPartyCall role="Agent">r</MultiPartyCall>
  <Bogus/>
</Response>"#;
    let parsed = parse_audio_only(xml).expect("audio document");
    assert_eq!(
        parsed.document.verbs,
        vec![
            play("https://a/music.mp3", 1),
            speak("Please hold", "WOMAN", "en-US", 1),
            wait(5, false, None, None)
        ]
    );
    let skipped: Vec<_> = parsed
        .warnings
        .iter()
        .map(|w| w.element.clone().unwrap_or_default())
        .collect();
    assert_eq!(skipped, ["Dial", "MultiPartyCall", "Bogus"]);
    assert!(
        parsed.warnings[0].message.contains("skipped"),
        "{}",
        parsed.warnings[0]
    );

    // Errors in the honoured verbs and malformed XML still fail.
    assert!(parse_audio_only(b"<Response><Play loop=\"x\">https://a/b</Play></Response>").is_err());
    assert!(parse_audio_only(b"<Response><Play>").is_err());
    assert!(parse_audio_only(b"<Response><!DOCTYPE x></Response>").is_err());
    // The same document is an error as a call document.
    assert!(huddle_xml::parse_bytes(xml).is_err());
}
