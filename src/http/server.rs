//! The HTTP/1.1 server side of a client connection: read a request head, hand it to
//! [`proxy::forward`], and loop while keep-alive allows; idle, wait cheaply or park. Pipelined requests are answered in order because each one is read
//! from the buffer only after the previous response went out.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;

use monoio::io::Canceller;
use tracing::{debug, info, warn};

use crate::error::{canned_response, canned_response_with, ErrorKind, ProxyError, Side};
use crate::http::head::{parse_request, HeadScan, Limits, RequestHead};
use crate::http::reqtimeout::{RateDeadline, Which};
use crate::observe::accesslog::Record;
use crate::proxy;
use crate::runtime::timer::coarse_now;
use crate::runtime::CoreGen;
use crate::transport::io::{read_more, write_all, IoFail};
use crate::transport::{ClientStream, Transport};

/// Client read buffer (from the worker's pool). Heads rarely exceed this; it grows up to the
/// configured head limits when they do.
pub const CLIENT_BUF: usize = 8 * 1024;
/// Buffers for outgoing heads and small per-request strings.
pub const SMALL_BUF: usize = 2 * 1024;

/// A client connection: what lasts from request to request (the stream, addresses, read
/// buffer, keep-alive count, the idle wait's canceller) and reusable buffers. What belongs
/// to one request is a [`RequestCtx`] beside it, so a protocol with several requests in
/// flight on one connection (HTTP/2) can hold one context per stream.
pub struct ClientConn {
    pub stream: ClientStream,
    pub peer: SocketAddr,
    pub peer_ip: String,
    pub local: SocketAddr,
    /// Bytes read from the client; the current request's head starts at 0.
    pub buf: Vec<u8>,
    /// Reusable buffer for outgoing heads.
    pub out: Vec<u8>,
    /// Reusable buffer for small per-request strings (backend target, public base URL).
    pub scratch: Vec<u8>,
    /// Requests served on this connection, including the current one.
    pub requests: u32,
    /// When the connection was accepted (the first request's header stage starts here).
    pub opened: std::time::Instant,
    /// Withdraws the receive an idle connection waits in (see `wait_idle`); made on first
    /// use and kept for the connection's life.
    pub canceller: Option<Canceller>,
}

impl ClientConn {
    /// Frees the buffers kept from request to request (a long idle wait without parking).
    fn release_memory(&mut self) {
        self.out = Vec::new();
        self.scratch = Vec::new();
    }

    /// The scheme the client used: X-Forwarded-Proto, redirects, ProxyPassReverse.
    pub fn scheme(&self) -> crate::config::url::Scheme {
        use crate::config::url::Scheme;
        match self.stream.is_tls() {
            true => Scheme::Https,
            false => Scheme::Http,
        }
    }
}

/// One request's context: its head, where it was routed, what was answered and counted.
/// Reset (not reallocated) for each request on a connection.
pub struct RequestCtx {
    pub head: RequestHead,
    /// The path as routed to its balancer (kept for its capacity).
    pub routed: Vec<u8>,
    /// The path normalized and decoded: what every rule matches (kept for its capacity).
    pub npath: Vec<u8>,
    /// Where the request (head and body) ends in the connection's buffer.
    pub consumed: usize,
    /// Some response bytes went to the client: an error can only close the connection now.
    pub response_started: bool,
    /// An error came after the response had started: the client got less than announced.
    pub aborted: bool,
    /// The client behind trusted proxies, when mod_remoteip's header named one.
    pub remote: Option<Remote>,
    /// The MaxRequestWorkers slot the request holds; a request that becomes a tunnel gives
    /// it back early, as Apache's wstunnel hands a tunnel to the event loop instead of
    /// holding a thread, so long-lived tunnels never starve ordinary requests.
    pub slot: Option<crate::runtime::slots::Slot>,
    pub continue_sent: bool,
    /// The status sent (0: none) and the bytes sent to the client.
    pub status: u16,
    pub bytes_out: u64,
    /// Of `bytes_out`, the response head (access logs' %b counts the body only).
    pub head_out: u64,
    /// The virtual host that answered.
    pub vhost: usize,
    /// When the head was complete.
    pub started: std::time::Instant,
    /// Access-log record, when access logs are configured.
    pub log: Option<Box<Record>>,
}

