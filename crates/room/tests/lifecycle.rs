//! The MPC state machine with simulated time: lifecycle rules, first-joiner-wins, every
//! termination cause, commands, and the events with their order.

use std::time::{Duration, Instant};

use huddle_mixer::ListenerClass;
use huddle_room::state::{
    Command, DialMusic, Hearing, Input, Output, Release, Room, Status, Target,
};
use huddle_room::{EventName, ExitCause, TerminationCause};
use huddle_roomport::{CallUuid, MemberId, SeededIds};
use huddle_xml::{HttpMethod, MultiPartyCall, Role, Sound, UrlWithMethod};

struct Sim {
    room: Room,
    now: Instant,
    next_id: u64,
}

impl Sim {
    fn new() -> Sim {
        Sim::seeded(1)
    }

    /// A room whose ids (its recordings') come from a source seeded with `seed`.
    fn seeded(seed: u64) -> Sim {
        let now = Instant::now();
        Sim {
            room: Room::new(
                "mpc-uuid".into(),
                "room1".into(),
                now,
                Box::new(SeededIds::new(seed)),
            ),
            now,
            next_id: 100,
        }
    }

    fn feed(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        self.room.handle(input, self.now, &mut out);
        out
    }

    fn join(&mut self, mpc: MultiPartyCall) -> (MemberId, Vec<Output>) {
        self.next_id += 1;
        let id = MemberId(self.next_id);
        let out = self.feed(Input::Join {
            member_id: id,
            call_uuid: CallUuid::new(format!("call-{id}")),
            mpc: Box::new(mpc),
        });
        (id, out)
    }

    fn advance(&mut self, d: Duration) -> Vec<Output> {
        self.now += d;
        self.feed(Input::Tick)
    }
}

fn verb(role: Role) -> MultiPartyCall {
    let mut m = MultiPartyCall::new("room1", role);
    m.enter_sound = Sound::None;
    m.exit_sound = Sound::None;
    m
}

fn events(out: &[Output]) -> Vec<EventName> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e.name),
            _ => None,
        })
        .collect()
}

fn ended(out: &[Output]) -> Option<TerminationCause> {
    out.iter().find_map(|o| match o {
        Output::Ended(c) => Some(*c),
        _ => None,
    })
}

fn releases(out: &[Output]) -> Vec<(MemberId, Release, ExitCause)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Release {
                member_id,
                release,
                cause,
                ..
            } => Some((*member_id, release.clone(), *cause)),
            _ => None,
        })
        .collect()
}

#[test]
fn first_joiner_creates_and_starts_with_events_in_order() {
    let mut s = Sim::new();
    let (a, out) = s.join(verb(Role::Agent));
    assert_eq!(out[0], Output::Admitted { member_id: a });
    assert_eq!(
        events(&out),
        vec![
            EventName::MpcInitialized,
            EventName::ParticipantJoin,
            EventName::MpcStart
        ]
    );
    assert_eq!(s.room.status(), Status::Active);
    let (_, out) = s.join(verb(Role::Customer));
    assert_eq!(events(&out), vec![EventName::ParticipantJoin]);
}

#[test]
fn start_mpc_on_enter_false_waits_with_wait_music_until_a_starter_or_the_api() {
    let mut s = Sim::new();
    let mut c = verb(Role::Customer);
    c.start_mpc_on_enter = false;
    let (cid, out) = s.join(c.clone());
    assert_eq!(
        events(&out),
        vec![EventName::MpcInitialized, EventName::ParticipantJoin]
    );
    assert_eq!(s.room.status(), Status::Initialized);
    let p = s.room.participant(cid).unwrap().clone();
    assert_eq!(s.room.hearing(&p), Hearing::WaitMusic);
    assert!(
        !s.room.contributes(&p),
        "nobody hears anybody before the start"
    );
    let (_, out) = s.join(c);
    assert!(!events(&out).contains(&EventName::MpcStart));
    let out = s.feed(Input::Command(Command::Start));
    assert_eq!(events(&out), vec![EventName::MpcStart]);
    let p = s.room.participant(cid).unwrap().clone();
    assert_eq!(s.room.hearing(&p), Hearing::Room(ListenerClass::Customer));
    assert!(s.room.contributes(&p));
    let out = s.feed(Input::Command(Command::Start));
    assert!(matches!(out[0], Output::CommandFailed(_)));
}

#[test]
fn wait_for_agent_holds_the_start_until_an_agent_joins() {
    let mut s = Sim::new();
    let mut c = verb(Role::Customer);
    c.wait_for_agent = true;
    let (cid, out) = s.join(c);
    assert!(!events(&out).contains(&EventName::MpcStart));
    let (_, out) = s.join(verb(Role::Supervisor));
    assert!(
        !events(&out).contains(&EventName::MpcStart),
        "a supervisor is not an agent"
    );
    let p = s.room.participant(cid).unwrap().clone();
    assert_eq!(s.room.hearing(&p), Hearing::WaitMusic);
    let (_, out) = s.join(verb(Role::Agent));
    assert_eq!(
        events(&out),
        vec![EventName::ParticipantJoin, EventName::MpcStart]
    );
}

