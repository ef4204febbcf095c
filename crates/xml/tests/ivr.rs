//! GetDigits, GetInput, DTMF, Record and Conference: defaults, every attribute, the errors
//! check-xml prints for bad values, and render/parse round trips.

mod common;

use common::{errors, ok, one_error, only_verb};
use huddle_xml::{
    parse_audio_only, render, Conference, Document, Dtmf, GetDigits, GetInput, HttpMethod, Play,
    Record, RecordFormat, Role, Sound, UrlWithMethod, Verb, Wait,
};

fn doc(body: &str) -> String {
    format!("<Response>{body}</Response>")
}

/// (document body, element, attribute, fragment of the message)
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
fn get_digits_defaults_and_attributes() {
    let Verb::GetDigits(g) = only_verb(&doc(r#"<GetDigits action="https://a/x"/>"#)) else {
        panic!("not GetDigits")
    };
    assert_eq!(
        *g,
        GetDigits {
            action: Some("https://a/x".into()),
            ..GetDigits::default()
        }
    );
    assert_eq!(g.method, HttpMethod::Post);
    assert_eq!((g.timeout_secs, g.digit_timeout_secs), (5, 2));
    assert_eq!(g.finish_on_key, Some('#'));
    assert_eq!((g.num_digits, g.retries), (99, 1));
    assert!(g.redirect && g.log && !g.play_beep);

    let xml = doc(
        r#"<GetDigits action="http://a/menu" method="get" timeout="7" digitTimeout="3" finishOnKey="*" numDigits="4" retries="3" validDigits="123" invalidDigitsSound="http://a/bad.wav" playBeep="true" redirect="false" log="false">
  <Speak>Press one.</Speak><Play>http://a/p.mp3</Play><Wait length="2"/>
</GetDigits>"#,
    );
    let Verb::GetDigits(g) = only_verb(&xml) else {
        panic!("not GetDigits")
    };
    assert_eq!(g.method, HttpMethod::Get);
    assert_eq!((g.timeout_secs, g.digit_timeout_secs), (7, 3));
    assert_eq!(g.finish_on_key, Some('*'));
    assert_eq!((g.num_digits, g.retries), (4, 3));
    assert_eq!(g.valid_digits, "123");
    assert_eq!(g.invalid_digits_sound.as_deref(), Some("http://a/bad.wav"));
    assert!(g.play_beep && !g.redirect && !g.log);
    assert_eq!(g.prompts.len(), 3);
    for none in ["none", "NONE", ""] {
        let Verb::GetDigits(g) = only_verb(&doc(&format!(
            r#"<GetDigits action="http://a/" finishOnKey="{none}"/>"#
        ))) else {
            panic!()
        };
        assert_eq!(g.finish_on_key, None);
    }
    // Without an action the digits go nowhere: allowed, with a warning.
    assert_eq!(ok(&doc("<GetDigits/>")).warnings.len(), 1);
}

#[test]
fn get_digits_errors() {
    check_err(&[
        (
            r#"<GetDigits action="ftp://a/x"/>"#,
            "GetDigits",
            Some("action"),
            "http",
        ),
        (
            r#"<GetDigits action="http://a" timeout="0"/>"#,
            "GetDigits",
            Some("timeout"),
            "1 to 3600",
        ),
        (
            r#"<GetDigits action="http://a" numDigits="100"/>"#,
            "GetDigits",
            Some("numDigits"),
            "1 to 99",
        ),
        (
            r#"<GetDigits action="http://a" retries="0"/>"#,
            "GetDigits",
            Some("retries"),
            "1 to 10",
        ),
        (
            r###"<GetDigits action="http://a" finishOnKey="##"/>"###,
            "GetDigits",
            Some("finishOnKey"),
            "one of 0-9",
        ),
        (
            r#"<GetDigits action="http://a" validDigits="12x"/>"#,
            "GetDigits",
            Some("validDigits"),
            "'x' is not a key",
        ),
        (
            r#"<GetDigits action="http://a" playBeep="yes"/>"#,
            "GetDigits",
            Some("playBeep"),
            "true, false",
        ),
        (
            r#"<GetDigits action="http://a" method="PUT"/>"#,
            "GetDigits",
            Some("method"),
            "GET, POST",
        ),
        (
            r#"<GetDigits action="http://a"><Hangup/></GetDigits>"#,
            "Hangup",
            None,
            "not allowed inside <GetDigits>",
        ),
        (
            r#"<GetDigits action="http://a">press</GetDigits>"#,
            "GetDigits",
            None,
            "text is not allowed",
        ),
    ]);
}

#[test]
fn get_input_dtmf_and_speech() {
    let Verb::GetInput(g) = only_verb(&doc(
        r#"<GetInput action="http://a/in" inputType="dtmf"><Speak>Account?</Speak></GetInput>"#,
    )) else {
        panic!("not GetInput")
    };
    assert_eq!(g.action, "http://a/in");
    assert_eq!(g.method, HttpMethod::Post);
    assert_eq!(g.execution_timeout_secs, 15);
    assert_eq!(g.digit_end_timeout_secs, None);
    assert_eq!(g.finish_on_key, Some('#'));
    assert_eq!(g.num_digits, 32);
    assert!(g.redirect && g.log);
    assert_eq!(g.prompts.len(), 1);

    // Speech-only attributes the SDKs write are accepted with DTMF input.
    let Verb::GetInput(g) = only_verb(&doc(
        r#"<GetInput action="http://a/in" inputType="DTMF" digitEndTimeout="4" speechEndTimeout="auto" executionTimeout="60" numDigits="6" finishOnKey="none" language="en-US" speechModel="default" hints="a,b" profanityFilter="false" redirect="false"/>"#,
    )) else {
        panic!("not GetInput")
    };
    assert_eq!(g.digit_end_timeout_secs, Some(4));
    assert_eq!(g.execution_timeout_secs, 60);
    assert_eq!(
        (g.num_digits, g.finish_on_key, g.redirect),
        (6, None, false)
    );

    check_err(&[
        (
            r#"<GetInput action="http://a" inputType="speech"/>"#,
            "GetInput",
            Some("inputType"),
            "speech input is not supported: this server has no speech recogniser",
        ),
        (
            r#"<GetInput action="http://a" inputType="dtmf speech"/>"#,
            "GetInput",
            Some("inputType"),
            "no speech recogniser",
        ),
        (
            r#"<GetInput action="http://a" inputType="voice"/>"#,
            "GetInput",
            Some("inputType"),
            "unknown input type",
        ),
        (
            r#"<GetInput action="http://a"/>"#,
            "GetInput",
            None,
            "`inputType` is required",
        ),
        (
            r#"<GetInput inputType="dtmf"/>"#,
            "GetInput",
            None,
            "`action` is required",
        ),
        (
            r#"<GetInput action="http://a" inputType="dtmf" executionTimeout="4"/>"#,
            "GetInput",
            Some("executionTimeout"),
            "5 to 60",
        ),
        (
            r#"<GetInput action="http://a" inputType="dtmf" digitEndTimeout="11"/>"#,
            "GetInput",
            Some("digitEndTimeout"),
            "2 to 10, or auto",
        ),
        (
            r#"<GetInput action="http://a" inputType="dtmf" numDigits="33"/>"#,
            "GetInput",
            Some("numDigits"),
            "1 to 32",
        ),
    ]);
}

#[test]
fn dtmf_verb() {
    assert_eq!(
        only_verb(&doc("<DTMF>12w34W#</DTMF>")),
        Verb::Dtmf(Dtmf {
            digits: "12w34W#".into(),
            asynchronous: true,
        })
    );
    assert_eq!(
        only_verb(&doc(r#"<DTMF async="false"> 9 </DTMF>"#)),
        Verb::Dtmf(Dtmf {
            digits: "9".into(),
            asynchronous: false,
        })
    );
    check_err(&[
        (
            "<DTMF>12x</DTMF>",
            "DTMF",
            None,
            "'x' is not a digit or pause",
        ),
        ("<DTMF></DTMF>", "DTMF", None, "are required"),
        (
            r#"<DTMF async="maybe">1</DTMF>"#,
            "DTMF",
            Some("async"),
            "true, false",
        ),
    ]);
    let long = format!("<DTMF>{}</DTMF>", "1".repeat(257));
    check_err(&[(&long, "DTMF", None, "more than 256")]);
}

#[test]
fn record_verb() {
    let Verb::Record(r) = only_verb(&doc("<Record/>")) else {
        panic!("not Record")
    };
    assert_eq!(*r, Record::default());
    assert_eq!(r.file_format, RecordFormat::Mp3);
    assert_eq!((r.timeout_secs, r.max_length_secs), (15, 60));
    assert_eq!(r.finish_on_key, "1234567890*#");
    assert!(r.play_beep && r.redirect);

    let Verb::Record(r) = only_verb(&doc(
        r##"<Record action="http://a/done" method="GET" fileFormat="WAV" redirect="false" timeout="3" maxLength="120" playBeep="false" finishOnKey="#*" recordSession="false" startOnDialAnswer="false" transcriptionType="auto" transcriptionUrl="http://a/t" transcriptionMethod="GET" callbackUrl="http://a/cb" callbackMethod="GET"/>"##,
    )) else {
        panic!("not Record")
    };
    assert_eq!(r.action.as_deref(), Some("http://a/done"));
    assert_eq!(r.method, HttpMethod::Get);
    assert_eq!(r.file_format, RecordFormat::Wav);
    assert!(!r.redirect && !r.play_beep);
    assert_eq!((r.timeout_secs, r.max_length_secs), (3, 120));
    assert_eq!(r.finish_on_key, "#*");
    assert_eq!(
        r.callback,
        Some(UrlWithMethod {
            url: "http://a/cb".into(),
            method: HttpMethod::Get
        })
    );
    let Verb::Record(r) = only_verb(&doc(r#"<Record finishOnKey="none"/>"#)) else {
        panic!()
    };
    assert_eq!(r.finish_on_key, "");
    assert!(!r.record_session);
    let Verb::Record(r) = only_verb(&doc(r#"<Record recordSession="true"/>"#)) else {
        panic!()
    };
    assert!(r.record_session);

    check_err(&[
        (
            r#"<Record startOnDialAnswer="true"/>"#,
            "Record",
            Some("startOnDialAnswer"),
            "<Dial>, which this server does not run",
        ),
        (
            r#"<Record recordSession="yes"/>"#,
            "Record",
            Some("recordSession"),
            "true",
        ),
        (
            r#"<Record fileFormat="ogg"/>"#,
            "Record",
            Some("fileFormat"),
            "mp3, wav",
        ),
        (
            r#"<Record maxLength="0"/>"#,
            "Record",
            Some("maxLength"),
            "1 to 14400",
        ),
        (
            r#"<Record finishOnKey="1x"/>"#,
            "Record",
            Some("finishOnKey"),
            "'x' is not a key",
        ),
        (
            r#"<Record transcriptionType="magic"/>"#,
            "Record",
            Some("transcriptionType"),
            "auto, hybrid",
        ),
        (
            r#"<Record callbackUrl="nowhere"/>"#,
            "Record",
            Some("callbackUrl"),
            "http",
        ),
        ("<Record>text</Record>", "Record", None, "takes no text"),
    ]);
}

#[test]
fn conference_maps_onto_an_mpc_of_customers() {
    let Verb::Conference(c) = only_verb(&doc("<Conference>town-hall</Conference>")) else {
        panic!("not Conference")
    };
    assert_eq!(*c, Conference::new("town-hall"));
    let m = c.to_mpc();
    assert_eq!(m.role, Role::Customer);
    assert_eq!(m.name, "town-hall");
    assert!(m.stay_alone && m.start_mpc_on_enter && !m.end_mpc_on_exit);
    assert_eq!(
        (m.enter_sound.clone(), m.exit_sound.clone()),
        (Sound::None, Sound::None)
    );

    let Verb::Conference(c) = only_verb(&doc(
        r#"<Conference muted="true" enterSound="beep:1" exitSound="" startConferenceOnEnter="false" endConferenceOnExit="true" stayAlone="false" waitSound="http://a/wait" waitSoundMethod="POST" maxMembers="4" record="true" recordFileFormat="wav" timeLimit="600" action="http://a/after" method="GET" relayDTMF="true">c1</Conference>"#,
    )) else {
        panic!("not Conference")
    };
    let m = c.to_mpc();
    assert!(m.mute && !m.start_mpc_on_enter && m.end_mpc_on_exit && !m.stay_alone);
    assert_eq!(m.enter_sound, Sound::Beep1);
    assert_eq!(m.exit_sound, Sound::None);
    assert_eq!(
        m.wait_music,
        Some(UrlWithMethod {
            url: "http://a/wait".into(),
            method: HttpMethod::Post
        })
    );
    assert_eq!((m.max_participants, m.max_duration), (4, 600));
    assert!(m.record && m.relay_dtmf_inputs);
    assert_eq!(m.record_file_format, RecordFormat::Wav);
    assert_eq!(
        m.on_exit_action,
        Some(UrlWithMethod {
            url: "http://a/after".into(),
            method: HttpMethod::Get
        })
    );

    // Features an MPC lacks are accepted with a warning naming them.
    let parsed = ok(&doc(
        r#"<Conference hangupOnStar="true" callbackUrl="http://a/cb" digitsMatch="123">c</Conference>"#,
    ));
    let warned: Vec<_> = parsed
        .warnings
        .iter()
        .filter_map(|w| w.attribute.clone())
        .collect();
    assert_eq!(warned, ["hangupOnStar", "callbackUrl", "digitsMatch"]);

    check_err(&[
        (
            r#"<Conference maxMembers="20">c</Conference>"#,
            "Conference",
            Some("maxMembers"),
            "2 to 10",
        ),
        (
            r#"<Conference timeLimit="10">c</Conference>"#,
            "Conference",
            Some("timeLimit"),
            "300 to 28800",
        ),
        ("<Conference></Conference>", "Conference", None, "required"),
        (
            "<Conference>a/b</Conference>",
            "Conference",
            None,
            "contains '/'",
        ),
        (
            r#"<Conference enterSound="ding">c</Conference>"#,
            "Conference",
            Some("enterSound"),
            "beep:1",
        ),
    ]);
}

#[test]
fn every_new_verb_round_trips() {
    let play = Verb::Play(Play {
        url: "http://a/p.wav".into(),
        loop_count: 2,
    });
    let wait = Verb::Wait(Wait {
        length_secs: 1,
        silence: false,
        min_silence_ms: None,
        beep: None,
    });
    let mut conference = Conference::new("room");
    conference.wait_sound = Some(UrlWithMethod {
        url: "http://a/w".into(),
        method: HttpMethod::Post,
    });
    conference.action = Some(UrlWithMethod {
        url: "http://a/x".into(),
        method: HttpMethod::Get,
    });
    conference.enter_sound = Sound::Beep2;
    let document = Document {
        verbs: vec![
            Verb::GetDigits(Box::new(GetDigits {
                action: Some("http://a/menu".into()),
                finish_on_key: None,
                prompts: vec![play.clone(), wait.clone()],
                ..GetDigits::default()
            })),
            Verb::GetDigits(Box::default()),
            Verb::GetInput(Box::new(GetInput {
                action: "http://a/in".into(),
                method: HttpMethod::Get,
                execution_timeout_secs: 20,
                digit_end_timeout_secs: Some(3),
                finish_on_key: Some('*'),
                num_digits: 4,
                redirect: false,
                log: false,
                prompts: vec![play],
            })),
            Verb::Dtmf(Dtmf {
                digits: "1w2W#".into(),
                asynchronous: false,
            }),
            Verb::Record(Box::default()),
            Verb::Record(Box::new(Record {
                action: Some("http://a/r".into()),
                finish_on_key: String::new(),
                callback: Some(UrlWithMethod {
                    url: "http://a/cb".into(),
                    method: HttpMethod::Get,
                }),
                ..Record::default()
            })),
            Verb::Record(Box::new(Record {
                record_session: true,
                file_format: RecordFormat::Wav,
                ..Record::default()
            })),
            Verb::Conference(Box::new(conference)),
        ],
    };
    let xml = render(&document);
    let parsed = ok(&xml);
    assert_eq!(parsed.document, document, "{xml}");
}

#[test]
fn audio_documents_skip_the_new_verbs() {
    let parsed = parse_audio_only(b"<Response><GetDigits/><Record/><Wait/></Response>").unwrap();
    assert_eq!(parsed.document.verbs.len(), 1);
    assert_eq!(parsed.warnings.len(), 2);
    // Several problems at once, in document order.
    let errs = errors(&doc(
        r#"<GetDigits timeout="x"/><DTMF>z</DTMF><Record maxLength="-1"/>"#,
    ));
    assert_eq!(errs.len(), 3, "{errs:?}");
}

#[test]
fn stream_verb() {
    use huddle_xml::{AudioTrack, Stream};
    assert_eq!(
        only_verb(&doc("<Stream>wss://ai.example/s</Stream>")),
        Verb::Stream(Box::new(Stream::new("wss://ai.example/s")))
    );
    let Verb::Stream(s) = only_verb(&doc(
        r#"<Stream bidirectional="true" audioTrack="inbound" streamTimeout="120" contentType="audio/x-mulaw;rate=8000" keepCallAlive="true" extraHeaders="a=1,b=2" statusCallbackUrl="http://a/s" statusCallbackMethod="GET">ws://ai/x</Stream>"#,
    )) else {
        panic!("not Stream")
    };
    assert!(s.bidirectional && s.keep_call_alive);
    assert_eq!(s.audio_track, AudioTrack::Inbound);
    assert_eq!(s.stream_timeout_secs, 120);
    assert_eq!(s.content_type, "audio/x-mulaw;rate=8000");
    assert_eq!(s.extra_headers.as_deref(), Some("a=1,b=2"));
    let ai = s.as_ai_agent_stream();
    assert_eq!(ai.service_url.as_deref(), Some("ws://ai/x"));
    assert_eq!(ai.status_callback_method, HttpMethod::Get);

    let long = format!(
        r#"<Stream extraHeaders="{}">wss://a</Stream>"#,
        "a".repeat(513)
    );
    check_err(&[
        ("<Stream>https://a/x</Stream>", "Stream", None, "ws://"),
        (
            "<Stream></Stream>",
            "Stream",
            None,
            "service URL (element text) is required",
        ),
        (
            r#"<Stream bidirectional="true" audioTrack="both">wss://a</Stream>"#,
            "Stream",
            Some("audioTrack"),
            "only the inbound track",
        ),
        (
            r#"<Stream audioTrack="left">wss://a</Stream>"#,
            "Stream",
            Some("audioTrack"),
            "inbound, outbound, both",
        ),
        (
            r#"<Stream contentType="audio/opus">wss://a</Stream>"#,
            "Stream",
            Some("contentType"),
            "audio/x-l16;rate=8000",
        ),
        (
            r#"<Stream streamTimeout="0">wss://a</Stream>"#,
            "Stream",
            Some("streamTimeout"),
            "1 to 86400",
        ),
        (
            &long,
            "Stream",
            Some("extraHeaders"),
            "longer than 512 bytes",
        ),
    ]);
    let mut all = Stream::new("wss://a/b");
    all.audio_track = AudioTrack::Both;
    all.status_callback = Some(UrlWithMethod {
        url: "http://a/s".into(),
        method: HttpMethod::Get,
    });
    all.extra_headers = Some("x=1".into());
    let document = Document {
        verbs: vec![Verb::Stream(Box::new(all))],
    };
    assert_eq!(ok(&render(&document)).document, document);
}
