//! The attempt loop: choose a member, take a session (pooled or new), run the exchange,
//! and on failure ask [`super::policy`] what comes next. Nothing here depends on the
//! member protocol: sessions come from [`crate::upstream`].

use std::sync::atomic::Ordering;

use tracing::{debug, error, warn};

use crate::admin::stats::{Retry, WorkerStats};
use crate::balancer::{BalancerView, Choice, CoreView, NoChoice, RequestKeys};
use crate::config::LbMethod;
use crate::error::{ErrorKind, ProxyError};
use crate::http::body::Framing;
use crate::http::headers::Env as HeaderEnv;
use crate::http::server::{ClientConn, RequestCtx};
use crate::runtime::CoreGen;
use crate::transport::tls::HandshakeError;
use crate::upstream::{self, UpstreamSession};

use super::exchange::{http1_exchange, Exchange, ExchangeError};
use super::members::{fail_member, hash_key, requested_route};
use super::policy::{self, Next, Outcome, Retries};

/// A routed request, ready to go to a member of `balancer`.
pub(super) struct Routed<'a> {
    pub vh_idx: usize,
    pub balancer: usize,
    /// The path as routed (what the member's own path is prefixed to).
    pub path: &'a [u8],
    /// The request body's framing from where the buffered part ends.
    pub framing: Framing,
    /// Where the request ends in the client buffer when its body came whole with the head.
    pub inline_end: Option<usize>,
}

/// Why the attempts on one member ended without an answer.
enum MemberFailed {
    /// Try another member (if `maxattempts` allows); this is the error otherwise.
    Next(ProxyError),
    /// Answer with this error.
    GiveUp(ProxyError),
}

/// Sends the request to members of its balancer until one answers or the policy gives
/// up. Returns whether the client connection stays.
pub(super) async fn run(
    w: &CoreGen,
    c: &mut ClientConn,
    r: &mut RequestCtx,
    routed: &Routed<'_>,
) -> Result<bool, ProxyError> {
    let local = &w.balancers[routed.balancer];
    let view = local.view(&w.shared.table.balancers[routed.balancer]);
    let route = requested_route(&view, c, r);
    let keys = RequestKeys {
        route: route.as_deref(),
        hash: (view.lbmethod == LbMethod::Hash).then(|| hash_key(&view, c, r)),
    };
    let whole = routed.inline_end.is_some();
    let mut retries = Retries::new(whole, r.head.is_idempotent(&c.buf));
    let mut tried: Vec<usize> = Vec::new();
    loop {
        let choice = choose(w, routed.balancer, &view, keys, &tried)?;
        let failure = match on_member(w, c, r, routed, &view, keys, choice, &mut retries).await {
            Ok(keep) => return Ok(keep),
            Err(MemberFailed::GiveUp(e)) => return Err(e),
            Err(MemberFailed::Next(e)) => e,
        };
        tried.push(choice.member);
        if !policy::another_member(tried.len(), view.maxattempts) {
            return Err(failure);
        }
        warn!("{failure}; trying another member of {}", view.name);
    }
}

/// The balancer's choice among the members not tried yet.
fn choose(
    w: &CoreGen,
    balancer: usize,
    view: &BalancerView,
    keys: RequestKeys<'_>,
    tried: &[usize],
) -> Result<Choice, ProxyError> {
    match w.balancers[balancer].select(view, &w.shared.table, keys, tried) {
        Ok(choice) => Ok(choice),
        Err(NoChoice::AllInError) => {
            error!("AH01170: {}: All workers are in error state", view.name);
            Err(ErrorKind::NoMember(view.name.clone()).into())
        }
        Err(NoChoice::RouteUnavailable(route)) => {
            error!(
                "AH01172: {}: All workers are in error state for route ({route})",
                view.name
            );
            Err(ErrorKind::NoMember(view.name.clone()).into())
        }
    }
}

/// Attempts on the chosen member: a pooled session first, a new one after a stale one.
#[allow(clippy::too_many_arguments)]
async fn on_member(
    w: &CoreGen,
    c: &mut ClientConn,
    r: &mut RequestCtx,
    routed: &Routed<'_>,
    view: &CoreView,
    keys: RequestKeys<'_>,
    choice: Choice,
    retries: &mut Retries,
) -> Result<bool, MemberFailed> {
    let cfg = &w.shared.cfg;
    let (b, m) = (routed.balancer, choice.member);
    let mv = &view.members[m];
    let member = &mv.state.member;
    let implicit = cfg.balancers[b].implicit;
    if let Some(rec) = r.log.as_mut() {
        rec.balancer = (!implicit).then(|| view.name.clone());
        rec.member = Some(member.name.clone());
        rec.route = mv.route.clone();
    }
    let env = header_env(w, c, r, routed, view, keys, m);
    let x = Exchange {
        env: &env,
        vh_idx: routed.vh_idx,
        member: m,
        view,
        routed: routed.path,
        timeout: cfg.member_timeout(routed.vh_idx, b, member),
        inline_end: routed.inline_end,
        route: keys.route,
        set_route: (view.sticky_insert && (keys.route.is_none() || choice.route_changed))
            .then_some(mv.route.as_deref())
            .flatten(),
    };
    // Counted in flight for as long as this member has the request.
    let _busy = mv
        .state
        .busy_guard(w.id, view.lbmethod == LbMethod::ByBusyness);
    let mut pooled_ok = true;
    loop {
        let (outcome, e) = match attempt(w, c, r, routed, &x, pooled_ok).await {
            Ok(keep) => return Ok(keep),
            Err(failed) => failed,
        };
        match retries.next(outcome) {
            Next::FreshConnection => {
                debug!(
                    "pooled connection to {} was stale; retrying on a new one",
                    member.name
                );
                w.stats().retries[Retry::Stale as usize].fetch_add(1, Ordering::Relaxed);
                pooled_ok = false;
            }
            Next::OtherMember(why) => {
                w.stats().retries[why as usize].fetch_add(1, Ordering::Relaxed);
                return Err(MemberFailed::Next(e));
            }
            Next::GiveUp => return Err(MemberFailed::GiveUp(e)),
        }
    }
}

