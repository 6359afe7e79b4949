//! One pinned thread per core, each with its own monoio runtime, its own SO_REUSEPORT
//! listener per `Listen` address, its own backend pool and selection counters.
//!
//! Listeners are bound on the starting thread, before any worker runs, so that `:0` in a
//! config (tests) resolves to one port that every worker's socket then shares.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use monoio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};
use tracing::{debug, info, warn};

use crate::accesslog::WorkerLogs;
use crate::admin::stats::WorkerStats;
use crate::balancer::{LocalBalancer, SharedTable};
use crate::buffer::BufPool;
use crate::config::Config;
use crate::conn;
use crate::pool::Pool;
use crate::shutdown::{Drain, ShutdownSignal};
use crate::splice::PipePool;
use crate::timer::IdleTimers;

/// Submission queue size per worker ring.
const URING_ENTRIES: u32 = 4096;

/// Which monoio driver a worker runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverChoice {
    /// io_uring, falling back to epoll (with one warning) where the kernel refuses it.
    Auto,
    /// epoll only (`--driver epoll` or `RINGPROXY_DRIVER=epoll`).
    Epoll,
}

/// State every worker shares. Only what must be common is here.
pub struct Shared {
    pub cfg: Arc<Config>,
    /// Member state and balancer views, shared lock-free by every worker.
    pub table: SharedTable,
    /// Open client connections, whole process (MaxRequestWorkers).
    pub connections: AtomicUsize,
    pub shutdown: ShutdownSignal,
    /// Workers running on the epoll driver (for logs, status and tests).
    pub epoll_workers: AtomicUsize,
    /// One counter block per worker (server-status, metrics).
    pub stats: Vec<WorkerStats>,
    /// balancer-manager nonces, one per balancer (anti-CSRF).
    pub nonces: Vec<String>,
    pub started: std::time::Instant,
}

/// One worker's own state; lives in an `Rc` on its thread.
pub struct Worker {
    pub id: usize,
    pub shared: Arc<Shared>,
    pub balancers: Vec<LocalBalancer>,
    pub pool: Pool,
    /// Client read buffers, lent while a connection reads or works on a request.
    pub read_bufs: BufPool,
    /// Small buffers for outgoing heads and per-request strings.
    pub small_bufs: BufPool,
    /// Keep-alive deadlines of idle connections (one ticker instead of a timer each).
    pub idle_timers: IdleTimers,
    /// Pipes lent to connections splicing a large body.
    pub pipes: PipePool,
    /// This worker's access-log buffers and descriptors.
    pub logs: WorkerLogs,
    pub drain: Drain,
}

#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Overrides `WorkerThreads`; default: every core the process may run on.
    pub workers: Option<usize>,
    pub driver: DriverChoice,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            workers: None,
            driver: driver_from_env(),
        }
    }
}

/// `RINGPROXY_DRIVER=epoll` forces the fallback driver.
pub fn driver_from_env() -> DriverChoice {
    match std::env::var("RINGPROXY_DRIVER").as_deref() {
        Ok("epoll") | Ok("legacy") => DriverChoice::Epoll,
        _ => DriverChoice::Auto,
    }
}

/// A running proxy: its bound addresses and its worker threads.
pub struct Server {
    /// Bound addresses, in `Listen` order (ports resolved when the config said 0).
    pub addrs: Vec<SocketAddr>,
    pub shared: Arc<Shared>,
    /// Worker threads, then the health checker's if any.
    threads: Vec<JoinHandle<()>>,
    workers: usize,
}

impl Worker {
    /// This worker's own counters.
    pub fn stats(&self) -> &WorkerStats {
        &self.shared.stats[self.id]
    }
}

impl Server {
    /// Stops accepting; in-flight requests finish within GracefulShutdownTimeout.
    pub fn shutdown(&self) {
        self.shared.shutdown.fire();
    }

