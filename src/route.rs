//! Which virtual host answers a request, and which ProxyPass / ProxyPassMatch rule sends it
//! where. Pure functions over the config: no I/O, no state.

use std::net::SocketAddr;

use crate::config::{
    CondPattern, Config, Matcher, RewriteAction, RewriteRule, RewriteVar, Target, VirtualHost,
};

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
/// mod_rewrite's `fully_qualify_uri`: an `[R]` target that is a local path becomes
/// `http://NAME[:PORT]/path`. With UseCanonicalName Off (Apache's default) NAME and PORT
/// come from the request's Host header, else from the server's name; port 80 is left out.
pub fn fully_qualify(location: String, host: Option<&[u8]>, server_name: &str) -> String {
    if is_absolute_uri(&location) {
        return location;
    }
    let authority = host
        .and_then(|h| std::str::from_utf8(h).ok())
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .unwrap_or(server_name);
    let (name, port) = split_authority(authority);
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let mut out = format!("http://{name}");
    if let Some(p) = port.filter(|p| *p != 80) {
        out.push(':');
        out.push_str(&p.to_string());
    }
    if !location.starts_with('/') {
        out.push('/');
    }
    out.push_str(&location);
    out
}

/// `name[:port]` or `[v6]:port`; a port that is not a number is treated as absent.
fn split_authority(a: &str) -> (&str, Option<u16>) {
    if a.starts_with('[') {
        return match a.find(']') {
            Some(i) => (
                &a[..=i],
                a[i + 1..].strip_prefix(':').and_then(|p| p.parse().ok()),
            ),
            None => (a, None),
        };
    }
    match a.rsplit_once(':') {
        Some((n, p)) => (n, p.parse().ok()),
        None => (a, None),
    }
}

/// A URL with a scheme (`http://…`, `ws://…`, `mailto:…`), which `[R]` sends as it is.
fn is_absolute_uri(s: &str) -> bool {
    let lower = s.get(..7).unwrap_or(s).to_ascii_lowercase();
    if lower.starts_with("mailto:") || lower.starts_with("news:") {
        return true;
    }
    match s.find("://") {
        Some(i) => {
            i > 0
                && s[..i]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => false,
    }
}

pub fn route(vh: &VirtualHost, target: &[u8]) -> Route {
    let mut path = Vec::new();
    match route_into(vh, target, &mut path) {
        Some(balancer) => Route::Backend { balancer, path },
        None => Route::NotProxied,
    }
}

/// [`route`] without an allocation per request: the backend path is written into `out`
/// (cleared first), a buffer the connection keeps. `None`: not proxied.
pub fn route_into(vh: &VirtualHost, target: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    out.clear();
    let (path, query) = match target.iter().position(|&b| b == b'?') {
        Some(i) => (&target[..i], Some(&target[i + 1..])),
        None => (target, None),
    };
    for rule in &vh.rules {
        match &rule.matcher {
            Matcher::Prefix(prefix) => {
                if !path.starts_with(prefix.as_bytes()) {
                    continue;
                }
                match &rule.target {
                    Target::Exclude => return None,
                    Target::Backend { template, .. } => {
                        out.extend_from_slice(template.as_bytes());
                        out.extend_from_slice(&path[prefix.len()..]);
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
                    Target::Exclude => return None,
                    Target::Backend { template, .. } => {
                        if template.contains('$') {
                            let mut s = String::new();
                            caps.expand(&dollar_digits(template), &mut s);
                            out.extend_from_slice(s.as_bytes());
                        } else {
                            // Apache: without a substitution the whole path is appended
                            // (mod_proxy.c, proxy_trans).
                            out.extend_from_slice(template.as_bytes());
                            out.extend_from_slice(path);
                        }
                    }
                }
            }
        }
        let Target::Backend {
            balancer, noquery, ..
        } = &rule.target
        else {
            return None;
        };
        if let (Some(q), false) = (query, *noquery) {
            out.push(b'?');
            out.extend_from_slice(q);
        }
        return Some(*balancer);
    }
    None
}

/// What a RewriteRule decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Rewritten {
    /// `[P]`: like a ProxyPass match.
    Proxy {
        balancer: usize,
        path: Vec<u8>,
    },
    Redirect {
        status: u16,
        location: String,
    },
    Status(u16),
}

/// The request as RewriteCond sees it.
pub struct RewriteInput<'a> {
    pub target: &'a [u8],
    pub method: &'a [u8],
    /// A request header's value by lower-case name.
    pub header: &'a dyn Fn(&str) -> Option<&'a [u8]>,
}

