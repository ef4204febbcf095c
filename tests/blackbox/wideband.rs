//! Wideband rooms (issue 17): a room mixes at 16 kHz once a G.722 or wideband Opus leg is in,
//! and converts its 8 kHz members. Each leg sends its own tone and a Goertzel detector decides
//! what each one hears: a 7 kHz tone passes between wideband legs and never reaches an 8 kHz
//! leg; every pair of codecs hears each other across one room. With `rtp.opus_max_rate =
//! 48000` fullband Opus legs make a 48 kHz room, where a 10 kHz tone passes between them
//! only; a 16 kHz AI stream member hears and is heard above 4 kHz.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use huddle_testkit::{rms, tone_share_at, HttpStub, RtpPeer, ServerProcess, SipUa};
use serde_json::json;

use super::ai_stream::{add_stream, play_tone, AiService};
use super::participant_recording::{member_of, of_recording, start, wait_events, wav_channels};
use super::Api;

/// `<role>-<mpc>` joins that MPC with that role, without entry or exit sounds, so tones alone
/// fill the mixes; every codec huddle runs is allowed.
const ROUTES: &str = "[[route]]\nuser = \"^(?P<role>agent|customer|supervisor)-(?P<mpc>[a-z0-9]+)$\"\n\
    xml = '<Response><MultiPartyCall role=\"$role\" enterSound=\"none\" exitSound=\"none\" stayAlone=\"true\">$mpc</MultiPartyCall></Response>'\n";

const OPUS_PT: u8 = 111;

fn server() -> ServerProcess {
    wide_server(ROUTES, 60)
}

/// A server with `routes` (and `rtp_ports` RTP ports) that runs every codec huddle has.
fn wide_server(routes: &str, rtp_ports: u16) -> ServerProcess {
    server_with_rtp(
        routes,
        rtp_ports,
        "codecs = [\"PCMU\", \"PCMA\", \"opus\", \"G722\"]",
    )
}

/// A server with `routes`, `rtp_ports` RTP ports and `rtp` added to its `[rtp]` section.
fn server_with_rtp(routes: &str, rtp_ports: u16, rtp: &str) -> ServerProcess {
    ServerProcess::start_with(Path::new(env!("CARGO_BIN_EXE_huddle")), rtp_ports, |s| {
        s.standard("", "", routes).replacen(
            "rtp_timeout_secs = 20",
            &format!("rtp_timeout_secs = 20\n{rtp}"),
            1,
        )
    })
}

/// The codecs a test phone can speak.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phone {
    Pcmu,
    Pcma,
    G722,
    /// Opus with no fmtp limit: the leg runs at 16 kHz.
    OpusWide,
    /// Opus from a phone that says it plays and captures 8 kHz only.
    OpusNarrow,
    /// Opus with no fmtp limit, to a server that runs fullband Opus: the leg runs at 48 kHz.
    OpusFull,
}

/// One caller: dialog, RTP peer, where to send, its tone.
struct Caller {
    ua: SipUa,
    rtp: RtpPeer,
    media: SocketAddr,
    tone: f64,
    phone: Phone,
}

async fn call(sip: SocketAddr, user: &str, phone: Phone, tone: f64) -> Caller {
    let (mut rtp, offer) = match phone {
        Phone::Pcmu => {
            let rtp = RtpPeer::bind().await;
            let offer = SipUa::sdp(rtp.port(), &[0]);
            (rtp, offer)
        }
        Phone::Pcma => {
            let mut rtp = RtpPeer::bind().await;
            rtp.pcma = true;
            let offer = SipUa::sdp(rtp.port(), &[8]);
            (rtp, offer)
        }
        Phone::G722 => {
            let rtp = RtpPeer::bind_g722().await;
            let offer = SipUa::sdp(rtp.port(), &[9]);
            (rtp, offer)
        }
        Phone::OpusWide => {
            let rtp = RtpPeer::bind_opus(OPUS_PT, 16000).await;
            let offer = SipUa::sdp_opus(rtp.port(), OPUS_PT);
            (rtp, offer)
        }
        Phone::OpusFull => {
            let rtp = RtpPeer::bind_opus(OPUS_PT, 48000).await;
            let offer = SipUa::sdp_opus(rtp.port(), OPUS_PT);
            (rtp, offer)
        }
        Phone::OpusNarrow => {
            let rtp = RtpPeer::bind_opus(OPUS_PT, 8000).await;
            let offer = SipUa::sdp_opus_fmtp(
                rtp.port(),
                OPUS_PT,
                "maxplaybackrate=8000;sprop-maxcapturerate=8000;useinbandfec=1",
            );
            (rtp, offer)
        }
    };
    let mut ua = SipUa::udp(sip).await;
    let ok = ua
        .invite(user, &offer)
        .await
        .unwrap_or_else(|| panic!("{user}: no final response"));
    assert_eq!(ok.status(), 200, "{user} ({phone:?}): {ok:?}");
    ua.ack().await;
    if matches!(phone, Phone::OpusWide | Phone::OpusNarrow) {
        assert!(
            ok.body
                .contains("maxplaybackrate=16000;sprop-maxcapturerate=16000"),
            "huddle answers Opus as wideband: {}",
            ok.body
        );
    }
    if phone == Phone::OpusFull {
        assert!(
            ok.body
                .contains("maxplaybackrate=48000;sprop-maxcapturerate=48000"),
            "a fullband server answers Opus as fullband: {}",
            ok.body
        );
    }
    let media = ok.sdp_audio().expect("SDP answer with audio");
    rtp.amplitude = 4000.0;
    Caller {
        ua,
        rtp,
        media,
        tone,
        phone,
    }
}

