//! Per-worker buffer pools: buffers go to connections only while they are working, so an
//! idle keep-alive connection costs little more than its socket (issue: idle memory).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;

use recycle_box::RecycleBox;
use slab::Slab;

/// A free list on one worker (no locks: `RefCell`) that shrinks to what traffic uses.
struct FreeList<T> {
    free: RefCell<Vec<T>>,
    /// Items kept at most; beyond that they are freed.
    keep: usize,
    /// The fewest free items since the last [`FreeList::decay`]: that many went unused.
    low: Cell<usize>,
    /// Whether any item was taken since the last [`FreeList::decay`].
    used: Cell<bool>,
}

impl<T> FreeList<T> {
    fn new(keep: usize) -> FreeList<T> {
        FreeList {
            free: RefCell::new(Vec::new()),
            keep,
            low: Cell::new(0),
            used: Cell::new(false),
        }
    }

    fn take(&self) -> Option<T> {
        let mut free = self.free.borrow_mut();
        let item = free.pop();
        self.low.set(self.low.get().min(free.len()));
        self.used.set(true);
        item
    }

    fn give(&self, item: T) {
        let mut free = self.free.borrow_mut();
        if free.len() < self.keep {
            free.push(item);
        }
    }

    /// Frees half of the items that stayed unused since the last call (all of them once
    /// few are left, or when none was taken at all), and returns how many. Called about
    /// once a second: after a burst the list shrinks back to what traffic uses within
    /// seconds, so the burst's memory does not stay resident (nor pin the heap pages around
    /// it) for as long as the worker lives. Halving, not freeing all, keeps load that swings
    /// from second to second from freeing memory only to allocate it again.
    fn decay(&self) -> usize {
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

    fn len(&self) -> usize {
        self.free.borrow().len()
    }
}

/// A pool of equally sized buffers on one worker.
pub struct BufPool {
    list: FreeList<Vec<u8>>,
    size: usize,
}

impl BufPool {
    pub fn new(size: usize, keep: usize) -> BufPool {
        BufPool {
            list: FreeList::new(keep),
            size,
        }
    }

    /// An empty buffer with at least the pool's capacity.
    pub fn get(&self) -> Vec<u8> {
        self.list
            .take()
            .unwrap_or_else(|| Vec::with_capacity(self.size))
    }

    /// See `FreeList::decay`; returns how many buffers were freed.
    pub fn decay(&self) -> usize {
        self.list.decay()
    }

    /// Takes a buffer back. Buffers that grew far past the pool size (a huge head) are
    /// freed rather than kept.
    pub fn put(&self, mut buf: Vec<u8>) {
        let cap = buf.capacity();
        if cap < self.size || cap > 4 * self.size {
            return;
        }
        buf.clear();
        self.list.give(buf);
    }

    pub fn free_count(&self) -> usize {
        self.list.len()
    }
}

/// Heap blocks for request futures, reused from request to request on one worker.
///
/// A connection's request future is boxed so that an idle connection's task stays small;
/// it is a few KiB, past glibc's per-thread cache, so a fresh box per request costs a
/// trip through the main allocator (and its free-chunk consolidation) each time.
pub struct FutureBoxes {
    list: FreeList<RecycleBox<()>>,
}

impl FutureBoxes {
    pub fn new(keep: usize) -> FutureBoxes {
        FutureBoxes {
            list: FreeList::new(keep),
        }
    }

    /// `f`, pinned in a block an earlier future left (a new one when none is free, or when
    /// the free one is too small).
    pub fn pin<F: Future>(&self, f: F) -> Pin<RecycleBox<F>> {
        let block = self.list.take().unwrap_or_else(|| RecycleBox::new(()));
        RecycleBox::into_pin(RecycleBox::recycle(block, f))
    }

    /// Drops the future and keeps its block for the next one.
    pub fn put<F>(&self, f: Pin<RecycleBox<F>>) {
        self.list.give(RecycleBox::vacate_pinned(f));
    }

    /// See `FreeList::decay`; returns how many blocks were freed.
    pub fn decay(&self) -> usize {
        self.list.decay()
    }

    pub fn free_count(&self) -> usize {
        self.list.len()
    }
}

/// Gives back the memory of a slab after a burst: only once it is well past it (a quarter
/// used, above `floor` slots), so a steady load is not shrunk and regrown each time. Slots
/// cannot move (they are keys), so with entries left only the vacant tail goes.
pub fn shrink_after_burst<T>(slab: &mut Slab<T>, floor: usize) {
    let (len, capacity) = (slab.len(), slab.capacity());
    if capacity > floor && len * 4 < capacity {
        if len == 0 {
            *slab = Slab::new();
        } else {
            slab.shrink_to_fit();
        }
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

    #[test]
    fn future_blocks_are_reused_and_their_futures_dropped() {
        use std::rc::Rc;
        use std::task::{Context, Poll, Waker};
        let boxes = FutureBoxes::new(4);
        let alive = Rc::new(());
        let held = alive.clone();
        let mut f = boxes.pin(async move {
            let _held = held;
            7
        });
        let first = &*f as *const _ as *const u8;
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(f.as_mut().poll(&mut cx), Poll::Ready(7));
        boxes.put(f);
        assert_eq!(
            Rc::strong_count(&alive),
            1,
            "the finished future was dropped"
        );
        assert_eq!(boxes.free_count(), 1);
        // The next future of that size lands in the same block.
        let g = boxes.pin(async { 8 });
        assert_eq!(&*g as *const _ as *const u8, first);
        assert_eq!(boxes.free_count(), 0);
        // A future dropped unfinished (its task cancelled) still drops what it holds.
        let held = alive.clone();
        let h = boxes.pin(async move {
            let _held = held;
            std::future::pending::<()>().await
        });
        drop(h);
        assert_eq!(Rc::strong_count(&alive), 1);
        boxes.put(g);
        assert_eq!(boxes.decay(), 0, "taken during this period");
        assert_eq!(boxes.decay(), 1, "a quiet period frees it");
    }
}
