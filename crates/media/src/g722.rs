//! ITU-T G.722 at 64 kbit/s (mode 1): 16 kHz audio in two ADPCM sub-bands, one byte per
//! pair of samples, 160 bytes per 20 ms. RTP quirk (RFC 3551 §4.5.2): SDP says `G722/8000`
//! and RTP timestamps count 8000 per second (160 per 20 ms packet) although the audio is
//! sampled at 16 kHz.
//!
//! No maintained Rust crate offers G.722 (the one published, `ezk-g722`, allocates a `Vec` per
//! call and pulls in a media framework), so this is a port of SpanDSP's `g722_encode.c` and
//! `g722_decode.c` by Steve Underwood (placed in the public domain by him), based on the
//! single-channel G.722 codec Copyright (c) CMU 1993 (Chengxiang Lu and Alex Hauptmann; "use
//! of this program, for any research or commercial purpose, is completely unrestricted"),
//! following the Rust translation in ezk-g722 (MIT, Copyright kbalt). Reduced to what a leg
//! needs: 64 kbit/s, unpacked, 16 kHz, and writing into caller buffers so that no frame
//! allocates. Checked bit for bit against the ITU-T Appendix II test sequences (sub-band
//! coders) and against FFmpeg's implementation (whole codec, QMF included); see
//! `tests/data/g722/README.md`.

/// Bytes per 20 ms frame (and RTP timestamp units per packet).
pub const FRAME_BYTES: usize = 160;

/// Samples per 20 ms frame at 16 kHz.
pub const FRAME_SAMPLES: usize = 320;

const QMF_COEFFS: [i32; 12] = [3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11];
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
const RL42: [i32; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];
const WH: [i32; 3] = [0, -214, 798];
const RH2: [i32; 4] = [2, 1, 2, 1];
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];
const QM4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];
const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232,
    -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776,
    -2400, -2032, -1688, -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280,
    11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776,
    2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];
const Q6: [i32; 32] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940,
    1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919, 0, 0,
];
const ILN: [i32; 32] = [
    0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11,
    10, 9, 8, 7, 6, 5, 4, 0,
];
const ILP: [i32; 32] = [
    0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39,
    38, 37, 36, 35, 34, 33, 32, 0,
];
const IHN: [i32; 3] = [0, 1, 0];
const IHP: [i32; 3] = [0, 3, 2];

/// One sub-band's ADPCM state.
#[derive(Default, Clone)]
struct G722Band {
    s: i32,
    sp: i32,
    sz: i32,
    r: [i32; 3],
    a: [i32; 3],
    ap: [i32; 3],
    p: [i32; 3],
    d: [i32; 7],
    b: [i32; 7],
    bp: [i32; 7],
    sg: [i32; 7],
    nb: i32,
    det: i32,
}

fn saturate(amp: i32) -> i32 {
    amp.clamp(i16::MIN as i32, i16::MAX as i32)
}

