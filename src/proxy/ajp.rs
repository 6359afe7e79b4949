//! One attempt over an AJP member session, as mod_proxy_ajp makes it: the request goes as
//! a FORWARD_REQUEST (with the first body packet when the request has a length), the
//! container asks for the rest of the body packet by packet (GET_BODY_CHUNK), and answers
//! with SEND_HEADERS, SEND_BODY_CHUNKs and END_RESPONSE, whose reuse flag decides whether
//! the connection goes back to the pool.
//!
//! The client side stays HTTP/1.1: the container's head is written out as an HTTP head and
//! read back by the HTTP parser (so a header value with a CR or LF is refused as from an
//! HTTP member, and ProxyPassReverse, the cookie rewrites and `Header` rules apply
//! unchanged), with Content-Length when the container sent one, else chunked (or close for
//! an HTTP/1.0 client), and the registered reason phrase when the container sent none.

use crate::config::params::Flush;
use crate::error::ErrorKind;
use crate::http::body::Framing;
use crate::http::head::{parse_response, ResponseBody, ResponseHead};
use crate::http::server::{ClientConn, RequestCtx};
use crate::http::write::{reason_phrase, write_request_head, RequestRewrite};
use crate::runtime::CoreGen;
use crate::transport::io::read_more;
use crate::transport::Transport;
use crate::upstream::ajp::codec::{self, Forward, Reply};
use crate::upstream::ajp::{AjpFailure, AjpSession};
use crate::upstream::pool::Pool;

use super::exchange::{client_io, fatal, response_head, Exchange, ExchangeError};

/// Headers that belong to this hop or that AJP carries otherwise: the body's length is in
/// its packets; the client's address, scheme and the server's name travel as AJP fields, so
/// ringproxy's X-Forwarded-* are not added (mod_proxy_ajp adds none) and a client's own are
/// not passed on as if they were the proxy's.
const NOT_FORWARDED: &[&[u8]] = &[
    b"connection",
    b"keep-alive",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"proxy-connection",
    b"x-forwarded-for",
    b"x-forwarded-host",
    b"x-forwarded-server",
    b"x-forwarded-proto",
];

/// One request and its response over an AJP session. Returns (client keep-alive, session
/// reusable).
pub(super) async fn ajp_exchange(
    w: &CoreGen,
    c: &mut ClientConn,
    r: &mut RequestCtx,
    s: &mut AjpSession,
    x: &Exchange<'_>,
) -> Result<(bool, bool), ExchangeError> {
    // `ping=`: a pooled connection is asked first whether the container still answers on
    // it (Apache's CPING); nothing of the request has gone, so a silent one is stale.
    if let (true, Some(t)) = (s.reused, x.member().params.ping) {
        if let Err(e) = s.cping(t).await {
            tracing::debug!("CPING on a pooled connection to {}: {e:?}", x.member().name);
            return Err(ExchangeError::Stale);
        }
    }
    // The body is read from its start (what came with the head is in the client buffer):
    // AJP carries it de-chunked, in packets.
    let mut body = Body {
        framing: Framing::from(r.head.body()),
        pos: r.head.len,
        pending: Vec::new(),
    };
    let mut out = forward_request(w, c, r, s, x)?;
    // A body with a length: its first packet goes at once (Tomcat waits for it unasked);
    // without one, Tomcat asks when the application reads.
    if matches!(body.framing, Framing::Length(n) if n > 0) {
        body.packet(w, c, r, codec::max_body_chunk(s.packet_size), &mut out)
            .await?;
    }
    let (res, sent) = s.send(out, x.timeout).await;
    c.out = sent;
    res.map_err(|e| ajp_error(x, e))?;
    relay(w, c, r, s, x, &mut body).await
}

