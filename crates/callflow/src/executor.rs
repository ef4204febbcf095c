//! Runs a call leg's Plivo XML: verbs in order, Redirect to new documents, Hangup with reason or
//! schedule, early media for PreAnswer, and the hand-over to a room for MultiPartyCall.
//!
//! The call is answered lazily, by the first verb that needs media (as Plivo does): a document
//! that starts with `<Hangup reason="busy"/>` refuses the call without ever answering it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use huddle_events::fetch::{self, CallParams, FetchError};
use huddle_media::codec::Codec;
use huddle_media::session::{
    AudioFrame, MediaEvent, MediaHandle, MediaItem, MediaSession, SrtpKeying,
};
use huddle_roomport::{
    CallUuid, HangupCause, JoinRequest, Left, MemberInput, MemberLink, MemberOutput, RoomExit,
};
use huddle_sip::endpoint::{EndReason, LegId};
use huddle_sip::message::Request;
use huddle_xml::{
    Document, Hangup, HangupReason, HttpMethod, MultiPartyCall, Play, Speak, Verb, Wait,
};
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::input::{DtmfPlayer, Ears};
use crate::leg::LegEvent;
use crate::manager::CallContext;
use crate::media_setup::{self, MediaPolicy, Negotiated};
use crate::playback::{FrameSource, NoAudio, PcmPlayer, Silence};

mod after_answer;

pub use after_answer::{valid_digits, AfterAnswer, ConfirmKey, CONFIRM_TIMEOUT};

mod ivr;
mod stream;
mod taps;

/// Where the first document comes from.
pub enum FirstDocument {
    /// Inline XML from a route.
    Inline(String),
    /// An answer_url.
    Url {
        /// URL, possibly with Plivo fragment options.
        url: String,
        /// GET or POST.
        method: HttpMethod,
    },
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The caller hung up or cancelled.
    Remote(EndReason),
    /// We end it with this cause.
    Local {
        /// Why.
        cause: HangupCause,
        /// The final response if the call is still unanswered (default: the cause's own).
        reject_with: Option<(u16, &'static str)>,
    },
    /// Not an end: the API moved the call, which goes on with this document. It unwinds
    /// whatever the call was doing like an ending does, and the document loop catches it.
    Transferred(Box<Document>),
}

impl Ending {
    fn local(cause: HangupCause) -> Self {
        Ending::Local {
            cause,
            reject_with: None,
        }
    }
}

/// How far [`XmlCall::start_media`] goes on the SIP side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MediaStart {
    /// Sockets and session only.
    Prepare,
    /// And 183 Session Progress with our SDP.
    EarlyMedia,
    /// And 200 OK.
    Answer,
}

/// What ended the current document.
enum Next {
    EndOfDocument,
    Redirect { url: String, method: HttpMethod },
    Document(Document),
}

/// Why a pump returned normally.
enum Pumped<T> {
    SourceDone,
    Ready(T),
    /// The ears listening to the caller asked to stop (a digit, a finish key, silence).
    Heard,
}

struct ActiveMedia {
    handle: MediaHandle,
    ticker: Interval,
    frame: AudioFrame,
    local_port: u16,
    /// The SRTP keys the media runs with, which a re-INVITE must keep.
    srtp: Option<SrtpKeying>,
    /// The codec the media runs, which a re-INVITE must keep (None: a leg we dialled).
    codec: Option<Codec>,
}

/// One call leg running XML.
pub struct XmlCall {
    ctx: Arc<CallContext>,
    leg: LegId,
    /// The INVITE's SDP offer (empty for a leg we dialled, whose media is already set up).
    offer: Bytes,
    params: CallParams,
    events: mpsc::UnboundedReceiver<LegEvent>,
    media: Option<ActiveMedia>,
    answered: bool,
    sdp_version: u64,
    answer_sdp: Option<Bytes>,
    hangup_at: Option<Instant>,
    ends_at: Option<Instant>,
    /// How the call latches and secures its media once it has some.
    media_policy: MediaPolicy,
    /// What a dialled leg does once answered, before its first document.
    after_answer: Option<AfterAnswer>,
    /// Where the caller's digits go outside a room while something waits for them.
    dtmf_tap: Option<mpsc::UnboundedSender<char>>,
    /// Digits of an asynchronous `<DTMF>` still going out while later verbs run.
    async_dtmf: Option<DtmfPlayer>,
    /// A `<Stream>` running beside the verbs (stopped when dropped).
    stream: Option<stream::CallStream>,
    /// What listens to the call's audio beside the verbs (the stream's audio, a session
    /// recording), shared with a room's tick while the call is a member.
    taps: taps::SharedTaps,
}

