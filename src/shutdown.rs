//! Stopping: a process-wide signal (set by the main thread on SIGTERM/SIGINT, or by tests)
//! and a per-worker drain that waits for that worker's connections to finish.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

/// Cross-thread "stop accepting" signal. Wakers from every worker are kept; monoio's `sync`
/// feature makes waking them from another thread safe.
#[derive(Default)]
pub struct ShutdownSignal {
    fired: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
}

impl ShutdownSignal {
    pub fn fire(&self) {
        self.fired.store(true, Ordering::SeqCst);
        let wakers = match self.wakers.lock() {
            Ok(mut w) => std::mem::take(&mut *w),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for w in wakers {
            w.wake();
        }
    }

    pub fn is_fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    pub fn wait(&self) -> WaitFired<'_> {
        WaitFired { signal: self }
    }
}

pub struct WaitFired<'a> {
    signal: &'a ShutdownSignal,
}

impl Future for WaitFired<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.is_fired() {
            return Poll::Ready(());
        }
        if let Ok(mut w) = self.signal.wakers.lock() {
            w.push(cx.waker().clone());
        }
        // Fired between the check and the registration: do not sleep through it.
        if self.signal.is_fired() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// One worker's connection count and draining state (single thread: Cell/RefCell).
#[derive(Default)]
pub struct Drain {
    draining: Cell<bool>,
    active: Cell<usize>,
    waiters: RefCell<Vec<Waker>>,
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

    fn wake_all(&self) {
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Resolves once draining has started (idle keep-alive connections close on it).
    pub fn draining(&self) -> DrainWait<'_> {
        DrainWait {
            drain: self,
            until_idle: false,
        }
    }

    /// Resolves once no connection is active.
    pub fn idle(&self) -> DrainWait<'_> {
        DrainWait {
            drain: self,
            until_idle: true,
        }
    }
}

pub struct DrainWait<'a> {
    drain: &'a Drain,
    until_idle: bool,
}

impl Future for DrainWait<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let done = if self.until_idle {
            self.drain.active.get() == 0
        } else {
            self.drain.draining.get()
        };
        if done {
            return Poll::Ready(());
        }
        self.drain.waiters.borrow_mut().push(cx.waker().clone());
        Poll::Pending
    }
}
