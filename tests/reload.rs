//! Graceful reload end to end: new connections and the next request on old ones use the new
//! configuration, requests in flight finish on the old one, member state carries over, and
//! nothing fails while clients keep sending.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::*;
use ringproxy::balancer::flag;
use ringproxy::config::{load_str, Config, LoadOptions};
use ringproxy::runtime::ReloadError;

fn parse(text: &str) -> Config {
    load_str(text, "reload.conf", &LoadOptions::default())
        .unwrap_or_else(|e| panic!("config errors: {e:?}"))
}

fn bodies(client: &mut Client, n: usize) -> BTreeSet<String> {
    (0..n).map(|_| client.get("/").text()).collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn reload_applies_to_new_and_kept_alive_connections_and_keeps_member_state() {
    let (a, b, c) = (named("a"), named("b"), named("c"));
    let p = proxy(&balancer_config(&[(&a, "route=a"), (&b, "route=b")], ""));
    // A runtime change, as balancer-manager makes it: b disabled.
    let view = p.shared().table.balancers[0].view();
    view.members[1].state.set_flag(flag::D, true);
    p.shared().table.balancers[0].update(|v| v.maxattempts = 0);
    let mut kept = Client::connect(p.addrs[0]);
    assert_eq!(bodies(&mut kept, 4), set(&["a"]));
    let elected_before = view.members[0].state.elected();
    assert!(elected_before >= 4);

    let generation = p
        .reload(parse(&balancer_config(
            &[(&a, "route=a"), (&b, "route=b"), (&c, "route=c")],
            "",
        )))
        .unwrap();
    assert_eq!(generation, 2);

    // The kept-alive connection's next requests and a new connection both see member c;
    // b stays disabled because the file did not change its status.
    assert_eq!(bodies(&mut kept, 6), set(&["a", "c"]));
    assert_eq!(
        bodies(&mut Client::connect(p.addrs[0]), 6),
        set(&["a", "c"])
    );
    let now = p.shared().table.balancers[0].view();
    assert!(now.members[1].state.has(flag::D), "runtime D flag kept");
    assert_eq!(now.maxattempts, 0, "runtime balancer setting kept");
    assert!(
        now.members[0].state.elected() >= elected_before,
        "counters carried over"
    );

    // Where the file changes a member's status, the file wins.
    p.reload(parse(&balancer_config(
        &[
            (&a, "route=a status=+D"),
            (&b, "route=b status=-D"),
            (&c, "route=c"),
        ],
        "",
    )))
    .unwrap();
    assert_eq!(bodies(&mut kept, 6), set(&["b", "c"]));
    p.shutdown();
    p.join();
}

#[test]
fn a_request_in_flight_finishes_on_the_configuration_it_started_with() {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let (arrived_tx, arrived_rx) = mpsc::channel::<()>();
    let arrived_tx = Mutex::new(arrived_tx);
    let slow = backend(move |_| {
        let _ = arrived_tx.lock().unwrap().send(());
        let _ = release_rx
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(10));
        ok("old")
    });
    let new = named("new");
    let p = proxy(&balancer_config(&[(&slow, "")], ""));
    let addr = p.addrs[0];
    let in_flight = std::thread::spawn(move || Client::connect(addr).get("/"));
    arrived_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("request reached the old backend");
    p.reload(parse(&balancer_config(&[(&new, "")], "")))
        .unwrap();
    assert_eq!(Client::connect(addr).get("/").text(), "new");
    release_tx.send(()).unwrap();
    let r = in_flight.join().unwrap();
    assert_eq!((r.status, r.text()), (200, "old".to_string()));
    p.shutdown();
    p.join();
}