/// Everyone talks at once for `secs`; what each heard in its last second, at its own rate.
async fn talk_all(callers: &mut [Caller], secs: f64) -> Vec<Vec<i16>> {
    let d = Duration::from_secs_f64(secs);
    let talks = callers.iter_mut().map(|c| {
        let (media, tone) = (c.media, c.tone);
        async move {
            let rate = c.rtp.rate() as usize;
            let heard = c.rtp.talk(media, tone, d).await;
            heard[heard.len().saturating_sub(rate)..].to_vec()
        }
    });
    futures_util::future::join_all(talks).await
}

const WIDE_TONE: f64 = 7000.0;

/// Above anything a 16 kHz leg can carry.
const FULL_TONE: f64 = 10000.0;

/// With `rtp.opus_max_rate = 48000`, two fullband Opus legs make a 48 kHz room: a 10 kHz tone
/// passes between them and reaches neither a G.722 leg nor a PCMU leg in the same room, and
/// the G.722 leg's 7 kHz tone reaches the fullband legs.
#[tokio::test]
async fn a_10_khz_tone_passes_between_fullband_opus_legs_only() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let srv = server_with_rtp(
            ROUTES,
            60,
            "codecs = [\"opus\", \"G722\", \"PCMU\"]\nopus_max_rate = 48000",
        );
        let mut callers = vec![
            call(srv.sip, "agent-full", Phone::OpusFull, FULL_TONE).await,
            call(srv.sip, "customer-full", Phone::OpusFull, 0.0).await,
            call(srv.sip, "customer-full", Phone::G722, 0.0).await,
            call(srv.sip, "customer-full", Phone::Pcmu, 0.0).await,
        ];
        let heard = talk_all(&mut callers, 3.0).await;
        let (full, g722, pcmu) = (&heard[1], &heard[2], &heard[3]);
        assert!(
            full.len() >= 36_000,
            "the fullband leg got audio: {}",
            full.len()
        );
        let share = tone_share_at(full, FULL_TONE, 48000);
        assert!(
            share > 0.5,
            "the fullband leg hears the 10 kHz tone (share {share:.3}, rms {:.0})\n{}",
            rms(full),
            srv.log()
        );
        for (name, pcm) in [("G.722", g722), ("PCMU", pcmu)] {
            assert!(
                rms(pcm) < 0.05 * rms(full),
                "the {name} leg hears no 10 kHz tone, folded or not: rms {:.0} vs {:.0}",
                rms(pcm),
                rms(full)
            );
        }

        callers[0].tone = 0.0;
        callers[2].tone = WIDE_TONE;
        let heard = talk_all(&mut callers, 3.0).await;
        for i in [0, 1] {
            let share = tone_share_at(&heard[i], WIDE_TONE, 48000);
            assert!(
                share > 0.5,
                "fullband leg {i} hears the G.722 leg's 7 kHz tone (share {share:.3})"
            );
        }
        for c in &mut callers {
            c.ua.bye().await;
        }
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_7_khz_tone_passes_between_wideband_legs_and_not_to_an_8_khz_leg() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let srv = server();
        // A G.722 desk phone talks at 7 kHz; an Opus headset and a PCMU phone listen.
        let mut callers = vec![
            call(srv.sip, "agent-wide", Phone::G722, WIDE_TONE).await,
            call(srv.sip, "customer-wide", Phone::OpusWide, 0.0).await,
            call(srv.sip, "customer-wide", Phone::Pcmu, 0.0).await,
        ];
        let heard = talk_all(&mut callers, 3.0).await;
        let (opus, pcmu) = (&heard[1], &heard[2]);
        assert!(
            opus.len() >= 12_000,
            "the Opus leg got audio: {}",
            opus.len()
        );
        assert!(pcmu.len() >= 6000, "the PCMU leg got audio: {}", pcmu.len());
        let share = tone_share_at(opus, WIDE_TONE, 16000);
        assert!(
            share > 0.5,
            "the wideband Opus leg hears the G.722 leg's 7 kHz tone (share {share:.3}, rms {:.0})",
            rms(opus)
        );
        // At 8 kHz a 7 kHz tone can only arrive folded down (to 1 kHz): the room's
        // conversion filters it out, so the PCMU leg hears next to nothing.
        assert!(
            rms(pcmu) < 0.05 * rms(opus),
            "the PCMU leg hears no 7 kHz tone, folded or not: rms {:.0} vs the Opus leg's {:.0}",
            rms(pcmu),
            rms(opus)
        );

        // The other way: the Opus headset talks at 7 kHz, the G.722 phone hears it.
        callers[0].tone = 0.0;
        callers[1].tone = WIDE_TONE;
        let heard = talk_all(&mut callers, 3.0).await;
        let (g722, pcmu) = (&heard[0], &heard[2]);
        let share = tone_share_at(g722, WIDE_TONE, 16000);
        assert!(
            share > 0.5,
            "the G.722 leg hears the Opus leg's 7 kHz tone (share {share:.3}, rms {:.0})",
            rms(g722)
        );
        assert!(
            rms(pcmu) < 0.05 * rms(g722),
            "the PCMU leg hears no 7 kHz tone: rms {:.0} vs {:.0}",
            rms(pcmu),
            rms(g722)
        );
        for c in &mut callers {
            c.ua.bye().await;
        }
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn every_pair_of_codecs_hears_each_other_across_a_wideband_room() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let srv = server();
        // Tones below 3.4 kHz, so that the 8 kHz legs can hear them too; no tone is a
        // harmonic of another.
        let mut callers = Vec::new();
        for (phone, tone) in [
            (Phone::Pcmu, 470.0),
            (Phone::Pcma, 690.0),
            (Phone::G722, 910.0),
            (Phone::OpusWide, 1230.0),
            (Phone::OpusNarrow, 1570.0),
        ] {
            callers.push(call(srv.sip, "customer-pairs", phone, tone).await);
        }
        let heard = talk_all(&mut callers, 4.0).await;
        let mut failures = Vec::new();
        for (listener, pcm) in callers.iter().zip(&heard) {
            let rate = listener.rtp.rate();
            if pcm.len() < rate as usize * 3 / 4 {
                failures.push(format!("{:?} got {} samples", listener.phone, pcm.len()));
                continue;
            }
            for speaker in &callers {
                let share = tone_share_at(pcm, speaker.tone, rate);
                if speaker.phone == listener.phone {
                    if share > 0.01 {
                        failures.push(format!("{:?} hears itself ({share:.3})", listener.phone));
                    }
                } else if share < 0.1 {
                    // Four tones of equal level: about a quarter each.
                    failures.push(format!(
                        "{:?} does not hear {:?} ({share:.3})",
                        listener.phone, speaker.phone
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
        for c in &mut callers {
            c.ua.bye().await;
        }
    })
    .await
    .expect("timed out");
}

const CUSTOMER_TONE: f64 = 520.0;
const COACH_TONE: f64 = 1330.0;

/// Shared encoding must never hand a listener another group's audio. Opus legs only, so that
/// every listener is eligible: two customers and an agent, one customer talking, and a
/// supervisor coaching (heard by the agent, never by customers). The silent customer and the
/// agent each get a shared payload (different groups); the talking customer and the coach
/// get mixes of their own.
#[tokio::test]
async fn shared_encodes_keep_the_coachs_voice_from_the_customers() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let srv = server();
        let mut callers = vec![
            call(srv.sip, "customer-share", Phone::OpusWide, CUSTOMER_TONE).await,
            call(srv.sip, "customer-share", Phone::OpusWide, 0.0).await,
            call(srv.sip, "agent-share", Phone::OpusWide, 0.0).await,
            call(srv.sip, "supervisor-share", Phone::OpusWide, COACH_TONE).await,
        ];
        let saved_before = srv.metric("huddle_mixer_encodes_saved_total");
        let heard = talk_all(&mut callers, 4.0).await;
        let share = |who: usize, tone: f64| tone_share_at(&heard[who], tone, 16000);
        let mut failures = Vec::new();
        let mut expect = |what: &str, ok: bool, value: f64| {
            if !ok {
                failures.push(format!("{what}: {value:.4}"));
            }
        };
        expect(
            "talking customer hears the coach",
            share(0, COACH_TONE) < 0.01,
            share(0, COACH_TONE),
        );
        expect(
            "talking customer hears itself",
            share(0, CUSTOMER_TONE) < 0.01,
            share(0, CUSTOMER_TONE),
        );
        expect(
            "silent customer hears the coach",
            share(1, COACH_TONE) < 0.01,
            share(1, COACH_TONE),
        );
        expect(
            "silent customer misses the customer",
            share(1, CUSTOMER_TONE) > 0.5,
            share(1, CUSTOMER_TONE),
        );
        expect(
            "agent misses the coach",
            share(2, COACH_TONE) > 0.2,
            share(2, COACH_TONE),
        );
        expect(
            "agent misses the customer",
            share(2, CUSTOMER_TONE) > 0.2,
            share(2, CUSTOMER_TONE),
        );
        expect(
            "coach misses the customer",
            share(3, CUSTOMER_TONE) > 0.5,
            share(3, CUSTOMER_TONE),
        );
        expect(
            "coach hears itself",
            share(3, COACH_TONE) < 0.01,
            share(3, COACH_TONE),
        );
        assert!(failures.is_empty(), "{failures:#?}");
        // The silent listeners were served from shared encodes. Each group here has one
        // listener, so nothing is saved yet; a second silent customer joins the first's group.
        let mut second = call(srv.sip, "customer-share", Phone::OpusWide, 0.0).await;
        let (heard_first, heard_second) = {
            let d = Duration::from_secs(3);
            let [talker, first, agent, coach] = &mut callers[..] else {
                unreachable!("four callers")
            };
            let (_, a, b, _, _) = tokio::join!(
                talker.rtp.talk(talker.media, CUSTOMER_TONE, d),
                first.rtp.talk(first.media, 0.0, d),
                second.rtp.talk(second.media, 0.0, d),
                agent.rtp.talk(agent.media, 0.0, d),
                coach.rtp.talk(coach.media, COACH_TONE, d)
            );
            (a, b)
        };
        for (who, heard) in [("first", heard_first), ("second", heard_second)] {
            let last = &heard[heard.len().saturating_sub(16_000)..];
            let (c, k) = (
                tone_share_at(last, CUSTOMER_TONE, 16000),
                tone_share_at(last, COACH_TONE, 16000),
            );
            assert!(
                c > 0.5 && k < 0.01,
                "{who} silent customer: customer {c:.3}, coach {k:.4}"
            );
        }
        let saved = srv.metric_reaching(
            "huddle_mixer_encodes_saved_total",
            saved_before + 50.0,
            Duration::from_secs(3),
        ) - saved_before;
        assert!(
            saved >= 50.0,
            "two silent customers share one encode per tick: {saved} encodes saved"
        );
        second.ua.bye().await;
        for c in &mut callers {
            c.ua.bye().await;
        }
    })
    .await
    .expect("timed out");
}