/// Audio rate of today's codecs (G.711).
const RATE: u32 = 8000;
const FRAME: usize = (RATE / 50) as usize;

impl XmlCall {
    /// A leg about to run XML.
    pub fn new(
        ctx: Arc<CallContext>,
        leg: LegId,
        invite: Request,
        params: CallParams,
        events: mpsc::UnboundedReceiver<LegEvent>,
        max_duration: Option<Duration>,
    ) -> Self {
        XmlCall {
            ctx,
            leg,
            offer: invite.body,
            params,
            events,
            media: None,
            answered: false,
            sdp_version: 1,
            answer_sdp: None,
            hangup_at: None,
            ends_at: max_duration.map(|d| Instant::now() + d),
            media_policy: MediaPolicy::default(),
            after_answer: None,
            dtmf_tap: None,
            async_dtmf: None,
            stream: None,
            taps: Default::default(),
        }
    }

    /// A leg we dialled, answered, whose media runs already.
    pub fn answered(
        ctx: Arc<CallContext>,
        leg: LegId,
        params: CallParams,
        events: mpsc::UnboundedReceiver<LegEvent>,
        handle: MediaHandle,
        local_port: u16,
    ) -> Self {
        let mut ticker = tokio::time::interval(Duration::from_millis(20));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        handle.send_frame(AudioFrame::silence(FRAME, RATE));
        XmlCall {
            ctx,
            leg,
            offer: Bytes::new(),
            params,
            events,
            media: Some(ActiveMedia {
                handle,
                ticker,
                frame: AudioFrame::silence(FRAME, RATE),
                local_port,
                srtp: None,
                codec: None,
            }),
            answered: true,
            sdp_version: 1,
            answer_sdp: None,
            hangup_at: None,
            ends_at: None,
            media_policy: MediaPolicy::default(),
            after_answer: None,
            dtmf_tap: None,
            async_dtmf: None,
            stream: None,
            taps: Default::default(),
        }
    }

    /// Sets how the call latches and secures its media (the route's `latching` and `srtp`
    /// and the INVITE's source); by default media only from the SDP's address, SRTP when
    /// offered.
    pub fn media_policy(mut self, policy: MediaPolicy) -> Self {
        self.media_policy = policy;
        self
    }

    /// Runs the call to its end and tears it down.
    pub async fn run(mut self, first: FirstDocument) -> Ending {
        let ending = match self.execute_all(first).await {
            Ok(never) => match never {},
            // The document loop takes every transfer; none gets this far.
            Err(Ending::Transferred(_)) => Ending::local(HangupCause::NormalHangup),
            Err(ending) => ending,
        };
        match &ending {
            Ending::Remote(reason) => tracing::info!(?reason, "call ended by the caller"),
            Ending::Transferred(_) => {}
            Ending::Local { cause, reject_with } => {
                tracing::info!(cause = %cause, "ending the call");
                if self.answered {
                    self.ctx.sip.hangup(self.leg);
                } else {
                    let (status, phrase) =
                        reject_with.unwrap_or((cause.sip_rejection(), cause.name()));
                    self.ctx.sip.reject(self.leg, status, phrase);
                }
            }
        }
        // The call is over: so are its stream and its session recording (whose file closes).
        self.stop_stream();
        self.end_session_recording();
        if let Some(media) = self.media.take() {
            let stats = media.handle.stop().await;
            tracing::info!(?stats, "media finished");
        }
        ending
    }

    async fn execute_all(
        &mut self,
        first: FirstDocument,
    ) -> Result<std::convert::Infallible, Ending> {
        let first = match first {
            FirstDocument::Inline(xml) => {
                parse(xml.as_bytes(), "route xml", HangupCause::InvalidAnswerXml)
            }
            FirstDocument::Url { url, method } => {
                self.load(&url, method, "StartApp", Vec::new(), Source::Answer)
                    .await
            }
        };
        if let Some(after) = self.after_answer.take() {
            self.run_after_answer(after).await?;
        }
        let mut document = transferred_or(first)?;
        loop {
            let next = match self.execute(&document.verbs).await {
                Ok(Next::EndOfDocument) => Err(Ending::local(HangupCause::EndOfXml)),
                Ok(Next::Document(next)) => Ok(next),
                Ok(Next::Redirect { url, method }) => {
                    self.load(&url, method, "Redirect", Vec::new(), Source::Redirect)
                        .await
                }
                Err(ending) => Err(ending),
            };
            document = transferred_or(next)?;
        }
    }

