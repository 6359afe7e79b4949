//! URLs and addresses in the configuration: member URLs (scheme, host, port, path),
//! balancer names, `Listen` and `<VirtualHost>` addresses.

use super::*;

/// The schemes a proxy target may name. Every test of a URL's scheme goes through
/// [`split_scheme`]; no code compares `"http://"` prefixes of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    /// mod_proxy_wstunnel's: an HTTP member that tunnels WebSocket upgrades.
    Ws,
    Https,
    Wss,
    Ajp,
    Balancer,
}

impl Scheme {
    const ALL: [Scheme; 6] = [
        Scheme::Http,
        Scheme::Ws,
        Scheme::Https,
        Scheme::Wss,
        Scheme::Ajp,
        Scheme::Balancer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Ws => "ws",
            Scheme::Https => "https",
            Scheme::Wss => "wss",
            Scheme::Ajp => "ajp",
            Scheme::Balancer => "balancer",
        }
    }

    /// The port a URL of this scheme means when it names none (Apache's defaults).
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http | Scheme::Ws => 80,
            Scheme::Https | Scheme::Wss => 443,
            Scheme::Ajp => 8009,
            Scheme::Balancer => 0,
        }
    }

    /// A scheme a member may have (what a BalancerMember names).
    pub fn is_member(self) -> bool {
        matches!(
            self,
            Scheme::Http | Scheme::Ws | Scheme::Https | Scheme::Wss | Scheme::Ajp
        )
    }

    /// A member scheme spoken over TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, Scheme::Https | Scheme::Wss)
    }

    /// `scheme://authority`.
    pub fn url(self, authority: &str) -> String {
        format!("{}://{authority}", self.name())
    }
}

/// `scheme://rest` -> the scheme (case-insensitive) and `rest`; `None` for a URL without
/// `://` or with a scheme a proxy target cannot have.
pub fn split_scheme(url: &str) -> Option<(Scheme, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let s = Scheme::ALL
        .into_iter()
        .find(|s| s.name().eq_ignore_ascii_case(scheme))?;
    Some((s, rest))
}

/// Whether `url` is a `balancer://` URL.
pub fn is_balancer_url(url: &str) -> bool {
    matches!(split_scheme(url), Some((Scheme::Balancer, _)))
}

/// `url` without its `scheme://` (the authority and path), for messages and ids.
pub fn without_scheme(url: &str) -> &str {
    split_scheme(url).map_or(url, |(_, rest)| rest)
}

/// A proxy target as ProxyPass and RewriteRule [P] write it.
#[derive(Debug, PartialEq, Eq)]
pub enum ProxyTarget<'a> {
    /// `balancer://name` and the path template after the name.
    Balancer { name: &'a str, template: &'a str },
    /// `scheme://authority` and the path template after the authority.
    Member {
        scheme: Scheme,
        authority: &'a str,
        template: &'a str,
    },
}

/// Reads a proxy target URL; the error says what is wrong with it.
pub fn proxy_target(url: &str) -> Result<ProxyTarget<'_>, String> {
    let Some((scheme, rest)) = split_scheme(url) else {
        let scheme = url.split("://").next().unwrap_or(url);
        return Err(format!(
            "backend scheme '{scheme}' is not supported (http://, https://, ws://, wss://, ajp:// and balancer:// are)"
        ));
    };
    if scheme == Scheme::Balancer {
        let end = rest.find(['/', '$']).unwrap_or(rest.len());
        if end == 0 {
            return Err(format!("bad balancer URL '{url}'"));
        }
        let (name, template) = rest.split_at(end);
        return Ok(ProxyTarget::Balancer { name, template });
    }
    let (authority, template) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    Ok(ProxyTarget::Member {
        scheme,
        authority,
        template,
    })
}

/// `balancer://name/path` -> `name`.
pub(super) fn balancer_name(url: &str) -> Option<String> {
    let rest = match split_scheme(url)? {
        (Scheme::Balancer, rest) => rest,
        _ => return None,
    };
    let name: String = rest.chars().take_while(|&c| c != '/' && c != '$').collect();
    if name.is_empty() {
        None
    } else {
        Some(name)
    }
}

/// A member from its URL (`http://host:port[/path]`), as BalancerMember reads it.
pub fn member_from_url(url: &str, loc: &Loc) -> Result<Member, ConfigError> {
    parse_member_url(url, loc, &|host, port| {
        (host, port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
    })
}

/// A member whose address comes from `resolve(host, port)`: the caller looked the name up
/// already (balancer-manager does, on the resolver pool, so no worker blocks on DNS).
pub fn member_from_url_resolved(
    url: &str,
    loc: &Loc,
    resolve: &dyn Fn(&str, u16) -> Option<SocketAddr>,
) -> Result<Member, ConfigError> {
    parse_member_url(url, loc, resolve)
}

/// The host (without brackets) and port a member URL names, without looking anything up.
pub fn member_host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, after) = split_scheme(url).filter(|(s, _)| s.is_member())?;
    let authority = after.split('/').next()?;
    let (host, port) = split_host_port(authority).ok()?;
    Some((
        host.trim_matches(['[', ']']).to_string(),
        port.unwrap_or(scheme.default_port()),
    ))
}

