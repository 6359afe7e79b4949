//! One pinned thread per core, each with its own monoio runtime, its own SO_REUSEPORT
//! listener per `Listen` address, its own backend pool and selection counters.
//!
//! Listeners are bound on the starting thread, before any worker runs, so that `:0` in a
//! config (tests) resolves to one port that every worker's socket then shares.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::rc::Weak;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use arc_swap::ArcSwap;
use monoio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};
use tracing::{debug, info, warn};

use crate::accesslog::WorkerLogs;
use crate::admin::stats::WorkerStats;
use crate::balancer::{LocalBalancer, SharedTable};
use crate::buffer::{BufPool, FutureBoxes};
use crate::config::Config;
use crate::conn;
use crate::pool::Pool;
use crate::shutdown::{Drain, ShutdownSignal};
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

/// State every worker shares, for one configuration generation. A reload builds a new
/// one (carrying member state over) and workers switch to it; the process-wide parts
/// (`Arc` fields) are the same object in every generation.
pub struct Shared {
    pub cfg: Arc<Config>,
    /// Member state and balancer views, shared lock-free by every worker.
    pub table: SharedTable,
    /// balancer-manager nonces, one per balancer (anti-CSRF).
    pub nonces: Vec<String>,
    /// 1 for the configuration loaded at start, one more per reload.
    pub generation: u64,
    /// Fired when a reload replaces this generation (its health checker stops).
    pub retired: ShutdownSignal,
    /// Open client connections, whole process (MaxRequestWorkers).
    pub connections: Arc<AtomicUsize>,
    pub shutdown: Arc<ShutdownSignal>,
    /// Workers running on the epoll driver (for logs, status and tests).
    pub epoll_workers: Arc<AtomicUsize>,
    /// One counter block per worker (server-status, metrics); kept across reloads.
    pub stats: Arc<Vec<WorkerStats>>,
    pub started: std::time::Instant,
}

/// The current generation, published to every worker thread.
pub struct Generations {
    latest: AtomicU64,
    current: ArcSwap<Shared>,
}

impl Generations {
    fn new(first: Arc<Shared>) -> Generations {
        Generations {
            latest: AtomicU64::new(first.generation),
            current: ArcSwap::new(first),
        }
    }

    /// One atomic load: what workers compare with their generation on each accept and
    /// each request.
    pub fn latest(&self) -> u64 {
        self.latest.load(Ordering::Acquire)
    }

    pub fn current(&self) -> Arc<Shared> {
        self.current.load_full()
    }

    fn publish(&self, shared: Arc<Shared>) {
        let g = shared.generation;
        // The new state first, then the number, so a worker that sees the number finds the
        // state (or a newer one).
        self.current.store(shared);
        self.latest.store(g, Ordering::Release);
    }
}

/// What a worker thread keeps across configuration generations: its buffers, pipes and
/// timers, its connection drain, and its `Worker` for each generation still in use.
pub struct Thread {
    pub id: usize,
    gens: Arc<Generations>,
    /// Client read buffers, lent while a connection reads or works on a request.
    pub read_bufs: BufPool,
    /// Small buffers for outgoing heads and per-request strings.
    pub small_bufs: BufPool,
    /// Backend read buffers, lent while a backend connection carries an exchange: a
    /// connection idle in the keep-alive pool holds none.
    pub backend_bufs: BufPool,
    /// Memory for connections' request futures (see `FutureBoxes`).
    pub request_futures: FutureBoxes,
    /// Pipes lent to connections splicing a large body.
    pub pipes: PipePool,
    /// Connections idle long enough to give up their tasks (`IdleParkAfter`).
    pub lot: ParkingLot,
    /// Requests started, for the busy poller (`BusyPolling`).
    pub activity: crate::busypoll::Activity,
    /// Bytes freed (buffers decayed, tasks of parked connections) since the last
    /// `malloc_trim`.
    freed_since_trim: Cell<usize>,
    /// Requests started as of the last `release_memory`, to tell a quiet second.
    started_at_release: Cell<u64>,
    /// Whether a second with requests came since the last `malloc_trim`.
    busy_since_trim: Cell<bool>,
    pub drain: Drain,
    /// The worker state for the latest generation this thread has seen. (A cycle with
    /// `Worker::thread`, broken when the thread stops.)
    current: RefCell<Option<Rc<Worker>>>,
    /// Every generation's worker state still held by a connection (their logs are flushed
    /// on the ticker until the last connection lets go).
    live: RefCell<Vec<Weak<Worker>>>,
}

