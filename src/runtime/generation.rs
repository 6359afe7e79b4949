//! Configuration generations: what every core shares for one configuration ([`Shared`]),
//! how a new one is published ([`Generations`]), and one core's state for one generation
//! ([`CoreGen`]). A reload makes a new generation; connections move to it at their next
//! request while requests in flight finish on theirs.

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::shutdown::ShutdownSignal;
use super::thread::Thread;
use crate::admin::stats::WorkerStats;
use crate::balancer::{LocalBalancer, SharedTable};
use crate::config::Config;
use crate::observe::accesslog::WorkerLogs;
use crate::upstream::pool::Pool;

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
    /// The latest balancer-manager changes (newest last), shown on its page as the
    /// confirmation of what changed; written only by changes, kept across reloads.
    pub manager_changes: Arc<std::sync::Mutex<std::collections::VecDeque<String>>>,
    /// Fired once connections may be accepted (see `RunOptions::hold_accepts`).
    pub open: Arc<ShutdownSignal>,
}

/// The current generation, published to every worker thread.
pub struct Generations {
    latest: AtomicU64,
    current: ArcSwap<Shared>,
}

impl Generations {
    pub(super) fn new(first: Arc<Shared>) -> Generations {
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

    pub(super) fn publish(&self, shared: Arc<Shared>) {
        let g = shared.generation;
        // The new state first, then the number, so a worker that sees the number finds the
        // state (or a newer one).
        self.current.store(shared);
        self.latest.store(g, Ordering::Release);
    }
}

/// One worker's state for one configuration generation; lives in an `Rc` on its thread,
/// held by the connections that use it.
pub struct CoreGen {
    pub id: usize,
    pub shared: Arc<Shared>,
    pub thread: Rc<Thread>,
    pub balancers: Vec<LocalBalancer>,
    pub pool: Pool,
    /// This worker's access-log buffers and descriptors.
    pub logs: WorkerLogs,
}

impl CoreGen {
    pub(super) fn new(thread: Rc<Thread>, shared: Arc<Shared>) -> CoreGen {
        CoreGen {
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
    pub fn newer(&self) -> Option<Rc<CoreGen>> {
        if self.thread.gens.latest() == self.shared.generation {
            return None;
        }
        Some(self.thread.current())
    }
}
