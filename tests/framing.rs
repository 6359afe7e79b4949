//! Framing edge cases through real sockets: repeated Content-Length values, underscore
//! aliases of framing headers, chunk sizes that overflow, and backend status lines without
//! (or with unusual) reason phrases.

mod common;

use common::*;

fn single(b: &Backend) -> ringproxy::runtime::Server {
    proxy(&balancer_config(&[(b, "")], ""))
}

fn lines_named<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.lines()
        .filter(|l| {
            l.split(':')
                .next()
                .is_some_and(|n| n.trim().eq_ignore_ascii_case(name))
        })
        .collect()
}

#[test]
fn equal_content_lengths_are_forwarded_as_one() {
    let b = backend(|req| ok(&format!("got {}", req.body_len)));
    let p = single(&b);
    for head in [
        "Content-Length: 5, 5\r\n",
        "Content-Length: 5\r\nContent-Length: 5\r\n",
        "Content-Length: 5,5\r\nContent-Length: 5\r\n",
    ] {
        let mut c = Client::connect(p.addrs[0]);
        c.send(format!("POST /x HTTP/1.1\r\nHost: t\r\n{head}\r\nhello").as_bytes());
        let r = c.read_response(false).unwrap();
        assert_eq!((r.status, r.text()), (200, "got 5".to_string()), "{head:?}");
        let seen = b.last();
        assert_eq!(
            lines_named(&seen.head, "content-length"),
            vec!["Content-Length: 5"],
            "{head:?}"
        );
    }
    // Different values are still refused, and never reach the member.
    let before = b.request_count();
    let mut c = Client::connect(p.addrs[0]);
    c.send(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 6\r\n\r\nhello!");
    assert_eq!(c.read_response(false).unwrap().status, 400);
    assert_eq!(b.request_count(), before);
}

#[test]
fn underscore_aliases_of_framing_headers_are_dropped() {
    let b = backend(|req| ok(&format!("got {}", req.body_len)));
    let p = single(&b);
    let mut c = Client::connect(p.addrs[0]);
    c.send(
        b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer_Encoding: chunked\r\n\
          Content_Length: 99\r\nX_Forwarded_For: 6.6.6.6\r\nConnection_: x\r\nX_Custom: kept\r\n\r\nabc",
    );
    let r = c.read_response(false).unwrap();
    assert_eq!((r.status, r.text()), (200, "got 3".to_string()));
    let head = b.last().head;
    for gone in ["Transfer_Encoding", "Content_Length", "X_Forwarded_For"] {
        assert!(
            lines_named(&head, gone).is_empty(),
            "{gone} reached the member:\n{head}"
        );
    }
    // Names that alias nothing sensitive pass.
    assert_eq!(lines_named(&head, "X_Custom"), vec!["X_Custom: kept"]);
    assert_eq!(lines_named(&head, "Connection_"), vec!["Connection_: x"]);
    assert_eq!(
        b.last().header("x-forwarded-for").as_deref(),
        Some("127.0.0.1")
    );
}

#[test]
fn chunk_sizes_that_overflow_are_answered_and_never_forwarded() {
    let b = backend(|req| ok(&format!("got {}", req.body_len)));
    let p = single(&b);
    for size in [
        "10000000000000000",
        "00000000000000001",
        "ffffffffffffffffff",
    ] {
        let mut c = Client::connect(p.addrs[0]);
        c.send(
            format!(
                "POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{size}\r\nabc\r\n0\r\n\r\n"
            )
            .as_bytes(),
        );
        let r = c.read_response(false).expect("an answer");
        assert_eq!(r.status, 413, "{size}");
        assert!(c.is_closed());
    }
    for bad in ["zz", "-1", "1 1", ""] {
        let mut c = Client::connect(p.addrs[0]);
        c.send(
            format!(
                "POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{bad}\r\nabc\r\n0\r\n\r\n"
            )
            .as_bytes(),
        );
        assert_eq!(c.read_response(false).unwrap().status, 400, "{bad:?}");
    }
    assert_eq!(b.request_count(), 0);
}

#[test]
fn status_lines_pass_through_with_their_reason() {
    let cases: &[(&[u8], &str)] = &[
        (b"HTTP/1.1 206 \r\n", "HTTP/1.1 206 Partial Content"),
        (b"HTTP/1.1 206\r\n", "HTTP/1.1 206 Partial Content"),
        (b"HTTP/1.1 418 \r\n", "HTTP/1.1 418 "),
        (
            b"HTTP/1.1 299 Custom Thing\r\n",
            "HTTP/1.1 299 Custom Thing",
        ),
        (
            b"HTTP/1.1 200 Ok caf\xe9\r\n",
            "HTTP/1.1 200 Ok caf\u{fffd}",
        ),
        (b"HTTP/1.1 422 \r\n", "HTTP/1.1 422 Unprocessable Content"),
    ];
    for (status_line, want) in cases {
        let mut resp = status_line.to_vec();
        resp.extend_from_slice(b"Content-Length: 2\r\n\r\nok");
        let b = backend(move |_| Action::Respond(resp.clone()));
        let p = single(&b);
        let mut c = Client::connect(p.addrs[0]);
        let r = c.get("/");
        let first = r.head.lines().next().unwrap_or_default().to_string();
        assert_eq!(first, *want);
        assert_eq!(r.text(), "ok");
    }
}

#[test]
fn a_backend_length_list_reaches_the_client_once() {
    let b = backend(|_| {
        Action::Respond(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        )
    });
    let p = single(&b);
    let mut c = Client::connect(p.addrs[0]);
    let r = c.get("/");
    assert_eq!(
        lines_named(&r.head, "content-length"),
        vec!["Content-Length: 2"]
    );
    assert_eq!(r.text(), "ok");
    // And the connection is still good for the next request.
    assert_eq!(c.get("/").text(), "ok");
}

#[test]
fn header_rules_keep_every_byte_of_the_lines_they_do_not_change() {
    let b = backend(|_| {
        Action::Respond(
            b"HTTP/1.1 200 OK\r\nContent-Length:2\r\nX-Bin: caf\xe9\r\nX-Sp:   v\r\n\r\nok"
                .to_vec(),
        )
    });
    let p = proxy(&balancer_config(
        &[(&b, "")],
        "Header set X-Added yes\nRequestHeader set X-Req yes",
    ));
    let mut c = Client::connect(p.addrs[0]);
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\nX-Raw:kept\r\n\r\n");
    let r = c.read_response(false).expect("the body's end is found");
    assert_eq!(r.text(), "ok");
    assert!(r.head.contains("Content-Length:2\r\n"), "{}", r.head);
    assert!(r.head.contains("X-Sp:   v\r\n"), "{}", r.head);
    assert!(r.head.contains("X-Added: yes\r\n"), "{}", r.head);
    assert!(b.last().head.contains("X-Raw:kept"), "{}", b.last().head);
    assert_eq!(c.get("/").text(), "ok");
}

#[test]
fn a_head_sent_a_byte_at_a_time_is_served_and_garbage_is_refused_at_once() {
    let b = backend(|req| ok(req.request_line()));
    let p = single(&b);
    let mut c = Client::connect(p.addrs[0]);
    c.stream.set_nodelay(true).unwrap();
    let head = format!(
        "GET /slow HTTP/1.1\r\nHost: t\r\n{}\r\n",
        (0..20)
            .map(|i| format!("X-{i}: value\r\n"))
            .collect::<String>()
    );
    for byte in head.as_bytes() {
        c.send(std::slice::from_ref(byte));
    }
    let r = c.read_response(false).unwrap();
    assert_eq!(
        (r.status, r.text()),
        (200, "GET /slow HTTP/1.1".to_string())
    );
    // A TLS ClientHello on the plain port: 400 at once, without waiting for a line end.
    let mut c = Client::connect(p.addrs[0]);
    c.send(&[
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ]);
    let started = std::time::Instant::now();
    assert_eq!(c.read_response(false).unwrap().status, 400);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}
