//! The shell around one [`Room`]: it owns the members' audio (lent by their legs) and
//! channels, runs the 20 ms mix tick, plays music and sounds, and turns the state machine's
//! outputs into messages. A room is ticked by exactly one mixing thread (see `scheduler`), so
//! its members are touched by that thread only and the tick takes no locks: each tick reads
//! every member's RTP, mixes, and sends every member its mix. Slow work (fetching music, sound
//! URLs) runs on the tokio runtime and its results come back as messages.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use huddle_events::CallParams;
use huddle_media::codec::Codec;
use huddle_media::news::{NewsBell, NewsWatch};
use huddle_media::resample::{resample_all, FrameResampler};
use huddle_mixer::{
    soft_limit, HearingTable, Mixer, SpeakerClass, VadConfig, VoiceActivity, VoiceEvent,
};
use huddle_roomport::{
    member_news, HangupCause, JoinRefused, JoinRequest, Left, MemberId, MemberInput, MemberLink,
    MemberOutput, Membership, RoomExit, TickAudio,
};
use huddle_xml::{Sound, UrlWithMethod};
use tokio::sync::{mpsc, oneshot};

use crate::clock::plivo_timestamp;
use crate::events::EventName;
use crate::journal::LiveMpc;
use crate::lateness::LatenessTally;
use crate::recording::{self, ActiveRecording, ActiveTrack};
use crate::registry::RoomDeps;
use crate::shared::{GroupKey, MixKey, SharedEncoders};
use crate::snapshot::{MpcSnapshot, Roster};
use crate::sounds::{self, MusicLoop, SoundCursor};
use crate::state::{
    Command, CommandError, DialMusic, Hearing, Input, Output, Release, Room, Status, Target,
    TrackKind, TrackSource, ROLE_CHANNELS,
};

/// 20 ms.
const TICK: Duration = Duration::from_millis(20);

/// A join's answer.
pub(crate) enum JoinReply {
    Joined(Membership),
    Refused(JoinRefused),
    /// The MPC ended meanwhile: the registry creates a new one and joins with this audio.
    Gone(Box<dyn TickAudio>),
}

/// What the registry and helper tasks send to a room.
pub(crate) enum ActorMsg {
    Join {
        request: Box<JoinRequest>,
        audio: Box<dyn TickAudio>,
        member_id: MemberId,
        reply: oneshot::Sender<JoinReply>,
    },
    Command {
        command: Command,
        reply: oneshot::Sender<Result<(), CommandError>>,
    },
    /// Audio below carries the rate it was rendered at: a room that switched rate meanwhile
    /// has it converted (off the tick) before it plays.
    Music {
        slot: MusicSlot,
        pcm: Option<Arc<[i16]>>,
        rate: u32,
    },
    Sound {
        pcm: Arc<[i16]>,
        rate: u32,
    },
    SoundTo {
        members: Vec<MemberId>,
        pcm: Arc<[i16]>,
        /// The Play command's target and its number among this room's plays.
        form: Target,
        play: u64,
        rate: u32,
    },
    Snapshot {
        reply: oneshot::Sender<MpcSnapshot>,
    },
}

/// Which bed of music.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MusicSlot {
    Wait,
    AgentHold,
    CustomerHold,
}

struct Member {
    id: MemberId,
    params: CallParams,
    joined_at: SystemTime,
    audio: Box<dyn TickAudio>,
    /// The rate its audio exchanges frames at (fixed for its stay).
    rate: u32,
    /// Set while its rate differs from the room's: its converters, made at its join or at
    /// the room's switch, used once per tick each way.
    convert: Option<Box<MemberRate>>,
    inbox: mpsc::Receiver<MemberInput>,
    outbox: mpsc::Sender<MemberOutput>,
    exit: Option<oneshot::Sender<RoomExit>>,
    left: oneshot::Receiver<Left>,
    // Frame buffers sized to the room's rate (not fixed arrays): members stay small and
    // close together in memory, which the tick walks 50 times a second.
    voice: Box<[i16]>,
    has_voice: bool,
    sound: Box<[i16]>,
    sounds: Vec<SoundCursor>,
    mix: Box<[i16]>,
    vad: VoiceActivity,
    /// Its leg's codec (None for an AI stream), for shared encoding.
    codec: Option<Codec>,
    /// Audio is arriving (for ParticipantAudioStart/Stop).
    flowing: bool,
    /// Ticks without a frame.
    missing: u32,
}

/// Ticks without a frame before audio counts as stopped (200 ms: longer than any jitter).
const AUDIO_STOP_TICKS: u32 = 10;

impl Member {
    /// Whether this tick's frame goes into the mix (when the member's state lets it speak).
    ///
    /// Only frames that carry voice do: while the member is speaking (its VAD, with the
    /// hangover between words) or while its frame is at least as loud as speech that stops
    /// ([`VoiceActivity::hears_voice`]). Line noise, comfort noise and digital silence stay
    /// out. This is what lets listeners share an encode (`crate::shared`): a member that
    /// contributes needs a mix without its own voice, and with every member contributing all
    /// the time, nobody would ever hear a shared mix. ConfBridge and FreeSWITCH gate the same
    /// way. The level half of the rule is there for audio quality: a word's first frames,
    /// before the VAD confirms a start, and soft speech that never confirms one are mixed
    /// all the same, so gating cuts no speech a pure VAD gate would clip.
    fn contributing(&self) -> bool {
        self.has_voice && self.vad.hears_voice()
    }
}

