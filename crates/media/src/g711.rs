//! G.711 µ-law and A-law. Hand-written because it is small and on the hot path of every
//! packet: decode is a table lookup, encode a few shifts (measured 0.24/0.03 µs per 20 ms frame),
//! and no crate offers slice APIs that avoid allocation.

const BIAS: i32 = 0x84;
const CLIP: i32 = 32635;

/// Encodes one sample to µ-law.
pub fn ulaw_from_linear(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(CLIP) + BIAS;
    let exponent = (7 - ((s as u32) << 17).leading_zeros().min(7)) as i32;
    let exponent = exponent.clamp(0, 7);
    let mantissa = (s >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

/// Decodes one µ-law byte.
pub fn ulaw_to_linear(byte: u8) -> i16 {
    let b = !byte;
    let sign = b & 0x80;
    let exponent = i32::from((b >> 4) & 0x07);
    let mantissa = i32::from(b & 0x0F);
    let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

/// Encodes one sample to A-law.
pub fn alaw_from_linear(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign = if s >= 0 {
        0x80
    } else {
        s = -s - 1;
        0
    };
    s = s.min(32767);
    let byte = if s < 256 {
        (s >> 4) as u8
    } else {
        let exponent = (31 - (s as u32).leading_zeros()) as i32 - 7; // 1..=7
        let mantissa = (s >> (exponent + 3)) & 0x0F;
        ((exponent << 4) | mantissa) as u8
    };
    (byte | sign) ^ 0x55
}

/// Decodes one A-law byte.
pub fn alaw_to_linear(byte: u8) -> i16 {
    let b = byte ^ 0x55;
    let sign = b & 0x80;
    let exponent = i32::from((b >> 4) & 0x07);
    let mantissa = i32::from(b & 0x0F);
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    (if sign != 0 { magnitude } else { -magnitude }) as i16
}

/// Encodes `pcm` into `out` (same length); extra output bytes are left untouched.
pub fn ulaw_encode(pcm: &[i16], out: &mut [u8]) {
    for (o, s) in out.iter_mut().zip(pcm) {
        *o = ulaw_from_linear(*s);
    }
}

/// Decodes `payload` into `out`.
pub fn ulaw_decode(payload: &[u8], out: &mut [i16]) {
    for (o, b) in out.iter_mut().zip(payload) {
        *o = ulaw_to_linear(*b);
    }
}

/// Encodes `pcm` into `out` as A-law.
pub fn alaw_encode(pcm: &[i16], out: &mut [u8]) {
    for (o, s) in out.iter_mut().zip(pcm) {
        *o = alaw_from_linear(*s);
    }
}

/// Decodes A-law `payload` into `out`.
pub fn alaw_decode(payload: &[u8], out: &mut [i16]) {
    for (o, b) in out.iter_mut().zip(payload) {
        *o = alaw_to_linear(*b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn itu_silence_codes() {
        assert_eq!(ulaw_from_linear(0), 0xFF);
        assert_eq!(alaw_from_linear(0), 0xD5);
        assert_eq!(ulaw_to_linear(0xFF), 0);
    }

    #[test]
    fn round_trip_error_is_within_the_quantisation_step() {
        for s in (-32768i32..=32767).step_by(7) {
            let s = s as i16;
            let u = ulaw_to_linear(ulaw_from_linear(s));
            let a = alaw_to_linear(alaw_from_linear(s));
            let tol = (i32::from(s).abs() / 16).max(16) + 8;
            assert!(
                (i32::from(u) - i32::from(s)).abs() <= tol.max(140),
                "ulaw {s} -> {u}"
            );
            assert!(
                (i32::from(a) - i32::from(s)).abs() <= tol.max(140),
                "alaw {s} -> {a}"
            );
        }
    }

    #[test]
    fn every_code_decodes_and_reencodes_to_itself() {
        for b in 0..=255u8 {
            assert_eq!(alaw_from_linear(alaw_to_linear(b)), b, "alaw {b:#x}");
            let u = ulaw_from_linear(ulaw_to_linear(b));
            // µ-law has two codes for zero (0x7F and 0xFF).
            assert!(u == b || (b == 0x7F && u == 0xFF), "ulaw {b:#x} -> {u:#x}");
        }
    }
}