/// One attempt on a session with the exchange's member. On failure: what the policy needs
/// to know, and the error.
async fn attempt(
    w: &CoreGen,
    c: &mut ClientConn,
    r: &mut RequestCtx,
    routed: &Routed<'_>,
    x: &Exchange<'_>,
    pooled_ok: bool,
) -> Result<bool, (Outcome, ProxyError)> {
    let mv = &x.view.members[x.member];
    let member = &mv.state.member;
    // ProxyPreserveHost On: a TLS member is sent the client's host name (Apache's SNI).
    let vh = &w.shared.cfg.vhosts[routed.vh_idx];
    let sni = match (&r.head.host, vh.preserve_host) {
        (Some(h), true) => upstream::preserved_sni(member, &c.buf[h.clone()]),
        _ => None,
    };
    let mut session = match session(w, routed, x, pooled_ok, sni).await {
        Ok(s) => s,
        Err(e) => {
            fail_member(w, mv, &e, "ap_proxy_connect_backend disabling worker");
            return Err((Outcome::ConnectFailed, e));
        }
    };
    session.lend_buffer(&w.thread.backend_bufs);
    // The member protocol decides how the exchange goes (one arm per session variant).
    let exchanged = match &mut session {
        UpstreamSession::Http1(s) => http1_exchange(w, c, r, s, x, routed.framing).await,
        UpstreamSession::Ajp(s) => super::ajp::ajp_exchange(w, c, r, s, x).await,
    };
    session.return_buffer(&w.thread.backend_bufs);
    match exchanged {
        Ok((keep, reusable)) => {
            if reusable {
                w.pool.checkin(routed.balancer, x.member, member, session);
            }
            Ok(keep)
        }
        Err(ExchangeError::Stale) => {
            let pooled = session.reused();
            let e = ProxyError::new(ErrorKind::BackendClosed(member.name.clone()));
            Err((Outcome::Stale { pooled }, e))
        }
        Err(ExchangeError::Fatal(e)) => {
            let closed_early = policy::closed_early(&e, r.response_started);
            Err((Outcome::Failed { closed_early }, e))
        }
    }
}

/// A session with the exchange's member: from the pool when `pooled_ok` and one is idle,
/// else a new connection.
async fn session(
    w: &CoreGen,
    routed: &Routed<'_>,
    x: &Exchange<'_>,
    pooled_ok: bool,
    sni: Option<&str>,
) -> Result<UpstreamSession, ProxyError> {
    let (b, m) = (routed.balancer, x.member);
    let member = &x.view.members[m].state.member;
    let pooled = pooled_ok
        .then(|| w.pool.checkout(b, m, member, sni))
        .flatten();
    let stats = w.stats();
    let counter = match pooled {
        Some(_) => &stats.pool_hits,
        None => &stats.pool_misses,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let Some(s) = pooled else {
        let t = w
            .shared
            .cfg
            .member_connect_timeout(routed.vh_idx, b, member);
        let made = upstream::connect(member, t, sni, w.shared.cfg.core.ajp_packet_size).await;
        count_member_tls(stats, &made);
        return made;
    };
    Ok(s)
}

/// A new session's TLS handshake (if it was a TLS member's), in the metrics.
fn count_member_tls(stats: &WorkerStats, made: &Result<UpstreamSession, ProxyError>) {
    let r = Ordering::Relaxed;
    match made {
        Ok(s) => {
            if let Some(facts) = s.tls() {
                stats.member_tls_handshakes[usize::from(facts.resumed)].fetch_add(1, r);
            }
        }
        Err(e) => {
            if let ErrorKind::MemberTls(_, h) = &e.kind {
                let reason = h.reason_as_client();
                let i = HandshakeError::REASONS.iter().position(|x| *x == reason);
                if let Some(i) = i {
                    stats.member_tls_failures[i].fetch_add(1, r);
                }
            }
        }
    }
}

/// mod_proxy_balancer's variables, for Header/RequestHeader (only when rules use them).
#[allow(clippy::too_many_arguments)]
fn header_env(
    w: &CoreGen,
    c: &ClientConn,
    r: &RequestCtx,
    routed: &Routed<'_>,
    view: &BalancerView,
    keys: RequestKeys<'_>,
    m: usize,
) -> HeaderEnv {
    let cfg = &w.shared.cfg;
    let vh = &cfg.vhosts[routed.vh_idx];
    if vh.request_headers.is_empty() && vh.response_headers.is_empty() {
        return HeaderEnv::default();
    }
    let mv = &view.members[m];
    let implicit = cfg.balancers[routed.balancer].implicit;
    HeaderEnv {
        balancer: (!implicit).then(|| view.name.clone()),
        worker_name: Some(mv.state.member.name.clone()),
        worker_route: mv.route.clone(),
        route_changed: mv.route.is_some() && keys.route != mv.route.as_deref(),
        sticky: view.sticky.as_ref().map(|s| s.cookie.clone()),
        session_route: keys.route.map(str::to_string),
        elapsed: r.started.elapsed(),
        tls: crate::transport::Transport::tls(&c.stream).cloned(),
    }
}
