//! Sub-millisecond sleeps for open-loop pacing.
//!
//! monoio's timer wheel ticks in milliseconds, so connections sleeping until their slots
//! all wake on the same tick and send one millisecond's worth of requests at once: at
//! 12,000 req/s, bursts of 12. The server then sees bursts, not a rate, and the measured
//! latency includes the queue each burst builds, the same for every server, which hides
//! the differences a fixed-rate run is meant to show. The pacer gives each thread one
//! timerfd (nanosecond resolution, no timer slack), armed for the earliest sleeper; when it
//! fires, every sleeper whose time has come is woken and the fd is armed for the next.
//!
//! One fd per thread, waited on as any readable descriptor (an io_uring poll, or readiness
//! on the epoll driver), so pacing costs one wake-up per distinct send time and nothing per
//! connection.

use std::cell::{Cell, RefCell};
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// A slot due within this goes at once: sleeping for less costs a wake-up that lands
/// about this late anyway.
pub const RESOLUTION: Duration = Duration::from_micros(10);

struct Sleeper {
    at: Instant,
    waker: Waker,
}

impl PartialEq for Sleeper {
    fn eq(&self, o: &Self) -> bool {
        self.at == o.at
    }
}
impl Eq for Sleeper {}
impl PartialOrd for Sleeper {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Sleeper {
    fn cmp(&self, o: &Self) -> Ordering {
        self.at.cmp(&o.at)
    }
}

/// One thread's pacer. Make it with [`Pacer::new`], spawn [`Pacer::run`], and call
/// [`Pacer::close`] when the thread's run is over so that `run` returns.
pub struct Pacer {
    /// The timerfd, held as a monoio stream only to wait for it to become readable: monoio
    /// waits for readiness on its own socket types, and the wait works on any pollable fd.
    timer: monoio::net::TcpStream,
    sleepers: RefCell<BinaryHeap<Reverse<Sleeper>>>,
    /// When the timerfd is set to fire, if it is.
    armed: Cell<Option<Instant>>,
    closed: Cell<bool>,
}

impl Pacer {
    pub fn new() -> io::Result<Rc<Pacer>> {
        // SAFETY: plain system call with valid flags; the result is checked.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns; the stream closes it.
        let std = unsafe { std::net::TcpStream::from_raw_fd(fd) };
        Ok(Rc::new(Pacer {
            timer: monoio::net::TcpStream::from_std(std)?,
            sleepers: RefCell::new(BinaryHeap::new()),
            armed: Cell::new(None),
            closed: Cell::new(false),
        }))
    }

    fn fd(&self) -> RawFd {
        self.timer.as_raw_fd()
    }

    /// Completes at `at` or just after (never before).
    pub fn sleep_until(&self, at: Instant) -> Sleep<'_> {
        Sleep { pacer: self, at }
    }

    fn insert(&self, at: Instant, waker: Waker) {
        self.sleepers
            .borrow_mut()
            .push(Reverse(Sleeper { at, waker }));
        if self.armed.get().is_none_or(|armed| at < armed) {
            self.arm(at);
        }
    }

    /// Sets the timerfd to fire at `at` (relative, so no clock conversion is needed: the
    /// fd's clock and `Instant` are both CLOCK_MONOTONIC).
    fn arm(&self, at: Instant) {
        // Zero would disarm the fd; one nanosecond fires at once.
        let d = at
            .saturating_duration_since(Instant::now())
            .max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: d.as_secs() as libc::time_t,
                tv_nsec: d.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: valid fd and pointers to live values.
        let r = unsafe { libc::timerfd_settime(self.fd(), 0, &spec, std::ptr::null_mut()) };
        // settime on our own fd with a valid value cannot fail; if it somehow did, the
        // sleeper would wait for the next arm instead of forever, because `armed` stays
        // as it was and the next insert tries again.
        if r == 0 {
            self.armed.set(Some(at));
        }
    }

