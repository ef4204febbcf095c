//! The model back to XML. Every attribute is written explicitly, so rendering and parsing
//! again gives the same model whatever the defaults.

use std::fmt::Write;

use crate::model::{
    Document, HangupReason, HttpMethod, MultiPartyCall, RecordFormat, Sound, UrlWithMethod, Verb,
};

/// Renders `doc` as `<?xml version="1.0" encoding="UTF-8"?><Response>...</Response>`, escaping
/// text and attribute values.
pub fn render(doc: &Document) -> String {
    let mut out = String::from(r#"<?xml version="1.0" encoding="UTF-8"?><Response>"#);
    for verb in &doc.verbs {
        render_verb(&mut out, verb);
    }
    out.push_str("</Response>");
    out
}

fn render_verb(out: &mut String, verb: &Verb) {
    match verb {
        Verb::Play(p) => {
            let mut e = Tag::open(out, "Play");
            e.attr("loop", p.loop_count);
            e.text(&p.url);
        }
        Verb::Speak(s) => {
            let mut e = Tag::open(out, "Speak");
            e.attr("voice", &s.voice);
            e.attr("language", &s.language);
            e.attr("loop", s.loop_count);
            e.text(&s.text);
        }
        Verb::Wait(w) => {
            let mut e = Tag::open(out, "Wait");
            e.attr("length", w.length_secs);
            e.attr("silence", w.silence);
            e.opt("minSilence", w.min_silence_ms);
            e.opt("beep", w.beep.as_deref());
            e.empty();
        }
        Verb::Hangup(h) => {
            let mut e = Tag::open(out, "Hangup");
            e.opt("reason", h.reason.map(hangup_reason));
            e.opt("schedule", h.schedule_secs);
            e.empty();
        }
        Verb::Redirect(r) => {
            let mut e = Tag::open(out, "Redirect");
            e.attr("method", r.method.as_str());
            e.text(&r.url);
        }
        Verb::PreAnswer(p) => {
            Tag::open(out, "PreAnswer").finish_open();
            for verb in &p.verbs {
                render_verb(out, verb);
            }
            out.push_str("</PreAnswer>");
        }
        Verb::MultiPartyCall(m) => render_mpc(out, m),
        Verb::GetDigits(g) => {
            let mut e = Tag::open(out, "GetDigits");
            e.opt("action", g.action.as_deref());
            e.attr("method", g.method.as_str());
            e.attr("timeout", g.timeout_secs);
            e.attr("digitTimeout", g.digit_timeout_secs);
            e.attr("finishOnKey", finish_key(g.finish_on_key));
            e.attr("numDigits", g.num_digits);
            e.attr("retries", g.retries);
            e.attr("validDigits", &g.valid_digits);
            e.opt("invalidDigitsSound", g.invalid_digits_sound.as_deref());
            e.attr("playBeep", g.play_beep);
            e.attr("redirect", g.redirect);
            e.attr("log", g.log);
            e.finish_open();
            for verb in &g.prompts {
                render_verb(out, verb);
            }
            out.push_str("</GetDigits>");
        }
        Verb::GetInput(g) => {
            let mut e = Tag::open(out, "GetInput");
            e.attr("action", &g.action);
            e.attr("method", g.method.as_str());
            e.attr("inputType", "dtmf");
            e.attr("executionTimeout", g.execution_timeout_secs);
            match g.digit_end_timeout_secs {
                Some(secs) => e.attr("digitEndTimeout", secs),
                None => e.attr("digitEndTimeout", "auto"),
            }
            e.attr("finishOnKey", finish_key(g.finish_on_key));
            e.attr("numDigits", g.num_digits);
            e.attr("redirect", g.redirect);
            e.attr("log", g.log);
            e.finish_open();
            for verb in &g.prompts {
                render_verb(out, verb);
            }
            out.push_str("</GetInput>");
        }
        Verb::Dtmf(d) => {
            let mut e = Tag::open(out, "DTMF");
            e.attr("async", d.asynchronous);
            e.text(&d.digits);
        }
        Verb::Record(r) => {
            let mut e = Tag::open(out, "Record");
            e.opt("action", r.action.as_deref());
            e.attr("method", r.method.as_str());
            e.attr("fileFormat", record_format(r.file_format));
            e.attr("redirect", r.redirect);
            e.attr("timeout", r.timeout_secs);
            e.attr("maxLength", r.max_length_secs);
            e.attr("playBeep", r.play_beep);
            e.attr(
                "finishOnKey",
                if r.finish_on_key.is_empty() {
                    "none"
                } else {
                    &r.finish_on_key
                },
            );
            e.url("callbackUrl", "callbackMethod", &r.callback);
            if r.record_session {
                e.attr("recordSession", true);
            }
            e.empty();
        }
        Verb::Conference(c) => {
            let mut e = Tag::open(out, "Conference");
            e.attr("muted", c.muted);
            e.attr("enterSound", sound(&c.enter_sound));
            e.attr("exitSound", sound(&c.exit_sound));
            e.attr("startConferenceOnEnter", c.start_conference_on_enter);
            e.attr("endConferenceOnExit", c.end_conference_on_exit);
            e.attr("stayAlone", c.stay_alone);
            e.url("waitSound", "waitSoundMethod", &c.wait_sound);
            e.attr("maxMembers", c.max_members);
            e.attr("record", c.record);
            e.attr("recordFileFormat", record_format(c.record_file_format));
            e.attr("timeLimit", c.time_limit_secs);
            e.url("action", "method", &c.action);
            e.attr("relayDTMF", c.relay_dtmf);
            e.text(&c.name);
        }
        Verb::Stream(st) => {
            let mut e = Tag::open(out, "Stream");
            e.attr("bidirectional", st.bidirectional);
            e.attr("audioTrack", st.audio_track.as_str());
            e.attr("streamTimeout", st.stream_timeout_secs);
            e.attr("contentType", &st.content_type);
            e.attr("keepCallAlive", st.keep_call_alive);
            e.opt("extraHeaders", st.extra_headers.as_deref());
            e.url(
                "statusCallbackUrl",
                "statusCallbackMethod",
                &st.status_callback,
            );
            e.text(&st.url);
        }
    }
}

fn finish_key(key: Option<char>) -> String {
    key.map_or_else(|| "none".to_string(), String::from)
}

fn render_mpc(out: &mut String, m: &MultiPartyCall) {
    let mut e = Tag::open(out, "MultiPartyCall");
    e.attr("role", m.role.as_str());
    e.attr("maxDuration", m.max_duration);
    e.attr("maxParticipants", m.max_participants);
    e.attr("record", m.record);
    e.attr("recordFileFormat", record_format(m.record_file_format));
    e.attr("recordMinMemberCount", m.record_min_member_count);
    e.attr("waitForAgent", m.wait_for_agent);
    e.attr("recordCoachVoice", m.record_coach_voice);
    // An extension: written only when on, so that documents without it render as before.
    e.opt("recordRoleChannels", m.record_role_channels.then_some(true));
    e.url(
        "startRecordingAudio",
        "startRecordingAudioMethod",
        &m.start_recording_audio,
    );
    e.url(
        "stopRecordingAudio",
        "stopRecordingAudioMethod",
        &m.stop_recording_audio,
    );
    e.url("waitMusicUrl", "waitMusicMethod", &m.wait_music);
    e.url(
        "agentHoldMusicUrl",
        "agentHoldMusicMethod",
        &m.agent_hold_music,
    );
    e.url(
        "customerHoldMusicUrl",
        "customerHoldMusicMethod",
        &m.customer_hold_music,
    );
    e.url(
        "statusCallbackUrl",
        "statusCallbackMethod",
        &m.status_callback,
    );
    let events: Vec<&str> = m
        .status_callback_events
        .iter()
        .map(|e| e.as_str())
        .collect();
    e.attr("statusCallbackEvents", events.join(","));
    e.url(
        "recordingCallbackUrl",
        "recordingCallbackMethod",
        &m.recording_callback,
    );
    e.attr("mute", m.mute);
    e.attr("hold", m.hold);
    e.attr("coachMode", m.coach_mode);
    e.attr("stayAlone", m.stay_alone);
    e.attr("startMpcOnEnter", m.start_mpc_on_enter);
    e.attr("endMpcOnExit", m.end_mpc_on_exit);
    e.attr("enterSound", sound(&m.enter_sound));
    e.attr("enterSoundMethod", m.enter_sound_method.as_str());
    e.attr("exitSound", sound(&m.exit_sound));
    e.attr("exitSoundMethod", m.exit_sound_method.as_str());
    e.url("onExitActionUrl", "onExitActionMethod", &m.on_exit_action);
    e.attr("relayDTMFInputs", m.relay_dtmf_inputs);
    let s = &m.ai_agent_stream;
    e.opt("aiAgentStreamServiceUrl", s.service_url.as_deref());
    e.attr("aiAgentStreamContentType", &s.content_type);
    e.opt(
        "aiAgentStreamStatusCallbackUrl",
        s.status_callback_url.as_deref(),
    );
    e.attr(
        "aiAgentStreamStatusCallbackMethod",
        s.status_callback_method.as_str(),
    );
    e.opt("aiAgentStreamSamplingRate", s.sampling_rate);
    e.opt("aiAgentStreamExtraHeaders", s.extra_headers.as_deref());
    e.opt("waitTime", m.wait_time);
    e.attr("recordParticipantTrack", m.record_participant_track);
    e.attr("transcript", m.transcript);
    e.opt("transcriptionUrl", m.transcription_url.as_deref());
    e.text(&m.name);
}

fn hangup_reason(reason: HangupReason) -> &'static str {
    match reason {
        HangupReason::Rejected => "rejected",
        HangupReason::Busy => "busy",
    }
}

