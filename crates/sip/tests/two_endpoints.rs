//! Two (or three) endpoints and a proxy on a simulated network: glare, CANCEL races, forking,
//! route sets, timer L and loss, each run with simulated time in microseconds.

mod harness;

use std::time::Duration;

use harness::{node_addr, sdp, Net, Packet, PROXY};
use huddle_sip::endpoint::{EndReason, EndpointEvent, LegId};

/// The calling endpoint (dials through its trunk).
const A: usize = 0;
/// The called endpoint (the trunk, or the first fork).
const B: usize = 1;
/// The second fork.
const C: usize = 2;

fn bob() -> String {
    format!("sip:bob@{}", node_addr(B))
}

/// A dials, B answers and A's ACK arrives: returns (A's leg, B's leg), events drained.
fn establish(net: &mut Net) -> (LegId, LegId) {
    let a_leg = net
        .with(A, |ep, now, out| {
            ep.dial(&bob(), "alice", sdp(7000), now, out)
        })
        .expect("trunk configured");
    net.run();
    let b_leg = net.incoming_leg(B).expect("B sees the INVITE");
    net.with(B, |ep, now, out| ep.answer(b_leg, sdp(8000), now, out));
    net.run();
    let a_events = net.take_events(A);
    assert!(
        a_events.contains(&EndpointEvent::OutboundAnswered {
            leg: a_leg,
            sdp: sdp(8000)
        }),
        "{a_events:?}"
    );
    let b_events = net.take_events(B);
    assert!(
        b_events.contains(&EndpointEvent::Established { leg: b_leg }),
        "{b_events:?}"
    );
    (a_leg, b_leg)
}

fn responses(net: &Net, from: std::net::SocketAddr, status: u16) -> Vec<Packet> {
    net.sent(|p| p.from == from && p.status() == Some(status))
        .into_iter()
        .cloned()
        .collect()
}

#[test]
fn call_is_set_up_and_torn_down_through_the_trunk() {
    let mut net = Net::new(2, None, 1);
    let a_leg = net
        .with(A, |ep, now, out| {
            ep.dial(&bob(), "alice", sdp(7000), now, out)
        })
        .unwrap();
    net.run();
    let b_leg = net.incoming_leg(B).unwrap();
    net.with(B, |ep, now, out| ep.provisional(b_leg, 180, None, now, out));
    net.run();
    assert_eq!(
        net.take_events(A),
        vec![EndpointEvent::OutboundProgress {
            leg: a_leg,
            status: 180,
            sdp: Default::default()
        }]
    );
    net.with(B, |ep, now, out| ep.answer(b_leg, sdp(8000), now, out));
    net.advance(Duration::from_secs(60));
    assert_eq!(
        net.take_events(A),
        vec![EndpointEvent::OutboundAnswered {
            leg: a_leg,
            sdp: sdp(8000)
        }]
    );
    let b_events = net.take_events(B);
    assert!(matches!(b_events[0], EndpointEvent::IncomingCall { .. }));
    assert_eq!(b_events[1..], [EndpointEvent::Established { leg: b_leg }]);
    // The ACK stopped the 2xx: exactly one 200 to the INVITE went out.
    let oks: Vec<_> = responses(&net, node_addr(B), 200)
        .into_iter()
        .filter(|p| p.cseq_method().as_deref() == Some("INVITE"))
        .collect();
    assert_eq!(oks.len(), 1);

    net.with(A, |ep, now, out| ep.hangup(a_leg, now, out));
    net.run();
    assert_eq!(
        net.take_events(B),
        vec![EndpointEvent::Ended {
            leg: b_leg,
            reason: EndReason::RemoteBye
        }]
    );
    assert!(
        net.take_events(A).is_empty(),
        "our own hang-up is not reported"
    );
    assert_eq!(net.nodes[A].ep.leg_count(), 0);
    assert_eq!(net.nodes[B].ep.leg_count(), 0);
}