/// One person talks and the others listen, the usual state of a call: everybody who hears
/// only the talker (a silent customer, the agent, a silent supervisor: three roles) shares
/// one encode, and the talker, who hears silence, costs no encode once that silence has
/// settled. Three of the four payloads of each tick are served without an encode of their
/// own (a room keyed by role would save none of them), and each listener still hears what
/// it must.
#[tokio::test]
async fn one_talker_costs_one_encode_for_every_listener_of_any_role() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let srv = server();
        let mut callers = vec![
            call(srv.sip, "customer-one", Phone::OpusWide, CUSTOMER_TONE).await,
            call(srv.sip, "customer-one", Phone::OpusWide, 0.0).await,
            call(srv.sip, "agent-one", Phone::OpusWide, 0.0).await,
            call(srv.sip, "supervisor-one", Phone::OpusWide, 0.0).await,
        ];
        // Everybody in and flowing before the counted window.
        talk_all(&mut callers, 1.0).await;
        let saved_before = srv.metric("huddle_mixer_encodes_saved_total");
        let heard = talk_all(&mut callers, 3.0).await;
        // 150 ticks, three payloads each without an encode: 450; allow for the window's
        // edges and the once-a-second publication.
        let saved = srv.metric_reaching(
            "huddle_mixer_encodes_saved_total",
            saved_before + 330.0,
            Duration::from_secs(3),
        ) - saved_before;
        assert!(
            saved >= 330.0,
            "one talker: three of four payloads shared, {saved} saved in 3 s"
        );
        for (who, listener) in [(1, "silent customer"), (2, "agent"), (3, "supervisor")] {
            let share = tone_share_at(&heard[who], CUSTOMER_TONE, 16000);
            assert!(share > 0.5, "{listener} hears the talker: {share:.3}");
        }
        assert!(
            rms(&heard[0]) < 50.0,
            "the talker hears silence: rms {:.1}",
            rms(&heard[0])
        );
        for c in &mut callers {
            c.ua.bye().await;
        }
    })
    .await
    .expect("timed out");
}