#[test]
fn mpc_level_attributes_come_from_the_first_joiner() {
    let mut s = Sim::new();
    let mut first = verb(Role::Customer);
    first.max_participants = 2;
    first.max_duration = 600;
    first.wait_for_agent = false;
    first.wait_music = Some(UrlWithMethod {
        url: "http://first/wait".into(),
        method: HttpMethod::Get,
    });
    s.join(first);
    let mut second = verb(Role::Agent);
    second.max_participants = 10;
    second.max_duration = 28800;
    second.wait_music = Some(UrlWithMethod {
        url: "http://second/wait".into(),
        method: HttpMethod::Post,
    });
    s.join(second);
    let settings = s.room.settings().unwrap();
    assert_eq!(settings.max_participants, 2);
    assert_eq!(settings.max_duration, 600);
    assert_eq!(
        settings.wait_music.as_ref().unwrap().url,
        "http://first/wait"
    );
    // maxParticipants=2 from the first joiner refuses the third.
    let (id, out) = s.join(verb(Role::Supervisor));
    assert!(
        matches!(&out[0], Output::Refused { member_id, reason } if *member_id == id && reason.contains("maxParticipants=2")),
        "{out:?}"
    );
    assert!(events(&out).is_empty());
    assert_eq!(s.room.participants().len(), 2);
}

#[test]
fn last_participant_leaving_ends_with_1000() {
    let mut s = Sim::new();
    let mut a = verb(Role::Agent);
    a.stay_alone = true;
    let (aid, _) = s.join(a);
    let out = s.feed(Input::Hangup { member_id: aid });
    assert_eq!(
        events(&out),
        vec![EventName::ParticipantExit, EventName::MpcEnd]
    );
    assert_eq!(ended(&out), Some(TerminationCause::NoActiveParticipants));
    assert_eq!(s.room.status(), Status::Ended);
    assert!(
        releases(&out).is_empty(),
        "a hung-up call is not released again"
    );
}

#[test]
fn stay_alone_false_ends_with_1010_when_company_leaves() {
    let mut s = Sim::new();
    let (cid, out) = s.join(verb(Role::Customer));
    assert!(
        ended(&out).is_none(),
        "waiting alone for others is not staying alone"
    );
    let (aid, _) = s.join(verb(Role::Agent));
    let out = s.feed(Input::Hangup { member_id: aid });
    assert_eq!(ended(&out), Some(TerminationCause::StayAloneNotPermitted));
    assert_eq!(
        releases(&out),
        vec![(cid, Release::Continue, ExitCause::MpcEnded)]
    );
    assert_eq!(
        events(&out),
        vec![
            EventName::ParticipantExit,
            EventName::ParticipantExit,
            EventName::MpcEnd
        ]
    );
}

#[test]
fn stay_alone_true_keeps_the_mpc() {
    let mut s = Sim::new();
    let mut c = verb(Role::Customer);
    c.stay_alone = true;
    s.join(c);
    let (aid, _) = s.join(verb(Role::Agent));
    let out = s.feed(Input::Hangup { member_id: aid });
    assert!(ended(&out).is_none());
    assert_eq!(s.room.status(), Status::Active);
}

#[test]
fn end_mpc_on_exit_releases_everyone() {
    let mut s = Sim::new();
    let mut a = verb(Role::Agent);
    a.end_mpc_on_exit = true;
    let (aid, _) = s.join(a);
    let (c1, _) = s.join(verb(Role::Customer));
    let (c2, _) = s.join(verb(Role::Customer));
    let out = s.feed(Input::Hangup { member_id: aid });
    assert_eq!(ended(&out), Some(TerminationCause::EndMpcOnExit));
    let got: Vec<MemberId> = releases(&out).iter().map(|r| r.0).collect();
    assert_eq!(got, vec![c1, c2]);
}

