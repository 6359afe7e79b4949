//! One attempt: a request and its response over one member session, in phases. For
//! HTTP/1.1 members ([`http1_exchange`]; the attempt loop picks the function by the
//! session's protocol): send the head (with
//! a small body in the same write), stream the rest of the body, wait for the response
//! head (passing interim responses on), answer the client, relay the body. An upgrade
//! accepted with `101` becomes a tunnel.

use std::ops::Range;
use std::time::Duration;

use crate::balancer::{BalancerView, MemberView};
use crate::config::Member;
use crate::error::{ErrorKind, ProxyError};
use crate::http::body::Framing;
use crate::http::head::ResponseBody;
use crate::http::headers::Env as HeaderEnv;
use crate::http::relay::{stream_body, StreamError, Streaming};
use crate::http::server::{ClientConn, RequestCtx};
use crate::http::write::{
    write_request_head, write_response_head, RequestRewrite, ResponseRewrite,
};
use crate::routing;
use crate::runtime::CoreGen;
use crate::transport::io::{write_all, IoFail};
use crate::upstream::http1::{self, HeadEvent, Http1Error, Http1Session};
use crate::upstream::pool::Pool;

use super::body::{body_deadline, body_too_slow, send_continue};
use super::members::fail_member;

/// What one attempt needs to know besides the connection and the request.
pub(super) struct Exchange<'a> {
    pub vh_idx: usize,
    pub member: usize,
    pub view: &'a BalancerView,
    /// `stickysessioninsert`: the route to set in the sticky cookie on the response.
    pub set_route: Option<&'a str>,
    /// Variables for Header/RequestHeader rules.
    pub env: &'a HeaderEnv,
    pub routed: &'a [u8],
    pub timeout: Duration,
    /// Where the request ends in the client buffer when its body came whole with the head.
    pub inline_end: Option<usize>,
    /// The route the request asked for (its sticky session's), for AJP's `jvm_route`.
    pub route: Option<&'a str>,
}

impl Exchange<'_> {
    pub(super) fn mv(&self) -> &MemberView {
        &self.view.members[self.member]
    }

    pub(super) fn member(&self) -> &Member {
        &self.mv().state.member
    }
}

/// How an attempt failed.
pub(super) enum ExchangeError {
    /// The connection was closed by the member before it saw the request: the request is
    /// still whole on the proxy (see `policy`).
    Stale,
    Fatal(ProxyError),
}

impl From<ProxyError> for ExchangeError {
    fn from(e: ProxyError) -> Self {
        ExchangeError::Fatal(e)
    }
}

pub(super) fn fatal(kind: ErrorKind) -> ExchangeError {
    ExchangeError::Fatal(ProxyError::new(kind))
}

pub(super) fn client_io(e: IoFail) -> ExchangeError {
    fatal(ErrorKind::client(e))
}

/// An HTTP/1.1 member's failure, typed for the error mapping and the retry policy.
fn member_error(member: &Member, e: Http1Error) -> ExchangeError {
    let name = member.name.clone();
    match e {
        Http1Error::Stale => ExchangeError::Stale,
        Http1Error::Closed => fatal(ErrorKind::BackendClosed(name)),
        Http1Error::Io(e) => fatal(ErrorKind::BackendIo(name, e)),
        Http1Error::SendTimeout => fatal(ErrorKind::BackendSendTimeout(name)),
        Http1Error::Timeout => fatal(ErrorKind::BackendTimeout(name)),
        Http1Error::Protocol(m) => fatal(ErrorKind::BackendProtocol(name, m)),
    }
}

/// One request and its response over an HTTP/1.1 member session. Returns (client
/// keep-alive, session reusable).
pub(super) async fn http1_exchange(
    w: &CoreGen,
    c: &mut ClientConn,
    r: &mut RequestCtx,
    s: &mut Http1Session,
    x: &Exchange<'_>,
    framing: Framing,
) -> Result<(bool, bool), ExchangeError> {
    // A WebSocket (or other) upgrade the member accepts: forwarded, and tunnelled on 101.
    let upgrade = http1::upgrade_request(&c.buf, &r.head, x.member(), x.inline_end.is_some());
    send_request(w, c, r, s, x, upgrade.clone()).await?;
    send_body(w, c, r, s, x, framing).await?;
    if let Some(head_len) = await_response(w, c, r, s, x).await? {
        if upgrade.is_none() {
            let why = "101 Switching Protocols without an upgrade request".to_string();
            return Err(fatal(ErrorKind::BackendProtocol(
                x.member().name.clone(),
                why,
            )));
        }
        return tunnel(w, c, r, s, x, head_len).await;
    }
    // failonstatus: the member goes into error, and this response is still delivered.
    let status = s.head.status;
    if x.view.failonstatus.contains(&status) {
        let why = format!("status {status} from {}", x.member().name);
        fail_member(w, x.mv(), &why, "failonstatus: disabling worker");
    }
    let (keep_client, framing, pos) = respond(w, c, r, s, x).await?;
    relay_response(w, c, r, s, x, framing, pos)
        .await
        .map(|reusable| (keep_client, reusable))
}

