//! The audio a room plays by itself: entry/exit beeps, and the documents behind waitMusicUrl,
//! the hold music URLs and sound URLs (XML with Play, Speak and Wait, mpc-xml.md §6.1),
//! rendered once into PCM off the media path.

use std::sync::Arc;

use huddle_events::fetch::{self, CallParams};
use huddle_prompts::Prompts;
use huddle_xml::{UrlWithMethod, Verb};

use crate::state::Target;

/// Frequency of `beep:1` (entry by default).
pub const BEEP1_HZ: f64 = 800.0;
/// Frequency of `beep:2` (exit by default).
pub const BEEP2_HZ: f64 = 500.0;

/// `beep:1`: one 250 ms beep.
pub fn beep1(rate: u32) -> Arc<[i16]> {
    let mut pcm = tone(BEEP1_HZ, rate, 250);
    pcm.extend(silence(rate, 50));
    pcm.into()
}

/// `beep:2`: two 150 ms beeps 100 ms apart.
pub fn beep2(rate: u32) -> Arc<[i16]> {
    let mut pcm = tone(BEEP2_HZ, rate, 150);
    pcm.extend(silence(rate, 100));
    pcm.extend(tone(BEEP2_HZ, rate, 150));
    pcm.extend(silence(rate, 50));
    pcm.into()
}

/// Longest dial music played in one go (the longest ring the API allows is bounded anyway).
pub const MAX_DIAL_MUSIC_SECS: u64 = 180;

/// `dial_music="real"`: the North American ringback cadence (440 + 480 Hz, 2 s on, 4 s off),
/// `secs` long (at most [`MAX_DIAL_MUSIC_SECS`]).
pub fn ringback(rate: u32, secs: u64) -> Arc<[i16]> {
    let mut cycle = vec![0i16; (rate * 2) as usize];
    let mut high = vec![0i16; cycle.len()];
    huddle_media::tone::ToneGenerator::new(440.0, 4000.0, rate).fill(&mut cycle);
    huddle_media::tone::ToneGenerator::new(480.0, 4000.0, rate).fill(&mut high);
    for (a, b) in cycle.iter_mut().zip(&high) {
        *a = a.saturating_add(*b);
    }
    cycle.extend(silence(rate, 4000));
    repeat(&cycle, rate, secs).into()
}

/// `pcm` over and over for `secs` (at most [`MAX_DIAL_MUSIC_SECS`]).
pub fn repeat(pcm: &[i16], rate: u32, secs: u64) -> Vec<i16> {
    let len = (secs.min(MAX_DIAL_MUSIC_SECS) * u64::from(rate)) as usize;
    if pcm.is_empty() {
        return Vec::new();
    }
    pcm.iter().copied().cycle().take(len).collect()
}

fn tone(freq: f64, rate: u32, ms: u32) -> Vec<i16> {
    let n = (rate * ms / 1000) as usize;
    let mut pcm = vec![0i16; n];
    huddle_media::tone::ToneGenerator::new(freq, 8000.0, rate).fill(&mut pcm);
    pcm
}

fn silence(rate: u32, ms: u32) -> Vec<i16> {
    vec![0; (rate * ms / 1000) as usize]
}

/// Longest rendered document: a bed of music longer than this is cut (memory bound).
const MAX_RENDER_SECS: u32 = 600;

