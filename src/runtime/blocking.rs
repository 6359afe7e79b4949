//! A few helper threads for work that may block on the disk (a static file's bytes that
//! are not in the page cache), so that an event loop never waits for a disk.
//!
//! Jobs go through a bounded queue; a job finds the queue full only when the disks are far
//! behind, and then runs on the caller's thread (the request still completes; that worker
//! pays the wait, as every Apache thread does).

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

/// Helper threads: enough for a few disks' worth of parallel reads.
const THREADS: usize = 4;
/// Jobs waiting for a helper thread.
const QUEUE_MAX: usize = 256;

type Job = Box<dyn FnOnce() + Send>;

fn queue() -> &'static SyncSender<Job> {
    static QUEUE: OnceLock<SyncSender<Job>> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (tx, rx) = sync_channel::<Job>(QUEUE_MAX);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..THREADS {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("ringproxy-disk-{i}"))
                .spawn(move || serve(&rx));
            if let Err(e) = spawned {
                tracing::warn!("cannot start a disk helper thread: {e}");
            }
        }
        tx
    })
}

fn serve(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = match rx.lock() {
            Ok(r) => r.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        job();
    }
}

struct Slot<R> {
    done: Option<R>,
    waker: Option<Waker>,
}

/// Runs `f` on a helper thread and waits for its result without blocking the caller's
/// event loop.
pub async fn run<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let slot = Arc::new(Mutex::new(Slot {
        done: None,
        waker: None,
    }));
    let theirs = slot.clone();
    let job: Job = Box::new(move || {
        let r = f();
        if let Ok(mut s) = theirs.lock() {
            s.done = Some(r);
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        }
    });
    match queue().try_send(job) {
        Ok(()) => {}
        Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => job(),
    }
    Wait { slot }.await
}

struct Wait<R> {
    slot: Arc<Mutex<Slot<R>>>,
}

impl<R> Future for Wait<R> {
    type Output = R;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        let Ok(mut s) = self.slot.lock() else {
            // A helper panicked while holding the lock: nothing will come.
            return Poll::Pending;
        };
        match s.done.take() {
            Some(r) => Poll::Ready(r),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
