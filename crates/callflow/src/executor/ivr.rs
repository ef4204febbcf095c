//! The IVR verbs on a call: `GetDigits`, `GetInput` (DTMF), `DTMF` and `Record`. Their
//! action URLs are requested through the same signed client as answer_url, with the call
//! parameters plus the verb's own (`Digits`, `RecordUrl`, ...).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use huddle_events::Webhook;
use huddle_record::{Finished, RecordError};
use huddle_xml::{Dtmf, GetDigits, GetInput, HttpMethod, Play, Record, RecordFormat, Verb};
use tokio::sync::oneshot;

use super::taps::{self, SessionTap};
use super::{Ending, Next, Source, XmlCall, RATE};
use crate::input::{DigitCollector, DigitRules, DtmfPlayer, Ears, FirstDigit, SilenceTimer, Step};
use crate::manager::CallContext;
use crate::playback::{PcmPlayer, Silence};
use crate::record_journal::CallRecording;

/// The beep before GetDigits (`playBeep`) and Record: 1 kHz for 250 ms, then 50 ms of quiet.
fn beep() -> Arc<[i16]> {
    let tone = (RATE / 4) as usize;
    let mut pcm = vec![0i16; tone + (RATE / 20) as usize];
    huddle_media::tone::ToneGenerator::new(1000.0, 8000.0, RATE).fill(&mut pcm[..tone]);
    pcm.into()
}

/// One digit collection, in the terms GetDigits and GetInput share.
struct Collection<'a> {
    prompts: &'a [Verb],
    first_timeout: Duration,
    between_timeout: Duration,
    rules: DigitRules,
    attempts: u32,
    invalid_sound: Option<&'a str>,
    play_beep: bool,
    log: bool,
}

/// What an action URL is told and where the call goes next.
struct Action<'a> {
    url: &'a str,
    method: HttpMethod,
    redirect: bool,
    event: &'a str,
}

impl XmlCall {
    /// `<GetDigits>`: the next document when the action redirects, None to go on.
    pub(super) async fn get_digits(&mut self, g: &GetDigits) -> Result<Option<Next>, Ending> {
        self.answer().await?;
        let collection = Collection {
            prompts: &g.prompts,
            first_timeout: Duration::from_secs(u64::from(g.timeout_secs)),
            between_timeout: Duration::from_secs(u64::from(g.digit_timeout_secs)),
            rules: DigitRules {
                finish_on_key: g.finish_on_key,
                max_digits: g.num_digits,
                valid: g.valid_digits.clone(),
            },
            attempts: g.retries,
            invalid_sound: g.invalid_digits_sound.as_deref(),
            play_beep: g.play_beep,
            log: g.log,
        };
        let Some(digits) = self.collect(&collection).await? else {
            tracing::info!("GetDigits: no input; going on with the next verb");
            return Ok(None);
        };
        let Some(url) = g.action.as_deref() else {
            tracing::info!("GetDigits without an action: the digits go nowhere");
            return Ok(None);
        };
        let action = Action {
            url,
            method: g.method,
            redirect: g.redirect,
            event: "GetDigits",
        };
        self.act(&action, vec![("Digits".into(), digits)]).await
    }

    /// `<GetInput inputType="dtmf">`: like GetDigits with one attempt and no digit filter;
    /// the action also gets `InputType=dtmf`.
    pub(super) async fn get_input(&mut self, g: &GetInput) -> Result<Option<Next>, Ending> {
        self.answer().await?;
        let between = g
            .digit_end_timeout_secs
            .unwrap_or(GetInput::AUTO_DIGIT_END_SECS);
        let collection = Collection {
            prompts: &g.prompts,
            first_timeout: Duration::from_secs(u64::from(g.execution_timeout_secs)),
            between_timeout: Duration::from_secs(u64::from(between)),
            rules: DigitRules {
                finish_on_key: g.finish_on_key,
                max_digits: g.num_digits,
                valid: "1234567890*#ABCD".to_string(),
            },
            attempts: 1,
            invalid_sound: None,
            play_beep: false,
            log: g.log,
        };
        let Some(digits) = self.collect(&collection).await? else {
            tracing::info!("GetInput: no input; going on with the next verb");
            return Ok(None);
        };
        let action = Action {
            url: &g.action,
            method: g.method,
            redirect: g.redirect,
            event: "GetInput",
        };
        let params = vec![
            ("InputType".into(), "dtmf".into()),
            ("Digits".into(), digits),
        ];
        self.act(&action, params).await
    }

