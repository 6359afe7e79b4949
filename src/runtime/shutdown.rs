//! Stopping: a process-wide signal (set by the main thread on SIGTERM/SIGINT, or by tests)
//! and a per-worker drain that waits for that worker's connections to finish.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use slab::Slab;

/// The wakers of futures waiting for one event. Each future removes its own when dropped,
/// so a waiter that gave up (a `select!` that took another branch) leaves nothing behind:
/// connections wait on these between every two requests, and a list that only grew would
/// keep every finished connection's task allocated until the event.
///
/// A slab, not a map: registering and removing are an index, with no hashing and no
/// allocation once it has grown. Waking takes the wakers out but leaves the slots to
/// their futures, which free them when dropped, so a slot is never reused while a future
/// still holds its key.
#[derive(Default)]
struct Waiters {
    slots: Slab<Option<Waker>>,
    /// Slots holding a waker.
    waiting: usize,
}

impl Waiters {
    fn register(&mut self, key: &mut Option<usize>, waker: &Waker) {
        if let Some(slot) = key.and_then(|k| self.slots.get_mut(k)) {
            match slot {
                Some(w) if w.will_wake(waker) => {}
                Some(w) => w.clone_from(waker),
                None => {
                    *slot = Some(waker.clone());
                    self.waiting += 1;
                }
            }
            return;
        }
        *key = Some(self.slots.insert(Some(waker.clone())));
        self.waiting += 1;
    }

    fn remove(&mut self, key: Option<usize>) {
        if let Some(Some(_)) = key.and_then(|k| self.slots.try_remove(k)) {
            self.waiting -= 1;
        }
    }

    /// Gives back the slots of a burst of waiters once it is over. Not on every removal
    /// that empties it: under load the last waiter often leaves for a moment, and the table
    /// was then grown again, allocation by allocation, for the next requests.
    fn shrink(&mut self) {
        crate::runtime::buffer::shrink_after_burst(&mut self.slots, 64);
    }

    fn take_all(&mut self) -> Vec<Waker> {
        if self.waiting == 0 {
            return Vec::new();
        }
        self.waiting = 0;
        self.slots
            .iter_mut()
            .filter_map(|(_, w)| w.take())
            .collect()
    }

    fn len(&self) -> usize {
        self.waiting
    }
}

/// Cross-thread "stop accepting" signal. Wakers from every worker are kept; monoio's `sync`
/// feature makes waking them from another thread safe.
#[derive(Default)]
pub struct ShutdownSignal {
    fired: AtomicBool,
    wakers: Mutex<Waiters>,
}

impl ShutdownSignal {
    pub fn fire(&self) {
        self.fired.store(true, Ordering::SeqCst);
        let wakers = match self.wakers.lock() {
            Ok(mut w) => w.take_all(),
            Err(poisoned) => poisoned.into_inner().take_all(),
        };
        for w in wakers {
            w.wake();
        }
    }

    pub fn is_fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    pub fn wait(&self) -> WaitFired<'_> {
        WaitFired {
            signal: self,
            key: None,
        }
    }

    /// Futures waiting now (for tests).
    pub fn waiting(&self) -> usize {
        self.wakers.lock().map_or(0, |w| w.len())
    }
}

pub struct WaitFired<'a> {
    signal: &'a ShutdownSignal,
    key: Option<usize>,
}

impl Future for WaitFired<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.is_fired() {
            return Poll::Ready(());
        }
        let this = &mut *self;
        if let Ok(mut w) = this.signal.wakers.lock() {
            w.register(&mut this.key, cx.waker());
        }
        // Fired between the check and the registration: do not sleep through it.
        if self.signal.is_fired() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for WaitFired<'_> {
    fn drop(&mut self) {
        if self.key.is_some() {
            if let Ok(mut w) = self.signal.wakers.lock() {
                w.remove(self.key);
            }
        }
    }
}

/// One worker's connection count and draining state (single thread: Cell/RefCell).
#[derive(Default)]
pub struct Drain {
    draining: Cell<bool>,
    active: Cell<usize>,
    waiters: RefCell<Waiters>,
    /// Bumped when the worker needs its idle connections out of their tasks now (over the
    /// connection limit): idle waits that began under another value give up their task.
    crowded: Cell<u64>,
}

impl Drain {
    pub fn is_draining(&self) -> bool {
        self.draining.get()
    }

    pub fn active(&self) -> usize {
        self.active.get()
    }

    pub fn enter(&self) {
        self.active.set(self.active.get() + 1);
    }

