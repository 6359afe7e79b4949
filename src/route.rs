//! Which virtual host answers a request, and which ProxyPass / ProxyPassMatch rule sends it
//! where. Pure functions over the config: no I/O, no state.

use std::net::SocketAddr;

use crate::config::{Config, Matcher, Target, VirtualHost};

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// No rule, or an excluding `ProxyPass PATH !`: 404.
    NotProxied,
    /// `path` is appended to the chosen member's own path.
    Backend { balancer: usize, path: Vec<u8> },
}

/// Apache's name-based virtual hosting: among vhosts whose address matches the local
/// address, the one whose ServerName/ServerAlias matches Host, else the first of them; the
/// main server when none matches the address.
pub fn select_vhost(cfg: &Config, local: SocketAddr, host: Option<&[u8]>) -> usize {
    let host = host.map(strip_port);
    let mut first = None;
    for (i, vh) in cfg.vhosts.iter().enumerate().skip(1) {
        let addr_match = vh.addrs.iter().any(|a| {
            a.port.is_none_or(|p| p == local.port()) && a.ip.is_none_or(|ip| ip == local.ip())
        });
        if !addr_match {
            continue;
        }
        first.get_or_insert(i);
        if let Some(h) = host {
            if name_matches(vh, h) {
                return i;
            }
        }
    }
    first.unwrap_or(0)
}

fn strip_port(host: &[u8]) -> &[u8] {
    if host.starts_with(b"[") {
        return match host.iter().position(|&b| b == b']') {
            Some(i) => &host[..=i],
            None => host,
        };
    }
    match host.iter().rposition(|&b| b == b':') {
        Some(i) => &host[..i],
        None => host,
    }
}

fn name_matches(vh: &VirtualHost, host: &[u8]) -> bool {
    let eq = |name: &str| {
        let name = strip_port(name.as_bytes());
        if let Some(suffix) = name.strip_prefix(b"*") {
            host.len() >= suffix.len()
                && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
        } else {
            name.eq_ignore_ascii_case(host)
        }
    };
    vh.server_name.as_deref().is_some_and(eq) || vh.aliases.iter().any(|a| eq(a))
}

/// First matching rule in config order wins (Apache's order for ProxyPass and
/// ProxyPassMatch). `target` is the request-target as received (path and query), matched
/// without decoding.
pub fn route(vh: &VirtualHost, target: &[u8]) -> Route {
    let (path, query) = match target.iter().position(|&b| b == b'?') {
        Some(i) => (&target[..i], Some(&target[i + 1..])),
        None => (target, None),
    };
    for rule in &vh.rules {
        let mut out = match &rule.matcher {
            Matcher::Prefix(prefix) => {
                if !path.starts_with(prefix.as_bytes()) {
                    continue;
                }
                match &rule.target {
                    Target::Exclude => return Route::NotProxied,
                    Target::Backend { template, .. } => {
                        let mut out = template.as_bytes().to_vec();
                        out.extend_from_slice(&path[prefix.len()..]);
                        out
                    }
                }
            }
            Matcher::Regex(re) => {
                // Non-UTF-8 paths (raw bytes >= 0x80) cannot match a str regex.
                let Ok(p) = std::str::from_utf8(path) else {
                    continue;
                };
                let Some(caps) = re.captures(p) else { continue };
                match &rule.target {
                    Target::Exclude => return Route::NotProxied,
                    Target::Backend { template, .. } => {
                        if template.contains('$') {
                            let mut s = String::new();
                            caps.expand(&dollar_digits(template), &mut s);
                            s.into_bytes()
                        } else {
                            // Apache: without a substitution the whole path is appended
                            // (mod_proxy.c, proxy_trans).
                            let mut out = template.as_bytes().to_vec();
                            out.extend_from_slice(path);
                            out
                        }
                    }
                }
            }
        };
        let Target::Backend {
            balancer, noquery, ..
        } = &rule.target
        else {
            return Route::NotProxied;
        };
        if let (Some(q), false) = (query, *noquery) {
            out.push(b'?');
            out.extend_from_slice(q);
        }
        return Route::Backend {
            balancer: *balancer,
            path: out,
        };
    }
    Route::NotProxied
}

