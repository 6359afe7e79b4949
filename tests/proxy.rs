//! End to end through real sockets: ringproxy in-process on 127.0.0.1:0, in-test backends.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use ringproxy::runtime::DriverChoice;

fn single(b: &Backend) -> ringproxy::runtime::Server {
    proxy(&balancer_config(&[(b, "")], ""))
}

fn echo_backend() -> Backend {
    backend(|req| {
        ok(&format!(
            "{} len={} sum={}",
            req.request_line(),
            req.body_len,
            req.body_sum
        ))
    })
}

fn checksum(data: &[u8]) -> u64 {
    data.iter()
        .fold(0u64, |a, &b| a.wrapping_mul(31).wrapping_add(b as u64))
}

fn chunked(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for part in body.chunks(chunk.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[test]
fn get_and_post_bodies_content_length_and_chunked() {
    let b = echo_backend();
    let p = single(&b);
    let mut c = Client::connect(p.addrs[0]);
    for size in [0usize, 1, 1 << 20] {
        let body: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let want = format!("len={size} sum={}", checksum(&body));
        // Content-Length
        let mut req =
            format!("POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n\r\n").into_bytes();
        req.extend_from_slice(&body);
        c.send(&req);
        let r = c.read_response(false).unwrap();
        assert_eq!(r.status, 200);
        assert!(r.text().ends_with(&want), "CL {size}: {}", r.text());
        // chunked
        let mut req =
            b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        req.extend_from_slice(&chunked(&body, 10_000));
        c.send(&req);
        let r = c.read_response(false).unwrap();
        assert!(r.text().ends_with(&want), "chunked {size}: {}", r.text());
    }
    // Chunked and large responses come back intact.
    let big = backend(|req| {
        if req.request_line().contains("/chunked") {
            let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            out.extend_from_slice(b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n");
            Action::Respond(out)
        } else {
            Action::Stream(1 << 20)
        }
    });
    let p2 = single(&big);
    let mut c = Client::connect(p2.addrs[0]);
    let r = c.get("/chunked");
    assert_eq!(r.header("transfer-encoding").as_deref(), Some("chunked"));
    assert_eq!(r.text(), "hello world");
    let r = c.get("/big");
    assert_eq!(r.body_len, 1 << 20);
    assert!(!r.truncated);
}

#[test]
fn keep_alive_reuse_on_both_sides() {
    let b = named("one");
    let p = single(&b);
    let mut c = Client::connect(p.addrs[0]);
    for _ in 0..20 {
        assert_eq!(c.get("/").text(), "one");
    }
    // One client connection lands on one worker, which reuses one backend connection.
    assert_eq!(b.request_count(), 20);
    assert_eq!(b.connections.load(Ordering::SeqCst), 1);
}

#[test]
fn max_keep_alive_requests_closes_the_connection() {
    let b = named("one");
    let p = proxy(&balancer_config(&[(&b, "")], "MaxKeepAliveRequests 3"));
    let mut c = Client::connect(p.addrs[0]);
    assert!(c.get("/").header("connection").is_none());
    assert!(c.get("/").header("connection").is_none());
    assert_eq!(c.get("/").header("connection").as_deref(), Some("close"));
    assert!(c.is_closed());
}

#[test]
fn pipelined_requests_answered_in_order() {
    let b = backend(|req| ok(req.request_line().split(' ').nth(1).unwrap_or("")));
    let p = single(&b);
    let mut c = Client::connect(p.addrs[0]);
    c.send(b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\nPOST /2 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\nHost: t\r\n\r\n");
    for want in ["/1", "/2", "/3"] {
        assert_eq!(c.read_response(false).unwrap().text(), want);
    }
}

#[test]
fn head_204_304_framing() {
    let b = backend(|req| {
        let line = req.request_line().to_string();
        Action::Respond(if line.starts_with("HEAD") {
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec()
        } else if line.contains("/204") {
            b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()
        } else if line.contains("/304") {
            b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n".to_vec()
        } else {
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()
        })
    });
    let p = single(&b);
    let mut c = Client::connect(p.addrs[0]);
    c.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response(true).unwrap();
    assert_eq!(r.header("content-length").as_deref(), Some("1000"));
    assert_eq!(c.get("/204").status, 204);
    assert_eq!(c.get("/304").status, 304);
    // The connection is still in step after the bodiless responses.
    assert_eq!(c.get("/").text(), "ok");
}

#[test]
fn byrequests_sequences_match_the_spec_vectors() {
    let names = ["a", "b", "c", "d"];
    let bs: Vec<Backend> = names.iter().map(|n| named(n)).collect();
    let seq = |params: [&str; 4]| {
        let members: Vec<(&Backend, &str)> = bs.iter().zip(params).collect();
        // One worker: the counters are per core, so one core shows the exact vector.
        let p = proxy_with(&balancer_config(&members, ""), 1, DriverChoice::Auto);
        let mut c = Client::connect(p.addrs[0]);
        let n = if params[1].contains('D') { 6 } else { 10 };
        let s: String = (0..n).map(|_| c.get("/").text()).collect();
        p.shutdown();
        s
    };
    assert_eq!(
        seq([
            "loadfactor=1",
            "loadfactor=1",
            "loadfactor=1",
            "loadfactor=2"
        ]),
        "dabcddabcd"
    );
    assert_eq!(seq(["", "status=+D", "", ""]), "acdacd");
}

#[test]
fn routing_rules_and_reverse_rewriting() {
    let b = backend(|req| {
        let path = req
            .request_line()
            .split(' ')
            .nth(1)
            .unwrap_or("")
            .to_string();
        if path.starts_with("/redirect") {
            return Action::Respond(
                b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/login?x=1\r\nContent-Length: 0\r\n\r\n".to_vec(),
            );
        }
        if path.starts_with("/cookie") {
            return Action::Respond(
                b"HTTP/1.1 200 OK\r\nSet-Cookie: s=1; Domain=127.0.0.1; Path=/internal/app\r\nContent-Length: 0\r\n\r\n".to_vec(),
            );
        }
        ok(&path)
    });
    let config = fill(
        r#"Listen 127.0.0.1:0
<VirtualHost *>
  ServerName lb.example
  <Proxy balancer://c>
    BalancerMember http://127.0.0.1:{B0}
  </Proxy>
  ProxyPass /static !
  ProxyPassMatch ^/img/(.*)\.png$ balancer://c/images/$1.webp
  ProxyPass /api/ balancer://c/v1/
  ProxyPassMatch ^(/.*)$ balancer://c$1
  ProxyPassReverse / http://127.0.0.1:1/
  ProxyPassReverseCookieDomain 127.0.0.1 lb.example
  ProxyPassReverseCookiePath /internal /
</VirtualHost>
"#,
        &[&b],
    );
    let p = proxy(&config);
    let mut c = Client::connect(p.addrs[0]);
    assert_eq!(c.get("/img/cat.png").text(), "/images/cat.webp");
    assert_eq!(c.get("/api/users?id=7").text(), "/v1/users?id=7");
    assert_eq!(c.get("/other/x?y").text(), "/other/x?y");
    let r = c.get("/redirect");
    assert_eq!(
        r.header("location").as_deref(),
        Some("http://test/login?x=1")
    );
    let r = c.get("/cookie");
    assert_eq!(
        r.header("set-cookie").as_deref(),
        Some("s=1; Domain=lb.example; Path=/")
    );
    let r = c.get("/static/app.css");
    assert_eq!(r.status, 404);
}

#[test]
fn forwarded_headers_host_and_hop_by_hop() {
    let b = echo_backend();
    let p = single(&b);
    let mut c = Client::connect(p.addrs[0]);
    c.send(b"GET /h HTTP/1.1\r\nHost: public.example\r\nConnection: X-Forwarded-For, X-Drop\r\nX-Drop: 1\r\nX-Forwarded-For: 9.9.9.9\r\nTE: trailers\r\n\r\n");
    c.read_response(false).unwrap();
    let seen = b.last();
    assert_eq!(seen.header("host"), Some(format!("127.0.0.1:{}", b.port())));
    assert_eq!(
        seen.header("x-forwarded-for").as_deref(),
        Some("9.9.9.9, 127.0.0.1")
    );
    assert_eq!(
        seen.header("x-forwarded-host").as_deref(),
        Some("public.example")
    );
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
    assert!(seen.header("x-forwarded-server").is_some());
    assert!(seen.header("x-drop").is_none());
    assert!(seen.header("te").is_none());
    assert!(seen.header("connection").is_none());

    let p2 = proxy(&balancer_config(&[(&b, "")], "ProxyPreserveHost On"));
    let mut c = Client::connect(p2.addrs[0]);
    c.send(b"GET / HTTP/1.1\r\nHost: public.example\r\n\r\n");
    c.read_response(false).unwrap();
    assert_eq!(b.last().header("host").as_deref(), Some("public.example"));
}

#[test]
fn malformed_requests_get_the_right_status_and_close() {
    let b = named("never");
    let p = proxy(&balancer_config(
        &[(&b, "")],
        "LimitRequestLine 100\nLimitRequestFieldSize 100\nLimitRequestFields 10",
    ));
    let many_fields: String = (0..12).map(|i| format!("X-{i}: v\r\n")).collect();
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(200)).into_bytes(), 414),
        (format!("GET / HTTP/1.1\r\nHost: t\r\nX: {}\r\n\r\n", "a".repeat(200)).into_bytes(), 431),
        (format!("GET / HTTP/1.1\r\nHost: t\r\n{many_fields}\r\n").into_bytes(), 400),
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".to_vec(), 400),
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n".to_vec(), 400),
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(), 400),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\nHost: t\r\nX: a\rb\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\nHost: t\r\nX: a\0b\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\nHost: t\r\nX : a\r\n\r\n".to_vec(), 400),
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(), 400),
        // A chunk size past 16 hex digits is larger than anything accepted: 413.
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n".to_vec(), 413),
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n".to_vec(), 400),
    ];
    for (raw, status) in cases {
        let mut c = Client::connect(p.addrs[0]);
        c.send(&raw);
        let r = c
            .read_response(false)
            .unwrap_or_else(|| panic!("no answer to {}", String::from_utf8_lossy(&raw)));
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&raw));
        assert_eq!(r.header("connection").as_deref(), Some("close"));
        assert!(c.is_closed());
    }
    assert_eq!(
        b.request_count(),
        0,
        "no malformed request reached the backend"
    );
}

