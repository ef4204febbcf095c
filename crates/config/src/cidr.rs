//! IP networks in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`, or a bare address for one
//! host), as `sip.trusted` and a route's `from_networks` list them.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IPv4 or IPv6 network: an address whose host bits are zero and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a string is not a network; the message says what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrError(String);

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CidrError {}

impl Cidr {
    /// The network of `addr` with `prefix` bits; None when the prefix is longer than the
    /// address (over 32 for IPv4, over 128 for IPv6). Host bits are cleared.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Cidr> {
        let max = max_prefix(addr);
        (prefix <= max).then(|| Cidr {
            network: mask(addr, prefix),
            prefix,
        })
    }

    /// The network address (host bits zero).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// True when `ip` is inside this network. An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`,
    /// as a dual-stack socket reports IPv4 peers) is matched as the IPv4 address it carries.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        if ip.is_ipv4() != self.network.is_ipv4() {
            return false;
        }
        mask(ip, self.prefix) == self.network
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & m).into())
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// `ADDRESS/PREFIX` or a bare `ADDRESS` (one host: /32 or /128). The address's host bits
    /// must be zero, so that `192.168.1.10/24` (a typo for a host, or for the network?) is
    /// refused rather than guessed.
    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let text = s.trim();
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text.parse().map_err(|_| {
            CidrError(format!(
                "{addr_text:?} is not an IP address (expected \"10.0.0.0/8\", \"2001:db8::/32\" or a single address)"
            ))
        })?;
        let max = max_prefix(addr);
        let prefix = match prefix_text {
            None => max,
            Some(p) => {
                // Digits only: u8's parser would take "+8", and nothing here takes " 8".
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(CidrError(format!(
                        "prefix length {p:?} is not a number from 0 to {max}"
                    )));
                }
                let n: u16 = p.parse().unwrap_or(u16::MAX);
                if n > u16::from(max) {
                    return Err(CidrError(format!(
                        "prefix length {n} is over {max} for {addr}"
                    )));
                }
                n as u8
            }
        };
        let cidr = Cidr::new(addr, prefix)
            .ok_or_else(|| CidrError(format!("prefix length {prefix} is over {max} for {addr}")))?;
        if cidr.network != addr {
            return Err(CidrError(format!(
                "{addr} has host bits set for /{prefix}: the network is {}/{prefix}",
                cidr.network
            )));
        }
        Ok(cidr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_v4_v6_and_single_hosts() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert_eq!((c.network(), c.prefix()), (ip("10.0.0.0"), 8));
        assert_eq!(c.to_string(), "10.0.0.0/8");
        let c: Cidr = "2001:db8::/32".parse().unwrap();
        assert_eq!(c.to_string(), "2001:db8::/32");
        assert_eq!(
            "127.0.0.1".parse::<Cidr>().unwrap().to_string(),
            "127.0.0.1/32"
        );
        assert_eq!("::1".parse::<Cidr>().unwrap().to_string(), "::1/128");
        assert_eq!(" 0.0.0.0/0 ".parse::<Cidr>().unwrap().prefix(), 0);
        assert_eq!("::/0".parse::<Cidr>().unwrap().prefix(), 0);
        assert_eq!("10.1.2.3/32".parse::<Cidr>().unwrap().prefix(), 32);
        assert_eq!("::1/128".parse::<Cidr>().unwrap().prefix(), 128);
    }

    #[test]
    fn hostile_inputs_are_errors_never_panics() {
        for bad in [
            "10.0.0.0/33",
            "::1/129",
            "::/255",
            "10.0.0.0/256",
            "10.0.0.0/99999999999999999999",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "10.0.0.0/ 8",
            "10.0.0.0/",
            "10.0.0.0/8/8",
            "/8",
            "",
            " ",
            "garbage",
            "10.0.0",
            "10.0.0.256/24",
            "1.2.3.4.5/32",
            "[::1]/128",
            "::1%lo/128",
            "fe80::1%eth0",
            "10.0.0.1/8",
            "192.168.1.10/24",
            "2001:db8::1/32",
            "١٠.0.0.0/8",
            "10.0.0.0/٨",
            "10.0.0.0/\u{0}",
            "\u{feff}10.0.0.0/8",
        ] {
            let err = bad.parse::<Cidr>();
            assert!(err.is_err(), "{bad:?} parsed as {err:?}");
            assert!(!err.unwrap_err().to_string().is_empty());
        }
        let err = "10.0.0.0/33".parse::<Cidr>().unwrap_err().to_string();
        assert!(err.contains("33") && err.contains("32"), "{err}");
        let err = "10.0.0.1/8".parse::<Cidr>().unwrap_err().to_string();
        assert!(err.contains("10.0.0.0/8"), "{err}");
    }

    #[test]
    fn contains_matches_by_prefix() {
        let lan: Cidr = "192.168.0.0/16".parse().unwrap();
        assert!(lan.contains(ip("192.168.0.0")));
        assert!(lan.contains(ip("192.168.255.255")));
        assert!(!lan.contains(ip("192.169.0.0")));
        assert!(!lan.contains(ip("::1")));
        let host: Cidr = "127.0.0.1/32".parse().unwrap();
        assert!(host.contains(ip("127.0.0.1")));
        assert!(!host.contains(ip("127.0.0.2")));
        let all4: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all4.contains(ip("203.0.113.9")));
        assert!(!all4.contains(ip("2001:db8::1")));
        let all6: Cidr = "::/0".parse().unwrap();
        assert!(all6.contains(ip("2001:db8::1")));
        let v6: Cidr = "2001:db8:1::/48".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1:ffff::1")));
        assert!(!v6.contains(ip("2001:db8:2::1")));
        let odd: Cidr = "10.0.0.128/25".parse().unwrap();
        assert!(odd.contains(ip("10.0.0.200")));
        assert!(!odd.contains(ip("10.0.0.127")));
    }

    #[test]
    fn ipv4_mapped_sources_match_ipv4_networks() {
        let lan: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(lan.contains(ip("::ffff:10.1.2.3")));
        assert!(!lan.contains(ip("::ffff:11.1.2.3")));
        let loopback6: Cidr = "::1/128".parse().unwrap();
        assert!(!loopback6.contains(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn new_rejects_long_prefixes_and_clears_host_bits() {
        assert!(Cidr::new(ip("10.0.0.0"), 33).is_none());
        assert!(Cidr::new(ip("::"), 129).is_none());
        assert_eq!(
            Cidr::new(ip("10.9.8.7"), 8).unwrap().network(),
            ip("10.0.0.0")
        );
    }
}
