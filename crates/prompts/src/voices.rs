//! Plivo `<Speak voice language>` to an espeak-ng voice name.

/// espeak-ng voice for each language of Plivo's basic list (mpc-xml.md §6.3). Every name is
/// listed by `espeak-ng --voices` (1.51). Where espeak-ng has no regional voice the nearest
/// one is used: Australian English is non-rhotic like British English, US Spanish is Latin
/// American Spanish, Canadian French falls back to the default French voice.
const LANGUAGES: &[(&str, &str)] = &[
    ("da-dk", "da"),
    ("nl-nl", "nl"),
    ("en-au", "en-gb"),
    ("en-gb", "en-gb"),
    ("en-us", "en-us"),
    ("fr-fr", "fr-fr"),
    ("fr-ca", "fr"),
    ("de-de", "de"),
    ("it-it", "it"),
    ("pl-pl", "pl"),
    ("pt-pt", "pt"),
    ("pt-br", "pt-br"),
    ("ru-ru", "ru"),
    ("es-es", "es"),
    ("es-us", "es-419"),
    ("sv-se", "sv"),
];

/// Fallback by primary language subtag for codes outside the basic list (`fr-BE`, `es-MX`,
/// `ja-JP`, ...). Also checked against `espeak-ng --voices`.
const PRIMARY: &[(&str, &str)] = &[
    ("da", "da"),
    ("nl", "nl"),
    ("en", "en-us"),
    ("fr", "fr"),
    ("de", "de"),
    ("it", "it"),
    ("pl", "pl"),
    ("pt", "pt"),
    ("ru", "ru"),
    ("es", "es-419"),
    ("sv", "sv"),
    ("nb", "nb"),
    ("no", "nb"),
    ("fi", "fi"),
    ("tr", "tr"),
    ("ar", "ar"),
    ("hi", "hi"),
    ("ja", "ja"),
    ("ko", "ko"),
    ("zh", "cmn"),
    ("cmn", "cmn"),
];

/// Variant appended for female voices; espeak-ng's default voices are male.
const FEMALE_VARIANT: &str = "+f3";

/// Amazon Polly voice names (as used in `Polly.<Name>`) that are male. Any other Polly name is
/// taken as female, matching Plivo's default `WOMAN`.
const POLLY_MALE: &[&str] = &[
    "matthew",
    "joey",
    "justin",
    "kevin",
    "stephen",
    "brian",
    "arthur",
    "russell",
    "aiden",
    "geraint",
    "mathieu",
    "remi",
    "liam",
    "hans",
    "daniel",
    "giorgio",
    "adriano",
    "jacek",
    "jan",
    "cristiano",
    "ricardo",
    "thiago",
    "maxim",
    "enrique",
    "sergio",
    "miguel",
    "pedro",
    "andres",
    "mads",
    "ruben",
    "takumi",
    "zhiyu",
    "hala",
    "kajal",
    "arlet",
    "filiz",
    "gregory",
];

/// Maps a Plivo voice (`WOMAN`, `MAN`, `Polly.<Name>`, case-insensitive) and language
/// (`en-US`, `fr-FR`, ...; `_` accepted for `-`) to the nearest espeak-ng voice name, e.g.
/// `("WOMAN", "en-US")` → `"en-us+f3"`, `("MAN", "en-GB")` → `"en-gb"`. Unknown languages use
/// `en-us`; unknown voices are treated as `WOMAN` (Plivo's default).
pub fn espeak_voice(voice: &str, language: &str) -> String {
    let language = language.trim().replace('_', "-").to_ascii_lowercase();
    let primary = language.split('-').next().unwrap_or("");
    let base = LANGUAGES
        .iter()
        .find(|(code, _)| *code == language)
        .or_else(|| PRIMARY.iter().find(|(code, _)| *code == primary))
        .map_or("en-us", |(_, name)| *name);
    if is_male(voice) {
        base.to_owned()
    } else {
        format!("{base}{FEMALE_VARIANT}")
    }
}

fn is_male(voice: &str) -> bool {
    let voice = voice.trim().to_ascii_lowercase();
    if voice == "man" {
        return true;
    }
    // `Polly.Matthew` and the neural form `Polly.Matthew-Neural`.
    voice
        .strip_prefix("polly.")
        .map(|name| name.split('-').next().unwrap_or(""))
        .is_some_and(|name| POLLY_MALE.contains(&name))
}