/// The rate a room mixes at for a member whose audio runs at `member_rate`: 8 kHz for
/// telephone audio, 16 kHz for wideband (G.722, wideband Opus, a 16 kHz AI stream), 48 kHz for
/// fullband Opus (`rtp.opus_max_rate = 48000`). A room mixes at the highest of its members'.
pub(crate) fn room_rate_for(member_rate: u32) -> u32 {
    match member_rate {
        0..=8000 => 8000,
        8001..=16000 => 16000,
        _ => 48000,
    }
}

/// A member's converters between its rate and the room's, and its frames at its own rate.
struct MemberRate {
    into_room: FrameResampler,
    out_of_room: FrameResampler,
    /// Its decoded frame, kept between ticks: a lost frame is concealed by fading the last.
    leg_in: Box<[i16]>,
    leg_out: Box<[i16]>,
}

impl MemberRate {
    /// None when the member runs at the room's rate (or its converters cannot be built,
    /// which a supported rate never causes: logged, and the frames then pass unconverted).
    fn between(member: u32, room: u32) -> Option<Box<MemberRate>> {
        if member == room {
            return None;
        }
        let built = FrameResampler::new(member, room).and_then(|into_room| {
            Ok(MemberRate {
                into_room,
                out_of_room: FrameResampler::new(room, member)?,
                leg_in: vec![0; member as usize / 50].into(),
                leg_out: vec![0; member as usize / 50].into(),
            })
        });
        match built {
            Ok(r) => Some(Box::new(r)),
            Err(error) => {
                tracing::warn!(%error, member, room, "cannot convert a member's audio to the room's rate");
                None
            }
        }
    }

    /// The member's frame of this tick, converted into `out` (at the room's rate).
    fn receive(&mut self, audio: &mut dyn TickAudio, out: &mut [i16]) -> Option<usize> {
        let got = audio.receive(&mut self.leg_in)?;
        let len = self.leg_in.len();
        self.leg_in[got.min(len)..].fill(0);
        Some(self.into_room.process(&self.leg_in, out))
    }

    /// Sends the member its mix (at the room's rate), converted to its rate.
    fn send(&mut self, audio: &mut dyn TickAudio, mix: &[i16]) {
        let n = self.out_of_room.process(mix, &mut self.leg_out);
        audio.send(&self.leg_out[..n]);
    }
}

/// One live MPC as the mixing thread sees it: the state machine, the shell around it, its
/// message queue and its next deadline.
pub(crate) struct RoomTask {
    state: Room,
    shell: Shell,
    rx: mpsc::UnboundedReceiver<ActorMsg>,
    /// The next tick's absolute deadline.
    pub(crate) next: std::time::Instant,
}

impl RoomTask {
    /// The shell around a new MPC's state machine, whose first tick is due at `first_tick`.
    pub(crate) fn new(
        state: Room,
        rate: u32,
        deps: Arc<RoomDeps>,
        rx: mpsc::UnboundedReceiver<ActorMsg>,
        tx: mpsc::UnboundedSender<ActorMsg>,
        first_tick: std::time::Instant,
    ) -> Self {
        let rate = room_rate_for(rate);
        let frame_len = (rate / 50) as usize;
        metrics::gauge!("huddle_rooms_active").increment(1.0);
        let created = state.created_at();
        let (doorbell, news) = member_news();
        RoomTask {
            state,
            shell: Shell {
                recording: None,
                record_frame: vec![0; frame_len].into(),
                tracks: Vec::with_capacity(8),
                roster: Roster::new(created),
                plays_started: 0,
                play_stops: Vec::new(),
                deps,
                doorbell,
                news,
                tx,
                rate,
                frame_len,
                members: Vec::with_capacity(10),
                mixer: Mixer::new(frame_len, HearingTable::default()),
                shared: SharedEncoders::new(rate),
                wait: MusicLoop::default(),
                agent_hold: MusicLoop::default(),
                customer_hold: MusicLoop::default(),
                music_frames: [
                    vec![0; frame_len].into(),
                    vec![0; frame_len].into(),
                    vec![0; frame_len].into(),
                ],
                beep1: sounds::beep1(rate),
                beep2: sounds::beep2(rate),
                outputs: Vec::with_capacity(32),
                music_requested: false,
                journal_due: false,
            },
            rx,
            next: first_tick,
        }
    }