    /// Runs verbs until the list ends or one of them moves the call elsewhere.
    async fn execute(&mut self, verbs: &[Verb]) -> Result<Next, Ending> {
        for verb in verbs {
            match verb {
                Verb::Play(play) => self.play(play).await?,
                Verb::Speak(speak) => self.speak(speak).await?,
                Verb::Wait(wait) => self.wait(wait).await?,
                Verb::Hangup(hangup) => self.hangup(hangup)?,
                Verb::Redirect(r) => {
                    return Ok(Next::Redirect {
                        url: r.url.clone(),
                        method: r.method,
                    })
                }
                Verb::PreAnswer(pre) => {
                    if !self.answered {
                        self.start_media(MediaStart::EarlyMedia).await?;
                    }
                    for verb in &pre.verbs {
                        match verb {
                            Verb::Play(p) => self.play_early(p).await?,
                            Verb::Speak(s) => self.speak_early(s).await?,
                            Verb::Wait(w) => self.wait_early(w).await?,
                            // The parser allows nothing else inside PreAnswer.
                            _ => {}
                        }
                    }
                }
                Verb::MultiPartyCall(mpc) => {
                    if let Some(next) = self.multi_party_call(mpc).await? {
                        return Ok(Next::Document(next));
                    }
                }
                Verb::Conference(conference) => {
                    if let Some(next) = self.multi_party_call(&conference.to_mpc()).await? {
                        return Ok(Next::Document(next));
                    }
                }
                Verb::GetDigits(g) => {
                    if let Some(next) = self.get_digits(g).await? {
                        return Ok(next);
                    }
                }
                Verb::GetInput(g) => {
                    if let Some(next) = self.get_input(g).await? {
                        return Ok(next);
                    }
                }
                Verb::Dtmf(d) => self.dtmf(d).await?,
                Verb::Stream(s) => self.stream(s).await?,
                Verb::Record(r) => {
                    if let Some(next) = self.record(r).await? {
                        return Ok(next);
                    }
                }
            }
        }
        Ok(Next::EndOfDocument)
    }

    async fn play(&mut self, play: &Play) -> Result<(), Ending> {
        self.answer().await?;
        self.play_early(play).await
    }

    async fn play_early(&mut self, play: &Play) -> Result<(), Ending> {
        self.play_heard(play, None).await.map(|_| ())
    }