#[test]
fn a_call_moved_out_exits_as_transferred_without_being_released() {
    let mut s = Sim::new();
    let mut a = verb(Role::Agent);
    a.stay_alone = true;
    s.join(a);
    let (moved, _) = s.join(verb(Role::Customer));
    let out = s.feed(Input::TransferredOut { member_id: moved });
    let exit = out
        .iter()
        .find_map(|o| match o {
            Output::Event(e) if e.name == EventName::ParticipantExit => Some(e.clone()),
            _ => None,
        })
        .expect("a ParticipantExit event");
    assert!(
        exit.params.contains(&(
            "ParticipantExitCause",
            "Participant Call Transferred".into()
        )),
        "{:?}",
        exit.params
    );
    assert!(
        releases(&out).is_empty(),
        "the call goes on elsewhere: the room has nothing to tell it"
    );
    assert_eq!(s.room.status(), Status::Active);
    assert_eq!(
        ExitCause::Transferred.name(),
        "Participant Call Transferred"
    );

    // Leaving by transfer is leaving: endMpcOnExit applies.
    let mut s = Sim::new();
    let mut a = verb(Role::Agent);
    a.end_mpc_on_exit = true;
    let (aid, _) = s.join(a);
    let (c, _) = s.join(verb(Role::Customer));
    let out = s.feed(Input::TransferredOut { member_id: aid });
    assert_eq!(ended(&out), Some(TerminationCause::EndMpcOnExit));
    assert_eq!(
        releases(&out).iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![c]
    );
}

#[test]
fn max_duration_ends_with_2000_at_the_deadline() {
    let mut s = Sim::new();
    let mut a = verb(Role::Agent);
    a.max_duration = 300;
    let (aid, _) = s.join(a);
    assert_eq!(
        s.room.next_deadline(),
        Some(s.room.created_at() + Duration::from_secs(300))
    );
    assert!(ended(&s.advance(Duration::from_secs(299))).is_none());
    let out = s.advance(Duration::from_secs(1));
    assert_eq!(ended(&out), Some(TerminationCause::MaxDurationReached));
    assert_eq!(
        releases(&out),
        vec![(aid, Release::Continue, ExitCause::MpcEnded)]
    );
    let mpc_end = out
        .iter()
        .find_map(|o| match o {
            Output::Event(e) if e.name == EventName::MpcEnd => Some(e.clone()),
            _ => None,
        })
        .unwrap();
    assert!(mpc_end
        .params
        .contains(&("MPCTerminationCauseCode", "2000".into())));
    assert!(mpc_end.params.contains(&("MPCDuration", "300".into())));
    assert_eq!(s.room.next_deadline(), None);
}

#[test]
fn api_end_is_3000_and_commands_after_the_end_fail() {
    let mut s = Sim::new();
    s.join(verb(Role::Agent));
    let out = s.feed(Input::Command(Command::End));
    assert_eq!(ended(&out), Some(TerminationCause::HangupApiTriggered));
    let out = s.feed(Input::Command(Command::Mute(Target::All, true)));
    assert!(matches!(out[0], Output::CommandFailed(_)));
    let (_, out) = s.join(verb(Role::Customer));
    assert!(matches!(out[0], Output::Refused { .. }));
}

#[test]
fn shutdown_ends_with_5030_and_hangs_every_member_up() {
    let mut s = Sim::new();
    let (aid, _) = s.join(verb(Role::Agent));
    let (cid, _) = s.join(verb(Role::Customer));
    let out = s.feed(Input::Command(Command::Shutdown));
    assert_eq!(ended(&out), Some(TerminationCause::ServerShutdown));
    assert_eq!(
        releases(&out),
        vec![
            (aid, Release::HangupShutdown, ExitCause::MpcEnded),
            (cid, Release::HangupShutdown, ExitCause::MpcEnded)
        ]
    );
    let mpc_end = out
        .iter()
        .find_map(|o| match o {
            Output::Event(e) if e.name == EventName::MpcEnd => Some(e.clone()),
            _ => None,
        })
        .unwrap();
    assert!(mpc_end
        .params
        .contains(&("MPCTerminationCause", "Server Shutdown".into())));
    assert!(mpc_end
        .params
        .contains(&("MPCTerminationCauseCode", "5030".into())));
    assert_eq!(
        TerminationCause::from_code(5030),
        Some(TerminationCause::ServerShutdown)
    );
}

