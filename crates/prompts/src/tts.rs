//! Speech synthesis with the espeak-ng command line.
//!
//! The CLI is used rather than libespeak-ng: the library is GPL and its Rust binding crashed
//! (crates.md pitfall 9). espeak-ng writes a 22,050 Hz mono 16-bit WAV file; `--stdout` is
//! avoided because it writes bogus size fields.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::excerpt;
use crate::PromptError;

/// Longest piece of synthesizer stderr quoted in an error.
const STDERR_IN_MESSAGES: usize = 300;

/// Runs `command -v VOICE -w TMPFILE -- TEXT` and returns the WAV file's bytes.
///
/// The text is one argv element after `--`, never seen by a shell, so quotes, `$(…)` or a
/// leading `-` are spoken, not interpreted. The process is killed if it outlives `timeout` or
/// the caller goes away, and the temporary file is deleted in every case.
pub(crate) async fn synthesize(
    command: &str,
    voice: &str,
    text: &str,
    timeout: Duration,
) -> Result<Vec<u8>, PromptError> {
    let file = TempWav::create()?;
    let child = tokio::process::Command::new(command)
        .arg("-v")
        .arg(voice)
        .arg("-w")
        .arg(&file.path)
        .arg("--")
        .arg(text)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => PromptError::TtsMissing {
                command: command.to_owned(),
            },
            _ => PromptError::Tts {
                detail: format!("cannot start `{command}`: {e}"),
            },
        })?;
    let about = || format!("\"{}\" with voice {voice}", excerpt(text, 40));
    // Dropping the `wait_with_output` future on timeout drops the child, which kills it.
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => {
            return Err(PromptError::Tts {
                detail: format!("`{command}` failed for {}: {e}", about()),
            })
        }
        Err(_) => {
            return Err(PromptError::Tts {
                detail: format!(
                    "`{command}` took longer than {:.1} s for {}",
                    timeout.as_secs_f64(),
                    about()
                ),
            })
        }
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(PromptError::Tts {
            detail: format!(
                "`{command}` exited with {} for {}: {}",
                output.status,
                about(),
                excerpt(stderr.trim(), STDERR_IN_MESSAGES)
            ),
        });
    }
    let bytes = tokio::fs::read(&file.path)
        .await
        .map_err(|e| PromptError::Tts {
            detail: format!("cannot read the output of `{command}` for {}: {e}", about()),
        })?;
    if bytes.is_empty() {
        return Err(PromptError::Tts {
            detail: format!("`{command}` wrote no audio for {}", about()),
        });
    }
    Ok(bytes)
}

/// A fresh, empty file in the temp directory that is removed when dropped.
struct TempWav {
    path: PathBuf,
}

impl TempWav {
    fn create() -> Result<Self, PromptError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mut last_error = None;
        // Unique by process, counter and clock; `create_new` refuses an existing path (or a
        // symlink planted in a shared /tmp), in which case the next name is tried.
        for _ in 0..8 {
            let path = std::env::temp_dir().join(format!(
                "huddle-tts-{}-{}-{nanos}.wav",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed),
            ));
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(&path) {
                Ok(_) => return Ok(Self { path }),
                Err(e) => last_error = Some(e),
            }
        }
        Err(PromptError::Tts {
            detail: format!(
                "cannot create a temporary file in {}: {}",
                std::env::temp_dir().display(),
                last_error.map_or_else(String::new, |e| e.to_string())
            ),
        })
    }
}

impl Drop for TempWav {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