#[test]
fn backend_refused_gives_503() {
    // A port that was free a moment ago: connecting to it is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = format!(
        "Listen 127.0.0.1:0\n<Proxy balancer://c>\nBalancerMember http://127.0.0.1:{port}\n</Proxy>\nProxyPass / balancer://c/\n"
    );
    let p = proxy(&cfg);
    let mut c = Client::connect(p.addrs[0]);
    assert_eq!(c.get("/").status, 503);
}

#[test]
fn failover_to_another_member_on_connect_failure() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let b = named("alive");
    let cfg = format!(
        "Listen 127.0.0.1:0\n<Proxy balancer://c>\nBalancerMember http://127.0.0.1:{port}\nBalancerMember http://127.0.0.1:{}\n</Proxy>\nProxyPass / balancer://c/\n",
        b.port()
    );
    let p = proxy(&cfg);
    for _ in 0..4 {
        let mut c = Client::connect(p.addrs[0]);
        assert_eq!(c.get("/").text(), "alive");
    }
}

#[test]
fn backend_silent_gives_504_and_closed_gives_502() {
    let silent = backend(|_| Action::Delay(Duration::from_secs(3), Box::new(ok("late"))));
    let p = proxy(&balancer_config(&[(&silent, "timeout=1")], ""));
    let mut c = Client::connect(p.addrs[0]);
    assert_eq!(c.get("/").status, 504);

    let closer = backend(|_| Action::Close);
    let p = single(&closer);
    let mut c = Client::connect(p.addrs[0]);
    assert_eq!(c.get("/").status, 502);

    let garbage = backend(|_| Action::Respond(b"NOT HTTP AT ALL\r\n\r\n".to_vec()));
    let p = single(&garbage);
    let mut c = Client::connect(p.addrs[0]);
    assert_eq!(c.get("/").status, 502);
}