#[test]
fn mute_hold_and_coach_change_state_and_emit_once() {
    let mut s = Sim::new();
    let (aid, _) = s.join(verb(Role::Agent));
    let (cid, _) = s.join(verb(Role::Customer));
    let (sid, _) = s.join(verb(Role::Supervisor));
    assert!(
        s.room.participant(sid).unwrap().coach_mode,
        "coachMode defaults to true"
    );

    let out = s.feed(Input::Command(Command::Mute(
        Target::Members(vec![cid]),
        true,
    )));
    assert_eq!(events(&out), vec![EventName::ParticipantMute]);
    let c = s.room.participant(cid).unwrap().clone();
    assert!(!s.room.contributes(&c));
    assert_eq!(
        s.room.hearing(&c),
        Hearing::Room(ListenerClass::Customer),
        "muted still hears"
    );
    let out = s.feed(Input::Command(Command::Mute(
        Target::Members(vec![cid]),
        true,
    )));
    assert!(events(&out).is_empty(), "no event without a change");

    let out = s.feed(Input::Command(Command::Hold(
        Target::Members(vec![aid, cid]),
        true,
    )));
    assert_eq!(
        events(&out),
        vec![EventName::ParticipantHold, EventName::ParticipantHold]
    );
    let a = s.room.participant(aid).unwrap().clone();
    let c = s.room.participant(cid).unwrap().clone();
    assert_eq!(s.room.hearing(&a), Hearing::AgentHoldMusic);
    assert_eq!(s.room.hearing(&c), Hearing::CustomerHoldMusic);
    assert!(!s.room.contributes(&a));
    let out = s.feed(Input::Command(Command::Hold(Target::All, false)));
    assert_eq!(
        events(&out),
        vec![EventName::ParticipantUnhold, EventName::ParticipantUnhold]
    );

    let out = s.feed(Input::Command(Command::CoachMode(sid, false)));
    assert_eq!(events(&out), vec![EventName::ParticipantCoachModeStop]);
    assert!(
        out.contains(&Output::Sound(Sound::Beep1)),
        "toggling coach mode beeps"
    );
    let out = s.feed(Input::Command(Command::CoachMode(aid, true)));
    assert!(
        matches!(out[0], Output::CommandFailed(_)),
        "agents have no coach mode"
    );
    let out = s.feed(Input::Command(Command::Mute(
        Target::Members(vec![MemberId(999)]),
        true,
    )));
    assert!(matches!(out[0], Output::CommandFailed(_)));
}

#[test]
fn coach_mode_is_false_for_non_supervisors_even_if_written() {
    let mut s = Sim::new();
    let (aid, _) = s.join(verb(Role::Agent));
    assert!(!s.room.participant(aid).unwrap().coach_mode);
}

#[test]
fn kick_hangs_up_with_4030_or_continues_at_the_on_exit_url() {
    let mut s = Sim::new();
    let mut a = verb(Role::Agent);
    a.stay_alone = true;
    s.join(a);
    let (c1, _) = s.join(verb(Role::Customer));
    let mut with_exit = verb(Role::Customer);
    with_exit.on_exit_action = Some(UrlWithMethod {
        url: "http://app/exit".into(),
        method: HttpMethod::Post,
    });
    let (c2, _) = s.join(with_exit);
    let out = s.feed(Input::Command(Command::Kick(Target::Members(vec![c1, c2]))));
    assert_eq!(
        releases(&out),
        vec![
            (c1, Release::HangupKicked, ExitCause::KickedOut),
            (c2, Release::Continue, ExitCause::KickedOut)
        ]
    );
    assert_eq!(s.room.status(), Status::Active, "the agent may stay alone");
}

#[test]
fn sounds_follow_enter_and_exit_attributes() {
    let mut s = Sim::new();
    let mut a = MultiPartyCall::new("room1", Role::Agent);
    a.stay_alone = true;
    let (_, out) = s.join(a);
    assert!(
        out.contains(&Output::Sound(Sound::Beep1)),
        "enterSound defaults to beep:1"
    );
    let mut c = MultiPartyCall::new("room1", Role::Customer);
    c.enter_sound = Sound::Url("http://app/enter.xml".into());
    c.enter_sound_method = HttpMethod::Post;
    let (cid, out) = s.join(c);
    assert!(out.contains(&Output::SoundDocument(UrlWithMethod {
        url: "http://app/enter.xml".into(),
        method: HttpMethod::Post
    })));
    let out = s.feed(Input::Hangup { member_id: cid });
    assert!(
        out.contains(&Output::Sound(Sound::Beep2)),
        "exitSound defaults to beep:2"
    );
    let mut quiet = MultiPartyCall::new("room1", Role::Customer);
    quiet.enter_sound = Sound::None;
    let (_, out) = s.join(quiet);
    assert!(!out.iter().any(|o| matches!(o, Output::Sound(_))));
}

#[test]
fn play_targets_members_and_refuses_unknown_ones() {
    let mut s = Sim::new();
    let (aid, _) = s.join(verb(Role::Agent));
    let (cid, _) = s.join(verb(Role::Customer));
    let out = s.feed(Input::Command(Command::Play(
        Target::Members(vec![cid]),
        "http://app/a.wav".into(),
    )));
    assert_eq!(
        out,
        vec![Output::PlayAudio {
            members: vec![cid],
            url: "http://app/a.wav".into(),
            form: Target::Members(vec![cid]),
        }]
    );
    let out = s.feed(Input::Command(Command::Play(
        Target::All,
        "http://app/a.wav".into(),
    )));
    assert!(matches!(&out[0], Output::PlayAudio { members, .. } if members == &vec![aid, cid]));
    let out = s.feed(Input::Command(Command::Play(
        Target::Members(vec![MemberId(77)]),
        "http://app/a.wav".into(),
    )));
    assert!(matches!(out[0], Output::CommandFailed(_)));
    let out = s.feed(Input::Command(Command::StopPlay(Target::Members(vec![
        cid,
    ]))));
    assert_eq!(
        out,
        vec![Output::StopAudio {
            form: Target::Members(vec![cid])
        }]
    );
    let out = s.feed(Input::Command(Command::StopPlay(Target::Members(vec![
        MemberId(77),
    ]))));
    assert!(matches!(out[0], Output::CommandFailed(_)));
}

