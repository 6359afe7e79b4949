//! HTTP/1.1 to a member: what is particular to speaking it on a member connection. Sending
//! a head (with a small body in the same write), reading the response head past interim
//! responses, telling a stale pooled connection from a failure, the upgrade handshake, and
//! whether the connection can carry another request. The proxy's attempt loop and the
//! client side know nothing of this beyond [`super::UpstreamSession`].

use std::ops::Range;
use std::time::{Duration, Instant};

use crate::config::Member;
use crate::http::body::Framing;
use crate::http::head::{parse_response, RequestHead, ResponseHead};
use crate::transport::io::{is_disconnect, read_more, write_all, IoFail};
use crate::transport::BackendStream;

/// Backend read buffer; large enough that a typical response head and small body arrive in
/// one read.
pub const BACKEND_BUF: usize = 16 * 1024;

/// An HTTP/1.1 connection to a member.
pub struct Http1Session {
    pub stream: BackendStream,
    /// Read buffer, lent from the core's `backend_bufs` for one exchange; without capacity
    /// while the connection waits in the pool.
    pub buf: Vec<u8>,
    pub idle_since: Instant,
    /// Lent from the pool (so it may be stale), as opposed to freshly connected.
    pub reused: bool,
    /// The last response's parsed head, kept for its allocations.
    pub head: ResponseHead,
    /// The server name its TLS handshake sent, when not the member's configured one.
    pub sni: Option<Box<str>>,
}

/// How sending to, or reading from, the member failed.
#[derive(Debug)]
pub enum Http1Error {
    /// The connection was closed before the member saw the request (a pooled connection
    /// the member had given up on): the request may go again on a fresh one.
    Stale,
    /// Closed before a whole response head.
    Closed,
    Io(std::io::Error),
    /// Sending timed out.
    SendTimeout,
    /// No response within the member's timeout.
    Timeout,
    /// What the member sent is not HTTP/1.1.
    Protocol(String),
}

/// What [`Http1Session::read_head`] found.
pub enum HeadEvent {
    /// An interim (1xx other than 101) response of this many bytes, still in the buffer.
    Interim(u16, usize),
    /// `101 Switching Protocols`, with the head's length.
    Switching(usize),
    /// The final response head, parsed into the session's `head`.
    Final,
}

impl Http1Session {
    pub fn new(stream: BackendStream) -> Http1Session {
        Http1Session {
            stream,
            buf: Vec::new(),
            idle_since: crate::runtime::timer::coarse_now(),
            reused: false,
            head: ResponseHead::default(),
            sni: None,
        }
    }

    /// Sends a request head (and whatever body bytes `out` carries). A pooled connection
    /// that turns out closed is [`Http1Error::Stale`]: nothing reached the member.
    pub async fn send_head(
        &mut self,
        out: Vec<u8>,
        t: Duration,
    ) -> (Result<(), Http1Error>, Vec<u8>) {
        let (res, out) = write_all(&mut self.stream, out, t).await;
        let res = match res {
            Ok(()) => Ok(()),
            Err(IoFail::Io(e)) if is_disconnect(&e) => Err(Http1Error::Stale),
            Err(IoFail::Io(e)) => Err(Http1Error::Io(e)),
            Err(IoFail::Timeout) => Err(Http1Error::SendTimeout),
        };
        (res, out)
    }

    /// Reads until a response head is whole. `replayable`: the request was sent whole in
    /// one write, so a connection that ends before any response byte is stale rather than
    /// failed. `is_head`: the request was HEAD (no body follows whatever the head says).
    pub async fn read_head(
        &mut self,
        is_head: bool,
        replayable: bool,
        t: Duration,
    ) -> Result<HeadEvent, Http1Error> {
        loop {
            if !self.buf.is_empty() {
                match parse_response(&self.buf, is_head, &mut self.head) {
                    Ok(Some(())) => {
                        let (status, len) = (self.head.status, self.head.len);
                        return Ok(match status {
                            101 => HeadEvent::Switching(len),
                            100..=199 => HeadEvent::Interim(status, len),
                            _ => HeadEvent::Final,
                        });
                    }
                    Ok(None) => {}
                    Err(e) => return Err(Http1Error::Protocol(e.to_string())),
                }
            }
            let nothing_yet = self.buf.is_empty();
            let buf = std::mem::take(&mut self.buf);
            let (res, buf) = read_more(&mut self.stream, buf, BACKEND_BUF / 2, t).await;
            self.buf = buf;
            match res {
                Ok(0) if nothing_yet && replayable => return Err(Http1Error::Stale),
                Ok(0) => return Err(Http1Error::Closed),
                Ok(_) => {}
                Err(IoFail::Io(e)) if nothing_yet && replayable && is_disconnect(&e) => {
                    return Err(Http1Error::Stale)
                }
                Err(IoFail::Io(e)) => return Err(Http1Error::Io(e)),
                Err(IoFail::Timeout) => return Err(Http1Error::Timeout),
            }
        }
    }

    /// Drops an interim response of `len` bytes from the buffer.
    pub fn skip(&mut self, len: usize) {
        self.buf.drain(..len.min(self.buf.len()));
    }

    /// Whether the connection can carry another request after a response whose body ended
    /// at `end` of the buffer with `framing` done: the member did not say close, nothing
    /// followed the body, and the body had a length of its own.
    pub fn reusable(&self, pool_reuse: bool, framing: &Framing, end: usize) -> bool {
        pool_reuse
            && !self.head.close
            && framing.is_done()
            && end == self.buf.len()
            && !matches!(framing, Framing::UntilClose)
    }
}

/// The request's `Upgrade` value (as a range of `buf`), when it asks for an upgrade
/// (`Connection: upgrade` too) that the member accepts (`upgrade=websocket` or a ws://
/// member; `upgrade=ANY` or `*` for any protocol, as Apache's mod_proxy_http) and no body
/// is still to stream (`whole`: it came with the head), since a body cannot share the
/// connection with a tunnel.
pub fn upgrade_request(
    buf: &[u8],
    head: &RequestHead,
    member: &Member,
    whole: bool,
) -> Option<Range<usize>> {
    let allowed = member.params.upgrade.as_deref()?;
    if !whole {
        return None;
    }
    let asks = head
        .connection_tokens
        .iter()
        .any(|t| buf[t.clone()].eq_ignore_ascii_case(b"upgrade"));
    if !asks {
        return None;
    }
    let h = head.named(buf, b"upgrade").next()?;
    let first = buf[h.value.clone()]
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

/// Appends the hop-by-hop headers an upgrade needs (dropped with the others when the head
/// was forwarded; they are exactly what this hop needs) to a written head.
pub fn add_upgrade(out: &mut Vec<u8>, protocol: &[u8]) {
    if out.ends_with(b"\r\n\r\n") {
        out.truncate(out.len() - 2);
    }
    out.extend_from_slice(b"Connection: Upgrade\r\nUpgrade: ");
    out.extend_from_slice(protocol);
    out.extend_from_slice(b"\r\n\r\n");
}
