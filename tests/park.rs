//! Parked idle connections end to end: an idle keep-alive connection gives up its task after
//! `IdleParkAfter`, and comes back when its client sends again, on either driver and on the
//! latest configuration; it closes at its keep-alive deadline, when its client goes away,
//! and at once when the worker stops.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ringproxy::admin::stats::{totals, Totals};
use ringproxy::config::{load_str, LoadOptions};
use ringproxy::runtime::{DriverChoice, Server};

fn config(b: &Backend, extra: &str) -> String {
    balancer_config(
        &[(b, "")],
        &format!("IdleParkAfter 50ms\nKeepAliveTimeout 10\n{extra}"),
    )
}

fn counts(p: &Server) -> Totals {
    totals(&p.shared().stats)
}

#[test]
fn idle_connections_park_and_resume_on_their_next_request() {
    let b = named("b");
    for driver in [DriverChoice::Auto, DriverChoice::Epoll] {
        let p = proxy_with(&config(&b, ""), 1, driver);
        let mut clients: Vec<Client> = (0..3).map(|_| Client::connect(p.addrs[0])).collect();
        for c in &mut clients {
            assert_eq!(c.get("/").text(), "b");
        }
        wait_until("all three park", || counts(&p).parked == 3);
        assert_eq!(
            counts(&p).conns_open,
            3,
            "{driver:?}: parked ones stay open"
        );
        // Each comes back for its next request, as often as it parks.
        for round in 0..2 {
            for c in &mut clients {
                let r = c.get("/again");
                assert_eq!(
                    (r.status, r.text()),
                    (200, "b".into()),
                    "{driver:?} {round}"
                );
            }
            wait_until("they park again", || counts(&p).parked == 3);
        }
        assert_eq!(b.last().request_line(), "GET /again HTTP/1.1");
        // A client that goes away while parked is closed and counted out.
        drop(clients.pop());
        wait_until("the closed one is gone", || {
            let t = counts(&p);
            t.parked == 2 && t.conns_open == 2
        });
        p.shutdown();
        p.join();
    }
}

#[test]
fn parked_connections_close_at_their_keepalive_deadline() {
    let b = named("b");
    let p = proxy(&config(&b, "KeepAliveTimeout 1\n"));
    let mut c = Client::connect(p.addrs[0]);
    let started = Instant::now();
    assert_eq!(c.get("/").text(), "b");
    wait_until("it parks", || counts(&p).parked == 1);
    assert!(c.is_closed(), "closed at the deadline");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "closed after {took:?}, KeepAliveTimeout 1"
    );
    wait_until("it is counted out", || {
        let t = counts(&p);
        t.parked == 0 && t.conns_open == 0
    });
    p.shutdown();
    p.join();
}

#[test]
fn stopping_closes_parked_connections_at_once() {
    let b = named("b");
    let p = proxy(&config(&b, "GracefulShutdownTimeout 30\n"));
    let mut c = Client::connect(p.addrs[0]);
    assert_eq!(c.get("/").text(), "b");
    wait_until("it parks", || counts(&p).parked == 1);
    let started = Instant::now();
    p.shutdown();
    assert!(c.is_closed());
    p.join();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a parked connection must not hold the stop for the grace period"
    );
}

#[test]
fn a_parked_connection_resumes_on_the_reloaded_configuration() {
    let (a, b) = (named("a"), named("b"));
    let p = proxy(&config(&a, ""));
    let mut c = Client::connect(p.addrs[0]);
    assert_eq!(c.get("/").text(), "a");
    wait_until("it parks", || counts(&p).parked == 1);
    let text = config(&b, "");
    let cfg = load_str(&text, "reload.conf", &LoadOptions::default()).unwrap();
    p.reload(cfg).unwrap();
    assert_eq!(
        c.get("/").text(),
        "b",
        "its next request uses the new config"
    );
    p.shutdown();
    p.join();
}

#[test]
fn idle_park_after_off_keeps_connections_in_their_tasks() {
    let b = named("b");
    let p = proxy(&balancer_config(
        &[(&b, "")],
        "IdleParkAfter Off
",
    ));
    let mut c = Client::connect(p.addrs[0]);
    assert_eq!(c.get("/").text(), "b");
    // The absence of a park has no event to wait for: six default park delays.
    std::thread::sleep(Duration::from_millis(1500));
    let t = counts(&p);
    assert_eq!((t.parked, t.conns_open), (0, 1));
    assert_eq!(c.get("/").text(), "b");
    p.shutdown();
    p.join();
}

/// An idle connection that will park waits in a receive that already holds its read
/// buffer; at the park that receive is withdrawn. A request arriving around that moment
/// must be answered, never lost with the withdrawn receive. The second requests are spread
/// over the whole window in which the parks happen (50 ms plus up to two ticks of the
/// worker's 100 ms timer), so some land as the receives are being withdrawn.
#[test]
fn requests_arriving_while_connections_park_are_answered() {
    let b = named("b");
    for driver in [DriverChoice::Auto, DriverChoice::Epoll] {
        let p = proxy_with(&config(&b, ""), 1, driver);
        let mut clients: Vec<Client> = (0..150).map(|_| Client::connect(p.addrs[0])).collect();
        for c in &mut clients {
            assert_eq!(c.get("/").text(), "b");
        }
        // The send times are the stimulus, not a synchronization: every answer is awaited.
        let start = Instant::now();
        let mut parked_seen = 0;
        for (i, c) in clients.iter_mut().enumerate() {
            parked_seen = parked_seen.max(counts(&p).parked);
            let at = start + Duration::from_micros(2_000 * i as u64);
            if let Some(wait) = at.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            c.send(b"GET /second HTTP/1.1\r\nHost: test\r\n\r\n");
        }
        for (i, c) in clients.iter_mut().enumerate() {
            let r = c.read_response(false);
            assert_eq!(
                r.map(|r| (r.status, r.text())),
                Some((200, "b".to_string())),
                "{driver:?}: client {i}"
            );
        }
        assert!(parked_seen > 0, "{driver:?}: the later ones were parked");
        p.shutdown();
        p.join();
    }
}
