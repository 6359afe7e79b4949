//! `ajp://` members end to end, against a small AJP container written here (the protocol
//! as Tomcat speaks it: the first body packet unasked when the request has a length, the
//! rest by GET_BODY_CHUNK, the response as SEND_HEADERS, SEND_BODY_CHUNKs, END_RESPONSE).

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::ajp::*;
use common::*;

fn ajp_proxy(members: &[(&Container, &str)], extra: &str) -> ringproxy::runtime::Server {
    let members: String = members
        .iter()
        .map(|(c, params)| format!("BalancerMember ajp://127.0.0.1:{} {params}\n", c.port()))
        .collect();
    proxy(&format!(
        "Listen 127.0.0.1:0\n{extra}\n<Proxy balancer://tomcat>\n{members}</Proxy>\nProxyPass /app balancer://tomcat/app\n"
    ))
}

#[test]
fn a_request_goes_through_ajp_with_mod_proxy_ajps_fields() {
    let tomcat = container(|_| answer("hello from the container"));
    let p = ajp_proxy(&[(&tomcat, "secret=s3cret")], "");
    let mut c = Client::connect(p.addrs[0]);
    c.send(b"GET /app/x?a=1&b=2 HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: t\r\nX-Custom: 1\r\n\r\n");
    let r = c.read_response(false).unwrap();
    // The registered reason phrase where the container sent none (Apache sends "200 200"),
    // a length for a body without one (chunked).
    assert!(r.head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", r.head);
    assert_eq!(r.header("content-type").as_deref(), Some("text/plain"));
    assert_eq!(r.header("transfer-encoding").as_deref(), Some("chunked"));
    assert_eq!(r.text(), "hello from the container");
    let s = tomcat.last();
    let f = &s.forward;
    assert_eq!(
        (f.method.as_slice(), f.protocol.as_slice(), f.uri.as_slice()),
        (&b"GET"[..], &b"HTTP/1.1"[..], &b"/app/x"[..])
    );
    assert_eq!(f.remote_addr, b"127.0.0.1");
    assert_eq!(f.server_name, b"www.example.com");
    assert_eq!(f.server_port, p.addrs[0].port());
    assert!(!f.is_ssl);
    assert_eq!(s.header("host").as_deref(), Some("www.example.com"));
    assert_eq!(s.header("x-custom").as_deref(), Some("1"));
    assert!(s.header("connection").is_none());
    assert_eq!(s.attribute(5), ["a=1&b=2"], "query string");
    assert_eq!(s.attribute(12), ["s3cret"], "secret");
    let named = s.attribute(10);
    let port = c.stream.local_addr().unwrap().port();
    assert!(
        named.contains(&format!("AJP_REMOTE_PORT={port}")),
        "{named:?}"
    );
    assert!(
        named.contains(&"AJP_LOCAL_ADDR=127.0.0.1".to_string()),
        "{named:?}"
    );
    // The same connection to the container serves the next request (reuse flag on).
    let r = c.get("/app/y");
    assert_eq!(r.status, 200);
    assert_eq!(tomcat.conns(), 1);
}

/// The reason phrase: the container's own, else the registered one, also where the
/// container repeats the code (Tomcat does; Apache then sends `200 200`).
#[test]
fn reason_phrases() {
    let tomcat = container(|s| {
        let reason = match s.forward.uri.as_slice() {
            b"/app/code" => "404",
            b"/app/own" => "Gone Fishing",
            _ => "",
        };
        Answer {
            status: 404,
            reason,
            ..answer("")
        }
    });
    let p = ajp_proxy(&[(&tomcat, "")], "");
    for (path, line) in [
        ("/app/none", "HTTP/1.1 404 Not Found\r\n"),
        ("/app/code", "HTTP/1.1 404 Not Found\r\n"),
        ("/app/own", "HTTP/1.1 404 Gone Fishing\r\n"),
    ] {
        let r = Client::connect(p.addrs[0]).get(path);
        assert!(r.head.starts_with(line), "{path}: {}", r.head);
    }
}

#[test]
fn the_reuse_flag_decides_pooling() {
    let tomcat = container(|_| Answer {
        reuse: false,
        ..answer("once")
    });
    let p = ajp_proxy(&[(&tomcat, "")], "");
    let mut c = Client::connect(p.addrs[0]);
    for _ in 0..3 {
        assert_eq!(c.get("/app/").text(), "once");
    }
    assert_eq!(tomcat.conns(), 3);
}

#[test]
fn bodies_both_ways_are_byte_identical() {
    let tomcat = container(|s| {
        let sum = s
            .body
            .iter()
            .fold(0u64, |a, &b| a.wrapping_mul(31).wrapping_add(b.into()));
        let mut a = answer("");
        a.headers.push(("X-Sum".into(), sum.to_string()));
        a.headers.push(("X-Len".into(), s.body.len().to_string()));
        if s.forward.uri.ends_with(b"/down") {
            a.body = (0..(2 << 20)).map(|i| (i % 251) as u8).collect();
            a.headers
                .push(("Content-Length".into(), (2 << 20).to_string()));
        }
        a
    });
    let p = ajp_proxy(&[(&tomcat, "")], "");
    let mut c = Client::connect(p.addrs[0]);
    // 2 MiB up with a length: the first packet unasked, the rest as the container asks.
    let up: Vec<u8> = (0..(2 << 20)).map(|i| (i % 241) as u8).collect();
    c.send(
        format!(
            "POST /app/up HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            up.len()
        )
        .as_bytes(),
    );
    c.send(&up);
    let r = c.read_response(false).unwrap();
    let sum = up
        .iter()
        .fold(0u64, |a, &b| a.wrapping_mul(31).wrapping_add(b.into()));
    assert_eq!(r.header("x-len"), Some(up.len().to_string()));
    assert_eq!(r.header("x-sum"), Some(sum.to_string()));
    // A chunked body: the container asks until the empty packet.
    c.send(b"POST /app/chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    let r = c.read_response(false).unwrap();
    assert_eq!(r.header("x-len").as_deref(), Some("11"));
    assert_eq!(tomcat.last().body, b"hello world");
    // 2 MiB down with the container's Content-Length.
    let r = c.get("/app/down");
    assert_eq!(r.header("content-length"), Some((2 << 20).to_string()));
    assert_eq!((r.body_len, r.truncated), (2 << 20, false));
    assert!(r
        .body
        .iter()
        .enumerate()
        .all(|(i, &b)| b == (i % 251) as u8));
    // And the connection still works.
    assert_eq!(c.get("/app/again").status, 200);
}

#[test]
fn a_broken_container_costs_a_502_or_the_connection() {
    let tomcat = container(|s| {
        if s.forward.uri.ends_with(b"/garbage") {
            return Answer {
                raw: Some(b"HTTP/1.1 200 OK\r\n\r\n".to_vec()),
                ..answer("")
            };
        }
        let mut a = answer("");
        a.body = vec![b'x'; 100_000];
        a.cut_after = Some(50_000);
        a
    });
    let p = ajp_proxy(&[(&tomcat, "")], "");
    assert_eq!(Client::connect(p.addrs[0]).get("/app/garbage").status, 502);
    // Closed in the middle of the body: with `flushpackets` off (the default) nothing was
    // written yet, so the answer is a 502; with it on, the head and part of the body went
    // out, and the client's body is not complete and its connection closes (no
    // terminating chunk).
    assert_eq!(Client::connect(p.addrs[0]).get("/app/cut").status, 502);
    let p = ajp_proxy(&[(&tomcat, "flushpackets=on")], "");
    let mut c = Client::connect(p.addrs[0]);
    let r = c.get("/app/cut");
    assert_eq!(r.status, 200);
    assert!(r.truncated, "a cut body must not look complete");
    assert!(c.is_closed());
}

/// `flushpackets=on` and `auto`: what the container sent reaches the client while the
/// container is still working on the rest (it waits until the client has it).
#[test]
fn flushpackets_passes_body_packets_on() {
    for flush in ["flushpackets=on", "flushpackets=auto flushwait=5"] {
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let b2 = barrier.clone();
        let tomcat = container(move |_| Answer {
            body: vec![b'p'; 3 * 8184],
            pause: Some((8184, b2.clone())),
            ..answer("")
        });
        let p = ajp_proxy(&[(&tomcat, flush)], "");
        let mut c = Client::connect(p.addrs[0]);
        c.send(b"GET /app/stream HTTP/1.1\r\nHost: t\r\n\r\n");
        // The head and the first chunk arrive before the container sends more.
        let mut reader = std::io::BufReader::new(c.stream.try_clone().unwrap());
        let head = read_head(&mut reader);
        assert!(
            head.contains("Transfer-Encoding: chunked"),
            "{flush}: {head}"
        );
        let mut size = String::new();
        std::io::BufRead::read_line(&mut reader, &mut size).unwrap();
        assert_eq!(size.trim(), format!("{:x}", 8184), "{flush}");
        barrier.wait();
        let rest = read_response_rest(&mut reader);
        assert_eq!(rest + 8184, 3 * 8184, "{flush}");
    }
}

/// The rest of a chunked body after the first size line (that chunk's data included).
fn read_response_rest(r: &mut impl std::io::BufRead) -> usize {
    let mut first = vec![0u8; 8184 + 2];
    r.read_exact(&mut first).unwrap();
    let mut total = 0;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let n = usize::from_str_radix(line.trim(), 16).unwrap();
        let mut data = vec![0u8; n + 2];
        r.read_exact(&mut data).unwrap();
        if n == 0 {
            return total;
        }
        total += n;
    }
}

#[test]
fn sticky_sessions_follow_tomcats_jvm_route() {
    let node = |name: &'static str| {
        container(move |s| {
            let mut a = answer(name);
            if s.header("cookie").is_none() {
                a.headers.push((
                    "Set-Cookie".into(),
                    format!("JSESSIONID=ABC123.{name}; Path=/app; HttpOnly"),
                ));
            }
            a
        })
    };
    let (n1, n2) = (node("node1"), node("node2"));
    let p_sticky = proxy(&format!(
        "Listen 127.0.0.1:0\n<Proxy balancer://tomcat>\nBalancerMember ajp://127.0.0.1:{} route=node1\nBalancerMember ajp://127.0.0.1:{} route=node2\n</Proxy>\nProxyPass /app balancer://tomcat/app stickysession=JSESSIONID|jsessionid\n",
        n1.port(),
        n2.port()
    ));
    for _ in 0..10 {
        let mut c = Client::connect(p_sticky.addrs[0]);
        c.send(b"GET /app/ HTTP/1.1\r\nHost: t\r\nCookie: JSESSIONID=ABC123.node2\r\n\r\n");
        assert_eq!(c.read_response(false).unwrap().text(), "node2");
        let mut c = Client::connect(p_sticky.addrs[0]);
        c.send(b"GET /app/;jsessionid=ABC123.node1 HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(c.read_response(false).unwrap().text(), "node1");
    }
    // The route the request asked for reaches the container (Tomcat's jvm_route).
    assert_eq!(n1.last().attribute(6), ["node1"]);
}

/// `ping=`: a pooled connection is CPINGed before it carries a request; one the container
/// dropped is replaced by a fresh connection without the client seeing it.
#[test]
fn ping_checks_pooled_connections() {
    let tomcat = container(|s| Answer {
        close_after: s.forward.uri.ends_with(b"/drop"),
        ..answer("pong")
    });
    let p = ajp_proxy(&[(&tomcat, "ping=2")], "");
    let mut c = Client::connect(p.addrs[0]);
    assert_eq!(c.get("/app/a").text(), "pong");
    assert_eq!(c.get("/app/b").text(), "pong");
    assert_eq!(
        tomcat.cpings.load(Ordering::SeqCst),
        1,
        "one CPING, before the reuse"
    );
    assert_eq!(tomcat.conns(), 1);
    // The container drops the connection after this answer; the next request still works.
    assert_eq!(c.get("/app/drop").text(), "pong");
    assert_eq!(c.get("/app/c").text(), "pong");
    assert_eq!(tomcat.conns(), 2);
}

/// `hcmethod=CPING`: a member that does not answer CPING with CPONG is taken out; one that
/// does stays in.
#[test]
fn cping_health_checks() {
    let good = container(|_| answer("good"));
    // Answers anything with an HTTP error, as an HTTP port would.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let bad_port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut b = [0u8; 5];
            let _ = s.read_exact(&mut b);
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        }
    });
    let p = proxy(&format!(
        "Listen 127.0.0.1:0\n<Location /balancer-manager>\nSetHandler balancer-manager\nRequire local\n</Location>\nProxyPass /balancer-manager !\n<Proxy balancer://tomcat>\nBalancerMember ajp://127.0.0.1:{} hcmethod=CPING hcinterval=100ms\nBalancerMember ajp://127.0.0.1:{bad_port} hcmethod=CPING hcinterval=100ms\n</Proxy>\nProxyPass /app balancer://tomcat/app\n",
        good.port()
    ));
    let status = |i: usize| {
        manager_state(&p)["balancers"][0]["members"][i]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    wait_until("the member without CPONG is taken out", || {
        status(1).contains('C')
    });
    wait_until("the good member was checked", || {
        good.cpings.load(Ordering::SeqCst) >= 1
    });
    assert!(!status(0).contains('C'), "{}", status(0));
    for _ in 0..4 {
        assert_eq!(Client::connect(p.addrs[0]).get("/app/").text(), "good");
    }
}