/// A recording keeps the rate it started at: an MPC recorded at 8 kHz that switches to 16 kHz
/// when a G.722 phone joins still writes an 8 kHz file, with every voice at its own pitch
/// (a mix written unconverted would play an octave low and twice as long).
#[tokio::test]
async fn a_recording_keeps_its_rate_when_the_room_switches_to_wideband() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let stub = huddle_testkit::HttpStub::start().await;
        stub.serve("/rec", 200, "text/plain", "");
        let routes = ROUTES.replace(
            "stayAlone=\"true\"",
            &format!(
                "stayAlone=\"true\" record=\"true\" recordFileFormat=\"wav\" recordingCallbackUrl=\"{}\"",
                stub.url("/rec")
            ),
        );
        assert!(routes.contains("record="), "{routes}");
        let srv = ServerProcess::start_with(Path::new(env!("CARGO_BIN_EXE_huddle")), 40, |s| {
            s.standard("", "", &routes).replacen(
                "rtp_timeout_secs = 20",
                "rtp_timeout_secs = 20\ncodecs = [\"PCMU\", \"PCMA\", \"opus\", \"G722\"]",
                1,
            )
        });
        const NARROW: f64 = 610.0;
        const WIDE: f64 = 1450.0;
        let mut pcmu = call(srv.sip, "agent-recwide", Phone::Pcmu, NARROW).await;
        let d = Duration::from_secs(1);
        pcmu.rtp.talk(pcmu.media, NARROW, d).await;
        let mut g722 = call(srv.sip, "customer-recwide", Phone::G722, WIDE).await;
        let d = Duration::from_secs(2);
        tokio::join!(
            pcmu.rtp.talk(pcmu.media, NARROW, d),
            g722.rtp.talk(g722.media, WIDE, d)
        );
        g722.ua.bye().await;
        pcmu.ua.bye().await;
        let got = stub
            .wait_until("/rec", Duration::from_secs(5), |got| {
                got.iter()
                    .any(|r| r.param("EventName") == Some("MPCRecordingCompleted"))
            })
            .await
            .expect("MPCRecordingCompleted");
        let url = got
            .iter()
            .find_map(|r| r.param("RecordingURL"))
            .expect("a RecordingURL")
            .to_string();
        let bytes = reqwest::Client::new()
            .get(&url)
            .basic_auth("MAHUDDLEDEFAULT00000", Some("change-me"))
            .send()
            .await
            .expect("the recording URL answers")
            .bytes()
            .await
            .unwrap();
        let mut reader = hound::WavReader::new(std::io::Cursor::new(bytes.to_vec()))
            .expect("a valid WAV");
        assert_eq!(reader.spec().sample_rate, 8000, "the rate it started at");
        let pcm: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap()).collect();
        let secs = pcm.len() as f64 / 8000.0;
        assert!((2.5..5.0).contains(&secs), "about 3 s of call, not twice that: {secs:.2} s");
        // The second before the end: both talking, each at its own pitch.
        let tail = &pcm[pcm.len().saturating_sub(12_000)..pcm.len().saturating_sub(4_000)];
        let (n, w) = (
            tone_share_at(tail, NARROW, 8000),
            tone_share_at(tail, WIDE, 8000),
        );
        assert!(n > 0.2 && w > 0.2, "both voices at their pitch: {n:.3} and {w:.3}");
        let low = tone_share_at(tail, WIDE / 2.0, 8000);
        assert!(low < 0.01, "nothing an octave low: {low:.4}");
    })
    .await
    .expect("timed out");
}

