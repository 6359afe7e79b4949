//! mod_ssl: TLS termination as its directives say it, mapped onto rustls (see
//! `transport::tls::host` for what each setting becomes). What rustls cannot do is a
//! warning that says so; what would weaken security without the admin knowing is an error.

use rustls::SupportedCipherSuite;

use super::super::tls::ProxyTlsSet;
use super::super::*;
use crate::transport::tls::client::Verify;
use crate::transport::tls::host::{self, VerifyClient};

fn one_arg<'d>(b: &mut Builder, d: &'d Directive) -> Option<&'d str> {
    match d.args.as_slice() {
        [a] => Some(a),
        _ => {
            b.err(&d.loc, format!("{} takes one argument", d.name));
            None
        }
    }
}

/// `SSLEngine`.
pub(super) fn sslengine(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let on = match d.args.as_slice() {
        [a] if a.eq_ignore_ascii_case("optional") => {
            return b.err(
                &d.loc,
                "SSLEngine optional (RFC 2817 upgrade to TLS) is not supported: use SSLEngine On on a port of its own",
            )
        }
        _ => b.one_flag(d),
    };
    if let Some(on) = on {
        b.tls[ctx.vhost()].engine = Some((on, d.loc.clone()));
    }
}

/// Where an `SSLProxy*` directive puts its value: its `<Proxy balancer://…>` section's set,
/// else its server's.
fn proxy_set<'b>(b: &'b mut Builder, ctx: Ctx) -> &'b mut ProxyTlsSet {
    match ctx {
        Ctx::Balancer(_, i) => b.balancer_tls.entry(i).or_default(),
        _ => &mut b.tls[ctx.vhost()].proxy,
    }
}

/// `SSLProxyEngine`.
pub(super) fn sslproxyengine(b: &mut Builder, d: &Directive, ctx: Ctx) {
    if let Some(on) = b.one_flag(d) {
        proxy_set(b, ctx).engine = Some((on, d.loc.clone()));
    }
}

/// `SSLProxyVerify none|optional|require|optional_no_ca`.
pub(super) fn sslproxyverify(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let Some(arg) = one_arg(b, d) else { return };
    let v = match arg.to_ascii_lowercase().as_str() {
        // A member always presents a certificate: optional checks it as require does.
        "require" | "optional" => Verify::Require,
        "none" | "optional_no_ca" => {
            b.warn(
                &d.loc,
                format!("SSLProxyVerify {arg}: member certificates are not checked against any CA, so anyone on the path to a member can pose as it (its name and dates are still checked unless SSLProxyCheckPeerName/SSLProxyCheckPeerExpire say off)"),
            );
            Verify::None
        }
        other => {
            return b.err(
                &d.loc,
                format!(
                    "SSLProxyVerify {other}: expected none, optional, require or optional_no_ca"
                ),
            )
        }
    };
    proxy_set(b, ctx).verify = Some((v, d.loc.clone()));
}

/// `SSLProxyVerifyDepth`.
pub(super) fn sslproxyverifydepth(b: &mut Builder, d: &Directive, ctx: Ctx) {
    if let Some(n) = b.one_num(d, 0, 100) {
        proxy_set(b, ctx).depth = Some(n as u32);
    }
}

/// `SSLProxyCACertificateFile`, `SSLProxyCACertificatePath`.
pub(super) fn sslproxy_ca(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let Some(arg) = one_arg(b, d) else { return };
    let entry = Some((b.rooted(arg), d.loc.clone()));
    let set = proxy_set(b, ctx);
    if d.name.eq_ignore_ascii_case("SSLProxyCACertificateFile") {
        set.ca_file = entry;
    } else {
        set.ca_path = entry;
    }
}

/// `SSLProxyCheckPeerName`, `SSLProxyCheckPeerCN`, `SSLProxyCheckPeerExpire`.
pub(super) fn sslproxy_check(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let Some(on) = b.one_flag(d) else { return };
    let name = d.name.to_ascii_lowercase();
    if !on {
        b.warn(
            &d.loc,
            format!(
                "{} off: a member certificate is accepted without that check",
                d.name
            ),
        );
    }
    let set = proxy_set(b, ctx);
    match name.as_str() {
        "sslproxycheckpeername" => set.check_name = Some(on),
        "sslproxycheckpeercn" => set.check_cn = Some(on),
        _ => set.check_expire = Some(on),
    }
}

/// `SSLProxyMachineCertificateFile`, `…ChainFile`; `…Path` is refused.
pub(super) fn sslproxy_machine(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let Some(arg) = one_arg(b, d) else { return };
    let name = d.name.to_ascii_lowercase();
    if name == "sslproxymachinecertificatepath" {
        return b.err(
            &d.loc,
            "SSLProxyMachineCertificatePath is not supported: name the file with SSLProxyMachineCertificateFile (certificate and key in one PEM file)",
        );
    }
    let entry = Some((b.rooted(arg), d.loc.clone()));
    let set = proxy_set(b, ctx);
    if name == "sslproxymachinecertificatefile" {
        set.machine_cert = entry;
    } else {
        set.machine_chain = entry;
    }
}