    /// Plays `play` while `ears` listen to the caller; true when they stopped it.
    async fn play_heard(
        &mut self,
        play: &Play,
        mut ears: Option<&mut (dyn Ears + 'static)>,
    ) -> Result<bool, Ending> {
        tracing::debug!(url = %play.url, "Play");
        let prompts = self.ctx.prompts.clone();
        let fetch = prompts.audio_url(&play.url, RATE);
        let fetched = match self
            .pump(&mut Silence::forever(), None, ears.as_deref_mut(), fetch)
            .await?
        {
            Pumped::Ready(fetched) => fetched,
            _ => return Ok(true),
        };
        match fetched {
            Ok(pcm) => {
                self.play_source_heard(&mut PcmPlayer::new(pcm.samples, play.loop_count), ears)
                    .await
            }
            Err(err) => {
                // Plivo skips a Play it cannot fetch and goes on with the next verb.
                tracing::warn!(url = %play.url, error = %err, "Play skipped");
                Ok(false)
            }
        }
    }

    async fn speak(&mut self, speak: &Speak) -> Result<(), Ending> {
        self.answer().await?;
        self.speak_early(speak).await
    }

    async fn speak_early(&mut self, speak: &Speak) -> Result<(), Ending> {
        self.speak_heard(speak, None).await.map(|_| ())
    }

    /// Says `speak` while `ears` listen to the caller; true when they stopped it.
    async fn speak_heard(
        &mut self,
        speak: &Speak,
        mut ears: Option<&mut (dyn Ears + 'static)>,
    ) -> Result<bool, Ending> {
        tracing::debug!(chars = speak.text.len(), voice = %speak.voice, language = %speak.language, "Speak");
        let prompts = self.ctx.prompts.clone();
        let synth = prompts.speech(&speak.text, &speak.voice, &speak.language, RATE);
        let synthesized = match self
            .pump(&mut Silence::forever(), None, ears.as_deref_mut(), synth)
            .await?
        {
            Pumped::Ready(synthesized) => synthesized,
            _ => return Ok(true),
        };
        match synthesized {
            Ok(pcm) => {
                self.play_source_heard(&mut PcmPlayer::new(pcm.samples, speak.loop_count), ears)
                    .await
            }
            Err(err) => {
                tracing::error!(error = %err, "Speak skipped: no speech engine output");
                Ok(false)
            }
        }
    }

    async fn wait(&mut self, wait: &Wait) -> Result<(), Ending> {
        self.answer().await?;
        self.wait_early(wait).await
    }

    async fn wait_early(&mut self, wait: &Wait) -> Result<(), Ending> {
        // `silence`/`minSilence`/`beep` detection modes wait the full length: the pause itself
        // is what every mode guarantees.
        let frames = u64::from(wait.length_secs) * 50;
        self.play_source(&mut Silence::frames(frames)).await
    }

    fn hangup(&mut self, hangup: &Hangup) -> Result<(), Ending> {
        if let Some(secs) = hangup.schedule_secs.filter(|s| *s > 0) {
            tracing::info!(secs, "hangup scheduled");
            self.hangup_at = Some(Instant::now() + Duration::from_secs(u64::from(secs)));
            return Ok(());
        }
        let reject_with = match hangup.reason {
            Some(HangupReason::Busy) => Some((486, "Busy Here")),
            Some(HangupReason::Rejected) => Some((603, "Decline")),
            None => Some((603, "Decline")),
        };
        Err(Ending::Local {
            cause: HangupCause::NormalHangup,
            reject_with,
        })
    }

    async fn multi_party_call(&mut self, mpc: &MultiPartyCall) -> Result<Option<Document>, Ending> {
        let Some(rooms) = self.ctx.rooms.clone() else {
            tracing::warn!(mpc = %mpc.name, "MultiPartyCall skipped: this server has no room service");
            return Ok(None);
        };
        if mpc.role == huddle_xml::Role::AiAgent && mpc.ai_agent_stream.service_url.is_some() {
            return self.stream_member(rooms, mpc).await;
        }
        // Join before answering, so that rooms see joins in the order the calls were answered
        // (maxParticipants decides by that order); the answer follows at once.
        self.start_media(MediaStart::Prepare).await?;
        let lent = match self.media.as_ref() {
            Some(m) => m.handle.lend().await,
            None => return Ok(None),
        };
        let Some(audio) = lent else {
            tracing::warn!(mpc = %mpc.name, "the call's media is gone: cannot join");
            return Err(Ending::local(HangupCause::MediaFailure));
        };
        let request = JoinRequest {
            call_uuid: CallUuid::new(self.params.call_uuid.clone()),
            from: self.params.from.clone(),
            to: self.params.to.clone(),
            mpc: Box::new(mpc.clone()),
            // In the room the leg runs at its codec's rate (16 kHz for G.722 and wideband Opus).
            sample_rate: huddle_roomport::TickAudio::rate(&audio),
        };
        // A stream or session recording keeps listening while the call is in the room: the
        // room's tick feeds them through the wrapped loan, which converts a wideband leg's
        // frames to the taps' 8 kHz.
        let audio: Box<dyn huddle_roomport::TickAudio> = if taps::lock(&self.taps).active() {
            match taps::TappedAudio::new(audio, self.taps.clone()) {
                Ok(tapped) => Box::new(tapped),
                Err((audio, error)) => {
                    tracing::warn!(mpc = %mpc.name, %error, "the call joins untapped: its taps cannot convert its rate");
                    Box::new(audio)
                }
            }
        } else {
            Box::new(audio)
        };
        let joined = self.pump_until(rooms.join(request, audio)).await?;
        self.answer().await?;
        let membership = match joined {
            Ok(m) => m,
            Err(refused) => {
                tracing::info!(mpc = %mpc.name, reason = %refused.reason, "MultiPartyCall refused; continuing");
                return Ok(None);
            }
        };
        let huddle_roomport::Membership {
            mut to_room,
            mut from_room,
            exit,
            ..
        } = membership;
        let link = RoomLink {
            to_room: &to_room,
            from_room: &mut from_room,
        };
        // The room ticks the audio now; this task only relays digits and waits for the exit.
        let outcome = self
            .pump(&mut Silence::forever(), Some(link), None, exit)
            .await;
        let exit = match outcome {
            Ok(Pumped::Ready(Ok(exit))) => exit,
            Ok(Pumped::Ready(Err(_))) | Ok(Pumped::SourceDone) | Ok(Pumped::Heard) => {
                RoomExit::Continue {
                    on_exit: None,
                    params: Vec::new(),
                }
            }
            Err(ending) => {
                to_room.leave(match &ending {
                    Ending::Local { cause, .. } => Left::Hangup(*cause),
                    Ending::Remote(_) => Left::Hangup(HangupCause::NormalHangup),
                    Ending::Transferred(_) => Left::Transferred,
                });
                return Err(ending);
            }
        };
        self.after_room(exit).await
    }

    /// The call anchors an ai-agent stream member (design.md "AI agents"): huddle dials the
    /// service and the member's voice and ears are the stream; the call's own RTP is not
    /// mixed (it hears silence). The member leaves when the call hangs up, the stream ends
    /// for good or the room lets it go; the call then goes on like any member's.
    async fn stream_member(
        &mut self,
        rooms: Arc<dyn huddle_roomport::Rooms>,
        mpc: &MultiPartyCall,
    ) -> Result<Option<Document>, Ending> {
        let settings = match huddle_aistream::StreamSettings::from_xml(&mpc.ai_agent_stream) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(mpc = %mpc.name, error = %e, "MultiPartyCall skipped: no usable AI stream");
                return Ok(None);
            }
        };
        self.start_media(MediaStart::Prepare).await?;
        let request = JoinRequest {
            call_uuid: CallUuid::new(self.params.call_uuid.clone()),
            from: self.params.from.clone(),
            to: self.params.to.clone(),
            mpc: Box::new(mpc.clone()),
            // The member is the stream: it exchanges frames at the stream's rate (a 16 kHz
            // stream is a wideband member).
            sample_rate: settings.format.rate(),
        };
        let deps = self.ctx.ai_streams.clone();
        let joined = self
            .pump_until(huddle_aistream::join(
                rooms.as_ref(),
                deps,
                request,
                settings,
                self.params.direction,
            ))
            .await?;
        self.answer().await?;
        let mut member = match joined {
            Ok(m) => m,
            Err(refused) => {
                tracing::info!(mpc = %mpc.name, reason = %refused.reason, "MultiPartyCall refused; continuing");
                return Ok(None);
            }
        };
        let outcome = self.pump(&mut NoAudio, None, None, member.finished()).await;
        match outcome {
            Ok(Pumped::Ready(huddle_aistream::Finished::Room(exit))) => self.after_room(exit).await,
            Ok(_) => Ok(None),
            Err(ending) => {
                member.leave(match &ending {
                    Ending::Local { cause, .. } => Left::Hangup(*cause),
                    Ending::Remote(_) => Left::Hangup(HangupCause::NormalHangup),
                    Ending::Transferred(_) => Left::Transferred,
                });
                Err(ending)
            }
        }
    }