/// Music fetched while the room mixed at 8 kHz keeps its pitch after the room switches to
/// 16 kHz (it is converted when the switch happens): a held customer hears its hold tone at
/// its frequency, not an octave up, while the others talk across the switch.
#[tokio::test]
async fn hold_music_keeps_its_pitch_when_the_room_switches_to_wideband() {
    tokio::time::timeout(Duration::from_secs(90), async {
        const MUSIC: f64 = 1250.0;
        let stub = huddle_testkit::HttpStub::start().await;
        stub.serve(
            "/hold.wav",
            200,
            "audio/wav",
            huddle_testkit::wav_tone(MUSIC, 2.0, 8000),
        );
        stub.serve_xml(
            "/hold.xml",
            &format!("<Response><Play>{}</Play></Response>", stub.url("/hold.wav")),
        );
        let held = format!(
            "[[route]]\nuser = \"^held-(?P<mpc>[a-z0-9]+)$\"\n\
             xml = '<Response><MultiPartyCall role=\"customer\" hold=\"true\" enterSound=\"none\" exitSound=\"none\" stayAlone=\"true\" customerHoldMusicUrl=\"{0}\" agentHoldMusicUrl=\"{0}\">$mpc</MultiPartyCall></Response>'\n",
            stub.url("/hold.xml")
        );
        let srv = ServerProcess::start_with(Path::new(env!("CARGO_BIN_EXE_huddle")), 40, |s| {
            s.standard("", "", &format!("{held}{ROUTES}")).replacen(
                "rtp_timeout_secs = 20",
                "rtp_timeout_secs = 20\ncodecs = [\"PCMU\", \"PCMA\", \"opus\", \"G722\"]",
                1,
            )
        });
        const NARROW: f64 = 610.0;
        const WIDE: f64 = 930.0;
        // The held customer creates the MPC at 8 kHz, so its music is fetched at 8 kHz.
        let mut callers = vec![
            call(srv.sip, "held-music", Phone::Pcmu, 0.0).await,
            call(srv.sip, "agent-music", Phone::Pcmu, NARROW).await,
        ];
        let before = talk_all(&mut callers, 1.5).await;
        let share = tone_share_at(&before[0], MUSIC, 8000);
        assert!(share > 0.5, "hold music before the switch: {share:.3}");
        callers.push(call(srv.sip, "customer-music", Phone::G722, WIDE).await);
        let heard = talk_all(&mut callers, 2.5).await;
        let (held, agent, desk) = (&heard[0], &heard[1], &heard[2]);
        let (at, octave_up) = (
            tone_share_at(held, MUSIC, 8000),
            tone_share_at(held, MUSIC * 2.0, 8000),
        );
        assert!(
            at > 0.5 && octave_up < 0.01,
            "the held customer hears its music at its pitch: {at:.3} ({octave_up:.4} an octave up)"
        );
        let s = tone_share_at(held, WIDE, 8000) + tone_share_at(held, NARROW, 8000);
        assert!(s < 0.01, "and nothing of the room: {s:.4}");
        let s = tone_share_at(agent, WIDE, 8000);
        assert!(s > 0.5, "the PCMU agent hears the G.722 phone: {s:.3}");
        let s = tone_share_at(desk, NARROW, 16000);
        assert!(s > 0.5, "the G.722 phone hears the PCMU agent: {s:.3}");
        for c in &mut callers {
            c.ua.bye().await;
        }
    })
    .await
    .expect("timed out");
}

/// The last `secs` of `pcm` at `rate` (all of it when shorter).
fn last(pcm: &[i16], secs: f64, rate: u32) -> &[i16] {
    &pcm[pcm.len().saturating_sub((secs * f64::from(rate)) as usize)..]
}

const STREAMED_SAYS: f64 = 430.0;
const ROOM_SAYS: f64 = 1170.0;

/// A `<Stream>` started before `<MultiPartyCall>` keeps hearing a G.722 leg once it is in its
/// (16 kHz) room: the room's tick taps the leg, converted to the stream's 8 kHz, each track
/// apart: what the caller says (inbound) and what it hears of the room (outbound).
#[tokio::test]
async fn a_stream_started_before_the_room_keeps_hearing_a_g722_leg_in_it() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let svc = AiService::start().await;
        let streamed = format!(
            "[[route]]\nuser = \"^streamed-(?P<mpc>[a-z0-9]+)$\"\n\
             xml = '<Response><Stream audioTrack=\"both\" bidirectional=\"false\">{}</Stream>\
             <MultiPartyCall role=\"customer\" enterSound=\"none\" exitSound=\"none\" stayAlone=\"true\">$mpc</MultiPartyCall></Response>'\n",
            svc.url("/wide")
        );
        let srv = wide_server(&format!("{streamed}{ROUTES}"), 40);
        let mut callers = vec![call(srv.sip, "streamed-wtap", Phone::G722, STREAMED_SAYS).await];
        let start = svc.started(0).await;
        assert_eq!(start["start"]["tracks"], json!(["inbound", "outbound"]), "{start}");
        callers.push(call(srv.sip, "agent-wtap", Phone::Pcmu, ROOM_SAYS).await);
        let heard = talk_all(&mut callers, 3.0).await;
        let share = tone_share_at(&heard[0], ROOM_SAYS, 16000);
        assert!(
            share > 0.3,
            "the G.722 caller is in the room and hears the PCMU agent: {share:.3}\n{}",
            srv.log()
        );
        let (inbound, outbound) =
            svc.with(0, |c| (c.heard_track("inbound"), c.heard_track("outbound")));
        // The last second and a half: the G.722 leg has been in the room for a while.
        let (inbound, outbound) = (last(&inbound, 1.5, 8000), last(&outbound, 1.5, 8000));
        assert!(
            inbound.len() >= 8000 && outbound.len() >= 8000,
            "the stream still gets both tracks in the room: {} / {}\n{}",
            inbound.len(),
            outbound.len(),
            srv.log()
        );
        let share = |pcm: &[i16], freq: f64| tone_share_at(pcm, freq, 8000);
        let mut failures = Vec::new();
        let mut expect = |what: &str, ok: bool, value: f64| {
            if !ok {
                failures.push(format!("{what}: {value:.4}"));
            }
        };
        let s = share(inbound, STREAMED_SAYS);
        expect("inbound holds what the G.722 caller says", s > 0.3, s);
        let s = share(inbound, STREAMED_SAYS / 2.0);
        expect("inbound is at its pitch, not an octave low", s < 0.01, s);
        let s = share(inbound, ROOM_SAYS);
        expect("inbound holds no room audio", s < 0.05, s);
        let s = share(outbound, ROOM_SAYS);
        expect("outbound holds what the G.722 caller hears", s > 0.3, s);
        let s = share(outbound, STREAMED_SAYS);
        expect("outbound holds no caller audio", s < 0.05, s);
        assert!(failures.is_empty(), "{failures:#?}");
        for c in &mut callers {
            c.ua.bye().await;
        }
        svc.wait(Duration::from_secs(5), |c| c[0].ended.then_some(()))
            .await;
    })
    .await
    .expect("timed out");
}