    /// Waits for every worker to finish.
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }

    pub fn workers(&self) -> usize {
        self.workers
    }
}

/// Binds the listeners and starts the workers.
pub fn start(cfg: Arc<Config>, opts: RunOptions) -> io::Result<Server> {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let n = opts
        .workers
        .or(cfg.core.worker_threads)
        .unwrap_or_else(|| cores.len().max(1));
    // Bind every worker's socket now: errors (port in use) surface before anything starts.
    let mut per_worker: Vec<Vec<std::net::TcpListener>> = (0..n).map(|_| Vec::new()).collect();
    let mut addrs = Vec::new();
    for listen in &cfg.listens {
        let mut addr = *listen;
        for (i, slot) in per_worker.iter_mut().enumerate() {
            let l = bind_reuseport(addr, cfg.core.listen_backlog)?;
            if i == 0 {
                addr = l.local_addr()?;
                addrs.push(addr);
            }
            slot.push(l);
        }
    }
    let shared = Arc::new(Shared {
        table: SharedTable::new(&cfg),
        cfg: cfg.clone(),
        connections: AtomicUsize::new(0),
        shutdown: ShutdownSignal::default(),
        epoll_workers: AtomicUsize::new(0),
        stats: (0..n).map(|_| WorkerStats::default()).collect(),
        nonces: cfg
            .balancers
            .iter()
            .map(|b| crate::admin::manager::make_nonce(b.params.nonce.as_deref()))
            .collect(),
        started: std::time::Instant::now(),
    });
    let mut threads = Vec::with_capacity(n);
    for (id, listeners) in per_worker.into_iter().enumerate() {
        let shared = shared.clone();
        let core = if cfg.core.cpu_affinity && !cores.is_empty() {
            Some(cores[id % cores.len()])
        } else {
            None
        };
        let driver = opts.driver;
        let t = std::thread::Builder::new()
            .name(format!("ringproxy-w{id}"))
            .spawn(move || run_worker(id, core, listeners, shared, driver))?;
        threads.push(t);
    }
    // One health checker for the whole process, not one per core.
    if cfg
        .balancers
        .iter()
        .any(|b| b.members.iter().any(|m| m.params.hc.method.is_some()))
    {
        let shared = shared.clone();
        let driver = opts.driver;
        let t = std::thread::Builder::new()
            .name("ringproxy-hc".into())
            .spawn(move || {
                if let Err(e) = run_local(driver, move |_| crate::health::run(shared)) {
                    tracing::error!("health checker cannot start: {e}");
                }
            })?;
        threads.push(t);
    }
    info!(
        "ringproxy {} started: {n} worker(s) on {}",
        env!("CARGO_PKG_VERSION"),
        addrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(Server {
        addrs,
        shared,
        threads,
        workers: n,
    })
}

fn bind_reuseport(addr: SocketAddr, backlog: i32) -> io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    // Each worker accepts on its own socket; the kernel spreads connections among them.
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(backlog)?;
    Ok(s.into())
}

/// How the io_uring instance is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UringSetup {
    /// IORING_SETUP_COOP_TASKRUN | TASKRUN_FLAG (kernel 5.19+): completions are processed
    /// when the thread next enters the kernel instead of interrupting it for every socket
    /// event. Measured on ping-pong HTTP traffic: about 1.9x the requests per core of a
    /// plain ring (bench/RESULTS.md).
    Coop,
    /// IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN (6.1+): completions only while waiting.
    Defer,
    /// No setup flags.
    Plain,
}

/// `RINGPROXY_URING_SETUP=coop|defer|plain` (default coop), for A/B measurements.
pub fn uring_setup_from_env() -> UringSetup {
    match std::env::var("RINGPROXY_URING_SETUP").as_deref() {
        Ok("defer") => UringSetup::Defer,
        Ok("plain") => UringSetup::Plain,
        _ => UringSetup::Coop,
    }
}

