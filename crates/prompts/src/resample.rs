//! Streaming sample-rate conversion of mono `f32` audio to `i16` with rubato.
//!
//! Decoded audio is pushed in as it comes out of the decoder, so only the output (at the call's
//! rate) is ever held in full, never a whole file at its source rate. The resampler's start-up
//! delay is trimmed and its tail flushed, so `n` input frames give exactly
//! `ceil(n * to / from)` output frames with nothing lost at either end.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Async, Fft, FixedAsync, FixedSync, Indexing, Resampler, SincInterpolationParameters};

use crate::PromptError;

/// Input frames per resampler call: large enough to amortise the FFT, small enough that the
/// pending input stays tiny.
const CHUNK: usize = 1024;

/// Largest reduced rate ratio term (`rate / gcd`) for which the synchronous FFT resampler is
/// used. 44.1k↔8k is 441:80 and 22.05k↔16k is 441:320; odd rates with larger terms would need
/// huge FFTs, so they go through the asynchronous sinc resampler instead.
const MAX_FFT_TERM: u32 = 2048;

/// Converts one mono stream from `from` Hz to `to` Hz.
pub(crate) struct StreamResampler {
    /// `None` when the rates are equal: samples are only converted.
    engine: Option<Box<dyn Resampler<f32>>>,
    /// Input not yet handed to the engine (less than one chunk after each `push`).
    pending: Vec<f32>,
    /// Scratch output of one engine call.
    scratch: Vec<f32>,
    out: Vec<i16>,
    /// Output frames still to drop: the engine's start-up delay.
    to_trim: usize,
    input_total: u64,
    from: u32,
    to: u32,
    max_out: usize,
}

impl StreamResampler {
    /// A resampler whose output may hold at most `max_out` samples; pushing more input than
    /// that corresponds to fails with [`PromptError::TooLong`].
    pub(crate) fn new(from: u32, to: u32, max_out: usize) -> Result<Self, PromptError> {
        let engine: Option<Box<dyn Resampler<f32>>> = if from == to {
            None
        } else {
            let g = gcd(from, to);
            let built: Result<Box<dyn Resampler<f32>>, rubato::ResamplerConstructionError> =
                if from / g <= MAX_FFT_TERM && to / g <= MAX_FFT_TERM {
                    // Fixed-ratio FFT resampling has a proper anti-aliasing filter and is the
                    // cheapest option for the usual 8k/11.025k/16k/22.05k/44.1k/48k rates.
                    Fft::<f32>::new(from as usize, to as usize, CHUNK, 1, FixedSync::Both)
                        .map(|r| Box::new(r) as Box<dyn Resampler<f32>>)
                } else {
                    // Sinc interpolation also low-passes below the lower Nyquist frequency;
                    // the polynomial variant does not, so it would alias when downsampling.
                    Async::<f32>::new_sinc(
                        f64::from(to) / f64::from(from),
                        1.0,
                        &SincInterpolationParameters::default(),
                        CHUNK,
                        1,
                        FixedAsync::Input,
                    )
                    .map(|r| Box::new(r) as Box<dyn Resampler<f32>>)
                };
            Some(built.map_err(|e| PromptError::Decode {
                what: "audio bytes".into(),
                detail: format!("cannot resample {from} Hz to {to} Hz: {e}"),
            })?)
        };
        let (scratch, to_trim) = match &engine {
            Some(e) => (vec![0.0; e.output_frames_max()], e.output_delay()),
            None => (Vec::new(), 0),
        };
        Ok(Self {
            engine,
            pending: Vec::with_capacity(2 * CHUNK),
            scratch,
            out: Vec::new(),
            to_trim,
            input_total: 0,
            from,
            to,
            max_out,
        })
    }

    /// Output frames that `input_total` input frames turn into.
    fn expected_out(&self) -> u64 {
        (self.input_total * u64::from(self.to)).div_ceil(u64::from(self.from))
    }

    /// Feeds more input and resamples every complete chunk.
    pub(crate) fn push(&mut self, samples: &[f32]) -> Result<(), PromptError> {
        self.input_total += samples.len() as u64;
        if self.expected_out() > self.max_out as u64 {
            return Err(PromptError::TooLong {
                what: "audio bytes".into(),
                limit_secs: crate::MAX_DURATION.as_secs(),
            });
        }
        let Some(engine) = self.engine.as_mut() else {
            self.out.extend(samples.iter().map(|&s| to_i16(s)));
            return Ok(());
        };
        self.pending.extend_from_slice(samples);
        let mut offset = 0;
        while self.pending.len() - offset >= engine.input_frames_next() {
            let (used, made) = run(
                engine.as_mut(),
                &self.pending[offset..],
                &mut self.scratch,
                None,
            )?;
            offset += used;
            emit(&mut self.out, &mut self.to_trim, &self.scratch[..made]);
        }
        self.pending.drain(..offset);
        Ok(())
    }

