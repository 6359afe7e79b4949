//! One request's life: route, pick a member, get a connection (pooled or new), forward the
//! head and stream the body, read the response head, stream the response back, return the
//! backend connection to the pool. Retry policy lives here.

use std::time::Duration;

use tracing::{debug, error, warn};

use std::sync::atomic::Ordering;

use crate::balancer::{hash, sticky, BalancerView, MemberView, NoChoice, RequestKeys};

use crate::admin;
use crate::admin::stats::Retry;
use crate::config::{HashKey, LbMethod, Member, TraceEnable};
use crate::conn::{ClientConn, RequestCtx};
use crate::error::{ErrorKind, ProxyError};
use crate::http::body::{BodyError, Framing};
use crate::http::head::{parse_response, RequestBody, ResponseBody};
use crate::http::headers::Env as HeaderEnv;
use crate::http::write::{
    write_request_head, write_response_head, RequestRewrite, ResponseRewrite,
};
use crate::reqtimeout::{RateDeadline, Which};
use crate::routing;
use crate::routing::normalize::EncodedSlashes;
use crate::runtime::timer::coarse_now;
use crate::runtime::CoreGen;
use crate::transport::io::{is_disconnect, read_more, write_all, write_range, IoFail};
use crate::transport::splice::{splice_exact, worth_splicing, PipePool, SpliceError};
use crate::transport::{BackendStream, ConnectError, Transport};
use crate::upstream::pool::{BackendConn, Pool, BACKEND_BUF};

/// A request body up to this size that has fully arrived with the head is sent in the same
/// write as the head, and can be replayed if a pooled connection turns out to be stale.
const INLINE_BODY_MAX: usize = 64 * 1024;

/// How an exchange with one backend connection failed.
enum ExchangeError {
    /// The pooled connection was closed by the backend before it saw our request: retry on a
    /// fresh connection (the request is still whole on our side).
    Stale,
    Fatal(ProxyError),
}

impl From<ProxyError> for ExchangeError {
    fn from(e: ProxyError) -> Self {
        ExchangeError::Fatal(e)
    }
}

/// Why streaming a body stopped early.
enum StreamError {
    SrcTimeout,
    /// The client fell behind its RequestReadTimeout body rate.
    SrcTooSlow,
    SrcIo(std::io::Error),
    SrcEof,
    DstTimeout,
    DstIo(std::io::Error),
    Framing(BodyError),
}

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

