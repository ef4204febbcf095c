//! Recorders: the mixer hands one PCM frame per tick to a [`Recorder`], a thread of the
//! recording's own writes it to a WAV (hound) or MP3 (LAME) file. A frame holds one or more
//! channels, interleaved: a participant's recording around it has two (its voice, what it
//! hears), the per-role recording four; MP3 takes one or two.
//!
//! The media path never waits and never allocates here: frames travel in buffers taken from a
//! fixed pool and given back by the writer; when the pool or the queue runs dry (the disk
//! stalled for seconds) the frame is dropped and counted. A WAV file's header is rewritten
//! every second, so a process killed mid-call leaves a valid file up to the last second; the
//! file is finalized when the recorder is dropped, whichever way the recording ends. A file
//! whose writer died with the process is repaired at the next start by [`recover`].

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use thiserror::Error;

mod recover;
pub use recover::recover;

/// File format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// 16-bit PCM WAV.
    Wav,
    /// MP3 (LAME), 64 kb/s at 8 kHz.
    Mp3,
}

impl Format {
    /// The file extension and `RecordingFormat` value.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Wav => "wav",
            Format::Mp3 => "mp3",
        }
    }
}

/// Why a recording failed.
#[derive(Debug, Error)]
pub enum RecordError {
    /// The file could not be created or written.
    #[error("cannot write {path}: {detail}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The MP3 encoder refused.
    #[error("MP3 encoder: {0}")]
    Encoder(String),
    /// The writer thread could not be started.
    #[error("cannot start the recording writer: {0}")]
    Thread(String),
    /// A channel count the format cannot hold (MP3: 1 or 2; WAV: 1 to 8).
    #[error("{format} cannot hold {channels} channels")]
    Channels {
        /// The format's extension.
        format: &'static str,
        /// The count asked for.
        channels: u16,
    },
}

/// A recording that ended: its file and length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The file.
    pub path: PathBuf,
    /// Samples written per channel (frames, for a file of several channels).
    pub samples: u64,
    /// Sample rate.
    pub rate: u32,
    /// Frames the media path had to drop because the writer fell behind.
    pub dropped_frames: u64,
}

impl Finished {
    /// The recorded duration in whole seconds.
    pub fn seconds(&self) -> u64 {
        self.samples / u64::from(self.rate.max(1))
    }
}

/// Frames buffered between the mixer and the writer: two seconds.
const POOL_FRAMES: usize = 100;
/// WAV header rewrites: once a second of 20 ms frames.
const FLUSH_EVERY_FRAMES: u32 = 50;

struct Frame {
    pcm: Box<[i16]>,
    len: usize,
}

/// The mixer's end of one recording. Dropping it ends the recording.
pub struct Recorder {
    frames: Option<SyncSender<Frame>>,
    free: Receiver<Box<[i16]>>,
    /// Shared with the writer, which reports it when the file is done.
    dropped: Arc<AtomicU64>,
    paused: bool,
}

impl Recorder {
    /// Starts recording `rate` Hz mono frames of at most `frame_len` samples into `path`;
    /// `on_finish` runs on the writer thread once the file is finalized (or failed).
    pub fn start(
        path: PathBuf,
        format: Format,
        rate: u32,
        frame_len: usize,
        on_finish: impl FnOnce(Result<Finished, RecordError>) + Send + 'static,
    ) -> Result<Recorder, RecordError> {
        Recorder::start_channels(path, format, rate, 1, frame_len, on_finish)
    }

