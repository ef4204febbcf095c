//! Media trust as a stranger on the network would test it: RTP sprayed at every port of the
//! range during a live room, a flood of foreign packets at one leg, and phones behind NAT
//! latched by the IP their SIP came from (design.md, "Media trust").

use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use huddle_testkit::{tone_power, tone_share, RtpPeer, SipUa};

use super::room::{join, talk_all};
use super::{answered, server};

const ROOM_ROUTE: &str = "[[route]]\nuser = \"^(?P<role>agent|customer|supervisor)-(?P<mpc>[a-z0-9]+)$\"\n\
    xml = '<Response><MultiPartyCall role=\"$role\" enterSound=\"none\" exitSound=\"none\" stayAlone=\"true\">$mpc</MultiPartyCall></Response>'\n";

const CUSTOMER: f64 = 430.0;
const AGENT: f64 = 710.0;
const SUPERVISOR: f64 = 1090.0;
const STRANGER: f64 = 2900.0;

/// One PCMU packet of `freq` from a stranger's own stream.
fn stranger_packet(seq: u16, freq: f64) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0xBA, 0xD0, 0xBA, 0xD0];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    for i in 0..160 {
        let t = f64::from(u32::from(seq) * 160 + i) / 8000.0;
        let s = ((2.0 * std::f64::consts::PI * freq * t).sin() * 12_000.0) as i16;
        p.push(huddle_testkit::ulaw_encode(s));
    }
    p
}

/// Sends packets from its own thread until stopped; counts what it sent and what came back.
struct Attacker {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Attacker {
    /// Sprays every port of `low..=high` in turn, `rounds_per_sec` times a second.
    fn spray(low: u16, high: u16, rounds_per_sec: u32) -> Attacker {
        Self::run(move |socket, seq| {
            for port in low..=high {
                let _ = socket.send_to(&stranger_packet(seq, STRANGER), ("127.0.0.1", port));
            }
            (
                u64::from(high - low) + 1,
                Duration::from_secs(1) / rounds_per_sec,
            )
        })
    }

    /// Sends `per_sec` packets a second at `target`, in bursts every millisecond.
    fn flood(target: SocketAddr, per_sec: u32) -> Attacker {
        let burst = per_sec / 1000;
        Self::run(move |socket, seq| {
            let packet = stranger_packet(seq, STRANGER);
            for _ in 0..burst {
                let _ = socket.send_to(&packet, target);
            }
            (u64::from(burst), Duration::from_millis(1))
        })
    }

    /// `round` sends one round and says how many packets and how long a round lasts.
    fn run(mut round: impl FnMut(&StdUdpSocket, u16) -> (u64, Duration) + Send + 'static) -> Self {
        let (stop, sent, received) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        );
        let (s, n, r) = (stop.clone(), sent.clone(), received.clone());
        let thread = std::thread::spawn(move || {
            let socket = StdUdpSocket::bind("127.0.0.1:0").unwrap();
            socket.set_nonblocking(true).unwrap();
            let start = Instant::now();
            let mut next = start;
            let mut seq = 0u16;
            let mut buf = [0u8; 2048];
            while !s.load(Ordering::Relaxed) {
                let (count, period) = round(&socket, seq);
                seq = seq.wrapping_add(1);
                n.fetch_add(count, Ordering::Relaxed);
                // Whatever comes back to the attacker: a mix would be a leak.
                while let Ok((len, _)) = socket.recv_from(&mut buf) {
                    if len > 12 {
                        r.fetch_add(1, Ordering::Relaxed);
                    }
                }
                next += period;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
        });
        Attacker {
            stop,
            sent,
            received,
            thread: Some(thread),
        }
    }

    /// Stops; returns (packets sent, RTP packets received).
    fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        (
            self.sent.load(Ordering::Relaxed),
            self.received.load(Ordering::Relaxed),
        )
    }
}

