//! Offers as trunks and test tools send them, and checks shared by the tests.
#![allow(dead_code)]

use huddle_sdp::{parse_offer, LocalMedia};

/// sipp's built-in uac scenario.
pub const SIPP: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// A Twilio-style trunk offer: G.711 both laws, DTMF 0-16, ptime/maxptime.
pub const TWILIO: &str = "v=0\r\n\
o=root 1580357346 1580357346 IN IP4 54.172.60.1\r\n\
s=Twilio Media Gateway\r\n\
c=IN IP4 54.172.60.1\r\n\
t=0 0\r\n\
m=audio 16372 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=maxptime:150\r\n\
a=sendrecv\r\n";

/// A FreeSWITCH-style offer: Opus first, G.722, G.711, DTMF, comfort noise, a=rtcp.
pub const FREESWITCH: &str = "v=0\r\n\
o=FreeSWITCH 1700000000 1700000001 IN IP4 10.0.0.10\r\n\
s=FreeSWITCH\r\n\
c=IN IP4 10.0.0.10\r\n\
t=0 0\r\n\
m=audio 16384 RTP/AVP 102 9 0 8 101 13\r\n\
a=rtpmap:102 opus/48000/2\r\n\
a=fmtp:102 useinbandfec=1; maxaveragebitrate=30000; maxplaybackrate=48000; ptime=20; minptime=10; maxptime=40\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=rtpmap:13 CN/8000\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n\
a=rtcp:16385 IN IP4 10.0.0.10\r\n";

/// Our side in most tests.
pub fn local() -> LocalMedia {
    LocalMedia::new("10.0.0.5".parse().unwrap(), 20000, 4242, 1)
}

/// A minimal session with the given lines after t=.
pub fn offer_with(media: &str) -> String {
    format!("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n{media}")
}

/// Checks what every SDP text we write must satisfy: CRLF line ends only, and it parses back
/// with as many m= lines as `media_lines`.
pub fn assert_well_formed(sdp: &str, media_lines: usize) {
    assert!(sdp.ends_with("\r\n"), "{sdp:?}");
    assert!(
        !sdp.replace("\r\n", "").contains(['\r', '\n']),
        "bare CR or LF in {sdp:?}"
    );
    let parsed = parse_offer(sdp.as_bytes()).unwrap_or_else(|e| panic!("{e}: {sdp:?}"));
    assert_eq!(parsed.media.len(), media_lines, "{sdp:?}");
}

/// The m= lines of an SDP text.
pub fn m_lines(sdp: &str) -> Vec<&str> {
    sdp.split("\r\n").filter(|l| l.starts_with("m=")).collect()
}