/// Phase 1: the request head, and a body that came whole with it, in one write.
async fn send_request(
    w: &CoreGen,
    c: &mut ClientConn,
    r: &mut RequestCtx,
    s: &mut Http1Session,
    x: &Exchange<'_>,
    upgrade: Option<Range<usize>>,
) -> Result<(), ExchangeError> {
    let cfg = &w.shared.cfg;
    let vh = &cfg.vhosts[x.vh_idx];
    let member = x.member();
    let mut target = std::mem::take(&mut c.scratch);
    routing::backend_target(&member.path, x.routed, &mut target);
    let server_name = cfg.server_name_of(vh);
    // The scheme the client used: X-Forwarded-Proto, and ProxyPassReverse's public base.
    let scheme = c.scheme().name();
    let via = via_hop(w, c, vh, r.head.minor);
    let mut out = std::mem::take(&mut c.out);
    out.clear();
    let rewrite = RequestRewrite {
        path: &target,
        host: member.host_header.as_bytes(),
        preserve_host: vh.preserve_host,
        client_ip: r.client_text(c).as_bytes(),
        server_name: server_name.as_bytes(),
        proto: scheme.as_bytes(),
        close: !Pool::reuse_enabled(member) && upgrade.is_none(),
        rules: &vh.request_headers,
        env: x.env,
        remote: remote_edit(vh, r),
        via: match (&via, vh.via) {
            (Some(hop), _) => crate::http::write::ViaEdit::Add(hop.as_bytes()),
            (None, Some(crate::config::Via::Block)) => crate::http::write::ViaEdit::Block,
            (None, _) => crate::http::write::ViaEdit::Pass,
        },
        add_forwarded: vh.add_headers.unwrap_or(true),
    };
    // The core's scratch list, borrowed for this statement only (never across an await).
    write_request_head(
        &mut out,
        &c.buf,
        &r.head,
        &rewrite,
        &mut w.thread.fields.borrow_mut(),
    );
    if let Some(u) = upgrade {
        http1::add_upgrade(&mut out, &c.buf[u]);
    }
    // The address the client used, for ProxyPassReverse. Taken now: streaming the body
    // below reuses the client buffer that the head's ranges point into.
    let host = r.head.host.clone().map(|h| &c.buf[h]);
    target.clear();
    target.extend_from_slice(scheme.as_bytes());
    target.extend_from_slice(b"://");
    target.extend_from_slice(host.unwrap_or(server_name.as_bytes()));
    c.scratch = target;
    if let Some(end) = x.inline_end {
        out.extend_from_slice(&c.buf[r.head.len..end]);
    }
    let head_bytes = out.len() as u64;
    let (res, out) = s.send_head(out, x.timeout).await;
    c.out = out;
    res.map_err(|e| member_error(member, e))?;
    x.mv().state.on_core(w.id).add_sent(head_bytes);
    Ok(())
}

/// Phase 2: the rest of the request body, when it did not come whole with the head.
async fn send_body(
    w: &CoreGen,
    c: &mut ClientConn,
    r: &mut RequestCtx,
    s: &mut Http1Session,
    x: &Exchange<'_>,
    mut framing: Framing,
) -> Result<(), ExchangeError> {
    if let Some(end) = x.inline_end {
        r.consumed = end;
        return Ok(());
    }
    let core = &w.shared.cfg.core;
    send_continue(c, r, core.timeout).await.map_err(client_io)?;
    let how = streaming(w, core.timeout, x.timeout).with_rate(body_deadline(w, r));
    let buf = std::mem::take(&mut c.buf);
    let mut moved = 0;
    let (res, buf) = stream_body(
        &mut c.stream,
        buf,
        r.head.len,
        &mut s.stream,
        &mut framing,
        false,
        &how,
        &mut moved,
    )
    .await;
    x.mv().state.on_core(w.id).add_sent(moved);
    c.buf = buf;
    r.consumed = match res {
        Ok(pos) => pos,
        Err(StreamError::SrcTooSlow) => return Err(ExchangeError::Fatal(body_too_slow(w))),
        Err(e) => return Err(fatal(relay_error(e, Source::Client, x.member()))),
    };
    Ok(())
}

