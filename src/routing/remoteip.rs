//! mod_remoteip: the client's address from a header set by trusted proxies (a cloud load
//! balancer's `X-Forwarded-For`), for access rules, logs, X-Forwarded-For and hashing, as
//! Apache's mod_remoteip decides it.
//!
//! The header's addresses are read right to left, each presented by the address before it
//! (first the connection's peer). With proxy lists (`RemoteIPInternalProxy`,
//! `RemoteIPTrustedProxy`), reading stops at the first presenter that is not a listed proxy:
//! the address it presented is the client's. Without lists every presenter is trusted.
//! A presenter that is not internal may not present a private address (nor an IPv6 one
//! outside 2000::/3); an internal proxy may present an external one, never the reverse.
//! What was not read stays in the header; the addresses of trusted (not internal) proxies
//! passed go to `RemoteIPProxiesHeader`. Names are never looked up: a value that is not an
//! address stops the reading.

use std::net::IpAddr;

use crate::routing::access::Net;

/// One server's mod_remoteip settings.
#[derive(Clone, Debug, Default)]
pub struct RemoteIpConfig {
    /// `RemoteIPHeader` (none: the module is off for the server).
    pub header: Option<String>,
    /// `RemoteIPInternalProxy` (true) and `RemoteIPTrustedProxy` (false) networks, in order.
    pub proxies: Vec<(Net, bool)>,
    /// `RemoteIPProxiesHeader`.
    pub proxies_header: Option<String>,
}

/// What the header said.
#[derive(Debug, PartialEq, Eq)]
pub struct Found {
    pub ip: IpAddr,
    /// The header's part that was not read (`None`: the header goes).
    pub rest: Option<String>,
    /// The trusted proxies passed, comma-separated, for `RemoteIPProxiesHeader`.
    pub proxies: Option<String>,
}

/// Addresses a proxy on the internet cannot vouch for (RFC 1918, loopback, link-local;
/// IPv6 outside global unicast), as mod_remoteip tests them.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(o[0] == 10
                || o[0] == 127
                || (o[0] == 169 && o[1] == 254)
                || (o[0] == 172 && (o[1] & 0xf0) == 16)
                || (o[0] == 192 && o[1] == 168))
        }
        IpAddr::V6(v6) => v6.octets()[0] & 0xe0 == 0x20,
    }
}