#[test]
fn reinvite_glare_gets_491_on_both_sides_and_the_dialog_survives() {
    let mut net = Net::new(2, None, 2);
    let (a_leg, b_leg) = establish(&mut net);
    let before = net.log.len();
    // Both sides re-INVITE before either request arrives.
    net.with(A, |ep, now, out| ep.reinvite(a_leg, sdp(7002), now, out));
    net.with(B, |ep, now, out| ep.reinvite(b_leg, sdp(8002), now, out));
    net.advance(Duration::from_secs(1));

    let glare_a = responses(&net, node_addr(A), 491);
    let glare_b = responses(&net, node_addr(B), 491);
    assert_eq!(glare_a.len(), 1, "A refuses B's re-INVITE");
    assert_eq!(glare_b.len(), 1, "B refuses A's re-INVITE");
    assert_eq!(glare_a[0].first_line(), "SIP/2.0 491 Request Pending");
    // Each 491 is acknowledged by the transaction layer (a non-2xx final response).
    let acks: Vec<String> = net.log[before..]
        .iter()
        .filter(|p| p.is_request("ACK"))
        .map(|p| format!("{} {}", p.from, p.header("CSeq").unwrap_or_default()))
        .collect();
    assert_eq!(
        acks,
        vec![
            format!("{} 2 ACK", node_addr(A)),
            format!("{} 1 ACK", node_addr(B))
        ]
    );
    // Neither application saw an offer, and both legs are still up.
    assert!(net.take_events(A).is_empty());
    assert!(net.take_events(B).is_empty());
    assert_eq!(net.nodes[A].ep.leg_count(), 1);
    assert_eq!(net.nodes[B].ep.leg_count(), 1);

    // The endpoint does not retry by itself (§14.1 leaves that to the application): once
    // both exchanges are over, a new re-INVITE from one side goes through.
    net.advance(Duration::from_secs(3));
    net.with(A, |ep, now, out| ep.reinvite(a_leg, sdp(7004), now, out));
    net.run();
    assert_eq!(
        net.take_events(B),
        vec![EndpointEvent::ReInvite {
            leg: b_leg,
            offer: sdp(7004)
        }]
    );
    net.with(B, |ep, now, out| {
        ep.answer_reinvite(b_leg, 200, sdp(8004), now, out)
    });
    net.advance(Duration::from_secs(40));
    let last_ack = net
        .sent(|p| p.is_request("ACK"))
        .last()
        .map(|p| p.header("CSeq"));
    assert_eq!(
        last_ack,
        Some(Some("3 ACK".to_string())),
        "ACK of the 2xx to CSeq 3"
    );
    assert_eq!(
        responses(&net, node_addr(B), 491).len(),
        1,
        "no further glare"
    );
    // Both legs outlived every timer: nothing timed out.
    assert!(net.take_events(A).is_empty());
    assert!(net.take_events(B).is_empty());
    assert_eq!(net.nodes[A].ep.leg_count(), 1);
    assert_eq!(net.nodes[B].ep.leg_count(), 1);
}

#[test]
fn a_2xx_that_crosses_our_cancel_is_acked_then_ended_with_bye() {
    let mut net = Net::new(2, None, 3);
    let a_leg = net
        .with(A, |ep, now, out| {
            ep.dial(&bob(), "alice", sdp(7000), now, out)
        })
        .unwrap();
    net.run();
    let b_leg = net.incoming_leg(B).unwrap();
    net.with(B, |ep, now, out| ep.provisional(b_leg, 180, None, now, out));
    net.run();
    // A gives up while B answers: the CANCEL and the 200 cross on the wire.
    net.with(A, |ep, now, out| ep.hangup(a_leg, now, out));
    net.with(B, |ep, now, out| ep.answer(b_leg, sdp(8000), now, out));
    net.advance(Duration::from_secs(40));

    // B had already answered, so the CANCEL gets 200 and changes nothing (§9.2).
    let cancel_ok = net.sent(|p| {
        p.from == node_addr(B)
            && p.status() == Some(200)
            && p.cseq_method().as_deref() == Some("CANCEL")
    });
    assert_eq!(cancel_ok.len(), 1);
    // A acknowledges the 2xx and ends the call it no longer wants.
    let from_a: Vec<String> = net
        .sent(|p| p.from == node_addr(A))
        .iter()
        .map(|p| p.first_line())
        .collect();
    let ack = from_a.iter().position(|l| l.starts_with("ACK "));
    let bye = from_a.iter().position(|l| l.starts_with("BYE "));
    assert!(
        matches!((ack, bye), (Some(a), Some(b)) if a < b),
        "ACK then BYE: {from_a:?}"
    );
    // A's application asked for the hang-up and hears nothing more; B's call was answered,
    // acknowledged and then ended by the far end.
    let a_events = net.take_events(A);
    assert!(
        a_events
            .iter()
            .all(|e| matches!(e, EndpointEvent::OutboundProgress { .. })),
        "{a_events:?}"
    );
    let b_events = net.take_events(B);
    assert_eq!(
        b_events[1..],
        [
            EndpointEvent::Established { leg: b_leg },
            EndpointEvent::Ended {
                leg: b_leg,
                reason: EndReason::RemoteBye
            }
        ]
    );
    assert_eq!(net.nodes[A].ep.leg_count(), 0);
    assert_eq!(net.nodes[B].ep.leg_count(), 0);
}

