//! Codecs as data: what we can run, and the RFC 3551 static payload types.
//!
//! A codec is a [`CodecSpec`] value, so adding Opus or G.722 to a server is a matter of
//! passing a longer list to [`crate::negotiate`] once the media layer can run them.

/// A codec we can run, as it appears in SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CodecSpec {
    /// Encoding name as in `a=rtpmap` (matched case-insensitively).
    pub name: &'static str,
    /// RTP clock rate. G.722 says 8000 here although it samples at 16 kHz (RFC 3551 §4.5.2).
    pub clock_rate: u32,
    /// Channel count (the optional third rtpmap field; 1 when absent).
    pub channels: u8,
    /// Static payload type, or `None` for a codec that needs a dynamic one (96–127).
    pub static_pt: Option<u8>,
    /// Format parameters we put in `a=fmtp` for this codec, if any.
    pub fmtp: Option<&'static str>,
}

impl CodecSpec {
    /// Whether an offered format (encoding name, clock rate, channels) is this codec.
    pub fn matches(&self, encoding: &str, clock_rate: u32, channels: u8) -> bool {
        self.name.eq_ignore_ascii_case(encoding)
            && self.clock_rate == clock_rate
            && self.channels == channels
    }
}

/// G.711 µ-law (PT 0).
pub const PCMU: CodecSpec = CodecSpec {
    name: "PCMU",
    clock_rate: 8000,
    channels: 1,
    static_pt: Some(0),
    fmtp: None,
};

/// G.711 A-law (PT 8).
pub const PCMA: CodecSpec = CodecSpec {
    name: "PCMA",
    clock_rate: 8000,
    channels: 1,
    static_pt: Some(8),
    fmtp: None,
};

/// G.722 (PT 9). Not run by the media layer yet; here so the list shape is settled.
pub const G722: CodecSpec = CodecSpec {
    name: "G722",
    clock_rate: 8000,
    channels: 1,
    static_pt: Some(9),
    fmtp: None,
};

/// Opus (RFC 7587): always `opus/48000/2` in SDP, whatever is actually sent, on a dynamic
/// payload type. The parameters say what a leg runs (RFC 7587 §6.1): mono (`stereo=0`,
/// `sprop-stereo=0`), wideband audio both ways, all of speech (`maxplaybackrate`,
/// `sprop-maxcapturerate`; [`OPUS_FULLBAND`] says 48 kHz), in-band FEC wanted (`useinbandfec=1`, which a
/// leg uses to recover a single lost packet), and continuous packets preferred (`usedtx=0`;
/// a peer that sends DTX anyway is understood).
pub const OPUS: CodecSpec = CodecSpec {
    name: "opus",
    clock_rate: 48000,
    channels: 2,
    static_pt: None,
    fmtp: Some(OPUS_FMTP),
};

/// The `a=fmtp` parameters of [`OPUS`].
pub const OPUS_FMTP: &str =
    "maxplaybackrate=16000;sprop-maxcapturerate=16000;stereo=0;sprop-stereo=0;useinbandfec=1;usedtx=0";

/// [`OPUS`] for a server that runs fullband Opus (`rtp.opus_max_rate = 48000`): the same but
/// 48 kHz audio both ways.
pub const OPUS_FULLBAND: CodecSpec = CodecSpec {
    fmtp: Some(OPUS_FULLBAND_FMTP),
    ..OPUS
};

/// The `a=fmtp` parameters of [`OPUS_FULLBAND`].
pub const OPUS_FULLBAND_FMTP: &str =
    "maxplaybackrate=48000;sprop-maxcapturerate=48000;stereo=0;sprop-stereo=0;useinbandfec=1;usedtx=0";

/// A parameter of an `a=fmtp` line (`name=value` pairs separated by `;`), matched
/// case-insensitively: `fmtp_param("useinbandfec=1; usedtx=1", "usedtx") == Some("1")`.
pub fn fmtp_param<'a>(fmtp: &'a str, name: &str) -> Option<&'a str> {
    fmtp.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// The encoding name of RFC 4733 DTMF events.
pub const TELEPHONE_EVENT: &str = "telephone-event";

/// Events we offer for telephone-event: DTMF 0-9, *, #, A-D and flash (RFC 4733 §3.2).
pub const TELEPHONE_EVENT_FMTP: &str = "0-16";

/// Events assumed when an offer's telephone-event has no fmtp (RFC 4733 §7.1.1).
pub const TELEPHONE_EVENT_DEFAULT_EVENTS: &str = "0-15";

/// The RFC 3551 static audio payload types, which offers often list without `a=rtpmap`:
/// `(payload type, encoding name, clock rate)`.
pub const STATIC_PAYLOAD_TYPES: &[(u8, &str, u32)] = &[
    (0, "PCMU", 8000),
    (3, "GSM", 8000),
    (4, "G723", 8000),
    (8, "PCMA", 8000),
    (9, "G722", 8000),
    (13, "CN", 8000),
    (18, "G729", 8000),
];

/// Encoding name and clock rate of a static payload type, if it is one we know.
pub fn static_payload_type(pt: u8) -> Option<(&'static str, u32)> {
    STATIC_PAYLOAD_TYPES
        .iter()
        .find(|(p, _, _)| *p == pt)
        .map(|(_, name, rate)| (*name, *rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_table_covers_what_offers_omit() {
        assert_eq!(static_payload_type(0), Some(("PCMU", 8000)));
        assert_eq!(static_payload_type(8), Some(("PCMA", 8000)));
        assert_eq!(static_payload_type(9), Some(("G722", 8000)));
        assert_eq!(static_payload_type(13), Some(("CN", 8000)));
        assert_eq!(static_payload_type(18), Some(("G729", 8000)));
        assert_eq!(static_payload_type(101), None);
    }

    #[test]
    fn matching_is_case_insensitive_and_checks_rate_and_channels() {
        assert!(PCMU.matches("pcmu", 8000, 1));
        assert!(!PCMU.matches("PCMU", 16000, 1));
        assert!(OPUS.matches("OPUS", 48000, 2));
        assert!(!OPUS.matches("opus", 48000, 1));
    }

    #[test]
    fn fmtp_parameters_are_found_by_name() {
        let f = "maxplaybackrate=16000; sprop-maxcapturerate=16000;useinbandfec=1;USEDTX=1;x";
        assert_eq!(fmtp_param(f, "usedtx"), Some("1"));
        assert_eq!(fmtp_param(f, "maxplaybackrate"), Some("16000"));
        assert_eq!(fmtp_param(f, "stereo"), None);
        assert_eq!(fmtp_param("", "usedtx"), None);
        assert_eq!(fmtp_param("==;=", "usedtx"), None);
    }

    #[test]
    fn static_codecs_agree_with_the_table() {
        for c in [PCMU, PCMA, G722] {
            let pt = c.static_pt.unwrap();
            assert_eq!(static_payload_type(pt), Some((c.name, c.clock_rate)));
        }
    }
}
