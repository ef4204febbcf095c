//! Codecs end to end: Opus (RFC 7587) legs beside G.711 legs in one room, each sending its
//! own tone, with a Goertzel detector deciding what each one hears; hostile Opus payloads;
//! the `rtp.codecs` setting.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use huddle_testkit::{tone_share, RtpPeer, ServerProcess, SipUa};

use super::server;

/// `<role>-<mpc>` joins that MPC with that role, without entry or exit sounds, so tones alone
/// fill the mixes.
const ROUTES: &str = "[[route]]\nuser = \"^(?P<role>agent|customer|supervisor)-(?P<mpc>[a-z0-9]+)$\"\n\
    xml = '<Response><MultiPartyCall role=\"$role\" enterSound=\"none\" exitSound=\"none\" stayAlone=\"true\">$mpc</MultiPartyCall></Response>'\n";

/// The dynamic payload type the tests' Opus phones use.
const OPUS_PT: u8 = 111;

/// One caller: dialog, RTP peer, where to send, and its tone.
struct Caller {
    ua: SipUa,
    rtp: RtpPeer,
    media: SocketAddr,
    tone: f64,
}

/// Calls `user` with `offer` from `rtp`, expecting 200 OK; returns the caller and the answer.
async fn call(
    sip: SocketAddr,
    user: &str,
    mut rtp: RtpPeer,
    offer: &str,
    tone: f64,
) -> (Caller, String) {
    let mut ua = SipUa::udp(sip).await;
    let ok = ua
        .invite(user, offer)
        .await
        .unwrap_or_else(|| panic!("{user}: no final response"));
    assert_eq!(ok.status(), 200, "{user}: {ok:?}");
    ua.ack().await;
    let media = ok.sdp_audio().expect("SDP answer with audio");
    rtp.amplitude = 4000.0;
    (
        Caller {
            ua,
            rtp,
            media,
            tone,
        },
        ok.body.clone(),
    )
}

async fn opus_caller(sip: SocketAddr, user: &str, tone: f64) -> (Caller, String) {
    let rtp = RtpPeer::bind_opus(OPUS_PT, 8000).await;
    let offer = SipUa::sdp_opus(rtp.port(), OPUS_PT);
    call(sip, user, rtp, &offer, tone).await
}

async fn pcmu_caller(sip: SocketAddr, user: &str, tone: f64) -> Caller {
    let rtp = RtpPeer::bind().await;
    let offer = SipUa::sdp(rtp.port(), &[0, 101]);
    call(sip, user, rtp, &offer, tone).await.0
}

/// Both talk at once for `secs`; what each heard in its last second.
async fn talk_both(a: &mut Caller, b: &mut Caller, secs: f64) -> (Vec<i16>, Vec<i16>) {
    let d = Duration::from_secs_f64(secs);
    let (ha, hb) = tokio::join!(
        a.rtp.talk(a.media, a.tone, d),
        b.rtp.talk(b.media, b.tone, d)
    );
    let last = |h: Vec<i16>, rate: usize| h[h.len().saturating_sub(rate)..].to_vec();
    (last(ha, 8000), last(hb, 8000))
}

const OPUS_TONE: f64 = 530.0;
const PCMU_TONE: f64 = 1170.0;

