//! Our own offers, for outbound calls and offerless re-INVITEs, and reading the answer to them
//! (the UAC side).

use crate::codec::{CodecSpec, TELEPHONE_EVENT, TELEPHONE_EVENT_FMTP};
use crate::error::{AnswerError, NegotiationError};
use crate::local::{LocalMedia, DEFAULT_PTIME};
use crate::negotiate::{agree, choose_codec, NegotiatedMedia};
use crate::parse::parse_offer;
use crate::writer::{audio_media, session_header, FormatLine};

/// Payload type most trunks use for telephone-event; we take it when it is free.
const TELEPHONE_EVENT_PT: u8 = 101;

/// First and last dynamic payload types (RFC 3551 §3).
const DYNAMIC_PTS: std::ops::RangeInclusive<u8> = 96..=127;

/// Builds an offer with one audio m= line listing `supported` in order, each with an rtpmap.
///
/// Static codecs keep their payload type; codecs without one (Opus) get dynamic types from 96
/// up. With `telephone_event`, one telephone-event format is added per clock rate in the list
/// (PT 101 for 8000 Hz when free), offering events 0-16. The direction is
/// [`LocalMedia::direction`], so the same call builds a hold offer (sendonly).
///
/// With an empty `supported` list the audio line is written disabled (port 0).
pub fn build_offer(local: &LocalMedia, supported: &[CodecSpec], telephone_event: bool) -> String {
    let formats = offer_formats(supported, telephone_event);
    let mut sdp = String::with_capacity(320);
    session_header(&mut sdp, local);
    if formats.is_empty() {
        sdp.push_str("m=audio 0 RTP/AVP 0\r\n");
    } else {
        audio_media(
            &mut sdp,
            local.rtp_port,
            "RTP/AVP",
            &formats,
            DEFAULT_PTIME,
            local.direction,
        );
    }
    sdp
}

/// Reads the answer to an offer made with [`build_offer`].
///
/// `offered` is the codec list that went into the offer. Our offer has one audio m= line, so
/// the answer's first m= line answers it (RFC 3264 §6). The answerer may list several of our
/// codecs; the first one listed is used.
pub fn parse_answer(
    body: &[u8],
    offered: &[CodecSpec],
    local: &LocalMedia,
) -> Result<NegotiatedMedia, AnswerError> {
    let answer = parse_offer(body)?;
    let m = answer.media.first().ok_or(NegotiationError::NoAudio)?;
    if !(m.is_audio() && m.is_rtp_avp()) {
        return Err(NegotiationError::NoAudio.into());
    }
    if m.port == 0 {
        return Err(AnswerError::Rejected);
    }
    let (codec, pt) = choose_codec(m, offered).ok_or(NegotiationError::NoCommonCodec)?;
    Ok(agree(0, m, codec, pt, local.direction)?)
}

/// The formats of our offer with payload types assigned.
fn offer_formats(supported: &[CodecSpec], telephone_event: bool) -> Vec<FormatLine<'static>> {
    let mut used = [false; 128];
    let mut codecs: Vec<(CodecSpec, Option<u8>)> = Vec::new();
    for c in supported {
        // A "static" type in the dynamic range is treated as dynamic.
        let static_pt = c.static_pt.filter(|pt| *pt < 96);
        let duplicate = codecs.iter().any(|(seen, seen_pt)| {
            seen.matches(c.name, c.clock_rate, c.channels)
                || (static_pt.is_some() && *seen_pt == static_pt)
        });
        if duplicate {
            continue;
        }
        if let Some(pt) = static_pt {
            used[usize::from(pt)] = true;
        }
        codecs.push((*c, static_pt));
    }

    let mut rates: Vec<u32> = Vec::new();
    if telephone_event {
        for (c, _) in &codecs {
            if !rates.contains(&c.clock_rate) {
                rates.push(c.clock_rate);
            }
        }
    }
    let mut events: Vec<(u32, Option<u8>)> = rates.iter().map(|r| (*r, None)).collect();
    if let Some(e) = events.iter_mut().find(|(rate, _)| *rate == 8000) {
        e.1 = Some(TELEPHONE_EVENT_PT);
        used[usize::from(TELEPHONE_EVENT_PT)] = true;
    }
    let mut next_free = || {
        let pt = DYNAMIC_PTS.clone().find(|pt| !used[usize::from(*pt)])?;
        used[usize::from(pt)] = true;
        Some(pt)
    };
    for (_, pt) in codecs.iter_mut().filter(|(_, pt)| pt.is_none()) {
        *pt = next_free();
    }
    for (_, pt) in events.iter_mut().filter(|(_, pt)| pt.is_none()) {
        *pt = next_free();
    }

    let codec_lines = codecs.into_iter().filter_map(|(c, pt)| {
        Some(FormatLine {
            pt: pt?,
            name: c.name,
            clock_rate: c.clock_rate,
            channels: c.channels,
            fmtp: c.fmtp,
        })
    });
    let event_lines = events.into_iter().filter_map(|(rate, pt)| {
        Some(FormatLine {
            pt: pt?,
            name: TELEPHONE_EVENT,
            clock_rate: rate,
            channels: 1,
            fmtp: Some(TELEPHONE_EVENT_FMTP),
        })
    });
    codec_lines.chain(event_lines).collect()
}
