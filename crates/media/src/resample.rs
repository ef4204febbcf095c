//! One 20 ms frame at a time from one sample rate to another: a wideband leg's frames to and
//! from an 8 kHz room (or the 8 kHz call flow), a narrowband member in a 16 kHz room, a
//! recording that keeps its rate when its room switches. [`resample_all`] converts a whole
//! buffer (music, a sound) the same way, off the tick.
//!
//! rubato's FFT resampler with a fixed chunk of one frame (160 ↔ 320 samples between 8 and
//! 16 kHz): anti-aliased both ways, 10 ms of delay, under a microsecond per frame
//! (crates.md). Every buffer is made at leg setup; a frame allocates nothing.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

use crate::codec::CodecError;

/// See the module documentation.
pub struct FrameResampler {
    engine: Fft<f32>,
    input: Vec<f32>,
    output: Vec<f32>,
}

impl FrameResampler {
    /// A resampler of 20 ms frames from `from` Hz to `to` Hz.
    pub fn new(from: u32, to: u32) -> Result<Self, CodecError> {
        let chunk = from as usize / 50;
        let engine = Fft::<f32>::new(from as usize, to as usize, chunk, 1, FixedSync::Both)
            .map_err(|e| CodecError::Resampler(e.to_string()))?;
        let output = vec![0.0; engine.output_frames_max()];
        Ok(FrameResampler {
            engine,
            input: vec![0.0; chunk],
            output,
        })
    }

    /// Output samples by which the converted audio lags the input.
    pub fn delay(&self) -> usize {
        self.engine.output_delay()
    }

    /// Converts one frame (`pcm` is padded with silence or cut to the frame) into `out`;
    /// returns the samples written.
    pub fn process(&mut self, pcm: &[i16], out: &mut [i16]) -> usize {
        let n = pcm.len().min(self.input.len());
        for (i, s) in self.input[..n].iter_mut().zip(pcm) {
            *i = f32::from(*s) / 32768.0;
        }
        self.input[n..].fill(0.0);
        let (chunk, frames_out) = (self.input.len(), self.output.len());
        let (Ok(input), Ok(mut output)) = (
            InterleavedSlice::new(&self.input[..], 1, chunk),
            InterleavedSlice::new_mut(&mut self.output[..], 1, frames_out),
        ) else {
            return 0;
        };
        let Ok((_, made)) = self.engine.process_into_buffer(&input, &mut output, None) else {
            return 0;
        };
        let made = made.min(out.len());
        for (o, s) in out[..made].iter_mut().zip(&self.output) {
            // `as` saturates: an overshoot clips instead of wrapping.
            *o = (s * 32768.0).round() as i16;
        }
        made
    }
}

/// A whole buffer from `from` Hz to `to` Hz (music or a sound that was rendered for a room
/// before it changed rate): frame by frame, without the resampler's delay, the tail flushed.
/// Allocates: for set-up work, never for a tick.
pub fn resample_all(pcm: &[i16], from: u32, to: u32) -> Result<Vec<i16>, CodecError> {
    if from == to {
        return Ok(pcm.to_vec());
    }
    let mut resampler = FrameResampler::new(from, to)?;
    let (chunk, out_len) = (from as usize / 50, to as usize / 50);
    let want = (pcm.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    let mut skip = resampler.delay();
    let mut out = Vec::with_capacity(want + out_len);
    let mut frame = vec![0i16; resampler.output.len().max(out_len)];
    let silence = vec![0i16; chunk];
    let frames = pcm
        .chunks(chunk.max(1))
        .chain(std::iter::repeat(&silence[..]));
    for input in frames {
        if out.len() >= want {
            break;
        }
        let made = resampler.process(input, &mut frame);
        if made == 0 {
            break;
        }
        let drop = skip.min(made);
        skip -= drop;
        out.extend_from_slice(&frame[drop..made]);
    }
    out.truncate(want);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_buffer_keeps_its_length_timing_and_tone() {
        let pcm: Vec<i16> = (0..8000)
            .map(|i| {
                let t = i as f64 / 8000.0;
                ((2.0 * std::f64::consts::PI * 500.0 * t).sin() * 8000.0) as i16
            })
            .collect();
        let wide = resample_all(&pcm, 8000, 16000).unwrap();
        assert_eq!(wide.len(), 16000);
        // No delay left: the tone starts at once, and ends at the end.
        let first = wide[..160]
            .iter()
            .map(|s| i32::from(*s).abs())
            .max()
            .unwrap();
        assert!(first > 4000, "starts at once: {first}");
        let rms = |p: &[i16]| {
            (p.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / p.len() as f64).sqrt()
        };
        let (a, b) = (rms(&pcm[1000..7000]), rms(&wide[2000..14000]));
        assert!((a / b - 1.0).abs() < 0.05, "{a} vs {b}");
        assert_eq!(resample_all(&[], 8000, 16000).unwrap(), Vec::<i16>::new());
        assert_eq!(resample_all(&pcm[..7], 8000, 16000).unwrap().len(), 14);
    }

    #[test]
    fn frames_change_rate_and_keep_a_tone() {
        let mut up = FrameResampler::new(8000, 16000).unwrap();
        let mut down = FrameResampler::new(16000, 8000).unwrap();
        let mut wide = [0i16; 320];
        let mut back = [0i16; 160];
        let mut energy = (0.0, 0.0);
        for frame in 0..20 {
            let pcm: Vec<i16> = (0..160)
                .map(|i| {
                    let t = (frame * 160 + i) as f64 / 8000.0;
                    ((2.0 * std::f64::consts::PI * 700.0 * t).sin() * 8000.0) as i16
                })
                .collect();
            assert_eq!(up.process(&pcm, &mut wide), 320);
            assert_eq!(down.process(&wide, &mut back), 160);
            if frame >= 5 {
                energy.0 += pcm.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>();
                energy.1 += back.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>();
            }
        }
        let ratio = energy.1 / energy.0;
        assert!((0.9..1.1).contains(&ratio), "{ratio}");
    }

    #[test]
    fn a_tone_above_4_khz_does_not_fold_back_when_downsampling() {
        let mut down = FrameResampler::new(16000, 8000).unwrap();
        let mut out = [0i16; 160];
        let mut energy = 0.0;
        for frame in 0..20 {
            let pcm: Vec<i16> = (0..320)
                .map(|i| {
                    let t = (frame * 320 + i) as f64 / 16000.0;
                    ((2.0 * std::f64::consts::PI * 6000.0 * t).sin() * 8000.0) as i16
                })
                .collect();
            down.process(&pcm, &mut out);
            if frame >= 5 {
                energy += out.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>();
            }
        }
        let rms = (energy / (15.0 * 160.0)).sqrt();
        assert!(
            rms < 200.0,
            "6 kHz filtered out, not aliased to 2 kHz: rms {rms}"
        );
    }
}
