//! Per-core keep-alive connections to members (sessions of any member protocol).
//!
//! One pool per worker, one idle stack per member: no locks, no sharing. The most recently
//! used connection is lent first (LIFO) because it is the least likely to have been closed
//! by the backend's own keep-alive timeout, and the older ones age out through `ttl`.
//! Stacks are created on first use, so members added at run time get one too.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use super::UpstreamSession;
use crate::config::Member;

/// Idle connections kept per member per worker when neither `smax` nor `max` is given.
pub const DEFAULT_MAX_IDLE: usize = 256;
#[derive(Default)]
struct MemberPool {
    /// Oldest first: check-ins push, check-outs pop.
    idle: Vec<UpstreamSession>,
    /// The fewest connections `idle` held since the last purge: that many sat unused the
    /// whole time.
    low: usize,
    /// The member's `ttl` as of the last check-in (purges run without the configuration).
    ttl: Option<Duration>,
}

impl MemberPool {
    fn purge(&mut self, now: Instant) -> usize {
        let n = purge_count(
            self.idle.iter().map(UpstreamSession::idle_since),
            self.low,
            self.ttl,
            now,
        );
        // Dropping a connection closes its socket.
        self.idle.drain(..n);
        self.low = self.idle.len();
        n
    }
}

/// How many idle connections a purge closes, oldest first. `idle_since` runs oldest
/// first; `low` is the fewest the pool held since the last purge.
///
/// Connections past the member's `ttl` close now: Apache only notices them when it next
/// looks for a connection, which after a burst may be never. Of the connections that sat
/// unused since the last purge, half close (rounded down, so one warm connection stays
/// for a sparse load): after a burst the pool shrinks to what the load uses within a few
/// seconds, while a steady load, which keeps taking its connections, keeps them.
/// (HAProxy's `pool-purge-delay` closes half of the idle connections every 5 s.)
fn purge_count(
    idle_since: impl ExactSizeIterator<Item = Instant>,
    low: usize,
    ttl: Option<Duration>,
    now: Instant,
) -> usize {
    let unused = low.min(idle_since.len()) / 2;
    let expired = match ttl {
        Some(ttl) => idle_since
            .take_while(|&t| now.saturating_duration_since(t) > ttl)
            .count(),
        None => 0,
    };
    unused.max(expired)
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

    /// An idle connection to the member, if one is fresh enough, whose TLS handshake sent
    /// `sni` (ProxyPreserveHost On: a connection made for one host's name does not carry
    /// another host's requests, as Apache does). The newest such one: the top of the
    /// stack unless the member serves several names.
    pub fn checkout(
        &self,
        b: usize,
        m: usize,
        member: &Member,
        sni: Option<&str>,
    ) -> Option<UpstreamSession> {
        let (_, ttl, _) = limits(member);
        self.with(b, m, |pool| {
            let mut found = None;
            // Server names compare without case (DNS names do).
            let same = |c: &UpstreamSession| match (c.sni(), sni) {
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                (a, b) => a == b,
            };
            while let Some(i) = pool.idle.iter().rposition(same) {
                let mut c = pool.idle.remove(i);
                if ttl.is_some_and(|ttl| {
                    crate::runtime::timer::coarse_now().saturating_duration_since(c.idle_since())
                        > ttl
                }) {
                    continue; // dropped: closes the socket
                }
                c.unpark();
                found = Some(c);
                break;
            }
            pool.low = pool.low.min(pool.idle.len());
            found
        })
    }

    /// Returns a connection after a complete exchange; dropped when the pool is full.
    pub fn checkin(&self, b: usize, m: usize, member: &Member, mut conn: UpstreamSession) {
        let (max_idle, ttl, reuse) = limits(member);
        if !reuse {
            return;
        }
        self.with(b, m, |pool| {
            pool.ttl = ttl;
            if pool.idle.len() < max_idle {
                // The caller returns the buffer to the core's pool first; whatever is
                // left is dropped rather than kept by an idle connection.
                conn.park();
                pool.idle.push(conn);
            }
        });
    }

    /// About once a second: closes the idle connections nobody needed (see
    /// `purge_count`). Returns how many closed.
    pub fn purge(&self, now: Instant) -> usize {
        let mut members = self.members.borrow_mut();
        members
            .iter_mut()
            .flat_map(|b| b.iter_mut())
            .map(|pool| pool.purge(now))
            .sum()
    }

    /// Idle connections held for a member (for tests and status).
    pub fn idle_count(&self, b: usize, m: usize) -> usize {
        self.with(b, m, |pool| pool.idle.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_closes_half_the_unused_and_the_expired() {
        let now = Instant::now();
        let s = Duration::from_secs;
        // Idle times, oldest first; the fewest held since the last purge; ttl; expected.
        let cases: &[(&[u64], usize, Option<u64>, usize)] = &[
            (&[], 0, None, 0),
            // All taken at some point: none sat unused, none close.
            (&[3, 2, 1], 0, None, 0),
            // Three sat unused: one closes (half, rounded down).
            (&[3, 2, 1], 3, None, 1),
            (&[4, 3, 2, 1], 4, None, 2),
            // The last unused connection stays (until the backend or a ttl closes it).
            (&[1], 1, None, 0),
            (&[9, 5, 1, 0], 1, None, 0),
            // `low` is never more than what is there.
            (&[2, 1], 10, None, 1),
            // Past the ttl: closed whatever the load.
            (&[30, 20, 5, 1], 0, Some(10), 2),
            (&[30, 20, 5, 1], 4, Some(10), 2),
            (&[30, 20, 15, 12, 1], 2, Some(10), 4),
            (&[30, 1, 1, 1, 1, 1, 1], 7, Some(10), 3),
            // At the ttl exactly: not yet past it.
            (&[10], 0, Some(10), 0),
        ];
        for &(ages, low, ttl, want) in cases {
            let since = ages.iter().map(|&a| now - s(a)).collect::<Vec<_>>();
            let got = purge_count(since.iter().copied(), low, ttl.map(s), now);
            assert_eq!(got, want, "ages {ages:?} low {low} ttl {ttl:?}");
        }
    }
}
