//! What a dialled participant gets between its answer and its document (add participant's
//! `send_digits`, `confirm_key` and `confirm_key_sound_url`): digits sent as RFC 4733 events,
//! then, with a confirm key, the confirm sound on a loop until the callee presses the key. A
//! wrong key, or none within [`CONFIRM_TIMEOUT`], hangs the callee up (9110) without joining.

use std::sync::Arc;
use std::time::Duration;

use huddle_events::fetch;
use huddle_roomport::HangupCause;
use huddle_xml::{HttpMethod, Verb};
use tokio::sync::mpsc;

use super::{parse, Ending, Pumped, XmlCall, FRAME, RATE};
use crate::playback::{FrameSource, PcmPlayer, Silence};

/// How long a callee has to press the confirm key.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// Length of each digit sent by `send_digits`, and the pause after it.
const DIGIT_MS: u32 = 100;
const GAP_FRAMES: u32 = 5;

/// What a dialled leg does once answered, before its document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AfterAnswer {
    /// `send_digits`: digits, with `w` (0.5 s) and `W` (1 s) pauses, sent after the answer.
    pub send_digits: Option<String>,
    /// `send_on_preanswer`: the digits go out on the callee's early media (a 183 with SDP),
    /// before the answer, as Plivo sends them then. A callee that answers without early media
    /// gets them after the answer, as without this flag.
    pub send_on_preanswer: bool,
    /// `confirm_key` with its sound.
    pub confirm: Option<ConfirmKey>,
}

/// The key a callee must press to join, and what it hears meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmKey {
    /// 0-9, `#` or `*`.
    pub key: char,
    /// `confirm_key_sound_url`: a document of Play, Speak and Wait verbs (the prompt).
    pub sound_url: Option<String>,
    /// `confirm_key_sound_method` (GET by default).
    pub sound_method: HttpMethod,
}

/// Checks `send_digits`: digits 0-9, `*`, `#`, A-D, and the pauses `w` and `W`.
pub fn valid_digits(digits: &str) -> bool {
    !digits.is_empty()
        && digits.len() <= 64
        && digits
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D' | 'w' | 'W'))
}

/// Silence, with each digit raised at its frame: a digit takes its length and a short gap,
/// `w` half a second, `W` a second.
struct DigitSender {
    /// (frame at which to send, digit), in order.
    schedule: Vec<(u32, char)>,
    next: usize,
    frame: u32,
    end: u32,
    due: Option<char>,
}

impl DigitSender {
    fn new(digits: &str) -> Self {
        let mut schedule = Vec::with_capacity(digits.len());
        let mut at = 0u32;
        for c in digits.chars() {
            match c {
                'w' => at += 25,
                'W' => at += 50,
                digit => {
                    schedule.push((at, digit));
                    at += DIGIT_MS / 20 + GAP_FRAMES;
                }
            }
        }
        DigitSender {
            schedule,
            next: 0,
            frame: 0,
            end: at,
            due: None,
        }
    }
}

impl FrameSource for DigitSender {
    fn fill(&mut self, out: &mut [i16]) -> bool {
        out.fill(0);
        if self.frame > self.end {
            return false;
        }
        if let Some(&(at, digit)) = self.schedule.get(self.next) {
            if at <= self.frame {
                self.due = Some(digit);
                self.next += 1;
            }
        }
        self.frame += 1;
        true
    }

    fn take_dtmf(&mut self) -> Option<(char, u32)> {
        self.due.take().map(|d| (d, DIGIT_MS))
    }
}

impl XmlCall {
    /// Sets what the leg does once answered, before its document.
    pub fn after_answer(mut self, after: AfterAnswer) -> Self {
        self.after_answer = Some(after);
        self
    }

    /// Digits that started on the callee's early media and are not all out yet: the rest go
    /// out on the answered call's tick while its first verbs run.
    pub(crate) fn early_digits_left(mut self, player: crate::input::DtmfPlayer) -> Self {
        self.async_dtmf = Some(player);
        self
    }

    /// Runs the digits and the confirm key challenge; an error ends the call.
    pub(super) async fn run_after_answer(&mut self, after: AfterAnswer) -> Result<(), Ending> {
        if let Some(digits) = after.send_digits.as_deref() {
            tracing::info!(%digits, "sending digits to the answered callee");
            self.play_source(&mut DigitSender::new(digits)).await?;
        }
        if let Some(confirm) = after.confirm {
            self.confirm(confirm).await?;
        }
        Ok(())
    }