    /// Runs one due tick: messages first (joins, commands: they take effect in this very
    /// tick), then the mix. Returns false once the room is over and must be dropped.
    pub(crate) fn run_tick(
        &mut self,
        now: std::time::Instant,
        lateness: &mut LatenessTally,
    ) -> bool {
        lateness.record(now.saturating_duration_since(self.next));
        loop {
            match self.rx.try_recv() {
                Ok(msg) => self.shell.message(&mut self.state, msg),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return self.close(),
            }
        }
        self.shell.tick(&mut self.state);
        self.shell.journal(&self.state);
        self.next += TICK;
        if now > self.next + TICK * 5 {
            // Far behind (the machine stalled): resynchronise instead of bursting.
            self.next = now + TICK;
            metrics::counter!("huddle_mixer_ticks_skipped_total").increment(1);
        }
        if self.state.status() == Status::Ended && self.shell.members.is_empty() {
            return self.close();
        }
        true
    }

    fn close(&mut self) -> bool {
        metrics::gauge!("huddle_rooms_active").decrement(1.0);
        tracing::info!(mpc = %self.state.name(), mpc_uuid = %self.state.uuid(), "room closed");
        self.shell.deps.forget(self.state.name(), self.state.uuid());
        let last = self.shell.roster.snapshot(&self.state);
        if let Some(journal) = self.shell.deps.journal() {
            journal.ended(&last);
        }
        self.shell.deps.remember(last);
        // Joins that raced with the end are told to start a new MPC.
        self.rx.close();
        while let Ok(msg) = self.rx.try_recv() {
            if let ActorMsg::Join { reply, audio, .. } = msg {
                let _ = reply.send(JoinReply::Gone(audio));
            }
        }
        false
    }
}

struct Shell {
    deps: Arc<RoomDeps>,
    /// The recording being written, fed by the tick.
    recording: Option<ActiveRecording>,
    /// The recording's mix of this tick.
    record_frame: Box<[i16]>,
    /// Participant recordings and the per-role recording, fed by the tick.
    tracks: Vec<ActiveTrack>,
    /// Play commands so far (numbers the plays).
    plays_started: u64,
    /// Per Play target, the last play a stop applied to.
    play_stops: Vec<(Target, u64)>,
    /// Every participant entry, for snapshots.
    roster: Roster,
    /// Rung by a member's link when it has news (digits, a hang-up); cloned into each link.
    doorbell: NewsBell,
    /// The tick's side of the doorbell.
    news: NewsWatch,
    tx: mpsc::UnboundedSender<ActorMsg>,
    rate: u32,
    frame_len: usize,
    members: Vec<Member>,
    mixer: Mixer,
    /// One encode per tick for each group of listeners hearing the same mix.
    shared: SharedEncoders,
    wait: MusicLoop,
    agent_hold: MusicLoop,
    customer_hold: MusicLoop,
    music_frames: [Box<[i16]>; 3],
    beep1: Arc<[i16]>,
    beep2: Arc<[i16]>,
    outputs: Vec<Output>,
    music_requested: bool,
    /// Something a restart must know changed since the room was last journaled.
    journal_due: bool,
}

impl Shell {
    /// Journals the room once per tick at most, when it changed, and never once it has ended:
    /// the end is struck off the journal when MPCEnd is delivered, and a late entry would
    /// bring it back.
    fn journal(&mut self, state: &Room) {
        if !std::mem::take(&mut self.journal_due) || state.status() == Status::Ended {
            return;
        }
        let Some(journal) = self.deps.journal() else {
            return;
        };
        let settings = state.settings();
        journal.live(LiveMpc {
            snapshot: self.roster.snapshot(state),
            status_callback: settings.and_then(|s| s.status_callback.clone()),
            status_callback_events: settings
                .map(|s| s.status_callback_events.clone())
                .unwrap_or_default(),
        });
    }

    fn feed(&mut self, state: &mut Room, input: Input) {
        let mut outputs = std::mem::take(&mut self.outputs);
        state.handle(input, std::time::Instant::now(), &mut outputs);
        for output in outputs.drain(..) {
            self.apply(state, output);
        }
        self.outputs = outputs;
    }