#[tokio::test]
async fn an_opus_leg_and_a_pcmu_leg_hear_each_other() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let srv = server(ROUTES, 40);
        let (mut opus, answer) = opus_caller(srv.sip, "customer-mixed", OPUS_TONE).await;
        assert!(
            answer.contains(&format!("a=rtpmap:{OPUS_PT} opus/48000/2\r\n")),
            "Opus answered: {answer}"
        );
        assert!(answer.contains("useinbandfec=1"), "{answer}");
        assert!(answer.contains("stereo=0"), "{answer}");
        let mut pcmu = pcmu_caller(srv.sip, "agent-mixed", PCMU_TONE).await;
        let (opus_heard, pcmu_heard) = talk_both(&mut opus, &mut pcmu, 3.0).await;
        assert!(
            opus_heard.len() >= 4000,
            "Opus leg got audio: {}",
            opus_heard.len()
        );
        assert!(
            pcmu_heard.len() >= 4000,
            "PCMU leg got audio: {}",
            pcmu_heard.len()
        );
        let share = tone_share(&opus_heard, PCMU_TONE);
        assert!(
            share > 0.5,
            "the Opus leg hears the PCMU tone (share {share:.3})"
        );
        let own = tone_share(&opus_heard, OPUS_TONE);
        assert!(
            own < 0.01,
            "the Opus leg does not hear itself (share {own:.4})"
        );
        let share = tone_share(&pcmu_heard, OPUS_TONE);
        assert!(
            share > 0.5,
            "the PCMU leg hears the Opus tone (share {share:.3})"
        );
        let own = tone_share(&pcmu_heard, PCMU_TONE);
        assert!(
            own < 0.01,
            "the PCMU leg does not hear itself (share {own:.4})"
        );
        opus.ua.bye().await;
        pcmu.ua.bye().await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn hostile_opus_payloads_are_counted_and_the_call_goes_on() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let srv = server(ROUTES, 40);
        let (mut opus, _) = opus_caller(srv.sip, "customer-junk", OPUS_TONE).await;
        let mut pcmu = pcmu_caller(srv.sip, "agent-junk", PCMU_TONE).await;
        // Packets whose Opus payload libopus refuses (an empty payload, a code-3 TOC with an
        // impossible frame count, a frame length past the packet), in sequence with the
        // real ones.
        for (i, junk) in [&[][..], &[0x03, 0xFF][..], &[0xFB, 0xFF, 0xFF, 0x01][..]]
            .iter()
            .enumerate()
        {
            let mut p = opus.rtp.tone_packet(OPUS_TONE);
            p.truncate(12);
            p.extend_from_slice(junk);
            let _ = opus.rtp.socket.send_to(&p, opus.media).await;
            tokio::time::sleep(Duration::from_millis(20 + i as u64)).await;
        }
        let (opus_heard, pcmu_heard) = talk_both(&mut opus, &mut pcmu, 2.0).await;
        assert!(tone_share(&pcmu_heard, OPUS_TONE) > 0.5, "Opus still heard");
        assert!(
            tone_share(&opus_heard, PCMU_TONE) > 0.5,
            "Opus leg still hears"
        );
        let refused = srv.metric_reaching(
            "huddle_rtp_dropped_total{reason=\"undecodable\"}",
            2.0,
            Duration::from_secs(3),
        );
        assert!(refused >= 2.0, "undecodable payloads counted: {refused}");
        opus.ua.bye().await;
        pcmu.ua.bye().await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn opus_left_out_of_rtp_codecs_is_not_acceptable() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let srv = ServerProcess::start_with(Path::new(env!("CARGO_BIN_EXE_huddle")), 20, |s| {
            s.standard("", "", ROUTES).replacen(
                "rtp_timeout_secs = 20",
                "rtp_timeout_secs = 20\ncodecs = [\"PCMU\", \"PCMA\"]",
                1,
            )
        });
        let rtp = RtpPeer::bind_opus(OPUS_PT, 8000).await;
        let mut ua = SipUa::udp(srv.sip).await;
        let resp = ua
            .invite("customer-g711", &SipUa::sdp_opus(rtp.port(), OPUS_PT))
            .await
            .expect("a final response");
        assert_eq!(resp.status(), 488, "{resp:?}");
        // PCMU still works on that server.
        let caller = pcmu_caller(srv.sip, "customer-g711", PCMU_TONE).await;
        drop(caller);
    })
    .await
    .expect("timed out");
}

/// Energy of `freq` (Goertzel power) in what `listener` heard of `speaker` over `secs`.
async fn tone_energy_heard(speaker: &mut Caller, listener: &mut Caller, secs: f64) -> f64 {
    let d = Duration::from_secs_f64(secs);
    let (_, heard) = tokio::join!(
        speaker.rtp.talk(speaker.media, speaker.tone, d),
        listener.rtp.talk(listener.media, 0.0, d)
    );
    // The last two seconds: past the jitter buffer's start.
    let tail = &heard[heard.len().saturating_sub(16_000)..];
    assert!(tail.len() >= 15_000, "listener got audio: {}", tail.len());
    // Per 20 ms frame and summed: a concealed frame's small phase shift must not count as
    // lost energy, which one Goertzel over two seconds (a 0.5 Hz wide filter) would make it.
    tail.chunks(160)
        .map(|frame| huddle_testkit::tone_power(frame, speaker.tone))
        .sum()
}