type UringRuntime = monoio::Runtime<monoio::time::TimeDriver<monoio::IoUringDriver>>;

/// Builds an io_uring runtime with `setup`, falling back to a plain ring where the kernel
/// does not know the flags.
fn build_uring(setup: UringSetup) -> io::Result<UringRuntime> {
    let mut b = io_uring::IoUring::builder();
    match setup {
        UringSetup::Coop => {
            b.setup_coop_taskrun().setup_taskrun_flag();
        }
        UringSetup::Defer => {
            b.setup_single_issuer().setup_defer_taskrun();
        }
        UringSetup::Plain => {}
    }
    let flagged = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .with_entries(URING_ENTRIES)
        .uring_builder(b)
        .enable_timer()
        .build();
    match flagged {
        Ok(rt) => Ok(rt),
        Err(e) if setup != UringSetup::Plain => {
            debug!("io_uring with {setup:?} set-up refused ({e}); using a plain ring");
            monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .with_entries(URING_ENTRIES)
                .enable_timer()
                .build()
        }
        Err(e) => Err(e),
    }
}

/// Logged once per process, not once per worker.
static FALLBACK_LOGGED: AtomicBool = AtomicBool::new(false);

/// Runs the future made by `make` to completion on a new monoio runtime on this thread:
/// io_uring when `driver` is Auto and the kernel allows it, else epoll (logged once per
/// process). `make` is told whether it runs on epoll. Shared by the proxy's workers and
/// ringload's threads.
pub fn run_local<F, Fut>(driver: DriverChoice, make: F) -> io::Result<Fut::Output>
where
    F: FnOnce(bool) -> Fut,
    Fut: std::future::Future,
{
    if driver == DriverChoice::Auto {
        let built = build_uring(uring_setup_from_env());
        match built {
            Ok(mut rt) => return Ok(rt.block_on(make(false))),
            Err(e) => {
                if !FALLBACK_LOGGED.swap(true, Ordering::Relaxed) {
                    warn!("io_uring is not available ({e}); running on the epoll driver");
                }
            }
        }
    } else if !FALLBACK_LOGGED.swap(true, Ordering::Relaxed) {
        warn!("epoll driver forced by configuration; io_uring not used");
    }
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()?;
    Ok(rt.block_on(make(true)))
}

fn run_worker(
    id: usize,
    core: Option<core_affinity::CoreId>,
    listeners: Vec<std::net::TcpListener>,
    shared: Arc<Shared>,
    driver: DriverChoice,
) {
    if let Some(c) = core {
        if !core_affinity::set_for_current(c) {
            warn!("worker {id}: could not pin to core {}", c.id);
        }
    }
    let result = run_local(driver, move |epoll| {
        if epoll {
            shared.epoll_workers.fetch_add(1, Ordering::Relaxed);
            shared.stats[id].epoll.store(true, Ordering::Relaxed);
        }
        debug!(
            "worker {id}: {} driver",
            if epoll { "epoll" } else { "io_uring" }
        );
        worker_main(id, listeners, shared)
    });
    if let Err(e) = result {
        tracing::error!("worker {id}: cannot start any runtime: {e}");
    }
}