#[test]
fn a_second_2xx_from_another_fork_is_acked_and_ended_with_bye() {
    let mut net = Net::new(3, Some(PROXY), 4).with_proxy(vec![node_addr(B), node_addr(C)], true);
    let a_leg = net
        .with(A, |ep, now, out| {
            ep.dial(&bob(), "alice", sdp(7000), now, out)
        })
        .unwrap();
    net.run();
    let b_leg = net.incoming_leg(B).expect("fork B rings");
    let c_leg = net.incoming_leg(C).expect("fork C rings");
    // B answers first and wins; C answers a moment later.
    net.with(B, |ep, now, out| ep.answer(b_leg, sdp(8000), now, out));
    net.run();
    net.with(C, |ep, now, out| ep.answer(c_leg, sdp(9000), now, out));
    net.advance(Duration::from_secs(40));

    let a_events = net.take_events(A);
    assert_eq!(
        a_events,
        vec![EndpointEvent::OutboundAnswered {
            leg: a_leg,
            sdp: sdp(8000)
        }],
        "only the first 2xx reaches the application"
    );
    let oks_to_invite = |n: usize| {
        net.sent(|p| {
            p.from == node_addr(n)
                && p.status() == Some(200)
                && p.cseq_method().as_deref() == Some("INVITE")
        })
        .first()
        .and_then(|p| p.to_tag())
        .unwrap()
    };
    let (b_tag, c_tag) = (oks_to_invite(B), oks_to_invite(C));
    assert_ne!(b_tag, c_tag);
    let from_a = |method: &'static str, tag: &str| {
        net.sent(|p| {
            p.from == node_addr(A) && p.is_request(method) && p.to_tag().as_deref() == Some(tag)
        })
        .len()
    };
    assert_eq!(from_a("ACK", &b_tag), 1, "the winner is acknowledged");
    assert_eq!(from_a("BYE", &b_tag), 0, "and kept");
    assert_eq!(from_a("ACK", &c_tag), 1, "the second fork is acknowledged");
    assert_eq!(from_a("BYE", &c_tag), 1, "and hung up");

    assert_eq!(
        net.take_events(B)[1..],
        [EndpointEvent::Established { leg: b_leg }]
    );
    assert_eq!(
        net.take_events(C)[1..],
        [
            EndpointEvent::Established { leg: c_leg },
            EndpointEvent::Ended {
                leg: c_leg,
                reason: EndReason::RemoteBye
            }
        ]
    );
    assert_eq!(net.nodes[A].ep.leg_count(), 1, "A keeps the call with B");
    assert_eq!(net.nodes[B].ep.leg_count(), 1);
    assert_eq!(net.nodes[C].ep.leg_count(), 0);

    // The call with B is unaffected: hanging up ends it normally.
    net.with(A, |ep, now, out| ep.hangup(a_leg, now, out));
    net.run();
    assert_eq!(
        net.take_events(B),
        vec![EndpointEvent::Ended {
            leg: b_leg,
            reason: EndReason::RemoteBye
        }]
    );
    assert_eq!(net.nodes[A].ep.leg_count(), 0);
}