/// mod_rewrite's server-context processing for the supported subset: rules in order, each
/// matched against the URL path, then its conditions; the first rule that applies decides.
/// `None`: no rule applied (ProxyPass rules come next).
pub fn rewrite(vh: &VirtualHost, input: &RewriteInput<'_>) -> Option<Rewritten> {
    if !vh.rewrite_engine || vh.rewrites.is_empty() {
        return None;
    }
    let (path, query) = match input.target.iter().position(|&b| b == b'?') {
        Some(i) => (&input.target[..i], Some(&input.target[i + 1..])),
        None => (input.target, None),
    };
    let path = std::str::from_utf8(path).ok()?;
    let query = query.map(|q| String::from_utf8_lossy(q).into_owned());
    for rule in &vh.rewrites {
        let rule_caps: Vec<Option<String>> = match rule.pattern.captures(path) {
            Some(_) if rule.negate => continue,
            Some(c) => c
                .iter()
                .map(|m| m.map(|m| m.as_str().to_string()))
                .collect(),
            None if rule.negate => Vec::new(),
            None => continue,
        };
        let Some(cond_caps) = conditions_hold(rule, input, path, query.as_deref()) else {
            continue;
        };
        let expand = |t: &str| expand_refs(t, &rule_caps, &cond_caps);
        let with_query = |mut s: String| {
            let has_q = s.contains('?');
            match (&query, rule.qsd) {
                (_, true) => {
                    if let Some(i) = s.find('?') {
                        if !rule.qsa {
                            s.truncate(i);
                        }
                    }
                }
                (Some(q), false) if !has_q => {
                    s.push('?');
                    s.push_str(q);
                }
                (Some(q), false) if rule.qsa => {
                    s.push('&');
                    s.push_str(q);
                }
                _ => {}
            }
            s
        };
        return Some(match &rule.action {
            RewriteAction::Forbidden => Rewritten::Status(403),
            RewriteAction::Gone => Rewritten::Status(410),
            RewriteAction::Redirect { status, template } => Rewritten::Redirect {
                status: *status,
                location: with_query(expand(template)),
            },
            RewriteAction::Proxy { balancer, template } => {
                let mut p = with_query(expand(template));
                if !p.starts_with('/') {
                    p.insert(0, '/');
                }
                Rewritten::Proxy {
                    balancer: *balancer,
                    path: p.into_bytes(),
                }
            }
        });
    }
    None
}

/// Conditions are ANDed; `[OR]` joins a condition with the next one. Returns the captures
/// of the last matched regex condition (for `%N`) when they hold.
fn conditions_hold(
    rule: &RewriteRule,
    input: &RewriteInput<'_>,
    path: &str,
    query: Option<&str>,
) -> Option<Vec<Option<String>>> {
    let mut caps = Vec::new();
    let mut or_chain_ok = false;
    for (i, c) in rule.conds.iter().enumerate() {
        let value: std::borrow::Cow<'_, str> = match &c.test {
            RewriteVar::Header(h) => (input.header)(h)
                .map(String::from_utf8_lossy)
                .unwrap_or_default(),
            RewriteVar::RequestUri => path.into(),
            RewriteVar::QueryString => query.unwrap_or_default().into(),
            RewriteVar::RequestMethod => String::from_utf8_lossy(input.method),
        };
        let matched = match &c.pattern {
            CondPattern::Equals(text, nc) => {
                if *nc {
                    value.eq_ignore_ascii_case(text)
                } else {
                    *value == **text
                }
            }
            CondPattern::Regex(re) => match re.captures(&value) {
                Some(m) => {
                    if !c.negate {
                        caps = m
                            .iter()
                            .map(|m| m.map(|m| m.as_str().to_string()))
                            .collect();
                    }
                    true
                }
                None => false,
            },
        };
        let ok = matched != c.negate || or_chain_ok;
        if c.or_next {
            // Carried to the next condition; a chain holds if any member does.
            or_chain_ok = ok;
            if i + 1 < rule.conds.len() {
                continue;
            }
        }
        or_chain_ok = false;
        if !ok {
            return None;
        }
    }
    Some(caps)
}

/// `$N` (rule captures) and `%N` (last condition's captures) in a substitution.
fn expand_refs(t: &str, rule: &[Option<String>], cond: &[Option<String>]) -> String {
    let mut out = String::with_capacity(t.len() + 16);
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        let refs = match c {
            '$' => Some(rule),
            '%' => Some(cond),
            _ => None,
        };
        match (refs, chars.peek().and_then(|d| d.to_digit(10))) {
            (Some(list), Some(n)) => {
                chars.next();
                if let Some(Some(v)) = list.get(n as usize) {
                    out.push_str(v);
                }
            }
            _ => out.push(c),
        }
    }
    out
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
mod fully_qualify_tests {
    use super::fully_qualify;

