//! The request body on the client side: read whole up to ProxyRequestBuffer before a member
//! is chosen, `100 Continue` when the client waits for it, and the body stage of
//! RequestReadTimeout.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::error::{ErrorKind, ProxyError};
use crate::http::body::Framing;
use crate::http::head::RequestBody;
use crate::http::reqtimeout::{RateDeadline, Which};
use crate::http::server::{ClientConn, RequestCtx};
use crate::runtime::timer::coarse_now;
use crate::runtime::CoreGen;
use crate::transport::io::{read_more, write_all, IoFail};

/// The body stage of RequestReadTimeout for this request, started when its head was whole.
pub(super) fn body_deadline(w: &CoreGen, r: &RequestCtx) -> Option<RateDeadline> {
    let stage = w.shared.cfg.core.read_timeouts.body?;
    Some(RateDeadline::new(stage, r.started))
}

/// Counts and reports a body that arrived too slowly (408).
pub(super) fn body_too_slow(w: &CoreGen) -> ProxyError {
    w.stats().read_timeouts[Which::Body as usize].fetch_add(1, Ordering::Relaxed);
    ErrorKind::RequestReadTimeout(Which::Body).into()
}

/// Reads the request body into the client buffer until it ends or passes
/// `ProxyRequestBuffer`; a larger body then streams from there. Either way a client has
/// sent that much before it gets a member connection, so a slow one never holds one for
/// long. Framing is checked as it arrives; the body stage of RequestReadTimeout and
/// `Timeout` per read apply. A client waiting for `100 Continue` gets it first.
pub(super) async fn buffer_body(
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
pub(super) async fn send_continue(
    c: &mut ClientConn,
    r: &mut RequestCtx,
    t: Duration,
) -> Result<(), IoFail> {
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