/// Where a relayed body came from.
enum Source {
    Client,
    Member,
}

/// A body relay's failure as the error it is, by which side the body came from. After a
/// response head went out, a failure can only close the client connection, so a
/// truncated body never looks complete.
fn relay_error(e: StreamError, from: Source, member: &Member) -> ErrorKind {
    let name = || member.name.clone();
    match (e, from) {
        (StreamError::SrcTimeout, Source::Client) => ErrorKind::ClientTimeout,
        (StreamError::SrcTooSlow, Source::Client) => {
            ErrorKind::RequestReadTimeout(crate::http::reqtimeout::Which::Body)
        }
        (StreamError::SrcEof, Source::Client) => ErrorKind::ClientClosed,
        (StreamError::SrcIo(e), Source::Client) => ErrorKind::ClientIo(e),
        (StreamError::DstTimeout, Source::Client) => ErrorKind::BackendSendTimeout(name()),
        (StreamError::DstIo(e), Source::Client) => ErrorKind::BackendIo(name(), e),
        (StreamError::Framing(e), Source::Client) => ErrorKind::BadBody(e),
        (StreamError::SrcTimeout | StreamError::SrcTooSlow, Source::Member) => {
            ErrorKind::BackendTimeout(name())
        }
        (StreamError::SrcEof, Source::Member) => ErrorKind::BackendClosed(name()),
        (StreamError::SrcIo(e), Source::Member) => ErrorKind::BackendIo(name(), e),
        (StreamError::DstTimeout, Source::Member) => ErrorKind::ClientTimeout,
        (StreamError::DstIo(e), Source::Member) => ErrorKind::ClientIo(e),
        (StreamError::Framing(e), Source::Member) => {
            ErrorKind::BackendProtocol(name(), e.to_string())
        }
    }
}

/// How bodies move on this core: the read size, the pipes and SpliceThreshold.
fn streaming(w: &CoreGen, read_t: Duration, write_t: Duration) -> Streaming<'_> {
    let core = &w.shared.cfg.core;
    Streaming::new(
        read_t,
        write_t,
        core.io_buffer_size,
        (&w.thread.pipes, core.splice_threshold),
    )
}

/// Phase 3: waits for the final response head. Interim responses pass to HTTP/1.1 clients
/// (ringproxy's own `100 Continue` already went out, so a member's is dropped). Returns the
/// head's length when it is `101 Switching Protocols`.
async fn await_response(
    w: &CoreGen,
    c: &mut ClientConn,
    r: &RequestCtx,
    s: &mut Http1Session,
    x: &Exchange<'_>,
) -> Result<Option<usize>, ExchangeError> {
    let replayable = x.inline_end.is_some();
    loop {
        match s.read_head(r.head.is_head, replayable, x.timeout).await {
            Ok(HeadEvent::Final) => return Ok(None),
            Ok(HeadEvent::Switching(len)) => return Ok(Some(len)),
            Ok(HeadEvent::Interim(status, len)) => {
                if status != 100 && r.head.minor == 1 {
                    let interim = s.buf[..len].to_vec();
                    let t = w.shared.cfg.core.timeout;
                    let (res, _) = write_all(&mut c.stream, interim, t).await;
                    res.map_err(client_io)?;
                }
                s.skip(len);
            }
            Err(Http1Error::Timeout) => {
                let e = ErrorKind::BackendTimeout(x.member().name.clone());
                if x.view.failontimeout {
                    fail_member(w, x.mv(), &e, "failontimeout: disabling worker");
                }
                return Err(fatal(e));
            }
            Err(e) => return Err(member_error(x.member(), e)),
        }
    }
}

