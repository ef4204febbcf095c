//! `huddle-aiservice`: the AI agent service of the load run (`benches/load/run.sh` with
//! `AI=on`). One process serves every stream huddle opens: it takes `start`, consumes the
//! `media` frames (each payload decoded and its length checked) and answers with a tone by
//! `playAudio`, one second of it every second, in the stream's own content type, so that each
//! stream adds a talking member to its room.
//!
//! On SIGINT or SIGTERM it prints, per stream and in total, the frames it received, the
//! frames huddle skipped (gaps in `chunk` and `sequenceNumber`), arrival gaps, and what it
//! sent, then exits: 0 when every stream delivered media without a gap, 2 otherwise.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// The tone the service speaks: above every member slot's tone of the load run (310–1390 Hz).
const TONE_HZ: f64 = 1700.0;
/// Seconds of tone per `playAudio`; sent once a second (two at first, as a cushion).
const PLAY_SECS: u32 = 1;
/// An arrival gap longer than this is counted (a frame is due every 20 ms).
const LATE_GAP: Duration = Duration::from_millis(100);

/// The AI agent service of the load run.
#[derive(Debug, Parser)]
#[command(name = "huddle-aiservice", version)]
struct Args {
    /// Address to listen on (ws://).
    #[arg(long, default_value = "127.0.0.1:28090")]
    listen: SocketAddr,
    /// Print one line per stream in the report, not only the totals.
    #[arg(long)]
    per_stream: bool,
}

/// What one stream delivered.
#[derive(Debug, Default, Clone)]
struct StreamStats {
    /// The request path (the run names it after the room).
    path: String,
    /// `start.mediaFormat`, once received.
    format: Option<(String, u32)>,
    /// `media` frames received.
    frames: u64,
    /// Frames whose payload was not base64 or not one 20 ms frame of the format.
    bad_payloads: u64,
    /// Chunk numbers skipped (frames huddle dropped before sending).
    chunk_missing: u64,
    /// Sequence numbers skipped.
    seq_missing: u64,
    last_chunk: u64,
    last_seq: u64,
    first_at: Option<Instant>,
    last_at: Option<Instant>,
    /// Arrival gaps over [`LATE_GAP`].
    late_gaps: u64,
    /// The longest arrival gap.
    max_gap: Duration,
    /// `playAudio` messages sent.
    plays: u64,
    /// The connection has ended.
    closed: bool,
    /// Messages that were not JSON of the protocol.
    unreadable: u64,
}

