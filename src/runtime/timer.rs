//! Coarse per-thread deadlines: keep-alive waits and the timeouts of every socket operation.
//!
//! monoio's `Sleep` is 640 bytes and 128-byte aligned. A future holding one (every request
//! future, with a timeout per read and write) is then boxed with `posix_memalign`, and each
//! timeout reads the precise clock. These deadlines are a few bytes in the waiting future
//! instead. They read the kernel's coarse clock (a memory read, no TSC), and are fired by a
//! ticker task that the first deadline on a thread starts and that ends when none is left.
//! Socket timeouts are seconds, so firing within [`RESOLUTION`] is precise enough.
//!
//! Every socket operation sets a deadline and nearly always drops it unfired, so adding
//! and removing one must be cheap: they sit in a hashed timing wheel, one bucket per tick
//! of [`RESOLUTION`], each bucket a list linked through a slab. Adding, removing and
//! firing are O(1) per deadline, and once the slab has grown to the thread's number of
//! pending deadlines, none of them allocates (an ordered map split and merged nodes as
//! deadlines came and went: most of the allocations left per request).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use slab::Slab;

/// How often the worker's housekeeping runs (parking checks, log flushes, memory release).
pub const TICK: Duration = Duration::from_millis(100);

/// How late a deadline may fire at most (plus the coarse clock's own step, a few ms).
pub const RESOLUTION: Duration = Duration::from_millis(10);

/// Buckets in the wheel: one turn is 2.56 s. Longer deadlines wait in their bucket for
/// later turns, each turn costing one comparison when the bucket is visited.
const SLOTS: usize = 256;

const NIL: usize = usize::MAX;

struct Entry {
    /// The wheel tick at or after which this deadline is due.
    tick: u64,
    waker: Option<Waker>,
    /// Neighbours in the bucket's list, while linked.
    prev: usize,
    next: usize,
    /// The bucket it waits in. Fired entries stay in the slab, unlinked, until their
    /// `Deadline` is dropped, so a key is never reused while its owner holds it.
    slot: Option<u16>,
}

struct Wheel {
    entries: Slab<Entry>,
    heads: [usize; SLOTS],
    /// Linked (waiting) entries.
    linked: usize,
    /// Every tick up to this one has been fired.
    fired_tick: u64,
    /// Wakers due, reused from tick to tick (woken after the wheel is released).
    due: Vec<Waker>,
}

impl Wheel {
    const fn new() -> Wheel {
        Wheel {
            entries: Slab::new(),
            heads: [NIL; SLOTS],
            linked: 0,
            fired_tick: 0,
            due: Vec::new(),
        }
    }

    fn link(&mut self, key: usize) {
        // A tick the wheel has already passed is fired on the next one, not a turn later.
        let tick = self.entries[key].tick.max(self.fired_tick + 1);
        let slot = (tick % SLOTS as u64) as usize;
        let head = self.heads[slot];
        if head != NIL {
            self.entries[head].prev = key;
        }
        let e = &mut self.entries[key];
        e.prev = NIL;
        e.next = head;
        e.slot = Some(slot as u16);
        self.heads[slot] = key;
        self.linked += 1;
    }

    fn unlink(&mut self, key: usize) {
        let (prev, next, slot) = {
            let e = &mut self.entries[key];
            let Some(slot) = e.slot.take() else {
                return;
            };
            (e.prev, e.next, slot)
        };
        if prev == NIL {
            self.heads[usize::from(slot)] = next;
        } else {
            self.entries[prev].next = next;
        }
        if next != NIL {
            self.entries[next].prev = prev;
        }
        self.linked -= 1;
    }

    /// Moves the wakers of every deadline due by `now_tick` into `self.due`.
    fn advance(&mut self, now_tick: u64) {
        if now_tick <= self.fired_tick {
            return;
        }
        // After a long quiet spell, one visit of each bucket covers every turn.
        let span = (now_tick - self.fired_tick).min(SLOTS as u64);
        for t in now_tick + 1 - span..=now_tick {
            let slot = (t % SLOTS as u64) as usize;
            let mut key = self.heads[slot];
            while key != NIL {
                let (next, due) = {
                    let e = &self.entries[key];
                    (e.next, e.tick <= now_tick)
                };
                if due {
                    self.unlink(key);
                    if let Some(w) = self.entries[key].waker.take() {
                        self.due.push(w);
                    }
                }
                key = next;
            }
        }
        self.fired_tick = now_tick;
    }
}

