//! The Plivo voice/language to espeak-ng voice table, checked against the installed espeak-ng.

use std::process::Command;

use huddle_prompts::espeak_voice;

const TABLE: &[(&str, &str)] = &[
    ("da-DK", "da"),
    ("nl-NL", "nl"),
    ("en-AU", "en-gb"),
    ("en-GB", "en-gb"),
    ("en-US", "en-us"),
    ("fr-FR", "fr-fr"),
    ("fr-CA", "fr"),
    ("de-DE", "de"),
    ("it-IT", "it"),
    ("pl-PL", "pl"),
    ("pt-PT", "pt"),
    ("pt-BR", "pt-br"),
    ("ru-RU", "ru"),
    ("es-ES", "es"),
    ("es-US", "es-419"),
    ("sv-SE", "sv"),
];

#[test]
fn plivo_languages_map_to_espeak_voices() {
    for (language, base) in TABLE {
        assert_eq!(espeak_voice("MAN", language), *base, "MAN {language}");
        assert_eq!(
            espeak_voice("WOMAN", language),
            format!("{base}+f3"),
            "WOMAN {language}"
        );
    }
}

#[test]
fn voices_and_odd_spellings() {
    assert_eq!(espeak_voice("WOMAN", "en-US"), "en-us+f3");
    assert_eq!(espeak_voice("MAN", "en-US"), "en-us");
    assert_eq!(espeak_voice("man", "EN-gb"), "en-gb");
    assert_eq!(espeak_voice(" Woman ", "en_US"), "en-us+f3");
    assert_eq!(espeak_voice("Polly.Matthew", "en-US"), "en-us");
    assert_eq!(espeak_voice("Polly.Joanna", "en-US"), "en-us+f3");
    assert_eq!(espeak_voice("Polly.Brian-Neural", "en-GB"), "en-gb");
    assert_eq!(espeak_voice("Polly.Celine", "fr-FR"), "fr-fr+f3");
    assert_eq!(espeak_voice("", "de-DE"), "de+f3", "unknown voice = WOMAN");
    // Unknown regions fall back to their language, unknown languages to US English.
    assert_eq!(espeak_voice("MAN", "fr-BE"), "fr");
    assert_eq!(espeak_voice("MAN", "es-MX"), "es-419");
    assert_eq!(espeak_voice("MAN", "en-IN"), "en-us");
    assert_eq!(espeak_voice("MAN", "ja-JP"), "ja");
    assert_eq!(espeak_voice("MAN", "zh-CN"), "cmn");
    assert_eq!(espeak_voice("MAN", "xx-YY"), "en-us");
    assert_eq!(espeak_voice("WOMAN", ""), "en-us+f3");
}

/// Every name the table can produce is a voice (or the `f3` variant) espeak-ng knows.
#[test]
fn names_exist_in_espeak_ng() {
    let listing = |arg: &str| {
        let out = Command::new("espeak-ng")
            .arg(arg)
            .output()
            .expect("espeak-ng is installed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let voices = listing("--voices");
    // Columns: Pty Language Age/Gender VoiceName File Other-languages "(code prio)".
    let mut known: Vec<String> = Vec::new();
    for line in voices.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() > 1 {
            known.push(cols[1].to_owned());
        }
        for other in line.split('(').skip(1) {
            if let Some(code) = other.split_whitespace().next() {
                known.push(code.to_owned());
            }
        }
    }
    let variants = listing("--voices=variant");
    assert!(
        variants.lines().any(|l| l.contains("!v/f3")),
        "variant f3 missing"
    );
    let extra = [
        "fr-BE", "es-MX", "ja-JP", "zh-CN", "nb-NO", "fi-FI", "tr-TR", "ar-SA", "hi-IN", "ko-KR",
    ];
    for language in TABLE.iter().map(|(l, _)| *l).chain(extra) {
        let name = espeak_voice("MAN", language);
        assert!(
            known.contains(&name),
            "{language} -> {name} not in espeak-ng --voices"
        );
    }
}