    /// What follows a stay in a room: hang up, the next verb, or the onExitActionUrl's XML.
    async fn after_room(&mut self, exit: RoomExit) -> Result<Option<Document>, Ending> {
        match exit {
            RoomExit::Hangup(cause) => Err(Ending::local(cause)),
            RoomExit::Continue { on_exit: None, .. } => Ok(None),
            RoomExit::Continue {
                on_exit: Some(target),
                params,
            } => {
                let doc = self
                    .load(
                        &target.url,
                        target.method,
                        "MPCExit",
                        params,
                        Source::Redirect,
                    )
                    .await?;
                Ok(Some(doc))
            }
        }
    }

    /// Fetches and parses a document, mapping failures to Plivo's causes.
    async fn load(
        &mut self,
        url: &str,
        method: HttpMethod,
        event: &str,
        extra: Vec<(String, String)>,
        source: Source,
    ) -> Result<Document, Ending> {
        let status = if self.answered {
            "in-progress"
        } else {
            "ringing"
        };
        let mut params = self.params.pairs(status, event);
        params.extend(extra);
        let http = self.ctx.http.clone();
        let body = match self
            .pump_until(fetch::fetch_xml(&http, url, method, &params))
            .await?
        {
            Ok(body) => body,
            Err(err) => {
                let cause = match (&err, source) {
                    (FetchError::TooLarge { .. }, Source::Answer) => HangupCause::InvalidAnswerXml,
                    (FetchError::TooLarge { .. }, Source::Redirect) => {
                        HangupCause::InvalidRedirectXml
                    }
                    (_, Source::Answer) => HangupCause::AnswerUrlUnreachable,
                    (_, Source::Redirect) => HangupCause::RedirectUrlUnreachable,
                };
                tracing::warn!(error = %err, cause = %cause, "cannot fetch the call's XML");
                return Err(Ending::local(cause));
            }
        };
        let invalid = match source {
            Source::Answer => HangupCause::InvalidAnswerXml,
            Source::Redirect => HangupCause::InvalidRedirectXml,
        };
        parse(&body, url_options_free(url), invalid)
    }

