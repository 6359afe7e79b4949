//! One request's way through the proxy: route it ([`crate::routing`]: virtual host,
//! TRACE, path normalization, `<Location>`, RewriteRule, ProxyPass, `<Proxy>`), read a
//! small body whole, then the attempt loop ([`attempt`]) sends it to members of its
//! balancer, one [`exchange`] per attempt, with [`policy`] deciding what follows a
//! failure. Errors come back typed; the connection maps them to a status once.

mod ajp;
mod attempt;
mod body;
mod exchange;
mod members;
pub mod policy;

use crate::admin;
use crate::config::TraceEnable;
use crate::error::{ErrorKind, ProxyError};
use crate::http::body::Framing;
use crate::http::head::RequestBody;
use crate::http::server::{ClientConn, RequestCtx};
use crate::routing;
use crate::routing::normalize::EncodedSlashes;
use crate::runtime::CoreGen;
use crate::transport::Transport;

use attempt::Routed;

/// A request body up to this size that has fully arrived with the head is sent in the same
/// write as the head, and can be replayed if a pooled connection turns out to be stale.
const INLINE_BODY_MAX: usize = 64 * 1024;

/// Forwards the request whose head is in `r.head`. Returns whether the client connection
/// stays open. On error, `r.response_started` tells the caller whether it may still answer.
pub async fn forward(
    w: &CoreGen,
    c: &mut ClientConn,
    r: &mut RequestCtx,
) -> Result<bool, ProxyError> {
    // The routed path is built in a buffer the connection keeps, not a new one per request.
    let mut path = std::mem::take(&mut r.routed);
    let res = forward_routed(w, c, r, &mut path).await;
    r.routed = path;
    res
}

/// Where a request goes: a balancer (with the path as routed into `path`) or a page
/// ringproxy serves itself.
enum Target {
    Balancer(usize),
    Page(crate::config::Handler),
    /// A file from the host's DocumentRoot or an Alias.
    File(crate::files::Mapped),
}

async fn forward_routed(
    w: &CoreGen,
    c: &mut ClientConn,
    r: &mut RequestCtx,
    path: &mut Vec<u8>,
) -> Result<bool, ProxyError> {
    let vh_idx = routing::select_vhost(
        &w.shared.cfg,
        c.local,
        r.head.host.clone().map(|h| &c.buf[h]),
    );
    r.vhost = vh_idx;
    remote_ip(w, c, r);
    if let Some(facts) = c.stream.tls() {
        check_server_name(&w.shared.cfg, c, r, facts)?;
    }
    let balancer = match route(w, c, r, path).await? {
        Target::Balancer(b) => b,
        Target::Page(h) => {
            let vh = &w.shared.cfg.vhosts[vh_idx];
            return admin::http::answer(w, c, r, vh, h).await;
        }
        Target::File(mapped) => {
            let space = &w.shared.cfg.vhosts[vh_idx].files;
            return crate::files::serve::answer(w, c, r, space, mapped).await;
        }
    };
    // A body up to ProxyRequestBuffer is read whole now, before a member is chosen: a
    // client sending it slowly then holds no member connection (no Tomcat thread).
    body::buffer_body(w, c, r).await?;
    // How much of the request body is already here, validated (chunked framing errors are
    // caught before anything is sent to a backend).
    let mut framing = Framing::from(r.head.body());
    let mut probe = framing;
    let adv = probe
        .advance(&c.buf[r.head.len..])
        .map_err(|e| ProxyError::new(e.into()))?;
    let inline = adv.done && adv.consumed <= INLINE_BODY_MAX.max(w.shared.cfg.core.request_buffer);
    if inline {
        framing = probe;
    }
    let routed = Routed {
        vh_idx,
        balancer,
        path,
        framing,
        inline_end: inline.then_some(r.head.len + adv.consumed),
    };
    attempt::run(w, c, r, &routed).await
}