    #[test]
    fn redirect_targets_are_made_absolute_as_mod_rewrite_does() {
        let cases: &[(&str, Option<&str>, &str, &str)] = &[
            (
                "/new?x=1",
                Some("127.0.0.1:8080"),
                "s",
                "http://127.0.0.1:8080/new?x=1",
            ),
            (
                "/new",
                Some("WWW.Example.com"),
                "s",
                "http://www.example.com/new",
            ),
            (
                "/new",
                Some("www.example.com:80"),
                "s",
                "http://www.example.com/new",
            ),
            ("/new", Some("[::1]:8443"), "s", "http://[::1]:8443/new"),
            ("/new", None, "lb.example.com", "http://lb.example.com/new"),
            (
                "/new",
                None,
                "lb.example.com:8080",
                "http://lb.example.com:8080/new",
            ),
            ("new", Some("h"), "s", "http://h/new"),
            (
                "https://other.example/x",
                Some("h"),
                "s",
                "https://other.example/x",
            ),
            (
                "mailto:ops@example.com",
                Some("h"),
                "s",
                "mailto:ops@example.com",
            ),
        ];
        for (loc, host, server, want) in cases {
            assert_eq!(
                fully_qualify(loc.to_string(), host.map(str::as_bytes), server),
                *want,
                "{loc} {host:?}"
            );
        }
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
        // The same through one reused buffer, as the proxy calls it: nothing of an earlier
        // path survives into a later one.
        let mut buf = Vec::new();
        for (target, want) in cases.iter().chain(cases.iter().rev()) {
            let got = route_into(&c.vhosts[0], target.as_bytes(), &mut buf)
                .map(|_| String::from_utf8(buf.clone()).unwrap());
            assert_eq!(got.as_deref(), *want, "{target}");
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

    #[test]
    fn rewrite_table() {
        let c = cfg("Listen 80\nRewriteEngine On\n\
            RewriteCond %{HTTP:Upgrade} =websocket [NC]\n\
            RewriteRule ^/?(.*) ws://127.0.0.1:9001/$1 [P,L]\n\
            RewriteCond %{HTTP_HOST} ^old\\.(example\\.com)$ [NC,OR]\n\
            RewriteCond %{HTTP_HOST} ^legacy\\.(example\\.com)$ [NC]\n\
            RewriteRule ^/(.*)$ https://www.%1/$1 [R=permanent]\n\
            RewriteCond %{REQUEST_METHOD} !^(GET|HEAD)$\n\
            RewriteRule ^/readonly/ - [F]\n\
            RewriteRule ^/gone - [G]\n\
            RewriteRule ^/api/(.*)$ http://127.0.0.1:9002/v2/$1?via=rw [P,QSA]\n\
            ProxyPass / http://127.0.0.1:9003/\n");
        let run = |target: &str, method: &str, headers: &[(&str, &str)]| {
            let headers: Vec<(String, Vec<u8>)> = headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect();
            let header = |name: &str| -> Option<&[u8]> {
                headers
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_slice())
            };
            rewrite(
                &c.vhosts[0],
                &RewriteInput {
                    target: target.as_bytes(),
                    method: method.as_bytes(),
                    header: &header,
                },
            )
        };
        let proxied = |r: Option<Rewritten>| match r {
            Some(Rewritten::Proxy { balancer, path }) => Some((
                c.balancers[balancer].name.clone(),
                String::from_utf8(path).unwrap(),
            )),
            other => panic!("not proxied: {other:?}"),
        };
        assert_eq!(
            proxied(run("/chat?r=1", "GET", &[("upgrade", "WebSocket")])),
            Some(("ws://127.0.0.1:9001".into(), "/chat?r=1".into()))
        );
        assert_eq!(
            run("/chat", "GET", &[]),
            None,
            "no Upgrade: ProxyPass decides"
        );
        assert_eq!(
            run("/x/y?q", "GET", &[("host", "legacy.example.com")]),
            Some(Rewritten::Redirect {
                status: 301,
                location: "https://www.example.com/x/y?q".into()
            })
        );
        assert_eq!(
            run("/readonly/a", "POST", &[]),
            Some(Rewritten::Status(403))
        );
        assert_eq!(run("/readonly/a", "GET", &[]), None);
        assert_eq!(run("/gone/now", "GET", &[]), Some(Rewritten::Status(410)));
        assert_eq!(
            proxied(run("/api/users?page=2", "GET", &[])),
            Some((
                "http://127.0.0.1:9002".into(),
                "/v2/users?via=rw&page=2".into()
            ))
        );
    }
}