    async fn confirm(&mut self, confirm: ConfirmKey) -> Result<(), Ending> {
        let prompt = match confirm.sound_url.as_deref() {
            Some(url) => self.confirm_sound(url, confirm.sound_method).await?,
            None => Vec::new(),
        };
        let (tap, mut digits) = mpsc::unbounded_channel();
        self.dtmf_tap = Some(tap);
        let mut source: Box<dyn FrameSource> = if prompt.is_empty() {
            Box::new(Silence::forever())
        } else {
            Box::new(PcmPlayer::new(Arc::from(prompt), 0))
        };
        let pressed = async {
            tokio::time::timeout(CONFIRM_TIMEOUT, digits.recv())
                .await
                .ok()
                .flatten()
        };
        let outcome = self.pump(&mut *source, None, None, pressed).await;
        self.dtmf_tap = None;
        match outcome? {
            Pumped::Ready(Some(digit)) if digit == confirm.key => {
                tracing::info!(%digit, "the callee confirmed: joining");
                Ok(())
            }
            Pumped::Ready(Some(digit)) => {
                tracing::info!(%digit, expected = %confirm.key, "wrong confirm key: hanging up");
                Err(Ending::local(HangupCause::ConfirmKeyFailed))
            }
            // Without ears nothing is heard; the arm keeps the match whole.
            Pumped::Ready(None) | Pumped::SourceDone | Pumped::Heard => {
                tracing::info!("no confirm key in time: hanging up");
                Err(Ending::local(HangupCause::ConfirmKeyFailed))
            }
        }
    }

    /// The confirm prompt: the document at `url` (Play, Speak and Wait verbs) rendered to
    /// PCM. A document that cannot be fetched or read leaves the callee in silence: the
    /// challenge still stands.
    async fn confirm_sound(&mut self, url: &str, method: HttpMethod) -> Result<Vec<i16>, Ending> {
        let params = self.params.pairs("in-progress", "ConfirmKeySound");
        let http = self.ctx.http.clone();
        let body = match self
            .pump_until(fetch::fetch_xml(&http, url, method, &params))
            .await?
        {
            Ok(body) => body,
            Err(error) => {
                tracing::warn!(%error, "confirm_key_sound_url cannot be fetched: no prompt");
                return Ok(Vec::new());
            }
        };
        let Ok(document) = parse(
            &body,
            "confirm_key_sound_url",
            HangupCause::InvalidAnswerXml,
        ) else {
            return Ok(Vec::new());
        };
        let prompts = self.ctx.prompts.clone();
        let mut pcm = Vec::new();
        for verb in &document.verbs {
            match verb {
                Verb::Play(play) => {
                    match self.pump_until(prompts.audio_url(&play.url, RATE)).await? {
                        Ok(audio) => pcm.extend_from_slice(&audio.samples),
                        Err(error) => {
                            tracing::warn!(url = %play.url, %error, "confirm prompt Play skipped")
                        }
                    }
                }
                Verb::Speak(speak) => {
                    let synth = prompts.speech(&speak.text, &speak.voice, &speak.language, RATE);
                    match self.pump_until(synth).await? {
                        Ok(audio) => pcm.extend_from_slice(&audio.samples),
                        Err(error) => tracing::warn!(%error, "confirm prompt Speak skipped"),
                    }
                }
                Verb::Wait(wait) => {
                    pcm.resize(pcm.len() + wait.length_secs as usize * FRAME * 50, 0);
                }
                _ => {
                    tracing::warn!("a confirm prompt holds only Play, Speak and Wait: verb skipped")
                }
            }
        }
        Ok(pcm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(digits: &str) -> Vec<(u32, char)> {
        let mut source = DigitSender::new(digits);
        let mut out = [0i16; FRAME];
        let mut frame = 0;
        let mut seen = Vec::new();
        while source.fill(&mut out) {
            if let Some((digit, ms)) = source.take_dtmf() {
                assert_eq!(ms, DIGIT_MS);
                seen.push((frame, digit));
            }
            frame += 1;
        }
        seen
    }

    #[test]
    fn digits_are_spaced_and_waits_pause() {
        assert_eq!(sent("12"), vec![(0, '1'), (10, '2')]);
        assert_eq!(sent("1w2"), vec![(0, '1'), (35, '2')]);
        assert_eq!(sent("W#"), vec![(50, '#')]);
    }

    #[test]
    fn digit_strings_are_checked() {
        assert!(valid_digits("123w4W#*A"));
        for bad in ["", "12x", "1 2", "1\r\n", &"1".repeat(65)] {
            assert!(!valid_digits(bad), "{bad:?}");
        }
    }
}