#[tokio::test]
async fn five_percent_loss_on_an_opus_leg_keeps_nine_tenths_of_the_tone_with_fec() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let srv = server(ROUTES, 40);
        // The same speaker and listener twice: without loss, then with 5 % seeded loss.
        // The tone comes and goes like syllables: Opus sends FEC for speech, not for a steady
        // tone it takes for background noise.
        let (mut clean, _) = opus_caller(srv.sip, "customer-clean", OPUS_TONE).await;
        clean.rtp.syllable_hz = Some(3.0);
        let mut listener = pcmu_caller(srv.sip, "agent-clean", 0.0).await;
        let reference = tone_energy_heard(&mut clean, &mut listener, 4.0).await;
        clean.ua.bye().await;
        listener.ua.bye().await;

        let fec_before = srv.metric("huddle_rtp_fec_recovered_frames_total");
        let (mut lossy, _) = opus_caller(srv.sip, "customer-lossy", OPUS_TONE).await;
        lossy.rtp.loss = Some(huddle_testkit::SendLoss::new(0.05, 0x5EED_0F17));
        lossy.rtp.syllable_hz = Some(3.0);
        let mut listener = pcmu_caller(srv.sip, "agent-lossy", 0.0).await;
        let lossy_energy = tone_energy_heard(&mut lossy, &mut listener, 4.0).await;
        let dropped = lossy.rtp.loss.map_or(0, |l| l.dropped);
        assert!(dropped >= 5, "the seeded loss dropped packets: {dropped}");
        let recovered = srv.metric_reaching(
            "huddle_rtp_fec_recovered_frames_total",
            fec_before + 1.0,
            Duration::from_secs(3),
        ) - fec_before;
        let ratio = lossy_energy / reference;
        assert!(
            ratio >= 0.9,
            "with 5 % loss the listener keeps {ratio:.3} of the tone energy ({dropped} lost, {recovered} rebuilt by FEC)"
        );
        assert!(recovered >= 1.0, "FEC rebuilt lost frames: {recovered}");
        lossy.ua.bye().await;
        listener.ua.bye().await;
    })
    .await
    .expect("timed out");
}

const G722_TONE: f64 = 830.0;

#[tokio::test]
async fn a_g722_leg_hears_an_opus_leg_and_a_pcmu_leg_and_is_heard() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let srv = ServerProcess::start_with(Path::new(env!("CARGO_BIN_EXE_huddle")), 40, |s| {
            s.standard("", "", ROUTES).replacen(
                "rtp_timeout_secs = 20",
                "rtp_timeout_secs = 20\ncodecs = [\"PCMU\", \"PCMA\", \"opus\", \"G722\"]",
                1,
            )
        });
        let rtp = RtpPeer::bind_g722().await;
        // A desk phone's offer: G.722 first, PCMU as fallback, static types without rtpmap.
        let offer = SipUa::sdp(rtp.port(), &[9, 0]);
        let (mut g722, answer) = call(srv.sip, "agent-desk", rtp, &offer, G722_TONE).await;
        assert!(
            answer.contains("m=audio") && answer.contains(" RTP/AVP 9\r\n"),
            "G.722 answered: {answer}"
        );
        assert!(answer.contains("a=rtpmap:9 G722/8000\r\n"), "{answer}");
        let (mut opus, _) = opus_caller(srv.sip, "customer-desk", OPUS_TONE).await;
        let mut pcmu = pcmu_caller(srv.sip, "customer-desk", PCMU_TONE).await;
        let d = Duration::from_secs(3);
        let (heard_g722, heard_opus, heard_pcmu) = tokio::join!(
            g722.rtp.talk(g722.media, g722.tone, d),
            opus.rtp.talk(opus.media, opus.tone, d),
            pcmu.rtp.talk(pcmu.media, pcmu.tone, d)
        );
        // The G.722 phone's audio is 16 kHz: its last second is 16,000 samples.
        let g = &heard_g722[heard_g722.len().saturating_sub(16_000)..];
        assert!(g.len() >= 8000, "the G.722 leg got audio: {}", g.len());
        let share = |pcm: &[i16], f| huddle_testkit::tone_share_at(pcm, f, 16000);
        assert!(
            share(g, OPUS_TONE) > 0.2,
            "G.722 hears Opus: {:.3}",
            share(g, OPUS_TONE)
        );
        assert!(
            share(g, PCMU_TONE) > 0.2,
            "G.722 hears PCMU: {:.3}",
            share(g, PCMU_TONE)
        );
        assert!(
            share(g, G722_TONE) < 0.01,
            "not itself: {:.4}",
            share(g, G722_TONE)
        );
        for (who, heard) in [("Opus", heard_opus), ("PCMU", heard_pcmu)] {
            let last = &heard[heard.len().saturating_sub(8000)..];
            let s = tone_share(last, G722_TONE);
            assert!(s > 0.2, "{who} hears the G.722 phone: {s:.3}");
        }
        g722.ua.bye().await;
        opus.ua.bye().await;
        pcmu.ua.bye().await;
    })
    .await
    .expect("timed out");
}
