//! RFC 4733 telephone-event: digits in and out.

const DIGITS: &[u8; 16] = b"0123456789*#ABCD";

/// Event code for a digit.
pub fn event_code(digit: char) -> Option<u8> {
    DIGITS
        .iter()
        .position(|d| char::from(*d) == digit.to_ascii_uppercase())
        .map(|p| p as u8)
}

/// Turns telephone-event packets into one digit per key press.
#[derive(Debug, Default)]
pub struct DtmfReceiver {
    /// RTP timestamp of the last event reported (end packets are sent three times).
    reported: Option<u32>,
}

impl DtmfReceiver {
    /// Feeds one payload; returns (digit, duration in timestamp units) when a press ends.
    pub fn on_packet(&mut self, timestamp: u32, payload: &[u8]) -> Option<(char, u32)> {
        let [event, flags, d0, d1, ..] = *payload else {
            return None;
        };
        let digit = char::from(*DIGITS.get(usize::from(event))?);
        let end = flags & 0x80 != 0;
        if !end || self.reported == Some(timestamp) {
            return None;
        }
        self.reported = Some(timestamp);
        Some((digit, u32::from(u16::from_be_bytes([d0, d1]))))
    }
}

/// Produces the packets of one key press: updates every frame, then three end packets.
#[derive(Debug)]
pub struct DtmfSender {
    event: u8,
    total: u32,
    elapsed: u32,
    timestamp: u32,
    ends_sent: u8,
    started: bool,
}

impl DtmfSender {
    /// A press of `digit` lasting `duration` timestamp units, starting at `timestamp`.
    pub fn new(digit: char, duration: u32, timestamp: u32) -> Option<DtmfSender> {
        Some(DtmfSender {
            event: event_code(digit)?,
            total: duration.clamp(400, 0xFFFF),
            elapsed: 0,
            timestamp,
            ends_sent: 0,
            started: false,
        })
    }

    /// True for the first packet (marker bit).
    pub fn is_start(&self) -> bool {
        !self.started
    }

    /// The event's RTP timestamp (constant for the whole press).
    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }

    /// The payload for the next frame of `frame` timestamp units, and how many times to send
    /// it (three for the end of the event). A count rather than a list, so that sending a
    /// digit allocates nothing on the tick.
    pub fn next_payloads(&mut self, frame: u32) -> ([u8; 4], usize) {
        self.started = true;
        self.elapsed = (self.elapsed + frame).min(self.total);
        let done = self.elapsed >= self.total;
        let d = (self.elapsed as u16).to_be_bytes();
        let flags = if done { 0x80 | 10 } else { 10 };
        let payload = [self.event, flags, d[0], d[1]];
        if done {
            // The three end packets go out together: redundancy against loss (RFC 4733 §2.5.1.4).
            self.ends_sent = 3;
            (payload, 3)
        } else {
            (payload, 1)
        }
    }

    /// All packets sent.
    pub fn done(&self) -> bool {
        self.ends_sent >= 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_and_receiver_agree() {
        let mut tx = DtmfSender::new('5', 800, 1000).unwrap();
        let mut rx = DtmfReceiver::default();
        let mut got = Vec::new();
        while !tx.done() {
            let (p, count) = tx.next_payloads(160);
            for _ in 0..count {
                if let Some(d) = rx.on_packet(tx.timestamp(), &p) {
                    got.push(d);
                }
            }
        }
        assert_eq!(got, vec![('5', 800)], "one digit despite three end packets");
        assert!(DtmfSender::new('x', 800, 0).is_none());
        assert_eq!(rx.on_packet(5, &[99, 0x80, 0, 1]), None, "unknown event");
        assert_eq!(rx.on_packet(5, &[1, 0x80]), None, "short payload");
    }
}
