//! The attributes we read ourselves; the `sdp` crate hands them over as plain strings.
//!
//! Values we cannot read are ignored, as RFC 4566 §5.13 asks for attributes a receiver does
//! not understand: a trunk's odd `a=ptime` must not fail a call. The structure of the
//! description (lines, m=, c=) is checked strictly elsewhere.

use std::net::IpAddr;

/// `a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RtpMap<'a> {
    pub pt: u8,
    pub encoding: &'a str,
    /// `None` when the rate is missing, as in RFC 4475's `a=rtpmap:31 LPC`.
    pub clock_rate: Option<u32>,
    pub channels: u8,
}

pub(crate) fn rtpmap(value: &str) -> Option<RtpMap<'_>> {
    let (pt, rest) = value.trim().split_once(' ')?;
    let pt = payload_type(pt)?;
    let mut parts = rest.trim().split('/');
    let encoding = parts.next().filter(|e| !e.is_empty())?;
    let clock_rate = match parts.next() {
        Some(r) => Some(r.trim().parse::<u32>().ok().filter(|r| *r > 0)?),
        None => None,
    };
    let channels = match parts.next() {
        Some(c) => c.trim().parse::<u8>().ok().filter(|c| *c > 0)?,
        None => 1,
    };
    Some(RtpMap {
        pt,
        encoding,
        clock_rate,
        channels,
    })
}

/// `a=fmtp:<pt> <parameters>`.
pub(crate) fn fmtp(value: &str) -> Option<(u8, &str)> {
    let value = value.trim();
    let (pt, params) = value.split_once(' ').unwrap_or((value, ""));
    Some((payload_type(pt)?, params.trim()))
}

/// `a=ptime:<ms>` and `a=maxptime:<ms>`. Some phones write "20.0"; any positive value up to
/// ten seconds is read, rounded to whole milliseconds.
pub(crate) fn milliseconds(value: &str) -> Option<u32> {
    let value = value.trim();
    if let Ok(ms) = value.parse::<u32>() {
        return (1..=10_000).contains(&ms).then_some(ms);
    }
    let ms = value.parse::<f64>().ok()?;
    // The range check also rejects NaN and infinities before the conversion.
    if (0.5..=10_000.0).contains(&ms) {
        Some(ms.round() as u32)
    } else {
        None
    }
}

/// `a=rtcp:<port> [IN IP4|IP6 <address>]` (RFC 3605).
pub(crate) fn rtcp(value: &str) -> Option<(u16, Option<IpAddr>)> {
    let mut fields = value.split_ascii_whitespace();
    let port = fields.next()?.parse::<u16>().ok()?;
    let address = match (fields.next(), fields.next(), fields.next()) {
        (Some("IN"), Some("IP4" | "IP6"), Some(addr)) => Some(addr.parse::<IpAddr>().ok()?),
        _ => None,
    };
    Some((port, address))
}

fn payload_type(token: &str) -> Option<u8> {
    token.trim().parse::<u8>().ok().filter(|pt| *pt <= 127)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rtpmap() {
        assert_eq!(
            rtpmap("0 PCMU/8000"),
            Some(RtpMap {
                pt: 0,
                encoding: "PCMU",
                clock_rate: Some(8000),
                channels: 1
            })
        );
        assert_eq!(rtpmap("111 opus/48000/2").map(|m| m.channels), Some(2));
        assert_eq!(rtpmap("31 LPC").map(|m| m.clock_rate), Some(None));
        for bad in [
            "",
            "x PCMU/8000",
            "200 PCMU/8000",
            "0",
            "0 /8000",
            "0 PCMU/0",
            "0 PCMU/8000/0",
        ] {
            assert_eq!(rtpmap(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn reads_fmtp_ptime_and_rtcp() {
        assert_eq!(fmtp("101 0-16"), Some((101, "0-16")));
        assert_eq!(fmtp("101"), Some((101, "")));
        assert_eq!(fmtp("abc 0-16"), None);
        assert_eq!(milliseconds("30"), Some(30));
        assert_eq!(milliseconds("20.0"), Some(20));
        for bad in ["0", "-20", "abc", "NaN", "inf", "99999999999"] {
            assert_eq!(milliseconds(bad), None, "{bad:?}");
        }
        assert_eq!(rtcp("53021"), Some((53021, None)));
        assert_eq!(
            rtcp("53021 IN IP4 126.16.64.4"),
            Some((53021, Some("126.16.64.4".parse().unwrap())))
        );
        assert_eq!(rtcp("port"), None);
    }
}
