//! Where provider requests may go.
//!
//! A provider's base URL is chosen by any organization admin, and the worker sends it a POST
//! with a bearer secret and relays the answer (or its error message) to the user. Without a
//! guard, a base URL such as `http://cloud-api:4000/…` or `http://169.254.169.254/…` would turn
//! the worker into a proxy into the cluster network. Unless private networks are allowed
//! (development, self-hosted models), every address a provider host resolves to must be a
//! public unicast address: checked before the request for a clear error, and enforced again by
//! the client's resolver at connect time so a DNS answer that changes in between (rebinding)
//! cannot slip through. Redirects are never followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether a worker may reach this address on behalf of an organization.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // Shared address space (carrier-grade NAT, also used by some cluster networks).
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments and benchmarking.
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // Unique local fc00::/7 and link-local fe80::/10.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        // Documentation 2001:db8::/32.
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        // NAT64 64:ff9b::/96 embeds IPv4 addresses that were not checked.
        || (first == 0x0064 && ip.segments()[1] == 0xff9b))
}

/// Why a provider address was refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Checks a provider URL before any request: scheme, and every address its host names.
pub async fn check_url(url: &url::Url) -> Result<(), Refused> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refused(format!(
            "the provider base URL must be http or https, not {:?}",
            url.scheme()
        )));
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(ip.into(), port)],
        Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(ip.into(), port)],
        Some(url::Host::Domain(host)) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| Refused(format!("the provider host {host:?} does not resolve")))?
            .collect(),
        None => return Err(Refused("the provider base URL has no host".to_owned())),
    };
    // The address itself is not shown: it would tell an organization admin what names resolve
    // to inside the cluster.
    match addrs.iter().find(|a| !is_public(a.ip())) {
        Some(_) => Err(Refused(
            "the provider host resolves to a private or reserved address; cloud turns only \
             reach public addresses"
                .to_owned(),
        )),
        None if addrs.is_empty() => Err(Refused("the provider host has no address".to_owned())),
        None => Ok(()),
    }
}

/// The HTTP client's resolver: system DNS with every non-public address removed.
pub struct PublicOnlyResolver;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = all.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(
                    Box::new(Refused(format!("{} has no public address", name.as_str())))
                        as Box<dyn std::error::Error + Send + Sync>,
                );
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_and_reserved_addresses_are_not_public() {
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(!is_public(ip(s)), "{s} must not be public");
        }
        for s in [
            "8.8.8.8",
            "1.1.1.1",
            "104.18.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip(s)), "{s} is public");
        }
    }

    #[tokio::test]
    async fn literal_and_resolved_private_hosts_are_refused_with_a_reason() {
        for url in [
            "http://127.0.0.1:11434/v1",
            "http://[::1]/v1",
            "http://169.254.169.254/latest",
            "http://localhost:4000/v1",
        ] {
            let err = check_url(&url::Url::parse(url).unwrap()).await.unwrap_err();
            assert!(err.0.contains("private or reserved"), "{url}: {err}");
            for leaked in ["127.0.0.1", "::1", "169.254"] {
                assert!(
                    !err.0.contains(leaked) || url.contains(leaked),
                    "{url}: the resolved address leaks: {err}"
                );
            }
        }
        let err = check_url(&url::Url::parse("file:///etc/passwd").unwrap())
            .await
            .unwrap_err();
        assert!(err.0.contains("http or https"), "{err}");
        assert!(
            check_url(&url::Url::parse("https://8.8.8.8/v1").unwrap())
                .await
                .is_ok()
        );
    }
}
