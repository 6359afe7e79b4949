//! Open-loop pacing: every request has an intended send time, fixed before the run starts,
//! so a slow response cannot delay when the next request *should* have gone out
//! (coordinated omission, as wrk2 avoids it).
//!
//! Each thread paces `rate / threads` requests per second; thread `k` is offset by
//! `k / rate` so that threads interleave instead of sending in lock step.

use std::cell::Cell;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Schedule {
    start: Instant,
    /// Nanoseconds between this thread's sends.
    interval_ns: f64,
    end: Instant,
    /// Slots this thread may use at most (request-count bound), if any.
    limit: Option<u64>,
    next: Cell<u64>,
}

impl Schedule {
    /// `rate` is the whole run's rate; this thread is `thread` of `threads`.
    pub fn new(
        start: Instant,
        end: Instant,
        rate: f64,
        thread: usize,
        threads: usize,
        limit: Option<u64>,
    ) -> Schedule {
        let per_thread = rate / threads as f64;
        let interval_ns = 1e9 / per_thread;
        let offset = Duration::from_nanos((1e9 / rate * thread as f64) as u64);
        Schedule {
            start: start + offset,
            interval_ns,
            end,
            limit,
            next: Cell::new(0),
        }
    }

    pub fn time_of(&self, slot: u64) -> Instant {
        self.start + Duration::from_nanos((self.interval_ns * slot as f64) as u64)
    }

    /// The next slot nobody has taken yet.
    pub fn peek(&self) -> u64 {
        self.next.get()
    }

    /// Whether a slot is left to take.
    pub fn has_more(&self) -> bool {
        let slot = self.next.get();
        self.limit.is_none_or(|l| slot < l) && self.time_of(slot) < self.end
    }

    /// Slots due before the end that were never taken: when the target falls behind, the
    /// run still ends on time and these are reported rather than sent late.
    pub fn unsent(&self) -> u64 {
        let mut total = ((self.end.saturating_duration_since(self.start)).as_nanos() as f64
            / self.interval_ns)
            .ceil() as u64;
        if let Some(l) = self.limit {
            total = total.min(l);
        }
        total.saturating_sub(self.next.get())
    }

    /// Takes the next slot: its intended send time, or `None` when the run is over (the
    /// end time has passed, even with slots still due).
    pub fn take(&self) -> Option<Instant> {
        let slot = self.next.get();
        if self.limit.is_some_and(|l| slot >= l) || Instant::now() >= self.end {
            return None;
        }
        let t = self.time_of(slot);
        if t >= self.end {
            return None;
        }
        self.next.set(slot + 1);
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_evenly_spaced_and_end_on_time() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, t0 + Duration::from_secs(1), 1000.0, 0, 1, None);
        let times: Vec<Instant> = std::iter::from_fn(|| s.take()).collect();
        assert_eq!(times.len(), 1000);
        assert_eq!(times[1] - times[0], Duration::from_millis(1));
        assert_eq!(times[999] - t0, Duration::from_millis(999));
    }

    #[test]
    fn threads_interleave_and_share_the_rate() {
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(1);
        let a = Schedule::new(t0, end, 1000.0, 0, 2, None);
        let b = Schedule::new(t0, end, 1000.0, 1, 2, None);
        assert_eq!(a.time_of(1) - a.time_of(0), Duration::from_millis(2));
        assert_eq!(b.time_of(0) - t0, Duration::from_millis(1));
        let total =
            std::iter::from_fn(|| a.take()).count() + std::iter::from_fn(|| b.take()).count();
        assert_eq!(total, 1000);
    }

    #[test]
    fn request_limit_bounds_slots() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, t0 + Duration::from_secs(60), 100.0, 0, 1, Some(5));
        assert_eq!(std::iter::from_fn(|| s.take()).count(), 5);
    }
}
