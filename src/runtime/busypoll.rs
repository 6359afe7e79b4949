//! `BusyPolling`: a worker keeps polling for socket events for a while after each request
//! instead of sleeping in the kernel.
//!
//! Why: on a virtual machine (and on hosts with deep C-states), a core that went idle
//! takes tens of microseconds to resume when the next event arrives, because the
//! hypervisor has to run the vCPU again. A proxy spends a few microseconds on a request,
//! so at moderate rates these wake-ups are a good part of the latency the hop adds: two
//! per request, one for the request and one for the backend's answer (bench/RESULTS.md).
//! Spinning trades CPU time for that latency, as HAProxy's `busy-polling` does. The core
//! shows busy while it spins, so this is for cores the proxy has to itself.
//!
//! How: the worker's poller stays runnable while it spins. monoio's loop then never
//! blocks: between rounds of the runnable tasks it submits queued operations and reaps
//! completions without waiting (`io_uring_enter` with nothing to wait for, or
//! `epoll_wait` with a zero timeout). With the io_uring set-up this proxy uses
//! (`COOP_TASKRUN`), completed socket operations are posted on every such entry. (With
//! `RINGPROXY_URING_SETUP=defer` they are posted only when the runtime parks, so polling
//! gains nothing there.)
//!
//! Two details of monoio's scheduler shape the code. A task that wakes itself while being
//! polled goes to the *front* of the run queue and is polled again before anything else,
//! so a self-waking spinner would starve every connection on the worker; the poller
//! instead hands its wake-up to a second task (`relay`), and wakes from another task go
//! to the back of the queue. And monoio fires its timers only when it parks: every couple
//! of milliseconds the poller lets the runtime park once with a timer already due, and
//! that park returns at once.

use std::cell::Cell;
use std::future::Future;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::runtime::Thread;

/// How long the runtime goes between parks while spinning. monoio rounds timer deadlines
/// up to whole milliseconds, so a 1 ms timer set now is due in the runtime's clock once
/// 2 ms have passed; waiting for it then costs no sleep.
const TIMER_STEP: Duration = Duration::from_millis(1);
const PARK_EVERY: Duration = Duration::from_millis(2);

/// How often a worker with busy polling off looks again, in case a reload turned it on.
const RECHECK_OFF: Duration = Duration::from_secs(1);

/// The request path's side: one counter and, while the poller sleeps, its waker.
#[derive(Default)]
pub struct Activity {
    /// Requests started on this thread (wrapping).
    started: Cell<u64>,
    /// Set while the poller waits for a request.
    sleeping: Cell<Option<Waker>>,
}

impl Activity {
    /// A request head arrived. Cheap when busy polling is off: the poller never sleeps on
    /// this, so there is no waker to take.
    #[inline]
    pub fn request_started(&self) {
        self.started.set(self.started.get().wrapping_add(1));
        if let Some(w) = self.sleeping.take() {
            w.wake();
        }
    }

    /// Requests started on this thread so far (wrapping).
    pub fn started(&self) -> u64 {
        self.started.get()
    }
}

/// Whether the poller keeps spinning: for `window` after the last request arrived. Not
/// for as long as requests are in progress: a slow backend or a WebSocket tunnel would
/// then keep a core busy for minutes; the window bounds what polling costs.
fn keep_spinning(now: Instant, last_request: Instant, window: Duration) -> bool {
    now.saturating_duration_since(last_request) < window
}

/// The worker's poller task. Runs for the worker's life (the runtime drops it on exit).
pub async fn run(t: Rc<Thread>) {
    let relay = Rc::new(Relay::default());
    monoio::spawn(run_relay(relay.clone()));
    let mut seen = t.activity.started.get();
    loop {
        let Some(window) = t.current().shared.cfg.core.busy_polling else {
            monoio::time::sleep(RECHECK_OFF).await;
            seen = t.activity.started.get();
            continue;
        };
        if t.activity.started.get() == seen {
            NextRequest {
                activity: &t.activity,
                seen,
            }
            .await;
        }
        seen = t.activity.started.get();
        spin(&t, &relay, window, &mut seen).await;
    }
}