#[test]
fn backend_dying_mid_response_closes_the_client() {
    let b = backend(|_| {
        Action::RespondClose(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part".to_vec())
    });
    let p = single(&b);
    let mut c = Client::connect(p.addrs[0]);
    let r = c.get("/");
    assert_eq!(r.status, 200);
    assert!(r.truncated, "a short body must not look complete");
    assert!(c.is_closed());
}

#[test]
fn stale_pooled_connection_is_retried_transparently() {
    // Advertises keep-alive but closes after each response: every pooled connection the
    // proxy keeps is stale by the next request.
    let b = backend(|_| {
        Action::RespondClose(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec())
    });
    let p = proxy_with(&balancer_config(&[(&b, "")], ""), 1, DriverChoice::Auto);
    let mut c = Client::connect(p.addrs[0]);
    for i in 0..5 {
        let r = c.get("/");
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(r.text(), "ok");
        // Let the backend's FIN reach the pooled socket.
        std::thread::sleep(Duration::from_millis(20));
    }
    // A POST with a small body is replayable too.
    c.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody");
    assert_eq!(c.read_response(false).unwrap().status, 200);
    assert_eq!(b.connections.load(Ordering::SeqCst), 6);
}

#[test]
fn idle_backend_connections_left_by_a_burst_are_closed() {
    // Each request waits at the backend, so a burst of eight opens eight connections,
    // and all eight go back to the pool idle.
    let b = backend(|_| Action::Delay(Duration::from_millis(300), Box::new(ok("ok"))));
    let p = proxy_with(&balancer_config(&[(&b, "")], ""), 1, DriverChoice::Auto);
    let burst: Vec<_> = (0..8)
        .map(|_| {
            let addr = p.addrs[0];
            std::thread::spawn(move || Client::connect(addr).get("/").status)
        })
        .collect();
    for t in burst {
        assert_eq!(t.join().unwrap(), 200);
    }
    assert_eq!(b.connections.load(Ordering::SeqCst), 8);
    assert_eq!(b.closed.load(Ordering::SeqCst), 0);
    // Nobody needs them now: within a few seconds the pool closes half, then half of the
    // rest, and so on. The backend itself keeps idle connections 10 s, so closes before
    // that are the proxy's.
    let start = std::time::Instant::now();
    while b.closed.load(Ordering::SeqCst) < 6 {
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "pooled connections still open after {:?}: {} closed",
            start.elapsed(),
            b.closed.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // One warm connection stays for a sparse load.
    let mut c = Client::connect(p.addrs[0]);
    assert_eq!(c.get("/").status, 200);
    assert_eq!(
        b.connections.load(Ordering::SeqCst),
        8,
        "a pooled connection was reused"
    );
}

#[test]
fn expect_100_continue() {
    let b = echo_backend();
    let p = single(&b);
    let mut c = Client::connect(p.addrs[0]);
    c.send(b"PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    let interim = c.read_response(false).unwrap();
    assert_eq!(interim.status, 100);
    c.send(b"hello");
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.text().contains("len=5"));
    assert!(b.last().header("expect").is_none());
}

#[test]
fn http10_client_gets_dechunked_body_and_close() {
    let b = backend(|_| {
        Action::Respond(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n".to_vec())
    });
    let p = single(&b);
    let mut c = Client::connect(p.addrs[0]);
    c.send(b"GET / HTTP/1.0\r\n\r\n");
    let r = c.read_response(false).unwrap();
    assert!(r.header("transfer-encoding").is_none());
    assert_eq!(r.text(), "abcde");
}

#[test]
fn runs_on_the_epoll_fallback_with_several_workers() {
    let b = echo_backend();
    let p = proxy_with(&balancer_config(&[(&b, "")], ""), 2, DriverChoice::Epoll);
    assert_eq!(p.workers(), 2);
    let mut handles = Vec::new();
    for _ in 0..8 {
        let addr = p.addrs[0];
        handles.push(std::thread::spawn(move || {
            let mut c = Client::connect(addr);
            for _ in 0..20 {
                assert_eq!(c.get("/e").status, 200);
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(
        p.shared()
            .epoll_workers
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    assert_eq!(b.request_count(), 160);
}

#[test]
fn several_workers_share_the_port_and_balance() {
    let a = named("a");
    let b = named("b");
    let p = proxy_with(
        &balancer_config(&[(&a, ""), (&b, "")], ""),
        2,
        DriverChoice::Auto,
    );
    let mut counts = [0usize; 2];
    for _ in 0..40 {
        let mut c = Client::connect(p.addrs[0]);
        match c.get("/").text().as_str() {
            "a" => counts[0] += 1,
            _ => counts[1] += 1,
        }
    }
    // Each worker alternates on its own, so the split stays even overall.
    assert!(counts[0] >= 15 && counts[1] >= 15, "{counts:?}");
}

#[test]
fn graceful_shutdown_finishes_in_flight_requests() {
    let b = backend(|_| Action::Delay(Duration::from_millis(300), Box::new(ok("done"))));
    let p = single(&b);
    let addr = p.addrs[0];
    let t = std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        c.get("/slow")
    });
    // Wait until the request reached the backend, then stop.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while b.request_count() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    p.shutdown();
    let r = t.join().unwrap();
    assert_eq!(r.text(), "done");
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    p.join();
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "no longer accepting"
    );
}

#[test]
fn keep_alive_timeout_really_closes_idle_connections() {
    let b = named("one");
    let p = proxy(&balancer_config(&[(&b, "")], "KeepAliveTimeout 1"));
    let mut c = Client::connect(p.addrs[0]);
    assert_eq!(c.get("/").text(), "one");
    let t0 = std::time::Instant::now();
    // The proxy must close the idle connection itself (FIN), not just forget it: on
    // io_uring a timed-out read has to be cancelled in the kernel for the close to happen.
    assert!(c.is_closed());
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "closed after {waited:?}"
    );
}

#[test]
fn large_bodies_with_and_without_splice() {
    // The default threshold (64 KiB) splices these bodies; `SpliceThreshold 0` copies them
    // through user space. Both must deliver the same bytes.
    let b = backend(|req| {
        if req.request_line().starts_with("GET") {
            Action::Stream(3 << 20)
        } else {
            ok(&format!("len={} sum={}", req.body_len, req.body_sum))
        }
    });
    let body: Vec<u8> = (0..(3usize << 20)).map(|i| (i * 13 % 251) as u8).collect();
    let want = format!("len={} sum={}", body.len(), checksum(&body));
    let runs = [
        ("", DriverChoice::Auto),
        ("", DriverChoice::Epoll),
        ("SpliceThreshold 0", DriverChoice::Auto),
        ("SpliceThreshold 1", DriverChoice::Auto),
    ];
    for (extra, driver) in runs {
        let p = proxy_with(&balancer_config(&[(&b, "")], extra), 2, driver);
        let mut c = Client::connect(p.addrs[0]);
        let mut req = format!(
            "PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(&body);
        c.send(&req);
        assert_eq!(
            c.read_response(false).unwrap().text(),
            want,
            "{extra:?} {driver:?}"
        );
        let r = c.get("/down");
        assert_eq!(r.body_len, 3 << 20, "{extra:?} {driver:?}");
        assert!(!r.truncated);
        // The connection is still in step after the spliced exchange.
        c.send(b"PUT /small HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi");
        assert!(c.read_response(false).unwrap().text().starts_with("len=2"));
    }
}

/// A backend that reads one request and reports, through the channel, how many bytes of
/// it (head included) have arrived so far, each time more arrive. It never answers.
fn counting_backend() -> (std::net::SocketAddr, std::sync::mpsc::Receiver<usize>) {
    use std::io::Read;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = l.accept() else { return };
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0;
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n;
            if tx.send(total).is_err() {
                break;
            }
        }
    });
    (addr, rx)
}

/// A one-worker proxy with `Timeout timeout_s` in front of a [`counting_backend`], and a
/// client connected to it.
fn client_to_counting_backend(
    timeout_s: u32,
    driver: DriverChoice,
) -> (
    ringproxy::runtime::Server,
    std::net::TcpStream,
    std::sync::mpsc::Receiver<usize>,
) {
    let (addr, seen) = counting_backend();
    // Only `Timeout` governs here: bodies stream from their first byte, and no
    // RequestReadTimeout stage cuts in.
    let config = format!(
        "Listen 127.0.0.1:0\nTimeout {timeout_s}\nProxyRequestBuffer 0\nRequestReadTimeout body=0\nProxyPass / http://127.0.0.1:{}/\n",
        addr.port()
    );
    let p = proxy_with(&config, 1, driver);
    let c = std::net::TcpStream::connect(p.addrs[0]).unwrap();
    (p, c, seen)
}

/// While a large body is spliced, the worker waits for a batch of bytes rather than for
/// each segment (`SO_RCVLOWAT`), but never for long: a client that sends its body in small
/// pieces has each piece forwarded long before the read timeout (30 s here), on both
/// drivers.
#[test]
fn a_trickled_spliced_body_is_forwarded_piece_by_piece() {
    use std::io::Write;
    for driver in [DriverChoice::Auto, DriverChoice::Epoll] {
        let (_p, mut c, seen) = client_to_counting_backend(30, driver);
        c.set_nodelay(true).unwrap();
        let head = "PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\n";
        c.write_all(head.as_bytes()).unwrap();
        // The forwarded head is longer than the client's (X-Forwarded-* added): learn its
        // length from the first report, before any body byte is sent.
        let forwarded_head = seen.recv_timeout(Duration::from_secs(5)).unwrap();
        let mut sent = 0;
        for piece in 0..20 {
            c.write_all(&[b'x'; 1000]).unwrap();
            sent += 1000;
            let t0 = std::time::Instant::now();
            loop {
                let got = seen
                    .recv_timeout(Duration::from_secs(2))
                    .unwrap_or_else(|_| panic!("{driver:?}: piece {piece} not forwarded in 2 s"));
                if got >= forwarded_head + sent {
                    break;
                }
            }
            assert!(t0.elapsed() < Duration::from_secs(2), "{driver:?}");
        }
    }
}

/// A client that stops sending in the middle of a spliced body is given up on after the
/// read timeout, neither before it nor much later, batching or not.
#[test]
fn a_client_silent_in_a_spliced_body_times_out_on_time() {
    use std::io::{Read, Write};
    for driver in [DriverChoice::Auto, DriverChoice::Epoll] {
        let (_p, mut c, seen) = client_to_counting_backend(1, driver);
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut req = b"PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\n".to_vec();
        req.extend_from_slice(&[b'x'; 200_000]);
        c.write_all(&req).unwrap();
        // Wait until the backend has the 200,000 bytes: from here the client is silent.
        let mut got = 0;
        while got < 200_000 {
            got = seen.recv_timeout(Duration::from_secs(5)).unwrap();
        }
        let t0 = std::time::Instant::now();
        // The proxy gives up: it answers (408) or closes; either ends this read.
        let mut buf = [0u8; 4096];
        let _ = c.read(&mut buf);
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
            "{driver:?}: gave up after {waited:?}"
        );
    }
}

/// A tunnel carries megabytes both ways at once and passes the client's half-close on: the
/// spliced path (the default), the copying one (`SpliceThreshold 0`), on both drivers.
#[test]
fn tunnels_move_large_streams_both_ways_and_pass_half_closes() {
    use std::io::{BufReader, Read, Write};
    let (addr, heads) = upgrade_backend();
    for (extra, driver) in [
        ("", DriverChoice::Auto),
        ("SpliceThreshold 0\n", DriverChoice::Auto),
        ("", DriverChoice::Epoll),
    ] {
        let cfg = format!(
            "Listen 127.0.0.1:0\nTimeout 5\n{extra}ProxyPass /ws http://127.0.0.1:{}/ws upgrade=websocket\n",
            addr.port()
        );
        let p = proxy_with(&cfg, 1, driver);
        let s = std::net::TcpStream::connect(p.addrs[0]).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut w = s.try_clone().unwrap();
        w.write_all(
            b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        )
        .unwrap();
        let mut r = BufReader::new(s);
        let head = read_head(&mut r);
        assert!(head.starts_with("HTTP/1.1 101"), "{extra:?}: {head}");
        heads.recv_timeout(Duration::from_secs(5)).unwrap();
        // 3 MiB out while the echo comes back: neither direction may wait for the other.
        let data: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let writer = std::thread::spawn(move || {
            w.write_all(&sent).unwrap();
            // The member sees EOF, ends its echo, and closes: the tunnel ends both ways.
            w.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        writer.join().unwrap();
        assert_eq!(back.len(), data.len(), "{extra:?} {driver:?}");
        assert_eq!(checksum(&back), checksum(&data), "{extra:?} {driver:?}");
    }
}

/// mod_alias's redirects, as the port-80 half of an HTTPS site uses them: what no
/// ProxyPass takes is redirected, with the rest of the path and the query; a section's
/// redirect wins over its ProxyPass; `gone` answers 410.
#[test]
fn redirects_send_clients_where_mod_alias_would() {
    let b = named("B");
    let config = fill(
        "Listen 127.0.0.1:0\nServerName www.example.com\n\
         ProxyPass /app http://127.0.0.1:{B0}/app\n\
         RedirectMatch 301 ^/img/(.*)\\.gif$ /img/$1.png\n\
         Redirect gone /old\n\
         Redirect permanent / https://www.example.com/\n\
         <Location /app/moved>\nRedirect temp /app2\n</Location>\n",
        &[&b],
    );
    let p = proxy(&config);
    // Each answer of the proxy's own closes its connection: one client per request.
    let get = |path: &str| Client::connect(p.addrs[0]).get(path);
    let r = get("/a/b?x=1");
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location").as_deref(),
        Some("https://www.example.com/a/b?x=1")
    );
    assert_eq!(get("/app/x").text(), "B", "ProxyPass takes its paths first");
    let r = get("/img/logo.gif");
    assert_eq!(
        (r.status, r.header("location").as_deref()),
        (301, Some("http://test/img/logo.png"))
    );
    assert_eq!(get("/old/page").status, 410);
    let r = get("/app/moved/here");
    assert_eq!(
        (r.status, r.header("location").as_deref()),
        (302, Some("http://test/app2/here"))
    );
}