/// The FORWARD_REQUEST packet: the request head as ringproxy forwards it to any member
/// (RequestHeader rules, X-Forwarded-*), in AJP's form, with mod_proxy_ajp's attributes.
fn forward_request(
    w: &CoreGen,
    c: &mut ClientConn,
    r: &RequestCtx,
    s: &AjpSession,
    x: &Exchange<'_>,
) -> Result<Vec<u8>, ExchangeError> {
    let cfg = &w.shared.cfg;
    let vh = &cfg.vhosts[x.vh_idx];
    let member = x.member();
    let mut target = std::mem::take(&mut c.scratch);
    crate::routing::backend_target(&member.path, x.routed, &mut target);
    let server_name = cfg.server_name_of(vh);
    let scheme = c.scheme().name();
    // The head as an HTTP member would get it, read back field by field.
    let mut http = Vec::new();
    let rewrite = RequestRewrite {
        path: &target,
        host: member.host_header.as_bytes(),
        // mod_proxy_ajp forwards the client's Host whatever ProxyPreserveHost says
        // (servlet containers build their URLs from it).
        preserve_host: true,
        client_ip: r.client_text(c).as_bytes(),
        server_name: server_name.as_bytes(),
        proto: scheme.as_bytes(),
        close: false,
        rules: &vh.request_headers,
        env: x.env,
        remote: super::exchange::remote_edit(vh, r),
        // mod_proxy_ajp adds no Via (mod_proxy_http does).
        via: crate::http::write::ViaEdit::Pass,
        // AJP carries the client's address in its own field; X-Forwarded-* are dropped.
        add_forwarded: true,
    };
    write_request_head(
        &mut http,
        &c.buf,
        &r.head,
        &rewrite,
        &mut w.thread.fields.borrow_mut(),
    );
    // The public base for ProxyPassReverse, as for HTTP members.
    let host = r.head.host.clone().map(|h| c.buf[h].to_vec());
    let mut base = Vec::new();
    base.extend_from_slice(scheme.as_bytes());
    base.extend_from_slice(b"://");
    base.extend_from_slice(host.as_deref().unwrap_or(server_name.as_bytes()));
    target.clear();
    c.scratch = base;
    let mut fields: Vec<(&[u8], &[u8])> = http_fields(&http)
        .filter(|(n, _)| !NOT_FORWARDED.iter().any(|h| n.eq_ignore_ascii_case(h)))
        .collect();
    // An upgrade request goes with its Upgrade and Connection headers, as mod_proxy_ajp
    // sends them: a container that then switches protocols is answered 500 (below), one
    // that does not answers the request as it is.
    let upgrade = r
        .head
        .connection_tokens
        .iter()
        .any(|t| c.buf[t.clone()].eq_ignore_ascii_case(b"upgrade"))
        .then(|| r.head.named(&c.buf, b"upgrade").next())
        .flatten()
        .map(|h| &c.buf[h.value.clone()]);
    if let Some(protocol) = upgrade {
        fields.push((b"Connection", b"Upgrade"));
        fields.push((b"Upgrade", protocol));
    }
    let (path, query) = request_target(&http);
    let host_name = host
        .as_deref()
        .and_then(|h| crate::http::authority::split(h).ok())
        .map_or(server_name.as_bytes(), |(h, _)| h);
    let tls = c.stream.tls();
    let session_id = c.stream.tls_session_id();
    let key_size = tls.map(|t| if t.cipher.contains("128") { 128 } else { 256 });
    let remote_port = c.peer.port();
    let local_ip = c.local.ip().to_string();
    let f = Forward {
        method: r.head.method(&c.buf),
        protocol: if r.head.minor == 0 {
            b"HTTP/1.0"
        } else {
            b"HTTP/1.1"
        },
        uri: path,
        query,
        // The client's address (mod_remoteip's when found); the connection's own fields
        // are borrowed apart from its output buffer, taken below.
        remote_addr: r
            .remote
            .as_ref()
            .map_or(c.peer_ip.as_bytes(), |m| m.text.as_bytes()),
        remote_host: None,
        server_name: host_name,
        server_port: c.local.port(),
        is_ssl: tls.is_some(),
        headers: &fields,
        route: x.route.map(str::as_bytes),
        secret: member.params.secret.as_deref().map(str::as_bytes),
        remote_port: Some(remote_port),
        local_addr: Some(local_ip.as_bytes()),
        ssl_cert: tls
            .and_then(|t| t.client.as_ref())
            .map(|c| c.pem.as_bytes()),
        ssl_cipher: tls.map(|t| t.cipher.as_bytes()),
        ssl_protocol: tls.map(|t| t.protocol.as_bytes()),
        ssl_key_size: key_size,
        ssl_session: session_id.as_deref().map(str::as_bytes),
        ..Forward::default()
    };
    let mut out = std::mem::take(&mut c.out);
    out.clear();
    codec::encode_forward(&f, &mut out, s.packet_size).map_err(|e| {
        // A head that does not fit the packet: Apache answers 400 too (the request is
        // the client's), and the member is not blamed.
        fatal(ErrorKind::BadHead(crate::http::head::HeadError::Malformed(
            match e {
                codec::AjpError::FieldTooLong => "a request field too long for AJP",
                _ => "request head larger than the AJP packet size",
            },
        )))
    })?;
    Ok(out)
}