impl Thread {
    fn new(id: usize, gens: Arc<Generations>) -> Thread {
        Thread {
            id,
            gens,
            read_bufs: BufPool::new(crate::conn::CLIENT_BUF, 256),
            small_bufs: BufPool::new(crate::conn::SMALL_BUF, 512),
            backend_bufs: BufPool::new(crate::pool::BACKEND_BUF, 256),
            request_futures: FutureBoxes::new(256),
            pipes: PipePool::default(),
            lot: ParkingLot::default(),
            activity: Default::default(),
            freed_since_trim: Cell::new(0),
            started_at_release: Cell::new(0),
            busy_since_trim: Cell::new(false),
            drain: Drain::default(),
            current: RefCell::new(None),
            live: RefCell::new(Vec::new()),
        }
    }

    /// This thread's worker state for the latest generation, built on first use.
    pub fn current(self: &Rc<Self>) -> Rc<Worker> {
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
        let w = Rc::new(Worker::new(self.clone(), shared));
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
    fn spawn_conn(self: &Rc<Self>, w: Rc<Worker>, stream: ClientStream, start: conn::Start) {
        let t = self.clone();
        monoio::spawn(async move {
            let served = CatchUnwind(Box::pin(conn::serve(w, stream, start))).await;
            match served {
                Ok(conn::Served::Parked) => {}
                Ok(conn::Served::Closed) => t.conn_closed(),
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
        crate::timer::release_memory();
        self.drain.release_memory();
        let now = crate::timer::coarse_now();
        let closed: usize = self
            .live
            .borrow()
            .iter()
            .filter_map(Weak::upgrade)
            .map(|w| w.pool.purge(now))
            .sum();
        let freed = closed * POOLED_CONN_BYTES
            + self.read_bufs.decay() * crate::conn::CLIENT_BUF
            + self.small_bufs.decay() * crate::conn::SMALL_BUF
            + self.backend_bufs.decay() * crate::pool::BACKEND_BUF
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
                let start = conn::Start::Resumed(conn::Resume {
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

/// One worker's state for one configuration generation; lives in an `Rc` on its thread,
/// held by the connections that use it.
pub struct Worker {
    pub id: usize,
    pub shared: Arc<Shared>,
    pub thread: Rc<Thread>,
    pub balancers: Vec<LocalBalancer>,
    pub pool: Pool,
    /// This worker's access-log buffers and descriptors.
    pub logs: WorkerLogs,
}

impl Worker {
    fn new(thread: Rc<Thread>, shared: Arc<Shared>) -> Worker {
        Worker {
            id: thread.id,
            balancers: shared
                .table
                .balancers
                .iter()
                .map(|b| LocalBalancer::new(b, thread.id))
                .collect(),
            pool: Pool::default(),
            logs: WorkerLogs::new(shared.cfg.access_logs.clone()),
            shared,
            thread,
        }
    }

    /// This worker's own counters.
    pub fn stats(&self) -> &WorkerStats {
        &self.shared.stats[self.id]
    }

    /// The worker state of a newer configuration, when a reload happened since this one was
    /// made. Connections call it between requests.
    pub fn newer(&self) -> Option<Rc<Worker>> {
        if self.thread.gens.latest() == self.shared.generation {
            return None;
        }
        Some(self.thread.current())
    }
}

/// Why a reload was refused (the previous configuration keeps running).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0} changed; this needs a restart (stop and start ringproxy)")]
    NeedsRestart(String),
    #[error("cannot start the health checker: {0}")]
    HealthChecker(io::Error),
    #[error("{0}")]
    Randomness(io::Error),
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
    gens: Arc<Generations>,
    /// Worker threads, then health checkers (one per generation that needs one).
    threads: Mutex<Vec<JoinHandle<()>>>,
    workers: usize,
    /// The worker count came from the command line, not `WorkerThreads`.
    workers_fixed: bool,
    driver: DriverChoice,
    /// One reload at a time.
    reloading: Mutex<()>,
}

impl Server {
    /// The state of the configuration generation now in use.
    pub fn shared(&self) -> Arc<Shared> {
        self.gens.current()
    }

    /// Stops accepting; in-flight requests finish within GracefulShutdownTimeout.
    pub fn shutdown(&self) {
        self.gens.current().shutdown.fire();
    }

    /// Waits for every worker (and health checker) to finish.
    pub fn join(self) {
        let threads = match self.threads.into_inner() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        for t in threads {
            let _ = t.join();
        }
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Graceful reload: from now on new connections, and existing ones from their next
    /// request, use `cfg`; requests in flight finish on the configuration they started
    /// with. Member state carries over (see [`SharedTable::carried_over`]). Listeners and
    /// worker threads stay, so nothing stops accepting; what would need them changed is
    /// refused. Returns the new generation number.
    pub fn reload(&self, cfg: Config) -> Result<u64, ReloadError> {
        let _one = self.reloading.lock();
        let old = self.gens.current();
        check_reloadable(&old.cfg, &cfg, self.workers, self.workers_fixed)?;
        for (what, same) in [
            ("LogLevel", old.cfg.core.log_level == cfg.core.log_level),
            ("ErrorLog", old.cfg.core.error_log == cfg.core.error_log),
            ("PidFile", old.cfg.core.pid_file == cfg.core.pid_file),
            (
                "CpuAffinity",
                old.cfg.core.cpu_affinity == cfg.core.cpu_affinity,
            ),
        ] {
            if !same {
                warn!("reload: {what} changed; it takes effect at the next restart");
            }
        }
        let nonces = cfg
            .balancers
            .iter()
            .map(|b| {
                // An open balancer-manager page keeps working when its balancer stays.
                old.cfg
                    .balancers
                    .iter()
                    .position(|ob| ob.name == b.name && ob.params.nonce == b.params.nonce)
                    .map(|i| Ok(old.nonces[i].clone()))
                    .unwrap_or_else(|| crate::admin::manager::make_nonce(b.params.nonce.as_deref()))
            })
            .collect::<io::Result<Vec<_>>>()
            .map_err(ReloadError::Randomness)?;
        let cfg = Arc::new(cfg);
        let shared = Arc::new(Shared {
            table: SharedTable::carried_over(&cfg, &old.table, &old.cfg),
            cfg,
            nonces,
            generation: old.generation + 1,
            retired: ShutdownSignal::default(),
            connections: old.connections.clone(),
            shutdown: old.shutdown.clone(),
            epoll_workers: old.epoll_workers.clone(),
            stats: old.stats.clone(),
            started: old.started,
        });
        let checker =
            spawn_health_checker(&shared, self.driver).map_err(ReloadError::HealthChecker)?;
        self.gens.publish(shared.clone());
        old.retired.fire();
        if let Some(t) = checker {
            match self.threads.lock() {
                Ok(mut th) => th.push(t),
                Err(poisoned) => poisoned.into_inner().push(t),
            }
        }
        info!(
            "configuration reloaded (generation {}): {} balancer(s), {} virtual host(s)",
            shared.generation,
            shared.cfg.balancers.len(),
            shared.cfg.vhosts.len()
        );
        Ok(shared.generation)
    }
}

/// What a reload cannot change without new listeners, threads or credentials.
fn check_reloadable(
    old: &Config,
    new: &Config,
    workers: usize,
    workers_fixed: bool,
) -> Result<(), ReloadError> {
    if old.listens != new.listens {
        return Err(ReloadError::NeedsRestart(format!(
            "Listen ({} -> {})",
            list(&old.listens),
            list(&new.listens)
        )));
    }
    if !workers_fixed && new.core.worker_threads.is_some_and(|n| n != workers) {
        return Err(ReloadError::NeedsRestart(format!(
            "WorkerThreads ({workers} running)"
        )));
    }
    if old.core.user != new.core.user || old.core.group != new.core.group {
        return Err(ReloadError::NeedsRestart("User/Group".into()));
    }
    if old.core.listen_backlog != new.core.listen_backlog {
        return Err(ReloadError::NeedsRestart("ListenBacklog".into()));
    }
    Ok(())
}

fn list(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// One health checker per generation that has members to check, on its own thread; it
/// stops when its generation is retired or the process stops.
fn spawn_health_checker(
    shared: &Arc<Shared>,
    driver: DriverChoice,
) -> io::Result<Option<JoinHandle<()>>> {
    let needed = shared
        .cfg
        .balancers
        .iter()
        .any(|b| b.members.iter().any(|m| m.params.hc.method.is_some()));
    if !needed {
        return Ok(None);
    }
    let shared = shared.clone();
    std::thread::Builder::new()
        .name("ringproxy-hc".into())
        .spawn(move || {
            if let Err(e) = run_local(driver, move |_| crate::health::run(shared)) {
                tracing::error!("health checker cannot start: {e}");
            }
        })
        .map(Some)
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
        table: SharedTable::new(&cfg, n),
        cfg: cfg.clone(),
        nonces: cfg
            .balancers
            .iter()
            .map(|b| crate::admin::manager::make_nonce(b.params.nonce.as_deref()))
            .collect::<io::Result<_>>()?,
        generation: 1,
        retired: ShutdownSignal::default(),
        connections: Arc::new(AtomicUsize::new(0)),
        shutdown: Arc::new(ShutdownSignal::default()),
        epoll_workers: Arc::new(AtomicUsize::new(0)),
        stats: Arc::new((0..n).map(|_| WorkerStats::default()).collect()),
        started: std::time::Instant::now(),
    });
    let gens = Arc::new(Generations::new(shared.clone()));
    let mut threads = Vec::with_capacity(n);
    for (id, listeners) in per_worker.into_iter().enumerate() {
        let gens = gens.clone();
        let core = if cfg.core.cpu_affinity && !cores.is_empty() {
            Some(cores[id % cores.len()])
        } else {
            None
        };
        let driver = opts.driver;
        let t = std::thread::Builder::new()
            .name(format!("ringproxy-w{id}"))
            .spawn(move || run_worker(id, core, listeners, gens, driver))?;
        threads.push(t);
    }
    // One health checker for the whole process, not one per core.
    if let Some(t) = spawn_health_checker(&shared, opts.driver)? {
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
        gens,
        threads: Mutex::new(threads),
        workers: n,
        workers_fixed: opts.workers.is_some(),
        driver: opts.driver,
        reloading: Mutex::new(()),
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
        worker_main(id, listeners, gens)
    });
    if let Err(e) = result {
        tracing::error!("worker {id}: cannot start any runtime: {e}");
    }
}

async fn worker_main(id: usize, listeners: Vec<std::net::TcpListener>, gens: Arc<Generations>) {
    let thread = Rc::new(Thread::new(id, gens));
    let shutdown = thread.current().shared.shutdown.clone();
    // The ticker that ends idle keep-alive connections on time; it stops with the worker.
    monoio::spawn(idle_ticker(thread.clone()));
    monoio::spawn(crate::busypoll::run(thread.clone()));
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
    // Break the Thread <-> Worker cycle so this generation's state (pooled backend
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
        monoio::time::sleep(crate::timer::TICK).await;
        t.tick_logs();
        ticks = ticks.wrapping_add(1);
        if ticks % 10 == 0 {
            t.release_memory();
        }
    }
}

async fn accept_loop(thread: Rc<Thread>, shutdown: Arc<ShutdownSignal>, listener: TcpListener) {
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
        thread.spawn_conn(w, stream, conn::Start::Accepted(peer));
    }
}

/// Over MaxRequestWorkers: answer 503 rather than leave the client hanging in the backlog.
async fn refuse_overloaded(mut stream: ClientStream) {
    let mut out = Vec::new();
    crate::error::canned_response(&mut out, 503);
    let _ =
        crate::transport::io::write_all(&mut stream, out, std::time::Duration::from_secs(1)).await;
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