/// Phase 4: the response head to the client, with the body when it came whole with the
/// head (the common small-response case) in the same write. Returns whether the client
/// connection stays, the body's framing, and where the rest of the body starts in the
/// session's buffer.
async fn respond(
    w: &CoreGen,
    c: &mut ClientConn,
    r: &mut RequestCtx,
    s: &mut Http1Session,
    x: &Exchange<'_>,
) -> Result<(bool, Framing, usize), ExchangeError> {
    let (keep_client, dechunk, mut out) = response_head(w, c, r, x, &s.buf, &s.head)?;
    let rh = &s.head;
    let mut framing = Framing::from(rh.body());
    let mut pos = rh.len;
    if !dechunk {
        let mut probe = framing;
        if let Ok(adv) = probe.advance(&s.buf[pos..]) {
            if adv.done {
                out.extend_from_slice(&s.buf[pos..pos + adv.consumed]);
                pos += adv.consumed;
                framing = probe;
            }
        }
    }
    x.mv().state.on_core(w.id).add_received(pos as u64);
    r.bytes_out = out.len() as u64;
    r.response_started = true;
    let (res, out) = write_all(&mut c.stream, out, w.shared.cfg.core.timeout).await;
    c.out = out;
    res.map_err(client_io)?;
    Ok((keep_client, framing, pos))
}

/// The response head `rh` (parsed from `buf`) as it goes to the client, in `c.out` taken:
/// rewritten (ProxyPassReverse, cookies, `Header` rules, the sticky cookie), with the
/// client connection's future decided. Returns (client keep-alive, whether a chunked body
/// goes to an HTTP/1.0 client de-chunked, the head). The caller marks the response
/// started when it writes. Any member protocol's response goes through here.
/// `ProxyVia On|Full`: this hop as Apache writes it in `Via` (`1.1 name[:port]`, the port
/// when it is not the scheme's default, the protocol version `minor` of the message it
/// goes on, and the version with Full).
fn via_hop(
    w: &CoreGen,
    c: &ClientConn,
    vh: &crate::config::VirtualHost,
    minor: u8,
) -> Option<String> {
    use crate::config::Via;
    let full = match vh.via? {
        Via::On => false,
        Via::Full => true,
        Via::Off | Via::Block => return None,
    };
    let name = w.shared.cfg.server_name_of(vh);
    let port = c.local.port();
    let default = c.scheme().default_port();
    let mut hop = format!("1.{minor} {name}");
    if port != default {
        hop.push_str(&format!(":{port}"));
    }
    if full {
        hop.push_str(concat!(" (ringproxy/", env!("CARGO_PKG_VERSION"), ")"));
    }
    Some(hop)
}

/// mod_remoteip's edit of the forwarded head, when it found the client (see
/// [`crate::http::write::RemoteEdit`]).
pub(super) fn remote_edit<'a>(
    vh: &'a crate::config::VirtualHost,
    r: &'a RequestCtx,
) -> Option<crate::http::write::RemoteEdit<'a>> {
    let remote = r.remote.as_ref()?;
    Some(crate::http::write::RemoteEdit {
        header: vh.remote_ip.header.as_deref()?.as_bytes(),
        rest: remote.rest.as_deref().map(str::as_bytes),
        proxies_header: vh.remote_ip.proxies_header.as_deref().map(str::as_bytes),
        proxies: remote.proxies.as_deref().map(str::as_bytes),
    })
}

pub(super) fn response_head(
    w: &CoreGen,
    c: &mut ClientConn,
    r: &mut RequestCtx,
    x: &Exchange<'_>,
    buf: &[u8],
    rh: &crate::http::head::ResponseHead,
) -> Result<(bool, bool, Vec<u8>), ExchangeError> {
    let cfg = &w.shared.cfg;
    let vh = &cfg.vhosts[x.vh_idx];
    // ProxyErrorOverride: nothing of the member's error answer goes out; ringproxy answers
    // the status itself (the member's connection is not reused: its body is not read).
    if vh
        .error_override
        .as_ref()
        .is_some_and(|o| o.covers(rh.status))
    {
        return Err(fatal(ErrorKind::ErrorOverridden(
            rh.status,
            x.member().name.clone(),
        )));
    }
    if let Some(log) = r.log.as_mut() {
        for want in w.logs.response_headers() {
            if let Some(h) = rh.headers.iter().find(|h| h.is(buf, want.as_bytes())) {
                log.response_headers.push((
                    want.clone(),
                    crate::observe::accesslog::escape_log_item(&buf[h.value.clone()]),
                ));
            }
        }
    }
    // The client connection's future is decided before the head goes out.
    let resp_body = rh.body();
    let dechunk = resp_body == ResponseBody::Chunked && r.head.minor == 0;
    let keep_client =
        super::client_may_keep(w, c, r) && resp_body != ResponseBody::UntilClose && !dechunk;
    let sticky_cookie = sticky_cookie(x);
    // mod_proxy_http adds this hop to the response's Via too (mod_proxy_ajp does not).
    let via = match x.member().scheme() {
        crate::config::url::Scheme::Ajp => None,
        _ => via_hop(w, c, vh, rh.minor),
    };
    let mut extra: [(&[u8], &[u8]); 2] = [(b"", b""); 2];
    let mut n_extra = 0;
    if !sticky_cookie.is_empty() {
        extra[n_extra] = (b"Set-Cookie", sticky_cookie.as_bytes());
        n_extra += 1;
    }
    if let Some(hop) = &via {
        extra[n_extra] = (b"Via", hop.as_bytes());
        n_extra += 1;
    }
    let env = HeaderEnv {
        // A clock read only for rules that can print it (`%D`).
        elapsed: match vh.response_headers.is_empty() {
            true => Duration::ZERO,
            false => r.started.elapsed(),
        },
        ..x.env.clone()
    };
    let rewrite = ResponseRewrite {
        reverse: &vh.reverse,
        cookie_domains: &vh.cookie_domains,
        cookie_paths: &vh.cookie_paths,
        public_base: &c.scratch,
        close: !keep_client,
        keep_alive_10: keep_client && r.head.minor == 0,
        dechunk,
        extra: &extra[..n_extra],
        rules: &vh.response_headers,
        env: &env,
    };
    let mut out = std::mem::take(&mut c.out);
    out.clear();
    write_response_head(
        &mut out,
        buf,
        rh,
        &rewrite,
        &mut w.thread.fields.borrow_mut(),
    );
    r.head_out = out.len() as u64;
    r.status = rh.status;
    Ok((keep_client, dechunk, out))
}

