//! What a call hears from its caller while a verb listens (digits for GetDigits and GetInput,
//! voice and keys for Record), and the digits the DTMF verb sends. Pure state: the executor
//! feeds frames and digits and asks what to do.

use crate::playback::FrameSource;

/// A listener fed by the call's pump with what the caller sends outside a room.
pub trait Ears: Send {
    /// One decoded 20 ms frame of the caller's audio; true ends the wait.
    fn frame(&mut self, _pcm: &[i16]) -> bool {
        false
    }

    /// A digit the caller pressed (RFC 4733); true ends the wait.
    fn digit(&mut self, digit: char) -> bool;

    /// Whether digits may be written to the log (`log="false"` keeps them out).
    fn loggable(&self) -> bool {
        true
    }
}

/// Stops at the first digit and keeps it.
#[derive(Debug, Default)]
pub struct FirstDigit {
    /// The digit, once pressed.
    pub digit: Option<char>,
    /// Digits may be logged.
    pub log: bool,
}

impl Ears for FirstDigit {
    fn digit(&mut self, digit: char) -> bool {
        self.digit = Some(digit);
        true
    }

    fn loggable(&self) -> bool {
        self.log
    }
}

/// The rules of one digit collection (GetDigits or GetInput).
#[derive(Debug, Clone)]
pub struct DigitRules {
    /// The key that submits the digits (not part of them).
    pub finish_on_key: Option<char>,
    /// Most digits; reaching it submits them.
    pub max_digits: u32,
    /// Keys accepted as digits.
    pub valid: String,
}

/// What one key press does to a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Keep listening.
    More,
    /// The input is complete.
    Done,
    /// A key outside the valid set: this attempt failed.
    Invalid,
}

/// Digits being collected under [`DigitRules`].
#[derive(Debug, Clone)]
pub struct DigitCollector {
    rules: DigitRules,
    digits: String,
}

impl DigitCollector {
    /// An empty collection.
    pub fn new(rules: DigitRules) -> Self {
        DigitCollector {
            rules,
            digits: String::new(),
        }
    }

    /// Feeds one key press.
    pub fn press(&mut self, key: char) -> Step {
        if Some(key) == self.rules.finish_on_key {
            return Step::Done;
        }
        if !self.rules.valid.contains(key) {
            return Step::Invalid;
        }
        self.digits.push(key);
        if self.digits.len() as u32 >= self.rules.max_digits {
            Step::Done
        } else {
            Step::More
        }
    }

    /// The digits so far.
    pub fn digits(&self) -> &str {
        &self.digits
    }
}

/// How long one DTMF tone lasts, and the gap after it: 100 ms each, the common default of
/// phones and Plivo alike.
pub const DIGIT_MS: u32 = 100;
const DIGIT_FRAMES: u32 = 2 * DIGIT_MS / 20;
/// `w`: half a second; `W`: one second.
const SHORT_PAUSE_FRAMES: u32 = 25;
const LONG_PAUSE_FRAMES: u32 = 50;

/// The `<DTMF>` verb's digits, one 20 ms step at a time: each digit starts on a step and is
/// followed by its tone time and a gap; `w` and `W` only wait.
#[derive(Debug, Clone)]
pub struct DtmfPlayer {
    items: Vec<char>,
    next: usize,
    wait_frames: u32,
    pending: Option<char>,
}

impl DtmfPlayer {
    /// A player for `digits` (already validated by the XML parser).
    pub fn new(digits: &str) -> Self {
        DtmfPlayer {
            items: digits.chars().collect(),
            next: 0,
            wait_frames: 0,
            pending: None,
        }
    }

