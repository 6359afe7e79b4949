//! One pinned thread per core: its runtime, its buffers, pipes and parking lot, its
//! connection drain, and its [`CoreGen`] for each configuration generation still in use.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use monoio::net::TcpListener;
use tracing::{debug, warn};

use super::accept::accept_loop;
use super::buffer::{BufPool, FutureBoxes};
use super::driver::{run_local, DriverChoice};
use super::generation::{CoreGen, Generations};
use super::shutdown::Drain;
use crate::http::server;
use crate::transport::park::{LotOwner, ParkingLot, Resumed};
use crate::transport::splice::PipePool;
use crate::transport::ClientStream;

/// About what a connection's task held before it parked (its state and future).
const PARKED_TASK_BYTES: usize = 1200;
/// About the size of a connection's boxed request future (for the trim threshold only).
const REQUEST_FUTURE_BYTES: usize = 3500;
/// About what an idle backend connection holds in user space (its socket's state and its
/// last response head's tables), for the trim threshold only.
const POOLED_CONN_BYTES: usize = 512;
/// Freed bytes worth a `malloc_trim` (which walks the worker's heap).
const TRIM_AFTER_BYTES: usize = 1024 * 1024;

/// What a worker thread keeps across configuration generations: its buffers, pipes and
/// timers, its connection drain, and its `CoreGen` for each generation still in use.
pub struct Thread {
    pub id: usize,
    pub(super) gens: Arc<Generations>,
    /// Client read buffers, lent while a connection reads or works on a request.
    pub read_bufs: BufPool,
    /// Small buffers for outgoing heads and per-request strings.
    pub small_bufs: BufPool,
    /// Backend read buffers, lent while a backend connection carries an exchange: a
    /// connection idle in the keep-alive pool holds none.
    pub backend_bufs: BufPool,
    /// Memory for connections' request futures (see `FutureBoxes`).
    pub request_futures: FutureBoxes,
    /// Scratch header list for the heads this core forwards (built and written without an
    /// await in between, so one per core serves every connection).
    pub fields: RefCell<crate::http::message::Headers>,
    /// Pipes lent to connections splicing a large body.
    pub pipes: PipePool,
    /// Connections idle long enough to give up their tasks (`IdleParkAfter`).
    pub lot: ParkingLot,
    /// Requests started, for the busy poller (`BusyPolling`).
    pub activity: crate::runtime::busypoll::Activity,
    /// Bytes freed (buffers decayed, tasks of parked connections) since the last
    /// `malloc_trim`.
    freed_since_trim: Cell<usize>,
    /// Requests started as of the last `release_memory`, to tell a quiet second.
    started_at_release: Cell<u64>,
    /// Whether a second with requests came since the last `malloc_trim`.
    busy_since_trim: Cell<bool>,
    pub drain: Drain,
    /// This worker's share of MaxRequestWorkers (requests in progress).
    pub slots: Rc<crate::runtime::slots::Slots>,
    /// The worker state for the latest generation this thread has seen. (A cycle with
    /// `CoreGen::thread`, broken when the thread stops.)
    current: RefCell<Option<Rc<CoreGen>>>,
    /// Every generation's worker state still held by a connection (their logs are flushed
    /// on the ticker until the last connection lets go).
    live: RefCell<Vec<Weak<CoreGen>>>,
}

impl Thread {
    fn new(id: usize, gens: Arc<Generations>) -> Thread {
        Thread {
            id,
            gens,
            read_bufs: BufPool::new(crate::http::server::CLIENT_BUF, 256),
            small_bufs: BufPool::new(crate::http::server::SMALL_BUF, 512),
            backend_bufs: BufPool::new(crate::upstream::http1::BACKEND_BUF, 256),
            request_futures: FutureBoxes::new(256),
            fields: RefCell::default(),
            pipes: PipePool::default(),
            lot: ParkingLot::default(),
            activity: Default::default(),
            freed_since_trim: Cell::new(0),
            started_at_release: Cell::new(0),
            busy_since_trim: Cell::new(false),
            drain: Drain::default(),
            slots: Default::default(),
            current: RefCell::new(None),
            live: RefCell::new(Vec::new()),
        }
    }

    /// This thread's worker state for the latest generation, built on first use.
    pub fn current(self: &Rc<Self>) -> Rc<CoreGen> {
        let latest = self.gens.latest();
        if let Some(w) = self.current.borrow().as_ref() {
            if w.shared.generation >= latest {
                return w.clone();
            }
        }
        let shared = self.gens.current();
        if shared.generation > 1 {
            debug!(
                "worker {}: now serving configuration generation {}",
                self.id, shared.generation
            );
        }
        let w = Rc::new(CoreGen::new(self.clone(), shared));
        let mut live = self.live.borrow_mut();
        live.retain(|l| l.strong_count() > 0);
        live.push(Rc::downgrade(&w));
        *self.current.borrow_mut() = Some(w.clone());
        w
    }

