//! Slow clients never hold the site: RequestReadTimeout cuts off heads and bodies that
//! arrive too slowly (408, counted), a body up to ProxyRequestBuffer is read whole before a
//! member is chosen, and normal clients are served meanwhile.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn site(b: &Backend, extra: &str) -> ringproxy::runtime::Server {
    proxy(&balancer_config(
        &[(b, "")],
        &format!(
            "{extra}\n<Location /metrics>\nSetHandler metrics\n</Location>\nProxyPass /metrics !"
        ),
    ))
}

const HEADER_TIMEOUTS: &str = "ringproxy_request_read_timeouts_total{stage=\"header\"}";
const BODY_TIMEOUTS: &str = "ringproxy_request_read_timeouts_total{stage=\"body\"}";

#[test]
fn a_slow_head_is_answered_408_while_others_are_served() {
    let b = named("ok");
    let p = site(&b, "RequestReadTimeout header=1 body=1");
    let started = Instant::now();
    let mut slow = Client::connect(p.addrs[0]);
    slow.send(b"GET / HTTP/1.1\r\nHost: t\r\n");
    // Meanwhile a normal client is served.
    assert_eq!(Client::connect(p.addrs[0]).get("/").text(), "ok");
    let r = slow.read_response(false).expect("408");
    assert_eq!(r.status, 408);
    assert!(slow.is_closed());
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(metric(&p, HEADER_TIMEOUTS), 1.0);
}

#[test]
fn a_trickling_head_is_cut_off_at_the_stage_maximum() {
    let b = named("ok");
    // MinRate earns time, but never past the maximum of 2 s.
    let p = site(&b, "RequestReadTimeout header=1-2,MinRate=1");
    let mut slow = Client::connect(p.addrs[0]);
    slow.stream.set_nodelay(true).unwrap();
    let started = Instant::now();
    let head =
        b"GET / HTTP/1.1\r\nHost: t\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let mut sent = 0;
    // A byte every 100 ms: ten times MinRate, yet the head never ends.
    while started.elapsed() < Duration::from_secs(4) && sent < head.len() {
        if std::io::Write::write_all(&mut slow.stream, &head[sent..sent + 1]).is_err() {
            break;
        }
        sent += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = slow.read_response(false).expect("408");
    assert_eq!(r.status, 408);
    let took = started.elapsed();
    assert!(took < Duration::from_millis(3500), "{took:?}");
}

#[test]
fn a_connection_that_never_sends_is_closed_quietly() {
    let b = named("ok");
    let p = site(&b, "RequestReadTimeout header=1");
    let mut idle = Client::connect(p.addrs[0]);
    let started = Instant::now();
    assert!(
        idle.read_response(false).is_none(),
        "no answer for no request"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(metric(&p, HEADER_TIMEOUTS), 0.0);
}

#[test]
fn a_slow_small_body_never_holds_a_member_connection() {
    let b = backend(|req| ok(&format!("got {}", req.body_len)));
    let p = site(&b, "RequestReadTimeout body=1");
    let mut slow = Client::connect(p.addrs[0]);
    slow.send(b"POST /form HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    let r = slow.read_response(false).expect("408");
    assert_eq!(r.status, 408);
    // The body was to be read whole before a member was chosen: no member saw anything.
    assert_eq!(b.connections.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(metric(&p, BODY_TIMEOUTS), 1.0);
    // A body sent in pieces within the time is buffered and forwarded whole.
    let mut c = Client::connect(p.addrs[0]);
    c.send(b"POST /form HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(b.connections.load(std::sync::atomic::Ordering::SeqCst), 0);
    c.send(b"2\r\nde\r\n0\r\n\r\n");
    assert_eq!(c.read_response(false).unwrap().text(), "got 5");
}

#[test]
fn a_slow_large_body_is_cut_off_by_its_rate() {
    let b = backend(|req| ok(&format!("got {}", req.body_len)));
    // Bodies stream once 16 bytes are here; the body stage still applies to them.
    let p = site(&b, "RequestReadTimeout body=1\nProxyRequestBuffer 16");
    let mut slow = Client::connect(p.addrs[0]);
    slow.send(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n0123456789");
    // Below the bound: no member yet.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(b.connections.load(std::sync::atomic::Ordering::SeqCst), 0);
    slow.send(b"0123456789");
    wait_until("the body streams to a member", || {
        b.connections.load(std::sync::atomic::Ordering::SeqCst) == 1
    });
    let started = Instant::now();
    let r = slow.read_response(false).expect("408");
    assert_eq!(r.status, 408);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(metric(&p, BODY_TIMEOUTS), 1.0);
    // The member's connection that carried the partial body is closed, not pooled.
    wait_until("the member connection closed", || {
        b.closed.load(std::sync::atomic::Ordering::SeqCst)
            == b.connections.load(std::sync::atomic::Ordering::SeqCst)
    });
}

#[test]
fn expect_continue_is_answered_before_buffering() {
    let b = backend(|req| ok(&format!("got {}", req.body_len)));
    let p = site(&b, "");
    let mut c = Client::connect(p.addrs[0]);
    c.send(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    let interim = c.read_response(false).unwrap();
    assert_eq!(interim.status, 100);
    assert_eq!(b.connections.load(std::sync::atomic::Ordering::SeqCst), 0);
    c.send(b"data");
    assert_eq!(c.read_response(false).unwrap().text(), "got 4");
}

#[test]
fn defaults_and_directive_errors() {
    use ringproxy::config::{load_str, LoadOptions};
    let c = load_str("Listen 80\n", "t.conf", &LoadOptions::default()).unwrap();
    assert_eq!(
        c.core.read_timeouts,
        ringproxy::http::reqtimeout::ReadTimeouts::default()
    );
    assert_eq!(c.core.request_buffer, 64 * 1024);
    let e = load_str(
        "Listen 80\nRequestReadTimeout header=20-10,MinRate=5\n",
        "t.conf",
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert!(
        e[0].to_string().starts_with("t.conf:2: RequestReadTimeout"),
        "{e:?}"
    );
}
