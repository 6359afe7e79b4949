//! Per-worker keep-alive connections to backend members.
//!
//! One pool per worker, one idle stack per member: no locks, no sharing. The most recently
//! used connection is lent first (LIFO) because it is the least likely to have been closed
//! by the backend's own keep-alive timeout, and the older ones age out through `ttl`.
//! Stacks are created on first use, so members added at run time get one too.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

use crate::config::Member;
use crate::http::head::ResponseHead;

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
    /// The last response's parsed head, kept for its allocations (see `proxy::exchange`).
    pub head: ResponseHead,
}

#[derive(Default)]
struct MemberPool {
    idle: Vec<BackendConn>,
}

/// The pool settings a member asks for.
fn limits(m: &Member) -> (usize, Option<Duration>, bool) {
    let p = &m.params;
    (
        p.smax.or(p.max).unwrap_or(DEFAULT_MAX_IDLE),
        p.ttl,
        !p.disable_reuse.unwrap_or(false),
    )
}

#[derive(Default)]
pub struct Pool {
    /// Indexed [balancer][member].
    members: RefCell<Vec<Vec<MemberPool>>>,
    pub hits: Cell<u64>,
    pub misses: Cell<u64>,
}

impl Pool {
    fn with<R>(&self, b: usize, m: usize, f: impl FnOnce(&mut MemberPool) -> R) -> R {
        let mut all = self.members.borrow_mut();
        if all.len() <= b {
            all.resize_with(b + 1, Vec::new);
        }
        if all[b].len() <= m {
            all[b].resize_with(m + 1, MemberPool::default);
        }
        f(&mut all[b][m])
    }

    pub fn reuse_enabled(member: &Member) -> bool {
        limits(member).2
    }

    /// An idle connection to the member, if one is fresh enough.
    pub fn checkout(&self, b: usize, m: usize, member: &Member) -> Option<BackendConn> {
        let (_, ttl, _) = limits(member);
        let found = self.with(b, m, |pool| {
            while let Some(mut c) = pool.idle.pop() {
                if ttl.is_some_and(|ttl| {
                    crate::timer::coarse_now().saturating_duration_since(c.idle_since) > ttl
                }) {
                    continue; // dropped: closes the socket
                }
                c.reused = true;
                return Some(c);
            }
            None
        });
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.set(counter.get() + 1);
        found
    }

    /// Returns a connection after a complete exchange; dropped when the pool is full.
    pub fn checkin(&self, b: usize, m: usize, member: &Member, mut conn: BackendConn) {
        let (max_idle, _, reuse) = limits(member);
        if !reuse {
            return;
        }
        self.with(b, m, |pool| {
            if pool.idle.len() < max_idle {
                conn.buf.clear();
                // Idle limits are seconds: the coarse clock is precise enough, and cheaper.
                conn.idle_since = crate::timer::coarse_now();
                pool.idle.push(conn);
            }
        });
    }

    /// Idle connections held for a member (for tests and status).
    pub fn idle_count(&self, b: usize, m: usize) -> usize {
        self.with(b, m, |pool| pool.idle.len())
    }
}
