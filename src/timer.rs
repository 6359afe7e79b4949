//! Coarse per-thread deadlines: keep-alive waits and the timeouts of every socket operation.
//!
//! monoio's `Sleep` is 640 bytes and 128-byte aligned. A future holding one (every request
//! future, with a timeout per read and write) is then boxed with `posix_memalign`, and each
//! timeout reads the precise clock. These deadlines are a few bytes in the waiting future
//! instead. They are kept in one ordered map per thread, read the kernel's coarse clock
//! (a memory read, no TSC), and are fired by a ticker task that the first deadline on a
//! thread starts and that ends when none is left. Socket timeouts are seconds, so firing
//! within [`RESOLUTION`] is precise enough.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How often the worker's housekeeping runs (parking checks, log flushes, memory release).
pub const TICK: Duration = Duration::from_millis(100);

/// How late a deadline may fire at most (plus the coarse clock's own step, a few ms).
pub const RESOLUTION: Duration = Duration::from_millis(10);

struct Timers {
    next_id: Cell<u64>,
    entries: RefCell<BTreeMap<(Instant, u64), Waker>>,
    /// A ticker task runs on this thread's runtime.
    ticking: Cell<bool>,
}

thread_local! {
    static TIMERS: Timers = const {
        Timers {
            next_id: Cell::new(0),
            entries: RefCell::new(BTreeMap::new()),
            ticking: Cell::new(false),
        }
    };
}

/// The monotonic clock at the kernel's tick resolution (a few ms), as an `Instant`.
///
/// `CLOCK_MONOTONIC_COARSE` is the clock `Instant` uses, read without the TSC; under a
/// hypervisor that is a fraction of a precise read. For deadlines, never for durations
/// that are reported.
pub fn coarse_now() -> Instant {
    static BASE: OnceLock<(Instant, Duration)> = OnceLock::new();
    let (base, base_coarse) = *BASE.get_or_init(|| (Instant::now(), coarse_clock()));
    // The coarse clock lags the precise one by less than its step; a reading before the
    // base (only possible on the first call's thread, by that lag) counts as the base.
    base + coarse_clock().saturating_sub(base_coarse)
}

fn coarse_clock() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for clock_gettime to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// A future that resolves at `at` (within [`RESOLUTION`]).
pub fn deadline(at: Instant) -> Deadline {
    Deadline { at, key: None }
}

/// Runs `f` for at most `t`.
pub fn timeout<F: Future>(t: Duration, f: F) -> Timeout<F> {
    Timeout {
        f,
        deadline: deadline(coarse_now() + t),
    }
}

/// Wakes every deadline that is due at `now`. Returns how many are still waiting.
pub fn fire_expired(now: Instant) -> usize {
    // Wakers are woken after the map is released: waking may poll nothing here, but a
    // waker's drop could, in principle, drop a `Deadline`, which takes the map again.
    let mut due = Vec::new();
    let left = TIMERS.with(|t| {
        let mut entries = t.entries.borrow_mut();
        while let Some(entry) = entries.first_entry() {
            if entry.key().0 > now {
                break;
            }
            due.push(entry.remove());
        }
        entries.len()
    });
    due.into_iter().for_each(Waker::wake);
    left
}

/// Deadlines waiting on this thread.
pub fn waiting() -> usize {
    TIMERS.with(|t| t.entries.borrow().len())
}

/// Starts this thread's ticker unless it runs. Needs a monoio runtime on this thread.
fn ensure_ticker(t: &Timers) {
    if t.ticking.replace(true) {
        return;
    }
    monoio::spawn(async {
        // Also reset when the runtime drops the task, so a later runtime on this thread
        // starts its own.
        struct Stopped;
        impl Drop for Stopped {
            fn drop(&mut self) {
                let _ = TIMERS.try_with(|t| t.ticking.set(false));
            }
        }
        let _stopped = Stopped;
        loop {
            monoio::time::sleep(RESOLUTION).await;
            if fire_expired(coarse_now()) == 0 {
                break;
            }
        }
    });
}