async fn forward_routed(
    w: &CoreGen,
    c: &mut ClientConn,
    r: &mut RequestCtx,
    path: &mut Vec<u8>,
) -> Result<bool, ProxyError> {
    let cfg = &w.shared.cfg;
    let host = r.head.host.clone().map(|r| &c.buf[r]);
    let vh_idx = routing::select_vhost(cfg, c.local, host);
    let vh = &cfg.vhosts[vh_idx];
    r.vhost = vh_idx;
    // `<Location>` access rules come first.
    // `Require host` rules need the client's name: looked up (and cached) only then.
    let ip = c.peer.ip();
    let client_name = match vh.names_needed {
        true => crate::dns::client_name(ip).await,
        false => None,
    };
    // TRACE is refused or limited before anything else looks at it (Apache's core).
    if r.head.method(&c.buf) == b"TRACE" {
        match vh.trace {
            TraceEnable::Off => return Err(ErrorKind::TraceDisabled.into()),
            TraceEnable::On if r.head.body() != RequestBody::None => {
                return Err(ErrorKind::TraceWithBody.into())
            }
            _ => {}
        }
    }
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
    match routing::location::check(vh, input.path, ip, client_name.as_deref()) {
        Some(routing::location::Local::Forbidden) => return Err(ErrorKind::Forbidden.into()),
        Some(routing::location::Local::Handler(h)) => handler = Some(h),
        None => {}
    }
    let rewritten = if vh.rewrite_engine {
        let buf = &c.buf;
        let head = &r.head;
        let header = |name: &str| -> Option<&[u8]> { head.header(buf, name.as_bytes()) };
        routing::rewrite(
            vh,
            &routing::RewriteInput {
                path: input,
                method: &buf[head.method.clone()],
                header: &header,
            },
        )
    } else {
        None
    };
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
            let location = routing::fully_qualify(location, host, cfg.server_name_of(vh));
            return Err(ErrorKind::Redirect(status, location).into());
        }
        None => match routing::route_into(vh, &input, path) {
            Some(balancer) => balancer,
            // A `SetHandler` page is served only where no ProxyPass or RewriteRule [P]
            // takes the path: mod_proxy's handler runs first in Apache, which is why its
            // docs pair `<Location /balancer-manager>` with `ProxyPass /balancer-manager !`.
            None => match handler {
                Some(h) => return admin::http::answer(w, c, r, vh, h).await,
                None => return Err(ErrorKind::NotProxied.into()),
            },
        },
    };
    if !vh.proxy_access.is_empty()
        && !routing::location::proxy_allows(
            vh,
            &cfg.balancers[balancer],
            path,
            &c.peer_ip,
            client_name.as_deref(),
        )
    {
        return Err(ErrorKind::Forbidden.into());
    }

    // A body up to ProxyRequestBuffer is read whole now, before a member is chosen: a
    // client sending it slowly then holds no member connection (no Tomcat thread).
    buffer_body(w, c, r).await?;
    // How much of the request body is already here, validated (chunked framing errors are
    // caught before anything is sent to a backend).
    let mut framing = Framing::from(r.head.body());
    let mut probe = framing;
    let adv = probe
        .advance(&c.buf[r.head.len..])
        .map_err(|e| ProxyError::new(e.into()))?;
    let inline = adv.done && adv.consumed <= INLINE_BODY_MAX.max(cfg.core.request_buffer);
    if inline {
        framing = probe;
    }
    let inline_end = r.head.len + if inline { adv.consumed } else { 0 };
    // ringproxy's own failover (beyond Apache's, which moves only after a failed connect):
    // a request still whole here whose method may be repeated (RFC 9110 idempotent), at
    // most once per request.
    let mut idempotent_budget = u8::from(inline && r.head.is_idempotent(&c.buf));
    let shared_b = &w.shared.table.balancers[balancer];
    let local = &w.balancers[balancer];
    let view = local.view(shared_b);
    let route_owned = requested_route(&view, c, r);
    let keys = RequestKeys {
        route: route_owned.as_deref(),
        hash: (view.lbmethod == LbMethod::Hash).then(|| hash_key(&view, c, r)),
    };
    let mut tried: Vec<usize> = Vec::new();
    loop {
        let choice = match local.select(&view, &w.shared.table, keys, &tried) {
            Ok(choice) => choice,
            Err(NoChoice::AllInError) => {
                error!("AH01170: {}: All workers are in error state", view.name);
                return Err(ErrorKind::NoMember(view.name.clone()).into());
            }
            Err(NoChoice::RouteUnavailable(r)) => {
                error!(
                    "AH01172: {}: All workers are in error state for route ({r})",
                    view.name
                );
                return Err(ErrorKind::NoMember(view.name.clone()).into());
            }
        };
        let m = choice.member;
        let mv = &view.members[m];
        let member = &mv.state.member;
        if let Some(rec) = r.log.as_mut() {
            rec.balancer = (!cfg.balancers[balancer].implicit).then(|| view.name.clone());
            rec.member = Some(member.name.clone());
            rec.route = mv.route.clone();
        }
        let timeout = cfg.member_timeout(vh_idx, balancer, member);
        // mod_proxy_balancer's variables, for Header/RequestHeader (only when used).
        let env = if vh.request_headers.is_empty() && vh.response_headers.is_empty() {
            HeaderEnv::default()
        } else {
            HeaderEnv {
                balancer: (!cfg.balancers[balancer].implicit).then(|| view.name.clone()),
                worker_name: Some(member.name.clone()),
                worker_route: mv.route.clone(),
                route_changed: mv.route.is_some() && keys.route != mv.route.as_deref(),
                sticky: view.sticky.as_ref().map(|s| s.cookie.clone()),
                session_route: keys.route.map(str::to_string),
                elapsed: r.started.elapsed(),
            }
        };
        let ctx = Exchange {
            env: &env,
            vh_idx,
            balancer,
            member: m,
            view: &view,
            routed: path,
            timeout,
            inline_end: if inline { Some(inline_end) } else { None },
            set_route: (view.sticky_insert && (keys.route.is_none() || choice.route_changed))
                .then_some(mv.route.as_deref())
                .flatten(),
        };
        // Counted in flight for as long as this member has the request.
        let _busy = mv
            .state
            .busy_guard(w.id, view.lbmethod == LbMethod::ByBusyness);
        let mut allow_pooled = true;
        let failure = loop {
            let pooled = if allow_pooled {
                w.pool.checkout(balancer, m, member)
            } else {
                None
            };
            let counter = if pooled.is_some() {
                &w.stats().pool_hits
            } else {
                &w.stats().pool_misses
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let mut bc = match pooled {
                Some(bc) => bc,
                None => {
                    let ct = cfg.member_connect_timeout(vh_idx, balancer, member);
                    match connect(member, ct).await {
                        Ok(bc) => bc,
                        Err(e) => {
                            fail_member(w, mv, &e, "ap_proxy_connect_backend disabling worker");
                            // Nothing reached the backend: any method may go elsewhere
                            // (Apache's failover, up to maxattempts).
                            w.stats().retries[Retry::Connect as usize]
                                .fetch_add(1, Ordering::Relaxed);
                            break e;
                        }
                    }
                }
            };
            if bc.buf.capacity() == 0 {
                bc.buf = w.thread.backend_bufs.get();
            }
            let exchanged = exchange(w, c, r, &mut bc, &ctx, framing).await;
            // The buffer goes back whatever happened: idle pooled connections (up to
            // hundreds per member) hold none, and a backend that closes every connection
            // does not cost an allocation per request.
            w.thread.backend_bufs.put(std::mem::take(&mut bc.buf));
            match exchanged {
                Ok((keep_client, backend_reusable)) => {
                    if backend_reusable {
                        w.pool.checkin(balancer, m, member, bc);
                    }
                    return Ok(keep_client);
                }
                Err(ExchangeError::Stale) if bc.reused => {
                    debug!(
                        "pooled connection to {} was stale; retrying on a new one",
                        member.name
                    );
                    w.stats().retries[Retry::Stale as usize].fetch_add(1, Ordering::Relaxed);
                    allow_pooled = false;
                }
                Err(ExchangeError::Stale) => {
                    let e = ProxyError::new(ErrorKind::BackendClosed(member.name.clone()));
                    if !take_budget(&mut idempotent_budget) {
                        return Err(e);
                    }
                    w.stats().retries[Retry::Idempotent as usize].fetch_add(1, Ordering::Relaxed);
                    break e;
                }
                Err(ExchangeError::Fatal(e)) => {
                    // Only a connection that ended before any response byte, and never a
                    // timeout: a backend that is slow is still running the request, and
                    // sending it again would multiply its load (Apache answers 504 once).
                    let closed_early = !r.response_started
                        && matches!(
                            e.kind,
                            ErrorKind::BackendClosed(_) | ErrorKind::BackendIo(..)
                        );
                    if !(closed_early && take_budget(&mut idempotent_budget)) {
                        return Err(e);
                    }
                    w.stats().retries[Retry::Idempotent as usize].fetch_add(1, Ordering::Relaxed);
                    break e;
                }
            }
        };
        tried.push(m);
        if tried.len() > view.maxattempts {
            return Err(failure);
        }
        warn!("{failure}; trying another member of {}", view.name);
    }
}