/// The client's address as mod_remoteip found it (`routing::remoteip`), and what becomes
/// of the header it came from.
pub struct Remote {
    pub ip: std::net::IpAddr,
    pub text: String,
    /// The header's part that was not read (`None`: the header is not forwarded).
    pub rest: Option<String>,
    /// The trusted proxies passed (`RemoteIPProxiesHeader`).
    pub proxies: Option<String>,
}

impl RequestCtx {
    /// The client's address for this request: mod_remoteip's when it found one, else the
    /// connection's peer.
    pub fn client_ip(&self, c: &ClientConn) -> std::net::IpAddr {
        self.remote.as_ref().map_or(c.peer.ip(), |r| r.ip)
    }

    /// The same as text.
    pub fn client_text<'a>(&'a self, c: &'a ClientConn) -> &'a str {
        self.remote
            .as_ref()
            .map_or(c.peer_ip.as_str(), |r| r.text.as_str())
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        RequestCtx {
            head: RequestHead::default(),
            routed: Vec::new(),
            npath: Vec::new(),
            consumed: 0,
            response_started: false,
            aborted: false,
            remote: None,
            slot: None,
            continue_sent: false,
            status: 0,
            bytes_out: 0,
            head_out: 0,
            vhost: 0,
            started: std::time::Instant::now(),
            log: None,
        }
    }
}

impl RequestCtx {
    /// Frees what the context keeps for its capacity (a long idle wait without parking).
    fn release_memory(&mut self) {
        self.head = RequestHead::default();
        self.routed = Vec::new();
        self.npath = Vec::new();
        self.log = None;
    }

    /// Ready for the next request on the connection (buffers keep their memory).
    fn begin(&mut self) {
        self.response_started = false;
        self.aborted = false;
        self.remote = None;
        self.continue_sent = false;
        self.status = 0;
        self.bytes_out = 0;
        self.head_out = 0;
    }
}

/// A response ringproxy makes itself (a status page, the manager, a directory listing).
pub struct Local<'a> {
    pub status: u16,
    pub ctype: &'a str,
    pub body: &'a [u8],
    /// Header lines, each ending in CRLF.
    pub extra: &'a str,
    /// The connection stays open afterwards.
    pub keep: bool,
    /// The answer to a HEAD: the head says the body's length, the body is not sent.
    pub head_only: bool,
    /// The host's `Header` rules (mod_headers applies to what Apache serves itself too).
    pub rules: &'a [crate::http::headers::Rule],
}

/// Sends a response ringproxy makes itself and accounts for it as for a proxied one.
pub async fn send_local(
    c: &mut ClientConn,
    r: &mut RequestCtx,
    page: &Local<'_>,
    t: std::time::Duration,
) -> Result<(), ProxyError> {
    let mut out = std::mem::take(&mut c.out);
    out.clear();
    crate::http::write::local_head(
        &mut out,
        page.status,
        page.ctype,
        page.body.len(),
        page.extra,
        page.keep,
    );
    if !page.rules.is_empty() {
        local_rules(c, page.rules, &mut out, 0);
    }
    r.head_out = out.len() as u64;
    if !page.head_only {
        out.extend_from_slice(page.body);
    }
    send_whole(c, r, out, page.status, t).await
}

/// The host's `Header` rules over a head ringproxy made in `out[start..]`, with the
/// connection's TLS facts for `%{…}s`.
pub fn local_rules(
    c: &ClientConn,
    rules: &[crate::http::headers::Rule],
    out: &mut Vec<u8>,
    start: usize,
) {
    let env = crate::http::headers::Env {
        tls: c.stream.tls().cloned(),
        ..Default::default()
    };
    let mut fields = crate::http::message::Headers::default();
    crate::http::write::apply_local_rules(rules, &env, &mut fields, out, start);
}

/// Writes a whole response (head, and body if any) made in `out`, the connection's output
/// buffer, which goes back to the connection afterwards.
pub async fn send_whole(
    c: &mut ClientConn,
    r: &mut RequestCtx,
    out: Vec<u8>,
    status: u16,
    t: std::time::Duration,
) -> Result<(), ProxyError> {
    r.status = status;
    r.bytes_out = out.len() as u64;
    r.response_started = true;
    let (res, out) = write_all(&mut c.stream, out, t).await;
    c.out = out;
    res.map_err(|e| ProxyError::new(ErrorKind::client(e)))
}

