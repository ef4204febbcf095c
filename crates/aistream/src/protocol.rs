//! The stream's JSON messages (spec/ai-stream.md §4–5): what huddle sends (`start`, `media`,
//! `dtmf`, `playedStream`, `clearedAudio`) and what it takes from the service (`playAudio`,
//! `checkpoint`, `clearAudio`), checked strictly: anything else is a [`ProtocolError`] the
//! stream logs and counts, never a reason to stop the room.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::audio::MediaFormat;

/// Largest text message taken from the service (the protocol's 64 KB limit). A bigger one is
/// dropped whole; the socket itself refuses messages over [`MAX_SOCKET_MESSAGE`].
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Largest message the WebSocket layer buffers before giving up on the connection.
pub const MAX_SOCKET_MESSAGE: usize = 1024 * 1024;
/// Longest checkpoint name kept (it is echoed back in `playedStream`).
pub const MAX_NAME: usize = 256;

/// Why a message from the service was not taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// Over [`MAX_MESSAGE`] bytes.
    #[error("message of {0} bytes is over the 64 KB limit")]
    Oversized(usize),
    /// Not JSON, or not an object with a string `event`.
    #[error("malformed JSON: {0}")]
    Malformed(String),
    /// An `event` the protocol does not have.
    #[error("unknown event {0:?}")]
    UnknownEvent(String),
    /// A field is missing or has the wrong type.
    #[error("{event}: {problem}")]
    BadField {
        /// The event.
        event: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// `playAudio` in a type or rate the protocol does not have.
    #[error("playAudio: unsupported content type {content_type:?} at {rate} Hz")]
    BadContentType {
        /// As sent.
        content_type: String,
        /// As sent.
        rate: u32,
    },
    /// The payload is not base64, or not whole samples.
    #[error("playAudio: payload {0}")]
    BadPayload(String),
}

impl ProtocolError {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ProtocolError::Oversized(_) => "oversized",
            ProtocolError::Malformed(_) => "malformed",
            ProtocolError::UnknownEvent(_) => "unknown_event",
            ProtocolError::BadField { .. } => "bad_field",
            ProtocolError::BadContentType { .. } => "bad_content_type",
            ProtocolError::BadPayload(_) => "bad_payload",
        }
    }
}

/// A message from the service.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// Audio to queue for playing into the room, decoded to samples at `format`'s rate.
    PlayAudio {
        /// The payload's format.
        format: MediaFormat,
        /// The samples.
        samples: Vec<i16>,
    },
    /// Mark the end of the queue; answer with `playedStream` once played.
    Checkpoint {
        /// Echoed back.
        name: String,
    },
    /// Drop all queued audio; answer with `clearedAudio`.
    ClearAudio,
}

fn bad(event: &'static str, problem: impl Into<String>) -> ProtocolError {
    ProtocolError::BadField {
        event,
        problem: problem.into(),
    }
}

/// `sampleRate` is a number in the schemas and a string in some examples: both are taken.
fn rate_of(value: Option<&Value>) -> Result<u32, ProtocolError> {
    let rate = match value {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    rate.and_then(|r| u32::try_from(r).ok())
        .ok_or_else(|| bad("playAudio", "media.sampleRate must be a positive integer"))
}

impl Incoming {
    /// Parses one text message from the service.
    pub fn parse(text: &str) -> Result<Incoming, ProtocolError> {
        if text.len() > MAX_MESSAGE {
            return Err(ProtocolError::Oversized(text.len()));
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(ProtocolError::Malformed("not a JSON object".into()));
        };
        let Some(Value::String(event)) = map.get("event") else {
            return Err(ProtocolError::Malformed("no string \"event\"".into()));
        };
        match event.as_str() {
            "playAudio" => {
                let Some(Value::Object(media)) = map.get("media") else {
                    return Err(bad("playAudio", "media must be an object"));
                };
                let Some(Value::String(content_type)) = media.get("contentType") else {
                    return Err(bad("playAudio", "media.contentType must be a string"));
                };
                let rate = rate_of(media.get("sampleRate"))?;
                let format = MediaFormat::from_play(content_type, rate).ok_or_else(|| {
                    ProtocolError::BadContentType {
                        content_type: content_type.chars().take(64).collect(),
                        rate,
                    }
                })?;
                let Some(Value::String(payload)) = media.get("payload") else {
                    return Err(bad("playAudio", "media.payload must be a string"));
                };
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(payload.as_bytes())
                    .map_err(|e| ProtocolError::BadPayload(format!("is not base64: {e}")))?;
                let samples = format
                    .decode(&bytes)
                    .map_err(|e| ProtocolError::BadPayload(e.to_string()))?;
                Ok(Incoming::PlayAudio { format, samples })
            }
            "checkpoint" => {
                let Some(Value::String(name)) = map.get("name") else {
                    return Err(bad("checkpoint", "name must be a string"));
                };
                if name.len() > MAX_NAME {
                    return Err(bad("checkpoint", format!("name over {MAX_NAME} bytes")));
                }
                Ok(Incoming::Checkpoint { name: name.clone() })
            }
            "clearAudio" => Ok(Incoming::ClearAudio),
            other => Err(ProtocolError::UnknownEvent(
                other.chars().take(64).collect(),
            )),
        }
    }
}

/// `start.mediaFormat`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WireFormat {
    /// `audio/x-l16` or `audio/x-mulaw`, without the rate.
    pub encoding: String,
    /// Hz.
    #[serde(rename = "sampleRate")]
    pub sample_rate: u32,
}

