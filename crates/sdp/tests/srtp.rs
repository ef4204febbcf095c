//! RTP/SAVP offers with SDES keys (RFC 4568) under each route policy.

mod common;

use common::{assert_well_formed, local};
use huddle_sdp::{negotiate_secure, parse_offer, CryptoSuite, NegotiationError, SrtpPolicy, PCMU};

const KEY: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";

fn offer(media: &str) -> String {
    format!("v=0\r\no=phone 1 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n{media}")
}

fn savp(port: u16, crypto: &str) -> String {
    format!("m=audio {port} RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n{crypto}")
}

fn avp(port: u16) -> String {
    format!("m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
}

fn answer(text: &str, policy: SrtpPolicy) -> Result<huddle_sdp::Answer, NegotiationError> {
    let parsed = parse_offer(text.as_bytes()).unwrap();
    let a = negotiate_secure(&parsed, &[PCMU], &local(), policy, &mut |n| vec![0xA5; n])?;
    assert_well_formed(&a.sdp, parsed.media.len());
    Ok(a)
}

#[test]
fn an_savp_offer_is_answered_with_our_own_key_under_the_same_tag() {
    let text = offer(&savp(
        4000,
        &format!(
            "a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:{KEY}\r\na=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20\r\n"
        ),
    ));
    for policy in [SrtpPolicy::Optional, SrtpPolicy::Required] {
        let a = answer(&text, policy).unwrap();
        assert!(a.sdp.contains("m=audio 20000 RTP/SAVP 0\r\n"), "{}", a.sdp);
        assert!(
            a.sdp.contains("a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:paWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWl\r\n"),
            "the suite we speak, with the key we were given: {}",
            a.sdp
        );
        let keys = a.media.srtp.expect("keys agreed");
        assert_eq!(keys.suite, CryptoSuite::AesCm128HmacSha1_80);
        assert_eq!(keys.tag, 2);
        assert_eq!(keys.local, vec![0xA5; 30]);
        assert_eq!(keys.remote.len(), 30);
        assert!(
            !format!("{keys:?}").contains("165"),
            "keys stay out of logs"
        );
    }
}

#[test]
fn gcm_is_accepted() {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD.encode([3u8; 28]);
    let a = answer(
        &offer(&savp(
            4000,
            &format!("a=crypto:5 AEAD_AES_128_GCM inline:{key}\r\n"),
        )),
        SrtpPolicy::Optional,
    )
    .unwrap();
    assert_eq!(a.media.srtp.unwrap().suite, CryptoSuite::AeadAes128Gcm);
}

#[test]
fn a_plain_offer_to_a_required_route_is_refused() {
    assert_eq!(
        answer(&offer(&avp(4000)), SrtpPolicy::Required).unwrap_err(),
        NegotiationError::SrtpRequired
    );
    let plain = answer(&offer(&avp(4000)), SrtpPolicy::Optional).unwrap();
    assert!(plain.media.srtp.is_none());
    assert!(!plain.sdp.contains("a=crypto"));
}

#[test]
fn savp_without_a_usable_key_is_not_answered_as_secure() {
    let bad_keys = offer(&savp(
        4000,
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=\r\na=crypto:2 F8_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n",
    ));
    assert_eq!(
        answer(&bad_keys, SrtpPolicy::Required).unwrap_err(),
        NegotiationError::NoAudio
    );
    // Off: SRTP lines are mirrored with port 0, a plain one beside them is taken.
    let both = offer(
        &(savp(
            4000,
            &format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}\r\n"),
        ) + &avp(4002)),
    );
    let a = answer(&both, SrtpPolicy::Off).unwrap();
    assert!(a.sdp.contains("m=audio 0 RTP/SAVP 0\r\n"));
    assert!(a.sdp.contains("m=audio 20000 RTP/AVP 0\r\n"));
    assert_eq!(a.media.remote_rtp.port(), 4002);
    assert!(a.media.srtp.is_none());
    // Optional: the offerer's first acceptable line wins, here the secure one.
    let a = answer(&both, SrtpPolicy::Optional).unwrap();
    assert_eq!(a.media.remote_rtp.port(), 4000);
    assert!(a.media.srtp.is_some());
}