/// Adds the time since `*since` to the worker's busy-poll time (server-status, metrics).
fn account(t: &Rc<Thread>, since: &mut Instant, now: Instant) {
    let us = now.saturating_duration_since(*since).as_micros() as u64;
    t.current()
        .stats()
        .busy_poll_us
        .fetch_add(us, Ordering::Relaxed);
    *since = now;
}

/// Spins until `window` has passed with no request started.
async fn spin(t: &Rc<Thread>, relay: &Relay, window: Duration, seen: &mut u64) {
    let mut last_request = Instant::now();
    let mut accounted = last_request;
    loop {
        let mut due = pin!(monoio::time::sleep(TIMER_STEP));
        // Register the timer now, with this task's waker.
        std::future::poll_fn(|cx| {
            let _ = due.as_mut().poll(cx);
            Poll::Ready(())
        })
        .await;
        let park_at = Instant::now() + PARK_EVERY;
        loop {
            RelayYield {
                relay,
                asked: false,
            }
            .await;
            let now = Instant::now();
            let started = t.activity.started.get();
            if started != *seen {
                *seen = started;
                last_request = now;
            }
            if !keep_spinning(now, last_request, window) {
                account(t, &mut accounted, now);
                return;
            }
            if now >= park_at {
                // Accounted as it goes, so a worker that never stops polling shows it.
                account(t, &mut accounted, now);
                break;
            }
        }
        // Due by now in the runtime's clock: the runtime parks without waiting, runs its
        // timers (keep-alive and request deadlines among them) and wakes this task.
        due.await;
    }
}

/// Ready once a request starts after `seen`.
struct NextRequest<'a> {
    activity: &'a Activity,
    seen: u64,
}

impl Future for NextRequest<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.activity.started.get() != self.seen {
            return Poll::Ready(());
        }
        self.activity.sleeping.set(Some(cx.waker().clone()));
        Poll::Pending
    }
}

impl Drop for NextRequest<'_> {
    fn drop(&mut self) {
        self.activity.sleeping.set(None);
    }
}

/// The two wakers of a poller and its relay task.
#[derive(Default)]
struct Relay {
    poller: Cell<Option<Waker>>,
    relay: Cell<Option<Waker>>,
}

/// The poller's yield: pending once, with the relay asked to wake it. It is polled again
/// after the tasks queued now, and after the runtime has polled the ring.
struct RelayYield<'a> {
    relay: &'a Relay,
    asked: bool,
}

impl Future for RelayYield<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.asked {
            return Poll::Ready(());
        }
        self.asked = true;
        self.relay.poller.set(Some(cx.waker().clone()));
        if let Some(w) = self.relay.relay.take() {
            w.wake();
        }
        Poll::Pending
    }
}

/// The relay task: wakes the poller whenever the poller asked, from outside the poller's
/// own poll.
async fn run_relay(relay: Rc<Relay>) {
    std::future::poll_fn(|cx| {
        if let Some(w) = relay.poller.take() {
            w.wake();
        }
        relay.relay.set(Some(cx.waker().clone()));
        Poll::<()>::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spins_within_the_window_after_a_request() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let cases = [
            // (ms since the last request, window ms, keeps spinning)
            (0, 5, true),
            (4, 5, true),
            (5, 5, false),
            (50, 5, false),
            (0, 0, false),
            (1_000_000, u64::MAX, true),
        ];
        for (since, window, want) in cases {
            let now = t0 + ms(since);
            let window = if window == u64::MAX {
                Duration::MAX
            } else {
                ms(window)
            };
            assert_eq!(
                keep_spinning(now, t0, window),
                want,
                "{since} ms after, window {window:?}"
            );
        }
    }

    #[test]
    fn a_request_wakes_the_sleeping_poller_once() {
        let a = Activity::default();
        let (waker, woken) = crate::testutil::counting_waker();
        let mut cx = Context::from_waker(&waker);
        let mut next = pin!(NextRequest {
            activity: &a,
            seen: a.started.get(),
        });
        assert!(next.as_mut().poll(&mut cx).is_pending());
        a.request_started();
        assert_eq!(woken(), 1);
        // The waker is gone once used: later requests cost no wake.
        a.request_started();
        assert_eq!(woken(), 1);
        assert!(next.as_mut().poll(&mut cx).is_ready());
    }
}