/// `start`'s body.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StartBody {
    /// The member's call uuid.
    #[serde(rename = "callId")]
    pub call_id: String,
    /// This stream's uuid.
    #[serde(rename = "streamId")]
    pub stream_id: String,
    /// `http.auth_id`.
    #[serde(rename = "accountId")]
    pub account_id: String,
    /// `["inbound"]` for an ai-agent member (the service hears its mix); a `<Stream>`'s
    /// `audioTrack`: `["inbound"]`, `["outbound"]` or `["inbound", "outbound"]`.
    pub tracks: Vec<String>,
    /// The stream's content type.
    #[serde(rename = "mediaFormat")]
    pub media_format: WireFormat,
}

/// `media`'s body.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MediaBody {
    /// `inbound` or `outbound` (a `<Stream>` with `audioTrack` outbound or both).
    pub track: String,
    /// Epoch milliseconds, as a string.
    pub timestamp: String,
    /// Per-track counter from 1.
    pub chunk: u64,
    /// Base64 raw audio.
    pub payload: String,
}

/// `dtmf`'s body.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DtmfBody {
    /// `inbound`.
    pub track: String,
    /// The digit.
    pub digit: String,
    /// Epoch milliseconds, as a string.
    pub timestamp: String,
}

/// A message to the service (`sequenceNumber` is added when it is written).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "event")]
pub enum Outgoing {
    /// First message on every socket.
    #[serde(rename = "start")]
    Start {
        /// Per socket, from 1.
        #[serde(rename = "sequenceNumber")]
        sequence_number: u64,
        /// The stream.
        start: StartBody,
        /// The stream's extra headers.
        extra_headers: String,
    },
    /// 20 ms of the agent's mix.
    #[serde(rename = "media")]
    Media {
        /// Per socket, from 1.
        #[serde(rename = "sequenceNumber")]
        sequence_number: u64,
        /// The stream.
        #[serde(rename = "streamId")]
        stream_id: String,
        /// The audio.
        media: MediaBody,
        /// The stream's extra headers.
        extra_headers: String,
    },
    /// A digit relayed into the room.
    #[serde(rename = "dtmf")]
    Dtmf {
        /// Per socket, from 1.
        #[serde(rename = "sequenceNumber")]
        sequence_number: u64,
        /// The stream.
        #[serde(rename = "streamId")]
        stream_id: String,
        /// The digit.
        dtmf: DtmfBody,
        /// The stream's extra headers.
        extra_headers: String,
    },
    /// The audio before a checkpoint has played.
    #[serde(rename = "playedStream")]
    PlayedStream {
        /// Per socket, from 1.
        #[serde(rename = "sequenceNumber")]
        sequence_number: u64,
        /// The stream.
        #[serde(rename = "streamId")]
        stream_id: String,
        /// The checkpoint's name.
        name: String,
    },
    /// The queue was cleared.
    #[serde(rename = "clearedAudio")]
    ClearedAudio {
        /// Per socket, from 1.
        #[serde(rename = "sequenceNumber")]
        sequence_number: u64,
        /// The stream.
        #[serde(rename = "streamId")]
        stream_id: String,
    },
}