    fn message(&mut self, state: &mut Room, msg: ActorMsg) {
        match msg {
            ActorMsg::Join {
                request,
                audio,
                member_id,
                reply,
            } => {
                if state.status() == Status::Ended {
                    let _ = reply.send(JoinReply::Gone(audio));
                    return;
                }
                self.join(state, *request, audio, member_id, reply);
            }
            ActorMsg::Command { command, reply } => {
                let mut outputs = std::mem::take(&mut self.outputs);
                state.handle(
                    Input::Command(command),
                    std::time::Instant::now(),
                    &mut outputs,
                );
                let failure = outputs.iter().find_map(|o| match o {
                    Output::CommandFailed(e) => Some(e.clone()),
                    _ => None,
                });
                for output in outputs.drain(..) {
                    self.apply(state, output);
                }
                self.outputs = outputs;
                let _ = reply.send(failure.map_or(Ok(()), Err));
            }
            ActorMsg::Music { slot, pcm, rate } => {
                if let Some(audio) = pcm.as_ref().filter(|_| rate != self.rate) {
                    self.convert_later(audio.clone(), rate, move |pcm, rate| ActorMsg::Music {
                        slot,
                        pcm: Some(pcm),
                        rate,
                    });
                    return;
                }
                match slot {
                    MusicSlot::Wait => self.wait.set(pcm),
                    MusicSlot::AgentHold => self.agent_hold.set(pcm),
                    MusicSlot::CustomerHold => self.customer_hold.set(pcm),
                }
            }
            ActorMsg::Sound { pcm, rate } if rate != self.rate => {
                self.convert_later(pcm, rate, |pcm, rate| ActorMsg::Sound { pcm, rate });
            }
            ActorMsg::Sound { pcm, .. } => self.play_to_unheld(state, pcm),
            ActorMsg::SoundTo {
                members,
                pcm,
                form,
                play,
                rate,
            } if rate != self.rate => {
                self.convert_later(pcm, rate, move |pcm, rate| ActorMsg::SoundTo {
                    members,
                    pcm,
                    form,
                    play,
                    rate,
                });
            }
            ActorMsg::SoundTo {
                members,
                pcm,
                form,
                play,
                ..
            } => {
                // A stop that came while the file was being fetched still applies.
                if self
                    .play_stops
                    .iter()
                    .any(|(stopped, upto)| *stopped == form && *upto >= play)
                {
                    return;
                }
                for m in self.members.iter_mut().filter(|m| members.contains(&m.id)) {
                    if m.sounds.len() < m.sounds.capacity() {
                        m.sounds.push(SoundCursor::play(pcm.clone(), form.clone()));
                    }
                }
            }
            ActorMsg::Snapshot { reply } => {
                let _ = reply.send(self.roster.snapshot(state));
            }
        }
    }

    fn join(
        &mut self,
        state: &mut Room,
        request: JoinRequest,
        audio: Box<dyn TickAudio>,
        member_id: MemberId,
        reply: oneshot::Sender<JoinReply>,
    ) {
        let (to_room, inbox) = mpsc::channel(16);
        let (outbox, from_room) = mpsc::channel(16);
        let (exit_tx, exit) = oneshot::channel();
        let (left, left_rx) = oneshot::channel();
        let params = CallParams {
            call_uuid: request.call_uuid.to_string(),
            from: request.from.clone(),
            to: request.to.clone(),
            direction: "inbound",
        };
        let (rate, codec) = (audio.rate(), audio.codec());
        if room_rate_for(rate) > self.rate {
            // Before the join is fed to the state machine, so that its entry sound is made
            // at the new rate.
            self.switch_rate(room_rate_for(rate));
        }
        self.members.push(Member {
            id: member_id,
            params,
            joined_at: SystemTime::now(),
            audio,
            rate,
            convert: MemberRate::between(rate, self.rate),
            codec,
            inbox,
            outbox,
            exit: Some(exit_tx),
            left: left_rx,
            voice: vec![0; self.frame_len].into(),
            has_voice: false,
            sound: vec![0; self.frame_len].into(),
            sounds: Vec::with_capacity(4),
            mix: vec![0; self.frame_len].into(),
            vad: VoiceActivity::new(VadConfig::default()),
            flowing: false,
            missing: 0,
        });
        let mut outputs = std::mem::take(&mut self.outputs);
        state.handle(
            Input::Join {
                member_id,
                call_uuid: request.call_uuid.clone(),
                mpc: request.mpc,
            },
            std::time::Instant::now(),
            &mut outputs,
        );
        let refused = outputs.iter().find_map(|o| match o {
            Output::Refused { reason, .. } => Some(reason.clone()),
            _ => None,
        });
        if let Some(reason) = refused {
            self.members.retain(|m| m.id != member_id);
            let _ = reply.send(JoinReply::Refused(JoinRefused { reason }));
        } else {
            if let Some(p) = state.participant(member_id) {
                self.roster.joined(p, &request.from);
            }
            let _ = reply.send(JoinReply::Joined(Membership {
                member_id,
                mpc_uuid: state.uuid().clone(),
                to_room: MemberLink::new(to_room, left, self.doorbell.clone()),
                from_room,
                exit,
            }));
        }
        if !self.music_requested && state.settings().is_some() {
            self.music_requested = true;
            self.request_music(state);
        }
        for output in outputs.drain(..) {
            self.apply(state, output);
        }
        self.outputs = outputs;
    }

    /// Fetches the three beds of music once, from the MPC's settings (first joiner's URLs).
    fn request_music(&self, state: &Room) {
        let Some(settings) = state.settings() else {
            return;
        };
        let Some(first) = self.members.first() else {
            return;
        };
        let extra = vec![
            ("MPCUUID".to_string(), state.uuid().to_string()),
            ("MPCName".to_string(), state.name().to_string()),
        ];
        for (slot, target) in [
            (MusicSlot::Wait, settings.wait_music.clone()),
            (MusicSlot::AgentHold, settings.agent_hold_music.clone()),
            (
                MusicSlot::CustomerHold,
                settings.customer_hold_music.clone(),
            ),
        ] {
            let Some(target) = target else { continue };
            self.spawn_render(
                target,
                first.params.clone(),
                extra.clone(),
                move |pcm, rate| ActorMsg::Music { slot, pcm, rate },
            );
        }
    }