pub struct Deadline {
    at: Instant,
    key: Option<(Instant, u64)>,
}

impl Future for Deadline {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if coarse_now() >= self.at {
            if let Some(k) = self.key.take() {
                TIMERS.with(|t| t.entries.borrow_mut().remove(&k));
            }
            return Poll::Ready(());
        }
        let at = self.at;
        let key = &mut self.key;
        TIMERS.with(|t| {
            let mut entries = t.entries.borrow_mut();
            match key {
                // Registered: only a different waker needs storing.
                Some(k) => match entries.get_mut(k) {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    Some(w) => w.clone_from(cx.waker()),
                    // Fired without being ready (a coarse-clock lag): wait another round.
                    None => {
                        entries.insert(*k, cx.waker().clone());
                        drop(entries);
                        ensure_ticker(t);
                    }
                },
                None => {
                    let id = t.next_id.get();
                    t.next_id.set(id + 1);
                    let k = (at, id);
                    *key = Some(k);
                    entries.insert(k, cx.waker().clone());
                    drop(entries);
                    ensure_ticker(t);
                }
            }
        });
        Poll::Pending
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            // `try_with`: a future may be dropped while its thread's locals are torn down.
            let _ = TIMERS.try_with(|t| t.entries.borrow_mut().remove(&k));
        }
    }
}

/// The deadline passed before the operation finished.
#[derive(Debug, PartialEq, Eq)]
pub struct Elapsed;

pin_project_lite::pin_project! {
    pub struct Timeout<F> {
        #[pin]
        f: F,
        #[pin]
        deadline: Deadline,
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.f.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        this.deadline.poll(cx).map(|()| Err(Elapsed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::counting_waker;

    #[test]
    fn expired_deadlines_wake_and_dropped_ones_unregister() {
        // No runtime here: mark the ticker as running so none is spawned.
        TIMERS.with(|t| t.ticking.set(true));
        let (waker, count) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let now = coarse_now();
        let mut soon = Box::pin(deadline(now + Duration::from_millis(50)));
        let mut later = Box::pin(deadline(now + Duration::from_secs(60)));
        assert!(soon.as_mut().poll(&mut cx).is_pending());
        assert!(later.as_mut().poll(&mut cx).is_pending());
        // A second poll with the same waker registers nothing new.
        assert!(later.as_mut().poll(&mut cx).is_pending());
        assert_eq!(waiting(), 2);
        assert_eq!(fire_expired(now + Duration::from_millis(60)), 1);
        assert_eq!(count(), 1);
        drop(later);
        assert_eq!(waiting(), 0);
        assert!(std::mem::size_of::<Deadline>() <= 48);
        TIMERS.with(|t| t.ticking.set(false));
    }

    #[test]
    fn the_coarse_clock_follows_the_precise_one() {
        let a = coarse_now();
        let precise = Instant::now();
        let b = coarse_now();
        assert!(b >= a);
        // Behind by at most the kernel's tick (4 ms at HZ=250; 10 ms at HZ=100).
        assert!(precise.saturating_duration_since(b) < Duration::from_millis(20));
    }

    #[test]
    fn timeouts_fire_and_finished_operations_win() {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime")
            .block_on(async {
                let started = Instant::now();
                let r = timeout(Duration::from_millis(30), std::future::pending::<()>()).await;
                assert_eq!(r, Err(Elapsed));
                let took = started.elapsed();
                assert!(took >= Duration::from_millis(20), "{took:?}");
                assert!(took < Duration::from_secs(2), "{took:?}");
                assert_eq!(timeout(Duration::from_secs(5), async { 7 }).await, Ok(7));
                // Nothing left registered: the ticker ends.
                assert_eq!(waiting(), 0);
            });
    }
}