/// The body stage of RequestReadTimeout for this request, started when its head was whole.
fn body_deadline(w: &CoreGen, r: &RequestCtx) -> Option<RateDeadline> {
    let stage = w.shared.cfg.core.read_timeouts.body?;
    Some(RateDeadline::new(stage, r.started))
}

/// Counts and reports a body that arrived too slowly (408).
fn body_too_slow(w: &CoreGen) -> ProxyError {
    w.stats().read_timeouts[Which::Body as usize].fetch_add(1, Ordering::Relaxed);
    ErrorKind::RequestReadTimeout(Which::Body).into()
}

/// Reads the request body into the client buffer until it ends or passes
/// `ProxyRequestBuffer`; a larger body then streams from there. Either way a client has
/// sent that much before it gets a member connection, so a slow one never holds one for
/// long. Framing is checked as it arrives; the body stage of RequestReadTimeout and
/// `Timeout` per read apply. A client waiting for `100 Continue` gets it first.
async fn buffer_body(
    w: &CoreGen,
    c: &mut ClientConn,
    r: &mut RequestCtx,
) -> Result<(), ProxyError> {
    let core = &w.shared.cfg.core;
    let bound = core.request_buffer;
    if r.head.body() == RequestBody::None {
        return Ok(());
    }
    let mut framing = Framing::from(r.head.body());
    let adv = framing
        .advance(&c.buf[r.head.len..])
        .map_err(|e| ProxyError::new(e.into()))?;
    if adv.done || bound == 0 {
        return Ok(());
    }
    let mut pos = r.head.len + adv.consumed;
    send_continue(c, r, core.timeout)
        .await
        .map_err(|e| ProxyError::new(ErrorKind::client(e)))?;
    let mut rate = body_deadline(w, r);
    if let Some(d) = rate.as_mut() {
        d.received(c.buf.len() - r.head.len);
    }
    while c.buf.len() - r.head.len <= bound {
        let (t, by_rate) = match rate.map(|d| d.next_wait(core.timeout, coarse_now())) {
            Some(Some(wait)) => wait,
            Some(None) => return Err(body_too_slow(w)),
            None => (core.timeout, false),
        };
        let want = (bound + 1 - (c.buf.len() - r.head.len)).min(core.io_buffer_size);
        let buf = std::mem::take(&mut c.buf);
        let (res, buf) = read_more(&mut c.stream, buf, want, t).await;
        c.buf = buf;
        match res {
            Ok(0) => return Err(ErrorKind::ClientClosed.into()),
            Ok(n) => {
                if let Some(d) = rate.as_mut() {
                    d.received(n);
                }
            }
            Err(IoFail::Timeout) if by_rate => return Err(body_too_slow(w)),
            Err(e) => return Err(ProxyError::new(ErrorKind::client(e))),
        }
        let adv = framing
            .advance(&c.buf[pos..])
            .map_err(|e| ProxyError::new(e.into()))?;
        pos += adv.consumed;
        if adv.done {
            return Ok(());
        }
    }
    Ok(())
}

/// `100 Continue`, once, to a client that asked for it before sending its body (RFC 9110
/// §10.1.1): before ringproxy reads the body, whether to buffer or to stream it.
async fn send_continue(c: &mut ClientConn, r: &mut RequestCtx, t: Duration) -> Result<(), IoFail> {
    if !r.head.expect_continue || r.continue_sent {
        return Ok(());
    }
    let mut out = std::mem::take(&mut c.out);
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
    let (res, out) = write_all(&mut c.stream, out, t).await;
    c.out = out;
    res?;
    r.continue_sent = true;
    Ok(())
}