    fn spawn_render(
        &self,
        target: UrlWithMethod,
        params: CallParams,
        extra: Vec<(String, String)>,
        wrap: impl FnOnce(Option<Arc<[i16]>>, u32) -> ActorMsg + Send + 'static,
    ) {
        let deps = self.deps.clone();
        let tx = self.tx.clone();
        let rate = self.rate;
        // The mixing thread is not a runtime thread: slow work goes to the runtime.
        self.deps.runtime.spawn(async move {
            let pcm =
                sounds::render_document(&deps.http, &deps.prompts, &target, &params, &extra, rate)
                    .await;
            let _ = tx.send(wrap(pcm, rate));
        });
    }

    /// Converts audio rendered at `from` Hz (before the room switched rate) to the room's rate
    /// on the runtime, off the mixing thread, and sends it back wrapped as it came.
    fn convert_later(
        &self,
        pcm: Arc<[i16]>,
        from: u32,
        wrap: impl FnOnce(Arc<[i16]>, u32) -> ActorMsg + Send + 'static,
    ) {
        let (tx, to) = (self.tx.clone(), self.rate);
        self.deps.runtime.spawn(async move {
            match resample_all(&pcm, from, to) {
                Ok(converted) => {
                    let _ = tx.send(wrap(converted.into(), to));
                }
                Err(error) => tracing::warn!(%error, "room audio dropped: cannot convert its rate"),
            }
        });
    }

    /// The room mixes at `rate` from now on (a wider member joined): every frame buffer is
    /// made again at the new size, the beeps re-rendered, the sounds playing converted, the
    /// music converted off the thread (silent meanwhile), each member's converters rebuilt
    /// and the recording told. Done once per switch, at a join, never per tick.
    fn switch_rate(&mut self, rate: u32) {
        let old = self.rate;
        tracing::info!(from = old, to = rate, "room switches its mixing rate");
        self.rate = rate;
        self.frame_len = (rate / 50) as usize;
        let n = self.frame_len;
        self.mixer = Mixer::new(n, *self.mixer.table());
        self.shared.set_room_rate(rate);
        self.record_frame = vec![0; n].into();
        self.music_frames = [vec![0; n].into(), vec![0; n].into(), vec![0; n].into()];
        self.beep1 = sounds::beep1(rate);
        self.beep2 = sounds::beep2(rate);
        for (slot, music) in [
            (MusicSlot::Wait, &mut self.wait),
            (MusicSlot::AgentHold, &mut self.agent_hold),
            (MusicSlot::CustomerHold, &mut self.customer_hold),
        ] {
            if let Some(pcm) = music.take() {
                let (tx, from) = (self.tx.clone(), old);
                self.deps.runtime.spawn(async move {
                    if let Ok(converted) = resample_all(&pcm, from, rate) {
                        let _ = tx.send(ActorMsg::Music {
                            slot,
                            pcm: Some(converted.into()),
                            rate,
                        });
                    }
                });
            }
        }
        if let Some(active) = self.recording.as_mut() {
            active.room_rate_changed(rate);
        }
        for track in &mut self.tracks {
            track.room_rate_changed(rate);
        }
        for m in &mut self.members {
            m.voice = vec![0; n].into();
            m.sound = vec![0; n].into();
            m.mix = vec![0; n].into();
            m.has_voice = false;
            // Sounds playing (short beeps, mostly) are converted here, at once: they play on.
            for cursor in &mut m.sounds {
                cursor.convert(old, rate);
            }
            m.convert = MemberRate::between(m.rate, rate);
        }
    }