    /// Runs the attempts of a collection: the digits entered, or None after the last attempt
    /// brought no valid input.
    async fn collect(&mut self, c: &Collection<'_>) -> Result<Option<String>, Ending> {
        for attempt in 1..=c.attempts {
            let mut collector = DigitCollector::new(c.rules.clone());
            let mut first = FirstDigit {
                digit: None,
                log: c.log,
            };
            // The prompts, cut by the first key press.
            for prompt in c.prompts {
                if self.prompt(prompt, &mut first).await? {
                    break;
                }
            }
            if first.digit.is_none() && c.play_beep {
                self.play_source_heard(
                    &mut PcmPlayer::new(beep(), 1),
                    Some(&mut first as &mut (dyn Ears + 'static)),
                )
                .await?;
            }
            let mut key = match first.digit {
                Some(key) => Some(key),
                None => self.next_digit(c.first_timeout, c.log).await?,
            };
            let mut invalid = false;
            while let Some(pressed) = key {
                match collector.press(pressed) {
                    Step::Done => break,
                    Step::Invalid => {
                        invalid = true;
                        break;
                    }
                    Step::More => key = self.next_digit(c.between_timeout, c.log).await?,
                }
            }
            if invalid {
                tracing::info!(attempt, "digit input: a key outside the valid digits");
                if let Some(url) = c.invalid_sound {
                    let play = Play {
                        url: url.to_string(),
                        loop_count: 1,
                    };
                    self.play_heard(&play, None).await?;
                }
                continue;
            }
            if !collector.digits().is_empty() {
                if c.log {
                    tracing::info!(digits = collector.digits(), attempt, "digits collected");
                } else {
                    tracing::info!(attempt, "digits collected (not logged)");
                }
                return Ok(Some(collector.digits().to_string()));
            }
            tracing::info!(attempt, "digit input: nothing entered");
        }
        Ok(None)
    }

    /// One nested prompt with `ears` listening; true when a key cut it.
    async fn prompt(&mut self, verb: &Verb, ears: &mut FirstDigit) -> Result<bool, Ending> {
        match verb {
            Verb::Play(p) => {
                self.play_heard(p, Some(ears as &mut (dyn Ears + 'static)))
                    .await
            }
            Verb::Speak(s) => {
                self.speak_heard(s, Some(ears as &mut (dyn Ears + 'static)))
                    .await
            }
            Verb::Wait(w) => {
                let frames = u64::from(w.length_secs) * 50;
                self.play_source_heard(
                    &mut Silence::frames(frames),
                    Some(ears as &mut (dyn Ears + 'static)),
                )
                .await
            }
            // The parser nests nothing else.
            _ => Ok(false),
        }
    }

    /// The next key within `timeout`, or None.
    async fn next_digit(&mut self, timeout: Duration, log: bool) -> Result<Option<char>, Ending> {
        let mut ears = FirstDigit { digit: None, log };
        self.pump(
            &mut Silence::forever(),
            None,
            Some(&mut ears as &mut (dyn Ears + 'static)),
            tokio::time::sleep(timeout),
        )
        .await?;
        Ok(ears.digit)
    }

    /// Requests an action URL with the call parameters and `extra`: with redirect, its
    /// document is where the call goes next; without, it is told in the background and the
    /// call goes on.
    async fn act(
        &mut self,
        action: &Action<'_>,
        extra: Vec<(String, String)>,
    ) -> Result<Option<Next>, Ending> {
        if action.redirect {
            let document = self
                .load(
                    action.url,
                    action.method,
                    action.event,
                    extra,
                    Source::Redirect,
                )
                .await?;
            return Ok(Some(Next::Document(document)));
        }
        self.notify(action.url, action.method, action.event, extra);
        Ok(None)
    }

    /// Tells `url` in the background (signed, with the URL's retry options); its answer is
    /// not used.
    fn notify(&self, url: &str, method: HttpMethod, event: &str, extra: Vec<(String, String)>) {
        let mut params = self.params.pairs(self.call_status(), event);
        params.extend(extra);
        let http = self.ctx.http.clone();
        let url = url.to_string();
        tokio::spawn(async move {
            if let Err(err) = http
                .fetch(&url, method, &params, huddle_events::fetch::MAX_XML_BYTES)
                .await
            {
                tracing::warn!(error = %err, "an action notification failed");
            }
        });
    }

    /// `in-progress` once answered, `ringing` before.
    fn call_status(&self) -> &'static str {
        if self.answered {
            "in-progress"
        } else {
            "ringing"
        }
    }

    /// `<DTMF>`: synchronous digits play out before the next verb; asynchronous ones go out
    /// on the leg's tick while the next verbs run (a newer `<DTMF>` replaces what is left).
    pub(super) async fn dtmf(&mut self, d: &Dtmf) -> Result<(), Ending> {
        self.answer().await?;
        tracing::info!(digits = %d.digits, asynchronous = d.asynchronous, "DTMF to the caller");
        let mut player = DtmfPlayer::new(&d.digits);
        // A newer <DTMF> replaces what is left of an asynchronous one: two senders at once
        // would cut each other's digits.
        self.async_dtmf = None;
        if d.asynchronous {
            self.async_dtmf = Some(player);
            return Ok(());
        }
        self.play_source(&mut player).await
    }

    /// A new `<Record>` file: its journal entry (written before the writer starts, so that
    /// its end cannot overtake it) and its recorder, whose result `done` reports.
    fn start_recording(
        &self,
        r: &Record,
    ) -> Option<(CallRecording, huddle_record::Recorder, WriterDone)> {
        let id = uuid::Uuid::new_v4().to_string();
        let format = match r.file_format {
            RecordFormat::Wav => huddle_record::Format::Wav,
            RecordFormat::Mp3 => huddle_record::Format::Mp3,
        };
        let place = &self.ctx.recordings;
        let recording = CallRecording {
            path: place.dir.join(format!("{id}.{}", format.extension())),
            url: format!("{}{id}.{}", place.url_base, format.extension()),
            id,
            format,
            started: SystemTime::now(),
            callback: r.callback.clone(),
            call: self.params.clone(),
        };
        if let Some(journal) = &self.ctx.record_journal {
            journal.started(&recording);
        }
        let (done_tx, done_rx) = oneshot::channel();
        let started = huddle_record::Recorder::start(
            recording.path.clone(),
            format,
            RATE,
            super::FRAME,
            move |finished| {
                let _ = done_tx.send(finished);
            },
        );
        match started {
            Ok(recorder) => Some((recording, recorder, done_rx)),
            Err(err) => {
                tracing::error!(error = %err, "Record skipped: cannot start the recording");
                if let Some(journal) = &self.ctx.record_journal {
                    journal.finished(&recording.id);
                }
                None
            }
        }
    }

    /// `<Record>`: the caller's audio to a file under `storage.recordings` until a finish key,
    /// `timeout` seconds of silence, `maxLength` or hangup; then the action (and callbackUrl)
    /// get its URL and length. With `recordSession`, the whole call in the background instead.
    pub(super) async fn record(&mut self, r: &Record) -> Result<Option<Next>, Ending> {
        self.answer().await?;
        if r.record_session {
            self.record_session(r);
            return Ok(None);
        }
        if r.play_beep {
            self.play_source(&mut PcmPlayer::new(beep(), 1)).await?;
        }
        let Some((recording, recorder, done_rx)) = self.start_recording(r) else {
            return Ok(None);
        };
        let mut ears = RecordEars {
            recorder,
            silence: SilenceTimer::new(r.timeout_secs),
            finish_keys: r.finish_on_key.clone(),
            key: None,
        };
        let limit = tokio::time::sleep(Duration::from_secs(u64::from(r.max_length_secs)));
        let outcome = self
            .pump(
                &mut Silence::forever(),
                None,
                Some(&mut ears as &mut (dyn Ears + 'static)),
                limit,
            )
            .await;
        let key = ears.key;
        // Dropping the recorder closes the file; its writer reports when it is complete.
        drop(ears);
        let ended = SystemTime::now();
        if let Err(ending) = outcome {
            // The caller hung up: the file is still complete, and callbackUrl hears of it.
            let ctx = self.ctx.clone();
            tokio::spawn(async move {
                let result = done_rx
                    .await
                    .unwrap_or_else(|_| Err(writer_gone(&recording)));
                report_recording(&ctx, &recording, "completed", result, ended);
            });
            return Err(ending);
        }
        tracing::info!(?key, recording = %recording.id, "Record ended");
        let finished = self
            .pump_until(tokio::time::timeout(Duration::from_secs(10), done_rx))
            .await?;
        let result = match finished {
            Ok(Ok(result)) => result,
            _ => {
                tracing::error!("the recording's writer did not finish in time");
                Err(writer_gone(&recording))
            }
        };
        let params = match result {
            Ok(finished) => {
                let params = recording.report(&finished, ended);
                report_recording(&self.ctx, &recording, "in-progress", Ok(finished), ended);
                params
            }
            Err(err) => {
                report_recording(&self.ctx, &recording, "in-progress", Err(err), ended);
                return Ok(None);
            }
        };
        let Some(url) = r.action.as_deref() else {
            return Ok(None);
        };
        let action = Action {
            url,
            method: r.method,
            redirect: r.redirect,
            event: "Record",
        };
        self.act(&action, params).await
    }

    /// `<Record recordSession="true">`: what the caller says and hears goes to one file in
    /// the background, in and out of rooms, until the call hangs up (or a newer session
    /// recording replaces it); the next verbs run meanwhile. The action is told at once of the
    /// file's RecordUrl and RecordingID (the XML goes on whatever it answers); callbackUrl
    /// gets the full report once the file is complete.
    fn record_session(&mut self, r: &Record) {
        // A newer session recording replaces the one running, which completes and reports.
        self.end_session_recording();
        let Some((recording, recorder, done_rx)) = self.start_recording(r) else {
            return;
        };
        tracing::info!(recording = %recording.id, "recording the session in the background");
        if let Some(url) = r.action.as_deref() {
            let started = recording
                .started
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default();
            let params = vec![
                ("RecordUrl".into(), recording.url.clone()),
                ("RecordingID".into(), recording.id.clone()),
                ("RecordingStartMs".into(), started.to_string()),
            ];
            self.notify(url, r.method, "Record", params);
        }
        taps::lock(&self.taps).session = Some(SessionTap::new(recorder));
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            let result = done_rx
                .await
                .unwrap_or_else(|_| Err(writer_gone(&recording)));
            let ended = SystemTime::now();
            if let Ok(finished) = &result {
                tracing::info!(recording = %recording.id, seconds = finished.seconds(), "session recording complete");
            }
            report_recording(&ctx, &recording, "completed", result, ended);
        });
    }

    /// Ends the session recording, if one runs: its file closes and is reported.
    pub(super) fn end_session_recording(&mut self) {
        let session = taps::lock(&self.taps).session.take();
        drop(session);
    }
}

/// Where a recording's writer reports the finished file (or its failure).
type WriterDone = oneshot::Receiver<Result<Finished, RecordError>>;

/// The error of a writer that vanished without a word.
fn writer_gone(recording: &CallRecording) -> RecordError {
    RecordError::Io {
        path: recording.path.clone(),
        detail: "the recording's writer stopped without finishing".into(),
    }
}

/// A file is done: callbackUrl is told (durably when the server keeps callbacks in its
/// store, so that the journal entry struck off next cannot be lost with it) and the record
/// journal forgets the file.
fn report_recording(
    ctx: &CallContext,
    recording: &CallRecording,
    call_status: &str,
    result: Result<Finished, RecordError>,
    ended: SystemTime,
) {
    match (&result, &recording.callback) {
        (Ok(finished), Some(callback)) => {
            let params = recording.callback_params(call_status, finished, ended);
            match &ctx.webhooks {
                Some(webhooks) => {
                    webhooks.send(
                        &recording.call.call_uuid,
                        Webhook {
                            url: callback.url.clone(),
                            method: callback.method,
                            params,
                        },
                    );
                }
                None => {
                    let http = ctx.http.clone();
                    let callback = callback.clone();
                    tokio::spawn(async move {
                        if let Err(err) = http
                            .fetch(
                                &callback.url,
                                callback.method,
                                &params,
                                huddle_events::fetch::MAX_XML_BYTES,
                            )
                            .await
                        {
                            tracing::warn!(error = %err, "a Record callback failed");
                        }
                    });
                }
            }
        }
        (Err(err), _) => {
            tracing::error!(recording = %recording.id, error = %err, "the recording failed")
        }
        (Ok(_), None) => {}
    }
    if let Some(journal) = &ctx.record_journal {
        journal.finished(&recording.id);
    }
}

/// Hears the caller for `<Record>`: frames to the file, the finish keys, the silence timer.
struct RecordEars {
    recorder: huddle_record::Recorder,
    silence: SilenceTimer,
    finish_keys: String,
    key: Option<char>,
}

impl Ears for RecordEars {
    fn frame(&mut self, pcm: &[i16]) -> bool {
        self.recorder.push(pcm);
        self.silence.frame(pcm)
    }

    fn digit(&mut self, digit: char) -> bool {
        if self.finish_keys.contains(digit) {
            self.key = Some(digit);
            return true;
        }
        false
    }
}