    /// Resamples what is left, flushes the engine's delay line and returns the whole output.
    pub(crate) fn finish(mut self) -> Result<Vec<i16>, PromptError> {
        let expected = usize::try_from(self.expected_out()).unwrap_or(usize::MAX);
        let Some(engine) = self.engine.as_mut() else {
            return Ok(self.out);
        };
        if !self.pending.is_empty() {
            let partial = Indexing::new().partial_len(self.pending.len());
            let (_, made) = run(
                engine.as_mut(),
                &self.pending,
                &mut self.scratch,
                Some(&partial),
            )?;
            emit(&mut self.out, &mut self.to_trim, &self.scratch[..made]);
        }
        // Pump silence until the delayed tail has come out. The bound only guards against an
        // engine that stops producing output; normally a few calls suffice.
        let silence = Indexing::new().partial_len(0);
        let mut rounds = 0;
        while self.out.len() < expected && rounds < 64 {
            let (_, made) = run(engine.as_mut(), &[], &mut self.scratch, Some(&silence))?;
            emit(&mut self.out, &mut self.to_trim, &self.scratch[..made]);
            rounds += 1;
        }
        self.out.truncate(expected);
        Ok(self.out)
    }
}

/// One engine call over `input` into `scratch`; returns (input frames used, output frames).
fn run(
    engine: &mut dyn Resampler<f32>,
    input: &[f32],
    scratch: &mut [f32],
    indexing: Option<&Indexing>,
) -> Result<(usize, usize), PromptError> {
    let fail = |detail: String| PromptError::Decode {
        what: "audio bytes".into(),
        detail: format!("resampling failed: {detail}"),
    };
    let frames_out = scratch.len();
    let input = InterleavedSlice::new(input, 1, input.len()).map_err(|e| fail(e.to_string()))?;
    let mut output =
        InterleavedSlice::new_mut(scratch, 1, frames_out).map_err(|e| fail(e.to_string()))?;
    engine
        .process_into_buffer(&input, &mut output, indexing)
        .map_err(|e| fail(e.to_string()))
}

/// Appends `chunk` to `out` after dropping what is left of the start-up delay.
fn emit(out: &mut Vec<i16>, to_trim: &mut usize, chunk: &[f32]) {
    let skip = (*to_trim).min(chunk.len());
    *to_trim -= skip;
    out.extend(chunk[skip..].iter().map(|&s| to_i16(s)));
}

/// Full scale is ±1.0, as symphonia produces; out-of-range values clip, NaN becomes 0.
fn to_i16(sample: f32) -> i16 {
    // `as` saturates and maps NaN to 0, so hostile float input cannot wrap around.
    (sample * 32768.0).round() as i16
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resample(input: &[f32], from: u32, to: u32, piece: usize) -> Vec<i16> {
        let mut r = StreamResampler::new(from, to, usize::MAX).unwrap();
        for part in input.chunks(piece.max(1)) {
            r.push(part).unwrap();
        }
        r.finish().unwrap()
    }

    #[test]
    fn lengths_are_exact_for_common_rates() {
        for (from, to) in [
            (8000, 16000),
            (16000, 8000),
            (44100, 8000),
            (22050, 16000),
            (48000, 8000),
            (11025, 48000),
            (8000, 8000),
            (44123, 8000), // odd rate: sinc path
        ] {
            for n in [0usize, 1, 100, 1023, 1024, 1025, 12345] {
                let input = vec![0.25f32; n];
                let out = resample(&input, from, to, 777);
                let expected = (n as u64 * to as u64).div_ceil(from as u64) as usize;
                assert_eq!(out.len(), expected, "{from}->{to}, {n} frames");
            }
        }
    }

    #[test]
    fn dc_level_is_kept_and_no_leading_silence() {
        let input = vec![0.5f32; 16000];
        let out = resample(&input, 16000, 8000, 1000);
        // The first output sample already carries signal: the start-up delay was trimmed.
        assert!(out[10] > 10000, "{}", out[10]);
        let mid = out[4000];
        assert!((mid as i32 - 16384).abs() < 200, "{mid}");
    }

    #[test]
    fn chunking_does_not_change_the_result() {
        let input: Vec<f32> = (0..5000).map(|i| ((i as f32) * 0.01).sin() * 0.5).collect();
        let a = resample(&input, 44100, 16000, 1);
        let b = resample(&input, 44100, 16000, 5000);
        assert_eq!(a, b);
    }

    #[test]
    fn too_long_is_rejected() {
        let mut r = StreamResampler::new(16000, 8000, 100).unwrap();
        assert!(r.push(&[0.0; 200]).is_ok());
        assert!(matches!(
            r.push(&[0.0; 2]),
            Err(PromptError::TooLong { .. })
        ));
    }

    #[test]
    fn conversion_clips_and_zeroes_nan() {
        assert_eq!(to_i16(2.0), i16::MAX);
        assert_eq!(to_i16(-2.0), i16::MIN);
        assert_eq!(to_i16(f32::NAN), 0);
        assert_eq!(to_i16(0.5), 16384);
    }
}
