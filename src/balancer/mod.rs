//! Member selection.
//!
//! Selection counters (`lbstatus`, `elected`) are per worker (`Cell`, no atomics): Apache's
//! byrequests keeps them in shared memory, but a smooth weighted round robin run on each core
//! gives every core the configured proportions, and the sum over cores keeps them too.
//! State that every worker must agree on (error state) lives in [`SharedMembers`], atomics
//! only.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::{Balancer, Config};

/// Apache's default `retry`: how long a member that refused a connection stays in error.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(60);
/// loadfactor 1 = lbfactor 100 (Apache stores loadfactor x 100).
pub const DEFAULT_LBFACTOR: u32 = 100;

/// Member state shared by every worker.
#[derive(Debug)]
pub struct SharedMember {
    /// Milliseconds since `SharedMembers::start` until which the member is in error (E);
    /// 0 = not in error.
    error_until_ms: AtomicU64,
    /// Requests sent to this member by all workers (for status pages).
    pub elected: AtomicU64,
}

#[derive(Debug)]
pub struct SharedMembers {
    start: Instant,
    /// Indexed [balancer][member].
    members: Vec<Vec<SharedMember>>,
}

impl SharedMembers {
    pub fn new(cfg: &Config) -> Self {
        SharedMembers {
            start: Instant::now(),
            members: cfg
                .balancers
                .iter()
                .map(|b| {
                    b.members
                        .iter()
                        .map(|_| SharedMember {
                            error_until_ms: AtomicU64::new(0),
                            elected: AtomicU64::new(0),
                        })
                        .collect()
                })
                .collect(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    pub fn member(&self, b: usize, m: usize) -> &SharedMember {
        &self.members[b][m]
    }

    pub fn in_error(&self, b: usize, m: usize) -> bool {
        let until = self.members[b][m].error_until_ms.load(Ordering::Relaxed);
        until != 0 && until > self.now_ms()
    }

    /// Puts a member in error state for `retry` (flag I members are exempt, caller checks).
    pub fn set_error(&self, b: usize, m: usize, retry: Duration) {
        let until = self.now_ms() + retry.as_millis().max(1) as u64;
        self.members[b][m]
            .error_until_ms
            .store(until, Ordering::Relaxed);
    }

    pub fn clear_error(&self, b: usize, m: usize) {
        self.members[b][m]
            .error_until_ms
            .store(0, Ordering::Relaxed);
    }
}

/// One worker's selection counters for one balancer.
#[derive(Debug)]
pub struct LocalBalancer {
    lbstatus: Vec<Cell<i64>>,
    /// Member indices grouped by lbset, lowest set first, config order within a set.
    tiers: Vec<Vec<usize>>,
    lbfactor: Vec<i64>,
    /// Statically unusable by `status=+D` or `+S` in the config.
    disabled: Vec<bool>,
    ignore_errors: Vec<bool>,
}

impl LocalBalancer {
    pub fn new(b: &Balancer) -> Self {
        let mut sets: Vec<u8> = b
            .members
            .iter()
            .map(|m| m.params.lbset.unwrap_or(0))
            .collect();
        sets.sort_unstable();
        sets.dedup();
        let tiers = sets
            .iter()
            .map(|s| {
                (0..b.members.len())
                    .filter(|&i| b.members[i].params.lbset.unwrap_or(0) == *s)
                    .collect()
            })
            .collect();
        let flag = |m: &crate::config::Member, f: char| {
            m.params
                .status
                .iter()
                .rev()
                .find(|(c, _)| *c == f)
                .is_some_and(|(_, set)| *set)
        };
        LocalBalancer {
            lbstatus: b.members.iter().map(|_| Cell::new(0)).collect(),
            tiers,
            lbfactor: b
                .members
                .iter()
                .map(|m| i64::from(m.params.lbfactor.unwrap_or(DEFAULT_LBFACTOR)))
                .collect(),
            disabled: b
                .members
                .iter()
                .map(|m| flag(m, 'D') || flag(m, 'S'))
                .collect(),
            ignore_errors: b.members.iter().map(|m| flag(m, 'I')).collect(),
        }
    }

    pub fn ignores_errors(&self, m: usize) -> bool {
        self.ignore_errors[m]
    }

    /// byrequests (spec): within the lowest lbset that has a usable member, every usable
    /// member gains its lbfactor; the first with the strictly highest lbstatus wins and pays
    /// the total. `tried` members (failed earlier in this request) are skipped.
    pub fn pick(&self, b: usize, shared: &SharedMembers, tried: &[usize]) -> Option<usize> {
        let usable = |m: usize| !self.disabled[m] && !tried.contains(&m) && !shared.in_error(b, m);
        if let Some(m) = self.pick_among(&usable) {
            return Some(m);
        }
        // forcerecovery (Apache's default): when every member that could serve is in error,
        // clear their errors and try again rather than fail outright.
        let recoverable: Vec<usize> = (0..self.lbstatus.len())
            .filter(|&m| !self.disabled[m] && !tried.contains(&m))
            .collect();
        if recoverable.is_empty() {
            return None;
        }
        for &m in &recoverable {
            shared.clear_error(b, m);
        }
        self.pick_among(&|m| recoverable.contains(&m))
    }

    fn pick_among(&self, usable: &dyn Fn(usize) -> bool) -> Option<usize> {
        for tier in &self.tiers {
            let mut total = 0i64;
            let mut best: Option<usize> = None;
            for &m in tier {
                if !usable(m) {
                    continue;
                }
                let s = self.lbstatus[m].get() + self.lbfactor[m];
                self.lbstatus[m].set(s);
                total += self.lbfactor[m];
                if best.is_none_or(|b| s > self.lbstatus[b].get()) {
                    best = Some(m);
                }
            }
            if let Some(b) = best {
                self.lbstatus[b].set(self.lbstatus[b].get() - total);
                return Some(b);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_str, LoadOptions};

    fn sequence(members: &str, n: usize) -> String {
        let text = format!(
            "Listen 80\n<Proxy balancer://c>\n{members}</Proxy>\nProxyPass / balancer://c/\n"
        );
        let cfg = load_str(&text, "t", &LoadOptions::default()).unwrap();
        let shared = SharedMembers::new(&cfg);
        let lb = LocalBalancer::new(&cfg.balancers[0]);
        (0..n)
            .map(|_| (b'a' + lb.pick(0, &shared, &[]).unwrap() as u8) as char)
            .collect()
    }

    #[test]
    fn spec_vectors() {
        let m = |lf: [&str; 4], extra: [&str; 4]| {
            (0..4)
                .map(|i| {
                    format!(
                        "BalancerMember http://127.0.0.1:{} loadfactor={} {}\n",
                        9001 + i,
                        lf[i],
                        extra[i]
                    )
                })
                .collect::<String>()
        };
        assert_eq!(
            sequence(&m(["1", "1", "1", "2"], ["", "", "", ""]), 10),
            "dabcddabcd"
        );
        assert_eq!(
            sequence(&m(["1", "1", "1", "1"], ["", "status=+D", "", ""]), 6),
            "acdacd"
        );
    }

    #[test]
    fn weights_hold_over_many_picks() {
        let text =
            "BalancerMember http://127.0.0.1:1 loadfactor=5\nBalancerMember http://127.0.0.1:2\n";
        let s = sequence(text, 600);
        assert_eq!(s.matches('a').count(), 500);
        assert_eq!(s.matches('b').count(), 100);
    }

    #[test]
    fn lbset_tiers_and_errors() {
        let text = "Listen 80\n<Proxy balancer://c>\nBalancerMember http://127.0.0.1:1 lbset=1\nBalancerMember http://127.0.0.1:2\nBalancerMember http://127.0.0.1:3\n</Proxy>\nProxyPass / balancer://c/\n";
        let cfg = load_str(text, "t", &LoadOptions::default()).unwrap();
        let shared = SharedMembers::new(&cfg);
        let lb = LocalBalancer::new(&cfg.balancers[0]);
        let picks: Vec<_> = (0..4).map(|_| lb.pick(0, &shared, &[]).unwrap()).collect();
        assert_eq!(picks, vec![1, 2, 1, 2]);
        shared.set_error(0, 1, Duration::from_secs(60));
        assert_eq!(lb.pick(0, &shared, &[]), Some(2));
        shared.set_error(0, 2, Duration::from_secs(60));
        // Tier 0 is all in error: the higher set serves.
        assert_eq!(lb.pick(0, &shared, &[]), Some(0));
        // Every member in error or tried: forcerecovery clears errors of the untried ones.
        shared.set_error(0, 0, Duration::from_secs(60));
        assert_eq!(lb.pick(0, &shared, &[0]), Some(1));
        assert!(!shared.in_error(0, 2));
        assert_eq!(lb.pick(0, &shared, &[0, 1, 2]), None);
    }
}
