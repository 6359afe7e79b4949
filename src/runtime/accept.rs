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
    // Nothing is accepted before the process may serve (after its switch to `User`).
    let open = thread.current().shared.open.clone();
    if !open.is_fired() {
        monoio::select! {
            _ = open.wait() => {}
            _ = &mut stop => {
                crate::transport::stop_listening(&listener);
                return;
            }
        }
    }
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
        let cap = shared.cfg.core.max_connections();
        if shared.connections.fetch_add(1, Ordering::Relaxed) >= cap && !make_room(&thread).await {
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

/// Over the connection limit (MaxRequestWorkers × (AsyncRequestWorkerFactor + 1)), Apache's
/// event MPM closes idle keep-alive connections to make room. Here: the worker's parked
/// connection that has waited longest; if none is parked, the worker's idle connections
/// are asked to park now (or close, those that cannot park), and the oldest of them goes.
/// Returns whether a connection was closed (its count is then given back).
async fn make_room(thread: &Rc<Thread>) -> bool {
    use crate::transport::park::LotOwner;
    if thread.lot.evict_oldest() {
        thread.closed();
        return true;
    }
    // The idle connections withdraw their pending receives first (an io_uring round
    // trip), so they park over the next moments, not at once.
    let crowd = thread.drain.crowd_epoch();
    thread.drain.crowd();
    for _ in 0..MAKE_ROOM_WAITS {
        monoio::time::sleep(MAKE_ROOM_STEP).await;
        if thread.lot.evict_oldest() {
            thread.closed();
            return true;
        }
        if thread.drain.crowd_epoch() != crowd + 1 {
            // Another accept crowded the worker again meanwhile: it takes over.
            break;
        }
    }
    false
}

/// How long an accept over the limit waits for idle connections to park, in steps: a
/// connection is refused (503) only when none did by then.
const MAKE_ROOM_STEP: std::time::Duration = std::time::Duration::from_millis(1);
const MAKE_ROOM_WAITS: usize = 20;

/// Over the connection limit with no idle connection to close: answer 503 rather than leave
/// the client hanging in the backlog.
async fn refuse_overloaded(mut stream: ClientStream) {
    let mut out = Vec::new();
    crate::error::canned_response(&mut out, 503);
    let _ =
        crate::transport::io::write_all(&mut stream, out, std::time::Duration::from_secs(1)).await;
}
