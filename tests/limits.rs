//! MaxRequestWorkers as Apache's event MPM means it: requests in progress, not connections.
//! Idle keep-alive connections beyond MaxRequestWorkers × (AsyncRequestWorkerFactor + 1)
//! make room by closing the oldest idle ones, and a request over the limit waits for a
//! slot instead of being refused.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use common::*;
use ringproxy::runtime::DriverChoice;

/// Raises the soft descriptor limit: the test holds thousands of sockets (both ends live in
/// this process). Fails, rather than skips, when the hard limit is too low.
fn enough_descriptors(need: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < need {
            assert!(
                lim.rlim_max >= need,
                "this test needs {need} descriptors; the hard limit is {}",
                lim.rlim_max
            );
            lim.rlim_cur = need;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
}

#[test]
fn two_thousand_idle_keepalive_connections_are_all_served_under_max_request_workers_150() {
    enough_descriptors(10_000);
    let member = named("app");
    let config = format!(
        "Listen 127.0.0.1:0\nTimeout 10\nKeepAliveTimeout 30\nMaxRequestWorkers 150\n\
         <Location /metrics>\n  SetHandler metrics\n</Location>\nProxyPass /metrics !\n\
         ProxyPass / http://127.0.0.1:{}/\n",
        member.port()
    );
    let p = proxy_with(&config, 1, DriverChoice::Auto);
    let mut clients = Vec::new();
    for i in 0..2000 {
        let mut c = Client::connect(p.addrs[0]);
        let r = c.get(&format!("/c{i}"));
        assert_eq!(r.status, 200, "connection {i}: {}", r.head);
        clients.push(c);
    }
    assert_eq!(member.request_count(), 2000);
    // Apache's limit: 150 × (2 + 1) connections; the oldest idle ones made room.
    let open = metric(&p, "ringproxy_connections_open");
    assert!(open <= 451.0, "{open} connections open");
    // The newest connections are the ones kept, and they still work.
    for (i, c) in clients.iter_mut().enumerate().rev().take(100) {
        let r = c.get("/again");
        assert_eq!(r.status, 200, "connection {i} again");
    }
    // The oldest were closed by the proxy, not refused a request.
    assert!(clients[0].is_closed());
}

/// A backend whose answers wait for the test to open a gate, counting requests in flight.
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
    in_flight: AtomicUsize,
    most: AtomicUsize,
}

fn gated() -> (Backend, Arc<Gate>) {
    let gate = Arc::new(Gate {
        open: Mutex::new(false),
        cv: Condvar::new(),
        in_flight: AtomicUsize::new(0),
        most: AtomicUsize::new(0),
    });
    let g = gate.clone();
    let b = backend(move |_| {
        let now = g.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        g.most.fetch_max(now, Ordering::SeqCst);
        let mut open = g.open.lock().unwrap();
        while !*open {
            open = g.cv.wait(open).unwrap();
        }
        g.in_flight.fetch_sub(1, Ordering::SeqCst);
        ok("done")
    });
    (b, gate)
}

fn concurrent_requests(limit_line: &str, n: usize) -> usize {
    let (member, gate) = gated();
    let config = format!(
        "Listen 127.0.0.1:0\nTimeout 10\n{limit_line}\nProxyPass / http://127.0.0.1:{}/\n",
        member.port()
    );
    let p = proxy_with(&config, 1, DriverChoice::Auto);
    let (sent, done) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let failed = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (addr, sent, done, failed) =
                (p.addrs[0], sent.clone(), done.clone(), failed.clone());
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                c.send(format!("GET /r{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
                sent.fetch_add(1, Ordering::SeqCst);
                let r = c.read_response(false).expect("response");
                if r.status != 200 {
                    failed.store(true, Ordering::SeqCst);
                }
                done.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    // Every request was sent; those the proxy let through wait at the member.
    wait_until("every request is sent", || sent.load(Ordering::SeqCst) == n);
    let expected = if limit_line.is_empty() { n } else { 2 };
    wait_until("requests reach the member", || {
        gate.in_flight.load(Ordering::SeqCst) == expected
    });
    *gate.open.lock().unwrap() = true;
    gate.cv.notify_all();
    for t in threads {
        t.join().unwrap();
    }
    assert!(!failed.load(Ordering::SeqCst), "a request was refused");
    assert_eq!(done.load(Ordering::SeqCst), n);
    gate.most.load(Ordering::SeqCst)
}

#[test]
fn requests_over_max_request_workers_wait_for_a_slot() {
    // Two slots: six requests all succeed, never more than two at the member.
    assert_eq!(concurrent_requests("MaxRequestWorkers 2", 6), 2);
    // Without the limit the same six run at once.
    assert_eq!(concurrent_requests("", 6), 6);
}