pub(super) fn parse_member_url(
    url: &str,
    loc: &Loc,
    resolve: &dyn Fn(&str, u16) -> Option<SocketAddr>,
) -> Result<Member, ConfigError> {
    let bad = |what: String| ConfigError::new(loc, format!("member '{url}': {what}"));
    let (scheme, after) = match split_scheme(url) {
        Some(found @ (s, _)) if s.is_member() => found,
        _ => {
            let scheme = url.split("://").next().unwrap_or(url);
            return Err(bad(format!(
                "scheme '{scheme}' is not supported (http://, https://, ws://, wss:// and ajp:// are)"
            )));
        }
    };
    // ws:// and wss:// are mod_proxy_wstunnel's schemes: an http:// or https:// member
    // that tunnels WebSocket upgrades (as `upgrade=websocket` does for the others).
    let websocket = matches!(scheme, Scheme::Ws | Scheme::Wss);
    let (authority, path) = match after.find('/') {
        Some(i) => (&after[..i], after[i..].trim_end_matches('/').to_string()),
        None => (after, String::new()),
    };
    if authority.is_empty() {
        return Err(ConfigError::new(loc, format!("member '{url}' has no host")));
    }
    let (host, port) = split_host_port(authority)
        .map_err(|m| ConfigError::new(loc, format!("member '{url}': {m}")))?;
    let port = port.unwrap_or(scheme.default_port());
    let addr = resolve(host.trim_matches(['[', ']']), port)
        .ok_or_else(|| ConfigError::new(loc, format!("member '{url}': cannot resolve '{host}'")))?;
    let host_header = if port == scheme.default_port() {
        host.to_string()
    } else {
        format!("{host}:{port}")
    };
    Ok(Member {
        name: scheme.url(authority),
        addr,
        host_header,
        path,
        params: MemberParams {
            upgrade: websocket.then(|| "websocket".to_string()),
            ..MemberParams::default()
        },
        loc: loc.clone(),
        tls: None,
    })
}

pub(super) fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), String> {
    use crate::http::authority::{split_str, AuthorityError};
    let (host, port) = split_str(authority).map_err(|e| match e {
        AuthorityError::Unclosed => e.to_string(),
        AuthorityError::AfterBracket => format!("bad port in '{authority}'"),
    })?;
    let Some(p) = port else {
        return Ok((host, None));
    };
    match p.parse() {
        Ok(port) => Ok((host, Some(port))),
        Err(_) if host.starts_with('[') => Err(format!("bad port in '{authority}'")),
        Err(_) => Err(format!("bad port '{p}'")),
    }
}

/// `Listen 8080`, `Listen 127.0.0.1:8080`, `Listen [::1]:8080`, `Listen 0.0.0.0:80 http`.
pub(super) fn parse_listen(arg: &str) -> Result<Vec<SocketAddr>, String> {
    if let Ok(port) = arg.parse::<u16>() {
        // Apache's bare port listens on every address; IPv4 any is the portable choice.
        return Ok(vec![SocketAddr::from(([0, 0, 0, 0], port))]);
    }
    let (host, port) = split_host_port(arg)?;
    let port = port.ok_or_else(|| format!("Listen '{arg}': no port"))?;
    let ip: IpAddr = host
        .trim_matches(['[', ']'])
        .parse()
        .map_err(|_| format!("Listen '{arg}': '{host}' is not an IP address"))?;
    Ok(vec![SocketAddr::new(ip, port)])
}

pub(super) fn parse_vhost_addr(arg: &str) -> Result<VhostAddr, String> {
    if arg == "*" || arg == "_default_" {
        return Ok(VhostAddr {
            ip: None,
            port: None,
        });
    }
    // `host:*` is any port (split_host_port only knows numbers).
    let (host, port) = match arg.strip_suffix(":*") {
        Some(h) => (h, None),
        None => split_host_port(arg)?,
    };
    let ip = match host {
        "*" | "_default_" => None,
        h => Some(
            h.trim_matches(['[', ']'])
                .parse()
                .map_err(|_| format!("<VirtualHost {arg}>: '{h}' is not an IP address or *"))?,
        ),
    };
    Ok(VhostAddr { ip, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_targets() {
        use ProxyTarget::*;
        let member = |scheme, authority, template| Member {
            scheme,
            authority,
            template,
        };
        let ok: &[(&str, ProxyTarget<'_>)] = &[
            (
                "balancer://app/x/",
                Balancer {
                    name: "app",
                    template: "/x/",
                },
            ),
            (
                "BALANCER://app",
                Balancer {
                    name: "app",
                    template: "",
                },
            ),
            (
                "balancer://a$1/x",
                Balancer {
                    name: "a",
                    template: "$1/x",
                },
            ),
            ("http://h:81/p", member(Scheme::Http, "h:81", "/p")),
            ("WS://h", member(Scheme::Ws, "h", "")),
            ("https://h:8443/p", member(Scheme::Https, "h:8443", "/p")),
            ("wss://h", member(Scheme::Wss, "h", "")),
            ("ajp://h:8009/", member(Scheme::Ajp, "h:8009", "/")),
        ];
        for (url, want) in ok {
            assert_eq!(proxy_target(url).as_ref(), Ok(want), "{url}");
        }
        for (url, why) in [
            ("balancer:///x", "bad balancer URL"),
            ("gopher://h/", "backend scheme 'gopher' is not supported"),
            ("/local", "backend scheme '/local' is not supported"),
        ] {
            let e = proxy_target(url).unwrap_err();
            assert!(e.contains(why), "{url}: {e}");
        }
        assert_eq!(without_scheme("http://h:1/p"), "h:1/p");
        assert!(is_balancer_url("Balancer://x") && !is_balancer_url("http://x"));
        assert_eq!(member_host_port("ws://[::1]/x"), Some(("::1".into(), 80)));
        assert_eq!(member_host_port("ajp://h"), Some(("h".into(), 8009)));
        assert_eq!(member_host_port("balancer://c"), None);
    }
}