/// Block 4 of the ITU description: reconstruction, pole and zero predictor updates.
fn block4(band: &mut G722Band, d: i32) {
    let mut wd1: i32;
    let mut wd2: i32;
    let mut wd3: i32;
    let mut i: usize;

    // Block 4, RECONS
    band.d[0] = d;
    band.r[0] = saturate(band.s + d);

    // Block 4, PARREC
    band.p[0] = saturate(band.sz + d);

    // Block 4, UPPOL2
    for i in 0..3 {
        band.sg[i] = band.p[i] >> 15;
    }
    wd1 = saturate(band.a[1] << 2);

    wd2 = if band.sg[0] == band.sg[1] { -wd1 } else { wd1 };
    if wd2 > 32767 {
        wd2 = 32767;
    }
    wd3 = (wd2 >> 7) + (if band.sg[0] == band.sg[2] { 128 } else { -128 });
    wd3 += (band.a[2] * 32512) >> 15;
    wd3 = wd3.clamp(-12288, 12288);
    band.ap[2] = wd3;

    // Block 4, UPPOL1
    band.sg[0] = band.p[0] >> 15;
    band.sg[1] = band.p[1] >> 15;
    wd1 = if band.sg[0] == band.sg[1] { 192 } else { -192 };
    wd2 = (band.a[1] * 32640) >> 15;

    band.ap[1] = saturate(wd1 + wd2);
    wd3 = saturate(15360 - band.ap[2]);
    if band.ap[1] > wd3 {
        band.ap[1] = wd3;
    } else if band.ap[1] < -wd3 {
        band.ap[1] = -wd3;
    }

    // Block 4, UPZERO
    wd1 = if d == 0 { 0 } else { 128 };
    band.sg[0] = d >> 15;
    i = 1;
    while i < 7 {
        band.sg[i] = band.d[i] >> 15;
        wd2 = if band.sg[i] == band.sg[0] { wd1 } else { -wd1 };
        wd3 = (band.b[i] * 32640) >> 15;
        band.bp[i] = saturate(wd2 + wd3);
        i += 1;
    }

    // Block 4, DELAYA
    i = 6;
    while i > 0 {
        band.d[i] = band.d[i - 1];
        band.b[i] = band.bp[i];
        i -= 1;
    }
    i = 2;
    while i > 0 {
        band.r[i] = band.r[i - 1];
        band.p[i] = band.p[i - 1];
        band.a[i] = band.ap[i];
        i -= 1;
    }

    // Block 4, FILTEP
    wd1 = saturate(band.r[1] + band.r[1]);
    wd1 = (band.a[1] * wd1) >> 15;
    wd2 = saturate(band.r[2] + band.r[2]);
    wd2 = (band.a[2] * wd2) >> 15;
    band.sp = saturate(wd1 + wd2);

    // Block 4, FILTEZ
    band.sz = 0;
    i = 6;
    while i > 0 {
        wd1 = saturate(band.d[i] + band.d[i]);
        band.sz += (band.b[i] * wd1) >> 15;
        i -= 1;
    }
    band.sz = saturate(band.sz);

    // Block 4, PREDIC
    band.s = saturate(band.sp + band.sz);
}

/// Block 3 (LOGSCL/SCALEL, LOGSCH/SCALEH): the step size from the log scale factor.
fn scale(nb: i32, shift: i32) -> i32 {
    let wd1 = (nb >> 6) & 31;
    let wd2 = shift - (nb >> 11);
    let wd3 = if wd2 < 0 {
        ILB[wd1 as usize] << -wd2
    } else {
        ILB[wd1 as usize] >> wd2
    };
    wd3 << 2
}

/// Both sub-bands' ADPCM state, starting in the reset state of G.722 §3.6: the step sizes
/// at their minimum (DETL = 32, DETH = 8), not at zero, or the first samples would quantize
/// against a zero step.
#[derive(Clone)]
struct SubBands {
    low: G722Band,
    high: G722Band,
}

impl Default for SubBands {
    fn default() -> Self {
        SubBands {
            low: G722Band {
                det: 32,
                ..G722Band::default()
            },
            high: G722Band {
                det: 8,
                ..G722Band::default()
            },
        }
    }
}

/// LOGSCL, SCALEL and block 4 of the low band, shared by encoder and decoder: the step size
/// adapts to the 4-bit code `ril`, then the predictor to the quantized difference.
fn adapt_low(low: &mut G722Band, ril: usize) {
    let dlow = (low.det * QM4[ril]) >> 15;
    low.nb = (((low.nb * 127) >> 7) + WL[RL42[ril] as usize]).clamp(0, 18432);
    low.det = scale(low.nb, 8);
    block4(low, dlow);
}

/// LOGSCH, SCALEH and block 4 of the high band, shared by encoder and decoder, for the code
/// `ihigh` whose quantized difference is `dhigh`.
fn adapt_high(high: &mut G722Band, ihigh: i32, dhigh: i32) {
    high.nb = (((high.nb * 127) >> 7) + WH[RH2[ihigh as usize] as usize]).clamp(0, 22528);
    high.det = scale(high.nb, 10);
    block4(high, dhigh);
}