struct Timers {
    wheel: RefCell<Wheel>,
    /// A ticker task runs on this thread's runtime.
    ticking: Cell<bool>,
}

thread_local! {
    static TIMERS: Timers = const {
        Timers {
            wheel: RefCell::new(Wheel::new()),
            ticking: Cell::new(false),
        }
    };
}

fn base() -> (Instant, Duration) {
    static BASE: OnceLock<(Instant, Duration)> = OnceLock::new();
    *BASE.get_or_init(|| (Instant::now(), coarse_clock()))
}

/// The monotonic clock at the kernel's tick resolution (a few ms), as an `Instant`.
///
/// `CLOCK_MONOTONIC_COARSE` is the clock `Instant` uses, read without the TSC; under a
/// hypervisor that is a fraction of a precise read. For deadlines, never for durations
/// that are reported.
pub fn coarse_now() -> Instant {
    let (base, base_coarse) = base();
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

const RESOLUTION_NS: u64 = RESOLUTION.as_nanos() as u64;

/// Nanoseconds since the clock's base, in u64 (584 years): no 128-bit division per deadline.
fn nanos_since_base(t: Instant) -> u64 {
    let d = t.saturating_duration_since(base().0);
    d.as_secs() * 1_000_000_000 + u64::from(d.subsec_nanos())
}

/// The first tick at or after `at`.
fn tick_at_or_after(at: Instant) -> u64 {
    nanos_since_base(at).div_ceil(RESOLUTION_NS)
}

/// The last tick at or before `now`.
fn tick_before(now: Instant) -> u64 {
    nanos_since_base(now) / RESOLUTION_NS
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
    let now_tick = tick_before(now);
    // Wakers are woken after the wheel is released: a woken task is only scheduled, but a
    // waker's drop could, in principle, drop a `Deadline`, which takes the wheel again.
    let (mut due, left) = TIMERS.with(|t| {
        let mut wheel = t.wheel.borrow_mut();
        wheel.advance(now_tick);
        (std::mem::take(&mut wheel.due), wheel.linked)
    });
    due.drain(..).for_each(Waker::wake);
    // Give the (empty) list back for the next tick, unless one was put there meanwhile.
    TIMERS.with(|t| {
        let mut wheel = t.wheel.borrow_mut();
        if wheel.due.capacity() == 0 {
            wheel.due = due;
        }
    });
    left
}

/// Deadlines waiting on this thread.
pub fn waiting() -> usize {
    TIMERS.with(|t| t.wheel.borrow().linked)
}

/// Gives back the memory of a burst of deadlines once it is over (worker housekeeping).
pub fn release_memory() {
    TIMERS.with(|t| {
        let mut wheel = t.wheel.borrow_mut();
        crate::runtime::buffer::shrink_after_burst(&mut wheel.entries, 1024);
        if wheel.due.capacity() > 1024 {
            wheel.due = Vec::new();
        }
    });
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
    /// The slab key of this deadline's entry, from its first pending poll until drop.
    key: Option<usize>,
}

impl Future for Deadline {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if coarse_now() >= self.at {
            if let Some(k) = self.key.take() {
                TIMERS.with(|t| remove(&mut t.wheel.borrow_mut(), k));
            }
            return Poll::Ready(());
        }
        let at = self.at;
        let key = &mut self.key;
        TIMERS.with(|t| {
            let mut wheel = t.wheel.borrow_mut();
            match *key {
                Some(k) => {
                    let e = &mut wheel.entries[k];
                    let linked = e.slot.is_some();
                    match &mut e.waker {
                        Some(w) if linked && w.will_wake(cx.waker()) => return,
                        Some(w) if linked => {
                            w.clone_from(cx.waker());
                            return;
                        }
                        // Fired without being ready (a coarse-clock lag): wait another round.
                        w => *w = Some(cx.waker().clone()),
                    }
                    wheel.link(k);
                }
                None => {
                    let k = wheel.entries.insert(Entry {
                        tick: tick_at_or_after(at),
                        waker: Some(cx.waker().clone()),
                        prev: NIL,
                        next: NIL,
                        slot: None,
                    });
                    wheel.link(k);
                    *key = Some(k);
                }
            }
            drop(wheel);
            ensure_ticker(t);
        });
        Poll::Pending
    }
}