/// `stickysessioninsert`: the cookie value Apache's route parsing reads back as the route
/// ("" when none is to be set).
fn sticky_cookie(x: &Exchange<'_>) -> String {
    match (x.set_route, &x.view.sticky) {
        (Some(route), Some(sticky)) => {
            let sep = sticky.sep.map(String::from).unwrap_or_default();
            let name = &sticky.cookie;
            format!("{name}={sep}{route}; Path=/; HttpOnly; SameSite=Lax")
        }
        _ => String::new(),
    }
}

/// Phase 5: the rest of the response body. Returns whether the session can carry another
/// request.
async fn relay_response(
    w: &CoreGen,
    c: &mut ClientConn,
    r: &mut RequestCtx,
    s: &mut Http1Session,
    x: &Exchange<'_>,
    mut framing: Framing,
    pos: usize,
) -> Result<bool, ExchangeError> {
    let core = &w.shared.cfg.core;
    let dechunk = s.head.body() == ResponseBody::Chunked && r.head.minor == 0;
    let buf = std::mem::take(&mut s.buf);
    let mut moved = 0;
    let how = streaming(w, x.timeout, core.timeout);
    let (res, buf) = stream_body(
        &mut s.stream,
        buf,
        pos,
        &mut c.stream,
        &mut framing,
        dechunk,
        &how,
        &mut moved,
    )
    .await;
    x.mv().state.on_core(w.id).add_received(moved);
    r.bytes_out += moved;
    s.buf = buf;
    let end = match res {
        Ok(end) => end,
        Err(e) => return Err(fatal(relay_error(e, Source::Member, x.member()))),
    };
    Ok(s.reusable(Pool::reuse_enabled(x.member()), &framing, end))
}

/// After `101 Switching Protocols`: the member's head goes to the client as sent, then
/// bytes flow both ways (see [`crate::transport::tunnel`]) until both sides have closed,
/// or nothing moved either way for the member's timeout (Apache's
/// ProxyWebsocketIdleTimeout defaults to it too). Neither connection is reused afterwards.
async fn tunnel(
    w: &CoreGen,
    c: &mut ClientConn,
    r: &mut RequestCtx,
    s: &mut Http1Session,
    x: &Exchange<'_>,
    head_len: usize,
) -> Result<(bool, bool), ExchangeError> {
    let idle = x.timeout;
    let early = std::mem::take(&mut s.buf);
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
        let (res, _) = write_all(&mut s.stream, pending, idle).await;
        res.map_err(|e| fatal(ErrorKind::backend_send(&x.member().name, e)))?;
    }
    // A tunnel holds no MaxRequestWorkers slot (see `RequestCtx::slot`).
    r.slot = None;
    let pipes = (w.shared.cfg.core.splice_threshold > 0).then_some(&w.thread.pipes);
    let (up, down) = crate::transport::tunnel::run(&mut c.stream, &mut s.stream, idle, pipes).await;
    let counters = x.mv().state.on_core(w.id);
    counters.add_sent(up);
    counters.add_received(down);
    r.bytes_out += down;
    Ok((false, false))
}
