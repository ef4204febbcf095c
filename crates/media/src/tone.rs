//! Tone generation and Goertzel detection (beeps, tests and diagnostics).

/// A sine generator with continuous phase across frames.
#[derive(Debug, Clone)]
pub struct ToneGenerator {
    phase: f64,
    step: f64,
    amplitude: f64,
}

impl ToneGenerator {
    /// `freq` Hz at `amplitude` (0..=32767) for sample rate `rate`.
    pub fn new(freq: f64, amplitude: f64, rate: u32) -> Self {
        ToneGenerator {
            phase: 0.0,
            step: 2.0 * std::f64::consts::PI * freq / f64::from(rate),
            amplitude,
        }
    }

    /// Fills `out` with the next samples.
    pub fn fill(&mut self, out: &mut [i16]) {
        for s in out {
            *s = (self.phase.sin() * self.amplitude) as i16;
            self.phase = (self.phase + self.step) % (2.0 * std::f64::consts::PI);
        }
    }
}

/// Goertzel power of `freq` in `samples`.
pub fn goertzel_power(samples: &[i16], rate: u32, freq: f64) -> f64 {
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * freq / f64::from(rate)).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// True when `freq` carries at least a fifth of the signal's energy.
pub fn tone_present(samples: &[i16], rate: u32, freq: f64) -> bool {
    let energy: f64 = samples.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    if samples.is_empty() || energy / (samples.len() as f64) < 1000.0 {
        return false;
    }
    // For a pure tone Goertzel power ≈ energy * N / 2.
    goertzel_power(samples, rate, freq) > 0.2 * energy * samples.len() as f64 / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_the_generated_tone_only() {
        let mut g = ToneGenerator::new(1000.0, 8000.0, 8000);
        let mut buf = vec![0i16; 1600];
        g.fill(&mut buf);
        assert!(tone_present(&buf, 8000, 1000.0));
        assert!(!tone_present(&buf, 8000, 1700.0));
        assert!(!tone_present(&[0; 800], 8000, 1000.0));
    }
}
