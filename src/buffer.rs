//! Per-worker buffer pools: buffers go to connections only while they are working, so an
//! idle keep-alive connection costs little more than its socket (issue: idle memory).

use std::cell::{Cell, RefCell};

/// A free list of equally sized buffers on one worker (no locks: `RefCell`).
pub struct BufPool {
    free: RefCell<Vec<Vec<u8>>>,
    size: usize,
    /// Buffers kept at most; beyond that they are freed.
    keep: usize,
    /// The fewest free buffers since the last [`BufPool::decay`]: that many went unused.
    low: Cell<usize>,
    /// Whether any buffer was taken since the last [`BufPool::decay`].
    used: Cell<bool>,
}

impl BufPool {
    pub fn new(size: usize, keep: usize) -> BufPool {
        BufPool {
            free: RefCell::new(Vec::new()),
            size,
            keep,
            low: Cell::new(0),
            used: Cell::new(false),
        }
    }

    /// An empty buffer with at least the pool's capacity.
    pub fn get(&self) -> Vec<u8> {
        let mut free = self.free.borrow_mut();
        let buf = free.pop();
        self.low.set(self.low.get().min(free.len()));
        self.used.set(true);
        buf.unwrap_or_else(|| Vec::with_capacity(self.size))
    }

    /// Frees half of the buffers that stayed unused since the last call (all of them once
    /// few are left, or when no buffer was taken at all), and returns how many. Called about once a second: after a burst the
    /// pool shrinks back to what traffic uses within seconds, so the burst's buffers do not
    /// stay resident (nor pin the heap pages around them) for as long as the worker lives.
    /// Halving, not freeing all, keeps load that swings from second to second from freeing
    /// buffers only to allocate them again.
    pub fn decay(&self) -> usize {
        let mut free = self.free.borrow_mut();
        let unused = self.low.get().min(free.len());
        let quiet = !self.used.replace(false);
        let drop = if quiet || unused <= 4 {
            unused
        } else {
            unused.div_ceil(2)
        };
        let keep = free.len() - drop;
        free.truncate(keep);
        if free.is_empty() {
            // Nothing kept: give the list's own memory back too.
            *free = Vec::new();
        }
        self.low.set(free.len());
        drop
    }

    /// Takes a buffer back. Buffers that grew far past the pool size (a huge head) are
    /// freed rather than kept.
    pub fn put(&self, mut buf: Vec<u8>) {
        let cap = buf.capacity();
        if cap < self.size || cap > 4 * self.size {
            return;
        }
        let mut free = self.free.borrow_mut();
        if free.len() < self.keep {
            buf.clear();
            free.push(buf);
        }
    }

    pub fn free_count(&self) -> usize {
        self.free.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_and_bounds() {
        let p = BufPool::new(1024, 2);
        let a = p.get();
        assert!(a.capacity() >= 1024);
        let ptr = a.as_ptr();
        p.put(a);
        let again = p.get();
        assert_eq!(again.as_ptr(), ptr, "the same buffer comes back");
        drop(again);
        p.put(Vec::with_capacity(1024));
        p.put(Vec::with_capacity(1024));
        p.put(Vec::with_capacity(1024));
        assert_eq!(p.free_count(), 2, "at most `keep` are held");
        p.put(Vec::with_capacity(64 * 1024));
        p.put(Vec::new());
        assert_eq!(p.free_count(), 2, "odd sizes are freed, not kept");
    }

    #[test]
    fn decay_frees_what_went_unused() {
        let p = BufPool::new(1024, 8);
        let taken: Vec<_> = (0..6).map(|_| p.get()).collect();
        for b in taken {
            p.put(b);
        }
        assert_eq!(p.decay(), 0, "all six were in use during the first period");
        // One in use at a time during this period: five stayed idle the whole time, and
        // half of them (rounded up) go.
        let a = p.get();
        p.put(a);
        assert_eq!(p.decay(), 3);
        assert_eq!(p.free_count(), 3);
        let a = p.get();
        p.put(a);
        assert_eq!(p.decay(), 2, "few left: all the unused ones go");
        assert_eq!(p.free_count(), 1);
        // A period in which nothing was taken frees everything.
        let big = BufPool::new(1024, 64);
        let taken: Vec<_> = (0..40).map(|_| big.get()).collect();
        for b in taken {
            big.put(b);
        }
        assert_eq!(big.decay(), 0);
        assert_eq!(big.decay(), 40);
        assert_eq!(big.free_count(), 0);
    }
}