/// Spends the one extra attempt ringproxy allows beyond Apache's failover, if left.
fn take_budget(budget: &mut u8) -> bool {
    let had = *budget > 0;
    *budget = budget.saturating_sub(1);
    had
}

/// The sticky route in the request (URL parameter first, then cookie). The parameter is
/// looked for in the normalized path and the query, as Apache reads it from the URL it
/// routed.
fn requested_route(view: &BalancerView, c: &ClientConn, r: &RequestCtx) -> Option<String> {
    let sticky = view.sticky.as_ref()?;
    let mut url = String::from_utf8_lossy(&r.npath).into_owned();
    if let (_, Some(q)) = r.head.target_parts(&c.buf) {
        url.push('?');
        url.push_str(&String::from_utf8_lossy(&c.buf[q]));
    }
    let cookies = header_values(c, r, b"cookie");
    sticky::requested_route(sticky, &url, cookies).map(str::to_string)
}

fn header_values<'a>(
    c: &'a ClientConn,
    r: &'a RequestCtx,
    name: &'a [u8],
) -> impl Iterator<Item = &'a str> + 'a {
    r.head
        .headers_named(&c.buf, name)
        .filter_map(|v| std::str::from_utf8(v).ok())
}

/// The key `lbmethod=hash` hashes; the client address when the header or cookie is absent.
fn hash_key(view: &BalancerView, c: &ClientConn, r: &RequestCtx) -> u64 {
    let value = match &view.hashkey {
        HashKey::ClientIp => None,
        HashKey::Header(name) => header_values(c, r, name.as_bytes()).next(),
        HashKey::Cookie(name) => sticky::cookie_value(header_values(c, r, b"cookie"), name),
    };
    hash::fnv1a(value.unwrap_or(&c.peer_ip).as_bytes())
}

/// Puts a member in error state for its `retry` (Apache logs AH00959 for connect failures).
fn fail_member(w: &CoreGen, mv: &MemberView, e: &dyn std::fmt::Display, what: &str) {
    let member = &mv.state.member;
    let retry = member
        .params
        .retry
        .unwrap_or(crate::balancer::DEFAULT_RETRY);
    let host = member.name.trim_start_matches("http://");
    if w.shared.table.set_error(&mv.state, retry) {
        error!("AH00959: {what} for ({host}) for {}s: {e}", retry.as_secs());
    } else {
        warn!("{e} (member {host} has status I: not put in error state)");
    }
}

async fn connect(member: &Member, t: Duration) -> Result<BackendConn, ProxyError> {
    let keepalive = member.params.keepalive == Some(true);
    let stream = match BackendStream::connect(member.addr, t, keepalive).await {
        Ok(s) => s,
        Err(ConnectError::Io(e)) => return Err(ErrorKind::Connect(member.name.clone(), e).into()),
        Err(ConnectError::Timeout) => {
            return Err(ErrorKind::ConnectTimeout(member.name.clone()).into())
        }
    };
    Ok(BackendConn {
        stream,
        buf: Vec::new(),
        idle_since: crate::runtime::timer::coarse_now(),
        reused: false,
        head: Default::default(),
    })
}

struct Exchange<'a> {
    vh_idx: usize,
    balancer: usize,
    member: usize,
    view: &'a BalancerView,
    /// `stickysessioninsert`: the route to set in the sticky cookie on the response.
    set_route: Option<&'a str>,
    /// Variables for Header/RequestHeader rules.
    env: &'a HeaderEnv,
    routed: &'a [u8],
    timeout: Duration,
    /// Where the request ends in the client buffer when its body came whole with the head.
    inline_end: Option<usize>,
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

/// The request's `Upgrade` value, when it asks for an upgrade (`Connection: upgrade` too)
/// that the member accepts (`upgrade=websocket` or a ws:// member; `upgrade=ANY` or `*` for
/// any protocol, as Apache's mod_proxy_http) and it has no body still to stream.
fn upgrade_request(
    c: &ClientConn,
    r: &RequestCtx,
    member: &Member,
    inline_end: Option<usize>,
) -> Option<std::ops::Range<usize>> {
    let allowed = member.params.upgrade.as_deref()?;
    // A body still to stream after the head cannot share the connection with a tunnel.
    inline_end?;
    let asks = r
        .head
        .connection_tokens
        .iter()
        .any(|t| c.buf[t.clone()].eq_ignore_ascii_case(b"upgrade"));
    if !asks {
        return None;
    }
    let h = r
        .head
        .headers
        .iter()
        .find(|h| c.buf[h.name.clone()].eq_ignore_ascii_case(b"upgrade"))?;
    let value = &c.buf[h.value.clone()];
    let first = value
        .split(|&b| b == b',')
        .next()
        .map(|t| t.trim_ascii())
        .unwrap_or_default();
    let ok = allowed == "*"
        || allowed.eq_ignore_ascii_case("any")
        || allowed
            .split(',')
            .any(|a| a.trim().as_bytes().eq_ignore_ascii_case(first));
    ok.then(|| h.value.clone())
}

