//! MaxRequestWorkers as Apache's event MPM means it: a cap on requests in progress, not on
//! connections. Each worker holds its share of the cap; a request over it waits (in order
//! of arrival) for one in progress to finish, as a request waits for a free thread in
//! Apache, rather than being refused. All per worker: no atomics on the request path.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// One worker's requests in progress.
#[derive(Default)]
pub struct Slots {
    used: Cell<usize>,
    queue: RefCell<VecDeque<Rc<Waiter>>>,
}

#[derive(Default)]
struct Waiter {
    granted: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Slots {
    /// A slot for one request, waiting while `limit` requests are in progress.
    pub fn take(self: &Rc<Self>, limit: usize) -> Take<'_> {
        Take {
            slots: self,
            limit,
            me: None,
        }
    }

    /// A slot now, when one is free and nobody waits (the common case: no timer needed).
    pub fn try_take(self: &Rc<Self>, limit: usize) -> Option<Slot> {
        if self.used.get() < limit && self.queue.borrow().is_empty() {
            self.used.set(self.used.get() + 1);
            return Some(Slot(self.clone()));
        }
        None
    }

    pub fn in_use(&self) -> usize {
        self.used.get()
    }

    /// Requests waiting for a slot.
    pub fn waiting(&self) -> usize {
        self.queue.borrow().len()
    }

    /// A request finished: its slot goes to the first waiter, if any.
    fn release(&self) {
        let next = self.queue.borrow_mut().pop_front();
        match next {
            Some(w) => {
                w.granted.set(true);
                if let Some(k) = w.waker.borrow_mut().take() {
                    k.wake();
                }
            }
            None => self.used.set(self.used.get().saturating_sub(1)),
        }
    }
}

/// Waits for a slot; a request given up while waiting (a timeout) leaves the queue, and one
/// granted a slot it never took passes it on.
pub struct Take<'a> {
    slots: &'a Rc<Slots>,
    limit: usize,
    me: Option<Rc<Waiter>>,
}

/// A slot held for as long as a request is in progress (kept with the request, so that a
/// request that becomes a tunnel can give it back early: see `RequestCtx::slot`).
pub struct Slot(Rc<Slots>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl Future for Take<'_> {
    type Output = Slot;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Slot> {
        let slots = self.slots;
        if let Some(me) = &self.me {
            if me.granted.get() {
                self.me = None;
                return Poll::Ready(Slot(slots.clone()));
            }
            *me.waker.borrow_mut() = Some(cx.waker().clone());
            return Poll::Pending;
        }
        // First come first served: a newcomer does not pass requests already waiting.
        if let Some(slot) = slots.try_take(self.limit) {
            return Poll::Ready(slot);
        }
        let me = Rc::new(Waiter::default());
        *me.waker.borrow_mut() = Some(cx.waker().clone());
        slots.queue.borrow_mut().push_back(me.clone());
        self.me = Some(me);
        Poll::Pending
    }
}

impl Drop for Take<'_> {
    fn drop(&mut self) {
        let Some(me) = self.me.take() else { return };
        if me.granted.get() {
            self.slots.release();
        } else {
            self.slots
                .queue
                .borrow_mut()
                .retain(|w| !Rc::ptr_eq(w, &me));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::counting_waker;

    #[test]
    fn requests_over_the_limit_wait_in_order_and_leave_cleanly() {
        let (waker, wakes) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let slots = Rc::new(Slots::default());
        let mut a = Box::pin(slots.take(2));
        let mut b = Box::pin(slots.take(2));
        let Poll::Ready(sa) = a.as_mut().poll(&mut cx) else {
            panic!("first slot")
        };
        let Poll::Ready(sb) = b.as_mut().poll(&mut cx) else {
            panic!("second slot")
        };
        let mut c = Box::pin(slots.take(2));
        let mut d = Box::pin(slots.take(2));
        let mut e = Box::pin(slots.take(2));
        assert!(c.as_mut().poll(&mut cx).is_pending());
        assert!(d.as_mut().poll(&mut cx).is_pending());
        assert!(e.as_mut().poll(&mut cx).is_pending());
        assert_eq!((slots.in_use(), slots.waiting()), (2, 3));
        // d gives up (a timeout): it leaves the queue.
        drop(d);
        assert_eq!(slots.waiting(), 2);
        // a finishes: its slot goes to c, the first waiter, not to a newcomer.
        drop(sa);
        assert!(wakes() >= 1);
        let mut newcomer = Box::pin(slots.take(2));
        assert!(newcomer.as_mut().poll(&mut cx).is_pending());
        let Poll::Ready(sc) = c.as_mut().poll(&mut cx) else {
            panic!("c is next")
        };
        // b finishes, and e is granted the slot but given up before taking it: passed on.
        drop(sb);
        drop(e);
        let Poll::Ready(sn) = newcomer.as_mut().poll(&mut cx) else {
            panic!("passed on")
        };
        drop(sc);
        drop(sn);
        assert_eq!((slots.in_use(), slots.waiting()), (0, 0));
    }
}
