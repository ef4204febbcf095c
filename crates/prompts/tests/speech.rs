//! `Prompts::speech` with the real espeak-ng (installed here and in CI).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::rms;
use huddle_prompts::{PromptConfig, PromptError, Prompts};

fn prompts(config: PromptConfig) -> Prompts {
    Prompts::new(reqwest::Client::new(), config)
}

#[tokio::test]
async fn speech_has_real_audio_and_is_cached() {
    let p = prompts(PromptConfig::default());
    let started = Instant::now();
    let pcm = p
        .speech("Hello, welcome to huddle", "WOMAN", "en-US", 8000)
        .await
        .unwrap();
    let first = started.elapsed();
    assert_eq!(pcm.rate, 8000);
    assert!(pcm.samples.len() > 4000, "{} samples", pcm.samples.len());
    assert!(pcm.duration() > Duration::from_millis(500));
    let level = rms(&pcm.samples);
    assert!(level > 0.02, "rms {level}");

    let started = Instant::now();
    let again = p
        .speech("Hello, welcome to huddle", "WOMAN", "en-US", 8000)
        .await
        .unwrap();
    assert!(
        Arc::ptr_eq(&pcm.samples, &again.samples),
        "served from the cache"
    );
    eprintln!("first {first:?}, cached {:?}", started.elapsed());

    // Another voice, language or rate is another entry.
    let man = p
        .speech("Hello, welcome to huddle", "MAN", "en-US", 8000)
        .await
        .unwrap();
    assert!(!Arc::ptr_eq(&pcm.samples, &man.samples));
    assert_ne!(
        &pcm.samples[..],
        &man.samples[..],
        "female and male voices differ"
    );
    let wide = p
        .speech("Hello, welcome to huddle", "WOMAN", "en-US", 16000)
        .await
        .unwrap();
    let ratio = wide.samples.len() as f64 / pcm.samples.len() as f64;
    assert!((ratio - 2.0).abs() < 0.01, "{ratio}");
}

#[tokio::test]
async fn every_plivo_language_synthesizes() {
    let p = prompts(PromptConfig::default());
    for language in [
        "da-DK", "nl-NL", "en-AU", "en-GB", "en-US", "fr-FR", "fr-CA", "de-DE", "it-IT", "pl-PL",
        "pt-PT", "pt-BR", "ru-RU", "es-ES", "es-US", "sv-SE",
    ] {
        for voice in ["WOMAN", "MAN"] {
            let pcm = p
                .speech("One two three", voice, language, 8000)
                .await
                .unwrap_or_else(|e| panic!("{voice} {language}: {e}"));
            assert!(rms(&pcm.samples) > 0.01, "{voice} {language}");
        }
    }
}

#[tokio::test]
async fn missing_synthesizer_is_tts_missing() {
    let p = prompts(PromptConfig {
        tts_command: "huddle-no-such-tts-binary".into(),
        ..Default::default()
    });
    for _ in 0..2 {
        match p.speech("Hello", "WOMAN", "en-US", 8000).await {
            Err(e @ PromptError::TtsMissing { .. }) => {
                assert!(e.to_string().contains("huddle-no-such-tts-binary"), "{e}")
            }
            other => panic!("expected TtsMissing, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn failing_synthesizer_is_a_tts_error() {
    let p = prompts(PromptConfig {
        tts_command: "false".into(),
        ..Default::default()
    });
    match p.speech("Hello there", "WOMAN", "en-US", 8000).await {
        Err(e @ PromptError::Tts { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("Hello there") && text.contains("exit"),
                "{text}"
            );
        }
        other => panic!("expected a Tts error, got {other:?}"),
    }
}

#[tokio::test]
async fn unknown_voice_and_language_fall_back() {
    let p = prompts(PromptConfig::default());
    let pcm = p
        .speech("Fallback works", "Robot", "xx-YY", 8000)
        .await
        .unwrap();
    assert!(rms(&pcm.samples) > 0.01);
    let polly = p
        .speech("Polly voice", "Polly.Matthew", "en-US", 8000)
        .await
        .unwrap();
    assert!(rms(&polly.samples) > 0.01);
}

#[tokio::test]
async fn text_limits() {
    let p = prompts(PromptConfig {
        max_speech_chars: 20,
        ..Default::default()
    });
    match p
        .speech(
            "This sentence is longer than twenty characters",
            "WOMAN",
            "en-US",
            8000,
        )
        .await
    {
        Err(
            e @ PromptError::TextTooLong {
                chars: 46,
                limit: 20,
                ..
            },
        ) => {
            assert!(e.to_string().contains("This sentence"), "{e}")
        }
        other => panic!("expected TextTooLong, got {other:?}"),
    }
    // Exactly at the limit is fine; the limit counts characters, not bytes.
    p.speech("éééééééééééééééééééé", "WOMAN", "fr-FR", 8000)
        .await
        .unwrap();
    // Nothing to say: empty audio, no synthesizer run.
    let blank = p.speech("  \n ", "WOMAN", "en-US", 8000).await.unwrap();
    assert!(blank.samples.is_empty());
    assert!(matches!(
        p.speech("Hi", "WOMAN", "en-US", 12).await,
        Err(PromptError::UnsupportedRate { rate: 12 })
    ));
}

#[tokio::test]
async fn text_is_spoken_literally_never_interpreted() {
    let dir = std::env::temp_dir().join(format!("huddle-prompts-inject-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("pwned");
    let wav = dir.join("evil.wav");
    let texts = [
        format!("-w {} hello", wav.display()),
        "--version".to_owned(),
        format!("$(touch {})", marker.display()),
        format!("`touch {}`", marker.display()),
        format!("\"; touch {}; echo \"", marker.display()),
        format!("'; touch {} #", marker.display()),
        format!("hello | touch {} && echo & done", marker.display()),
        "-v de -- -- -".to_owned(),
        "<speak>tags are text here</speak>".to_owned(),
    ];
    let p = prompts(PromptConfig::default());
    for text in &texts {
        let pcm = p
            .speech(text, "WOMAN", "en-US", 8000)
            .await
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        assert!(
            pcm.samples.len() > 800,
            "{text}: {} samples",
            pcm.samples.len()
        );
    }
    assert!(!marker.exists(), "a shell ran the text");
    assert!(!wav.exists(), "the text was taken as an option");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn stuck_synthesizer_is_killed_after_the_timeout() {
    let dir = std::env::temp_dir().join(format!("huddle-prompts-slow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("slow-tts");
    std::fs::write(&script, "#!/bin/sh\nexec sleep 30\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let p = prompts(PromptConfig {
        tts_command: script.display().to_string(),
        tts_timeout: Duration::from_millis(300),
        ..Default::default()
    });
    let started = Instant::now();
    match p.speech("Hello", "WOMAN", "en-US", 8000).await {
        Err(e @ PromptError::Tts { .. }) => assert!(e.to_string().contains("longer than"), "{e}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    std::fs::remove_dir_all(&dir).unwrap();
}