fn remove(wheel: &mut Wheel, key: usize) {
    wheel.unlink(key);
    wheel.entries.try_remove(key);
}

impl Drop for Deadline {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            // `try_with`: a future may be dropped while its thread's locals are torn down.
            let _ = TIMERS.try_with(|t| remove(&mut t.wheel.borrow_mut(), k));
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

    /// Deadlines spread over several turns of the wheel, dropped and fired in a random
    /// order against a model: each fires once, never before its time and at most one tick
    /// after it, and a steady number of them reuses the slab without growing it.
    #[test]
    fn the_wheel_fires_each_deadline_once_on_time_across_turns() {
        TIMERS.with(|t| t.ticking.set(true));
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        type Live = (Pin<Box<Deadline>>, Instant, Box<dyn Fn() -> usize>);
        let mut live: Vec<Live> = Vec::new();
        let mut now = coarse_now();
        let mut capacity_after_warmup = None;
        for round in 0..4000 {
            match rand(10) {
                0..=4 => {
                    let at = now + Duration::from_millis(rand(3 * 2560));
                    let (waker, count) = counting_waker();
                    let mut d = Box::pin(deadline(at));
                    let pending = d
                        .as_mut()
                        .poll(&mut Context::from_waker(&waker))
                        .is_pending();
                    assert_eq!(pending, at > coarse_now());
                    if pending {
                        live.push((d, at, Box::new(count)));
                    }
                }
                5..=7 if !live.is_empty() => {
                    let i = rand(live.len() as u64) as usize;
                    drop(live.swap_remove(i));
                }
                _ => {
                    now += Duration::from_millis(if rand(50) == 0 { 6000 } else { rand(40) });
                    fire_expired(now);
                    for (_, at, count) in &live {
                        let woken = count();
                        assert!(woken <= 1, "woken twice");
                        if *at + RESOLUTION <= now {
                            assert_eq!(woken, 1, "late: due {at:?}, now {now:?}");
                        } else if *at > now {
                            assert_eq!(woken, 0, "early: due {at:?}, now {now:?}");
                        }
                    }
                    live.retain(|(_, _, count)| count() == 0);
                }
            }
            assert_eq!(waiting(), live.len());
            // The live count hovers around a level; once the slab has reached it, later
            // rounds of the same load fit in it.
            if round == 2000 {
                live.truncate(40);
                capacity_after_warmup = Some(TIMERS.with(|t| t.wheel.borrow().entries.capacity()));
            }
            if round > 2000 && live.len() >= 40 {
                live.truncate(40);
            }
        }
        let warm = capacity_after_warmup.unwrap_or_default();
        assert_eq!(TIMERS.with(|t| t.wheel.borrow().entries.capacity()), warm);
        live.clear();
        assert_eq!(waiting(), 0);
        assert!(TIMERS.with(|t| t.wheel.borrow().entries.is_empty()));
        TIMERS.with(|t| t.ticking.set(false));
    }

    /// After a burst the slab's memory goes back in housekeeping; while in use it stays.
    #[test]
    fn a_burst_of_deadlines_gives_its_memory_back() {
        TIMERS.with(|t| t.ticking.set(true));
        let capacity = || TIMERS.with(|t| t.wheel.borrow().entries.capacity());
        let (waker, _) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let at = coarse_now() + Duration::from_secs(60);
        let mut burst: Vec<_> = (0..5000).map(|_| Box::pin(deadline(at))).collect();
        for d in &mut burst {
            assert!(d.as_mut().poll(&mut cx).is_pending());
        }
        let grown = capacity();
        assert!(grown >= 5000);
        release_memory();
        assert_eq!(capacity(), grown, "in use: kept");
        burst.truncate(10);
        release_memory();
        assert!(capacity() < 1024, "{}", capacity());
        assert_eq!(waiting(), 10);
        burst.clear();
        release_memory();
        assert_eq!(waiting(), 0);
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
