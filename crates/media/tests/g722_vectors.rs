//! G.722 bit-exactness, QMF included, against an independent implementation (FFmpeg's
//! `adpcm_g722`) on the sequences under `tests/data/g722` (see the README there for how they
//! were made); the ITU's own sequences, which bypass the QMF, are tested in `src/g722.rs`.
//! Round-trip tests cannot catch an encoder and decoder that share one mistake; matching
//! another implementation's bytes and samples can.

use huddle_media::g722::{G722Decoder, G722Encoder, FRAME_BYTES, FRAME_SAMPLES};

const INPUT: &[u8] = include_bytes!("data/g722/input.raw");
const ENCODED: &[u8] = include_bytes!("data/g722/encoded.g722");
const DECODED: &[u8] = include_bytes!("data/g722/decoded.raw");

fn samples(bytes: &[u8]) -> Vec<i16> {
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// The first index where two sequences differ, for a failure message that points at it.
fn first_difference<T: PartialEq>(ours: &[T], reference: &[T]) -> Option<usize> {
    ours.iter()
        .zip(reference)
        .position(|(a, b)| a != b)
        .or((ours.len() != reference.len()).then(|| ours.len().min(reference.len())))
}

/// The reference input encoded by one fresh encoder, `chunk` samples per call.
fn encode_input_in_chunks(chunk: usize) -> Vec<u8> {
    let pcm = samples(INPUT);
    assert_eq!(pcm.len(), 16_000);
    let mut encoder = G722Encoder::default();
    let mut ours = Vec::with_capacity(ENCODED.len());
    let mut out = vec![0u8; chunk / 2];
    for piece in pcm.chunks(chunk) {
        let n = encoder.encode(piece, &mut out);
        ours.extend_from_slice(&out[..n]);
    }
    ours
}

#[test]
fn the_encoder_matches_the_reference_bytes_frame_by_frame() {
    let ours = encode_input_in_chunks(FRAME_SAMPLES);
    assert_eq!(
        first_difference(&ours, ENCODED),
        None,
        "encoded bytes differ from the reference"
    );
}

#[test]
fn the_decoder_matches_the_reference_samples_frame_by_frame() {
    let reference = samples(DECODED);
    let mut decoder = G722Decoder::default();
    let mut ours = Vec::with_capacity(reference.len());
    for frame in ENCODED.chunks(FRAME_BYTES) {
        let mut out = [0i16; FRAME_SAMPLES];
        let n = decoder.decode(frame, &mut out);
        ours.extend_from_slice(&out[..n]);
    }
    assert_eq!(
        first_difference(&ours, &reference),
        None,
        "decoded samples differ from the reference"
    );
}

#[test]
fn packet_boundaries_do_not_change_the_stream() {
    // Odd-sized chunks (a 30 ms peer, a short packet) must give the same codes as 20 ms
    // frames: all state lives in the codec, none in the framing.
    let ours = encode_input_in_chunks(482);
    assert_eq!(first_difference(&ours, ENCODED), None);
}