#[test]
fn dtmf_is_reported_and_relayed_only_when_asked() {
    let mut s = Sim::new();
    let mut a = verb(Role::Agent);
    a.relay_dtmf_inputs = true;
    let (aid, _) = s.join(a);
    let (cid, _) = s.join(verb(Role::Customer));
    let out = s.feed(Input::Dtmf {
        member_id: aid,
        digit: '5',
        duration_ms: 100,
    });
    assert_eq!(events(&out), vec![EventName::ParticipantDigitInput]);
    assert!(out.contains(&Output::RelayDtmf {
        from: aid,
        digit: '5',
        duration_ms: 100
    }));
    let out = s.feed(Input::Dtmf {
        member_id: cid,
        digit: '#',
        duration_ms: 100,
    });
    assert_eq!(events(&out), vec![EventName::ParticipantDigitInput]);
    assert!(!out.iter().any(|o| matches!(o, Output::RelayDtmf { .. })));
}

#[test]
fn speaking_events_carry_the_member() {
    let mut s = Sim::new();
    let (aid, _) = s.join(verb(Role::Agent));
    let out = s.feed(Input::Speaking {
        member_id: aid,
        active: true,
    });
    let Output::Event(e) = &out[0] else { panic!() };
    assert_eq!(e.name, EventName::ParticipantSpeakStart);
    let stop = s.feed(Input::Speaking {
        member_id: aid,
        active: false,
    });
    assert_eq!(events(&stop), vec![EventName::ParticipantSpeakStop]);
    let m = e.member.as_ref().unwrap();
    assert_eq!((m.member_id, m.role), (aid, Role::Agent));
    assert_eq!(e.mpc_name, "room1");
    assert_eq!(e.mpc_uuid, "mpc-uuid");
}

#[test]
fn audio_flow_events_carry_the_member() {
    let mut s = Sim::new();
    let (aid, _) = s.join(verb(Role::Agent));
    let out = s.feed(Input::AudioFlow {
        member_id: aid,
        active: true,
    });
    assert_eq!(events(&out), vec![EventName::ParticipantAudioStart]);
    let out = s.feed(Input::AudioFlow {
        member_id: aid,
        active: false,
    });
    assert_eq!(events(&out), vec![EventName::ParticipantAudioStop]);
    assert!(s
        .feed(Input::AudioFlow {
            member_id: MemberId(4242),
            active: true
        })
        .is_empty());
}

#[test]
fn every_event_name_maps_to_its_group() {
    use huddle_xml::StatusEvent::*;
    assert_eq!(EventName::MpcStart.group(), MpcStateChanges);
    assert_eq!(EventName::ParticipantHold.group(), ParticipantStateChanges);
    assert_eq!(
        EventName::ParticipantSpeakStop.group(),
        ParticipantSpeakEvents
    );
    assert_eq!(
        EventName::ParticipantDigitInput.group(),
        ParticipantDigitInputEvents
    );
    assert_eq!(
        EventName::ParticipantAudioStart.group(),
        ParticipantAudioEvents
    );
    assert_eq!(EventName::MpcInitialized.as_str(), "MPCInitialized");
}

