//! Helpers shared by unit tests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};

struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A waker that counts its wake-ups, and a way to read the count.
pub fn counting_waker() -> (Waker, impl Fn() -> usize) {
    let count = Arc::new(Count(AtomicUsize::new(0)));
    let seen = count.clone();
    (Waker::from(count), move || seen.0.load(Ordering::SeqCst))
}
