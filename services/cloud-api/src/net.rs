//! Which address a request comes from, for per-IP rate limits (pure: no request types).
//!
//! Behind an ingress every connection comes from the ingress pods, so keying on the socket
//! peer would put all users in one bucket (one user's burst would lock out everybody).
//! `X-Forwarded-For` is attacker-controlled, though: it is read only when the peer is a
//! configured trusted proxy, and then from the right, skipping trusted hops, so the address
//! used is the last one a trusted proxy saw — a client cannot choose it by prepending values.

use std::net::IpAddr;
use std::str::FromStr;

/// One `address/prefix` network (a bare address is a /32 or /128). The arithmetic is the
/// `ipnet` crate's; this wrapper adds bare addresses and IPv4-mapped IPv6 peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet(ipnet::IpNet);

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&canonical(ip))
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let net = match s.split_once('/') {
            Some((addr, prefix)) => {
                let addr = canonical(
                    addr.parse::<IpAddr>()
                        .map_err(|_| format!("{s:?} is not an IP address or CIDR network"))?,
                );
                let max = if addr.is_ipv4() { 32 } else { 128 };
                let prefix = prefix
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= max)
                    .ok_or_else(|| format!("{s:?} has a prefix length outside 0-{max}"))?;
                ipnet::IpNet::new(addr, prefix).map_err(|e| format!("{s:?}: {e}"))?
            }
            None => ipnet::IpNet::from(canonical(
                s.parse::<IpAddr>()
                    .map_err(|_| format!("{s:?} is not an IP address or CIDR network"))?,
            )),
        };
        Ok(Self(net))
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what a dual-stack socket reports) compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The proxies whose `X-Forwarded-For` is believed (`CHATONS_TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(nets)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }

    /// The client address of a request that arrived from `peer` with these
    /// `X-Forwarded-For` values (all header lines, in order).
    pub fn client_of<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl Iterator<Item = &'a str>,
    ) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            // An unparsable hop means the chain can no longer be followed: stop at the last
            // address a trusted proxy vouched for.
            let Ok(ip) = hop.trim().parse::<IpAddr>().map(canonical) else {
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|s| s.parse().unwrap()).collect())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_parse_and_match() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(ip("10.200.3.4")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.1.2.3")));
        let odd: IpNet = "192.168.4.0/22".parse().unwrap();
        assert!(odd.contains(ip("192.168.7.255")));
        assert!(!odd.contains(ip("192.168.8.0")));
        let v6: IpNet = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        let one: IpNet = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        for bad in ["10.0.0.0/33", "nope", "::/129", "1.2.3.4/x"] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_ignored_from_an_untrusted_peer() {
        let p = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            p.client_of(ip("203.0.113.9"), ["1.2.3.4"].into_iter()),
            ip("203.0.113.9")
        );
        assert_eq!(
            TrustedProxies::default().client_of(ip("10.0.0.1"), ["1.2.3.4"].into_iter()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let p = proxies(&["10.0.0.0/8"]);
        // A client that forges a leading value does not get to choose its bucket.
        assert_eq!(
            p.client_of(
                ip("10.0.0.7"),
                ["6.6.6.6, 198.51.100.4", "10.1.1.1"].into_iter()
            ),
            ip("198.51.100.4")
        );
        // Only trusted hops: the leftmost one is as far as the chain goes.
        assert_eq!(
            p.client_of(ip("10.0.0.7"), ["10.2.2.2, 10.3.3.3"].into_iter()),
            ip("10.2.2.2")
        );
        // Garbage stops the walk at the last vouched-for address.
        assert_eq!(
            p.client_of(ip("10.0.0.7"), ["198.51.100.4, junk"].into_iter()),
            ip("10.0.0.7")
        );
        assert_eq!(
            p.client_of(ip("10.0.0.7"), std::iter::empty()),
            ip("10.0.0.7")
        );
    }
}