/// Fetches an audio document and renders its Play/Speak/Wait verbs into one PCM buffer.
/// Any failure means silence (None), never a failed call (mpc-xml.md §6.1), with a log line.
pub async fn render_document(
    http: &huddle_events::HttpClient,
    prompts: &Prompts,
    target: &UrlWithMethod,
    params: &CallParams,
    extra: &[(String, String)],
    rate: u32,
) -> Option<Arc<[i16]>> {
    let mut pairs = params.pairs("in-progress", "MPCAudio");
    pairs.extend(extra.iter().cloned());
    let body = match fetch::fetch_xml(http, &target.url, target.method, &pairs).await {
        Ok(body) => body,
        Err(err) => {
            tracing::warn!(error = %err, "room audio document unavailable: silence instead");
            return None;
        }
    };
    let parsed = match huddle_xml::parse_audio_only(&body) {
        Ok(p) => p,
        Err(errors) => {
            for e in &errors {
                tracing::warn!(url = %target.url, error = %e, "room audio document invalid");
            }
            return None;
        }
    };
    let limit = (MAX_RENDER_SECS * rate) as usize;
    let mut pcm: Vec<i16> = Vec::new();
    for verb in &parsed.document.verbs {
        match verb {
            Verb::Play(play) => match prompts.audio_url(&play.url, rate).await {
                Ok(p) => {
                    for _ in 0..play.loop_count.max(1) {
                        pcm.extend_from_slice(&p.samples);
                        if pcm.len() >= limit {
                            break;
                        }
                    }
                }
                Err(err) => {
                    tracing::warn!(url = %play.url, error = %err, "room audio Play skipped")
                }
            },
            Verb::Speak(speak) => match prompts
                .speech(&speak.text, &speak.voice, &speak.language, rate)
                .await
            {
                Ok(p) => {
                    for _ in 0..speak.loop_count.max(1) {
                        pcm.extend_from_slice(&p.samples);
                    }
                }
                Err(err) => tracing::warn!(error = %err, "room audio Speak skipped"),
            },
            Verb::Wait(wait) => pcm.extend(silence(rate, wait.length_secs.saturating_mul(1000))),
            _ => {}
        }
        if pcm.len() >= limit {
            pcm.truncate(limit);
            break;
        }
    }
    (!pcm.is_empty()).then(|| pcm.into())
}

/// A shared position in a looping bed of music: everyone waiting hears the same point.
#[derive(Debug, Default)]
pub struct MusicLoop {
    pcm: Option<Arc<[i16]>>,
    position: usize,
}

impl MusicLoop {
    /// Replaces the music (None: silence).
    pub fn set(&mut self, pcm: Option<Arc<[i16]>>) {
        self.pcm = pcm;
        self.position = 0;
    }

    /// Whether any music is loaded.
    /// Takes the loop's audio out (the room is switching rate and converts it), leaving it
    /// silent.
    pub fn take(&mut self) -> Option<Arc<[i16]>> {
        self.position = 0;
        self.pcm.take()
    }

    pub fn is_loaded(&self) -> bool {
        self.pcm.is_some()
    }

    /// The next frame into `out` (silence when nothing is loaded). Called once per tick.
    pub fn advance(&mut self, out: &mut [i16]) {
        let Some(pcm) = self.pcm.as_ref().filter(|p| !p.is_empty()) else {
            out.fill(0);
            return;
        };
        for s in out.iter_mut() {
            if self.position >= pcm.len() {
                self.position = 0;
            }
            *s = pcm[self.position];
            self.position += 1;
        }
    }
}

/// One sound being played to one listener.
#[derive(Debug, Clone)]
pub struct SoundCursor {
    pcm: Arc<[i16]>,
    position: usize,
    /// The target of the Play command that started it (None: a room sound such as a beep).
    play: Option<Target>,
}

impl SoundCursor {
    /// From the start.
    pub fn new(pcm: Arc<[i16]>) -> Self {
        SoundCursor {
            pcm,
            position: 0,
            play: None,
        }
    }

    /// A Play command's audio, from the start.
    pub fn play(pcm: Arc<[i16]>, form: Target) -> Self {
        SoundCursor {
            pcm,
            position: 0,
            play: Some(form),
        }
    }

    /// Started by a Play command with this target.
    /// What is left to play, converted from `from` Hz to `to` Hz (the room switched rate
    /// while it played). Allocates: called at a switch, never per tick.
    pub fn convert(&mut self, from: u32, to: u32) {
        let rest = &self.pcm[self.position.min(self.pcm.len())..];
        match huddle_media::resample::resample_all(rest, from, to) {
            Ok(converted) => self.pcm = converted.into(),
            // Cannot happen for the rates a room runs at; the sound ends rather than play at
            // the wrong speed.
            Err(_) => self.pcm = Arc::from(Vec::new()),
        }
        self.position = 0;
    }

    pub fn is_play(&self, form: &Target) -> bool {
        self.play.as_ref() == Some(form)
    }

    /// The next frame of the sound (silence-padded); false once finished.
    pub fn next_frame(&mut self, out: &mut [i16]) -> bool {
        let rest = &self.pcm[self.position.min(self.pcm.len())..];
        if rest.is_empty() {
            return false;
        }
        let n = rest.len().min(out.len());
        out[..n].copy_from_slice(&rest[..n]);
        out[n..].fill(0);
        self.position += n;
        true
    }
}
