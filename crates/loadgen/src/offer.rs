//! The caller's SDP: an offer of PCMU (or Opus) over RTP/AVP or RTP/SAVP with one SDES key (RFC 4568),
//! and what it takes from the server's answer: where to send media and the server's key.

use std::net::{IpAddr, SocketAddr};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use huddle_sdp::{parse_crypto, parse_offer, CryptoSuite};

use crate::media::OPUS_PT;

/// The tag of our only `a=crypto` line; the answer must accept it.
const CRYPTO_TAG: u32 = 1;

/// Our SRTP key for one call.
#[derive(Clone)]
pub struct LocalKey {
    /// The suite offered.
    pub suite: CryptoSuite,
    /// Master key followed by master salt, drawn from the OS generator.
    pub key_salt: Vec<u8>,
}

impl LocalKey {
    /// A fresh key for `suite`.
    pub fn generate(suite: CryptoSuite) -> std::io::Result<LocalKey> {
        let mut key_salt = vec![0; suite.key_salt_len()];
        getrandom::fill(&mut key_salt).map_err(std::io::Error::other)?;
        Ok(LocalKey { suite, key_salt })
    }
}

/// The offer for media at `ip:port`: SRTP with `key`, or plain RTP without one.
/// Opus is offered alone with `opus`, PCMU otherwise.
pub fn offer(ip: IpAddr, port: u16, key: Option<&LocalKey>, opus: bool) -> String {
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let proto = if key.is_some() { "RTP/SAVP" } else { "RTP/AVP" };
    let format = if opus {
        // Wideband both ways, as huddle's own Opus offer: its legs run at 16 kHz then.
        format!("{OPUS_PT}\r\na=rtpmap:{OPUS_PT} opus/48000/2\r\na=fmtp:{OPUS_PT} maxplaybackrate=16000;sprop-maxcapturerate=16000;useinbandfec=1")
    } else {
        "0\r\na=rtpmap:0 PCMU/8000".to_string()
    };
    let mut sdp = format!(
        "v=0\r\no=loadgen 1 1 IN {family} {ip}\r\ns=-\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=audio {port} {proto} {format}\r\na=ptime:20\r\n"
    );
    if let Some(key) = key {
        sdp.push_str(&format!(
            "a=crypto:{CRYPTO_TAG} {} inline:{}\r\n",
            key.suite.name(),
            STANDARD.encode(&key.key_salt)
        ));
    }
    sdp.push_str("a=sendrecv\r\n");
    sdp
}

/// What the answer agreed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Where the server takes our RTP (and sends its own from, over a connected socket).
    pub rtp: SocketAddr,
    /// The server's master key and salt, when SRTP was agreed.
    pub remote_key: Option<Vec<u8>>,
}

/// Why an answer cannot carry the call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// Not SDP we can read.
    #[error("unreadable SDP: {0}")]
    Sdp(String),
    /// No audio line with a port.
    #[error("no active audio line")]
    NoAudio,
    /// No address to send to (or the RFC 2543 hold address).
    #[error("no usable connection address")]
    NoAddress,
    /// The only format offered (PCMU or Opus) is not in the answer.
    #[error("the offered codec was not accepted")]
    NoPcmu,
    /// The answer's transport is not the one offered.
    #[error("answered {0} to an offer of {1}")]
    Transport(String, &'static str),
    /// SRTP offered, but no `a=crypto` line accepts our tag and suite with a usable key.
    #[error("no usable a=crypto answering tag {CRYPTO_TAG} with the offered suite")]
    NoKey,
    /// The server answered with our own key (it must draw its own).
    #[error("the answer repeats our key")]
    OurKey,
}