/// mod_remoteip: the client behind the host's trusted proxies, from its `RemoteIPHeader`
/// (every line of it, joined as Apache joins repeated header lines).
fn remote_ip(w: &CoreGen, c: &ClientConn, r: &mut RequestCtx) {
    let rip = &w.shared.cfg.vhosts[r.vhost].remote_ip;
    let Some(header) = rip.header.as_deref() else {
        return;
    };
    let mut value = String::new();
    for v in r.head.header_texts(&c.buf, header.as_bytes()) {
        if !value.is_empty() {
            value.push_str(", ");
        }
        value.push_str(v);
    }
    if value.is_empty() {
        return;
    }
    let Some(found) = routing::remoteip::evaluate(rip, c.peer.ip(), &value) else {
        return;
    };
    let text = found.ip.to_string();
    if let Some(log) = r.log.as_mut() {
        log.client_ip = text.clone();
    }
    r.remote = Some(crate::http::server::Remote {
        ip: found.ip,
        text,
        rest: found.rest,
        proxies: found.proxies,
    });
}

/// mod_rewrite's rules for the request, when the host has RewriteEngine on.
fn rewrite(
    vh: &crate::config::VirtualHost,
    c: &ClientConn,
    r: &RequestCtx,
    input: routing::PathInput<'_>,
) -> Option<routing::Rewritten> {
    if !vh.rewrite_engine {
        return None;
    }
    let (buf, head) = (&c.buf, &r.head);
    let header = |name: &str| -> Option<&[u8]> { head.header(buf, name.as_bytes()) };
    let input = routing::RewriteInput {
        path: input,
        method: &buf[head.method.clone()],
        https: c.stream.is_tls(),
        header: &header,
    };
    routing::rewrite(vh, &input)
}

/// mod_ssl's checks of a request against its TLS connection: a Host that selects a host
/// whose TLS setup is not the one the handshake chose (by SNI) is answered 421, so a
/// certificate or access setup made for one name never serves another; a client without
/// SNI is refused (403) where the host says `SSLStrictSNIVHostCheck On`.
fn check_server_name(
    cfg: &crate::config::Config,
    c: &ClientConn,
    r: &RequestCtx,
    facts: &crate::transport::TlsFacts,
) -> Result<(), ProxyError> {
    let host_tls = cfg.vhosts[r.vhost].tls.as_deref();
    let Some(sni) = facts.server_name.as_deref() else {
        return match host_tls {
            Some(h) if h.strict_sni => Err(ErrorKind::NoServerName.into()),
            _ => Ok(()),
        };
    };
    let host = r
        .head
        .host
        .clone()
        .map(|h| crate::http::authority::host(&c.buf[h]));
    if host.is_none_or(|h| h.eq_ignore_ascii_case(sni.as_bytes())) {
        return Ok(());
    }
    let by_sni = routing::select_vhost(cfg, c.local, Some(sni.as_bytes()));
    if by_sni == r.vhost {
        return Ok(());
    }
    let compatible = match (cfg.vhosts[by_sni].tls.as_deref(), host_tls) {
        (Some(a), Some(b)) => a.compatible(b),
        _ => false,
    };
    if compatible {
        return Ok(());
    }
    let host = String::from_utf8_lossy(host.unwrap_or_default()).into_owned();
    Err(ErrorKind::Misdirected(host).into())
}

/// TRACE is refused or limited before anything else looks at it (Apache's core).
fn check_trace(trace: TraceEnable, c: &ClientConn, r: &RequestCtx) -> Result<(), ProxyError> {
    if r.head.method(&c.buf) != b"TRACE" {
        return Ok(());
    }
    match trace {
        TraceEnable::Off => Err(ErrorKind::TraceDisabled.into()),
        TraceEnable::On if r.head.body() != RequestBody::None => {
            Err(ErrorKind::TraceWithBody.into())
        }
        _ => Ok(()),
    }
}

