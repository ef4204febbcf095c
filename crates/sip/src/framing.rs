//! Splits a TCP byte stream into SIP messages by Content-Length (RFC 3261 §18.3).
//!
//! Sans-IO: the transport feeds bytes in and takes complete messages out. A stream whose framing
//! is broken (oversized, bad Content-Length) cannot be re-synchronised, so the caller closes it.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::FramingError;

/// Accumulates stream bytes and yields complete messages.
#[derive(Debug)]
pub struct StreamFramer {
    buf: BytesMut,
    limit: usize,
}

impl StreamFramer {
    /// A framer refusing messages larger than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        StreamFramer {
            buf: BytesMut::with_capacity(4096),
            limit,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Bytes>, FramingError> {
        // RFC 5626 keepalives (CRLF, CRLFCRLF) and stray line breaks between messages are skipped.
        while self.buf.first().is_some_and(|b| *b == b'\r' || *b == b'\n') {
            self.buf.advance(1);
        }
        let Some(head_end) = find(&self.buf, b"\r\n\r\n") else {
            if self.buf.len() > self.limit {
                return Err(FramingError::TooLarge { limit: self.limit });
            }
            return Ok(None);
        };
        let body_len = content_length(&self.buf[..head_end])?;
        let total = head_end + 4 + body_len;
        if total > self.limit {
            return Err(FramingError::TooLarge { limit: self.limit });
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        Ok(Some(self.buf.split_to(total).freeze()))
    }

    /// The buffered bytes (the start of the message being framed), for error replies.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Bytes buffered but not yet returned.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Content-Length from raw header bytes; absent means 0 on a stream.
fn content_length(head: &[u8]) -> Result<usize, FramingError> {
    let text = String::from_utf8_lossy(head);
    let mut found: Option<usize> = None;
    for line in text.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
            let v = value.trim();
            let n = v
                .parse::<usize>()
                .ok()
                .filter(|_| v.len() <= 9)
                .ok_or_else(|| FramingError::BadContentLength(v.chars().take(20).collect()))?;
            if found.is_some_and(|f| f != n) {
                return Err(FramingError::BadContentLength("conflicting values".into()));
            }
            found = Some(n);
        }
    }
    Ok(found.unwrap_or(0))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_and_joined_messages() {
        let mut f = StreamFramer::new(65535);
        let one = b"OPTIONS sip:a SIP/2.0\r\nl: 3\r\n\r\nabc";
        let two = b"OPTIONS sip:b SIP/2.0\r\nContent-Length: 0\r\n\r\n";
        f.push(b"\r\n\r\n");
        f.push(&one[..10]);
        assert_eq!(f.next_message().unwrap(), None);
        f.push(&one[10..]);
        f.push(two);
        assert_eq!(&f.next_message().unwrap().unwrap()[..], &one[..]);
        assert_eq!(&f.next_message().unwrap().unwrap()[..], &two[..]);
        assert_eq!(f.next_message().unwrap(), None);
        assert_eq!(f.pending(), 0);
    }

    #[test]
    fn rejects_oversize_and_bad_length() {
        let mut f = StreamFramer::new(1024);
        f.push(&vec![b'a'; 2000]);
        assert!(matches!(
            f.next_message(),
            Err(FramingError::TooLarge { .. })
        ));
        let mut f = StreamFramer::new(1024);
        f.push(b"INVITE sip:a SIP/2.0\r\nContent-Length: 5000\r\n\r\n");
        assert!(matches!(
            f.next_message(),
            Err(FramingError::TooLarge { .. })
        ));
        let mut f = StreamFramer::new(1024);
        f.push(b"INVITE sip:a SIP/2.0\r\nContent-Length: -1\r\n\r\n");
        assert!(matches!(
            f.next_message(),
            Err(FramingError::BadContentLength(_))
        ));
    }
}