/// Picks the TLS configuration by the server name the client sent: the host that name
/// selects among those for the address, when it has TLS; else the address's first host
/// (no name, or an unknown one: Apache's default host).
struct SniChoice<'a> {
    cfg: &'a crate::config::Config,
    local: SocketAddr,
    default: &'a crate::transport::tls::HostTls,
}

impl crate::transport::tls::ChooseConfig for SniChoice<'_> {
    fn choose(
        &self,
        hello: &rustls::server::ClientHello<'_>,
    ) -> Option<std::sync::Arc<rustls::ServerConfig>> {
        let by_name = hello.server_name().and_then(|name| {
            let i = crate::routing::select_vhost(self.cfg, self.local, Some(name.as_bytes()));
            self.cfg.vhosts[i].tls.as_ref()
        });
        Some(by_name.map_or(&self.default.config, |h| &h.config).clone())
    }
}

/// Counts a TLS connection open for as long as it lives (TLS connections never park, so
/// their task's end is theirs).
struct TlsOpen(Rc<CoreGen>);

impl Drop for TlsOpen {
    fn drop(&mut self) {
        let w = &self.0;
        w.shared.stats[w.thread.id]
            .tls_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// The TLS setup a connection accepted on `local` begins with: its address's first host's
/// (`None`: plain HTTP).
fn tls_host(w: &CoreGen, local: SocketAddr) -> Option<&crate::transport::tls::HostTls> {
    let cfg = &w.shared.cfg;
    cfg.vhosts[crate::routing::first_vhost_for(&cfg.vhosts, local)]
        .tls
        .as_deref()
}

/// A connection to an address whose first host has `SSLEngine On` begins with a TLS
/// handshake, bounded by `RequestReadTimeout handshake=` (else `Timeout`). `None`: it
/// failed (counted by reason, logged at info) and the connection is closed.
async fn start_tls(
    w: &Rc<CoreGen>,
    io: monoio::net::TcpStream,
    default: &crate::transport::tls::HostTls,
    peer: SocketAddr,
    local: SocketAddr,
) -> Option<(ClientStream, TlsOpen)> {
    let cfg = &w.shared.cfg;
    let t = cfg
        .core
        .read_timeouts
        .handshake
        .map_or(cfg.core.timeout, |s| s.max.unwrap_or(s.initial));
    let choice = SniChoice {
        cfg,
        local,
        default,
    };
    let stats = &w.shared.stats[w.thread.id];
    match crate::transport::tls::accept(io, &choice, t).await {
        Ok(s) => {
            let kind = match s.tls() {
                Some(f) if f.resumed => 2,
                Some(f) if f.protocol == "TLSv1.2" => 1,
                _ => 0,
            };
            stats.tls_handshakes[kind].fetch_add(1, Ordering::Relaxed);
            stats.tls_open.fetch_add(1, Ordering::Relaxed);
            Some((ClientStream::Tls(s), TlsOpen(w.clone())))
        }
        Err(e) => {
            info!("client {peer}: TLS handshake failed: {e}");
            let reason = e.reason();
            let i = crate::transport::tls::HandshakeError::REASONS
                .iter()
                .position(|r| *r == reason)
                .unwrap_or(0);
            stats.tls_failures[i].fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// How a connection task begins.
pub enum Start {
    /// Just accepted from this peer.
    Accepted(SocketAddr),
    /// Back from the worker's parking lot: its client sent something (or closed).
    Resumed(Resume),
}

/// What a parked connection brings back.
pub struct Resume {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub requests: u32,
}

/// How a connection task ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Served {
    /// The connection is closed.
    Closed,
    /// The connection waits in the worker's parking lot, which now counts it as open.
    Parked,
}

/// Serves one client connection until it closes, times out, parks or the worker drains.
pub async fn serve(w: Rc<CoreGen>, stream: ClientStream, start: Start) -> Served {
    let (peer, local, requests, resumed) = match start {
        Start::Accepted(peer) => match stream.local_addr() {
            Ok(local) => (peer, local, 0, false),
            Err(e) => {
                debug!("client {peer}: local_addr failed: {e}");
                return Served::Closed;
            }
        },
        Start::Resumed(r) => (r.peer, r.local, r.requests, true),
    };
    // The handshake's state (rustls's acceptor, a record's worth of buffer) is boxed for
    // the handshake only: inline it would make every connection's task, plain or TLS,
    // about 5 KB larger for its whole life.
    let (stream, _tls_open) = match (tls_host(&w, local), stream) {
        (Some(host), ClientStream::Plain(io)) => {
            match Box::pin(start_tls(&w, io, host, peer, local)).await {
                Some((s, open)) => (s, Some(open)),
                None => return Served::Closed,
            }
        }
        (_, stream) => (stream, None),
    };
    let mut c = ClientConn {
        stream,
        peer,
        peer_ip: peer.ip().to_string(),
        local,
        // Buffers come from the worker's pools when there is work (see `read_head`).
        buf: Vec::new(),
        out: Vec::new(),
        scratch: Vec::new(),
        requests,
        opened: coarse_now(),
        canceller: None,
    };
    let mut r = RequestCtx::default();
    let mut w = w;
    // A resumed connection is known to be readable: it goes straight to reading.
    let mut skip_wait = resumed;
    loop {
        // After a reload the next request runs on the new configuration; the one in flight
        // finished on the old one.
        if let Some(newer) = w.newer() {
            w = newer;
        }
        let release = w.shared.cfg.core.release_idle_buffers;
        if release && c.buf.is_empty() && !std::mem::take(&mut skip_wait) {
            // Idle: only this small wait lives in the connection's task, until it parks.
            match wait_idle(&w, &mut c, &mut r).await {
                Ok(Idle::Ready) => {}
                Ok(Idle::Closed) => return Served::Closed,
                Ok(Idle::Parked) => return Served::Parked,
                Err(e) => {
                    Box::pin(finish_with_error(&mut c, &mut r, e)).await;
                    return Served::Closed;
                }
            }
            // A reload during the wait: the request about to be read uses it.
            if let Some(newer) = w.newer() {
                w = newer;
            }
        }
        // Everything a request needs (head reading, forwarding, error answers) is boxed for
        // the request's duration, so an idle connection's task stays small. The box's
        // memory is the worker's, reused from request to request.
        let mut request = w
            .thread
            .request_futures
            .pin(one_request(&w, &mut c, &mut r));
        let keep = request.as_mut().await;
        w.thread.request_futures.put(request);
        if !keep {
            return Served::Closed;
        }
    }
}

/// How an idle wait ended.
enum Idle {
    /// The client sent something; the connection has a read buffer.
    Ready,
    /// Timed out, drained, or the client went away: close.
    Closed,
    /// Handed to the worker's parking lot; this task ends (and closes its descriptor).
    Parked,
}

/// Waits until the client sends something (or goes away, times out, or the worker drains),
/// then lends the connection a read buffer. After `IdleParkAfter` the connection moves to
/// the worker's parking lot instead, keeping its keep-alive deadline.
///
/// A connection that will park keeps its read buffer until then, in a receive that is
/// already submitted: under load the next request is nearly always there long before the
/// park, and one receive costs less than a readiness poll followed by a receive (see
/// bench/RESULTS.md). Without parking the buffer goes back to the pool at once and the wait
/// is for readiness only, so idle connections hold no buffer at all.
///
/// A connection that cannot park (TLS: its state lives in the process) gives back what it
/// keeps between requests at the same moment instead, and goes on waiting with only its
/// task and its TLS state.
async fn wait_idle(
    w: &CoreGen,
    c: &mut ClientConn,
    r: &mut RequestCtx,
) -> Result<Idle, ProxyError> {
    let core = &w.shared.cfg.core;
    if w.thread.drain.is_draining() {
        return Ok(Idle::Closed);
    }
    // A first request waits for its first byte as long as its header stage allows.
    let t = match (c.requests, core.read_timeouts.header) {
        (0, Some(stage)) => core.timeout.min(stage.initial),
        (0, None) => core.timeout,
        _ => core.keepalive_timeout,
    };
    let now = crate::runtime::timer::coarse_now();
    let deadline = now + t;
    // Over the connection limit, the worker asks its idle connections to leave their tasks
    // (see `runtime::accept::make_room`): those waiting since before the request.
    let crowd = w.thread.drain.crowd_epoch();
    let idle_at = core
        .idle_park_after
        .filter(|after| *after < t)
        .map(|after| now + after);
    let (mut park_at, mut shrink_at) = match c.stream.can_park() {
        true => (idle_at, None),
        false => (None, idle_at),
    };
    if c.buf.capacity() > 0 {
        match park_at {
            Some(at) => {
                if let Some(idle) = wait_reading(w, c, at, crowd).await? {
                    return Ok(idle);
                }
                // Withdrawn with nothing received: the buffer is back in the pool and
                // the wait below parks at once.
            }
            None => w.thread.read_bufs.put(std::mem::take(&mut c.buf)),
        }
    }
    loop {
        if w.thread.drain.crowd_epoch() != crowd {
            let thread = &w.thread;
            if thread
                .lot
                .park(thread, &c.stream, c.peer, c.local, c.requests, deadline)
            {
                return Ok(Idle::Parked);
            }
            // A connection that cannot park (TLS) closes, as Apache's event MPM closes
            // idle keep-alive connections when it is over its limit.
            return Ok(Idle::Closed);
        }
        let wake_at = park_at.or(shrink_at).unwrap_or(deadline);
        let ready = monoio::select! {
            r = c.stream.readable() => r,
            _ = crate::runtime::timer::deadline(wake_at) => {
                if shrink_at.take().is_some() {
                    c.release_memory();
                    r.release_memory();
                    continue;
                }
                if park_at.take().is_some() && crate::runtime::timer::coarse_now() < deadline {
                    let thread = &w.thread;
                    if thread.lot.park(thread, &c.stream, c.peer, c.local, c.requests, deadline) {
                        return Ok(Idle::Parked);
                    }
                    // Not parked (no descriptor to spare, say): wait here as before.
                    continue;
                }
                return Ok(Idle::Closed);
            }
            _ = w.thread.drain.draining_or_crowded(crowd) => {
                if w.thread.drain.is_draining() {
                    return Ok(Idle::Closed);
                }
                continue;
            }
        };
        return match ready {
            Err(e) => Err(ErrorKind::ClientIo(e).into()),
            Ok(()) => {
                c.buf = w.thread.read_bufs.get();
                // Readable now: take the bytes here at once instead of with another
                // io_uring receive and task wake-up in `read_head`.
                match c.stream.read_now(&mut c.buf) {
                    Ok(Some(0)) => {
                        w.thread.read_bufs.put(std::mem::take(&mut c.buf));
                        Ok(Idle::Closed)
                    }
                    Ok(_) => Ok(Idle::Ready),
                    Err(e) => Err(ErrorKind::ClientIo(e).into()),
                }
            }
        };
    }
}

/// The first part of an idle wait for a connection that will park at `park_at`: a receive
/// into its (empty) read buffer. `Ok(None)` when `park_at` came first and the receive was
/// withdrawn with nothing in it; the buffer is then back in the worker's pool.
async fn wait_reading(
    w: &CoreGen,
    c: &mut ClientConn,
    park_at: std::time::Instant,
    crowd: u64,
) -> Result<Option<Idle>, ProxyError> {
    let handle = c.canceller.get_or_insert_with(Canceller::new).handle();
    let buf = std::mem::take(&mut c.buf);
    let mut read = std::pin::pin!(c.stream.read_cancelable(buf, handle));
    enum First {
        Read(monoio::BufResult<usize, Vec<u8>>),
        Park,
        Drain,
    }
    let first = monoio::select! {
        r = &mut read => First::Read(r),
        _ = crate::runtime::timer::deadline(park_at) => First::Park,
        // Crowded: withdraw the receive as for parking; the caller parks at once.
        _ = w.thread.drain.draining_or_crowded(crowd) => match w.thread.drain.is_draining() {
            true => First::Drain,
            false => First::Park,
        },
    };
    let (res, buf) = match first {
        First::Read(r) => r,
        // Closing: whatever the receive still gets does not matter.
        First::Drain => return Ok(Some(Idle::Closed)),
        First::Park => {
            // Withdraw the receive and wait for its end: a request that arrived meanwhile
            // is in the buffer, not lost with a dropped operation.
            if let Some(cn) = c.canceller.take() {
                c.canceller = Some(cn.cancel());
            }
            read.await
        }
    };
    c.buf = buf;
    match res {
        Ok(0) => Ok(Some(Idle::Closed)),
        Ok(_) => Ok(Some(Idle::Ready)),
        Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => {
            w.thread.read_bufs.put(std::mem::take(&mut c.buf));
            Ok(None)
        }
        Err(e) => Err(ErrorKind::ClientIo(e).into()),
    }
}

/// Reads one request head and forwards the request. Returns whether the connection stays.
async fn one_request(w: &CoreGen, c: &mut ClientConn, r: &mut RequestCtx) -> bool {
    let core = &w.shared.cfg.core;
    let limits = Limits {
        request_line: core.limit_request_line,
        field_size: core.limit_request_fieldsize,
        fields: core.limit_request_fields,
    };
    // The buffer may hold one whole head at its largest, plus the read size.
    let max_head = limits.request_line + 2 + limits.fields * (limits.field_size + 2) + 2;
    match read_head(w, c, r, &limits, max_head).await {
        Ok(true) => {}
        Ok(false) => return false,
        Err(e) => {
            finish_with_error(c, r, e).await;
            return false;
        }
    }
    w.thread.activity.request_started();
    c.requests += 1;
    r.begin();
    if c.out.capacity() == 0 {
        c.out = w.thread.small_bufs.get();
        c.scratch = w.thread.small_bufs.get();
    }
    let stats = w.stats();
    stats.busy.fetch_add(1, Ordering::Relaxed);
    let started = std::time::Instant::now();
    r.started = started;
    if !w.logs.is_empty() {
        r.log = Some(Box::new(log_record(w, c, r)));
    }
    let keep = with_slot(w, c, r).await;
    let took = started.elapsed();
    stats.busy.fetch_sub(1, Ordering::Relaxed);
    stats.record(r.status, r.bytes_out, took);
    if let Some(mut rec) = r.log.take() {
        let vh = &w.shared.cfg.vhosts[r.vhost];
        rec.status = r.status;
        rec.bytes = r.bytes_out.saturating_sub(r.head_out);
        rec.bytes_out = r.bytes_out;
        rec.aborted = r.aborted;
        rec.keep = keep;
        rec.took = took;
        rec.server_name = w.shared.cfg.server_name_of(vh).to_string();
        w.logs.log(&vh.logs, &rec);
    }
    keep
}

/// The request's part of its access-log line, copied while the head is in the buffer.
fn log_record(w: &CoreGen, c: &ClientConn, r: &RequestCtx) -> Record {
    let buf = &c.buf;
    // Escaped as Apache escapes log items: what a client sends cannot forge a log line.
    let text = |r: std::ops::Range<usize>| crate::observe::accesslog::escape_log_item(&buf[r]);
    let target = text(r.head.path.clone());
    let (path, query) = r.head.target_parts(buf);
    let (path, query) = (text(path), query.map(text).unwrap_or_default());
    let protocol = if r.head.minor == 0 {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    };
    let method = text(r.head.method.clone());
    let mut headers = Vec::new();
    for t in w.logs.targets() {
        for want in t.wanted_headers() {
            if let Some(v) = r.head.header(buf, want.as_bytes()) {
                headers.push((
                    want.to_ascii_lowercase(),
                    crate::observe::accesslog::escape_log_item(v),
                ));
            }
        }
    }
    Record {
        client_ip: c.peer_ip.clone(),
        request_line: format!("{method} {target} {protocol}"),
        method,
        path,
        query,
        protocol,
        headers,
        port: c.local.port(),
        // The head, and the body as its Content-Length declares it (a chunked body's
        // bytes are not counted).
        bytes_in: r.head.len as u64 + r.head.content_length.unwrap_or(0),
        keepalives: c.requests.saturating_sub(1),
        tls: c
            .stream
            .tls()
            .filter(|_| w.logs.targets().iter().any(|t| t.wants_tls()))
            .cloned(),
        ..Default::default()
    }
}

/// Runs the request in one of the worker's MaxRequestWorkers slots, waiting (up to
/// Timeout, then 503) while they are all taken.
async fn with_slot(w: &CoreGen, c: &mut ClientConn, r: &mut RequestCtx) -> bool {
    let core = &w.shared.cfg.core;
    let limit = core
        .max_request_workers
        .div_ceil(w.shared.stats.len().max(1));
    let slots = &w.thread.slots;
    r.slot = match slots.try_take(limit) {
        Some(s) => Some(s),
        None => match crate::runtime::timer::timeout(core.timeout, slots.take(limit)).await {
            Ok(s) => Some(s),
            Err(_) => {
                finish_with_error(c, r, ErrorKind::Busy.into()).await;
                return false;
            }
        },
    };
    let keep = forward_and_answer(w, c, r).await;
    r.slot = None;
    keep
}

/// Forwards the request (or answers it locally) and handles its error; returns whether
/// the connection stays.
async fn forward_and_answer(w: &CoreGen, c: &mut ClientConn, r: &mut RequestCtx) -> bool {
    let core = &w.shared.cfg.core;
    match proxy::forward(w, c, r).await {
        Ok(true) => {
            let end = r.consumed.min(c.buf.len());
            c.buf.drain(..end);
            if c.buf.is_empty() && core.release_idle_buffers {
                // Idle until the next request: the buffers go back to the worker. A
                // connection that will park keeps its read buffer until then (`wait_idle`).
                if core.idle_park_after.is_none() {
                    w.thread.read_bufs.put(std::mem::take(&mut c.buf));
                }
                w.thread.small_bufs.put(std::mem::take(&mut c.out));
                w.thread.small_bufs.put(std::mem::take(&mut c.scratch));
            }
            true
        }
        Ok(false) => false,
        Err(e) => {
            finish_with_error(c, r, e).await;
            false
        }
    }
}

/// Reads until a complete head is in `c.buf`. `Ok(false)`: the client closed (or idled out)
/// cleanly between requests.
async fn read_head(
    w: &CoreGen,
    c: &mut ClientConn,
    r: &mut RequestCtx,
    limits: &Limits,
    max_head: usize,
) -> Result<bool, ProxyError> {
    let core = &w.shared.cfg.core;
    let mut scan = HeadScan::default();
    // mod_reqtimeout's header stage: from the connection's start for its first request,
    // from the first byte for later ones.
    let mut rate = core.read_timeouts.header.map(|stage| {
        let start = if c.requests == 0 {
            c.opened
        } else {
            coarse_now()
        };
        let mut d = RateDeadline::new(stage, start);
        d.received(c.buf.len());
        d
    });
    loop {
        if !c.buf.is_empty() && parse_head(&c.buf, &mut scan, limits, max_head, &mut r.head)? {
            return Ok(true);
        }
        let idle = c.buf.is_empty();
        if idle && w.thread.drain.is_draining() {
            return Ok(false);
        }
        // Between requests the keep-alive timeout applies; within a head, Timeout, and the
        // head's RequestReadTimeout stage (which for a first request also covers the wait
        // for its first byte).
        let socket_t = if idle && c.requests > 0 {
            core.keepalive_timeout
        } else {
            core.timeout
        };
        let staged = rate.filter(|_| !idle || c.requests == 0);
        let (t, by_rate) = match staged.map(|d| d.next_wait(socket_t, coarse_now())) {
            Some(Some(wait)) => wait,
            Some(None) => return head_too_slow(w, !idle),
            None => (socket_t, false),
        };
        if c.buf.capacity() == 0 {
            c.buf = w.thread.read_bufs.get();
        }
        let buf = std::mem::take(&mut c.buf);
        let before = buf.len();
        let (res, buf) = if idle {
            // An idle connection also ends when the worker starts draining.
            monoio::select! {
                res = read_more(&mut c.stream, buf, 4096, t) => res,
                _ = w.thread.drain.draining() => return Ok(false),
            }
        } else {
            read_more(&mut c.stream, buf, 4096, t).await
        };
        if let Some(d) = rate.as_mut() {
            d.received(buf.len().saturating_sub(before));
        }
        c.buf = buf;
        match res {
            Ok(0) if idle => return Ok(false),
            Ok(0) => return Err(ErrorKind::ClientClosed.into()),
            Ok(_) => {}
            // (A timed-out read keeps no buffer: whether a head had begun is `idle`.)
            Err(IoFail::Timeout) if by_rate => return head_too_slow(w, !idle),
            Err(IoFail::Timeout) if idle => return Ok(false),
            Err(e) => return Err(ErrorKind::client(e).into()),
        }
    }
}

/// Looks at what arrived of a head: true once it is whole and parsed into `head`. New bytes
/// are scanned once for the head's end; the parser runs on a whole head, and also on the
/// first bytes of one still arriving, so that garbage (a TLS hello on a plain port) is
/// refused at once, not after the line limit or the timeout.
fn parse_head(
    buf: &[u8],
    scan: &mut HeadScan,
    limits: &Limits,
    max_head: usize,
    head: &mut RequestHead,
) -> Result<bool, ProxyError> {
    use crate::http::head::HeadError;
    let first_bytes = scan.scanned() == 0;
    let complete = scan
        .advance(buf, limits)
        .map_err(|e| ProxyError::new(ErrorKind::BadHead(e)))?;
    if complete || first_bytes {
        match parse_request(buf, limits, head) {
            Ok(Some(())) => return Ok(true),
            Ok(None) if !complete => {}
            Ok(None) => {
                return Err(ErrorKind::BadHead(HeadError::Malformed("incomplete head")).into())
            }
            Err(e) => return Err(ErrorKind::BadHead(e).into()),
        }
    }
    if buf.len() > max_head {
        return Err(ErrorKind::BadHead(HeadError::FieldTooLarge).into());
    }
    Ok(false)
}

/// The head's RequestReadTimeout stage ran out: 408 when part of a head came (counted and
/// logged, as Apache's AH01382), a silent close for a connection that never sent a byte
/// (as Apache, and as browsers expect of connections they opened ahead of need).
fn head_too_slow(w: &CoreGen, begun: bool) -> Result<bool, ProxyError> {
    if !begun {
        return Ok(false);
    }
    w.stats().read_timeouts[Which::Header as usize].fetch_add(1, Ordering::Relaxed);
    Err(ErrorKind::RequestReadTimeout(Which::Header).into())
}

/// Logs an error once and, when nothing of a response went out yet, answers it.
async fn finish_with_error(c: &mut ClientConn, r: &mut RequestCtx, e: ProxyError) {
    match e.side {
        Side::Client if matches!(e.kind, ErrorKind::RequestReadTimeout(_)) => {
            info!("client {}: {e}", c.peer_ip)
        }
        Side::Client => debug!("client {}: {e}", c.peer_ip),
        Side::Proxy
            if matches!(
                e.kind,
                ErrorKind::NotProxied
                    | ErrorKind::FileNotFound(_)
                    | ErrorKind::ErrorOverridden(..)
                    | ErrorKind::Redirect(..)
                    | ErrorKind::RewriteStatus(_)
            ) =>
        {
            info!("client {}: {e}", c.peer_ip)
        }
        _ => warn!("client {}: {e}", c.peer_ip),
    }
    if r.response_started {
        r.aborted = true;
        return;
    }
    let Some(status) = e.status() else { return };
    let mut out = std::mem::take(&mut c.out);
    out.clear();
    match &e.kind {
        ErrorKind::Redirect(_, location) => {
            // Control characters cannot reach here (they fail head parsing), but a CR or
            // LF must never split the header whatever the substitution produced.
            let clean: String = location.chars().filter(|c| !c.is_control()).collect();
            canned_response_with(&mut out, status, &format!("Location: {clean}\r\n"));
        }
        _ => canned_response(&mut out, status),
    }
    r.status = status;
    r.bytes_out = out.len() as u64;
    r.head_out = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(0, |i| i as u64 + 4);
    let (res, _) = write_all(&mut c.stream, out, std::time::Duration::from_secs(5)).await;
    if res.is_ok() {
        // Half-close so the client reads the answer before seeing the connection end,
        // even if it is still sending (RFC 9112 §9.6).
        c.stream.shutdown_write().await;
    }
}
#[cfg(test)]
mod tests {
    /// Every connection's task is `serve`'s future for the connection's whole life: a large
    /// future inlined into it (as the TLS handshake once was, 5 KB) costs that much per
    /// connection, idle ones included. The bound is loose: it catches such a mistake, not
    /// a compiler's layout changes.
    #[test]
    fn a_connection_task_stays_small() {
        fn future_size<A, B, C, F>(_: impl Fn(A, B, C) -> F) -> usize {
            std::mem::size_of::<F>()
        }
        let size = future_size(super::serve);
        assert!(size < 3000, "serve's future is {size} bytes");
    }
}