/// The regex crate reads `$1a` as a group named `1a`; Apache means group 1 then `a`.
/// Bracing every `$N` gives Apache's meaning.
fn dollar_digits(template: &str) -> String {
    let mut out = String::with_capacity(template.len() + 8);
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' {
            if let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                chars.next();
                out.push_str("${");
                out.push(d);
                out.push('}');
                continue;
            }
            out.push_str("$$");
            continue;
        }
        out.push(c);
    }
    out
}

/// The request-target sent to a member: its own path, then the routed path; never empty.
pub fn backend_target(member_path: &str, routed: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(member_path.as_bytes());
    if !routed.is_empty() && routed[0] != b'/' && routed[0] != b'?' {
        out.push(b'/');
    }
    out.extend_from_slice(routed);
    if out.is_empty() || out[0] == b'?' {
        out.insert(0, b'/');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_str, LoadOptions};

    fn cfg(text: &str) -> Config {
        load_str(text, "t", &LoadOptions::default()).unwrap()
    }

    fn routed(c: &Config, target: &str) -> Option<String> {
        match route(&c.vhosts[0], target.as_bytes()) {
            Route::NotProxied => None,
            Route::Backend { path, .. } => Some(String::from_utf8(path).unwrap()),
        }
    }

    #[test]
    fn proxypass_table() {
        let c = cfg("Listen 80\n<Proxy balancer://c>\nBalancerMember http://127.0.0.1:1\n</Proxy>\nProxyPass /static !\nProxyPass /api/ balancer://c/v1/\nProxyPass /nq/ balancer://c/ noquery\nProxyPassMatch ^/img/(.*)\\.png$ balancer://c/images/$1.webp\nProxyPassMatch \\.gif$ balancer://c\nProxyPass / balancer://c/\n");
        let cases = [
            ("/static/a.css", None),
            ("/api/users?id=1", Some("/v1/users?id=1")),
            ("/nq/x?secret=1", Some("/x")),
            ("/img/cat.png", Some("/images/cat.webp")),
            ("/a/b.gif?x", Some("/a/b.gif?x")),
            ("/other", Some("/other")),
        ];
        for (target, want) in cases {
            assert_eq!(routed(&c, target).as_deref(), want, "{target}");
        }
    }

    #[test]
    fn proxypassmatch_issue_example() {
        let c = cfg("Listen 80\n<Proxy balancer://mycluster>\nBalancerMember http://127.0.0.1:1\n</Proxy>\nProxyPass /static !\nProxyPassMatch ^(/.*)$ balancer://mycluster$1\n");
        assert_eq!(routed(&c, "/x/y?q=1").as_deref(), Some("/x/y?q=1"));
        assert_eq!(routed(&c, "/static/z"), None);
    }

    #[test]
    fn vhost_selection() {
        let c = cfg("Listen 127.0.0.1:8080\nListen 127.0.0.1:8081\n<VirtualHost *:8080>\nServerName a.example\n</VirtualHost>\n<VirtualHost *:8080>\nServerName b.example\nServerAlias *.b.example\n</VirtualHost>\n<VirtualHost 127.0.0.1:8081>\n</VirtualHost>\n");
        let l80: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let l81: SocketAddr = "127.0.0.1:8081".parse().unwrap();
        let l82: SocketAddr = "127.0.0.1:8082".parse().unwrap();
        assert_eq!(select_vhost(&c, l80, Some(b"b.example:8080")), 2);
        assert_eq!(select_vhost(&c, l80, Some(b"x.b.example")), 2);
        assert_eq!(select_vhost(&c, l80, Some(b"unknown")), 1);
        assert_eq!(select_vhost(&c, l80, None), 1);
        assert_eq!(select_vhost(&c, l81, Some(b"a.example")), 3);
        assert_eq!(select_vhost(&c, l82, None), 0);
    }

    #[test]
    fn backend_target_joins_paths() {
        let mut out = Vec::new();
        let cases = [
            ("", "/x", "/x"),
            ("/app", "/x", "/app/x"),
            ("/app", "", "/app"),
            ("", "", "/"),
            ("", "?q", "/?q"),
            ("/app", "x", "/app/x"),
        ];
        for (member, routed, want) in cases {
            backend_target(member, routed.as_bytes(), &mut out);
            assert_eq!(out, want.as_bytes(), "{member} + {routed}");
        }
    }
}