/// The header fields of a head written by `write_request_head` (well formed by
/// construction: one `Name: value` per line).
fn http_fields(head: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    head.split(|&b| b == b'\n')
        .skip(1)
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .take_while(|l| !l.is_empty())
        .filter_map(|l| {
            let colon = memchr::memchr(b':', l)?;
            Some((&l[..colon], l[colon + 1..].trim_ascii()))
        })
}

/// The request line's target, split into the path and the query.
fn request_target(head: &[u8]) -> (&[u8], Option<&[u8]>) {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let target = line.split(|&b| b == b' ').nth(1).unwrap_or(b"/");
    match memchr::memchr(b'?', target) {
        Some(q) => (&target[..q], Some(&target[q + 1..])),
        None => (target, None),
    }
}

/// The request body, read from the client as the container asks for it.
struct Body {
    framing: Framing,
    /// Where the next unread body byte is in the client buffer.
    pos: usize,
    /// Body data decoded and not yet sent.
    pending: Vec<u8>,
}

impl Body {
    /// Appends one body packet with up to `want` bytes of the body; an empty packet once
    /// the body is over (or when there was none).
    async fn packet(
        &mut self,
        w: &CoreGen,
        c: &mut ClientConn,
        r: &mut RequestCtx,
        want: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), ExchangeError> {
        while self.pending.len() < want && !self.framing.is_done() {
            if self.pos == c.buf.len() {
                self.refill(w, c, r).await?;
            }
            self.decode(&c.buf[self.pos..])?;
        }
        let n = self.pending.len().min(want);
        codec::encode_body(&self.pending[..n], out);
        self.pending.drain(..n);
        r.consumed = self.pos;
        Ok(())
    }

    /// Moves what `input` holds of the body into `pending`.
    fn decode(&mut self, input: &[u8]) -> Result<(), ExchangeError> {
        match &mut self.framing {
            Framing::Length(n) => {
                let take = (*n).min(input.len() as u64) as usize;
                self.pending.extend_from_slice(&input[..take]);
                *n -= take as u64;
                self.pos += take;
            }
            Framing::Chunked(d) => {
                let mut at = 0;
                while at < input.len() && !d.is_done() {
                    let step = d
                        .decode(&input[at..])
                        .map_err(|e| fatal(ErrorKind::BadBody(e)))?;
                    if let Some(data) = step.data {
                        self.pending
                            .extend_from_slice(&input[at + data.start..at + data.end]);
                    }
                    at += step.consumed;
                }
                self.pos += at;
            }
            // A request body always has a length or chunks.
            Framing::UntilClose => self.pos += input.len(),
        }
        Ok(())
    }

    /// Reads more of the body from the client (the head stays at the buffer's start, for
    /// the access log).
    async fn refill(
        &mut self,
        w: &CoreGen,
        c: &mut ClientConn,
        r: &RequestCtx,
    ) -> Result<(), ExchangeError> {
        c.buf.truncate(r.head.len);
        self.pos = r.head.len;
        let t = w.shared.cfg.core.timeout;
        let buf = std::mem::take(&mut c.buf);
        let (res, buf) = read_more(&mut c.stream, buf, w.shared.cfg.core.io_buffer_size, t).await;
        c.buf = buf;
        match res.map_err(client_io)? {
            0 => Err(fatal(ErrorKind::ClientClosed)),
            _ => Ok(()),
        }
    }
}