/// `SSLProxyProtocol`.
pub(super) fn sslproxyprotocol(b: &mut Builder, d: &Directive, ctx: Ctx) {
    match host::protocols(&d.args) {
        Ok((versions, warnings)) => {
            for w in warnings {
                b.warn(&d.loc, w);
            }
            proxy_set(b, ctx).offer.protocols = Some(versions);
        }
        Err(m) => b.err(&d.loc, m),
    }
}

/// `SSLProxyCipherSuite [SSL|TLSv1.3] spec`.
pub(super) fn sslproxyciphersuite(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let Some((tls13, suites)) = cipher_spec(b, d) else {
        return;
    };
    proxy_set(b, ctx).offer.set_suites(tls13, suites);
}

/// `SSLCertificateFile`, `SSLCertificateKeyFile`, `SSLCertificateChainFile`.
pub(super) fn certificate(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let Some(arg) = one_arg(b, d) else { return };
    let path = b.rooted(arg);
    let set = &mut b.tls[ctx.vhost()];
    let entry = (path, d.loc.clone());
    match d.name.to_ascii_lowercase().as_str() {
        "sslcertificatefile" => set.certs.push(entry),
        "sslcertificatekeyfile" => set.keys.push(entry),
        _ => set.chain = Some(entry),
    }
}

/// `SSLProtocol`.
pub(super) fn sslprotocol(b: &mut Builder, d: &Directive, ctx: Ctx) {
    match host::protocols(&d.args) {
        Ok((versions, warnings)) => {
            for w in warnings {
                b.warn(&d.loc, w);
            }
            b.tls[ctx.vhost()].offer.protocols = Some(versions);
        }
        Err(m) => b.err(&d.loc, m),
    }
}

/// `SSLCipherSuite [SSL|TLSv1.3] spec`.
pub(super) fn sslciphersuite(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let Some((tls13, suites)) = cipher_spec(b, d) else {
        return;
    };
    b.tls[ctx.vhost()].offer.set_suites(tls13, suites);
}

/// The arguments of `SSLCipherSuite` or `SSLProxyCipherSuite`: whether they are for TLS
/// 1.3, and the suites rustls has of those named (warnings said for the rest, and for an
/// empty result).
fn cipher_spec(b: &mut Builder, d: &Directive) -> Option<(bool, Vec<SupportedCipherSuite>)> {
    let (tls13, spec) = match d.args.as_slice() {
        [spec] => (false, spec),
        [p, spec] if p.eq_ignore_ascii_case("SSL") => (false, spec),
        [p, spec] if p.eq_ignore_ascii_case("TLSv1.3") => (true, spec),
        _ => {
            b.err(
                &d.loc,
                format!("{} takes [SSL|TLSv1.3] and a cipher string", d.name),
            );
            return None;
        }
    };
    let (suites, warnings) = if tls13 {
        host::tls13_suites(spec)
    } else {
        host::tls12_suites(spec)
    };
    for w in warnings {
        b.warn(&d.loc, w);
    }
    if suites.is_empty() {
        // Nothing left for this version: it is not offered (TLS 1.3 always has suites).
        b.warn(
            &d.loc,
            if tls13 {
                format!(
                    "{} TLSv1.3 selects no suite rustls implements: TLS 1.3 keeps its defaults",
                    d.name
                )
            } else {
                format!(
                    "{} selects no suite rustls implements: TLS 1.2 is not offered",
                    d.name
                )
            },
        );
    }
    Some((tls13, suites))
}

/// `SSLHonorCipherOrder`, `SSLSessionTickets`, `SSLStrictSNIVHostCheck`.
pub(super) fn tls_flag(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let Some(on) = b.one_flag(d) else { return };
    let set = &mut b.tls[ctx.vhost()];
    match d.name.to_ascii_lowercase().as_str() {
        "sslhonorcipherorder" => set.honor_order = Some(on),
        "sslsessiontickets" => set.tickets = Some(on),
        _ => set.strict_sni = Some(on),
    }
}

/// `SSLSessionCache none|nonenotnull|shmcb:PATH(SIZE)|dbm:PATH|…`: ringproxy keeps one
/// in-process cache for all workers; the size in bytes becomes a number of sessions.
pub(super) fn sslsessioncache(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    let Some(arg) = one_arg(b, d) else { return };
    let lower = arg.to_ascii_lowercase();
    if lower == "none" || lower == "nonenotnull" {
        b.tls_cache_entries = 0;
        return;
    }
    // About 200 bytes per session in shmcb's accounting.
    let bytes = lower
        .rsplit_once('(')
        .and_then(|(_, n)| n.strip_suffix(')'))
        .and_then(|n| n.parse::<usize>().ok());
    b.tls_cache_entries = bytes.map_or(host::Settings::default().cache_entries, |n| {
        (n / 200).clamp(64, 1 << 20)
    });
    b.warn(
        &d.loc,
        format!(
            "SSLSessionCache {arg}: ringproxy keeps sessions in memory, shared by its workers ({} sessions); nothing is written to that path",
            b.tls_cache_entries
        ),
    );
}