const AI_SAYS: f64 = 1830.0;

/// An ai-agent stream member added by the API to a 16 kHz room (a G.722 phone and a PCMU
/// phone in it), its stream in `content_type`: the service hears both phones, and both
/// phones hear what it plays. Every tone is under 3.5 kHz, so that the PCMU phone carries it.
async fn ai_member_in_a_wideband_room(content_type: &str, rate: u32, mpc: &str) {
    let srv = wide_server(ROUTES, 40);
    let api = Api::new(&srv);
    let svc = AiService::start().await;
    let mut callers = vec![
        call(srv.sip, &format!("customer-{mpc}"), Phone::G722, 910.0).await,
        call(srv.sip, &format!("agent-{mpc}"), Phone::Pcmu, 1570.0).await,
    ];
    add_stream(
        &api,
        mpc,
        json!({"ai_agent_stream_service_url": svc.url("/"),
               "ai_agent_stream_content_type": content_type}),
    )
    .await;
    let start = svc.started(0).await;
    assert_eq!(start["start"]["mediaFormat"]["sampleRate"], rate, "{start}");
    play_tone(&svc, 0, "audio/x-l16", rate, AI_SAYS, 4.0);
    let heard = talk_all(&mut callers, 3.0).await;
    let mut failures = Vec::new();
    for (i, listener) in callers.iter().enumerate() {
        let rate = listener.rtp.rate();
        let other = &callers[1 - i];
        for (what, freq) in [("the service", AI_SAYS), ("the other phone", other.tone)] {
            let share = tone_share_at(&heard[i], freq, rate);
            if share < 0.1 {
                failures.push(format!(
                    "{content_type}: {:?} does not hear {what} ({share:.3})",
                    listener.phone
                ));
            }
        }
    }
    // What the service got in the last second (decoded to 8 kHz).
    let pcm = svc.with(0, |c| c.heard());
    let got = last(&pcm, 1.0, 8000);
    if got.len() < 6000 {
        failures.push(format!(
            "{content_type}: the service got {} samples",
            got.len()
        ));
    }
    for c in &callers {
        let share = tone_share_at(got, c.tone, 8000);
        if share < 0.1 {
            failures.push(format!(
                "{content_type}: the service does not hear {:?} ({share:.3})",
                c.phone
            ));
        }
    }
    let share = tone_share_at(got, AI_SAYS, 8000);
    if share > 0.01 {
        failures.push(format!(
            "{content_type}: the service hears itself ({share:.3})"
        ));
    }
    assert!(failures.is_empty(), "{failures:#?}\n{}", srv.log());
    for c in &mut callers {
        c.ua.bye().await;
    }
}

#[tokio::test]
async fn an_ai_stream_member_hears_and_is_heard_in_a_wideband_room() {
    tokio::time::timeout(Duration::from_secs(90), async {
        ai_member_in_a_wideband_room("audio/x-l16;rate=16000", 16000, "aiwide").await;
        ai_member_in_a_wideband_room("audio/x-l16;rate=8000", 8000, "ainarrow").await;
    })
    .await
    .expect("timed out");
}

/// What a 16 kHz AI service plays above the telephone band.
const AI_SAYS_WIDE: f64 = 6200.0;

/// An ai-agent stream at `audio/x-l16;rate=16000` is a wideband member: it hears a G.722
/// phone's 7 kHz tone in its frames, and the phone hears the service's 6.2 kHz tone, neither of
/// which an 8 kHz exchange with the room could carry.
#[tokio::test]
async fn a_16_khz_ai_stream_member_hears_and_is_heard_above_4_khz() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let srv = wide_server(ROUTES, 40);
        let api = Api::new(&srv);
        let svc = AiService::start().await;
        let mut callers = vec![call(srv.sip, "customer-aihd", Phone::G722, WIDE_TONE).await];
        add_stream(
            &api,
            "aihd",
            json!({"ai_agent_stream_service_url": svc.url("/"),
                   "ai_agent_stream_content_type": "audio/x-l16;rate=16000"}),
        )
        .await;
        let start = svc.started(0).await;
        assert_eq!(
            start["start"]["mediaFormat"]["sampleRate"], 16000,
            "{start}"
        );
        play_tone(&svc, 0, "audio/x-l16", 16000, AI_SAYS_WIDE, 4.0);
        let heard = talk_all(&mut callers, 3.0).await;
        let phone = &heard[0];
        let share = tone_share_at(phone, AI_SAYS_WIDE, 16000);
        assert!(
            share > 0.5,
            "the G.722 phone hears the service's 6.2 kHz tone (share {share:.3}, rms {:.0})\n{}",
            rms(phone),
            srv.log()
        );
        let pcm = svc.with(0, |c| c.heard_at_stream_rate());
        let got = last(&pcm, 1.0, 16000);
        assert!(got.len() >= 12_000, "the service got {} samples", got.len());
        let share = tone_share_at(got, WIDE_TONE, 16000);
        assert!(
            share > 0.5,
            "the service hears the phone's 7 kHz tone (share {share:.3}, rms {:.0})",
            rms(got)
        );
        callers[0].ua.bye().await;
    })
    .await
    .expect("timed out");
}

const TRACK_NARROW: f64 = 610.0;
const TRACK_WIDE: f64 = 1450.0;