/// After `101 Switching Protocols`: the backend's head goes to the client as sent, then bytes
/// flow both ways (see [`crate::transport::tunnel`]) until both sides have closed, or
/// nothing moved either way for `idle` (Apache's ProxyWebsocketIdleTimeout defaults to the
/// worker timeout too). Neither connection is reused afterwards.
async fn tunnel(
    w: &CoreGen,
    c: &mut ClientConn,
    r: &mut RequestCtx,
    bc: &mut BackendConn,
    mv: &MemberView,
    head_len: usize,
    idle: Duration,
) -> Result<(bool, bool), ExchangeError> {
    let early = std::mem::take(&mut bc.buf);
    r.status = 101;
    r.head_out = head_len as u64;
    r.bytes_out = early.len() as u64;
    r.response_started = true;
    let (res, _) = write_all(&mut c.stream, early, idle).await;
    res.map_err(client_io)?;
    // Bytes the client sent after its request head belong to the new protocol.
    let pending = c
        .buf
        .get(r.consumed..)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    r.consumed = c.buf.len();
    if !pending.is_empty() {
        let (res, _) = write_all(&mut bc.stream, pending, idle).await;
        res.map_err(|e| ErrorKind::backend_send(&mv.state.member.name, e).into_ex())?;
    }
    let pipes = (w.shared.cfg.core.splice_threshold > 0).then_some(&w.thread.pipes);
    let (up, down) =
        crate::transport::tunnel::run(&mut c.stream, &mut bc.stream, idle, pipes).await;
    mv.state.on_core(w.id).add_sent(up);
    mv.state.on_core(w.id).add_received(down);
    r.bytes_out += down;
    Ok((false, false))
}

