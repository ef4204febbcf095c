//! The one error type of the crate.

/// Why a prompt could not be turned into PCM.
///
/// Every message names the URL (without its fragment) or an excerpt of the text, so a log line
/// or a callback on its own says which prompt failed. All fields are plain data, so the error is
/// `Clone`: one failed fetch is handed to every caller that was waiting for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromptError {
    /// The URL does not parse or is not `http`/`https`.
    #[error("invalid audio URL {url}: {detail}")]
    InvalidUrl { url: String, detail: String },
    /// Connecting, sending or reading the body failed or timed out.
    #[error("fetching {url} failed: {detail}")]
    Fetch { url: String, detail: String },
    /// The server answered with a non-2xx status.
    #[error("fetching {url} failed: HTTP status {status}")]
    Status { url: String, status: u16 },
    /// The file is larger than `PromptConfig::max_file_bytes`.
    #[error("{url} is larger than the {limit}-byte limit for audio files")]
    TooLarge { url: String, limit: usize },
    /// The bytes are not decodable mp3/wav audio. `what` is the URL, the spoken text excerpt or
    /// `"audio bytes"` for [`crate::decode_audio`].
    #[error("cannot decode {what}: {detail}")]
    Decode { what: String, detail: String },
    /// The decoded audio is longer than [`crate::MAX_DURATION`].
    #[error("{what} is longer than the {limit_secs} s limit for prompts")]
    TooLong { what: String, limit_secs: u64 },
    /// The synthesizer failed (exit status, timeout, unreadable output).
    #[error("speech synthesis failed: {detail}")]
    Tts { detail: String },
    /// The synthesizer binary is not installed.
    #[error("speech synthesizer `{command}` not found: install espeak-ng or set tts_command")]
    TtsMissing { command: String },
    /// The text is longer than `PromptConfig::max_speech_chars`.
    #[error("text to speak has {chars} characters, more than the {limit} allowed: \"{excerpt}\"")]
    TextTooLong {
        chars: usize,
        limit: usize,
        excerpt: String,
    },
    /// The requested output rate is outside what the crate produces.
    #[error("unsupported output sample rate {rate} Hz (expected {min}..={max})", min = crate::MIN_RATE, max = crate::MAX_RATE)]
    UnsupportedRate { rate: u32 },
    /// A worker task died; a bug, not a property of the prompt.
    #[error("internal error while preparing {what}: {detail}")]
    Internal { what: String, detail: String },
}

impl PromptError {
    /// Short stable name of the variant, used as the `kind` label of
    /// `huddle_prompt_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            PromptError::InvalidUrl { .. } => "invalid_url",
            PromptError::Fetch { .. } => "fetch",
            PromptError::Status { .. } => "status",
            PromptError::TooLarge { .. } => "too_large",
            PromptError::Decode { .. } => "decode",
            PromptError::TooLong { .. } => "too_long",
            PromptError::Tts { .. } => "tts",
            PromptError::TtsMissing { .. } => "tts_missing",
            PromptError::TextTooLong { .. } => "text_too_long",
            PromptError::UnsupportedRate { .. } => "unsupported_rate",
            PromptError::Internal { .. } => "internal",
        }
    }

    /// Replaces the generic subject of a decode error (`"audio bytes"`) with the URL or text
    /// the bytes came from.
    pub(crate) fn about(self, subject: &str) -> Self {
        match self {
            PromptError::Decode { detail, .. } => PromptError::Decode {
                what: subject.to_owned(),
                detail,
            },
            PromptError::TooLong { limit_secs, .. } => PromptError::TooLong {
                what: subject.to_owned(),
                limit_secs,
            },
            PromptError::Internal { detail, .. } => PromptError::Internal {
                what: subject.to_owned(),
                detail,
            },
            other => other,
        }
    }
}

/// At most `max` characters of `text` for messages: control characters become spaces so a
/// hostile text cannot forge log lines, and a cut is marked with `…`.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_cuts_and_cleans() {
        assert_eq!(excerpt("short", 10), "short");
        assert_eq!(excerpt("abcdef", 3), "abc…");
        assert_eq!(excerpt("a\nb", 10), "a b");
        assert_eq!(excerpt("ééé", 2), "éé…");
    }

    #[test]
    fn about_replaces_subject_of_decode_errors_only() {
        let e = PromptError::Decode {
            what: "audio bytes".into(),
            detail: "x".into(),
        }
        .about("http://h/a.wav");
        assert_eq!(e.to_string(), "cannot decode http://h/a.wav: x");
        let s = PromptError::Status {
            url: "u".into(),
            status: 404,
        };
        assert_eq!(s.clone().about("v"), s);
    }
}