    /// Starts recording frames of `channels` interleaved channels (`frame_len` samples per
    /// channel at most) into `path`; otherwise as [`Recorder::start`].
    pub fn start_channels(
        path: PathBuf,
        format: Format,
        rate: u32,
        channels: u16,
        frame_len: usize,
        on_finish: impl FnOnce(Result<Finished, RecordError>) + Send + 'static,
    ) -> Result<Recorder, RecordError> {
        let most = match format {
            Format::Wav => 8,
            Format::Mp3 => 2,
        };
        if channels == 0 || channels > most {
            return Err(RecordError::Channels {
                format: format.extension(),
                channels,
            });
        }
        let (frames_tx, frames_rx) = mpsc::sync_channel::<Frame>(POOL_FRAMES);
        let (free_tx, free_rx) = mpsc::sync_channel::<Box<[i16]>>(POOL_FRAMES);
        let buffer_len = frame_len * usize::from(channels);
        for _ in 0..POOL_FRAMES {
            let _ = free_tx.try_send(vec![0i16; buffer_len].into_boxed_slice());
        }
        let dropped = Arc::new(AtomicU64::new(0));
        let dropped_seen = dropped.clone();
        std::thread::Builder::new()
            .name("huddle-recorder".into())
            .spawn(move || {
                let result = write_file(&path, format, rate, channels, &frames_rx, &free_tx);
                on_finish(result.map(|samples| Finished {
                    path,
                    samples: samples / u64::from(channels),
                    rate,
                    dropped_frames: dropped_seen.load(Ordering::Relaxed),
                }));
            })
            .map_err(|e| RecordError::Thread(e.to_string()))?;
        Ok(Recorder {
            frames: Some(frames_tx),
            free: free_rx,
            dropped,
            paused: false,
        })
    }

    /// Hands one frame (channels interleaved) to the writer; never blocks, never allocates.
    /// Ignored while paused.
    pub fn push(&mut self, pcm: &[i16]) {
        if self.paused {
            return;
        }
        let Some(frames) = &self.frames else { return };
        let Ok(mut buffer) = self.free.try_recv() else {
            self.drop_frame();
            return;
        };
        let len = pcm.len().min(buffer.len());
        buffer[..len].copy_from_slice(&pcm[..len]);
        match frames.try_send(Frame { pcm: buffer, len }) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.drop_frame(),
        }
    }

    fn drop_frame(&mut self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("huddle_recording_frames_dropped_total").increment(1);
    }

    /// Pauses (frames are ignored) or resumes.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// Paused now.
    pub fn is_paused(&self) -> bool {
        self.paused
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // Closing the queue tells the writer to finalize the file.
        self.frames.take();
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(
                frames = dropped,
                "recording frames dropped: the writer fell behind"
            );
        }
    }
}

fn io_error(path: &Path, detail: impl std::fmt::Display) -> RecordError {
    RecordError::Io {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

/// The writer thread: frames until the queue closes, then the file's last bytes.
fn write_file(
    path: &Path,
    format: Format,
    rate: u32,
    channels: u16,
    frames: &Receiver<Frame>,
    free: &SyncSender<Box<[i16]>>,
) -> Result<u64, RecordError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io_error(path, e))?;
    }
    let mut sink: Box<dyn Sink> = match format {
        Format::Wav => Box::new(WavSink::create(path, rate, channels)?),
        Format::Mp3 => Box::new(Mp3Sink::create(path, rate, channels)?),
    };
    let mut samples = 0u64;
    let mut since_flush = 0u32;
    while let Ok(frame) = frames.recv() {
        let result = sink.write(&frame.pcm[..frame.len]);
        samples += frame.len as u64;
        let _ = free.try_send(frame.pcm);
        result.map_err(|e| io_error(path, e))?;
        since_flush += 1;
        if since_flush >= FLUSH_EVERY_FRAMES {
            since_flush = 0;
            sink.checkpoint().map_err(|e| io_error(path, e))?;
        }
    }
    sink.finish().map_err(|e| io_error(path, e))?;
    Ok(samples)
}

/// One file format's writer.
trait Sink {
    fn write(&mut self, pcm: &[i16]) -> Result<(), String>;
    /// Makes what was written so far readable should the process die.
    fn checkpoint(&mut self) -> Result<(), String>;
    fn finish(self: Box<Self>) -> Result<(), String>;
}