fn recording_starts(out: &[Output]) -> Vec<huddle_room::state::Recording> {
    out.iter()
        .filter_map(|o| match o {
            Output::RecordingStart(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn record_starts_with_the_mpc_once_enough_members_are_in_and_stops_with_it() {
    let mut s = Sim::new();
    let mut first = verb(Role::Agent);
    first.record = true;
    first.record_file_format = huddle_xml::RecordFormat::Wav;
    first.record_min_member_count = 2;
    first.recording_callback = Some(UrlWithMethod {
        url: "http://app/rec".into(),
        method: HttpMethod::Get,
    });
    let (_, out) = s.join(first);
    assert!(
        recording_starts(&out).is_empty(),
        "one member is not enough"
    );
    assert_eq!(
        events(&out),
        [
            EventName::MpcInitialized,
            EventName::ParticipantJoin,
            EventName::MpcStart
        ]
    );
    let (_, out) = s.join(verb(Role::Customer));
    let started = recording_starts(&out);
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].format, huddle_xml::RecordFormat::Wav);
    let initiated = out
        .iter()
        .find_map(|o| match o {
            Output::Event(e) if e.name == EventName::MpcRecordingInitiated => Some(e.clone()),
            _ => None,
        })
        .expect("MPCRecordingInitiated");
    assert_eq!(
        initiated.callback.as_ref().map(|c| c.url.as_str()),
        Some("http://app/rec"),
        "recording events go to the recording callback"
    );
    assert_eq!(
        s.room.recording().map(|r| r.id.clone()),
        Some(started[0].id.clone())
    );

    // A third member does not start another; the end stops it.
    let (_, out) = s.join(verb(Role::Customer));
    assert!(recording_starts(&out).is_empty());
    let out = s.feed(Input::Command(Command::End));
    assert!(out.iter().any(|o| matches!(o, Output::RecordingStop)));
    assert!(s.room.recording().is_none());
}

#[test]
fn recording_commands_and_their_refusals() {
    use huddle_room::CommandError;
    let mut s = Sim::new();
    s.join(verb(Role::Agent));
    let refused = |out: &[Output]| {
        out.iter().find_map(|o| match o {
            Output::CommandFailed(e) => Some(e.clone()),
            _ => None,
        })
    };
    let out = s.feed(Input::Command(Command::StopRecording));
    assert_eq!(refused(&out), Some(CommandError::NotRecording));
    let out = s.feed(Input::Command(Command::PauseRecording(true)));
    assert_eq!(refused(&out), Some(CommandError::NotRecording));
    let start = Command::StartRecording {
        format: huddle_xml::RecordFormat::Mp3,
        callback: None,
    };
    let out = s.feed(Input::Command(start.clone()));
    assert_eq!(recording_starts(&out).len(), 1);
    assert_eq!(events(&out), [EventName::MpcRecordingInitiated]);
    let out = s.feed(Input::Command(start));
    assert_eq!(refused(&out), Some(CommandError::AlreadyRecording));
    let out = s.feed(Input::Command(Command::PauseRecording(false)));
    assert_eq!(refused(&out), Some(CommandError::PauseUnchanged(false)));
    let out = s.feed(Input::Command(Command::PauseRecording(true)));
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::RecordingPause(true))));
    assert_eq!(events(&out), [EventName::MpcRecordingPaused]);
    let out = s.feed(Input::Command(Command::PauseRecording(true)));
    assert_eq!(refused(&out), Some(CommandError::PauseUnchanged(true)));
    let out = s.feed(Input::Command(Command::PauseRecording(false)));
    assert_eq!(events(&out), [EventName::MpcRecordingResumed]);
    let out = s.feed(Input::Command(Command::StopRecording));
    assert!(out.iter().any(|o| matches!(o, Output::RecordingStop)));
    assert!(s.room.recording().is_none());
}

/// One scenario with every kind of output, recordings (whose ids the room draws) included:
/// everything the room said, in order.
fn recorded_scenario(seed: u64) -> Vec<Output> {
    let mut s = Sim::seeded(seed);
    let mut all = Vec::new();
    let mut first = verb(Role::Agent);
    first.record = true;
    first.record_min_member_count = 2;
    first.status_callback = Some(UrlWithMethod {
        url: "http://app/status".into(),
        method: HttpMethod::Post,
    });
    all.extend(s.join(first).1);
    let (customer, out) = s.join(verb(Role::Customer));
    all.extend(out);
    all.extend(s.feed(Input::Command(Command::Mute(
        Target::Members(vec![customer]),
        true,
    ))));
    all.extend(s.feed(Input::Command(Command::StopRecording)));
    all.extend(s.feed(Input::Command(Command::StartRecording {
        format: huddle_xml::RecordFormat::Mp3,
        callback: None,
    })));
    all.extend(s.feed(Input::Command(Command::PauseRecording(true))));
    all.extend(s.advance(Duration::from_secs(5)));
    all.extend(s.feed(Input::Hangup {
        member_id: customer,
    }));
    all
}

