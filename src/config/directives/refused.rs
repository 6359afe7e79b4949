//! Directives of the modules ringproxy stands in for (mod_proxy and its family, mod_ssl,
//! mod_alias, mod_headers, mod_remoteip, mod_reqtimeout, mod_status) that it does not
//! implement, each refused with its reason: a configuration that relies on one of them
//! does not start, rather than run without what it asked for. Some are refused only in
//! the form that asks for something (`ProxyBadHeader Ignore`, `SSLOCSPEnable on`); their
//! harmless form is accepted quietly.

/// (directive names, lower case; argument forms that are harmless; why the rest is refused).
const REFUSED: &[(&[&str], &[&str], &str)] = &[
    (
        &["proxyremote", "proxyremotematch", "noproxy", "proxydomain", "proxyblock"],
        &[],
        "ringproxy is a reverse proxy only: it sends no request through another proxy and serves no forward-proxy clients",
    ),
    (
        &["proxypassinterpolateenv"],
        &["off"],
        "ringproxy keeps no per-request environment to interpolate into ProxyPass lines",
    ),
    (
        &["proxybadheader"],
        &["iserror"],
        "a member's malformed header line always fails the response (502), Apache's IsError",
    ),
    (
        &["aliaspreservepath"],
        &["off"],
        "Alias inside <Location> is not available",
    ),
    (
        &["redirectrelative"],
        &["off"],
        "redirect targets are always made absolute",
    ),
    (
        &["sslcarevocationpath", "sslcarevocationfile", "sslproxycarevocationpath", "sslproxycarevocationfile"],
        &[],
        "certificate revocation lists are not checked; a revoked certificate would be accepted",
    ),
    (
        &["sslcarevocationcheck", "sslproxycarevocationcheck"],
        &["none"],
        "certificate revocation lists are not checked; a revoked certificate would be accepted",
    ),
    (
        &["sslocspenable"],
        &["off"],
        "OCSP checks of client certificates are not made; a revoked certificate would be accepted",
    ),
    (
        &["sslrequiressl", "sslrequire"],
        &[],
        "mod_ssl's access checks are not available: use SSLEngine On on the host (and a Redirect from plain HTTP), SSLVerifyClient, and Require",
    ),
    (
        &["sslfips"],
        &["off"],
        "FIPS mode is not available (aws-lc-rs is used in its default build)",
    ),
    (
        &["sslsrpverifierfile", "sslsrpunknownuserseed"],
        &[],
        "TLS-SRP is not available in rustls",
    ),
    (
        &["sslusername"],
        &[],
        "there is no REMOTE_USER to set: ringproxy does no authentication",
    ),
];

/// Why a directive (in this argument form) is refused; `None`: it is not one of these, or
/// its form is the harmless one (accepted quietly).
pub(in super::super) fn refused_reason(
    lower_name: &str,
    args: &[String],
) -> Option<Option<&'static str>> {
    let (_, harmless, why) = REFUSED
        .iter()
        .find(|(names, ..)| names.contains(&lower_name))?;
    let form = args.join(" ").to_ascii_lowercase();
    Some((!harmless.contains(&form.as_str())).then_some(*why))
}

/// Every refused name (for "did you mean" and the README's table check).
pub(in super::super) fn refused_names() -> impl Iterator<Item = &'static str> {
    REFUSED.iter().flat_map(|(names, ..)| names.iter().copied())
}