/// A G.722 encoder's state (16 kHz in, 64 kbit/s out).
#[derive(Default, Clone)]
pub struct G722Encoder {
    /// Signal history of the transmit QMF.
    x: [i32; 24],
    band: SubBands,
}

impl G722Encoder {
    /// Encodes pairs of 16 kHz samples into `out`, one byte per pair; returns the bytes
    /// written (`min(pcm.len() / 2, out.len())`; an odd last sample is ignored).
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> usize {
        let n = (pcm.len() / 2).min(out.len());
        for (pair, code) in pcm.chunks_exact(2).zip(out.iter_mut()).take(n) {
            // Apply the transmit QMF.
            self.x.copy_within(2.., 0);
            self.x[22] = i32::from(pair[0]);
            self.x[23] = i32::from(pair[1]);
            let (mut sumeven, mut sumodd) = (0, 0);
            for i in 0..12 {
                sumodd += self.x[2 * i] * QMF_COEFFS[i];
                sumeven += self.x[2 * i + 1] * QMF_COEFFS[11 - i];
            }
            let xlow = (sumeven + sumodd) >> 14;
            let xhigh = (sumeven - sumodd) >> 14;
            *code = self.encode_subbands(xlow, xhigh);
        }
        n
    }

    /// Codes one pair of sub-band samples (the QMF's outputs, 15-bit) into one byte; the
    /// ITU test sequences drive this directly, bypassing the QMF.
    fn encode_subbands(&mut self, xlow: i32, xhigh: i32) -> u8 {
        // Low band: SUBTRA, QUANTL, INVQAL, LOGSCL, SCALEL.
        let low = &mut self.band.low;
        let el = saturate(xlow - low.s);
        let wd = if el >= 0 { el } else { -(el + 1) };
        let mut i = 1;
        while i < 30 {
            if wd < (Q6[i] * low.det) >> 12 {
                break;
            }
            i += 1;
        }
        let ilow = if el < 0 { ILN[i] } else { ILP[i] };
        adapt_low(low, (ilow >> 2) as usize);

        // High band: SUBTRA, QUANTH, INVQAH, LOGSCH, SCALEH.
        let high = &mut self.band.high;
        let eh = saturate(xhigh - high.s);
        let wd = if eh >= 0 { eh } else { -(eh + 1) };
        let mih = if wd >= (564 * high.det) >> 12 { 2 } else { 1 };
        let ihigh = if eh < 0 { IHN[mih] } else { IHP[mih] };
        let dhigh = (high.det * QM2[ihigh as usize]) >> 15;
        adapt_high(high, ihigh, dhigh);

        ((ihigh << 6) | ilow) as u8
    }
}

/// A G.722 decoder's state (64 kbit/s in, 16 kHz out).
#[derive(Default, Clone)]
pub struct G722Decoder {
    /// Signal history of the receive QMF.
    x: [i32; 24],
    band: SubBands,
}

impl G722Decoder {
    /// Decodes bytes into 16 kHz samples, two per byte; returns the samples written (bytes
    /// that do not fit `out` are ignored). Every byte value is a valid code.
    pub fn decode(&mut self, data: &[u8], out: &mut [i16]) -> usize {
        let n = data.len().min(out.len() / 2);
        for (code, pair) in data.iter().zip(out.chunks_exact_mut(2)).take(n) {
            let (rlow, rhigh) = self.decode_subbands(*code);

            // Apply the receive QMF.
            self.x.copy_within(2.., 0);
            self.x[22] = rlow + rhigh;
            self.x[23] = rlow - rhigh;
            let (mut xout1, mut xout2) = (0, 0);
            for i in 0..12 {
                xout2 += self.x[2 * i] * QMF_COEFFS[i];
                xout1 += self.x[2 * i + 1] * QMF_COEFFS[11 - i];
            }
            pair[0] = saturate(xout1 >> 11) as i16;
            pair[1] = saturate(xout2 >> 11) as i16;
        }
        2 * n
    }