/// Maps `::ffff:a.b.c.d` to `a.b.c.d`, as Apache reads an IPv4 address over IPv6.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client's address from the header's `value` (its lines joined with `, `) on a
/// connection from `peer`; `None` when nothing changes.
pub fn evaluate(cfg: &RemoteIpConfig, peer: IpAddr, value: &str) -> Option<Found> {
    let listed = !cfg.proxies.is_empty();
    let mut internal = listed;
    let mut presenter = canonical(peer);
    let mut rest = Some(value);
    let mut proxies: Vec<String> = Vec::new();
    let mut changed = false;
    while let Some(remaining) = rest {
        if listed {
            match cfg.proxies.iter().find(|(net, _)| net.contains(presenter)) {
                // Once an external proxy presented, later ones count as external too.
                Some((_, is_internal)) => internal = internal && *is_internal,
                None => break,
            }
        }
        let (left, candidate) = match remaining.rsplit_once(',') {
            Some((l, c)) => (Some(l), c),
            None => (None, remaining),
        };
        let Ok(ip) = candidate.trim_matches(' ').parse::<IpAddr>().map(canonical) else {
            break;
        };
        if !internal && !is_public(ip) {
            break;
        }
        if !internal {
            proxies.push(presenter.to_string());
        }
        presenter = ip;
        rest = left;
        changed = true;
    }
    changed.then(|| Found {
        ip: presenter,
        rest: rest
            .map(|r| r.trim_end_matches(' ').to_string())
            .filter(|r| !r.is_empty()),
        proxies: (!proxies.is_empty()).then(|| proxies.join(", ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(internal: &[&str], trusted: &[&str]) -> RemoteIpConfig {
        let mut proxies = Vec::new();
        for n in internal {
            proxies.push((Net::parse(n).unwrap(), true));
        }
        for n in trusted {
            proxies.push((Net::parse(n).unwrap(), false));
        }
        RemoteIpConfig {
            header: Some("X-Forwarded-For".into()),
            proxies,
            proxies_header: None,
        }
    }

    fn found(ip: &str, rest: Option<&str>, proxies: Option<&str>) -> Option<Found> {
        Some(Found {
            ip: ip.parse().unwrap(),
            rest: rest.map(str::to_string),
            proxies: proxies.map(str::to_string),
        })
    }

    #[test]
    fn addresses_are_read_as_mod_remoteip_reads_them() {
        let lb = cfg(&["10.0.0.0/8"], &[]);
        let cdn = cfg(&["10.0.0.0/8"], &["203.0.113.0/24"]);
        let open = cfg(&[], &[]);
        type Case<'a> = (&'a str, &'a RemoteIpConfig, &'a str, &'a str, Option<Found>);
        let cases: Vec<Case> = vec![
            (
                "internal LB presents the client",
                &lb,
                "10.1.1.1",
                "198.51.100.7",
                found("198.51.100.7", None, None),
            ),
            (
                "internal LB may present a private client",
                &lb,
                "10.1.1.1",
                "192.168.1.9",
                found("192.168.1.9", None, None),
            ),
            (
                "a client-written value left of the LB's stays",
                &lb,
                "10.1.1.1",
                "1.2.3.4, 198.51.100.7",
                found("198.51.100.7", Some("1.2.3.4"), None),
            ),
            (
                "a chain of internal proxies",
                &lb,
                "10.1.1.1",
                "1.2.3.4, 198.51.100.7, 10.2.2.2",
                found("198.51.100.7", Some("1.2.3.4"), None),
            ),
            (
                "peer not a listed proxy: nothing changes",
                &lb,
                "198.51.100.99",
                "1.2.3.4",
                None,
            ),
            (
                "garbage stops the reading",
                &lb,
                "10.1.1.1",
                "1.2.3.4, unknown",
                None,
            ),
            (
                "a name is not looked up",
                &lb,
                "10.1.1.1",
                "client.example",
                None,
            ),
            ("empty header", &lb, "10.1.1.1", "", None),
            (
                "an external proxy is recorded",
                &cdn,
                "10.1.1.1",
                "198.51.100.7, 203.0.113.5",
                found("198.51.100.7", None, Some("203.0.113.5")),
            ),
            (
                "an external proxy cannot present a private address",
                &cdn,
                "10.1.1.1",
                "192.168.0.3, 203.0.113.5",
                found("203.0.113.5", Some("192.168.0.3"), None),
            ),
            (
                "without lists every presenter is trusted, public only",
                &open,
                "127.0.0.1",
                "198.51.100.7",
                found("198.51.100.7", None, Some("127.0.0.1")),
            ),
            (
                "without lists a private value stops",
                &open,
                "127.0.0.1",
                "10.9.9.9",
                None,
            ),
            (
                "IPv4 over IPv6 is IPv4",
                &lb,
                "::ffff:10.1.1.1",
                "::ffff:198.51.100.7",
                found("198.51.100.7", None, None),
            ),
            (
                "IPv6 client",
                &lb,
                "10.1.1.1",
                "2001:db8::1",
                found("2001:db8::1", None, None),
            ),
            (
                "spaces around values",
                &lb,
                "10.1.1.1",
                " 1.2.3.4 ,  198.51.100.7 ",
                found("198.51.100.7", Some(" 1.2.3.4"), None),
            ),
        ];
        for (name, cfg, peer, value, want) in cases {
            assert_eq!(evaluate(cfg, peer.parse().unwrap(), value), want, "{name}");
        }
    }
}