    fn apply(&mut self, state: &Room, output: Output) {
        match output {
            Output::Admitted { .. } | Output::Refused { .. } | Output::CommandFailed(_) => {}
            Output::Release {
                member_id,
                release,
                on_exit,
                cause,
                role,
            } => {
                let Some(i) = self.members.iter().position(|m| m.id == member_id) else {
                    return;
                };
                let mut member = self.members.remove(i);
                let exit = match release {
                    Release::HangupKicked => RoomExit::Hangup(HangupCause::KickedOut),
                    Release::HangupShutdown => RoomExit::Hangup(HangupCause::ServerShutdown),
                    Release::Continue => RoomExit::Continue {
                        on_exit,
                        params: vec![
                            ("MPCUUID".into(), state.uuid().to_string()),
                            ("MPCFriendlyName".into(), state.name().to_string()),
                            ("MemberID".into(), member_id.to_string()),
                            (
                                "ParticipantCallUUID".into(),
                                member.params.call_uuid.clone(),
                            ),
                            (
                                "ParticipantJoinTime".into(),
                                plivo_timestamp(member.joined_at),
                            ),
                            (
                                "ParticipantEndTime".into(),
                                plivo_timestamp(SystemTime::now()),
                            ),
                            ("ParticipantRole".into(), role.as_str().to_string()),
                            ("ParticipantExitCause".into(), cause.name().to_string()),
                        ],
                    },
                };
                // The leg's audio goes home before the leg hears it may go on.
                let exit_tx = member.exit.take();
                drop(member);
                if let Some(tx) = exit_tx {
                    let _ = tx.send(exit);
                }
            }
            Output::Sound(Sound::Beep1) => self.play_to_unheld(state, self.beep1.clone()),
            Output::Sound(Sound::Beep2) => self.play_to_unheld(state, self.beep2.clone()),
            Output::Sound(_) => {}
            Output::SoundDocument(target) => {
                if let Some(first) = self.members.first() {
                    self.spawn_render(target, first.params.clone(), Vec::new(), |pcm, rate| {
                        ActorMsg::Sound {
                            pcm: pcm.unwrap_or_else(|| Arc::from(Vec::new())),
                            rate,
                        }
                    });
                }
            }
            Output::PlayAudio { members, url, form } => {
                self.plays_started += 1;
                let play = self.plays_started;
                let prompts = self.deps.prompts.clone();
                let tx = self.tx.clone();
                let rate = self.rate;
                self.deps.runtime.spawn(async move {
                    match prompts.audio_url(&url, rate).await {
                        Ok(pcm) => {
                            let _ = tx.send(ActorMsg::SoundTo {
                                members,
                                pcm: pcm.samples,
                                form,
                                play,
                                rate,
                            });
                        }
                        Err(err) => tracing::warn!(%url, error = %err, "MPC play failed"),
                    }
                });
            }
            Output::RecordingStart(recording) => {
                let with_coach = state.settings().is_some_and(|s| s.record_coach_voice);
                self.recording = recording::start(
                    &self.deps,
                    state.uuid(),
                    state.name(),
                    &recording,
                    with_coach,
                    self.rate,
                    self.frame_len,
                );
            }
            Output::RecordingPause(paused) => {
                if let Some(active) = self.recording.as_mut() {
                    active.recorder.set_paused(paused);
                }
            }
            // Dropping the recorder finalizes the file; the writer reports it.
            Output::RecordingStop => self.recording = None,
            Output::TrackStart(track) => {
                if let Some(active) = recording::start_track(
                    &self.deps,
                    state.uuid(),
                    state.name(),
                    &track,
                    self.rate,
                    self.frame_len,
                ) {
                    self.tracks.push(active);
                }
            }
            Output::TrackPause(id, paused) => {
                if let Some(t) = self.tracks.iter_mut().find(|t| t.id == id) {
                    t.recorder.set_paused(paused);
                }
            }
            Output::TrackStop(id) => self.tracks.retain(|t| t.id != id),
            Output::PlayDialMusic {
                members,
                music,
                limit,
                form,
            } => {
                self.plays_started += 1;
                let play = self.plays_started;
                let rate = self.rate;
                let secs = limit.as_secs().max(1);
                match music {
                    DialMusic::Ringback => {
                        let tx = self.tx.clone();
                        // Built off the mixing thread: up to minutes of samples.
                        self.deps.runtime.spawn(async move {
                            let _ = tx.send(ActorMsg::SoundTo {
                                members,
                                pcm: sounds::ringback(rate, secs),
                                form,
                                play,
                                rate,
                            });
                        });
                    }
                    DialMusic::Document(target) => {
                        let params = CallParams {
                            call_uuid: String::new(),
                            from: String::new(),
                            to: String::new(),
                            direction: "outbound",
                        };
                        self.spawn_render(target, params, Vec::new(), move |pcm, rate| {
                            let pcm = pcm.map_or_else(Vec::new, |p| sounds::repeat(&p, rate, secs));
                            ActorMsg::SoundTo {
                                members,
                                pcm: pcm.into(),
                                form,
                                play,
                                rate,
                            }
                        });
                    }
                }
            }
            Output::StopAudio { form } => {
                for m in &mut self.members {
                    m.sounds.retain(|cursor| !cursor.is_play(&form));
                }
                self.play_stops.retain(|(stopped, _)| *stopped != form);
                self.play_stops.push((form, self.plays_started));
            }
            Output::RelayDtmf {
                from,
                digit,
                duration_ms,
            } => {
                for m in self.members.iter().filter(|m| m.id != from) {
                    let _ = m.outbox.try_send(MemberOutput::Dtmf { digit, duration_ms });
                }
            }
            Output::Event(event) => {
                // Speech, audio flow and digits change nothing a restart needs.
                self.journal_due |= !matches!(
                    event.name,
                    EventName::ParticipantSpeakStart
                        | EventName::ParticipantSpeakStop
                        | EventName::ParticipantAudioStart
                        | EventName::ParticipantAudioStop
                        | EventName::ParticipantDigitInput
                );
                self.roster.on_event(&event);
                self.deps.emit(event);
            }
            Output::Ended(cause) => {
                tracing::info!(mpc = %state.name(), cause = cause.name(), code = cause.code(), "MPC ended");
            }
        }
    }

    /// Entry and exit sounds reach every listener that is not on hold (design.md).
    fn play_to_unheld(&mut self, state: &Room, pcm: Arc<[i16]>) {
        if pcm.is_empty() {
            return;
        }
        for m in &mut self.members {
            let held = state.participant(m.id).is_some_and(|p| p.held);
            if !held && m.sounds.len() < m.sounds.capacity() {
                m.sounds.push(SoundCursor::new(pcm.clone()));
            }
        }
    }