    pub fn leave(&self) {
        self.active.set(self.active.get().saturating_sub(1));
        if self.active.get() == 0 {
            self.wake_all();
        }
    }

    pub fn start(&self) {
        self.draining.set(true);
        self.wake_all();
    }

    /// Asks every idle wait of the worker to give up its task now (park, or close when it
    /// cannot park).
    pub fn crowd(&self) {
        self.crowded.set(self.crowded.get() + 1);
        self.wake_all();
    }

    /// The value idle waits compare with (see [`Drain::crowd`]).
    pub fn crowd_epoch(&self) -> u64 {
        self.crowded.get()
    }

    fn wake_all(&self) {
        let wakers = self.waiters.borrow_mut().take_all();
        for w in wakers {
            w.wake();
        }
    }

    /// Futures waiting now (for tests).
    pub fn waiting(&self) -> usize {
        self.waiters.borrow().len()
    }

    /// Housekeeping: the waiter table shrinks after a burst.
    pub fn release_memory(&self) {
        self.waiters.borrow_mut().shrink();
    }

    /// Resolves once draining has started (idle keep-alive connections close on it).
    pub fn draining(&self) -> DrainWait<'_> {
        self.wait(Until::Draining)
    }

    /// Resolves once draining has started or the worker was crowded since `epoch`.
    pub fn draining_or_crowded(&self, epoch: u64) -> DrainWait<'_> {
        self.wait(Until::DrainingOrCrowded(epoch))
    }

    /// Resolves once no connection is active.
    pub fn idle(&self) -> DrainWait<'_> {
        self.wait(Until::NoneActive)
    }

    fn wait(&self, until: Until) -> DrainWait<'_> {
        DrainWait {
            drain: self,
            until,
            key: None,
        }
    }
}

#[derive(Clone, Copy)]
enum Until {
    Draining,
    DrainingOrCrowded(u64),
    NoneActive,
}

pub struct DrainWait<'a> {
    drain: &'a Drain,
    until: Until,
    key: Option<usize>,
}

impl Drop for DrainWait<'_> {
    fn drop(&mut self) {
        if self.key.is_some() {
            self.drain.waiters.borrow_mut().remove(self.key);
        }
    }
}

impl Future for DrainWait<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let d = self.drain;
        let done = match self.until {
            Until::NoneActive => d.active.get() == 0,
            Until::Draining => d.draining.get(),
            Until::DrainingOrCrowded(epoch) => d.draining.get() || d.crowded.get() != epoch,
        };
        if done {
            return Poll::Ready(());
        }
        let this = &mut *self;
        this.drain
            .waiters
            .borrow_mut()
            .register(&mut this.key, cx.waker());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::counting_waker;

    /// Waits that are given up (dropped) leave no waker behind, however often they are made;
    /// the ones still waiting are woken once.
    #[test]
    fn dropped_waits_unregister_and_live_ones_wake() {
        let (waker, count) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let drain = Drain::default();
        drain.enter();
        for _ in 0..1000 {
            let mut w = Box::pin(drain.draining());
            assert!(w.as_mut().poll(&mut cx).is_pending());
            assert!(w.as_mut().poll(&mut cx).is_pending(), "a re-poll replaces");
        }
        assert_eq!(drain.waiting(), 0);
        let mut live = Box::pin(drain.idle());
        assert!(live.as_mut().poll(&mut cx).is_pending());
        assert_eq!(drain.waiting(), 1);
        drain.leave();
        assert_eq!(count(), 1);
        assert!(live.as_mut().poll(&mut cx).is_ready());
        // A woken future keeps its slot until it is dropped: a new waiter gets another one,
        // and dropping the old future does not take the new waiter's registration with it.
        drain.enter();
        let mut other = Box::pin(drain.draining());
        assert!(other.as_mut().poll(&mut cx).is_pending());
        drop(live);
        assert_eq!(drain.waiting(), 1);
        drain.start();
        assert_eq!(count(), 2);
        assert!(other.as_mut().poll(&mut cx).is_ready());

        let signal = ShutdownSignal::default();
        for _ in 0..1000 {
            let mut w = Box::pin(signal.wait());
            assert!(w.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(signal.waiting(), 0);
        let mut live = Box::pin(signal.wait());
        assert!(live.as_mut().poll(&mut cx).is_pending());
        signal.fire();
        assert_eq!(count(), 3);
        assert!(live.as_mut().poll(&mut cx).is_ready());
    }
}
