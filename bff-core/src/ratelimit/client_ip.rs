//! The client's IP address: the socket peer, unless the peer is a configured trusted proxy, in which case the
//! configured forwarding header is read and the **rightmost address that is not a trusted proxy** wins. Every
//! address left of it was written by the client itself and is ignored, so rotating forged forwarding headers
//! never changes the client's rate-limit bucket.

use std::net::{IpAddr, Ipv6Addr};

use axum::http::HeaderMap;
use ipnet::IpNet;

use super::config::{ClientIpConfig, ForwardedHeader};

/// Resolves client addresses per [`ClientIpConfig`].
#[derive(Debug, Clone)]
pub(crate) struct ClientIpResolver {
    /// Peers whose forwarding headers are believed.
    trusted: Vec<IpNet>,
    /// The one header the trusted proxies set.
    header: ForwardedHeader,
    /// IPv6 clients are bucketed by this prefix (a host usually owns a whole /64).
    ipv6_prefix_len: u8,
}

impl ClientIpResolver {
    /// From validated config (unparsable entries were rejected by validation and are skipped here).
    pub(crate) fn new(config: &ClientIpConfig) -> Self {
        Self {
            trusted: config
                .trusted_proxies
                .iter()
                .filter_map(|s| parse_net(s))
                .collect(),
            header: config.header,
            ipv6_prefix_len: config.ipv6_prefix_len.min(128),
        }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client address of a request that came from `peer` with `headers`.
    pub(crate) fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.is_trusted(peer) {
            return peer;
        }
        let chain = match self.header {
            ForwardedHeader::XForwardedFor => list_header(headers, "x-forwarded-for", parse_xff),
            ForwardedHeader::Forwarded => list_header(headers, "forwarded", parse_forwarded),
            ForwardedHeader::XRealIp => list_header(headers, "x-real-ip", parse_xff),
        };
        // Walk from the right (nearest hop) over trusted proxies; the first other address is the client.
        // An unparsable entry cannot have been written by a trusted proxy: stop and keep the nearest hop.
        let mut client = peer;
        for entry in chain.iter().rev() {
            match entry {
                Some(ip) => {
                    client = ip.to_canonical();
                    if !self.is_trusted(client) {
                        return client;
                    }
                }
                None => return client,
            }
        }
        client
    }

    /// The bucket key of `ip`: IPv4 as is, IPv6 truncated to the configured prefix.
    pub(crate) fn bucket(&self, ip: IpAddr) -> String {
        match ip {
            IpAddr::V4(v4) => {
                // As `Display` writes it, without the formatting machinery (once per limited request).
                let mut out = String::with_capacity(15);
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        out.push('.');
                    }
                    super::push_decimal(&mut out, u64::from(octet));
                }
                out
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                let len = u32::from(self.ipv6_prefix_len);
                let masked = if len == 0 {
                    0
                } else {
                    bits & (u128::MAX << (128 - len))
                };
                format!("{}/{}", Ipv6Addr::from(masked), len)
            }
        }
    }
}

/// Parses `10.0.0.0/8`, `::1/128` or a bare address (a single host).
pub(crate) fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// All comma-separated entries of every instance of `name`, in order, parsed with `parse`.
fn list_header(
    headers: &HeaderMap,
    name: &str,
    parse: fn(&str) -> Option<IpAddr>,
) -> Vec<Option<IpAddr>> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| {
            v.to_str()
                .map(|s| s.split(',').map(parse).collect::<Vec<_>>())
                .unwrap_or_else(|_| vec![None])
        })
        .collect()
}

/// One `X-Forwarded-For` / `X-Real-IP` entry: an address, optionally `[v6]:port` or `v4:port`.
fn parse_xff(entry: &str) -> Option<IpAddr> {
    parse_node(entry.trim())
}

/// The `for=` node of one RFC 7239 `Forwarded` element.
fn parse_forwarded(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("for") {
            return None;
        }
        parse_node(value.trim().trim_matches('"'))
    })
}

/// An address with an optional port: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:80`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn resolver(trusted: &[&str], header: ForwardedHeader) -> ClientIpResolver {
        ClientIpResolver::new(&ClientIpConfig {
            trusted_proxies: trusted.iter().map(|s| s.to_string()).collect(),
            header,
            ipv6_prefix_len: 64,
        })
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// An untrusted peer is the client, whatever forwarding headers it sends.
    #[test]
    fn untrusted_peer_headers_are_ignored() {
        let r = resolver(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("forwarded", "for=2.2.2.2"),
            ("x-real-ip", "3.3.3.3"),
        ]);
        assert_eq!(r.resolve(ip("203.0.113.9"), &h), ip("203.0.113.9"));
    }

    /// Behind trusted proxies the rightmost untrusted address wins; forged entries to its left do not count.
    #[test]
    fn rightmost_untrusted_address() {
        let r = resolver(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.2")]);
        assert_eq!(r.resolve(ip("10.0.0.1"), &h), ip("198.51.100.7"));
        // Two header instances are one list.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        assert_eq!(r.resolve(ip("10.0.0.1"), &h), ip("198.51.100.7"));
        // Garbage where a proxy should have written an address: keep the nearest known hop.
        let h = headers(&[("x-forwarded-for", "198.51.100.7, nonsense")]);
        assert_eq!(r.resolve(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        // No header: the proxy itself.
        assert_eq!(r.resolve(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
        // Only the configured header is read.
        let h = headers(&[("x-real-ip", "198.51.100.7")]);
        assert_eq!(r.resolve(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    /// RFC 7239 `Forwarded` with quoted IPv6 and ports, and `X-Real-IP`.
    #[test]
    fn forwarded_and_real_ip() {
        let r = resolver(&["10.0.0.1"], ForwardedHeader::Forwarded);
        let h = headers(&[(
            "forwarded",
            "for=6.6.6.6;proto=http, for=\"[2001:db8::7]:4711\";by=10.0.0.1",
        )]);
        assert_eq!(r.resolve(ip("10.0.0.1"), &h), ip("2001:db8::7"));
        let r = resolver(&["10.0.0.1"], ForwardedHeader::XRealIp);
        let h = headers(&[("x-real-ip", "198.51.100.7:1234")]);
        assert_eq!(r.resolve(ip("10.0.0.1"), &h), ip("198.51.100.7"));
    }

    /// IPv6 clients share the bucket of their /64; IPv4-mapped peers count as IPv4.
    #[test]
    fn buckets() {
        let r = resolver(&[], ForwardedHeader::XForwardedFor);
        assert_eq!(r.bucket(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(r.bucket(ip("2001:db8:1:2:bbbb::9")), "2001:db8:1:2::/64");
        for v4 in ["0.0.0.0", "127.0.0.1", "192.0.2.10", "255.255.255.255"] {
            assert_eq!(r.bucket(ip(v4)), v4);
        }
        assert_eq!(
            r.resolve(ip("::ffff:192.0.2.1"), &HeaderMap::new()),
            ip("192.0.2.1")
        );
    }
}