/// One request/response over one backend connection. Returns (client keep-alive, backend
/// connection reusable).
async fn exchange(
    w: &CoreGen,
    c: &mut ClientConn,
    r: &mut RequestCtx,
    bc: &mut BackendConn,
    x: &Exchange<'_>,
    mut framing: Framing,
) -> Result<(bool, bool), ExchangeError> {
    let cfg = &w.shared.cfg;
    let core = &cfg.core;
    let mv = &x.view.members[x.member];
    let member = &mv.state.member;
    let vh = &cfg.vhosts[x.vh_idx];
    let reuse = Pool::reuse_enabled(member);
    let name = || member.name.clone();
    let _ = x.balancer;

    // A WebSocket (or other) upgrade the member accepts: forwarded, and tunnelled on 101.
    let upgrade = upgrade_request(c, r, member, x.inline_end);

    // 1. Head (and a small complete body) in one write.
    let mut target = std::mem::take(&mut c.scratch);
    routing::backend_target(&member.path, x.routed, &mut target);
    let server_name = cfg.server_name_of(vh);
    // The scheme the client used: X-Forwarded-Proto, and ProxyPassReverse's public base.
    let scheme = if c.stream.is_tls() { "https" } else { "http" };
    let mut out = std::mem::take(&mut c.out);
    out.clear();
    write_request_head(
        &mut out,
        &c.buf,
        &r.head,
        &RequestRewrite {
            path: &target,
            host: member.host_header.as_bytes(),
            preserve_host: vh.preserve_host,
            client_ip: c.peer_ip.as_bytes(),
            server_name: server_name.as_bytes(),
            proto: scheme.as_bytes(),
            close: !reuse && upgrade.is_none(),
            rules: &vh.request_headers,
            env: x.env,
        },
        &mut w.thread.fields.borrow_mut(),
    );
    if let Some(u) = &upgrade {
        // The hop-by-hop Upgrade and Connection headers were dropped above; they are
        // exactly what this hop needs.
        if out.ends_with(b"\r\n\r\n") {
            out.truncate(out.len() - 2);
        }
        out.extend_from_slice(b"Connection: Upgrade\r\nUpgrade: ");
        out.extend_from_slice(&c.buf[u.clone()]);
        out.extend_from_slice(b"\r\n\r\n");
    }
    // The address the client used, for ProxyPassReverse. Taken now: streaming the body
    // below reuses the client buffer that the head's ranges point into.
    target.clear();
    target.extend_from_slice(scheme.as_bytes());
    target.extend_from_slice(b"://");
    target.extend_from_slice(
        r.head
            .host
            .clone()
            .map(|r| &c.buf[r])
            .unwrap_or(server_name.as_bytes()),
    );
    c.scratch = target;
    if let Some(end) = x.inline_end {
        out.extend_from_slice(&c.buf[r.head.len..end]);
    }
    let head_bytes = out.len() as u64;
    let (res, out) = write_all(&mut bc.stream, out, x.timeout).await;
    c.out = out;
    match res {
        Ok(()) => {
            mv.state.on_core(w.id).add_sent(head_bytes);
        }
        Err(IoFail::Io(e)) if is_disconnect(&e) => return Err(ExchangeError::Stale),
        Err(IoFail::Io(e)) => return Err(ErrorKind::BackendIo(name(), e).into_ex()),
        Err(IoFail::Timeout) => return Err(ErrorKind::BackendSendTimeout(name()).into_ex()),
    }

    // 2. Stream the rest of the body, if it did not come whole with the head.
    match x.inline_end {
        Some(end) => r.consumed = end,
        None => {
            send_continue(c, r, core.timeout).await.map_err(client_io)?;
            let rate = body_deadline(w, r);
            let buf = std::mem::take(&mut c.buf);
            let start = r.head.len;
            let mut moved = 0;
            let (res, buf) = stream_body(
                &mut c.stream,
                buf,
                start,
                &mut bc.stream,
                &mut framing,
                false,
                &Streaming::new(w, core.timeout, x.timeout).with_rate(rate),
                &mut moved,
            )
            .await;
            mv.state.on_core(w.id).add_sent(moved);
            c.buf = buf;
            r.consumed = match res {
                Ok(pos) => pos,
                Err(StreamError::SrcTimeout) => return Err(ErrorKind::ClientTimeout.into_ex()),
                Err(StreamError::SrcTooSlow) => return Err(ExchangeError::Fatal(body_too_slow(w))),
                Err(StreamError::SrcEof) => return Err(ErrorKind::ClientClosed.into_ex()),
                Err(StreamError::SrcIo(e)) => return Err(ErrorKind::ClientIo(e).into_ex()),
                Err(StreamError::DstTimeout) => {
                    return Err(ErrorKind::BackendSendTimeout(name()).into_ex())
                }
                Err(StreamError::DstIo(e)) => return Err(ErrorKind::BackendIo(name(), e).into_ex()),
                Err(StreamError::Framing(e)) => return Err(ErrorKind::BadBody(e).into_ex()),
            };
        }
    }

    // 3. Response head (skipping interim 1xx responses). The backend connection's own head
    // is reused, so its header list is not allocated again for every response.
    let mut rh = std::mem::take(&mut bc.head);
    loop {
        if !bc.buf.is_empty() {
            match parse_response(&bc.buf, r.head.is_head, &mut rh) {
                Ok(Some(())) => {
                    if (100..200).contains(&rh.status) {
                        if rh.status == 101 && upgrade.is_some() {
                            return tunnel(w, c, r, bc, mv, rh.len, x.timeout).await;
                        }
                        if rh.status == 101 {
                            return Err(ErrorKind::BackendProtocol(
                                name(),
                                "101 Switching Protocols without an upgrade request".into(),
                            )
                            .into_ex());
                        }
                        // Our own 100 already went out; others (103 Early Hints) pass to
                        // HTTP/1.1 clients.
                        if rh.status != 100 && r.head.minor == 1 {
                            let interim = bc.buf[..rh.len].to_vec();
                            let (res, _) = write_all(&mut c.stream, interim, core.timeout).await;
                            res.map_err(client_io)?;
                        }
                        bc.buf.drain(..rh.len);
                        continue;
                    }
                    break;
                }
                Ok(None) => {}
                Err(e) => return Err(ErrorKind::BackendProtocol(name(), e.to_string()).into_ex()),
            }
        }
        let nothing_yet = bc.buf.is_empty();
        let buf = std::mem::take(&mut bc.buf);
        let (res, buf) = read_more(&mut bc.stream, buf, BACKEND_BUF / 2, x.timeout).await;
        bc.buf = buf;
        match res {
            Ok(0) if nothing_yet && x.inline_end.is_some() => return Err(ExchangeError::Stale),
            Ok(0) => return Err(ErrorKind::BackendClosed(name()).into_ex()),
            Ok(_) => {}
            Err(IoFail::Io(e)) if nothing_yet && is_disconnect(&e) && x.inline_end.is_some() => {
                return Err(ExchangeError::Stale)
            }
            Err(IoFail::Io(e)) => return Err(ErrorKind::BackendIo(name(), e).into_ex()),
            Err(IoFail::Timeout) => {
                let e = ErrorKind::BackendTimeout(name());
                if x.view.failontimeout {
                    fail_member(w, mv, &e, "failontimeout: disabling worker");
                }
                return Err(e.into_ex());
            }
        }
    }
    // failonstatus: the member goes into error, and this response is still delivered.
    if x.view.failonstatus.contains(&rh.status) {
        let why = format!("status {} from {}", rh.status, member.name);
        fail_member(w, mv, &why, "failonstatus: disabling worker");
    }

    // 4. Decide the client connection's future before the head goes out.
    let resp_body = rh.body();
    let dechunk = resp_body == ResponseBody::Chunked && r.head.minor == 0;
    let keep_client = client_may_keep(w, c, r) && resp_body != ResponseBody::UntilClose && !dechunk;
    let public_base = std::mem::take(&mut c.scratch);
    let mut out = std::mem::take(&mut c.out);
    out.clear();
    // stickysessioninsert: the value Apache's route parsing reads back as `route`.
    let sticky_cookie = match (x.set_route, &x.view.sticky) {
        (Some(route), Some(sticky)) => {
            let sep = sticky.sep.map(String::from).unwrap_or_default();
            format!(
                "{}={sep}{route}; Path=/; HttpOnly; SameSite=Lax",
                sticky.cookie
            )
        }
        _ => String::new(),
    };
    let set_cookie: [(&[u8], &[u8]); 1] = [(b"Set-Cookie", sticky_cookie.as_bytes())];
    let extra: &[(&[u8], &[u8])] = if sticky_cookie.is_empty() {
        &[]
    } else {
        &set_cookie
    };
    write_response_head(
        &mut out,
        &bc.buf,
        &rh,
        &ResponseRewrite {
            reverse: &vh.reverse,
            cookie_domains: &vh.cookie_domains,
            cookie_paths: &vh.cookie_paths,
            public_base: &public_base,
            close: !keep_client,
            keep_alive_10: keep_client && r.head.minor == 0,
            dechunk,
            extra,
            rules: &vh.response_headers,
            env: &HeaderEnv {
                // A clock read only for rules that can print it (`%D`).
                elapsed: if vh.response_headers.is_empty() {
                    Duration::ZERO
                } else {
                    r.started.elapsed()
                },
                ..x.env.clone()
            },
        },
        &mut w.thread.fields.borrow_mut(),
    );
    c.scratch = public_base;
    r.head_out = out.len() as u64;
    // Body bytes that arrived with the head go out in the same write, when they are the
    // whole body (the common small-response case).
    let mut resp_framing = Framing::from(resp_body);
    let mut pos = rh.len;
    if !dechunk {
        let mut probe = resp_framing;
        if let Ok(adv) = probe.advance(&bc.buf[pos..]) {
            if adv.done {
                out.extend_from_slice(&bc.buf[pos..pos + adv.consumed]);
                pos += adv.consumed;
                resp_framing = probe;
            }
        }
    }
    mv.state.on_core(w.id).add_received(pos as u64);
    r.status = rh.status;
    r.bytes_out = out.len() as u64;
    r.response_started = true;
    let (res, out) = write_all(&mut c.stream, out, core.timeout).await;
    c.out = out;
    res.map_err(client_io)?;

    // 5. The rest of the response body.
    let buf = std::mem::take(&mut bc.buf);
    let mut moved = 0;
    let (res, buf) = stream_body(
        &mut bc.stream,
        buf,
        pos,
        &mut c.stream,
        &mut resp_framing,
        dechunk,
        &Streaming::new(w, x.timeout, core.timeout),
        &mut moved,
    )
    .await;
    mv.state.on_core(w.id).add_received(moved);
    r.bytes_out += moved;
    bc.buf = buf;
    let end = match res {
        Ok(end) => end,
        // Anything after the head was sent: the only honest signal left is closing the
        // client connection, so a truncated body never looks complete.
        Err(StreamError::SrcTimeout) | Err(StreamError::SrcTooSlow) => {
            return Err(ErrorKind::BackendTimeout(name()).into_ex())
        }
        Err(StreamError::SrcEof) => return Err(ErrorKind::BackendClosed(name()).into_ex()),
        Err(StreamError::SrcIo(e)) => return Err(ErrorKind::BackendIo(name(), e).into_ex()),
        Err(StreamError::Framing(e)) => {
            return Err(ErrorKind::BackendProtocol(name(), e.to_string()).into_ex())
        }
        Err(StreamError::DstTimeout) => return Err(ErrorKind::ClientTimeout.into_ex()),
        Err(StreamError::DstIo(e)) => return Err(ErrorKind::ClientIo(e).into_ex()),
    };
    let backend_reusable = reuse
        && !rh.close
        && resp_framing.is_done()
        && end == bc.buf.len()
        && !matches!(resp_framing, Framing::UntilClose);
    bc.head = rh;
    Ok((keep_client, backend_reusable))
}