    /// Sets up media on the first verb that needs it and sends 200 OK (or 183 for early media).
    async fn answer(&mut self) -> Result<(), Ending> {
        if self.answered {
            return Ok(());
        }
        self.start_media(MediaStart::Answer).await
    }

    async fn start_media(&mut self, start: MediaStart) -> Result<(), Ending> {
        let answer = start == MediaStart::Answer;
        if self.media.is_none() {
            let session = MediaSession::bind(&self.ctx.ports, self.ctx.media.local_ip)
                .await
                .map_err(|err| {
                    tracing::error!(error = %err, "cannot set up the call's RTP sockets");
                    Ending::Local {
                        cause: HangupCause::MediaFailure,
                        reject_with: Some((503, "No media ports available")),
                    }
                })?;
            let local_port = session.local_rtp_port();
            let negotiated = media_setup::negotiate(
                &self.offer,
                self.ctx.media.local_ip,
                local_port,
                self.sdp_version,
                self.media_policy.srtp,
                &self.ctx.media.codecs,
            )
            .map_err(|err| {
                tracing::info!(error = %err, "refusing the offer");
                Ending::Local {
                    cause: HangupCause::MediaFailure,
                    reject_with: Some(err.sip_status()),
                }
            })?;
            let handle = session
                .start(media_setup::params(
                    &self.ctx.media,
                    &negotiated,
                    self.media_policy.latching,
                ))
                .map_err(|err| {
                    tracing::error!(error = %err, "cannot start the media");
                    Ending::Local {
                        cause: HangupCause::MediaFailure,
                        reject_with: Some((500, "Media Setup Failed")),
                    }
                })?;
            let mut ticker = tokio::time::interval(Duration::from_millis(20));
            ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
            // One frame of cushion so that the pacing tick (ours or a room's) and the sender's
            // tick, which are not in phase, never starve the sender.
            handle.send_frame(AudioFrame::silence(FRAME, RATE));
            self.answer_sdp = Some(Bytes::from(negotiated.answer_sdp));
            self.media = Some(ActiveMedia {
                handle,
                ticker,
                frame: AudioFrame::silence(FRAME, RATE),
                local_port,
                srtp: negotiated.srtp,
                codec: Some(negotiated.codec),
            });
            if start == MediaStart::EarlyMedia {
                let sdp = self.answer_sdp.clone();
                self.ctx.sip.provisional(self.leg, 183, sdp);
                tracing::info!("early media (183)");
                return Ok(());
            }
        }
        if answer && !self.answered {
            let sdp = self.answer_sdp.clone().unwrap_or_default();
            self.ctx.sip.answer(self.leg, sdp);
            self.answered = true;
            tracing::info!("answered");
        }
        Ok(())
    }

    async fn play_source(&mut self, source: &mut dyn FrameSource) -> Result<(), Ending> {
        self.play_source_heard(source, None).await.map(|_| ())
    }

