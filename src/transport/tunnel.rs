//! Bytes both ways between a client and a member after `101 Switching Protocols` (or any
//! accepted upgrade), until both sides have closed or nothing moved either way for `idle`.
//!
//! Each direction owns a stream of its own (the second one from
//! [`Transport::duplicate`]), so both run at once without splitting the connection
//! objects. Between two bare sockets bytes move with splice(2) through a pipe per direction
//! unless `SpliceThreshold 0` turned splicing off; otherwise through a user-space buffer.

use std::cell::Cell;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use super::io::{read_more, write_all, IoFail};
use super::splice::{splice_to_eof, NonBlocking, PipePool};
use super::Transport;

/// Buffer per direction when bytes are copied rather than spliced.
const TUNNEL_BUF: usize = 16 * 1024;

/// Runs the tunnel; returns the bytes moved (client to member, member to client). Neither
/// stream is fit for reuse afterwards.
pub async fn run<C: Transport, B: Transport>(
    client: &mut C,
    backend: &mut B,
    idle: Duration,
    pipes: Option<&PipePool>,
) -> (u64, u64) {
    let (Some(Ok(mut to_client)), Some(Ok(mut to_backend))) =
        (client.duplicate(), backend.duplicate())
    else {
        // No second handle (a descriptor limit): the upgrade ends here, both closed.
        return (0, 0);
    };
    let fds = [client.socket(), backend.socket()].map(|s| s.map(AsRawFd::as_raw_fd));
    // Splicing needs both sockets non-blocking for as long as either direction runs.
    let spliced = pipes.and_then(|pipes| {
        let nb = (
            NonBlocking::set(fds[0]?).ok()?,
            NonBlocking::set(fds[1]?).ok()?,
        );
        Some((pipes, nb))
    });
    let ends = Ends {
        last: Cell::new(Instant::now()),
        idle,
        fds,
        pipes: spliced.as_ref().map(|(p, _)| *p),
    };
    let moved = monoio::join!(
        pump(client, &mut to_backend, &ends),
        pump(backend, &mut to_client, &ends)
    );
    drop(spliced);
    moved
}

/// What both directions of a tunnel share.
struct Ends<'a> {
    /// When bytes last moved either way.
    last: Cell<Instant>,
    idle: Duration,
    /// The client's and the member's sockets.
    fds: [Option<RawFd>; 2],
    /// The worker's pipes, when the sockets were made non-blocking for splicing.
    pipes: Option<&'a PipePool>,
}

impl Ends<'_> {
    /// Ends both directions after an error: shutting both sockets wakes the other one.
    fn end_both(&self) {
        for fd in self.fds.into_iter().flatten() {
            // SAFETY: shutdown(2) on descriptors owned by the connections, alive here.
            unsafe {
                libc::shutdown(fd, libc::SHUT_RDWR);
            }
        }
    }
}

/// One direction: moves bytes until `src` ends (then half-closes `dst`), an error (then
/// shuts both sockets so the other direction ends too), or `idle` without traffic either
/// way. Returns the bytes moved.
async fn pump(src: &mut impl Transport, dst: &mut impl Transport, ends: &Ends<'_>) -> u64 {
    let mut moved = 0u64;
    if let Some(pipes) = ends.pipes {
        if let Ok(mut pipe) = pipes.get_for_tunnel() {
            match splice_to_eof(src, dst, &mut pipe, ends.idle, &ends.last, &mut moved).await {
                Ok(()) => {
                    dst.shutdown_write().await;
                    pipes.put_empty(pipe);
                }
                // The pipe may hold bytes: it is dropped, not returned.
                Err(_) => ends.end_both(),
            }
            return moved;
        }
    }
    let mut buf = Vec::with_capacity(TUNNEL_BUF);
    loop {
        buf.clear();
        let (r, b) = read_more(src, buf, TUNNEL_BUF, ends.idle).await;
        buf = b;
        match r {
            Ok(0) => {
                dst.shutdown_write().await;
                return moved;
            }
            Ok(n) => {
                ends.last.set(Instant::now());
                moved += n as u64;
                let (w, b) = write_all(dst, buf, ends.idle).await;
                buf = b;
                if w.is_err() {
                    ends.end_both();
                    return moved;
                }
            }
            // The other direction may be busy: only a tunnel idle both ways times out.
            Err(IoFail::Timeout) if ends.last.get().elapsed() < ends.idle => {}
            Err(_) => {
                ends.end_both();
                return moved;
            }
        }
    }
}
