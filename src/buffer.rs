//! Per-worker buffer pools: buffers go to connections only while they are working, so an
//! idle keep-alive connection costs little more than its socket (issue: idle memory).

use std::cell::RefCell;

/// A free list of equally sized buffers on one worker (no locks: `RefCell`).
pub struct BufPool {
    free: RefCell<Vec<Vec<u8>>>,
    size: usize,
    /// Buffers kept at most; beyond that they are freed.
    keep: usize,
}

impl BufPool {
    pub fn new(size: usize, keep: usize) -> BufPool {
        BufPool {
            free: RefCell::new(Vec::new()),
            size,
            keep,
        }
    }

    /// An empty buffer with at least the pool's capacity.
    pub fn get(&self) -> Vec<u8> {
        self.free
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.size))
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
}