impl Outgoing {
    /// The JSON text.
    pub fn to_text(&self) -> String {
        // Serializing these plain structs cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::Encoding;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn play_audio_in_every_supported_type_and_both_rate_spellings() {
        let text = format!(
            r#"{{"event":"playAudio","media":{{"contentType":"audio/x-l16","sampleRate":16000,"payload":"{}"}},"streamId":"x"}}"#,
            b64(&[1, 0, 0xff, 0x7f])
        );
        assert_eq!(
            Incoming::parse(&text).unwrap(),
            Incoming::PlayAudio {
                format: MediaFormat::new(Encoding::L16, 16000).unwrap(),
                samples: vec![1, i16::MAX],
            }
        );
        let text = format!(
            r#"{{"event":"playAudio","media":{{"contentType":"audio/x-mulaw","sampleRate":"8000","payload":"{}"}}}}"#,
            b64(&[0xff, 0x00])
        );
        let Incoming::PlayAudio { format, samples } = Incoming::parse(&text).unwrap() else {
            panic!("not playAudio")
        };
        assert_eq!(format.encoding(), Encoding::Mulaw);
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0], 0);
        assert!(samples[1] < -30000);
    }

    #[test]
    fn checkpoint_and_clear() {
        assert_eq!(
            Incoming::parse(r#"{"event":"checkpoint","streamId":"s","name":"greeting"}"#),
            Ok(Incoming::Checkpoint {
                name: "greeting".into()
            })
        );
        assert_eq!(
            Incoming::parse(r#"{"event":"clearAudio","streamId":"s"}"#),
            Ok(Incoming::ClearAudio)
        );
    }

    #[test]
    fn hostile_messages_are_refused_with_their_reason() {
        let cases: Vec<(String, &str)> = vec![
            ("{not json".into(), "malformed"),
            ("[1,2]".into(), "malformed"),
            (r#"{"event":5}"#.into(), "malformed"),
            (r#"{"event":"dance"}"#.into(), "unknown_event"),
            (r#"{"event":"playAudio"}"#.into(), "bad_field"),
            (
                r#"{"event":"playAudio","media":{"contentType":"audio/x-l16","sampleRate":-3,"payload":""}}"#.into(),
                "bad_field",
            ),
            (
                r#"{"event":"playAudio","media":{"contentType":"audio/x-l16","sampleRate":24000,"payload":""}}"#.into(),
                "bad_content_type",
            ),
            (
                r#"{"event":"playAudio","media":{"contentType":"audio/x-mulaw","sampleRate":16000,"payload":""}}"#.into(),
                "bad_content_type",
            ),
            (
                r#"{"event":"playAudio","media":{"contentType":"audio/x-l16","sampleRate":8000,"payload":"!!!"}}"#.into(),
                "bad_payload",
            ),
            (
                format!(
                    r#"{{"event":"playAudio","media":{{"contentType":"audio/x-l16","sampleRate":8000,"payload":"{}"}}}}"#,
                    b64(&[1, 2, 3])
                ),
                "bad_payload",
            ),
            (r#"{"event":"checkpoint"}"#.into(), "bad_field"),
            (
                format!(r#"{{"event":"checkpoint","name":"{}"}}"#, "n".repeat(300)),
                "bad_field",
            ),
            (" ".repeat(MAX_MESSAGE + 1), "oversized"),
        ];
        for (text, kind) in cases {
            let err = Incoming::parse(&text).expect_err(&text[..text.len().min(80)]);
            assert_eq!(err.kind(), kind, "{}: {err}", &text[..text.len().min(80)]);
        }
    }

    #[test]
    fn outgoing_messages_have_the_spec_shapes() {
        let start = Outgoing::Start {
            sequence_number: 1,
            start: StartBody {
                call_id: "c".into(),
                stream_id: "s".into(),
                account_id: "a".into(),
                tracks: vec!["inbound".into()],
                media_format: WireFormat {
                    encoding: "audio/x-l16".into(),
                    sample_rate: 8000,
                },
            },
            extra_headers: "k=v".into(),
        };
        let v: Value = serde_json::from_str(&start.to_text()).unwrap();
        assert_eq!(v["event"], "start");
        assert_eq!(v["sequenceNumber"], 1);
        assert_eq!(v["start"]["mediaFormat"]["sampleRate"], 8000);
        assert_eq!(v["start"]["callId"], "c");
        assert_eq!(v["extra_headers"], "k=v");
        let played = Outgoing::PlayedStream {
            sequence_number: 7,
            stream_id: "s".into(),
            name: "n".into(),
        };
        let v: Value = serde_json::from_str(&played.to_text()).unwrap();
        assert_eq!(v["event"], "playedStream");
        assert_eq!(v["name"], "n");
    }
}
