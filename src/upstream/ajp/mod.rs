//! AJP/1.3 members (`ajp://`), as Apache's mod_proxy_ajp speaks to Tomcat. [`codec`] reads
//! and writes the packets without I/O; [`AjpSession`] carries them over a member
//! connection, and the proxy's AJP exchange (`proxy::ajp`) drives a request through it.

pub mod codec;

use std::time::{Duration, Instant};

use crate::transport::io::{is_disconnect, read_more, write_all, IoFail};
use crate::transport::BackendStream;
use codec::{AjpError, Reply};

/// A connection to an AJP member.
pub struct AjpSession {
    pub stream: BackendStream,
    /// Bytes read from the member and not yet decoded; lent from the core's pool for one
    /// exchange, without capacity while pooled.
    pub buf: Vec<u8>,
    pub idle_since: Instant,
    /// Lent from the pool (so it may be stale), as opposed to freshly connected.
    pub reused: bool,
    /// Both sides' packet size (8 KiB unless `ProxyIOBufferSize` says otherwise).
    pub packet_size: usize,
    /// Where the next undecoded packet starts in `buf`.
    pos: usize,
}

/// How talking to the member failed.
#[derive(Debug)]
pub enum AjpFailure {
    /// Closed before the member saw the request (a pooled connection it had given up).
    Stale,
    /// Closed before the message the exchange waited for.
    Closed,
    Io(std::io::Error),
    SendTimeout,
    Timeout,
    Protocol(AjpError),
}

impl AjpSession {
    pub fn new(stream: BackendStream, packet_size: usize) -> AjpSession {
        AjpSession {
            stream,
            buf: Vec::new(),
            idle_since: crate::runtime::timer::coarse_now(),
            reused: false,
            packet_size,
            pos: 0,
        }
    }

    /// Sends `out` (whole packets). Nothing reached a pooled connection the member had
    /// closed: [`AjpFailure::Stale`].
    pub async fn send(&mut self, out: Vec<u8>, t: Duration) -> (Result<(), AjpFailure>, Vec<u8>) {
        let (r, out) = write_all(&mut self.stream, out, t).await;
        let r = match r {
            Ok(()) => Ok(()),
            Err(IoFail::Io(e)) if self.reused && is_disconnect(&e) => Err(AjpFailure::Stale),
            Err(IoFail::Io(e)) => Err(AjpFailure::Io(e)),
            Err(IoFail::Timeout) => Err(AjpFailure::SendTimeout),
        };
        (r, out)
    }

    /// The next message from the member, reading as needed. `first`: nothing of this
    /// response came yet, so a pooled connection that ends here is stale. The message
    /// borrows the session's buffer until the next call.
    pub async fn next(&mut self, first: bool, t: Duration) -> Result<Reply<'_>, AjpFailure> {
        loop {
            match codec::packet_len(&self.buf[self.pos..], self.packet_size) {
                Ok(Some(len)) => {
                    let start = self.pos;
                    self.pos += len;
                    return match codec::decode(&self.buf[start..self.pos], self.packet_size) {
                        Ok(Some((r, _))) => Ok(r),
                        Ok(None) => Err(AjpFailure::Closed),
                        Err(e) => Err(AjpFailure::Protocol(e)),
                    };
                }
                Ok(None) => {}
                Err(e) => return Err(AjpFailure::Protocol(e)),
            }
            // Room for the rest of a packet: what was decoded goes first.
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            let nothing_yet = self.buf.is_empty();
            let buf = std::mem::take(&mut self.buf);
            let (r, buf) = read_more(&mut self.stream, buf, self.packet_size, t).await;
            self.buf = buf;
            match r {
                Ok(0) if first && nothing_yet && self.reused => return Err(AjpFailure::Stale),
                Ok(0) => return Err(AjpFailure::Closed),
                Ok(_) => {}
                Err(IoFail::Io(e)) if first && nothing_yet && self.reused && is_disconnect(&e) => {
                    return Err(AjpFailure::Stale)
                }
                Err(IoFail::Io(e)) => return Err(AjpFailure::Io(e)),
                Err(IoFail::Timeout) => return Err(AjpFailure::Timeout),
            }
        }
    }

    /// CPING, and its CPONG within `t` (the member's `ping=`, `hcmethod=CPING`): the
    /// container is there and answering on this connection.
    pub async fn cping(&mut self, t: Duration) -> Result<(), AjpFailure> {
        let mut out = Vec::with_capacity(5);
        codec::encode_cping(&mut out);
        let (r, _) = self.send(out, t).await;
        r?;
        match self.next(false, t).await? {
            Reply::Cpong => Ok(()),
            _ => Err(AjpFailure::Protocol(AjpError::UnknownType(0))),
        }
    }

    /// Whether anything the member sent is still undecoded (after END_RESPONSE there must
    /// be nothing, or the connection is not reused).
    pub fn has_pending(&self) -> bool {
        self.pos < self.buf.len()
    }

    /// Forgets decoded bytes, for the next exchange.
    pub fn reset(&mut self) {
        self.buf.drain(..self.pos.min(self.buf.len()));
        self.pos = 0;
    }
}