struct WavSink {
    writer: hound::WavWriter<BufWriter<File>>,
}

impl WavSink {
    fn create(path: &Path, rate: u32, channels: u16) -> Result<Self, RecordError> {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = hound::WavWriter::create(path, spec).map_err(|e| io_error(path, e))?;
        Ok(WavSink { writer })
    }
}

impl Sink for WavSink {
    fn write(&mut self, pcm: &[i16]) -> Result<(), String> {
        let mut samples = self.writer.get_i16_writer(pcm.len() as u32);
        for s in pcm {
            samples.write_sample(*s);
        }
        samples.flush().map_err(|e| e.to_string())
    }

    fn checkpoint(&mut self) -> Result<(), String> {
        // hound rewrites the header with the current length.
        self.writer.flush().map_err(|e| e.to_string())
    }

    fn finish(self: Box<Self>) -> Result<(), String> {
        self.writer.finalize().map_err(|e| e.to_string())
    }
}

struct Mp3Sink {
    encoder: mp3lame_encoder::Encoder,
    stereo: bool,
    file: BufWriter<File>,
    out: Vec<u8>,
}

impl Mp3Sink {
    fn create(path: &Path, rate: u32, channels: u16) -> Result<Self, RecordError> {
        use mp3lame_encoder::{Bitrate, Builder, Quality};
        let encoder_error = |e: &dyn std::fmt::Debug| RecordError::Encoder(format!("{e:?}"));
        let mut builder = Builder::new().ok_or_else(|| RecordError::Encoder("no LAME".into()))?;
        // `start_channels` lets only 1 or 2 through.
        builder
            .set_num_channels(channels as u8)
            .map_err(|e| encoder_error(&e))?;
        builder
            .set_sample_rate(rate)
            .map_err(|e| encoder_error(&e))?;
        // Without an explicit output rate LAME resamples 16 kHz down to 8 kHz (crates.md).
        builder
            .set_output_sample_rate(std::num::NonZeroU32::new(rate))
            .map_err(|e| encoder_error(&e))?;
        builder
            .set_brate(Bitrate::Kbps64)
            .map_err(|e| encoder_error(&e))?;
        builder
            .set_quality(Quality::Good)
            .map_err(|e| encoder_error(&e))?;
        let encoder = builder.build().map_err(|e| encoder_error(&e))?;
        let file = File::create(path).map_err(|e| io_error(path, e))?;
        Ok(Mp3Sink {
            encoder,
            stereo: channels == 2,
            file: BufWriter::new(file),
            out: Vec::with_capacity(16 * 1024),
        })
    }
}

impl Sink for Mp3Sink {
    fn write(&mut self, pcm: &[i16]) -> Result<(), String> {
        self.out.clear();
        self.out
            .reserve(mp3lame_encoder::max_required_buffer_size(pcm.len()));
        let encoded = if self.stereo {
            self.encoder
                .encode_to_vec(mp3lame_encoder::InterleavedPcm(pcm), &mut self.out)
        } else {
            self.encoder
                .encode_to_vec(mp3lame_encoder::MonoPcm(pcm), &mut self.out)
        };
        encoded.map_err(|e| format!("{e:?}"))?;
        self.file.write_all(&self.out).map_err(|e| e.to_string())
    }

    fn checkpoint(&mut self) -> Result<(), String> {
        // MP3 frames stand alone: what reached the file plays.
        self.file.flush().map_err(|e| e.to_string())
    }

    fn finish(mut self: Box<Self>) -> Result<(), String> {
        self.out.clear();
        self.out.reserve(7200);
        // FlushGap: FlushNoGap loses the last 56 ms (crates.md).
        self.encoder
            .flush_to_vec::<mp3lame_encoder::FlushGap>(&mut self.out)
            .map_err(|e| format!("{e:?}"))?;
        self.file.write_all(&self.out).map_err(|e| e.to_string())?;
        self.file.flush().map_err(|e| e.to_string())
    }
}
