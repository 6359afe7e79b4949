//! URLs and addresses in the configuration: member URLs (scheme, host, port, path),
//! balancer names, `Listen` and `<VirtualHost>` addresses.

use super::*;

/// `balancer://name/path` -> `name`.
pub(super) fn balancer_name(url: &str) -> Option<String> {
    let rest = url.get("balancer://".len()..)?;
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
    let lower = url.to_ascii_lowercase();
    let after = ["http://", "ws://"]
        .iter()
        .find(|p| lower.starts_with(**p))
        .map(|p| &url[p.len()..])?;
    let authority = after.split('/').next()?;
    let (host, port) = split_host_port(authority).ok()?;
    Some((
        host.trim_matches(['[', ']']).to_string(),
        port.unwrap_or(80),
    ))
}

pub(super) fn parse_member_url(
    url: &str,
    loc: &Loc,
    resolve: &dyn Fn(&str, u16) -> Option<SocketAddr>,
) -> Result<Member, ConfigError> {
    let lower = url.to_ascii_lowercase();
    // ws:// is mod_proxy_wstunnel's scheme: an http:// member that tunnels WebSocket
    // upgrades (as `upgrade=websocket` does for http:// members).
    let (after, websocket) = if lower.starts_with("http://") {
        (&url[7..], false)
    } else if lower.starts_with("ws://") {
        (&url[5..], true)
    } else {
        let scheme = url.split("://").next().unwrap_or(url);
        let what = if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("wss") {
            "TLS to backends is not available yet; use http:// or ws:// members".to_string()
        } else {
            "http:// and ws:// are".to_string()
        };
        return Err(ConfigError::new(
            loc,
            format!("member '{url}': scheme '{scheme}' is not supported ({what})"),
        ));
    };
    let (authority, path) = match after.find('/') {
        Some(i) => (&after[..i], after[i..].trim_end_matches('/').to_string()),
        None => (after, String::new()),
    };
    if authority.is_empty() {
        return Err(ConfigError::new(loc, format!("member '{url}' has no host")));
    }
    let (host, port) = split_host_port(authority)
        .map_err(|m| ConfigError::new(loc, format!("member '{url}': {m}")))?;
    let port = port.unwrap_or(80);
    let addr = resolve(host.trim_matches(['[', ']']), port)
        .ok_or_else(|| ConfigError::new(loc, format!("member '{url}': cannot resolve '{host}'")))?;
    let host_header = if port == 80 {
        host.to_string()
    } else {
        format!("{host}:{port}")
    };
    Ok(Member {
        name: format!("{}://{authority}", if websocket { "ws" } else { "http" }),
        addr,
        host_header,
        path,
        params: MemberParams {
            upgrade: websocket.then(|| "websocket".to_string()),
            ..MemberParams::default()
        },
        loc: loc.clone(),
    })
}

pub(super) fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), String> {
    if let Some(rest) = authority.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            return Err("unclosed '[' in IPv6 address".into());
        };
        let host = &authority[..end + 2];
        let port = match &rest[end + 1..] {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| format!("bad port in '{authority}'"))?,
            ),
        };
        return Ok((host, port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Ok((h, Some(p.parse().map_err(|_| format!("bad port '{p}'"))?))),
        None => Ok((authority, None)),
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
