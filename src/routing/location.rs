//! Access by location: `<Location>`/`<LocationMatch>` sections (Require, Order/Allow/Deny)
//! and the `SetHandler` they name, and `<Proxy URL>` sections for the URL a request is
//! proxied to. Both match the normalized path (see [`super::normalize`]), never the raw one.

use std::net::IpAddr;

use crate::config::{Handler, VirtualHost};

/// What the locations say about a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Local {
    Forbidden,
    Handler(Handler),
    /// A `Redirect` in the last matching section that has one.
    Redirect(super::redirect::Redirected),
}

/// The last matching `<Location>` with access rules decides access (Apache merges sections
/// in config order); then the last matching one with a handler serves the request.
/// `path` is the normalized path (see `routing::normalize`); a section matches whole
/// segments, as Apache's location walk does (`<Location /admin>` covers `/admin/x`, not
/// `/administrator`), or by regex (`<LocationMatch>`).
pub fn check(
    vh: &VirtualHost,
    input: &super::PathInput<'_>,
    client: IpAddr,
    client_name: Option<&str>,
    client_cert: bool,
) -> Option<Local> {
    if vh.locations.is_empty() {
        return None;
    }
    let path = input.path;
    let matching = || vh.locations.iter().filter(move |l| l.matches(path));
    // `SSLVerifyClient require` in a location: the certificate was asked for at the
    // handshake (optionally); without one the location is closed.
    let required = matching().filter_map(|l| l.verify_client).next_back()
        == Some(crate::transport::tls::host::VerifyClient::Require);
    if required && !client_cert {
        return Some(Local::Forbidden);
    }
    if let Some(access) = matching().filter_map(|l| l.access.as_ref()).next_back() {
        if !access.allows_named(client, client_name) {
            return Some(Local::Forbidden);
        }
    }
    // mod_alias answers a section's redirect before any handler (its fixup runs first).
    if let Some(rule) = matching().filter_map(|l| l.redirect.as_ref()).next_back() {
        return super::redirect::apply(rule, input).map(Local::Redirect);
    }
    matching()
        .filter_map(|l| l.handler)
        .next_back()
        .map(Local::Handler)
}

/// `<Proxy URL>` access rules: the last section matching the URL the request is proxied to
/// decides (`balancer://name/path`, or the member URL and path for a plain ProxyPass).
pub fn proxy_allows(
    vh: &crate::config::VirtualHost,
    b: &crate::config::Balancer,
    path: &[u8],
    peer_ip: &str,
    client_name: Option<&str>,
) -> bool {
    let path = String::from_utf8_lossy(path);
    let url = match (b.implicit, b.members.first()) {
        (true, Some(m)) => format!("{}{}{}", m.name, m.path, path),
        _ => format!("{}{}", b.name, path),
    };
    let Some(rule) = vh.proxy_access.iter().rfind(|p| p.matches(&url)) else {
        return true;
    };
    // An address that does not parse cannot match an allow rule: deny.
    peer_ip
        .parse()
        .is_ok_and(|ip| rule.access.allows_named(ip, client_name))
}