    /// Decodes one byte into its pair of reconstructed sub-band samples (low, high), the
    /// receive QMF's inputs; the ITU test sequences check these directly.
    fn decode_subbands(&mut self, code: u8) -> (i32, i32) {
        let code = i32::from(code);
        let ilow = code & 0x3f;
        let ihigh = (code >> 6) & 0x3;

        // Low band: INVQBL, RECONS, LIMIT, INVQAL, LOGSCL, SCALEL.
        let low = &mut self.band.low;
        let rlow = (low.s + ((low.det * QM6[ilow as usize]) >> 15)).clamp(-16384, 16383);
        adapt_low(low, (ilow >> 2) as usize);

        // High band: INVQAH, RECONS, LIMIT, LOGSCH, SCALEH.
        let high = &mut self.band.high;
        let dhigh = (high.det * QM2[ihigh as usize]) >> 15;
        let rhigh = (dhigh + high.s).clamp(-16384, 16383);
        adapt_high(high, ihigh, dhigh);

        (rlow, rhigh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, amplitude: f64, len: usize) -> Vec<i16> {
        (0..len)
            .map(|i| {
                ((2.0 * std::f64::consts::PI * freq * i as f64 / 16000.0).sin() * amplitude) as i16
            })
            .collect()
    }

    /// Signal-to-noise ratio in dB of `decoded` against `original`, best over the codec's
    /// delay (the QMF pair delays the signal by 22 samples).
    fn snr(original: &[i16], decoded: &[i16]) -> f64 {
        (0..40)
            .map(|delay| {
                let pairs = original[..original.len() - 40]
                    .iter()
                    .zip(&decoded[delay..]);
                let (mut signal, mut noise) = (0.0, 0.0);
                for (o, d) in pairs.skip(800) {
                    signal += f64::from(*o).powi(2);
                    noise += (f64::from(*o) - f64::from(*d)).powi(2);
                }
                10.0 * (signal / noise.max(1.0)).log10()
            })
            .fold(f64::MIN, f64::max)
    }

    fn round_trip(pcm: &[i16]) -> Vec<i16> {
        let (mut enc, mut dec) = (G722Encoder::default(), G722Decoder::default());
        let mut out = Vec::new();
        for frame in pcm.chunks(FRAME_SAMPLES) {
            let mut bytes = [0u8; FRAME_BYTES];
            let n = enc.encode(frame, &mut bytes);
            assert_eq!(n, frame.len() / 2);
            let mut samples = [0i16; FRAME_SAMPLES];
            let m = dec.decode(&bytes[..n], &mut samples);
            out.extend_from_slice(&samples[..m]);
        }
        out
    }

    /// The 16-bit words of an ITU-T G.722 Appendix II test sequence in its ASCII form: comment
    /// lines aside, each line holds 16 words in hex and a checksum byte (the two's
    /// complement of the sum of the line's characters), which is checked too.
    fn itu_words(text: &str) -> Vec<u16> {
        let mut words = Vec::new();
        for line in text.lines().map(str::trim_end) {
            if line.starts_with("/*") || line.is_empty() {
                continue;
            }
            assert_eq!(line.len(), 66, "{line}");
            let sum = line[..64].bytes().fold(0u8, |acc, b| acc.wrapping_add(b));
            let check = u8::from_str_radix(&line[64..], 16).unwrap();
            assert_eq!(sum.wrapping_add(check), 0, "checksum of {line}");
            for word in line.as_bytes()[..64].chunks(4) {
                words.push(u16::from_str_radix(std::str::from_utf8(word).unwrap(), 16).unwrap());
            }
        }
        words
    }

    /// The span of a sequence between its reset words (those with the least significant bit
    /// set, which the sequences place at both ends).
    fn between_resets(words: &[u16]) -> std::ops::Range<usize> {
        let start = words.iter().position(|w| w & 1 == 0).unwrap();
        let len = words[start..].iter().position(|w| w & 1 == 1).unwrap();
        start..start + len
    }

    const T1C2: &str = include_str!("../tests/data/g722/itu/T1C2.XMT");
    const T2R2: &str = include_str!("../tests/data/g722/itu/T2R2.COD");
    const T3L2_RC1: &str = include_str!("../tests/data/g722/itu/T3L2.RC1");
    const T3H2_RC0: &str = include_str!("../tests/data/g722/itu/T3H2.RC0");

    #[test]
    fn the_encoder_codes_the_itu_sequence_t1c2_into_t2r2() {
        // Test configuration 1 of G.722 Appendix II: the QMF bypassed, each input word fed
        // to both sub-band coders as a 15-bit sample; the code is the reference's high byte.
        let input = itu_words(T1C2);
        let reference = itu_words(T2R2);
        let span = between_resets(&input);
        assert!(span.len() > 700, "{span:?}");
        let mut encoder = G722Encoder::default();
        for k in span {
            let x = i32::from(input[k] as i16 >> 1);
            let code = encoder.encode_subbands(x, x);
            assert_eq!(code, (reference[k] >> 8) as u8, "word {k}");
        }
    }

    #[test]
    fn the_decoder_reconstructs_the_itu_sequences_t3l2_and_t3h2_from_t2r2() {
        // Test configuration 2, mode 1 (64 kbit/s): the QMF bypassed, each sub-band's
        // reconstructed sample (times two) against the low- and high-band references.
        let codes = itu_words(T2R2);
        let low = itu_words(T3L2_RC1);
        let high = itu_words(T3H2_RC0);
        let span = between_resets(&codes);
        assert!(span.len() > 700, "{span:?}");
        let mut decoder = G722Decoder::default();
        for k in span {
            let (rlow, rhigh) = decoder.decode_subbands((codes[k] >> 8) as u8);
            assert_eq!((rlow << 1) as u16, low[k], "low band, word {k}");
            assert_eq!((rhigh << 1) as u16, high[k], "high band, word {k}");
        }
    }

    #[test]
    fn tones_across_both_sub_bands_survive_with_a_high_snr() {
        // Low band (below 4 kHz) and high band (4 to 8 kHz), speech levels and loud.
        for (freq, amplitude, min_db) in [
            (440.0, 8000.0, 45.0),
            (1000.0, 16000.0, 40.0),
            (3000.0, 8000.0, 35.0),
            (6000.0, 4000.0, 20.0),
            (7000.0, 4000.0, 18.0),
        ] {
            let pcm = tone(freq, amplitude, 16000);
            let decoded = round_trip(&pcm);
            let db = snr(&pcm, &decoded);
            assert!(db >= min_db, "{freq} Hz at {amplitude}: SNR {db:.1} dB");
        }
    }

    #[test]
    fn frames_are_160_bytes_for_320_samples_and_silence_stays_silent() {
        let decoded = round_trip(&vec![0; 3200]);
        assert_eq!(decoded.len(), 3200);
        assert!(decoded.iter().all(|s| s.abs() < 50), "idle noise only");
    }

    #[test]
    fn every_byte_sequence_decodes_without_panicking() {
        let mut dec = G722Decoder::default();
        let mut out = [0i16; FRAME_SAMPLES];
        for seed in 0u32..200 {
            let junk: Vec<u8> = (0..FRAME_BYTES as u32)
                .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed * 97) >> 13) as u8)
                .collect();
            assert_eq!(dec.decode(&junk, &mut out), FRAME_SAMPLES);
        }
        assert_eq!(
            dec.decode(&[0xFF; 4], &mut out[..3]),
            2,
            "never past the buffer"
        );
        assert_eq!(dec.decode(&[0xFF; 200], &mut out), FRAME_SAMPLES);
    }
}