/// A participant recording started while the room mixes at 8 kHz keeps its 8 kHz file when
/// a G.722 phone joins and the room switches to 16 kHz: the member's voice is at its pitch in
/// both halves of its track, and what it hears (the second channel of `all`) holds the G.722
/// phone at its pitch; the header agrees with the samples and the reported duration.
#[tokio::test]
async fn a_participant_track_keeps_its_rate_when_the_room_switches_to_wideband() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let stub = HttpStub::start().await;
        stub.serve("/prec", 200, "text/plain", "");
        let srv = wide_server(ROUTES, 40);
        let api = Api::new(&srv);
        let mut pcmu = call(srv.sip, "agent-ptrack", Phone::Pcmu, TRACK_NARROW).await;
        let agent = member_of(&api, "ptrack", "agent").await;
        let rec = start(
            &api,
            "ptrack",
            &agent,
            json!({"file_format": "wav", "record_track_type": "both",
                   "recording_callback_url": stub.url("/prec")}),
        )
        .await;
        pcmu.rtp
            .talk(pcmu.media, TRACK_NARROW, Duration::from_secs(2))
            .await;
        let mut g722 = call(srv.sip, "customer-ptrack", Phone::G722, TRACK_WIDE).await;
        let d = Duration::from_secs(2);
        tokio::join!(
            pcmu.rtp.talk(pcmu.media, TRACK_NARROW, d),
            g722.rtp.talk(g722.media, TRACK_WIDE, d)
        );
        let path = format!("name_ptrack/Participant/{agent}/Record/");
        let stop = json!({"record_track_type": "both"});
        assert_eq!(api.send("DELETE", &path, Some(stop)).await.0, 204);
        let got = wait_events(&stub, "/prec", "ParticipantRecordingCompleted", 2).await;
        let mut failures = Vec::new();
        for r in rec["recordings"].as_array().expect("recordings") {
            let kind = r["record_track_type"].as_str().unwrap();
            let id = r["recording_id"].as_str().unwrap();
            let done = of_recording(&got, "ParticipantRecordingCompleted", id);
            let (channels, rate, pcm) = wav_channels(done.param("RecordingURL").unwrap()).await;
            assert_eq!(rate, 8000, "{kind}: the rate it started at");
            assert_eq!(channels, if kind == "all" { 2 } else { 1 }, "{kind}");
            let said = &pcm[0];
            let secs = said.len() as f64 / 8000.0;
            assert!(
                (3.0..5.5).contains(&secs),
                "{kind}: about 4 s of call, not stretched: {secs:.2} s"
            );
            let reported: f64 = done.param("RecordingDuration").unwrap().parse().unwrap();
            assert!(
                (reported - secs).abs() <= 1.0,
                "{kind}: the duration reported ({reported} s) is the file's ({secs:.2} s)"
            );
            let (first, second) = said.split_at(said.len() / 2);
            for (half, pcm) in [("first", first), ("second", second)] {
                let at = tone_share_at(pcm, TRACK_NARROW, 8000);
                let low = tone_share_at(pcm, TRACK_NARROW / 2.0, 8000);
                if at < 0.5 || low > 0.01 {
                    failures.push(format!(
                        "{kind}, {half} half: the member's voice {at:.3}, an octave low {low:.4}"
                    ));
                }
            }
            if kind == "all" {
                let heard = &pcm[1][pcm[1].len() / 2..];
                let at = tone_share_at(heard, TRACK_WIDE, 8000);
                let low = tone_share_at(heard, TRACK_WIDE / 2.0, 8000);
                if at < 0.5 || low > 0.01 {
                    failures.push(format!(
                        "all, second half: the G.722 phone heard {at:.3}, an octave low {low:.4}"
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{failures:#?}\n{}", srv.log());
        g722.ua.bye().await;
        pcmu.ua.bye().await;
    })
    .await
    .expect("timed out");
}

/// The per-role multichannel WAV of an MPC recorded at 8 kHz keeps its rate and its four
/// channels when a G.722 phone joins: each role's tone on its channel, at its pitch.
#[tokio::test]
async fn the_per_role_recording_keeps_its_rate_when_the_room_switches_to_wideband() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let stub = HttpStub::start().await;
        stub.serve("/rec", 200, "text/plain", "");
        let routes = ROUTES.replace(
            "stayAlone=\"true\"",
            &format!(
                "stayAlone=\"true\" record=\"true\" recordFileFormat=\"wav\" recordRoleChannels=\"true\" recordingCallbackUrl=\"{}\"",
                stub.url("/rec")
            ),
        );
        let srv = wide_server(&routes, 40);
        let mut pcmu = call(srv.sip, "agent-roles", Phone::Pcmu, TRACK_NARROW).await;
        pcmu.rtp
            .talk(pcmu.media, TRACK_NARROW, Duration::from_secs(1))
            .await;
        let mut g722 = call(srv.sip, "customer-roles", Phone::G722, TRACK_WIDE).await;
        let d = Duration::from_secs(2);
        tokio::join!(
            pcmu.rtp.talk(pcmu.media, TRACK_NARROW, d),
            g722.rtp.talk(g722.media, TRACK_WIDE, d)
        );
        g722.ua.bye().await;
        pcmu.ua.bye().await;
        let got = wait_events(&stub, "/rec", "MPCRecordingCompleted", 2).await;
        let roles = got
            .iter()
            .find(|r| {
                r.param("EventName") == Some("MPCRecordingCompleted")
                    && r.param("RecordingChannels").is_some()
            })
            .expect("the per-role recording completed");
        let (channels, rate, pcm) = wav_channels(roles.param("RecordingURL").unwrap()).await;
        assert_eq!((channels, rate), (4, 8000), "the rate it started at");
        // Channels: customer, agent, supervisor, ai-agent. The last second holds both.
        let tail = |c: usize| last(&pcm[c], 1.0, 8000).to_vec();
        let (customer, agent) = (tail(0), tail(1));
        let (c, a) = (
            tone_share_at(&customer, TRACK_WIDE, 8000),
            tone_share_at(&agent, TRACK_NARROW, 8000),
        );
        assert!(c > 0.5 && a > 0.5, "each role at its pitch: customer {c:.3}, agent {a:.3}\n{}", srv.log());
        let low = tone_share_at(&agent, TRACK_NARROW / 2.0, 8000);
        assert!(low < 0.01, "nothing an octave low: {low:.4}");
        let head = &pcm[1][..pcm[1].len() / 3];
        let a = tone_share_at(head, TRACK_NARROW, 8000);
        assert!(a > 0.5, "the agent before the switch: {a:.3}");
    })
    .await
    .expect("timed out");
}