/// Reads the container's messages until END_RESPONSE, answering the client and the
/// container's requests for body. Returns (client keep-alive, session reusable).
async fn relay(
    w: &CoreGen,
    c: &mut ClientConn,
    r: &mut RequestCtx,
    s: &mut AjpSession,
    x: &Exchange<'_>,
    body: &mut Body,
) -> Result<(bool, bool), ExchangeError> {
    let t = w.shared.cfg.core.timeout;
    let mut out: Vec<u8> = Vec::new();
    // Set by the head: (client keep-alive, chunk-encode the body, bytes the body may have).
    let mut sent: Option<(bool, bool, Option<u64>)> = None;
    let mut head = ResponseHead::default();
    let mut first = true;
    loop {
        let reply = s.next(first && x.inline_end.is_some(), x.timeout).await;
        first = false;
        match reply.map_err(|e| ajp_error(x, e))? {
            Reply::Headers(h) if sent.is_none() && h.status == 101 => {
                return Err(fatal(ErrorKind::AjpUpgrade(x.member().name.clone())));
            }
            Reply::Headers(h) if sent.is_none() => {
                let text = http_head(&h, r.head.is_head);
                if parse_response(&text, r.head.is_head, &mut head)
                    .ok()
                    .flatten()
                    .is_none()
                {
                    let why = "a response head that is not valid HTTP".to_string();
                    return Err(fatal(ErrorKind::BackendProtocol(
                        x.member().name.clone(),
                        why,
                    )));
                }
                let (keep, dechunk, head_out) = response_head(w, c, r, x, &text, &head)?;
                // Written with the body (below): a container that fails before anything
                // was written (with `flushpackets` off, the whole of a small response) is
                // answered 502.
                out = head_out;
                let chunked = head.body() == ResponseBody::Chunked && !dechunk;
                let room = match head.body() {
                    ResponseBody::Length(n) => Some(n),
                    ResponseBody::None => Some(0),
                    _ => None,
                };
                sent = Some((keep, chunked, room));
            }
            Reply::Body(data) => {
                let Some((_, chunked, room)) = sent.as_mut() else {
                    let why = "body before the response head".to_string();
                    return Err(fatal(ErrorKind::BackendProtocol(
                        x.member().name.clone(),
                        why,
                    )));
                };
                if let Some(left) = room {
                    // More than the declared length would make the next response on the
                    // client connection: refused.
                    let n = data.len() as u64;
                    if n > *left {
                        let why = "more body than its Content-Length".to_string();
                        return Err(fatal(ErrorKind::BackendProtocol(
                            x.member().name.clone(),
                            why,
                        )));
                    }
                    *left -= n;
                }
                if *chunked && !data.is_empty() {
                    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                    out.extend_from_slice(data);
                    out.extend_from_slice(b"\r\n");
                } else if !r.head.is_head {
                    out.extend_from_slice(data);
                }
                x.mv().state.on_core(w.id).add_received(data.len() as u64);
                if flush_now(w, s, x, out.len()).await {
                    r.bytes_out += out.len() as u64;
                    r.response_started = true;
                    let (res, back) = crate::transport::io::write_all(&mut c.stream, out, t).await;
                    out = back;
                    out.clear();
                    res.map_err(client_io)?;
                }
            }
            Reply::GetBody(n) => {
                let want = usize::from(n).min(codec::max_body_chunk(s.packet_size));
                let mut packet = Vec::new();
                body.packet(w, c, r, want, &mut packet).await?;
                let (res, _) = s.send(packet, x.timeout).await;
                res.map_err(|e| ajp_error(x, e))?;
            }
            Reply::End { reuse } => {
                let Some((keep, chunked, room)) = sent else {
                    let why = "end of response without a head".to_string();
                    return Err(fatal(ErrorKind::BackendProtocol(
                        x.member().name.clone(),
                        why,
                    )));
                };
                if room.is_some_and(|left| left > 0 && !r.head.is_head) {
                    let why = "less body than its Content-Length".to_string();
                    return Err(fatal(ErrorKind::BackendProtocol(
                        x.member().name.clone(),
                        why,
                    )));
                }
                if chunked {
                    out.extend_from_slice(b"0\r\n\r\n");
                }
                r.bytes_out += out.len() as u64;
                r.response_started = true;
                let (res, back) = crate::transport::io::write_all(&mut c.stream, out, t).await;
                c.out = back;
                res.map_err(client_io)?;
                // The rest of an unread request body is the client's: the connection
                // cannot carry another request unless it was all read.
                let keep = keep && body.framing.is_done() && body.pending.is_empty();
                if keep {
                    r.consumed = body.pos;
                }
                let reusable = reuse && !s.has_pending() && Pool::reuse_enabled(x.member());
                return Ok((keep, reusable));
            }
            Reply::Headers(_) | Reply::Cpong => {
                let why = "unexpected message in a response".to_string();
                return Err(fatal(ErrorKind::BackendProtocol(
                    x.member().name.clone(),
                    why,
                )));
            }
        }
    }
}