impl StreamStats {
    /// Frames per second over the stream's life (50 when nothing was lost).
    fn rate(&self) -> f64 {
        match (self.first_at, self.last_at) {
            (Some(a), Some(b)) if b > a && self.frames > 1 => {
                (self.frames - 1) as f64 / (b - a).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

type Registry = Arc<Mutex<Vec<Arc<Mutex<StreamStats>>>>>;

/// The fields of huddle's messages the service reads.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(rename = "sequenceNumber")]
    sequence_number: Option<u64>,
    #[serde(borrow)]
    media: Option<MediaBody<'a>>,
    start: Option<StartBody>,
}

#[derive(Deserialize)]
struct MediaBody<'a> {
    chunk: Option<u64>,
    #[serde(borrow)]
    payload: Cow<'a, str>,
}

#[derive(Deserialize)]
struct StartBody {
    #[serde(rename = "mediaFormat")]
    media_format: WireFormat,
}

#[derive(Deserialize)]
struct WireFormat {
    encoding: String,
    #[serde(rename = "sampleRate")]
    sample_rate: u32,
}

/// Bytes in one 20 ms frame of `encoding` at `rate`.
fn frame_bytes(encoding: &str, rate: u32) -> usize {
    let samples = rate as usize / 50;
    if encoding == "audio/x-mulaw" {
        samples
    } else {
        samples * 2
    }
}

/// The `playAudio` message of [`PLAY_SECS`] of the tone in `encoding` at `rate`.
fn play_message(encoding: &str, rate: u32) -> Utf8Bytes {
    let samples = (0..rate * PLAY_SECS).map(|i| {
        (6000.0 * (2.0 * std::f64::consts::PI * TONE_HZ * f64::from(i) / f64::from(rate)).sin())
            as i16
    });
    let bytes: Vec<u8> = if encoding == "audio/x-mulaw" {
        samples.map(huddle_media::g711::ulaw_from_linear).collect()
    } else {
        samples.flat_map(i16::to_le_bytes).collect()
    };
    let payload = base64::engine::general_purpose::STANDARD.encode(bytes);
    serde_json::json!({"event": "playAudio", "media": {"contentType": encoding,
        "sampleRate": rate, "payload": payload}})
    .to_string()
    .into()
}

/// One stream: counts what arrives, speaks once a second after `start`.
async fn serve(tcp: TcpStream, registry: Registry) {
    let path = Arc::new(Mutex::new(String::new()));
    let seen = path.clone();
    // tungstenite's callback type fixes the (large) error response type.
    #[allow(clippy::result_large_err)]
    let callback = move |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
        if let Ok(mut p) = seen.lock() {
            *p = req.uri().to_string();
        }
        Ok(resp)
    };
    let config = WebSocketConfig::default().max_message_size(Some(1 << 20));
    let Ok(ws) = tokio_tungstenite::accept_hdr_async_with_config(tcp, callback, Some(config)).await
    else {
        return;
    };
    let stats = Arc::new(Mutex::new(StreamStats {
        path: path.lock().map(|p| p.clone()).unwrap_or_default(),
        ..StreamStats::default()
    }));
    if let Ok(mut r) = registry.lock() {
        r.push(stats.clone());
    }
    let (mut sink, mut source) = ws.split();
    let mut play: Option<Utf8Bytes> = None;
    let mut expected_bytes = 0usize;
    let mut speak = tokio::time::interval(Duration::from_secs(u64::from(PLAY_SECS)));
    let mut scratch = Vec::with_capacity(1024);
    let mut cushioned = false;
    loop {
        tokio::select! {
            msg = source.next() => {
                let Some(Ok(msg)) = msg else { break };
                let Message::Text(text) = msg else { continue };
                let now = Instant::now();
                let Ok(m) = serde_json::from_str::<Incoming>(text.as_str()) else {
                    if let Ok(mut s) = stats.lock() { s.unreadable += 1; }
                    continue;
                };
                let Ok(mut s) = stats.lock() else { break };
                if let Some(seq) = m.sequence_number {
                    if s.last_seq != 0 && seq > s.last_seq + 1 {
                        s.seq_missing += seq - s.last_seq - 1;
                    }
                    s.last_seq = seq;
                }
                match m.event.as_ref() {
                    "start" => {
                        if let Some(start) = m.start {
                            let f = start.media_format;
                            expected_bytes = frame_bytes(&f.encoding, f.sample_rate);
                            play = Some(play_message(&f.encoding, f.sample_rate));
                            s.format = Some((f.encoding, f.sample_rate));
                            // Speak from the next tick on, due at once.
                            speak.reset_immediately();
                        }
                    }
                    "media" => {
                        let Some(media) = m.media else { continue };
                        s.frames += 1;
                        scratch.clear();
                        let ok = base64::engine::general_purpose::STANDARD
                            .decode_vec(media.payload.as_bytes(), &mut scratch)
                            .is_ok();
                        if !ok || scratch.len() != expected_bytes {
                            s.bad_payloads += 1;
                        }
                        if let Some(chunk) = media.chunk {
                            if s.last_chunk != 0 && chunk > s.last_chunk + 1 {
                                s.chunk_missing += chunk - s.last_chunk - 1;
                            }
                            s.last_chunk = chunk;
                        }
                        if let Some(last) = s.last_at {
                            let gap = now - last;
                            if gap > LATE_GAP {
                                s.late_gaps += 1;
                            }
                            s.max_gap = s.max_gap.max(gap);
                        }
                        s.first_at.get_or_insert(now);
                        s.last_at = Some(now);
                    }
                    _ => {}
                }
            }
            _ = speak.tick() => {
                let Some(message) = &play else { continue };
                // Two seconds at first, then one a second: the queue stays about a second
                // deep and the agent never falls silent between two messages.
                let times = if cushioned { 1 } else { 2 };
                cushioned = true;
                for _ in 0..times {
                    if sink.send(Message::Text(message.clone())).await.is_err() {
                        break;
                    }
                    if let Ok(mut s) = stats.lock() { s.plays += 1; }
                }
            }
        }
    }
    if let Ok(mut s) = stats.lock() {
        s.closed = true;
    };
}

/// Prints the report; true when every stream delivered media without a gap.
fn report(registry: &Registry, per_stream: bool) -> bool {
    let streams: Vec<StreamStats> = registry
        .lock()
        .map(|r| {
            r.iter()
                .filter_map(|s| s.lock().ok().map(|s| s.clone()))
                .collect()
        })
        .unwrap_or_default();
    if per_stream {
        for s in &streams {
            println!(
                "stream {} format={:?} frames={} rate={:.1}/s chunk_missing={} seq_missing={} \
                 late_gaps={} max_gap={}ms bad_payloads={} plays={} closed={}",
                s.path,
                s.format,
                s.frames,
                s.rate(),
                s.chunk_missing,
                s.seq_missing,
                s.late_gaps,
                s.max_gap.as_millis(),
                s.bad_payloads,
                s.plays,
                s.closed
            );
        }
    }
    let mut rates: Vec<f64> = streams.iter().map(StreamStats::rate).collect();
    rates.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        rates
            .get(((rates.len().saturating_sub(1)) as f64 * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let sum = |f: fn(&StreamStats) -> u64| streams.iter().map(f).sum::<u64>();
    let with = |f: fn(&StreamStats) -> u64| streams.iter().filter(|s| f(s) > 0).count();
    let max_gap = streams.iter().map(|s| s.max_gap).max().unwrap_or_default();
    let started = streams.iter().filter(|s| s.format.is_some()).count();
    println!(
        "ai-service: streams={} started={} open={} media_frames={}",
        streams.len(),
        started,
        streams.iter().filter(|s| !s.closed).count(),
        sum(|s| s.frames)
    );
    println!(
        "ai-service: frames per second per stream min/median/max = {:.1} / {:.1} / {:.1} (50 expected)",
        pick(0.0),
        pick(0.5),
        pick(1.0)
    );
    println!(
        "ai-service: frames skipped by huddle (chunk gaps) = {} in {} streams; sequence gaps = {}; \
         arrival gaps over {} ms = {} in {} streams, longest {} ms",
        sum(|s| s.chunk_missing),
        with(|s| s.chunk_missing),
        sum(|s| s.seq_missing),
        LATE_GAP.as_millis(),
        sum(|s| s.late_gaps),
        with(|s| s.late_gaps),
        max_gap.as_millis()
    );
    println!(
        "ai-service: bad payloads = {}, unreadable messages = {}, playAudio sent = {} ({} s of tone)",
        sum(|s| s.bad_payloads),
        sum(|s| s.unreadable),
        sum(|s| s.plays),
        sum(|s| s.plays) * u64::from(PLAY_SECS)
    );
    started > 0
        && streams.iter().all(|s| {
            s.frames > 0 && s.chunk_missing == 0 && s.seq_missing == 0 && s.bad_payloads == 0
        })
}

fn main() -> ExitCode {
    let args = Args::parse();
    // One thread: the service must not take more of the shared machine than it needs.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("huddle-aiservice: tokio runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let registry: Registry = Arc::default();
    let served = runtime.block_on(async {
        let listener = TcpListener::bind(args.listen).await?;
        eprintln!("huddle-aiservice: listening on ws://{}", args.listen);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((tcp, _)) = accepted {
                        let _ = tcp.set_nodelay(true);
                        tokio::spawn(serve(tcp, registry.clone()));
                    }
                }
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
            }
        }
        Ok::<(), std::io::Error>(())
    });
    if let Err(e) = served {
        eprintln!("huddle-aiservice: {e}");
        return ExitCode::from(1);
    }
    if report(&registry, args.per_stream) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_match_the_protocol() {
        assert_eq!(frame_bytes("audio/x-l16", 8000), 320);
        assert_eq!(frame_bytes("audio/x-l16", 16000), 640);
        assert_eq!(frame_bytes("audio/x-mulaw", 8000), 160);
    }

    #[test]
    fn a_play_message_holds_a_second_under_the_protocols_64_kb() {
        for (enc, rate) in [
            ("audio/x-l16", 8000),
            ("audio/x-l16", 16000),
            ("audio/x-mulaw", 8000),
        ] {
            let m = play_message(enc, rate);
            assert!(m.len() < 64 * 1024, "{enc} {rate}: {}", m.len());
            let v: serde_json::Value = serde_json::from_str(m.as_str()).unwrap();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v["media"]["payload"].as_str().unwrap())
                .unwrap();
            assert_eq!(bytes.len(), frame_bytes(enc, rate) * 50);
        }
    }

    #[test]
    fn the_rate_counts_frames_over_the_streams_life() {
        let t = Instant::now();
        let s = StreamStats {
            frames: 51,
            first_at: Some(t),
            last_at: Some(t + Duration::from_secs(1)),
            ..StreamStats::default()
        };
        assert!((s.rate() - 50.0).abs() < 1e-9);
    }
}
