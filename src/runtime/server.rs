//! A running proxy: start (bind, spawn one thread per core and the health checker), graceful
//! reload, shutdown and join.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tracing::{info, warn};

use super::accept::{bind_reuseport, check_free};
use super::driver::{driver_from_env, run_local, DriverChoice};
use super::generation::{Generations, Shared};
use super::shutdown::ShutdownSignal;
use super::thread::run_thread;
use crate::admin::stats::WorkerStats;
use crate::balancer::SharedTable;
use crate::config::Config;

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
    /// The listeners are bound but nothing is accepted until [`Server::open`]: the
    /// binary switches to `User` first, so no request is ever served as root (Apache's
    /// children also switch before they accept).
    pub hold_accepts: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            workers: None,
            driver: driver_from_env(),
            hold_accepts: false,
        }
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
    /// Starts accepting connections (after a start with `hold_accepts`).
    pub fn open(&self) {
        self.shared().open.fire();
    }

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
            manager_changes: old.manager_changes.clone(),
            open: old.open.clone(),
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
        check_free(*listen)?;
    }
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
        manager_changes: Default::default(),
        open: Arc::new(ShutdownSignal::default()),
    });
    if !opts.hold_accepts {
        shared.open.fire();
    }
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
            .spawn(move || run_thread(id, core, listeners, gens, driver))?;
        threads.push(t);
    }
    // One health checker for the whole process, not one per core.
    if let Some(t) = spawn_health_checker(&shared, opts.driver)? {
        threads.push(t);
    }
    info!(
        target: crate::observe::logging::NOTICE,
        "ringproxy/{} configured -- resuming normal operations: {n} worker(s) on {}",
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