#[test]
fn changes_that_need_new_sockets_or_threads_are_refused() {
    let a = named("a");
    let text = balancer_config(&[(&a, "")], "");
    let p = proxy(&text);
    let moved = text.replace("Listen 127.0.0.1:0", "Listen 127.0.0.1:1");
    match p.reload(parse(&moved)) {
        Err(ReloadError::NeedsRestart(what)) => assert!(what.contains("Listen"), "{what}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(p.shared().generation, 1, "old configuration still runs");
    assert_eq!(Client::connect(p.addrs[0]).get("/").text(), "a");
    p.shutdown();
    p.join();
}

/// Responses seen by the load threads, awaited by the test thread.
#[derive(Default)]
struct Progress {
    seen: Mutex<(u64, BTreeSet<String>)>,
    cv: Condvar,
}

impl Progress {
    fn record(&self, body: String) {
        let mut g = self.seen.lock().unwrap();
        g.0 += 1;
        g.1.insert(body);
        self.cv.notify_all();
    }

    /// Clears the set of bodies seen, then waits (bounded) until `want` answers and at least
    /// `more` responses arrived.
    fn wait_for(&self, want: &str, more: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut g = self.seen.lock().unwrap();
        g.1.clear();
        let target = g.0 + more;
        while !(g.1.contains(want) && g.0 >= target) {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("no answer from {want} after a reload"));
            g = self.cv.wait_timeout(g, left).unwrap().0;
        }
    }
}

#[test]
fn reloads_under_load_lose_no_request() {
    let (a, b, c) = (named("a"), named("b"), named("c"));
    let first = balancer_config(&[(&a, ""), (&b, "")], "");
    let second = balancer_config(&[(&b, ""), (&c, "")], "");
    let p = proxy(&first);
    let addr = p.addrs[0];
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(Progress::default());
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut load = Vec::new();
    // Keep-alive clients, and clients that open a new connection per request.
    for close in [false, false, false, true, true] {
        let (stop, progress, failures) = (stop.clone(), progress.clone(), failures.clone());
        load.push(std::thread::spawn(move || {
            let mut client = Client::connect(addr);
            while !stop.load(Ordering::SeqCst) {
                if close {
                    client = Client::connect(addr);
                }
                client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
                match client.read_response(false) {
                    Some(r) if r.status == 200 => {
                        // MaxKeepAliveRequests (100) ends a connection now and then.
                        if r.header("connection").is_some_and(|v| v == "close") {
                            client = Client::connect(addr);
                        }
                        progress.record(r.text())
                    }
                    Some(r) => failures
                        .lock()
                        .unwrap()
                        .push(format!("status {}", r.status)),
                    None => {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("no response (new connection per request: {close})"));
                        client = Client::connect(addr);
                    }
                }
            }
        }));
    }
    for round in 0..10 {
        let (text, only_new) = if round % 2 == 0 {
            (&second, "c")
        } else {
            (&first, "a")
        };
        p.reload(parse(text)).unwrap();
        // Every reload is followed by answers from the member only the new file has.
        progress.wait_for(only_new, 50);
    }
    stop.store(true, Ordering::SeqCst);
    for t in load {
        t.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert_eq!(p.shared().generation, 11);
    let (_, status) = ringproxy::admin::server_status(&p.shared(), true, "t");
    assert!(
        status.contains("ParentServerConfigGeneration: 11\n"),
        "{status}"
    );
    p.shutdown();
    p.join();
}

#[test]
fn health_check_results_survive_a_reload_and_the_new_checker_takes_over() {
    let (a, b) = (named("a"), named("b"));
    let text = balancer_config(
        &[
            (&a, ""),
            (
                &b,
                "hcmethod=GET hcuri=/ hcinterval=100ms hcfails=1 hcpasses=1",
            ),
        ],
        "",
    );
    let p = proxy(&text);
    let health_failed = |p: &ringproxy::runtime::Server| {
        p.shared().table.balancers[0].view().members[1]
            .state
            .has(flag::C)
    };
    b.stop();
    wait_until("b fails its health check", || health_failed(&p));
    p.reload(parse(&text)).unwrap();
    assert!(health_failed(&p), "C carried over with the member");
    // The new generation's checker sees b come back and clears C.
    b.restart();
    wait_until("the new checker clears C", || !health_failed(&p));
    assert_eq!(
        bodies(&mut Client::connect(p.addrs[0]), 6),
        set(&["a", "b"])
    );
    p.shutdown();
    p.join();
}