/// Reads the answer to [`offer`] made with `key`.
pub fn answer(body: &[u8], key: Option<&LocalKey>, pt: u8) -> Result<Answer, AnswerError> {
    let session = parse_offer(body).map_err(|e| AnswerError::Sdp(e.to_string()))?;
    let (_, audio) = session.first_active_audio().ok_or(AnswerError::NoAudio)?;
    let ip = audio
        .connection
        .filter(|ip| !ip.is_unspecified() && !ip.is_multicast())
        .ok_or(AnswerError::NoAddress)?;
    if audio.rtp_format(pt).is_none() {
        return Err(AnswerError::NoPcmu);
    }
    let remote_key = match key {
        None if audio.is_rtp_avp() => None,
        None => return Err(AnswerError::Transport(audio.proto.clone(), "RTP/AVP")),
        Some(_) if !audio.is_rtp_savp() => {
            return Err(AnswerError::Transport(audio.proto.clone(), "RTP/SAVP"))
        }
        Some(ours) => {
            let theirs = audio
                .crypto
                .iter()
                .filter_map(|value| parse_crypto(value))
                .find(|c| c.tag == CRYPTO_TAG && c.suite == ours.suite)
                .ok_or(AnswerError::NoKey)?;
            if theirs.key_salt == ours.key_salt {
                return Err(AnswerError::OurKey);
            }
            Some(theirs.key_salt)
        }
    };
    Ok(Answer {
        rtp: SocketAddr::new(ip, audio.port),
        remote_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(suite: CryptoSuite, byte: u8) -> LocalKey {
        LocalKey {
            suite,
            key_salt: vec![byte; suite.key_salt_len()],
        }
    }

    fn server_answer(proto: &str, crypto: &str) -> String {
        format!(
            "v=0\r\no=huddle 5 5 IN IP4 127.0.0.1\r\ns=huddle\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio 23456 {proto} 0\r\na=rtpmap:0 PCMU/8000\r\n{crypto}a=sendrecv\r\n"
        )
    }

    #[test]
    fn our_offer_parses_with_its_key() {
        let ours = key(CryptoSuite::AeadAes128Gcm, 3);
        let sdp = offer("127.0.0.1".parse().unwrap(), 40000, Some(&ours), false);
        let parsed = parse_offer(sdp.as_bytes()).unwrap();
        let (_, audio) = parsed.first_active_audio().unwrap();
        assert!(audio.is_rtp_savp());
        assert_eq!(audio.port, 40000);
        let c = parse_crypto(&audio.crypto[0]).unwrap();
        assert_eq!((c.tag, c.suite), (1, CryptoSuite::AeadAes128Gcm));
        assert_eq!(c.key_salt, ours.key_salt);
        let plain = offer("127.0.0.1".parse().unwrap(), 40002, None, false);
        let parsed = parse_offer(plain.as_bytes()).unwrap();
        assert!(parsed.media[0].is_rtp_avp() && parsed.media[0].crypto.is_empty());
        // Opus is offered wideband, so huddle runs the leg at 16 kHz.
        let opus = offer("127.0.0.1".parse().unwrap(), 40004, None, true);
        assert!(
            opus.contains("maxplaybackrate=16000;sprop-maxcapturerate=16000"),
            "{opus}"
        );
    }

    #[test]
    fn the_servers_key_is_taken_from_the_answer() {
        let ours = key(CryptoSuite::AesCm128HmacSha1_80, 1);
        let theirs = vec![9u8; 30];
        let body = server_answer(
            "RTP/SAVP",
            &format!(
                "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{}\r\n",
                STANDARD.encode(&theirs)
            ),
        );
        let got = answer(body.as_bytes(), Some(&ours), 0).unwrap();
        assert_eq!(got.rtp, "127.0.0.1:23456".parse().unwrap());
        assert_eq!(got.remote_key, Some(theirs));
        let plain = server_answer("RTP/AVP", "");
        assert_eq!(answer(plain.as_bytes(), None, 0).unwrap().remote_key, None);
    }

    #[test]
    fn answers_that_cannot_carry_the_call_are_refused() {
        let ours = key(CryptoSuite::AesCm128HmacSha1_80, 1);
        let k = |b: u8, n: usize| STANDARD.encode(vec![b; n]);
        let cases = [
            (
                server_answer("RTP/AVP", ""),
                AnswerError::Transport("RTP/AVP".into(), "RTP/SAVP"),
            ),
            (server_answer("RTP/SAVP", ""), AnswerError::NoKey),
            (
                server_answer(
                    "RTP/SAVP",
                    &format!("a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{}\r\n", k(9, 30)),
                ),
                AnswerError::NoKey,
            ),
            (
                server_answer(
                    "RTP/SAVP",
                    &format!("a=crypto:1 AEAD_AES_128_GCM inline:{}\r\n", k(9, 28)),
                ),
                AnswerError::NoKey,
            ),
            (
                server_answer(
                    "RTP/SAVP",
                    &format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{}\r\n", k(9, 29)),
                ),
                AnswerError::NoKey,
            ),
            (
                server_answer(
                    "RTP/SAVP",
                    &format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{}\r\n", k(1, 30)),
                ),
                AnswerError::OurKey,
            ),
            (
                server_answer("RTP/SAVP", "").replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0"),
                AnswerError::NoAddress,
            ),
            (
                server_answer("RTP/SAVP", "").replace("m=audio 23456", "m=audio 0"),
                AnswerError::NoAudio,
            ),
            (
                server_answer("RTP/SAVP", "")
                    .replace(" 0\r\na=rtpmap:0 PCMU/8000", " 8\r\na=rtpmap:8 PCMA/8000"),
                AnswerError::NoPcmu,
            ),
        ];
        for (body, want) in cases {
            assert_eq!(answer(body.as_bytes(), Some(&ours), 0), Err(want), "{body}");
        }
        assert!(matches!(
            answer(b"", Some(&ours), 0),
            Err(AnswerError::Sdp(_))
        ));
        assert!(matches!(
            answer(&[0xff; 64], None, 0),
            Err(AnswerError::Sdp(_))
        ));
        let srtp = server_answer(
            "RTP/SAVP",
            &format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{}\r\n", k(9, 30)),
        );
        assert!(matches!(
            answer(srtp.as_bytes(), None, 0),
            Err(AnswerError::Transport(..))
        ));
    }
}
