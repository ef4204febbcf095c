//! Answering an offer (RFC 3264 §6).

use std::net::SocketAddr;

use crate::codec::{CodecSpec, TELEPHONE_EVENT, TELEPHONE_EVENT_DEFAULT_EVENTS};
use crate::crypto::{parse_crypto, write_crypto, SrtpKeys, SrtpPolicy};
use crate::direction::Direction;
use crate::error::NegotiationError;
use crate::local::{LocalMedia, DEFAULT_PTIME};
use crate::session::{MediaDescription, SessionOffer};
use crate::writer::{audio_media, rejected_media, session_header, FormatLine};

/// Packet times we agree to: whole multiples of 10 ms up to 120 ms. Anything else in an offer
/// is answered with [`DEFAULT_PTIME`].
const PTIME_RANGE: std::ops::RangeInclusive<u32> = 10..=120;

/// What was agreed for the audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedMedia {
    /// Position (from 0) of the audio m= line in the offer.
    pub media_index: usize,
    /// The codec to send and expect.
    pub codec: CodecSpec,
    /// Its payload type, as the offer numbered it.
    pub payload_type: u8,
    /// RFC 4733 telephone-event payload type, when offered at the codec's clock rate.
    pub telephone_event_pt: Option<u8>,
    /// Where to send RTP: the c= address and m= port. Under an RFC 2543 hold the address is
    /// 0.0.0.0 and `local_direction` does not send.
    pub remote_rtp: SocketAddr,
    /// Where to send RTCP: `a=rtcp` if given, else the RTP port + 1.
    pub remote_rtcp: Option<SocketAddr>,
    /// The peer's direction, with c=0.0.0.0 counted as "does not receive".
    pub remote_direction: Direction,
    /// Our direction: the RFC 3264 answer to the peer's, narrowed by [`LocalMedia::direction`].
    pub local_direction: Direction,
    /// Packet time in milliseconds.
    pub ptime: u32,
    /// The SRTP keys, when the stream is RTP/SAVP.
    pub srtp: Option<SrtpKeys>,
    /// The peer's `a=fmtp` parameters for the chosen codec, as written (Opus: whether it
    /// wants DTX or FEC from us; see [`crate::fmtp_param`]).
    pub remote_fmtp: Option<String>,
}

/// Our answer to an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The SDP text (CRLF line ends).
    pub sdp: String,
    /// What it agrees to.
    pub media: NegotiatedMedia,
}

/// Answers an offer.
///
/// Takes the first audio m= line (RTP/AVP, port ≠ 0) that has a codec in `supported`, and in
/// it the first codec in the *offerer's* order that we support: trunks list their preference
/// first, and honouring it is what they expect (RFC 3264 §6.1 lets either side's order win).
/// Every other m= line — video, T.38 `image`, further audio, SRTP — is mirrored with port 0,
/// so the answer has exactly the offer's m= lines, in order.
///
/// The answer carries telephone-event with the offer's payload type and events when it was
/// offered at the codec's clock rate, echoes a sensible offered ptime (else 20 ms, never above
/// maxptime), and answers the direction per RFC 3264 §6.1.
///
/// [`NegotiationError`] means "answer 488 Not Acceptable Here".
pub fn negotiate(
    offer: &SessionOffer,
    supported: &[CodecSpec],
    local: &LocalMedia,
) -> Result<Answer, NegotiationError> {
    negotiate_secure(offer, supported, local, SrtpPolicy::Off, &mut |_| {
        Vec::new()
    })
}