    /// Advances one 20 ms frame: the digit to start now, if any, and whether anything is left
    /// (a digit's tone and gap count as left).
    pub fn step(&mut self) -> (Option<char>, bool) {
        if self.wait_frames > 0 {
            self.wait_frames -= 1;
            return (None, true);
        }
        let Some(&item) = self.items.get(self.next) else {
            return (None, false);
        };
        self.next += 1;
        match item {
            'w' => {
                self.wait_frames = SHORT_PAUSE_FRAMES - 1;
                (None, true)
            }
            'W' => {
                self.wait_frames = LONG_PAUSE_FRAMES - 1;
                (None, true)
            }
            digit => {
                self.wait_frames = DIGIT_FRAMES - 1;
                (Some(digit.to_ascii_uppercase()), true)
            }
        }
    }
}

impl FrameSource for DtmfPlayer {
    fn fill(&mut self, out: &mut [i16]) -> bool {
        out.fill(0);
        let (digit, more) = self.step();
        self.pending = digit;
        more
    }

    fn take_dtmf(&mut self) -> Option<(char, u32)> {
        self.pending.take().map(|d| (d, DIGIT_MS))
    }
}

/// Mean absolute level under which a frame counts as silence for `<Record timeout>`: about
/// -50 dBFS, above line noise and comfort noise, far below speech.
const SILENCE_LEVEL: u64 = 100;

/// Tells when the caller has been silent for long enough.
#[derive(Debug, Clone)]
pub struct SilenceTimer {
    limit_frames: u32,
    silent_frames: u32,
}

impl SilenceTimer {
    /// Ends after `secs` seconds of consecutive silent frames.
    pub fn new(secs: u32) -> Self {
        SilenceTimer {
            limit_frames: secs.saturating_mul(50),
            silent_frames: 0,
        }
    }

    /// Feeds a frame; true once the silence has lasted the limit.
    pub fn frame(&mut self, pcm: &[i16]) -> bool {
        let level =
            pcm.iter().map(|s| u64::from(s.unsigned_abs())).sum::<u64>() / pcm.len().max(1) as u64;
        if level < SILENCE_LEVEL {
            self.silent_frames += 1;
        } else {
            self.silent_frames = 0;
        }
        self.silent_frames >= self.limit_frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(finish: Option<char>, max: u32, valid: &str) -> DigitRules {
        DigitRules {
            finish_on_key: finish,
            max_digits: max,
            valid: valid.to_string(),
        }
    }

    #[test]
    fn finish_key_submits_without_itself() {
        let mut c = DigitCollector::new(rules(Some('#'), 99, "1234567890*#"));
        assert_eq!(c.press('4'), Step::More);
        assert_eq!(c.press('2'), Step::More);
        assert_eq!(c.press('#'), Step::Done);
        assert_eq!(c.digits(), "42");
    }

    #[test]
    fn max_digits_submit_and_invalid_keys_fail() {
        let mut c = DigitCollector::new(rules(None, 2, "12"));
        assert_eq!(c.press('1'), Step::More);
        assert_eq!(c.press('2'), Step::Done);
        let mut c = DigitCollector::new(rules(None, 2, "12"));
        assert_eq!(c.press('3'), Step::Invalid);
        assert_eq!(c.press('#'), Step::Invalid);
    }

    #[test]
    fn dtmf_player_paces_digits_and_pauses() {
        let mut p = DtmfPlayer::new("1w2");
        let mut starts = Vec::new();
        let mut frame = 0;
        loop {
            let (digit, more) = p.step();
            if let Some(d) = digit {
                starts.push((d, frame));
            }
            if !more {
                break;
            }
            frame += 1;
            assert!(frame < 1000);
        }
        // '1' at 0, its 10 frames, then 25 frames of pause, then '2'.
        assert_eq!(starts, vec![('1', 0), ('2', 35)]);
        assert_eq!(frame, 45);
    }

    #[test]
    fn silence_timer_needs_consecutive_silence() {
        let mut t = SilenceTimer::new(1);
        let loud = [3000i16; 160];
        let quiet = [10i16; 160];
        for _ in 0..49 {
            assert!(!t.frame(&quiet));
        }
        assert!(!t.frame(&loud));
        for _ in 0..49 {
            assert!(!t.frame(&quiet));
        }
        assert!(t.frame(&quiet));
    }
}