trait IntoEx {
    fn into_ex(self) -> ExchangeError;
}

impl IntoEx for ErrorKind {
    fn into_ex(self) -> ExchangeError {
        ExchangeError::Fatal(ProxyError::new(self))
    }
}

fn client_io(e: IoFail) -> ExchangeError {
    ErrorKind::client(e).into_ex()
}

/// How one body is moved: timeouts, read size, and when to splice.
struct Streaming<'a> {
    read_t: Duration,
    write_t: Duration,
    /// Read size (ProxyIOBufferSize).
    chunk: usize,
    /// The worker's pipes and SpliceThreshold.
    splice: (&'a PipePool, u64),
    /// The source's RequestReadTimeout stage (a request body from the client).
    rate: std::cell::Cell<Option<RateDeadline>>,
}

impl<'a> Streaming<'a> {
    fn new(w: &'a CoreGen, read_t: Duration, write_t: Duration) -> Self {
        let core = &w.shared.cfg.core;
        Streaming {
            read_t,
            write_t,
            chunk: core.io_buffer_size,
            splice: (&w.thread.pipes, core.splice_threshold),
            rate: std::cell::Cell::new(None),
        }
    }

    /// The source must also keep up with this rate (mod_reqtimeout's body stage).
    fn with_rate(self, rate: Option<RateDeadline>) -> Self {
        self.rate.set(rate);
        self
    }

