//! Per-worker keep-alive connections to backend members.
//!
//! One pool per worker, one idle stack per member: no locks, no sharing. The most recently
//! used connection is lent first (LIFO) because it is the least likely to have been closed
//! by the backend's own keep-alive timeout, and the older ones age out through `ttl`.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

use crate::config::Config;

/// Idle connections kept per member per worker when neither `smax` nor `max` is given.
pub const DEFAULT_MAX_IDLE: usize = 256;
/// Backend read buffer; large enough that a typical response head and small body arrive in
/// one read.
pub const BACKEND_BUF: usize = 16 * 1024;

pub struct BackendConn {
    pub stream: TcpStream,
    /// Read buffer, empty between requests.
    pub buf: Vec<u8>,
    pub idle_since: Instant,
    /// Lent from the pool (so it may be stale), as opposed to freshly connected.
    pub reused: bool,
}

struct MemberPool {
    idle: Vec<BackendConn>,
    max_idle: usize,
    ttl: Option<Duration>,
    reuse: bool,
}

pub struct Pool {
    /// Indexed by `offsets[balancer] + member`.
    members: RefCell<Vec<MemberPool>>,
    offsets: Vec<usize>,
    pub hits: std::cell::Cell<u64>,
    pub misses: std::cell::Cell<u64>,
}

impl Pool {
    pub fn new(cfg: &Config) -> Self {
        let mut offsets = Vec::with_capacity(cfg.balancers.len());
        let mut members = Vec::new();
        for b in &cfg.balancers {
            offsets.push(members.len());
            for m in &b.members {
                let p = &m.params;
                members.push(MemberPool {
                    idle: Vec::new(),
                    max_idle: p.smax.or(p.max).unwrap_or(DEFAULT_MAX_IDLE),
                    ttl: p.ttl,
                    reuse: !p.disable_reuse.unwrap_or(false),
                });
            }
        }
        Pool {
            members: RefCell::new(members),
            offsets,
            hits: Default::default(),
            misses: Default::default(),
        }
    }

    pub fn reuse_enabled(&self, b: usize, m: usize) -> bool {
        self.members.borrow()[self.offsets[b] + m].reuse
    }

    /// An idle connection to the member, if one is fresh enough.
    pub fn checkout(&self, b: usize, m: usize) -> Option<BackendConn> {
        let mut members = self.members.borrow_mut();
        let pool = &mut members[self.offsets[b] + m];
        while let Some(mut c) = pool.idle.pop() {
            if pool.ttl.is_some_and(|ttl| c.idle_since.elapsed() > ttl) {
                continue; // dropped: closes the socket
            }
            c.reused = true;
            self.hits.set(self.hits.get() + 1);
            return Some(c);
        }
        self.misses.set(self.misses.get() + 1);
        None
    }

    /// Returns a connection after a complete exchange; dropped when the pool is full.
    pub fn checkin(&self, b: usize, m: usize, mut conn: BackendConn) {
        let mut members = self.members.borrow_mut();
        let pool = &mut members[self.offsets[b] + m];
        if !pool.reuse || pool.idle.len() >= pool.max_idle {
            return;
        }
        conn.buf.clear();
        conn.idle_since = Instant::now();
        pool.idle.push(conn);
    }

    /// Idle connections held for a member (for tests and status).
    pub fn idle_count(&self, b: usize, m: usize) -> usize {
        self.members.borrow()[self.offsets[b] + m].idle.len()
    }
}