#[test]
fn what_ajp_cannot_do_is_a_config_error() {
    let load = |text: &str| {
        ringproxy::config::load_str(text, "t.conf", &Default::default())
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    let e = load("Listen 80\nProxyPass / ajp://127.0.0.1:8009/ hcmethod=GET\n");
    assert!(
        e[0].starts_with(
            "t.conf:2: member 'ajp://127.0.0.1:8009': hcmethod=GET would send HTTP to an AJP port"
        ),
        "{e:?}"
    );
    let e = load("Listen 80\n<Proxy balancer://b>\nBalancerMember http://127.0.0.1:8080 hcmethod=CPING\n</Proxy>\nProxyPass / balancer://b/\n");
    assert!(
        e[0].starts_with("t.conf:3: member 'http://127.0.0.1:8080': hcmethod=CPING is AJP's"),
        "{e:?}"
    );
    let e = load("Listen 80\nProxyPass / ajp://127.0.0.1:8009/ upgrade=websocket\n");
    assert!(
        e[0].contains("upgrade= cannot be honoured over AJP"),
        "{e:?}"
    );
    assert!(
        load("Listen 80\nProxyPass / ajp://127.0.0.1:8009/ secret=x ping=1 hcmethod=CPING\n")
            .is_empty()
    );
}

/// An upgrade request goes with its Upgrade and Connection headers, as mod_proxy_ajp sends
/// it; a container that switches protocols is answered 500 (AJP cannot carry the new
/// protocol; Apache answers 500 too), one that does not answers as usual.
#[test]
fn upgrades_cannot_cross_ajp() {
    let tomcat = container(|s| {
        if s.forward.uri.ends_with(b"/ws") {
            Answer {
                status: 101,
                headers: vec![("Upgrade".into(), "websocket".into())],
                ..answer("")
            }
        } else {
            answer("plain")
        }
    });
    let p = ajp_proxy(&[(&tomcat, "")], "");
    let upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    for (path, status, body) in [("/app/ws", 500, None), ("/app/page", 200, Some("plain"))] {
        let mut c = Client::connect(p.addrs[0]);
        c.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n{upgrade}\r\n").as_bytes());
        let r = c.read_response(false).unwrap();
        assert_eq!(r.status, status, "{path}");
        assert!(r.header("upgrade").is_none());
        if let Some(b) = body {
            assert_eq!(r.text(), b);
        }
        let seen = tomcat.last();
        assert_eq!(seen.header("upgrade").as_deref(), Some("websocket"));
        assert_eq!(seen.header("connection").as_deref(), Some("Upgrade"));
    }
}

/// A CPONG that does not come within `ping=`: the pooled connection is given up and the
/// request goes on a new one; a health check marks such a member out.
#[test]
fn a_cpong_that_does_not_come() {
    let tomcat = container(|_| answer("late"));
    let p = ajp_proxy(&[(&tomcat, "ping=300ms")], "");
    let mut c = Client::connect(p.addrs[0]);
    assert_eq!(c.get("/app/a").text(), "late");
    tomcat.mute_cping.store(true, Ordering::SeqCst);
    assert_eq!(c.get("/app/b").text(), "late");
    assert_eq!(
        tomcat.conns(),
        2,
        "a new connection after the unanswered CPING"
    );
    assert_eq!(tomcat.cpings.load(Ordering::SeqCst), 1);
    // The same silence to a CPING health check (bounded by the member's timeout).
    let checked = container(|_| answer("x"));
    checked.mute_cping.store(true, Ordering::SeqCst);
    let p = proxy(&format!(
        "Listen 127.0.0.1:0\n<Location /balancer-manager>\nSetHandler balancer-manager\nRequire local\n</Location>\nProxyPass /balancer-manager !\n<Proxy balancer://tomcat>\nBalancerMember ajp://127.0.0.1:{} hcmethod=CPING hcinterval=100ms timeout=1\n</Proxy>\nProxyPass /app balancer://tomcat/app\n",
        checked.port()
    ));
    let status = || {
        manager_state(&p)["balancers"][0]["members"][0]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    wait_until("the silent member is taken out", || status().contains('C'));
}
