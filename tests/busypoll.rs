//! `BusyPolling`: a worker that polls instead of sleeping still serves all its connections
//! (the poller must not starve them), still runs its timers (monoio fires them only when
//! it parks), stops polling after its window, and reports what polling costs.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ringproxy::admin::stats::totals;
use ringproxy::runtime::{DriverChoice, Server};

fn busy_poll_us(p: &Server) -> u64 {
    totals(&p.shared().stats).busy_poll_us
}

#[test]
fn a_polling_worker_serves_every_connection_and_keeps_its_deadlines() {
    let b = named("b");
    for driver in [DriverChoice::Auto, DriverChoice::Epoll] {
        let p = proxy_with(
            &balancer_config(&[(&b, "")], "BusyPolling On\nKeepAliveTimeout 1\n"),
            1,
            driver,
        );
        // Several connections at once on the one worker, each waiting for its answers.
        let addr = p.addrs[0];
        let clients: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut c = Client::connect(addr);
                    for i in 0..50 {
                        assert_eq!(c.get("/").text(), "b", "request {i}");
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        // The keep-alive deadline runs on the worker's timers.
        let mut c = Client::connect(addr);
        assert_eq!(c.get("/").text(), "b");
        let answered = Instant::now();
        assert!(
            c.is_closed(),
            "{driver:?}: closed at the keep-alive deadline"
        );
        let took = answered.elapsed();
        assert!(
            took >= Duration::from_millis(800) && took < Duration::from_secs(3),
            "{driver:?}: closed after {took:?}, KeepAliveTimeout 1"
        );
        wait_until("polling time is reported", || busy_poll_us(&p) > 0);
        p.shutdown();
        p.join();
    }
}

#[test]
fn polling_stops_after_its_window_and_starts_again_with_a_request() {
    // A window in milliseconds, and one in microseconds (about one backend round trip).
    for window in ["20ms", "500us"] {
        polling_stops_after(window);
    }
}

fn polling_stops_after(window: &str) {
    let b = named("b");
    let off = proxy_with(&balancer_config(&[(&b, "")], ""), 1, DriverChoice::Auto);
    let on = proxy_with(
        &balancer_config(&[(&b, "")], &format!("BusyPolling {window}\n")),
        1,
        DriverChoice::Auto,
    );
    let mut c_off = Client::connect(off.addrs[0]);
    let mut c_on = Client::connect(on.addrs[0]);
    assert_eq!(c_off.get("/").text(), "b");
    assert_eq!(c_on.get("/").text(), "b");
    wait_until("the poller reports its time", || busy_poll_us(&on) > 0);
    // The time stops growing once the window has passed without a request.
    let settled = || {
        let before = busy_poll_us(&on);
        std::thread::sleep(Duration::from_millis(30));
        busy_poll_us(&on) == before
    };
    wait_until("polling stops after the window", settled);
    let stopped_at = busy_poll_us(&on);
    assert_eq!(c_on.get("/").text(), "b");
    wait_until("a request starts it again", || {
        busy_poll_us(&on) > stopped_at
    });
    // Off means off: the same traffic, no polling.
    assert_eq!(c_off.get("/").text(), "b");
    assert_eq!(busy_poll_us(&off), 0);
    for p in [off, on] {
        p.shutdown();
        p.join();
    }
}