fn record_format(format: RecordFormat) -> &'static str {
    match format {
        RecordFormat::Mp3 => "mp3",
        RecordFormat::Wav => "wav",
    }
}

fn sound(sound: &Sound) -> &str {
    match sound {
        Sound::None => "none",
        Sound::Beep1 => "beep:1",
        Sound::Beep2 => "beep:2",
        Sound::Url(url) => url,
    }
}

/// An element being written: `open` writes `<Name`, attributes follow, then its content.
struct Tag<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl<'a> Tag<'a> {
    fn open(out: &'a mut String, name: &'static str) -> Self {
        out.push('<');
        out.push_str(name);
        Tag { out, name }
    }

    fn attr(&mut self, name: &str, value: impl std::fmt::Display) {
        let value = value.to_string();
        self.out.push(' ');
        self.out.push_str(name);
        self.out.push_str("=\"");
        escape(self.out, &value, true);
        self.out.push('"');
    }

    fn opt<T: std::fmt::Display>(&mut self, name: &str, value: Option<T>) {
        if let Some(value) = value {
            self.attr(name, value);
        }
    }

    /// A URL attribute with its method; both left out when there is no URL.
    fn url(&mut self, url: &str, method: &str, value: &Option<UrlWithMethod>) {
        if let Some(UrlWithMethod { url: u, method: m }) = value {
            self.attr(url, u);
            self.attr(method, method_str(*m));
        }
    }

    fn finish_open(self) {
        self.out.push('>');
    }

    fn empty(self) {
        self.out.push_str("/>");
    }

    fn text(self, text: &str) {
        self.out.push('>');
        escape(self.out, text, false);
        // Writing to a String cannot fail.
        let _ = write!(self.out, "</{}>", self.name);
    }
}

fn method_str(method: HttpMethod) -> &'static str {
    method.as_str()
}

/// Escapes markup characters; in attributes also quotes and the whitespace that attribute-value
/// normalisation would otherwise turn into spaces.
fn escape(out: &mut String, s: &str, attribute: bool) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\t' if attribute => out.push_str("&#9;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
}
