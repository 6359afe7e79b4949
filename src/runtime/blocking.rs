//! Helper threads for blocking work, so that an event loop never waits for a disk or a
//! resolver: a [`Pool`] of named threads fed by a bounded queue, and a [`completion`] pair
//! through which a helper hands a result to the task waiting for it.
//!
//! Two pools use it: the disk pool here ([`run`]: a static file's bytes that are not in the
//! page cache) and the name lookups of `runtime::dns`.

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

/// A unit of blocking work.
pub type Job = Box<dyn FnOnce() + Send>;

/// Named helper threads taking jobs from a bounded queue, for the process's life.
pub struct Pool {
    queue: SyncSender<Job>,
}

impl Pool {
    pub fn new(name: &str, threads: usize, queue_max: usize) -> Pool {
        let (tx, rx) = sync_channel::<Job>(queue_max);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("ringproxy-{name}-{i}"))
                .spawn(move || serve(&rx));
            if let Err(e) = spawned {
                tracing::warn!("cannot start a {name} helper thread: {e}");
            }
        }
        Pool { queue: tx }
    }

    /// Queues `job`; gives it back when the queue is full (the caller decides what then).
    pub fn submit(&self, job: Job) -> Result<(), Job> {
        self.queue.try_send(job).map_err(|e| match e {
            TrySendError::Full(j) | TrySendError::Disconnected(j) => j,
        })
    }
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

/// The helper's side of a [`completion`]: sets the result and wakes the waiting task.
pub struct Done<R>(Arc<Mutex<Slot<R>>>);

impl<R> Done<R> {
    pub fn set(&self, r: R) {
        if let Ok(mut s) = self.0.lock() {
            s.done = Some(r);
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        }
    }
}

/// The waiting side: ready with the result, or `None` if a helper panicked while holding
/// the slot (nothing will come then).
pub struct Wait<R>(Arc<Mutex<Slot<R>>>);

impl<R> Future for Wait<R> {
    type Output = Option<R>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<R>> {
        let Ok(mut s) = self.0.lock() else {
            return Poll::Ready(None);
        };
        match s.done.take() {
            Some(r) => Poll::Ready(Some(r)),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// A result that a helper thread sets and a task awaits.
pub fn completion<R>() -> (Done<R>, Wait<R>) {
    let slot = Arc::new(Mutex::new(Slot {
        done: None,
        waker: None,
    }));
    (Done(slot.clone()), Wait(slot))
}

/// Disk helper threads: enough for a few disks' worth of parallel reads.
const DISK_THREADS: usize = 4;
/// Disk jobs waiting for a helper thread. A job finds the queue full only when the disks
/// are far behind; it then runs on the caller's thread (the request still completes; that
/// worker pays the wait, as every Apache thread does).
const DISK_QUEUE_MAX: usize = 256;

fn disk() -> &'static Pool {
    static DISK: OnceLock<Pool> = OnceLock::new();
    DISK.get_or_init(|| Pool::new("disk", DISK_THREADS, DISK_QUEUE_MAX))
}

/// Runs `f` on a disk helper thread and waits for its result without blocking the caller's
/// event loop. `None` only if the helper panicked.
pub async fn run<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Option<R> {
    let (done, wait) = completion();
    let job: Job = Box::new(move || done.set(f()));
    if let Err(job) = disk().submit(job) {
        job();
    }
    wait.await
}
