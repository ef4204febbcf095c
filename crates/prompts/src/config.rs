//! Settings for [`crate::Prompts`].

use std::time::Duration;

/// Settings for fetching, synthesizing and caching prompts.
///
/// Build with `PromptConfig { cache_bytes: .., ..Default::default() }` so new fields do not
/// break callers.
#[derive(Debug, Clone)]
pub struct PromptConfig {
    /// Cap on the PCM bytes held in the cache across all entries; least recently used entries
    /// are evicted first. An entry larger than the whole cap is returned but not cached.
    pub cache_bytes: usize,
    /// Largest audio file fetched, in bytes (Plivo's limit is 10 MiB). Checked against
    /// `Content-Length` and again while the body streams in.
    pub max_file_bytes: usize,
    /// Total time allowed for one fetch, from sending the request to the last body byte. The
    /// 2 s connect timeout belongs to the `reqwest::Client` handed to [`crate::Prompts::new`]
    /// (reqwest only offers it per client).
    pub fetch_timeout: Duration,
    /// Speech synthesizer binary, looked up in `PATH` unless it contains a `/`.
    pub tts_command: String,
    /// Time allowed for one synthesizer run; the process is killed when it runs over.
    pub tts_timeout: Duration,
    /// Longest text accepted by [`crate::Prompts::speech`], in characters.
    pub max_speech_chars: usize,
}

impl Default for PromptConfig {
    fn default() -> Self {
        Self {
            cache_bytes: 64 * 1024 * 1024,
            max_file_bytes: 10 * 1024 * 1024,
            fetch_timeout: Duration::from_secs(20),
            tts_command: "espeak-ng".to_owned(),
            tts_timeout: Duration::from_secs(10),
            max_speech_chars: 4000,
        }
    }
}