fn recording_ids(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::RecordingStart(r) => Some(r.id.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_same_seed_gives_the_same_outputs_and_recording_ids() {
    let (one, two) = (recorded_scenario(42), recorded_scenario(42));
    assert_eq!(one, two, "two runs with one seed say exactly the same");
    let ids = recording_ids(&one);
    assert_eq!(
        ids.len(),
        2,
        "record=true and the API's start each drew an id"
    );
    assert_ne!(ids[0], ids[1]);
    let in_events: Vec<&str> = one
        .iter()
        .filter_map(|o| match o {
            Output::Event(e) if e.name == EventName::MpcRecordingInitiated => e
                .params
                .iter()
                .find(|(k, _)| *k == "RecordingUUID")
                .map(|(_, v)| v.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(in_events, ids, "the events carry the drawn ids");
    let other = recorded_scenario(43);
    assert_ne!(recording_ids(&other), ids, "another seed draws other ids");
    let strip = |out: Vec<Output>| -> Vec<Output> {
        out.into_iter()
            .map(|o| match o {
                Output::RecordingStart(mut r) => {
                    r.id = "x".into();
                    Output::RecordingStart(r)
                }
                Output::Event(mut e) => {
                    for (k, v) in &mut e.params {
                        if *k == "RecordingUUID" {
                            *v = "x".into();
                        }
                    }
                    Output::Event(e)
                }
                o => o,
            })
            .collect()
    };
    assert_eq!(
        strip(one),
        strip(other),
        "the seed changes the ids and nothing else"
    );
}

#[test]
fn dial_music_plays_to_everyone_present_under_its_own_tag() {
    let mut s = Sim::new();
    let (aid, _) = s.join(verb(Role::Agent));
    let limit = Duration::from_secs(45);
    let out = s.feed(Input::Command(Command::DialMusic {
        tag: "req-1".into(),
        music: DialMusic::Ringback,
        limit,
    }));
    assert_eq!(
        out,
        vec![Output::PlayDialMusic {
            members: vec![aid],
            music: DialMusic::Ringback,
            limit,
            form: Target::DialMusic("req-1".into()),
        }]
    );
    // Its stop names its tag, not the members: an operator's plays are not touched.
    let out = s.feed(Input::Command(Command::StopPlay(Target::DialMusic(
        "req-1".into(),
    ))));
    assert_eq!(
        out,
        vec![Output::StopAudio {
            form: Target::DialMusic("req-1".into())
        }]
    );
}

#[test]
fn api_actions_are_reported_as_events_of_the_mpc() {
    let mut s = Sim::new();
    s.join(verb(Role::Agent));
    let out = s.feed(Input::Command(Command::ApiAction(
        EventName::AddParticipantByApiActionInitiated,
        vec![("RequestUUID", "r1".into())],
    )));
    let event = out
        .iter()
        .find_map(|o| match o {
            Output::Event(e) => Some(e),
            _ => None,
        })
        .expect("an event");
    assert_eq!(event.name.as_str(), "AddParticipantByAPIActionInitiated");
    assert_eq!(event.params, vec![("RequestUUID", "r1".to_string())]);
    assert!(event.member.is_none());
}

fn track_starts(out: &[Output]) -> Vec<huddle_room::TrackRecording> {
    out.iter()
        .filter_map(|o| match o {
            Output::TrackStart(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

fn track_stops(out: &[Output]) -> Vec<huddle_roomport::RecordingId> {
    out.iter()
        .filter_map(|o| match o {
            Output::TrackStop(id) => Some(id.clone()),
            _ => None,
        })
        .collect()
}

fn refusal(out: &[Output]) -> Option<huddle_room::CommandError> {
    out.iter().find_map(|o| match o {
        Output::CommandFailed(e) => Some(e.clone()),
        _ => None,
    })
}

#[test]
fn record_participant_track_members_are_recorded_with_the_mpc_recording() {
    use huddle_room::{TrackKind, TrackSource};
    let mut s = Sim::new();
    let mut first = verb(Role::Agent);
    first.record = true;
    first.record_file_format = huddle_xml::RecordFormat::Wav;
    first.record_min_member_count = 2;
    first.record_participant_track = true;
    first.recording_callback = Some(UrlWithMethod {
        url: "http://app/rec".into(),
        method: HttpMethod::Get,
    });
    let (agent, out) = s.join(first);
    assert!(track_starts(&out).is_empty(), "no MPC recording yet");
    // The customer did not ask for its track; the agent did.
    let (_, out) = s.join(verb(Role::Customer));
    let tracks = track_starts(&out);
    assert_eq!(tracks.len(), 1, "{out:?}");
    let agent_track = &tracks[0];
    assert!(matches!(
        &agent_track.source,
        TrackSource::Member(m, TrackKind::Participant) if m.member_id == agent
    ));
    assert_eq!(agent_track.format, huddle_xml::RecordFormat::Wav);
    assert_eq!(
        agent_track.callback.as_ref().map(|c| c.url.as_str()),
        Some("http://app/rec")
    );
    assert!(events(&out).contains(&EventName::ParticipantRecordingInitiated));
    let initiated = out
        .iter()
        .find_map(|o| match o {
            Output::Event(e) if e.name == EventName::ParticipantRecordingInitiated => {
                Some(e.clone())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(initiated.member.as_ref().unwrap().member_id, agent);
    assert_eq!(initiated.params[0].1, agent_track.id.to_string());

    // A late joiner with the attribute gets its track at once; pausing the MPC recording
    // pauses both.
    let mut late = verb(Role::Supervisor);
    late.record_participant_track = true;
    let (supervisor, out) = s.join(late);
    let tracks = track_starts(&out);
    assert_eq!(tracks.len(), 1);
    assert!(matches!(&tracks[0].source, TrackSource::Member(m, _) if m.member_id == supervisor));
    let out = s.feed(Input::Command(Command::PauseRecording(true)));
    assert_eq!(
        events(&out),
        [
            EventName::MpcRecordingPaused,
            EventName::ParticipantRecordingPaused,
            EventName::ParticipantRecordingPaused
        ]
    );
    // Stopping the MPC recording stops the tracks that came with it.
    let out = s.feed(Input::Command(Command::StopRecording));
    assert_eq!(track_stops(&out).len(), 2);
    assert!(s.room.tracks().is_empty());
}

#[test]
fn participant_recording_commands_and_their_refusals() {
    use huddle_room::{CommandError, TrackKind, TrackType};
    let mut s = Sim::new();
    let (agent, _) = s.join(verb(Role::Agent));
    let (customer, _) = s.join(verb(Role::Customer));
    let start = |member, kinds: &[TrackKind], n: u32| Command::StartParticipantRecording {
        member,
        tracks: kinds
            .iter()
            .enumerate()
            .map(|(i, k)| (*k, format!("rec-{n}-{i}").into()))
            .collect(),
        format: huddle_xml::RecordFormat::Mp3,
        callback: None,
    };
    let out = s.feed(Input::Command(start(
        MemberId(999),
        &[TrackKind::Participant],
        0,
    )));
    assert_eq!(
        refusal(&out),
        Some(CommandError::NoSuchMember(MemberId(999)))
    );
    let out = s.feed(Input::Command(Command::StopParticipantRecording(
        agent,
        TrackType::All,
    )));
    assert_eq!(refusal(&out), Some(CommandError::MemberNotRecording(agent)));

    let both = [TrackKind::Participant, TrackKind::Around];
    let out = s.feed(Input::Command(start(agent, &both, 1)));
    assert_eq!(track_starts(&out).len(), 2);
    assert_eq!(
        events(&out),
        [
            EventName::ParticipantRecordingInitiated,
            EventName::ParticipantRecordingInitiated
        ]
    );
    let out = s.feed(Input::Command(start(agent, &[TrackKind::Around], 2)));
    assert_eq!(
        refusal(&out),
        Some(CommandError::MemberAlreadyRecording(agent))
    );
    let out = s.feed(Input::Command(start(
        customer,
        &[TrackKind::Participant],
        3,
    )));
    assert_eq!(track_starts(&out).len(), 1);

    // Pause only the agent's participant track; a second pause changes nothing.
    let pause = |track, on| Command::PauseParticipantRecording(agent, track, on);
    let out = s.feed(Input::Command(pause(TrackType::Participant, true)));
    assert_eq!(events(&out), [EventName::ParticipantRecordingPaused]);
    let paused: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::TrackPause(id, true) => Some(id.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(paused, ["rec-1-0"]);
    let out = s.feed(Input::Command(pause(TrackType::Participant, true)));
    assert_eq!(
        refusal(&out),
        Some(CommandError::MemberPauseUnchanged(agent, true))
    );
    let out = s.feed(Input::Command(pause(TrackType::Both, false)));
    assert_eq!(events(&out), [EventName::ParticipantRecordingResumed]);

    // Stop with `all` when only a participant track runs: that one stops (SDK default).
    let out = s.feed(Input::Command(Command::StopParticipantRecording(
        customer,
        TrackType::All,
    )));
    assert_eq!(track_stops(&out), ["rec-3-0"]);
    // The agent leaving stops its two.
    let out = s.feed(Input::Hangup { member_id: agent });
    let mut stopped: Vec<String> = track_stops(&out).iter().map(|i| i.to_string()).collect();
    stopped.sort();
    assert_eq!(stopped, ["rec-1-0", "rec-1-1"]);
    assert!(s.room.tracks().is_empty());
}

#[test]
fn record_role_channels_adds_a_wav_of_one_channel_per_role_to_the_mpc_recording() {
    use huddle_room::TrackSource;
    let mut s = Sim::new();
    let mut first = verb(Role::Agent);
    first.record_role_channels = true;
    s.join(first);
    s.join(verb(Role::Customer));
    let out = s.feed(Input::Command(Command::StartRecording {
        format: huddle_xml::RecordFormat::Mp3,
        callback: None,
    }));
    let tracks = track_starts(&out);
    assert_eq!(tracks.len(), 1);
    assert_eq!(tracks[0].source, TrackSource::Roles);
    assert_eq!(
        tracks[0].format,
        huddle_xml::RecordFormat::Wav,
        "always WAV"
    );
    let initiated: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Event(e) if e.name == EventName::MpcRecordingInitiated => Some(e.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(initiated.len(), 2);
    assert_eq!(
        initiated[1].params,
        vec![
            ("RecordingUUID", tracks[0].id.to_string()),
            (
                "RecordingChannels",
                "customer,agent,supervisor,ai-agent".to_string()
            )
        ]
    );
    // The MPC ends: both files are finalized.
    let out = s.feed(Input::Command(Command::End));
    assert!(out.iter().any(|o| matches!(o, Output::RecordingStop)));
    assert_eq!(track_stops(&out), [tracks[0].id.clone()]);
}