#[tokio::test]
async fn a_sprayer_on_every_port_is_heard_by_nobody_and_receives_nothing() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let srv = server(ROOM_ROUTE, 60);
        let mut parties = vec![
            join(srv.sip, "customer-spray", CUSTOMER).await,
            join(srv.sip, "agent-spray", AGENT).await,
            join(srv.sip, "supervisor-spray", SUPERVISOR).await,
        ];
        // Every port of the range, RTP and RTCP alike, 50 times a second.
        let sprayer = Attacker::spray(srv.rtp_low, srv.rtp_low + 60, 50);
        let heard = talk_all(&mut parties, 3.0).await;
        let (sent, leaked) = sprayer.finish();
        assert!(sent > 6000, "the sprayer ran: {sent} packets");
        assert_eq!(
            leaked, 0,
            "the sprayer got {leaked} packets of the room's audio"
        );
        let expect = [
            ("customer", &heard[0], vec![AGENT]),
            ("agent", &heard[1], vec![CUSTOMER, SUPERVISOR]),
            ("supervisor", &heard[2], vec![CUSTOMER, AGENT]),
        ];
        for (who, pcm, tones) in expect {
            for tone in tones {
                let share = tone_share(pcm, tone);
                assert!(share > 0.05, "{who} hears {tone} Hz: {share:.4}");
            }
            let share = tone_share(pcm, STRANGER);
            assert!(share < 0.005, "{who} hears the sprayer: {share:.4}");
        }
        let foreign = srv.metric("huddle_rtp_dropped_total{reason=\"foreign_source\"}");
        assert!(
            foreign < sent as f64 / 10.0,
            "the kernel drops strangers' packets before huddle reads them: {foreign} of {sent}"
        );
        for p in &mut parties {
            p.ua.bye().await;
        }
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_flood_of_foreign_packets_does_not_silence_a_caller() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let srv = server(ROOM_ROUTE, 20);
        let mut parties = vec![
            join(srv.sip, "customer-flood", CUSTOMER).await,
            join(srv.sip, "agent-flood", AGENT).await,
        ];
        let clean = talk_all(&mut parties, 2.0).await;
        let clean_level = tone_power(&clean[1], CUSTOMER);
        assert!(clean_level > 0.0);

        // 100,000 foreign packets a second at the agent's leg for 10 s, while both talk.
        let agent_media = parties[1].media;
        let flood = Attacker::flood(agent_media, 100_000);
        let started = Instant::now();
        let flooded = talk_all(&mut parties, 10.0).await;
        let elapsed = started.elapsed();
        let (sent, leaked) = flood.finish();
        let rate = sent as f64 / elapsed.as_secs_f64();
        assert!(rate > 80_000.0, "the flood reached {rate:.0} packets/s");
        assert_eq!(leaked, 0, "nothing is sent to the flooder");
        let level = tone_power(&flooded[1], CUSTOMER) / clean_level;
        assert!(
            level >= 0.95,
            "the agent hears the customer at {level:.3} of the clean level"
        );
        assert!(tone_share(&flooded[1], STRANGER) < 0.005);
        let customer_hears = tone_share(&flooded[0], AGENT);
        assert!(
            customer_hears > 0.05,
            "the customer hears the agent: {customer_hears:.4}"
        );
        for p in &mut parties {
            p.ua.bye().await;
        }
    })
    .await
    .expect("timed out");
}

const NAT_ROUTE: &str =
    "[[route]]\nuser = \"^nat-echo$\"\necho = true\nlatching = \"signalling-ip\"\n";

#[tokio::test]
async fn behind_nat_media_latches_to_the_signalling_ip_and_nobody_else() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let srv = server(NAT_ROUTE, 20);
        // The SDP names a port nobody sends from (a private address behind NAT would be
        // unreachable; a closed local port stands in for it here).
        let unused = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        let signalled = unused.local_addr().unwrap().port();
        let mut ua = SipUa::udp(srv.sip).await;
        let ok = ua
            .invite("nat-echo", &SipUa::sdp(signalled, &[0]))
            .await
            .expect("answer");
        assert_eq!(ok.status(), 200);
        ua.ack().await;
        let media = ok.sdp_audio().unwrap();

        // A stranger on another address speaks first: it must not take the leg.
        let stranger = tokio::net::UdpSocket::bind("127.0.0.2:0").await.unwrap();
        for seq in 0..25 {
            stranger
                .send_to(&stranger_packet(seq, STRANGER), media)
                .await
                .unwrap();
        }
        // The phone's real media comes from another port of the signalling IP.
        let mut phone = RtpPeer::bind().await;
        let heard = phone.talk(media, 1000.0, Duration::from_millis(1500)).await;
        let tail = &heard[heard.len().saturating_sub(4000)..];
        assert!(tone_share(tail, 1000.0) > 0.3, "the phone hears its echo");
        assert!(tone_share(tail, STRANGER) < 0.005, "not the stranger's");
        let mut buf = [0u8; 2048];
        let leaked =
            tokio::time::timeout(Duration::from_millis(300), stranger.recv_from(&mut buf)).await;
        assert!(leaked.is_err(), "nothing goes to the stranger");
        ua.bye().await;
        drop(unused);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn by_default_media_from_another_port_than_the_sdp_is_not_heard() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let srv = server("", 20);
        let (mut ua, mut rtp, media) = answered(srv.sip, "echo").await;
        // Someone else on the same host, on another port: not the signalled address.
        let mut other = RtpPeer::bind().await;
        let heard = other.talk(media, 1000.0, Duration::from_millis(1000)).await;
        assert!(
            heard.iter().all(|s| s.abs() < 100) || tone_share(&heard, 1000.0) < 0.005,
            "the other port gets no echo of itself"
        );
        let heard = rtp.talk(media, 700.0, Duration::from_millis(1200)).await;
        let tail = &heard[heard.len().saturating_sub(4000)..];
        assert!(
            tone_share(tail, 700.0) > 0.3,
            "the signalled peer is echoed"
        );
        assert!(tone_share(tail, 1000.0) < 0.005);
        ua.bye().await;
    })
    .await
    .expect("timed out");
}