async fn worker_main(id: usize, listeners: Vec<std::net::TcpListener>, shared: Arc<Shared>) {
    let cfg = shared.cfg.clone();
    let w = Rc::new(Worker {
        id,
        balancers: shared
            .table
            .balancers
            .iter()
            .map(LocalBalancer::new)
            .collect(),
        pool: Pool::default(),
        read_bufs: BufPool::new(crate::conn::CLIENT_BUF, 256),
        small_bufs: BufPool::new(crate::conn::SMALL_BUF, 512),
        idle_timers: IdleTimers::default(),
        pipes: PipePool::default(),
        logs: WorkerLogs::new(cfg.access_logs.clone()),
        drain: Drain::default(),
        shared: shared.clone(),
    });
    // The ticker that ends idle keep-alive connections on time; it stops with the worker.
    monoio::spawn(idle_ticker(w.clone()));
    let mut accept_tasks = Vec::new();
    for l in listeners {
        match TcpListener::from_std(l) {
            Ok(l) => accept_tasks.push(monoio::spawn(accept_loop(w.clone(), l))),
            Err(e) => tracing::error!("worker {id}: listener setup failed: {e}"),
        }
    }
    for t in accept_tasks {
        t.await;
    }
    // Stop: no new connections; idle keep-alive connections close now, busy ones after
    // their current response, within the grace period.
    w.drain.start();
    let grace = cfg.core.graceful_shutdown_timeout;
    if monoio::time::timeout(grace, w.drain.idle()).await.is_err() {
        warn!(
            "worker {id}: {} connection(s) still busy after {}s; closing them",
            w.drain.active(),
            grace.as_secs()
        );
    }
    w.logs.flush();
    // On io_uring a dropped socket is closed by a queued close operation, which the ring
    // submits when the runtime next parks: park once so the closes of the last sockets are
    // submitted before this runtime and its ring go away.
    monoio::time::sleep(std::time::Duration::from_millis(1)).await;
}

/// Wakes idle connections whose keep-alive time is up. Runs as long as the worker's
/// runtime does (which drops it on exit).
async fn idle_ticker(w: Rc<Worker>) {
    loop {
        monoio::time::sleep(crate::timer::TICK).await;
        w.idle_timers.fire_expired(std::time::Instant::now());
        w.logs.tick();
    }
}

async fn accept_loop(w: Rc<Worker>, listener: TcpListener) {
    let shared = &w.shared;
    let cap = shared.cfg.core.max_request_workers;
    loop {
        let accepted = monoio::select! {
            r = listener.accept() => r,
            _ = shared.shutdown.wait() => {
                // Stop listening now, synchronously. Dropping the listener is not enough
                // on io_uring: its close is queued behind the cancelled accept and may only
                // run after several ring round trips (or never, if the runtime ends first).
                // shutdown(2) on a listening socket makes Linux refuse new connections at
                // once.
                // SAFETY: the fd belongs to `listener`, which is alive for this call.
                unsafe {
                    libc::shutdown(listener.as_raw_fd(), libc::SHUT_RDWR);
                }
                return;
            }
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: keep serving what we have.
                warn!("accept failed: {e}");
                monoio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        if shared.connections.fetch_add(1, Ordering::Relaxed) >= cap {
            shared.connections.fetch_sub(1, Ordering::Relaxed);
            monoio::spawn(refuse_overloaded(stream));
            continue;
        }
        let w2 = w.clone();
        w.drain.enter();
        monoio::spawn(async move {
            let served = CatchUnwind(Box::pin(conn::serve(w2.clone(), stream, peer))).await;
            if served.is_err() {
                tracing::error!("client {peer}: connection handler panicked; connection closed");
            }
            w2.shared.connections.fetch_sub(1, Ordering::Relaxed);
            w2.drain.leave();
        });
    }
}

/// Over MaxRequestWorkers: answer 503 rather than leave the client hanging in the backlog.
async fn refuse_overloaded(mut stream: monoio::net::TcpStream) {
    let mut out = Vec::new();
    crate::error::canned_response(&mut out, 503);
    let _ = crate::io::write_all(&mut stream, out, std::time::Duration::from_secs(1)).await;
}

/// Runs a connection future, turning a panic into an error so one connection's bug never
/// takes its worker (and every other connection on it) down.
struct CatchUnwind<F>(std::pin::Pin<Box<F>>);

impl<F: std::future::Future<Output = ()>> std::future::Future for CatchUnwind<F> {
    type Output = Result<(), ()>;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(std::task::Poll::Ready(())) => std::task::Poll::Ready(Ok(())),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(_) => std::task::Poll::Ready(Err(())),
        }
    }
}