    fn tick(&mut self, state: &mut Room) {
        // Inputs: members leaving and digits, when a member rang.
        let mut gone: Vec<Input> = Vec::new();
        let mut digits: Vec<(MemberId, char, u32)> = Vec::new();
        let news = self.news.take();
        for m in self.members.iter_mut().filter(|_| news) {
            match m.left.try_recv() {
                Ok(Left::Transferred) => {
                    gone.push(Input::TransferredOut { member_id: m.id });
                    continue;
                }
                Ok(Left::Hangup(_)) => {
                    gone.push(Input::Hangup { member_id: m.id });
                    continue;
                }
                Err(_) => {}
            }
            loop {
                match m.inbox.try_recv() {
                    Ok(MemberInput::Dtmf { digit, duration_ms }) => {
                        digits.push((m.id, digit, duration_ms))
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        gone.push(Input::Hangup { member_id: m.id });
                        break;
                    }
                }
            }
        }
        for input in gone {
            if let Input::Hangup { member_id } | Input::TransferredOut { member_id } = input {
                self.members.retain(|m| m.id != member_id);
            }
            self.feed(state, input);
        }
        for (member_id, digit, duration_ms) in digits {
            self.feed(
                state,
                Input::Dtmf {
                    member_id,
                    digit,
                    duration_ms,
                },
            );
        }
        self.feed(state, Input::Tick);
        if self.members.is_empty() {
            return;
        }

        // One frame per member, read from its RTP now; audio flow and voice activity.
        let n = self.frame_len;
        let mut changes: Vec<Input> = Vec::new();
        for m in &mut self.members {
            let received = match m.convert.as_deref_mut() {
                Some(convert) => convert.receive(m.audio.as_mut(), &mut m.voice[..n]),
                None => m.audio.receive(&mut m.voice[..n]),
            };
            match received {
                Some(got) => {
                    // A short frame (an odd packetisation) is padded with silence.
                    m.voice[got.min(n)..n].fill(0);
                    m.has_voice = true;
                    m.missing = 0;
                    if !m.flowing {
                        m.flowing = true;
                        changes.push(Input::AudioFlow {
                            member_id: m.id,
                            active: true,
                        });
                    }
                    if let Some(ev) = m.vad.push(&m.voice[..n]) {
                        let active = ev == VoiceEvent::Started;
                        changes.push(Input::Speaking {
                            member_id: m.id,
                            active,
                        });
                    }
                }
                None => {
                    m.has_voice = false;
                    m.missing += 1;
                    if m.flowing && m.missing >= AUDIO_STOP_TICKS {
                        m.flowing = false;
                        changes.push(Input::AudioFlow {
                            member_id: m.id,
                            active: false,
                        });
                        if m.vad.is_active() {
                            m.vad.reset();
                            changes.push(Input::Speaking {
                                member_id: m.id,
                                active: false,
                            });
                        }
                    }
                }
            }
        }
        for input in changes {
            self.feed(state, input);
        }

        // Mix: sum contributors once, then one mix-minus per listener. A member contributes
        // only while it carries voice (see `contributing`).
        self.mixer.begin();
        for m in &self.members {
            if let Some(p) = state.participant(m.id) {
                if m.contributing() && state.contributes(p) {
                    self.mixer.add(p.speaker_class(), &m.voice[..n]);
                }
            }
        }
        self.mixer.finish();
        if let Some(active) = self.recording.as_mut() {
            if !active.recorder.is_paused() {
                let frame = &mut self.record_frame[..n];
                self.mixer.mix_for(active.listener, None, &[], frame);
                active.push(frame);
            }
        }
        self.wait.advance(&mut self.music_frames[0][..n]);
        self.agent_hold.advance(&mut self.music_frames[1][..n]);
        self.customer_hold.advance(&mut self.music_frames[2][..n]);

        self.shared.next_tick();
        for m in &mut self.members {
            let Some(p) = state.participant(m.id) else {
                continue;
            };
            let hearing = state.hearing(p);
            let own = (m.contributing() && state.contributes(p)).then(|| p.speaker_class());
            let Member {
                voice,
                sound,
                sounds,
                mix,
                audio,
                convert,
                codec,
                rate,
                ..
            } = m;
            // Sounds are for listeners not on hold; a hold starting mid-beep cuts it.
            let has_sound = if matches!(
                hearing,
                Hearing::AgentHoldMusic | Hearing::CustomerHoldMusic
            ) {
                sounds.clear();
                false
            } else {
                mix_sounds(sounds, &mut sound[..n])
            };
            let extra: &[&[i16]] = if has_sound { &[&sound[..n]] } else { &[] };
            // A listener hearing a shared mix (no own voice taken out, no sound over it) gets
            // its group's payload, encoded once this tick for the whole group.
            let shared_mix = match hearing {
                _ if has_sound => None,
                Hearing::Room(class) => self.mixer.shared_mix(class, own).map(MixKey::Room),
                Hearing::WaitMusic => Some(MixKey::Music(0)),
                Hearing::AgentHoldMusic => Some(MixKey::Music(1)),
                Hearing::CustomerHoldMusic => Some(MixKey::Music(2)),
            };
            let group = shared_mix
                .zip(codec.filter(|c| SharedEncoders::shares(*c)))
                .map(|(mix, codec)| GroupKey {
                    mix,
                    codec,
                    rate: *rate,
                });
            if let Some(key) = group {
                let (mixer, music) = (&self.mixer, &self.music_frames);
                let sent = self.shared.send(key, audio.as_mut(), |out| match key.mix {
                    MixKey::Room(heard) => mixer.mix_heard(heard, out),
                    MixKey::Music(0) => overlay(&music[0][..n], &[], out),
                    MixKey::Music(1) => out.copy_from_slice(&music[1][..n]),
                    MixKey::Music(_) => out.copy_from_slice(&music[2][..n]),
                });
                if sent {
                    continue;
                }
            }
            match hearing {
                Hearing::Room(class) => {
                    self.mixer
                        .mix_for(class, own.map(|c| (c, &voice[..n])), extra, &mut mix[..n])
                }
                Hearing::WaitMusic => overlay(&self.music_frames[0][..n], extra, &mut mix[..n]),
                Hearing::AgentHoldMusic => mix[..n].copy_from_slice(&self.music_frames[1][..n]),
                Hearing::CustomerHoldMusic => mix[..n].copy_from_slice(&self.music_frames[2][..n]),
            }
            match convert.as_deref_mut() {
                Some(convert) => convert.send(audio.as_mut(), &mix[..n]),
                None => audio.send(&mix[..n]),
            }
        }
        self.record_tracks(state);
    }