    /// Flushes due access-log buffers of every generation still in use.
    fn tick_logs(&self) {
        for l in self.live.borrow().iter() {
            if let Some(w) = l.upgrade() {
                w.logs.tick();
            }
        }
    }

    /// Runs one client connection in its own task. The task owns the connection's counts
    /// (open connections, MaxRequestWorkers, drain) and gives them up when the connection
    /// closes; a parked connection's counts go to the parking lot with it.
    pub(super) fn spawn_conn(
        self: &Rc<Self>,
        w: Rc<CoreGen>,
        stream: ClientStream,
        start: server::Start,
    ) {
        let t = self.clone();
        monoio::spawn(async move {
            let served = CatchUnwind(Box::pin(server::serve(w, stream, start))).await;
            match served {
                Ok(server::Served::Parked) => {}
                Ok(server::Served::Closed) => t.conn_closed(),
                Err(()) => {
                    tracing::error!("client connection handler panicked; connection closed");
                    t.conn_closed();
                }
            }
        });
    }

    /// About once a second: frees pooled buffers that went unused, and returns freed memory
    /// to the system (see `should_trim` for when). glibc keeps freed heap memory otherwise,
    /// and after a burst of connections that is megabytes held for good.
    fn release_memory(&self) {
        // Bookkeeping tables that grow with a burst and are reused, never reallocated, at a
        // steady load.
        crate::runtime::timer::release_memory();
        self.drain.release_memory();
        let now = crate::runtime::timer::coarse_now();
        let closed: usize = self
            .live
            .borrow()
            .iter()
            .filter_map(Weak::upgrade)
            .map(|w| w.pool.purge(now))
            .sum();
        let freed = closed * POOLED_CONN_BYTES
            + self.read_bufs.decay() * crate::http::server::CLIENT_BUF
            + self.small_bufs.decay() * crate::http::server::SMALL_BUF
            + self.backend_bufs.decay() * crate::upstream::http1::BACKEND_BUF
            + self.request_futures.decay() * REQUEST_FUTURE_BYTES
            + self.lot.take_parked_count() * PARKED_TASK_BYTES;
        let pending = self.freed_since_trim.get() + freed;
        let started = self.activity.started();
        let quiet = self.started_at_release.replace(started) == started;
        let busy_before = self.busy_since_trim.get() || !quiet;
        if !should_trim(pending, quiet, busy_before) {
            self.freed_since_trim.set(pending);
            self.busy_since_trim.set(busy_before);
            return;
        }
        self.freed_since_trim.set(0);
        self.busy_since_trim.set(false);
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only releases free memory; it takes no pointers.
        unsafe {
            libc::malloc_trim(0);
        }
    }

    fn flush_logs(&self) {
        for l in self.live.borrow().iter() {
            if let Some(w) = l.upgrade() {
                w.logs.flush();
            }
        }
    }
}

/// Whether the worker should `malloc_trim` now, given the bytes it knows it freed since
/// the last trim, whether the last second started no request, and whether a second with
/// requests came since the last trim.
///
/// A trim walks the heap and the memory it returns page-faults back in when used again, so
/// under load it waits for a megabyte of known frees. Once the worker goes quiet after
/// traffic, it trims once, whatever the count: not every free is counted (the runtime's
/// own tables, the epoll driver's registrations, strings of finished requests), and a quiet
/// worker pays nothing for the walk. Quiet seconds after that trim do not trim again.
fn should_trim(pending: usize, quiet: bool, busy_since_trim: bool) -> bool {
    pending >= TRIM_AFTER_BYTES || (quiet && (busy_since_trim || pending > 0))
}

impl Thread {
    /// A client connection closed: it leaves the open-connection counts and the drain.
    fn conn_closed(&self) {
        let shared = self.gens.current();
        shared.connections.fetch_sub(1, Ordering::Relaxed);
        shared.stats[self.id]
            .conns_open
            .fetch_sub(1, Ordering::Relaxed);
        self.drain.leave();
    }

    fn parked_delta(&self, d: i64) {
        self.gens.current().stats[self.id]
            .parked
            .fetch_add(d, Ordering::Relaxed);
    }
}

impl LotOwner for Thread {
    fn lot(&self) -> &ParkingLot {
        &self.lot
    }

    fn parked(&self) {
        self.parked_delta(1);
    }

    fn closed(&self) {
        self.parked_delta(-1);
        self.conn_closed();
    }

    fn resume(self: &Rc<Self>, r: Resumed) {
        self.parked_delta(-1);
        // A parked connection comes back on the latest configuration.
        let w = self.current();
        match ClientStream::from_std(r.stream) {
            Ok(stream) => {
                let start = server::Start::Resumed(server::Resume {
                    peer: r.peer,
                    local: r.local,
                    requests: r.requests,
                });
                self.spawn_conn(w, stream, start);
            }
            Err(e) => {
                debug!("client {}: cannot resume a parked connection: {e}", r.peer);
                self.conn_closed();
            }
        }
    }

