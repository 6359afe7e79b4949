//! Listening sockets: one SO_REUSEPORT listener per `Listen` address per core, bound before
//! any thread runs, and each core's accept loop.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use monoio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};
use tracing::warn;

use super::shutdown::ShutdownSignal;
use super::thread::Thread;
use crate::transport::ClientStream;

/// Fails with "Address already in use" when something already listens on `addr`, even
/// with SO_REUSEPORT: a second ringproxy started on the same `Listen` must not join the
/// first one's port and share its traffic silently. A socket without SO_REUSEPORT cannot
/// bind where a listener is, whoever owns it; SO_REUSEADDR keeps connections in TIME_WAIT
/// from a previous run out of the way, as Apache's own bind does.
pub(super) fn check_free(addr: SocketAddr) -> io::Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("could not bind to address {addr}: {e}")))
}

pub(super) fn bind_reuseport(addr: SocketAddr, backlog: i32) -> io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    // Each worker accepts on its own socket; the kernel spreads connections among them.
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(backlog)?;
    Ok(s.into())
}

pub(super) async fn accept_loop(
    thread: Rc<Thread>,
    shutdown: Arc<ShutdownSignal>,
    listener: TcpListener,
) {
    // One registration with the process-wide signal for the loop's life, not one per accept.
    let stop = shutdown.wait();
    let mut stop = std::pin::pin!(stop);
    loop {
        let accepted = monoio::select! {
            r = listener.accept() => r,
            _ = &mut stop => {
                crate::transport::stop_listening(&listener);
                return;
            }
        };
        let (stream, peer) = match accepted {
            Ok((s, peer)) => (ClientStream::accepted(s), peer),
            Err(e) => {
                // EMFILE and friends: keep serving what we have.
                warn!("accept failed: {e}");
                monoio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        // A new connection always starts on the latest configuration.
        let w = thread.current();
        let shared = &w.shared;
        let cap = shared.cfg.core.max_request_workers;
        if shared.connections.fetch_add(1, Ordering::Relaxed) >= cap {
            shared.connections.fetch_sub(1, Ordering::Relaxed);
            monoio::spawn(refuse_overloaded(stream));
            continue;
        }
        shared.stats[thread.id]
            .conns_total
            .fetch_add(1, Ordering::Relaxed);
        shared.stats[thread.id]
            .conns_open
            .fetch_add(1, Ordering::Relaxed);
        thread.drain.enter();
        thread.spawn_conn(w, stream, crate::http::server::Start::Accepted(peer));
    }
}

/// Over MaxRequestWorkers: answer 503 rather than leave the client hanging in the backlog.
async fn refuse_overloaded(mut stream: ClientStream) {
    let mut out = Vec::new();
    crate::error::canned_response(&mut out, 503);
    let _ =
        crate::transport::io::write_all(&mut stream, out, std::time::Duration::from_secs(1)).await;
}