/// The routing phase: which balancer takes the request (and the path it routes, into
/// `path`), or which page ringproxy answers it with; refusals and redirects as errors.
async fn route(
    w: &CoreGen,
    c: &mut ClientConn,
    r: &mut RequestCtx,
    path: &mut Vec<u8>,
) -> Result<Target, ProxyError> {
    let cfg = &w.shared.cfg;
    let vh = &cfg.vhosts[r.vhost];
    // `<Location>` access rules come first.
    // `Require host` rules need the client's name: looked up (and cached) only then.
    let ip = r.client_ip(c);
    let client_name = match vh.names_needed {
        true => crate::runtime::dns::client_name(ip).await,
        false => None,
    };
    check_trace(vh.trace, c, r)?;
    // Every rule below sees the normalized path, never the raw one (see routing::normalize).
    let (raw, query) = r.head.target_parts(&c.buf);
    if &c.buf[raw.clone()] == b"*" {
        // `OPTIONS *` names no path: no rule can take it.
        r.npath.clear();
        r.npath.push(b'*');
    } else {
        routing::normalize::normalize(&c.buf[raw.clone()], &vh.paths, &mut r.npath, path)
            .map_err(|e| ProxyError::new(e.into()))?;
    }
    let input = routing::PathInput {
        path: &r.npath,
        raw: &c.buf[raw],
        query: query.map(|q| &c.buf[q]),
        keep_encoded_slashes: vh.paths.encoded_slashes == EncodedSlashes::NoDecode,
    };
    let mut handler = None;
    let client_cert = c.stream.tls().is_some_and(|t| t.client.is_some());
    match routing::location::check(vh, &input, ip, client_name.as_deref(), client_cert) {
        Some(routing::location::Local::Forbidden) => return Err(ErrorKind::Forbidden.into()),
        Some(routing::location::Local::Handler(h)) => handler = Some(h),
        Some(routing::location::Local::Redirect(to)) => return Err(redirected(c, r, vh, cfg, to)),
        None => {}
    }
    let rewritten = rewrite(vh, c, r, input);
    let balancer = match rewritten {
        Some(routing::Rewritten::Proxy {
            balancer,
            path: rewritten,
        }) => {
            path.clear();
            path.extend_from_slice(&rewritten);
            balancer
        }
        Some(routing::Rewritten::Status(s)) => return Err(ErrorKind::RewriteStatus(s).into()),
        Some(routing::Rewritten::Redirect { status, location }) => {
            let host = r.head.host.clone().map(|r| &c.buf[r]);
            let location =
                routing::fully_qualify(location, c.scheme(), host, cfg.server_name_of(vh));
            return Err(ErrorKind::Redirect(status, location).into());
        }
        None => match routing::route_into(vh, &input, path) {
            Some(balancer) => balancer,
            // A `SetHandler` page is served only where no ProxyPass or RewriteRule [P]
            // takes the path: mod_proxy's handler runs first in Apache, which is why its
            // docs pair `<Location /balancer-manager>` with `ProxyPass /balancer-manager !`.
            None => match handler {
                Some(h) => return Ok(Target::Page(h)),
                // mod_alias runs after mod_proxy's translation: a host's redirects take
                // what no ProxyPass took, then its aliases, then the core's DocumentRoot.
                None => match routing::redirect::first(&vh.redirects, &input) {
                    Some(to) => return Err(redirected(c, r, vh, cfg, to)),
                    None => match vh.files.map(&r.npath) {
                        Some(mapped) => return Ok(Target::File(mapped)),
                        None => return Err(ErrorKind::NotProxied.into()),
                    },
                },
            },
        },
    };
    if !vh.proxy_access.is_empty()
        && !routing::location::proxy_allows(
            vh,
            &cfg.balancers[balancer],
            path,
            r.client_text(c),
            client_name.as_deref(),
        )
    {
        return Err(ErrorKind::Forbidden.into());
    }
    Ok(Target::Balancer(balancer))
}

/// A mod_alias answer as an error to send: a redirect with its target made absolute (with
/// the scheme the client used), or the status alone (`Redirect gone`).
fn redirected(
    c: &ClientConn,
    r: &RequestCtx,
    vh: &crate::config::VirtualHost,
    cfg: &crate::config::Config,
    to: routing::redirect::Redirected,
) -> ProxyError {
    match to.location {
        Some(location) => {
            let host = r.head.host.clone().map(|h| &c.buf[h]);
            let location =
                routing::fully_qualify(location, c.scheme(), host, cfg.server_name_of(vh));
            ErrorKind::Redirect(to.status, location).into()
        }
        None => ErrorKind::RewriteStatus(to.status).into(),
    }
}

/// Whether the client connection may stay open after this request, as far as the
/// connection itself goes (KeepAlive, the client's `Connection: close`, draining,
/// MaxKeepAliveRequests); each kind of answer adds its own framing conditions.
pub(crate) fn client_may_keep(w: &CoreGen, c: &ClientConn, r: &RequestCtx) -> bool {
    let core = &w.shared.cfg.core;
    let max_reqs = core.max_keepalive_requests;
    core.keepalive
        && !r.head.close
        && !w.thread.drain.is_draining()
        && (max_reqs == 0 || c.requests < max_reqs)
}