/// Whether the body gathered so far (`gathered` bytes) goes to the client now, as the
/// member's `flushpackets` says (mod_proxy_ajp's meanings): `off` (the default) when a
/// buffer's worth is there (else with the end of the response), `on` at every packet,
/// `auto` when the container has sent nothing more for `flushwait` (10 ms by default).
async fn flush_now(w: &CoreGen, s: &mut AjpSession, x: &Exchange<'_>, gathered: usize) -> bool {
    let p = &x.member().params;
    match p.flush.unwrap_or_default() {
        Flush::On => true,
        Flush::Off => gathered >= w.shared.cfg.core.io_buffer_size,
        Flush::Auto if s.has_pending() => false,
        Flush::Auto => {
            let wait = p.flush_wait.unwrap_or(DEFAULT_FLUSH_WAIT);
            // More within the wait: gathered with it; none: written now.
            !matches!(
                crate::runtime::timer::timeout(wait, s.stream.readable()).await,
                Ok(Ok(()))
            )
        }
    }
}

/// mod_proxy_ajp's default `flushwait`.
const DEFAULT_FLUSH_WAIT: std::time::Duration = std::time::Duration::from_millis(10);

/// The container's head as an HTTP/1.1 head: its reason phrase, else the registered one
/// (Tomcat sends the status code again where it has no phrase, and Apache passes on
/// `200 200`); `Transfer-Encoding: chunked` when it gave no length and a body may follow.
fn http_head(h: &codec::ResponseHead<'_>, is_head: bool) -> Vec<u8> {
    let code = h.status.to_string();
    let mut t = format!("HTTP/1.1 {code} ").into_bytes();
    let sent = h.reason.trim_ascii();
    match reason_phrase(h.status) {
        Some(p) if sent.is_empty() || sent == code.as_bytes() => t.extend_from_slice(p.as_bytes()),
        _ => t.extend_from_slice(sent),
    }
    t.extend_from_slice(b"\r\n");
    let mut length = false;
    for (name, value) in &h.headers {
        length |= name.as_bytes().eq_ignore_ascii_case(b"content-length");
        t.extend_from_slice(name.as_bytes());
        t.extend_from_slice(b": ");
        t.extend_from_slice(value);
        t.extend_from_slice(b"\r\n");
    }
    let bodyless = is_head || h.status < 200 || h.status == 204 || h.status == 304;
    if !length && !bodyless {
        t.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    t.extend_from_slice(b"\r\n");
    t
}

/// An AJP failure as the attempt's error (a bad packet is a 502, as in mod_proxy_ajp).
fn ajp_error(x: &Exchange<'_>, e: AjpFailure) -> ExchangeError {
    let name = x.member().name.clone();
    match e {
        AjpFailure::Stale if x.inline_end.is_some() => ExchangeError::Stale,
        AjpFailure::Stale | AjpFailure::Closed => fatal(ErrorKind::BackendClosed(name)),
        AjpFailure::Io(e) => fatal(ErrorKind::BackendIo(name, e)),
        AjpFailure::SendTimeout => fatal(ErrorKind::BackendSendTimeout(name)),
        AjpFailure::Timeout => fatal(ErrorKind::BackendTimeout(name)),
        AjpFailure::Protocol(e) => fatal(ErrorKind::BackendProtocol(name, e.to_string())),
    }
}
