//! Re-INVITE offers: refresh, hold, resume.

mod common;

use common::SIPP;
use huddle_sdp::{classify_reoffer, is_hold, is_unchanged, parse_offer, ReofferKind};

fn reoffer(version: &str, change: (&str, &str)) -> huddle_sdp::SessionOffer {
    let body = SIPP
        .replace("2353687637", version)
        .replace(change.0, change.1);
    parse_offer(body.as_bytes()).unwrap()
}

#[test]
fn same_version_is_a_refresh() {
    let first = parse_offer(SIPP.as_bytes()).unwrap();
    let again = reoffer("2353687637", ("", ""));
    assert!(is_unchanged(&first.origin, &again));
    assert_eq!(
        classify_reoffer(&first.origin, &again),
        ReofferKind::Unchanged
    );
}

#[test]
fn hold_in_all_its_forms() {
    let first = parse_offer(SIPP.as_bytes()).unwrap();
    for change in [
        (
            "a=rtpmap:0 PCMU/8000\r\n",
            "a=rtpmap:0 PCMU/8000\r\na=sendonly\r\n",
        ),
        (
            "a=rtpmap:0 PCMU/8000\r\n",
            "a=rtpmap:0 PCMU/8000\r\na=inactive\r\n",
        ),
        ("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0"),
        ("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n"),
    ] {
        let held = reoffer("2353687638", change);
        assert!(is_hold(&held), "{change:?}");
        assert_eq!(
            classify_reoffer(&first.origin, &held),
            ReofferKind::Hold,
            "{change:?}"
        );
    }
}

#[test]
fn resume_and_recvonly_are_active() {
    let first = parse_offer(SIPP.as_bytes()).unwrap();
    let resumed = reoffer("2353687639", ("", ""));
    assert_eq!(
        classify_reoffer(&first.origin, &resumed),
        ReofferKind::Active
    );
    let recvonly = reoffer(
        "2353687640",
        (
            "a=rtpmap:0 PCMU/8000\r\n",
            "a=rtpmap:0 PCMU/8000\r\na=recvonly\r\n",
        ),
    );
    assert!(!is_hold(&recvonly));
}

#[test]
fn a_new_session_id_is_a_change_even_with_the_same_version() {
    let first = parse_offer(SIPP.as_bytes()).unwrap();
    let other = reoffer("2353687637", ("53655765", "53655766"));
    assert!(!is_unchanged(&first.origin, &other));
    assert_eq!(classify_reoffer(&first.origin, &other), ReofferKind::Active);
}