/// [`negotiate`] with SRTP: under `policy`, RTP/SAVP audio lines with a usable `a=crypto`
/// (see [`crate::parse_crypto`]) are answered too, with our own key from `new_key(len)` (the
/// caller's randomness, so that this crate stays deterministic), and the answer's
/// [`NegotiatedMedia::srtp`] carries both keys. The first acceptable audio line in the
/// offerer's order wins. [`SrtpPolicy::Required`] refuses plain lines
/// ([`NegotiationError::SrtpRequired`] when nothing else is left).
pub fn negotiate_secure(
    offer: &SessionOffer,
    supported: &[CodecSpec],
    local: &LocalMedia,
    policy: SrtpPolicy,
    new_key: &mut dyn FnMut(usize) -> Vec<u8>,
) -> Result<Answer, NegotiationError> {
    let mut saw_audio = false;
    let mut refused_plain = false;
    let mut chosen = None;
    for (index, m) in offer.media.iter().enumerate() {
        if !(m.is_audio() && m.port != 0) {
            continue;
        }
        let crypto = if m.is_rtp_avp() {
            if policy == SrtpPolicy::Required {
                refused_plain = true;
                continue;
            }
            None
        } else if m.is_rtp_savp() && policy != SrtpPolicy::Off {
            match m.crypto.iter().find_map(|c| parse_crypto(c)) {
                Some(c) => Some(c),
                None => continue,
            }
        } else {
            continue;
        };
        saw_audio = true;
        if let Some((codec, pt)) = choose_codec(m, supported) {
            chosen = Some((index, m, codec, pt, crypto));
            break;
        }
    }
    let Some((index, m, codec, pt, crypto)) = chosen else {
        return Err(if saw_audio {
            NegotiationError::NoCommonCodec
        } else if refused_plain {
            NegotiationError::SrtpRequired
        } else {
            NegotiationError::NoAudio
        });
    };
    let mut media = agree(index, m, codec, pt, local.direction)?;
    media.srtp = crypto.map(|c| SrtpKeys {
        suite: c.suite,
        local: new_key(c.suite.key_salt_len()),
        remote: c.key_salt,
        tag: c.tag,
    });

    let mut formats = vec![FormatLine {
        pt,
        name: codec.name,
        clock_rate: codec.clock_rate,
        channels: codec.channels,
        fmtp: codec.fmtp,
    }];
    if let Some(te) = media.telephone_event_pt {
        let events = m
            .rtp_format(te)
            .and_then(|f| f.fmtp.as_deref())
            .filter(|e| !e.is_empty())
            .unwrap_or(TELEPHONE_EVENT_DEFAULT_EVENTS);
        formats.push(FormatLine {
            pt: te,
            name: TELEPHONE_EVENT,
            clock_rate: codec.clock_rate,
            channels: 1,
            fmtp: Some(events),
        });
    }

    let mut sdp = String::with_capacity(256 + 40 * offer.media.len());
    session_header(&mut sdp, local);
    for (i, line) in offer.media.iter().enumerate() {
        if i == index {
            audio_media(
                &mut sdp,
                local.rtp_port,
                &line.proto,
                &formats,
                media.ptime,
                media.local_direction,
            );
            if let Some(keys) = &media.srtp {
                write_crypto(&mut sdp, keys.tag, keys.suite, &keys.local);
            }
        } else {
            rejected_media(&mut sdp, line);
        }
    }
    Ok(Answer { sdp, media })
}

/// The first format of `m`, in its order, that is one of `supported`.
pub(crate) fn choose_codec(
    m: &MediaDescription,
    supported: &[CodecSpec],
) -> Option<(CodecSpec, u8)> {
    m.rtp_formats.iter().find_map(|f| {
        supported
            .iter()
            .find(|c| c.matches(&f.encoding, f.clock_rate, f.channels))
            .map(|c| (*c, f.payload_type))
    })
}

/// Everything agreed once the codec of stream `index` is chosen.
pub(crate) fn agree(
    index: usize,
    m: &MediaDescription,
    codec: CodecSpec,
    payload_type: u8,
    local: Direction,
) -> Result<NegotiatedMedia, NegotiationError> {
    let ip = m
        .connection
        .ok_or(NegotiationError::NoConnectionAddress { media: index + 1 })?;
    let remote_rtp = SocketAddr::new(ip, m.port);
    let remote_rtcp = match m.rtcp {
        Some(r) => Some(SocketAddr::new(r.address.unwrap_or(ip), r.port)),
        None => m.port.checked_add(1).map(|p| SocketAddr::new(ip, p)),
    };
    let telephone_event_pt = m
        .rtp_formats
        .iter()
        .find(|f| {
            f.encoding.eq_ignore_ascii_case(TELEPHONE_EVENT)
                && f.clock_rate == codec.clock_rate
                && f.payload_type != payload_type
        })
        .map(|f| f.payload_type);
    let remote_direction = m.effective_direction();
    Ok(NegotiatedMedia {
        media_index: index,
        codec,
        payload_type,
        telephone_event_pt,
        remote_rtp,
        remote_rtcp,
        remote_direction,
        local_direction: remote_direction.answer().intersect(local),
        ptime: agreed_ptime(m),
        srtp: None,
        remote_fmtp: m.rtp_format(payload_type).and_then(|f| f.fmtp.clone()),
    })
}

/// The offered ptime if we can do it, else the default; never above the offered maxptime.
fn agreed_ptime(m: &MediaDescription) -> u32 {
    let ptime = m
        .ptime
        .filter(|p| PTIME_RANGE.contains(p) && p % 10 == 0)
        .unwrap_or(DEFAULT_PTIME);
    match m.maxptime {
        Some(max) if max < ptime => (max / 10 * 10).max(*PTIME_RANGE.start()),
        _ => ptime,
    }
}