/// A bidirectional `<Stream>` started before `<MultiPartyCall>`: once the G.722 caller is in
/// its 16 kHz room, the service's 8 kHz voice still reaches it, at its pitch, and the service
/// still hears the caller.
#[tokio::test]
async fn a_bidirectional_stream_is_heard_by_a_g722_leg_in_its_room() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let svc = AiService::start().await;
        let streamed = format!(
            "[[route]]\nuser = \"^streamed-(?P<mpc>[a-z0-9]+)$\"\n\
             xml = '<Response><Stream bidirectional=\"true\" audioTrack=\"inbound\" contentType=\"audio/x-l16;rate=8000\">{}</Stream>\
             <MultiPartyCall role=\"customer\" enterSound=\"none\" exitSound=\"none\" stayAlone=\"true\">$mpc</MultiPartyCall></Response>'\n",
            svc.url("/both-ways")
        );
        let srv = wide_server(&format!("{streamed}{ROUTES}"), 40);
        let mut callers = vec![call(srv.sip, "streamed-wbidi", Phone::G722, STREAMED_SAYS).await];
        svc.started(0).await;
        callers.push(call(srv.sip, "agent-wbidi", Phone::Pcmu, ROOM_SAYS).await);
        play_tone(&svc, 0, "audio/x-l16", 8000, AI_SAYS, 4.0);
        let heard = talk_all(&mut callers, 3.0).await;
        let share = |freq: f64| tone_share_at(&heard[0], freq, 16000);
        let (ai, octave_up, room) = (share(AI_SAYS), share(AI_SAYS * 2.0), share(ROOM_SAYS));
        assert!(
            ai > 0.1 && octave_up < 0.01 && room > 0.1,
            "the G.722 caller hears the service at its pitch ({ai:.3}, {octave_up:.4} an octave \
             up) and the room ({room:.3})\n{}",
            srv.log()
        );
        let share = tone_share_at(&heard[1], AI_SAYS, 8000);
        assert!(share < 0.01, "the room does not hear the caller's stream: {share:.4}");
        let inbound = svc.with(0, |c| c.heard_track("inbound"));
        let inbound = last(&inbound, 1.5, 8000);
        let s = tone_share_at(inbound, STREAMED_SAYS, 8000);
        assert!(
            inbound.len() >= 8000 && s > 0.3,
            "the service hears the caller in the room: {} samples, share {s:.3}",
            inbound.len()
        );
        for c in &mut callers {
            c.ua.bye().await;
        }
    })
    .await
    .expect("timed out");
}

const TAPED_SAYS: f64 = 690.0;

/// `<Record recordSession="true">` started before `<MultiPartyCall>` goes on recording a
/// G.722 caller in its 16 kHz room: its 8 kHz file holds what the caller says and what it
/// hears of the room, each at its pitch, and the header agrees with the data.
#[tokio::test]
async fn a_session_recording_keeps_recording_a_g722_leg_in_its_room() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let stub = HttpStub::start().await;
        stub.serve("/session-done", 200, "text/plain", "");
        let taped = format!(
            "[[route]]\nuser = \"^taped-(?P<mpc>[a-z0-9]+)$\"\n\
             xml = '<Response><Record recordSession=\"true\" fileFormat=\"wav\" callbackUrl=\"{}\"/>\
             <MultiPartyCall role=\"customer\" enterSound=\"none\" exitSound=\"none\" stayAlone=\"true\">$mpc</MultiPartyCall></Response>'\n",
            stub.url("/session-done")
        );
        let srv = wide_server(&format!("{taped}{ROUTES}"), 40);
        let mut callers = vec![
            call(srv.sip, "taped-wrec", Phone::G722, TAPED_SAYS).await,
            call(srv.sip, "agent-wrec", Phone::Pcmu, ROOM_SAYS).await,
        ];
        talk_all(&mut callers, 3.0).await;
        callers[0].ua.bye().await;
        let done = stub
            .wait_for("/session-done", 1, Duration::from_secs(10))
            .await;
        assert_eq!(done.len(), 1, "{}", srv.log());
        let url = done[0].param("RecordUrl").expect("RecordUrl").to_string();
        let ms: u64 = done[0]
            .param("RecordingDurationMs")
            .expect("RecordingDurationMs")
            .parse()
            .unwrap();
        let (channels, rate, pcm) = wav_channels(&url).await;
        assert_eq!((channels, rate), (1, 8000), "the call flow's 8 kHz mono file");
        let pcm = &pcm[0];
        assert_eq!(pcm.len() as u64, ms * 8, "the header matches the data");
        assert!(pcm.len() >= 2 * 8000, "the room is recorded: {} samples\n{}", pcm.len(), srv.log());
        // The last two seconds but the very end: in the room, both talking.
        let late = &pcm[pcm.len() - 16_000..pcm.len() - 4_000];
        let share = |freq: f64| tone_share_at(late, freq, 8000);
        let (said, heard, low) = (share(TAPED_SAYS), share(ROOM_SAYS), share(TAPED_SAYS / 2.0));
        assert!(
            said > 0.1 && heard > 0.1 && low < 0.01,
            "the caller ({said:.3}, {low:.4} an octave low) and the room it hears ({heard:.3})\n{}",
            srv.log()
        );
        callers[1].ua.bye().await;
    })
    .await
    .expect("timed out");
}