    /// Plays `source` to its end while `ears` listen; true when they stopped it.
    async fn play_source_heard(
        &mut self,
        source: &mut dyn FrameSource,
        ears: Option<&mut (dyn Ears + 'static)>,
    ) -> Result<bool, Ending> {
        let pumped = self
            .pump(source, None, ears, std::future::pending::<()>())
            .await?;
        Ok(matches!(pumped, Pumped::Heard))
    }

    /// Waits for `work` while the call keeps running (silence out, SIP events handled).
    async fn pump_until<F: Future>(&mut self, work: F) -> Result<F::Output, Ending> {
        match self.pump(&mut Silence::forever(), None, None, work).await? {
            Pumped::Ready(out) => Ok(out),
            Pumped::SourceDone | Pumped::Heard => {
                unreachable!("silence forever never ends and nothing listens")
            }
        }
    }

    /// The leg's heartbeat: every 20 ms one frame from `source` goes out; SIP events,
    /// scheduled hangups and limits are served. In a room our tick is off (the room writes
    /// the mixes into the media session itself, and the tick only paces asynchronous DTMF)
    /// and digits go both ways. Outside a room `ears`, when given, hear the caller's frames
    /// and digits. Returns when the source ends, `until` resolves or the ears stop it.
    async fn pump<F: Future>(
        &mut self,
        source: &mut dyn FrameSource,
        mut room: Option<RoomLink<'_>>,
        mut ears: Option<&mut (dyn Ears + 'static)>,
        until: F,
    ) -> Result<Pumped<F::Output>, Ending> {
        let in_room = room.is_some();
        // In a room the room paces the leg; a source that sends nothing needs no pacing.
        let source_ticks = !in_room && source.sends();
        tokio::pin!(until);
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        let hangup_at = tokio::time::sleep_until(self.hangup_at.unwrap_or(far));
        let ends_at = tokio::time::sleep_until(self.ends_at.unwrap_or(far));
        tokio::pin!(hangup_at, ends_at);
        let mut shutdown = self.ctx.hangup_all.clone();
        loop {
            let ticking = source_ticks || self.async_dtmf.is_some();
            let wake = {
                let (ticker, handle) = match self.media.as_mut() {
                    Some(m) => (Some(&mut m.ticker), Some(&mut m.handle)),
                    None => (None, None),
                };
                let from_room = room.as_mut().map(|r| &mut *r.from_room);
                tokio::select! {
                    out = &mut until => Wake::Done(out),
                    _ = tick(ticker), if ticking => Wake::Tick,
                    got = next_from_room(from_room) => Wake::Room(got),
                    item = next_item(handle) => Wake::Media(item),
                    ev = self.events.recv() => Wake::Leg(ev),
                    _ = &mut hangup_at => Wake::Scheduled,
                    _ = &mut ends_at => Wake::Limit,
                    _ = shutdown.wait_for(|v| *v) => Wake::Shutdown,
                }
            };
            match wake {
                Wake::Done(out) => return Ok(Pumped::Ready(out)),
                Wake::Room(Some(MemberOutput::Dtmf { digit, duration_ms })) => {
                    if let Some(m) = self.media.as_ref() {
                        m.handle.send_dtmf(digit, duration_ms);
                    }
                }
                // next_from_room never yields None: a closed room waits for its exit signal.
                Wake::Room(None) => {}
                Wake::Tick => {
                    let Some(m) = self.media.as_mut() else {
                        continue;
                    };
                    if let Some(player) = self.async_dtmf.as_mut() {
                        let (digit, more) = player.step();
                        if let Some(digit) = digit {
                            m.handle.send_dtmf(digit, crate::input::DIGIT_MS);
                        }
                        if !more {
                            self.async_dtmf = None;
                        }
                    }
                    if in_room {
                        continue;
                    }
                    m.frame.len = FRAME;
                    m.frame.rate = RATE;
                    if !source.fill(&mut m.frame.samples[..FRAME]) {
                        return Ok(Pumped::SourceDone);
                    }
                    {
                        let mut taps = taps::lock(&self.taps);
                        if taps.active() {
                            taps.outbound(&mut m.frame.samples[..FRAME]);
                        }
                    }
                    m.handle.send_frame(m.frame.clone());
                    if let Some((digit, duration_ms)) = source.take_dtmf() {
                        m.handle.send_dtmf(digit, duration_ms);
                    }
                }
                // Outside a room caller audio goes to the ears, if any; in a room it goes there
                // directly.
                Wake::Media(Some(MediaItem::Frame(frame))) => {
                    {
                        let mut taps = taps::lock(&self.taps);
                        if taps.active() {
                            taps.inbound(frame.pcm());
                        }
                    }
                    if let Some(ears) = ears.as_deref_mut() {
                        if ears.frame(frame.pcm()) {
                            return Ok(Pumped::Heard);
                        }
                    }
                }
                Wake::Media(Some(MediaItem::Event(MediaEvent::Dtmf { digit, duration_ms }))) => {
                    if ears.as_deref().is_none_or(|e| e.loggable()) {
                        tracing::info!(%digit, duration_ms, "DTMF from the caller");
                    } else {
                        tracing::info!(duration_ms, "DTMF from the caller (not logged)");
                    }
                    if let Some(r) = room.as_ref() {
                        r.to_room.send(MemberInput::Dtmf { digit, duration_ms });
                    } else if let Some(tap) = self.dtmf_tap.as_ref() {
                        let _ = tap.send(digit);
                    }
                    if let Some(stream) = self.stream.as_ref() {
                        stream.digit(digit);
                    }
                    if let Some(ears) = ears.as_deref_mut() {
                        if ears.digit(digit) {
                            return Ok(Pumped::Heard);
                        }
                    }
                }
                Wake::Media(Some(MediaItem::Event(MediaEvent::RtpTimeout))) => {
                    tracing::info!("no RTP from the caller: hanging up");
                    return Err(Ending::local(HangupCause::RtpTimeout));
                }
                Wake::Media(Some(MediaItem::Event(ev))) => tracing::debug!(?ev, "media event"),
                Wake::Media(None) => return Err(Ending::local(HangupCause::MediaFailure)),
                Wake::Leg(Some(LegEvent::Ended(reason))) => return Err(Ending::Remote(reason)),
                Wake::Leg(Some(LegEvent::ReInvite(offer))) => self.reinvite(&offer),
                Wake::Leg(Some(LegEvent::Established)) => tracing::debug!("call established"),
                Wake::Leg(Some(LegEvent::Progress(..))) => {}
                Wake::Leg(Some(LegEvent::Transfer(xml))) => {
                    match parse(xml.as_bytes(), "transfer", HangupCause::InvalidAnswerXml) {
                        Ok(document) => {
                            tracing::info!("moved by the API: running the new document");
                            return Err(Ending::Transferred(Box::new(document)));
                        }
                        Err(_) => tracing::warn!("an invalid transfer document was ignored"),
                    }
                }
                Wake::Leg(None) => return Err(Ending::Remote(EndReason::RemoteBye)),
                Wake::Scheduled => {
                    tracing::info!("scheduled hangup");
                    return Err(Ending::local(HangupCause::NormalHangup));
                }
                Wake::Limit => {
                    tracing::info!("route max_duration reached");
                    return Err(Ending::local(HangupCause::MaxDuration));
                }
                Wake::Shutdown => return Err(Ending::local(HangupCause::ServerShutdown)),
            }
        }
    }

    fn reinvite(&mut self, offer: &[u8]) {
        let Some(media) = self.media.as_ref() else {
            self.ctx.sip.answer_reinvite(self.leg, 488, Bytes::new());
            return;
        };
        self.sdp_version += 1;
        match media_setup::renegotiate(
            offer,
            self.ctx.media.local_ip,
            media.local_port,
            self.sdp_version,
            media.srtp.as_ref(),
            media.codec,
        ) {
            Ok(Negotiated {
                answer_sdp,
                remote_rtp,
                remote_direction,
                ..
            }) => {
                media.handle.update(remote_rtp, remote_direction);
                self.ctx
                    .sip
                    .answer_reinvite(self.leg, 200, Bytes::from(answer_sdp));
                tracing::info!(direction = ?remote_direction, "re-INVITE accepted");
            }
            Err(err) => {
                tracing::info!(error = %err, "re-INVITE refused");
                self.ctx.sip.answer_reinvite(self.leg, 488, Bytes::new());
            }
        }
    }
}

/// What woke the pump. Frames stay inline: this value lives on the stack for one loop turn.
#[allow(clippy::large_enum_variant)]
enum Wake<T> {
    Done(T),
    Room(Option<MemberOutput>),
    Tick,
    Media(Option<MediaItem>),
    Leg(Option<LegEvent>),
    Scheduled,
    Limit,
    Shutdown,
}

async fn tick(ticker: Option<&mut Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn next_item(handle: Option<&mut MediaHandle>) -> Option<MediaItem> {
    match handle {
        Some(h) => h.next().await,
        None => std::future::pending().await,
    }
}

/// Which kind of URL a document came from, for the failure cause.
#[derive(Debug, Clone, Copy)]
enum Source {
    Answer,
    Redirect,
}

/// The document to go on with: the next one, or the one a transfer brought.
fn transferred_or(next: Result<Document, Ending>) -> Result<Document, Ending> {
    match next {
        Err(Ending::Transferred(document)) => Ok(*document),
        other => other,
    }
}

/// Parses a fetched or configured document; every problem is logged, the first names the cause.
fn parse(body: &[u8], origin: &str, cause: HangupCause) -> Result<Document, Ending> {
    match huddle_xml::parse_bytes(body) {
        Ok(parsed) => {
            for warning in &parsed.warnings {
                tracing::warn!(%origin, %warning, "XML warning");
            }
            Ok(parsed.document)
        }
        Err(errors) => {
            for error in &errors {
                tracing::warn!(%origin, %error, "invalid XML");
            }
            tracing::warn!(%origin, count = errors.len(), cause = %cause, "the call's XML is invalid");
            Err(Ending::local(cause))
        }
    }
}

/// The URL as requested (Plivo's fragment options stripped), for log lines.
fn url_options_free(url: &str) -> &str {
    huddle_events::url_options::split(url).0
}

/// A leg's two channels to its room while it is a member.
struct RoomLink<'a> {
    to_room: &'a MemberLink,
    from_room: &'a mut mpsc::Receiver<MemberOutput>,
}

async fn next_from_room(
    from_room: Option<&mut mpsc::Receiver<MemberOutput>>,
) -> Option<MemberOutput> {
    match from_room {
        Some(rx) => match rx.recv().await {
            Some(out) => Some(out),
            // Closed: wait for the exit signal instead of spinning.
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}
