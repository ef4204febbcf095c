//! Prompts for `<Play>` and `<Speak>`: audio files fetched over HTTP(S) and text synthesized
//! with espeak-ng, both turned into mono 16-bit PCM at the call's sample rate and cached.
//!
//! Everything here runs off the media path: callers await [`Prompts::audio_url`] or
//! [`Prompts::speech`] when a verb starts, then play the returned [`Pcm`] frame by frame.
//! Decoding and resampling run on tokio's blocking pool.
//!
//! Metrics: `huddle_prompt_cache_hits_total`, `huddle_prompt_cache_misses_total` and
//! `huddle_prompt_errors_total{kind}` (kind = [`PromptError::kind`]).

mod cache;
mod config;
mod decode;
mod error;
mod fetch;
mod resample;
mod tts;
mod voices;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use config::PromptConfig;
pub use decode::decode_audio;
pub use error::PromptError;
pub use voices::espeak_voice;

use cache::{Cache, Key};

/// Longest prompt accepted after decoding. Checked while decoding, so a small file that
/// expands to hours of audio is stopped early instead of filling memory.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 60);

/// Lowest output sample rate accepted (narrowband calls).
pub const MIN_RATE: u32 = 8000;
/// Highest output sample rate accepted (Opus fullband).
pub const MAX_RATE: u32 = 48_000;

pub(crate) fn check_rate(rate: u32) -> Result<(), PromptError> {
    if (MIN_RATE..=MAX_RATE).contains(&rate) {
        Ok(())
    } else {
        Err(PromptError::UnsupportedRate { rate })
    }
}

/// Decoded mono PCM at `rate` Hz. Cloning shares the samples.
#[derive(Debug, Clone)]
pub struct Pcm {
    pub samples: Arc<[i16]>,
    pub rate: u32,
}

impl Pcm {
    /// Playing time of the samples.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.samples.len() as f64 / f64::from(self.rate.max(1)))
    }
}

/// Fetches, synthesizes, decodes and caches prompts. Cheap to clone (an `Arc` inside) and safe
/// to use from many tasks at once.
#[derive(Clone)]
pub struct Prompts {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    config: PromptConfig,
    cache: Arc<Cache>,
    /// A missing synthesizer is logged as an error once, not on every `<Speak>`.
    tts_missing_logged: AtomicBool,
}

impl Prompts {
    /// `http` should be the server's shared client, built with a 2 s connect timeout
    /// (`reqwest::ClientBuilder::connect_timeout`); `config.fetch_timeout` bounds each whole
    /// fetch on top of that.
    pub fn new(http: reqwest::Client, config: PromptConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                http,
                cache: Arc::new(Cache::new(config.cache_bytes)),
                config,
                tts_missing_logged: AtomicBool::new(false),
            }),
        }
    }

    /// The settings this instance runs with.
    pub fn config(&self) -> &PromptConfig {
        &self.inner.config
    }

    /// Fetches an mp3 or wav file with GET and returns it as mono PCM at `rate` Hz.
    ///
    /// The URL fragment (Plivo's `#ct=…` options) is stripped and never sent. The format is
    /// probed from the content, with the URL extension or `Content-Type` as a hint. Results
    /// are cached by (URL without fragment, rate); concurrent requests for one key share a
    /// single fetch, and failures are not cached.
    pub async fn audio_url(&self, url: &str, rate: u32) -> Result<Pcm, PromptError> {
        let request = check_rate(rate).and_then(|()| fetch::parse_url(url));
        let url = match request {
            Ok(url) => url,
            Err(e) => return Err(count(e)),
        };
        let key = Key::Audio {
            url: url.to_string(),
            rate,
        };
        let inner = Arc::clone(&self.inner);
        let load = async move {
            let shown = fetch::shorten(url.as_str());
            let result = async {
                let fetched = fetch::fetch(
                    &inner.http,
                    &url,
                    inner.config.max_file_bytes,
                    inner.config.fetch_timeout,
                )
                .await?;
                let samples =
                    blocking(move || decode_audio(&fetched.bytes, fetched.hint.as_deref(), rate))
                        .await
                        .map_err(|e| e.about(&shown))?;
                Ok(Pcm { samples, rate })
            }
            .await;
            if let Err(e) = &result {
                tracing::warn!(url = %shown, error = %e, "audio prompt failed");
            }
            result.map_err(count)
        };
        self.inner.cache.get_or_load(key, load).await
    }

    /// Synthesizes `text` with espeak-ng and returns it as mono PCM at `rate` Hz.
    ///
    /// `voice` (`WOMAN`, `MAN`, `Polly.<Name>`) and `language` (`en-US`, ...) are mapped with
    /// [`espeak_voice`]. The text is passed as a single argument, never through a shell.
    /// Results are cached by (text, voice, language, rate). Text longer than
    /// `max_speech_chars` fails with [`PromptError::TextTooLong`]; blank text gives empty PCM
    /// without running the synthesizer. A missing binary gives [`PromptError::TtsMissing`].
    pub async fn speech(
        &self,
        text: &str,
        voice: &str,
        language: &str,
        rate: u32,
    ) -> Result<Pcm, PromptError> {
        check_rate(rate).map_err(count)?;
        let chars = text.chars().count();
        let limit = self.inner.config.max_speech_chars;
        if chars > limit {
            return Err(count(PromptError::TextTooLong {
                chars,
                limit,
                excerpt: error::excerpt(text, 40),
            }));
        }
        if text.trim().is_empty() {
            return Ok(Pcm {
                samples: Arc::new([]),
                rate,
            });
        }
        let key = Key::Speech {
            text: text.to_owned(),
            voice: voice.to_owned(),
            language: language.to_owned(),
            rate,
        };
        let inner = Arc::clone(&self.inner);
        let espeak = espeak_voice(voice, language);
        let text = text.to_owned();
        let load = async move {
            let shown = format!("speech \"{}\"", error::excerpt(&text, 40));
            let result = async {
                let wav = tts::synthesize(
                    &inner.config.tts_command,
                    &espeak,
                    &text,
                    inner.config.tts_timeout,
                )
                .await?;
                let samples = blocking(move || decode_audio(&wav, Some("wav"), rate))
                    .await
                    .map_err(|e| e.about(&shown))?;
                Ok(Pcm { samples, rate })
            }
            .await;
            match &result {
                Err(e @ PromptError::TtsMissing { .. }) => {
                    if !inner.tts_missing_logged.swap(true, Ordering::Relaxed) {
                        tracing::error!(error = %e, "<Speak> cannot work until this is fixed");
                    }
                }
                Err(e) => tracing::warn!(text = %shown, error = %e, "speech prompt failed"),
                Ok(_) => {}
            }
            result.map_err(count)
        };
        self.inner.cache.get_or_load(key, load).await
    }
}

/// Runs CPU-bound decoding on the blocking pool; a panic there becomes an error, not a crash.
async fn blocking(
    work: impl FnOnce() -> Result<Vec<i16>, PromptError> + Send + 'static,
) -> Result<Arc<[i16]>, PromptError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map(Arc::from),
        Err(e) => Err(PromptError::Internal {
            what: "audio bytes".into(),
            detail: format!("decoder task failed: {e}"),
        }),
    }
}

/// Counts an error in `huddle_prompt_errors_total{kind}` and passes it on.
fn count(error: PromptError) -> PromptError {
    metrics::counter!("huddle_prompt_errors_total", "kind" => error.kind()).increment(1);
    error
}