#[test]
fn in_dialog_requests_follow_the_record_route_both_ways() {
    let mut net = Net::new(2, Some(PROXY), 5).with_proxy(vec![node_addr(B)], true);
    let (a_leg, b_leg) = establish(&mut net);
    let route = format!("<sip:{PROXY};lr>");

    // B's 2xx carries the Record-Route back to A.
    let ok = net.sent(|p| p.from == node_addr(B) && p.status() == Some(200));
    assert_eq!(ok[0].headers("Record-Route"), vec![route.clone()]);
    // A's ACK goes to the proxy with a Route header, not straight to B's Contact.
    let acks = net.sent(|p| p.from == node_addr(A) && p.is_request("ACK"));
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].to, PROXY);
    assert_eq!(acks[0].headers("Route"), vec![route.clone()]);
    assert!(acks[0]
        .first_line()
        .starts_with(&format!("ACK sip:huddle@{}", node_addr(B))));

    // B hangs up: its BYE follows the same route in the other direction.
    net.with(B, |ep, now, out| ep.hangup(b_leg, now, out));
    net.run();
    let byes = net.sent(|p| p.from == node_addr(B) && p.is_request("BYE"));
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].to, PROXY);
    assert_eq!(byes[0].headers("Route"), vec![route]);
    assert!(byes[0]
        .first_line()
        .starts_with(&format!("BYE sip:huddle@{}", node_addr(A))));
    assert_eq!(
        net.take_events(A),
        vec![EndpointEvent::Ended {
            leg: a_leg,
            reason: EndReason::RemoteBye
        }]
    );
    // Nothing ever went directly between the endpoints.
    assert!(
        net.log.iter().all(|p| p.from == PROXY || p.to == PROXY),
        "every datagram passes the proxy"
    );
    assert_eq!(net.nodes[A].ep.leg_count(), 0);
    assert_eq!(net.nodes[B].ep.leg_count(), 0);
}

#[test]
fn an_unacknowledged_2xx_ends_the_leg_at_timer_l() {
    let mut net = Net::new(2, None, 6);
    // Every ACK is lost.
    net.set_loss(|p| p.is_request("ACK"));
    let a_leg = net
        .with(A, |ep, now, out| {
            ep.dial(&bob(), "alice", sdp(7000), now, out)
        })
        .unwrap();
    net.run();
    let b_leg = net.incoming_leg(B).unwrap();
    net.with(B, |ep, now, out| ep.answer(b_leg, sdp(8000), now, out));
    net.advance(Duration::from_secs(31));
    assert_eq!(net.nodes[B].ep.leg_count(), 1, "still waiting before 64*T1");
    net.advance(Duration::from_secs(2));

    // B retransmitted its 2xx (T1, 2T1, ... capped at T2) and A acknowledged every copy.
    let oks = responses(&net, node_addr(B), 200)
        .into_iter()
        .filter(|p| p.cseq_method().as_deref() == Some("INVITE"))
        .count();
    assert!(oks >= 8, "2xx retransmitted until timer L, got {oks}");
    let acks = net.sent(|p| p.is_request("ACK")).len();
    assert_eq!(
        acks, oks,
        "every 2xx copy was acknowledged (and the ACK lost)"
    );
    // Timer L: B reports the missing ACK and ends the call with BYE, which A honours.
    let b_events = net.take_events(B);
    assert_eq!(
        b_events[1..],
        [EndpointEvent::Ended {
            leg: b_leg,
            reason: EndReason::AckTimeout
        }]
    );
    assert_eq!(
        net.take_events(A),
        vec![
            EndpointEvent::OutboundAnswered {
                leg: a_leg,
                sdp: sdp(8000)
            },
            EndpointEvent::Ended {
                leg: a_leg,
                reason: EndReason::RemoteBye
            }
        ]
    );
    assert_eq!(net.nodes[A].ep.leg_count(), 0);
    assert_eq!(net.nodes[B].ep.leg_count(), 0);
}