    fn draining(&self) -> bool {
        self.drain.is_draining()
    }

    fn drain_wait(&self) -> impl std::future::Future<Output = ()> + '_ {
        self.drain.draining()
    }
}

pub(super) fn run_thread(
    id: usize,
    core: Option<core_affinity::CoreId>,
    listeners: Vec<std::net::TcpListener>,
    gens: Arc<Generations>,
    driver: DriverChoice,
) {
    if let Some(c) = core {
        if !core_affinity::set_for_current(c) {
            warn!("worker {id}: could not pin to core {}", c.id);
        }
    }
    let result = run_local(driver, move |epoll| {
        if epoll {
            let shared = gens.current();
            shared.epoll_workers.fetch_add(1, Ordering::Relaxed);
            shared.stats[id].epoll.store(true, Ordering::Relaxed);
        }
        debug!(
            "worker {id}: {} driver",
            if epoll { "epoll" } else { "io_uring" }
        );
        thread_main(id, listeners, gens)
    });
    if let Err(e) = result {
        tracing::error!("worker {id}: cannot start any runtime: {e}");
    }
}

async fn thread_main(id: usize, listeners: Vec<std::net::TcpListener>, gens: Arc<Generations>) {
    let thread = Rc::new(Thread::new(id, gens));
    let shutdown = thread.current().shared.shutdown.clone();
    // The ticker that ends idle keep-alive connections on time; it stops with the worker.
    monoio::spawn(idle_ticker(thread.clone()));
    monoio::spawn(crate::runtime::busypoll::run(thread.clone()));
    let mut accept_tasks = Vec::new();
    for l in listeners {
        match TcpListener::from_std(l) {
            Ok(l) => accept_tasks.push(monoio::spawn(accept_loop(
                thread.clone(),
                shutdown.clone(),
                l,
            ))),
            Err(e) => tracing::error!("worker {id}: listener setup failed: {e}"),
        }
    }
    for t in accept_tasks {
        t.await;
    }
    // Stop: no new connections; idle keep-alive connections close now, busy ones after
    // their current response, within the grace period.
    thread.drain.start();
    let grace = thread.current().shared.cfg.core.graceful_shutdown_timeout;
    if monoio::time::timeout(grace, thread.drain.idle())
        .await
        .is_err()
    {
        warn!(
            "worker {id}: {} connection(s) still busy after {}s; closing them",
            thread.drain.active(),
            grace.as_secs()
        );
    }
    thread.flush_logs();
    // Break the Thread <-> CoreGen cycle so this generation's state (pooled backend
    // connections, logs) is dropped while the runtime still runs.
    thread.current.borrow_mut().take();
    // On io_uring a dropped socket is closed by a queued close operation, which the ring
    // submits when the runtime next parks: park once so the closes of the last sockets are
    // submitted before this runtime and its ring go away.
    monoio::time::sleep(std::time::Duration::from_millis(1)).await;
}

/// Flushes access logs and releases unused memory. Runs as long
/// as the worker's runtime does (which drops it on exit).
async fn idle_ticker(t: Rc<Thread>) {
    let mut ticks = 0u32;
    loop {
        monoio::time::sleep(crate::runtime::timer::TICK).await;
        t.tick_logs();
        t.gens.current().stats[t.id]
            .ticks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ticks = ticks.wrapping_add(1);
        if ticks % 10 == 0 {
            t.release_memory();
        }
    }
}

/// Runs a connection future, turning a panic into an error so one connection's bug never
/// takes its worker (and every other connection on it) down.
struct CatchUnwind<F>(std::pin::Pin<Box<F>>);

impl<T, F: std::future::Future<Output = T>> std::future::Future for CatchUnwind<F> {
    type Output = Result<T, ()>;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(_) => std::task::Poll::Ready(Err(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_after_a_megabyte_or_once_when_the_worker_goes_quiet() {
        const MB: usize = TRIM_AFTER_BYTES;
        // (freed bytes known, the last second was quiet, a busy second came since the
        // last trim) -> trim?
        let cases = [
            // Under load: only a megabyte of known frees is worth the walk.
            ((0, false, true), false),
            ((MB - 1, false, true), false),
            ((MB, false, true), true),
            // Quiet after traffic: once, even with nothing counted (uncounted frees).
            ((0, true, true), true),
            // Quiet, already trimmed, nothing freed since: no walk every second.
            ((0, true, false), false),
            // Quiet, and something freed since (parked connections, decayed buffers).
            ((4096, true, false), true),
        ];
        for ((pending, quiet, busy), want) in cases {
            assert_eq!(
                should_trim(pending, quiet, busy),
                want,
                "pending {pending} quiet {quiet} busy {busy}"
            );
        }
    }
}