    /// Hands this tick's frame to every participant recording and the per-role recording.
    /// Runs after the mixes: a recording around a member holds what it was sent.
    fn record_tracks(&mut self, state: &Room) {
        if self.tracks.is_empty() {
            return;
        }
        let n = self.frame_len;
        let with_coach = state.settings().is_some_and(|s| s.record_coach_voice);
        for track in &mut self.tracks {
            if track.recorder.is_paused() {
                continue;
            }
            // Copied out of the track, which its channels are then set on.
            let member = match &track.source {
                TrackSource::Roles => None,
                TrackSource::Member(member, kind) => Some((member.member_id, *kind)),
            };
            match member {
                None => {
                    for (c, role) in ROLE_CHANNELS.iter().enumerate() {
                        let classes: &[SpeakerClass] = match role {
                            huddle_xml::Role::Customer => &[SpeakerClass::Customer],
                            huddle_xml::Role::Agent => &[SpeakerClass::Agent],
                            huddle_xml::Role::AiAgent => &[SpeakerClass::AiAgent],
                            // Coaching is recorded only with recordCoachVoice (design.md).
                            huddle_xml::Role::Supervisor if with_coach => {
                                &[SpeakerClass::Supervisor, SpeakerClass::Coach]
                            }
                            huddle_xml::Role::Supervisor => &[SpeakerClass::Supervisor],
                        };
                        // The channel's sum goes to the record frame, then into its place.
                        let channel = &mut self.record_frame[..n];
                        self.mixer.speakers_into(classes, channel);
                        track.set_channel(c, Some(channel));
                    }
                }
                Some((member_id, kind)) => {
                    let m = self.members.iter().find(|m| m.id == member_id);
                    let p = state.participant(member_id);
                    // What it says, as the recording column of the hearing table has it.
                    let voice = match (m, p) {
                        (Some(m), Some(p))
                            if m.has_voice
                                && state.contributes(p)
                                && (with_coach || p.speaker_class() != SpeakerClass::Coach) =>
                        {
                            Some(&m.voice[..n])
                        }
                        _ => None,
                    };
                    track.set_channel(0, voice);
                    if kind == TrackKind::Around {
                        track.set_channel(1, m.map(|m| &m.mix[..n]));
                    }
                }
            }
            track.push();
        }
    }
}

/// Sums the member's active sounds into `out`; false when none is playing.
fn mix_sounds(sounds: &mut Vec<SoundCursor>, out: &mut [i16]) -> bool {
    if sounds.is_empty() {
        return false;
    }
    out.fill(0);
    let mut scratch = [0i16; huddle_mixer::MAX_FRAME];
    let scratch = &mut scratch[..out.len()];
    sounds.retain_mut(|cursor| {
        let more = cursor.next_frame(scratch);
        for (o, s) in out.iter_mut().zip(scratch.iter()) {
            *o = o.saturating_add(*s);
        }
        more
    });
    true
}

/// Music plus sounds, through the same limiter as the room mix.
fn overlay(music: &[i16], extra: &[&[i16]], out: &mut [i16]) {
    for (i, o) in out.iter_mut().enumerate() {
        let mut sum = i32::from(music[i]);
        for e in extra {
            sum += i32::from(e.get(i).copied().unwrap_or(0));
        }
        *o = soft_limit(sum);
    }
}
