//! Which virtual host answers a request, and which ProxyPass / ProxyPassMatch rule sends it
//! where. Pure functions over the config: no I/O, no state.

pub mod access;
pub mod location;
pub mod normalize;
pub mod redirect;
pub mod remoteip;

use std::net::SocketAddr;

use crate::config::url::Scheme;
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
    let host = host.map(crate::http::authority::host);
    let mut first = None;
    for (i, vh) in cfg.vhosts.iter().enumerate().skip(1) {
        if !serves_address(vh, local) {
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

/// The host that answers a connection to `local` before any name is known (no Host, no
/// server name): the first `<VirtualHost>` for that address, else the main server. Its
/// TLS setup decides whether connections to `local` speak TLS, as in mod_ssl.
pub fn first_vhost_for(vhosts: &[VirtualHost], local: SocketAddr) -> usize {
    vhosts
        .iter()
        .enumerate()
        .skip(1)
        .find(|(_, vh)| serves_address(vh, local))
        .map_or(0, |(i, _)| i)
}

fn serves_address(vh: &VirtualHost, local: SocketAddr) -> bool {
    vh.addrs
        .iter()
        .any(|a| a.port.is_none_or(|p| p == local.port()) && a.ip.is_none_or(|ip| ip == local.ip()))
}

fn name_matches(vh: &VirtualHost, host: &[u8]) -> bool {
    let eq = |name: &str| {
        let name = crate::http::authority::host(name.as_bytes());
        if let Some(suffix) = name.strip_prefix(b"*") {
            host.len() >= suffix.len()
                && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
        } else {
            name.eq_ignore_ascii_case(host)
        }
    };
    vh.server_name.as_deref().is_some_and(eq) || vh.aliases.iter().any(|a| eq(a))
}

/// mod_rewrite's `fully_qualify_uri`: an `[R]` target that is a local path becomes
/// `SCHEME://NAME[:PORT]/path`, with the scheme the client used. With UseCanonicalName Off
/// (Apache's default) NAME and PORT come from the request's Host header, else from the
/// server's name; the scheme's default port is left out.
pub fn fully_qualify(
    location: String,
    scheme: Scheme,
    host: Option<&[u8]>,
    server_name: &str,
) -> String {
    if is_absolute_uri(&location) {
        return location;
    }
    let authority = host
        .and_then(|h| std::str::from_utf8(h).ok())
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .unwrap_or(server_name);
    // A port that is not a number is treated as absent.
    let (name, port) = crate::http::authority::split_str(authority).unwrap_or((authority, None));
    let port = port.and_then(|p| p.parse::<u16>().ok());
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let mut out = scheme.url(&name);
    if let Some(p) = port.filter(|p| *p != scheme.default_port()) {
        out.push(':');
        out.push_str(&p.to_string());
    }
    if !location.starts_with('/') {
        out.push('/');
    }
    out.push_str(&location);
    out
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

/// The request's path as rules see it, and as the client spelled it.
#[derive(Clone, Copy, Debug)]
pub struct PathInput<'a> {
    /// Normalized and decoded ([`normalize::normalize`]): what every rule matches.
    pub path: &'a [u8],
    /// The request-target's path as received (for `nocanon`).
    pub raw: &'a [u8],
    /// The query as received, without `?`.
    pub query: Option<&'a [u8]>,
    /// `AllowEncodedSlashes NoDecode`: `%2F` kept in `path` is forwarded as it is.
    pub keep_encoded_slashes: bool,
}

impl<'a> PathInput<'a> {
    /// For tests and callers with a plain target: normalized with the default policy.
    pub fn split_target(target: &'a [u8]) -> (&'a [u8], Option<&'a [u8]>) {
        crate::http::head::split_target(target)
    }

    fn encode(&self, path: &[u8], out: &mut Vec<u8>) {
        normalize::encode_path(path, self.keep_encoded_slashes, out);
    }
}

pub fn route(vh: &VirtualHost, input: &PathInput<'_>) -> Route {
    let mut path = Vec::new();
    match route_into(vh, input, &mut path) {
        Some(balancer) => Route::Backend { balancer, path },
        None => Route::NotProxied,
    }
}

/// First matching rule in config order wins (Apache's order for ProxyPass and
/// ProxyPassMatch), matched against the normalized path. The path written into `out`
/// (cleared first; a buffer the connection keeps) is the canonical encoding of what the
/// rule maps the path to (mod_proxy's canonicalization), or with `nocanon` the client's own
/// spelling. `None`: not proxied.
pub fn route_into(vh: &VirtualHost, input: &PathInput<'_>, out: &mut Vec<u8>) -> Option<usize> {
    out.clear();
    let path = input.path;
    for rule in &vh.rules {
        let Target::Backend {
            balancer,
            template,
            noquery,
            nocanon,
        } = &rule.target
        else {
            let matched = match &rule.matcher {
                Matcher::Prefix(prefix) => {
                    normalize::prefix_match(path, prefix.as_bytes()).is_some()
                }
                Matcher::Regex(re) => re.is_match(path),
            };
            if matched {
                return None;
            }
            continue;
        };
        match &rule.matcher {
            Matcher::Prefix(prefix) => {
                let Some(len) = normalize::prefix_match(path, prefix.as_bytes()) else {
                    continue;
                };
                out.extend_from_slice(template.as_bytes());
                // `nocanon` forwards the raw spelling only when the raw path matches the
                // same prefix; otherwise normalization changed what the rule covers and,
                // as Apache does (AH01136), the canonical path is safer.
                match normalize::prefix_match(input.raw, prefix.as_bytes()) {
                    Some(raw_len) if *nocanon => out.extend_from_slice(&input.raw[raw_len..]),
                    _ => input.encode(&path[len..], out),
                }
            }
            Matcher::Regex(re) => {
                let Some(caps) = re.captures(path) else {
                    continue;
                };
                let raw_caps = nocanon.then(|| re.captures(input.raw)).flatten();
                if template.contains('$') {
                    match &raw_caps {
                        Some(raw) => expand_dollars(template, out, |n, out| {
                            if let Some(m) = raw.get(n) {
                                out.extend_from_slice(m.as_bytes());
                            }
                        }),
                        None => expand_dollars(template, out, |n, out| {
                            if let Some(m) = caps.get(n) {
                                input.encode(m.as_bytes(), out);
                            }
                        }),
                    }
                } else {
                    // Apache: without a substitution the whole path is appended
                    // (mod_proxy.c, ap_proxy_trans_match).
                    out.extend_from_slice(template.as_bytes());
                    match raw_caps {
                        Some(_) => out.extend_from_slice(input.raw),
                        None => input.encode(path, out),
                    }
                }
            }
        }
        if let (Some(q), false) = (input.query, *noquery) {
            out.push(b'?');
            out.extend_from_slice(q);
        }
        return Some(*balancer);
    }
    None
}

/// Expands `$N` in a ProxyPassMatch target into `out`; `cap(N, out)` writes capture N.
/// A `$` not followed by a digit is itself; `$1a` is group 1 then `a`, as in Apache.
pub(crate) fn expand_dollars(
    template: &str,
    out: &mut Vec<u8>,
    mut cap: impl FnMut(usize, &mut Vec<u8>),
) {
    let t = template.as_bytes();
    let mut i = 0;
    while i < t.len() {
        match t.get(i + 1) {
            Some(d) if t[i] == b'$' && d.is_ascii_digit() => {
                cap(usize::from(d - b'0'), out);
                i += 2;
            }
            _ => {
                out.push(t[i]);
                i += 1;
            }
        }
    }
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
    pub path: PathInput<'a>,
    pub method: &'a [u8],
    /// The request came over TLS (`%{HTTPS}`).
    pub https: bool,
    /// A request header's value by lower-case name.
    pub header: &'a dyn Fn(&str) -> Option<&'a [u8]>,
}

/// mod_rewrite's server-context processing for the supported subset: rules in order, each
/// matched against the normalized URL path, then its conditions; the first rule that
/// applies decides. Back-references to the path go into the result in canonical encoding,
/// so a decoded `%0D%0A` or space can never end up raw in a forwarded path or a Location.
/// `None`: no rule applied (ProxyPass rules come next).
pub fn rewrite(vh: &VirtualHost, input: &RewriteInput<'_>) -> Option<Rewritten> {
    if !vh.rewrite_engine || vh.rewrites.is_empty() {
        return None;
    }
    let path = input.path.path;
    let query = input
        .path
        .query
        .map(|q| String::from_utf8_lossy(q).into_owned());
    let path_text = String::from_utf8_lossy(path);
    for rule in &vh.rewrites {
        let rule_caps: Vec<Option<String>> = match rule.pattern.captures(path) {
            Some(_) if rule.negate => continue,
            Some(c) => c
                .iter()
                .map(|m| {
                    m.map(|m| {
                        let mut enc = Vec::with_capacity(m.len());
                        input.path.encode(m.as_bytes(), &mut enc);
                        // Only ASCII comes out of the encoding.
                        String::from_utf8_lossy(&enc).into_owned()
                    })
                })
                .collect(),
            None if rule.negate => Vec::new(),
            None => continue,
        };
        let Some(cond_caps) = conditions_hold(rule, input, &path_text, query.as_deref()) else {
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
            RewriteVar::Https => if input.https { "on" } else { "off" }.into(),
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
    use super::{fully_qualify, Scheme};

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
                fully_qualify(
                    loc.to_string(),
                    Scheme::Http,
                    host.map(str::as_bytes),
                    server
                ),
                *want,
                "{loc} {host:?}"
            );
        }
        // A client that came over TLS is sent to https, its default port left out.
        let tls =
            |host: &str| fully_qualify("/x".into(), Scheme::Https, Some(host.as_bytes()), "s");
        assert_eq!(tls("a.example:443"), "https://a.example/x");
        assert_eq!(tls("a.example:80"), "https://a.example:80/x");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_str, LoadOptions};

    fn cfg(text: &str) -> Config {
        load_str(text, "t", &LoadOptions::default()).unwrap()
    }

    /// Normalizes `target`'s path with the host's policy, as the proxy does, then routes.
    fn routed(c: &Config, target: &str) -> Option<String> {
        let mut buf = Vec::new();
        route_target(c, target, &mut buf).map(|_| String::from_utf8(buf).unwrap())
    }

    fn route_target(c: &Config, target: &str, out: &mut Vec<u8>) -> Option<usize> {
        let (raw, query) = PathInput::split_target(target.as_bytes());
        let (mut path, mut scratch) = (Vec::new(), Vec::new());
        normalize::normalize(raw, &c.vhosts[0].paths, &mut path, &mut scratch).ok()?;
        let input = PathInput {
            path: &path,
            raw,
            query,
            keep_encoded_slashes: false,
        };
        route_into(&c.vhosts[0], &input, out)
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
            let got =
                route_target(&c, target, &mut buf).map(|_| String::from_utf8(buf.clone()).unwrap());
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
            RewriteCond %{HTTPS} !=on\n\
            RewriteRule ^/secure/ - [F]\n\
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
            let (raw, query) = PathInput::split_target(target.as_bytes());
            rewrite(
                &c.vhosts[0],
                &RewriteInput {
                    path: PathInput {
                        path: raw,
                        raw,
                        query,
                        keep_encoded_slashes: false,
                    },
                    method: method.as_bytes(),
                    https: headers.iter().any(|(k, _)| k == "x-test-https"),
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
        // `%{HTTPS}`: the usual guard of an http-to-https rule.
        assert_eq!(run("/secure/a", "GET", &[]), Some(Rewritten::Status(403)));
        assert_eq!(run("/secure/a", "GET", &[("x-test-https", "")]), None);
        assert_eq!(
            proxied(run("/api/users?page=2", "GET", &[])),
            Some((
                "http://127.0.0.1:9002".into(),
                "/v2/users?via=rw&page=2".into()
            ))
        );
    }
}