    /// How long the next read may wait, and whether the rate (not `read_t`) set that.
    fn next_read(&self) -> Result<(Duration, bool), StreamError> {
        match self
            .rate
            .get()
            .map(|d| d.next_wait(self.read_t, coarse_now()))
        {
            Some(Some(wait)) => Ok(wait),
            Some(None) => Err(StreamError::SrcTooSlow),
            None => Ok((self.read_t, false)),
        }
    }

    fn received(&self, n: usize) {
        if let Some(mut d) = self.rate.get() {
            d.received(n);
            self.rate.set(Some(d));
        }
    }
}

/// Moves one body from `src` to `dst`. `buf[pos..]` holds bytes already read from `src`.
/// Returns the position in the returned buffer where bytes after the body start (pipelined
/// requests on the client side); `moved` counts the bytes written.
#[allow(clippy::too_many_arguments)]
async fn stream_body(
    src: &mut impl Transport,
    mut buf: Vec<u8>,
    mut pos: usize,
    dst: &mut impl Transport,
    framing: &mut Framing,
    dechunk: bool,
    how: &Streaming<'_>,
    moved: &mut u64,
) -> (Result<usize, StreamError>, Vec<u8>) {
    let (read_t, write_t, chunk) = (how.read_t, how.write_t, how.chunk);
    loop {
        if framing.is_done() {
            return (Ok(pos), buf);
        }
        while pos < buf.len() {
            // One framing step, then write what it covered.
            let (write, consumed, done) = if dechunk {
                let Framing::Chunked(dec) = framing else {
                    unreachable!("dechunk is only chosen for chunked bodies")
                };
                match dec.decode(&buf[pos..]) {
                    Ok(step) => (
                        step.data.map(|d| pos + d.start..pos + d.end),
                        step.consumed,
                        step.done,
                    ),
                    Err(e) => return (Err(StreamError::Framing(e)), buf),
                }
            } else {
                match framing.advance(&buf[pos..]) {
                    Ok(adv) => (Some(pos..pos + adv.consumed), adv.consumed, adv.done),
                    Err(e) => return (Err(StreamError::Framing(e)), buf),
                }
            };
            if let Some(range) = write {
                *moved += range.len() as u64;
                let (res, b) = write_range(dst, buf, range, write_t).await;
                buf = b;
                match res {
                    Ok(()) => {}
                    Err(IoFail::Timeout) => return (Err(StreamError::DstTimeout), buf),
                    Err(IoFail::Io(e)) => return (Err(StreamError::DstIo(e)), buf),
                }
            }
            pos += consumed;
            if done {
                return (Ok(pos), buf);
            }
            if consumed == 0 {
                break;
            }
        }
        // Everything read so far was body and has been forwarded: reuse the buffer.
        buf.clear();
        pos = 0;
        // A large rest of a known length goes through a pipe, never through user space.
        let (pipes, threshold) = how.splice;
        if let (Framing::Length(rest), false) = (*framing, dechunk) {
            if worth_splicing(src, dst, rest, threshold) {
                let mut pipe = match pipes.get_for_body() {
                    Ok(p) => p,
                    Err(e) => return (Err(StreamError::SrcIo(e)), buf),
                };
                let res = splice_exact(
                    src,
                    dst,
                    &mut pipe,
                    rest,
                    (read_t, write_t),
                    &how.rate,
                    moved,
                )
                .await;
                return match res {
                    Ok(()) => {
                        pipes.put_empty(pipe);
                        *framing = Framing::Length(0);
                        (Ok(0), buf)
                    }
                    Err(e) => (
                        Err(match e {
                            SpliceError::SrcTimeout => StreamError::SrcTimeout,
                            SpliceError::SrcTooSlow => StreamError::SrcTooSlow,
                            SpliceError::SrcEof => StreamError::SrcEof,
                            SpliceError::SrcIo(e) => StreamError::SrcIo(e),
                            SpliceError::DstTimeout => StreamError::DstTimeout,
                            SpliceError::DstIo(e) => StreamError::DstIo(e),
                        }),
                        buf,
                    ),
                };
            }
        }
        let (t, by_rate) = match how.next_read() {
            Ok(wait) => wait,
            Err(e) => return (Err(e), buf),
        };
        let (res, b) = read_more(src, buf, chunk, t).await;
        buf = b;
        match res {
            Ok(0) => {
                if matches!(framing, Framing::UntilClose) {
                    return (Ok(0), buf);
                }
                return (Err(StreamError::SrcEof), buf);
            }
            Ok(n) => how.received(n),
            Err(IoFail::Timeout) if by_rate => return (Err(StreamError::SrcTooSlow), buf),
            Err(IoFail::Timeout) => return (Err(StreamError::SrcTimeout), buf),
            Err(IoFail::Io(e)) => return (Err(StreamError::SrcIo(e)), buf),
        }
    }
}
