//! Coarse per-worker deadlines for idle connections.
//!
//! monoio's `Sleep` is 640 bytes; holding one per idle keep-alive connection would cost more
//! than the connection's own state. Instead an idle connection registers its deadline here
//! (a few bytes in the connection's task), and one ticker task per worker wakes the expired
//! ones. Keep-alive timeouts are seconds, so ticks of [`TICK`] are precise enough.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How often expired deadlines are looked for.
pub const TICK: Duration = Duration::from_millis(100);

#[derive(Default)]
pub struct IdleTimers {
    next_id: Cell<u64>,
    entries: RefCell<BTreeMap<(Instant, u64), Waker>>,
}

impl IdleTimers {
    /// A future that resolves at `deadline` (within one tick).
    pub fn deadline(&self, deadline: Instant) -> Deadline<'_> {
        Deadline {
            timers: self,
            deadline,
            key: None,
        }
    }

    /// Wakes every expired deadline. Returns how many are still waiting.
    pub fn fire_expired(&self, now: Instant) -> usize {
        let mut entries = self.entries.borrow_mut();
        while let Some(entry) = entries.first_entry() {
            if entry.key().0 > now {
                break;
            }
            entry.remove().wake();
        }
        entries.len()
    }

    pub fn waiting(&self) -> usize {
        self.entries.borrow().len()
    }
}

pub struct Deadline<'a> {
    timers: &'a IdleTimers,
    deadline: Instant,
    key: Option<(Instant, u64)>,
}

impl Future for Deadline<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            if let Some(k) = self.key.take() {
                self.timers.entries.borrow_mut().remove(&k);
            }
            return Poll::Ready(());
        }
        let key = match self.key {
            Some(k) => k,
            None => {
                let id = self.timers.next_id.get();
                self.timers.next_id.set(id + 1);
                let k = (self.deadline, id);
                self.key = Some(k);
                k
            }
        };
        self.timers
            .entries
            .borrow_mut()
            .insert(key, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Deadline<'_> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.timers.entries.borrow_mut().remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn expired_deadlines_wake_and_dropped_ones_unregister() {
        let timers = IdleTimers::default();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let now = Instant::now();
        let mut soon = Box::pin(timers.deadline(now + Duration::from_millis(50)));
        let mut later = Box::pin(timers.deadline(now + Duration::from_secs(60)));
        assert!(soon.as_mut().poll(&mut cx).is_pending());
        assert!(later.as_mut().poll(&mut cx).is_pending());
        assert_eq!(timers.waiting(), 2);
        assert_eq!(timers.fire_expired(now + Duration::from_millis(60)), 1);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        drop(later);
        assert_eq!(timers.waiting(), 0);
        assert!(std::mem::size_of::<Deadline<'_>>() <= 48);
    }
}