#[test]
fn a_lost_200_ok_is_retransmitted_and_the_call_still_establishes() {
    let mut net = Net::new(2, None, 7);
    net.drop_nth(1, |p| p.status() == Some(200));
    let a_leg = net
        .with(A, |ep, now, out| {
            ep.dial(&bob(), "alice", sdp(7000), now, out)
        })
        .unwrap();
    net.run();
    let b_leg = net.incoming_leg(B).unwrap();
    net.with(B, |ep, now, out| ep.answer(b_leg, sdp(8000), now, out));
    net.run();
    assert!(net.take_events(A).is_empty(), "the 200 was lost");

    net.advance(Duration::from_millis(499));
    assert!(net.take_events(A).is_empty(), "nothing before T1");
    net.advance(Duration::from_millis(1));
    assert_eq!(
        net.take_events(A),
        vec![EndpointEvent::OutboundAnswered {
            leg: a_leg,
            sdp: sdp(8000)
        }],
        "the retransmission after T1 arrives"
    );
    assert_eq!(
        net.take_events(B)[1..],
        [EndpointEvent::Established { leg: b_leg }]
    );
    let oks = responses(&net, node_addr(B), 200);
    assert_eq!(oks.len(), 2);
    assert!(oks[0].dropped && !oks[1].dropped);
    assert_eq!(
        oks[0].data, oks[1].data,
        "a retransmission is the same bytes"
    );
    net.advance(Duration::from_secs(40));
    assert_eq!(
        responses(&net, node_addr(B), 200).len(),
        2,
        "the ACK stopped it"
    );
    assert!(net.take_events(B).is_empty());
}

#[test]
fn a_lost_invite_is_retransmitted_by_timer_a() {
    let mut net = Net::new(2, None, 8);
    net.drop_nth(1, |p| p.is_request("INVITE"));
    net.with(A, |ep, now, out| {
        ep.dial(&bob(), "alice", sdp(7000), now, out)
    })
    .unwrap();
    net.run();
    assert!(net.incoming_leg(B).is_none());
    net.advance(Duration::from_millis(500));
    assert!(net.incoming_leg(B).is_some(), "the copy after T1 arrives");
    let invites = net.sent(|p| p.is_request("INVITE"));
    assert_eq!(invites.len(), 2);
    assert_eq!(invites[0].data, invites[1].data);
}

/// A scenario touching most of the endpoint: ringing, a lost 200, re-INVITE, hang-up.
fn scenario(seed: u64) -> Vec<u8> {
    let mut net = Net::new(2, Some(PROXY), seed).with_proxy(vec![node_addr(B)], true);
    net.drop_nth(1, |p| p.status() == Some(200));
    let a_leg = net
        .with(A, |ep, now, out| {
            ep.dial(&bob(), "alice", sdp(7000), now, out)
        })
        .unwrap();
    net.run();
    let b_leg = net.incoming_leg(B).unwrap();
    net.with(B, |ep, now, out| ep.provisional(b_leg, 180, None, now, out));
    net.advance(Duration::from_millis(300));
    net.with(B, |ep, now, out| ep.answer(b_leg, sdp(8000), now, out));
    net.advance(Duration::from_secs(2));
    net.with(B, |ep, now, out| ep.reinvite(b_leg, sdp(8002), now, out));
    net.run();
    net.with(A, |ep, now, out| {
        ep.answer_reinvite(a_leg, 200, sdp(7002), now, out)
    });
    net.advance(Duration::from_secs(1));
    net.with(A, |ep, now, out| ep.hangup(a_leg, now, out));
    net.advance(Duration::from_secs(40));
    assert_eq!(net.nodes[A].ep.leg_count() + net.nodes[B].ep.leg_count(), 0);
    net.wire_bytes()
}

#[test]
fn the_same_seed_gives_byte_identical_sip_output() {
    let first = scenario(42);
    let second = scenario(42);
    assert!(first.len() > 5_000, "the scenario exchanged messages");
    assert!(first == second, "two runs with one seed differ");
    assert!(
        scenario(43) != first,
        "the seed reaches tags, branches and Call-IDs"
    );
}