/// mod_ssl directives accepted with a warning saying what they do here.
pub(super) fn noted(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    let name = d.name.to_ascii_lowercase();
    let first = d
        .args
        .first()
        .map(|a| a.to_ascii_lowercase())
        .unwrap_or_default();
    let why = match name.as_str() {
        "sslsessioncachetimeout" => "sessions stay in the in-process cache until newer ones push them out; session tickets are valid for up to 6 hours, their keys rotate every 6 hours",
        "sslopensslconfcmd" => "rustls has no OpenSSL configuration commands; protocol, cipher and curve choices follow SSLProtocol and SSLCipherSuite",
        "sslusestapling" | "sslstaplingcache" | "sslstaplingrespondertimeout" => "OCSP stapling is not done: clients check revocation themselves",
        "sslrandomseed" => "aws-lc seeds itself from the operating system",
        "sslpassphrasedialog" => "keys are read unencrypted; an encrypted key is refused at start",
        "sslcompression" if first == "off" => return,
        "sslcompression" => "TLS compression is never offered (CRIME)",
        "sslinsecurerenegotiation" if first == "off" => return,
        "sslinsecurerenegotiation" => "rustls never renegotiates",
        "ssloptions" => "the SSL variables (%{SSL_PROTOCOL}s and others) are available to RequestHeader and LogFormat without it",
        "sslcryptodevice" => "aws-lc uses the CPU's own instructions",
        _ => "not acted on by ringproxy",
    };
    // Once per directive name: Debian's ssl.conf alone has four SSLRandomSeed lines.
    b.note_once(&d.loc, &d.name, &format!("ignored: {why}"));
}

/// The argument of `SSLVerifyClient`, in a host or a `<Location>`.
pub(in crate::config) fn verify_client_arg(b: &mut Builder, d: &Directive) -> Option<VerifyClient> {
    let arg = one_arg(b, d)?;
    match arg.to_ascii_lowercase().as_str() {
        "none" => Some(VerifyClient::None),
        "optional" => Some(VerifyClient::Optional),
        "require" => Some(VerifyClient::Require),
        "optional_no_ca" => {
            b.err(
                &d.loc,
                "SSLVerifyClient optional_no_ca: certificates are always checked against SSLCACertificateFile here; use optional",
            );
            None
        }
        other => {
            b.err(
                &d.loc,
                format!("SSLVerifyClient {other}: expected none, optional or require"),
            );
            None
        }
    }
}

/// `SSLVerifyClient` for a host.
pub(super) fn sslverifyclient(b: &mut Builder, d: &Directive, ctx: Ctx) {
    if let Some(v) = verify_client_arg(b, d) {
        b.tls[ctx.vhost()].verify = Some((v, d.loc.clone()));
    }
}

/// `SSLVerifyDepth`.
pub(super) fn sslverifydepth(b: &mut Builder, d: &Directive, ctx: Ctx) {
    if let Some(n) = b.one_num(d, 0, 100) {
        b.tls[ctx.vhost()].verify_depth = Some(n as u32);
    }
}

/// `SSLCACertificateFile`, `SSLCACertificatePath`.
pub(super) fn ca_certificates(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let Some(arg) = one_arg(b, d) else { return };
    let entry = (b.rooted(arg), d.loc.clone());
    let set = &mut b.tls[ctx.vhost()];
    if d.name.eq_ignore_ascii_case("SSLCACertificateFile") {
        set.ca_file = Some(entry);
    } else {
        set.ca_path = Some(entry);
    }
}

/// `Protocols` (core / mod_http2): what ALPN offers.
pub(super) fn protocols(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let mut alpn = Vec::new();
    for p in &d.args {
        match p.to_ascii_lowercase().as_str() {
            "http/1.1" => alpn.push(b"http/1.1".to_vec()),
            "h2" | "h2c" => b.warn(
                &d.loc,
                format!("Protocols {p}: HTTP/2 is not available yet; clients get HTTP/1.1"),
            ),
            "acme-tls/1" => b.warn(&d.loc, "Protocols acme-tls/1: not offered"),
            other => return b.err(&d.loc, format!("Protocols: unknown protocol '{other}'")),
        }
    }
    if alpn.is_empty() {
        return b.err(
            &d.loc,
            "Protocols must include http/1.1 (the only protocol ringproxy serves yet)",
        );
    }
    b.tls[ctx.vhost()].alpn = Some(alpn);
}