    /// Wakes sleepers as their times come, until [`Pacer::close`].
    pub async fn run(self: Rc<Self>) {
        let mut expirations = [0u8; 8];
        while !self.closed.get() {
            if self.timer.readable(false).await.is_err() {
                // Cannot wait on the fd any more: wake everyone so nothing hangs; they
                // find their time not yet come and insert again, and the next insert
                // re-arms. Only reachable if the runtime refuses the poll.
                self.wake_due(None);
                monoio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
            // Reading resets readiness; EAGAIN (a spurious wake-up) is harmless.
            // SAFETY: valid fd and an 8-byte buffer, as timerfd reads require.
            let _ = unsafe { libc::read(self.fd(), expirations.as_mut_ptr().cast(), 8) };
            self.armed.set(None);
            self.wake_due(Some(Instant::now()));
        }
    }

    /// Wakes sleepers due by `now` (every sleeper with `None`) and arms for the next.
    fn wake_due(&self, now: Option<Instant>) {
        let mut due = Vec::new();
        {
            let mut s = self.sleepers.borrow_mut();
            while let Some(Reverse(first)) = s.peek() {
                if now.is_some_and(|now| first.at > now) {
                    break;
                }
                if let Some(Reverse(sl)) = s.pop() {
                    due.push(sl.waker);
                }
            }
            if let Some(Reverse(next)) = s.peek() {
                let at = next.at;
                drop(s);
                self.arm(at);
            }
        }
        for w in due {
            w.wake();
        }
    }

    /// Ends [`Pacer::run`]: fires the fd so that its wait returns and sees the flag.
    pub fn close(&self) {
        self.closed.set(true);
        self.arm(Instant::now());
    }
}

/// The future of [`Pacer::sleep_until`].
pub struct Sleep<'a> {
    pacer: &'a Pacer,
    at: Instant,
}

impl Future for Sleep<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.at {
            return Poll::Ready(());
        }
        // Registered on every pending poll: the pacer only wakes a sleeper once its time
        // has come, so a second poll means a spurious wake-up, whose extra entry costs one
        // more spurious wake-up and nothing else.
        self.pacer.insert(self.at, cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringproxy::runtime::{run_local, DriverChoice};

    /// Runs `body` with a running pacer on each driver, then stops the pacer.
    fn with_pacer_on_each_driver(body: impl Fn(Rc<Pacer>) -> Pin<Box<dyn Future<Output = ()>>>) {
        for driver in [DriverChoice::Auto, DriverChoice::Epoll] {
            run_local(driver, |_| async {
                let p = Pacer::new().unwrap();
                let runner = monoio::spawn(p.clone().run());
                body(p.clone()).await;
                p.close();
                runner.await;
            })
            .expect("a runtime starts");
        }
    }

    fn remaining(p: &Pacer) -> Duration {
        let mut cur: libc::itimerspec = unsafe { std::mem::zeroed() };
        // SAFETY: valid fd and a pointer to a live value.
        assert_eq!(unsafe { libc::timerfd_gettime(p.fd(), &mut cur) }, 0);
        Duration::new(cur.it_value.tv_sec as u64, cur.it_value.tv_nsec as u32)
    }

    #[test]
    fn sleeps_end_in_order_and_never_early() {
        with_pacer_on_each_driver(|p| {
            Box::pin(async move {
                // Sub-millisecond steps, inserted out of order, after a start far enough
                // off that every task has inserted its sleep before the first is due (a
                // task first polled after its time would finish at once, out of order,
                // when a loaded machine delays it).
                let t0 = Instant::now() + Duration::from_millis(20);
                let offsets = [700u64, 100, 400, 250, 550];
                let woke = Rc::new(RefCell::new(Vec::new()));
                let mut tasks = Vec::new();
                for us in offsets {
                    let (p, woke) = (p.clone(), woke.clone());
                    tasks.push(monoio::spawn(async move {
                        let at = t0 + Duration::from_micros(us);
                        p.sleep_until(at).await;
                        let now = Instant::now();
                        assert!(now >= at, "woke {:?} early", at - now);
                        woke.borrow_mut().push(us);
                    }));
                }
                for t in tasks {
                    t.await;
                }
                assert_eq!(*woke.borrow(), [100, 250, 400, 550, 700]);
            })
        });
    }

    #[test]
    fn the_timer_is_armed_to_the_microsecond_for_the_earliest_sleeper() {
        with_pacer_on_each_driver(|p| {
            Box::pin(async move {
                // A sleep far off, then an earlier one: the fd follows the earlier, with
                // its sub-millisecond remainder, not a whole tick.
                let far = monoio::spawn({
                    let p = p.clone();
                    async move { p.sleep_until(Instant::now() + Duration::from_secs(2)).await }
                });
                monoio::time::sleep(Duration::from_millis(1)).await;
                assert!(remaining(&p) > Duration::from_secs(1));
                let near_at = Instant::now() + Duration::from_micros(300_400);
                let near = monoio::spawn({
                    let p = p.clone();
                    async move { p.sleep_until(near_at).await }
                });
                monoio::time::sleep(Duration::from_millis(1)).await;
                let left = remaining(&p);
                let want = near_at.saturating_duration_since(Instant::now());
                assert!(
                    left <= want + Duration::from_micros(50)
                        && left + Duration::from_millis(5) > want,
                    "armed for {left:?}, the earliest sleeper is due in {want:?}"
                );
                near.await;
                // Once the near one has gone, the fd is armed for the far one again.
                assert!(remaining(&p) > Duration::from_secs(1));
                drop(far);
            })
        });
    }
}
