//! `ajp://` members end to end, against a small AJP container written here (the protocol
//! as Tomcat speaks it: the first body packet unasked when the request has a length, the
//! rest by GET_BODY_CHUNK, the response as SEND_HEADERS, SEND_BODY_CHUNKs, END_RESPONSE).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use ringproxy::upstream::ajp::codec::{decode_forward, DecodedForward};

/// What the container saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    forward: DecodedForward,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<String> {
        self.forward
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
    /// A named request attribute (`AJP_REMOTE_PORT`…) or a coded one's value.
    fn attribute(&self, code: u8) -> Vec<String> {
        self.forward
            .attributes
            .iter()
            .filter(|(c, _)| *c == code)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }
}

/// What the container answers.
#[derive(Clone)]
struct Answer {
    status: u16,
    reason: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    reuse: bool,
    /// Raw bytes instead of an answer (a broken container).
    raw: Option<Vec<u8>>,
    /// Close after the head and this many body bytes.
    cut_after: Option<usize>,
    /// Close after a complete answer that said the connection may be reused (a container
    /// that dropped an idle connection).
    close_after: bool,
}

fn answer(body: &str) -> Answer {
    Answer {
        status: 200,
        reason: "",
        headers: vec![("Content-Type".into(), "text/plain".into())],
        body: body.as_bytes().to_vec(),
        reuse: true,
        raw: None,
        cut_after: None,
        close_after: false,
    }
}

struct Container {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<AtomicUsize>,
    cpings: Arc<AtomicUsize>,
}

impl Container {
    fn port(&self) -> u16 {
        self.addr.port()
    }
    fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a request")
    }
    fn conns(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn container(handler: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> Container {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let cpings = Arc::new(AtomicUsize::new(0));
    let handler = Arc::new(handler);
    let (s2, c2, p2) = (seen.clone(), connections.clone(), cpings.clone());
    std::thread::spawn(move || {
        for sock in l.incoming().flatten() {
            c2.fetch_add(1, Ordering::SeqCst);
            let (seen, handler, pings) = (s2.clone(), handler.clone(), p2.clone());
            std::thread::spawn(move || serve(sock, &*handler, &seen, &pings));
        }
    });
    Container {
        addr,
        seen,
        connections,
        cpings,
    }
}

/// One packet towards the container (`0x12 0x34`, length, payload).
fn read_packet(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut h = [0u8; 4];
    s.read_exact(&mut h).ok()?;
    assert_eq!(&h[..2], &[0x12, 0x34], "magic");
    let mut p = vec![0u8; usize::from(u16::from_be_bytes([h[2], h[3]]))];
    s.read_exact(&mut p).ok()?;
    Some(p)
}

fn packet(payload: &[u8]) -> Vec<u8> {
    let mut p = b"AB".to_vec();
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn string(s: &[u8]) -> Vec<u8> {
    let mut v = (s.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(s);
    v.push(0);
    v
}

/// A body packet's data (after its own length field).
fn body_data(p: &[u8]) -> Vec<u8> {
    p.get(2..).map(<[u8]>::to_vec).unwrap_or_default()
}

fn serve(
    mut s: TcpStream,
    handler: &(dyn Fn(&Seen) -> Answer + Send + Sync),
    seen: &Mutex<Vec<Seen>>,
    cpings: &AtomicUsize,
) {
    s.set_read_timeout(Some(IO_TIMEOUT)).ok();
    while let Some(p) = read_packet(&mut s) {
        if p == [10] {
            cpings.fetch_add(1, Ordering::SeqCst);
            let _ = s.write_all(&packet(&[9]));
            continue;
        }
        let forward = decode_forward(&p).expect("a FORWARD_REQUEST");
        let length: Option<usize> = forward
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(b"content-length"))
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok());
        let mut body = Vec::new();
        match length {
            // The first packet comes unasked; the rest when asked for.
            Some(n) if n > 0 => {
                body.extend(body_data(&read_packet(&mut s).unwrap_or_default()));
                while body.len() < n {
                    s.write_all(&packet(&[6, 0x1F, 0xFA])).unwrap();
                    let chunk = body_data(&read_packet(&mut s).unwrap_or_default());
                    if chunk.is_empty() {
                        break;
                    }
                    body.extend(chunk);
                }
            }
            Some(_) => {}
            // No length: asked for until an empty packet (a servlet reading the body).
            None => loop {
                s.write_all(&packet(&[6, 0x1F, 0xFA])).unwrap();
                let chunk = body_data(&read_packet(&mut s).unwrap_or_default());
                if chunk.is_empty() {
                    break;
                }
                body.extend(chunk);
            },
        }
        let req = Seen { forward, body };
        seen.lock().unwrap().push(req.clone());
        let a = handler(&req);
        if let Some(raw) = a.raw {
            let _ = s.write_all(&raw);
            return;
        }
        let mut head = vec![4];
        head.extend(a.status.to_be_bytes());
        head.extend(string(a.reason.as_bytes()));
        head.extend((a.headers.len() as u16).to_be_bytes());
        for (n, v) in &a.headers {
            head.extend(string(n.as_bytes()));
            head.extend(string(v.as_bytes()));
        }
        let mut out = packet(&head);
        let body: &[u8] = match a.cut_after {
            Some(n) => &a.body[..n],
            None => &a.body,
        };
        for chunk in body.chunks(8184) {
            let mut m = vec![3];
            m.extend((chunk.len() as u16).to_be_bytes());
            m.extend(chunk);
            m.push(0);
            out.extend(packet(&m));
        }
        if a.cut_after.is_some() {
            let _ = s.write_all(&out);
            return;
        }
        out.extend(packet(&[5, u8::from(a.reuse)]));
        if s.write_all(&out).is_err() || !a.reuse || a.close_after {
            return;
        }
    }
}

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
    // Closed in the middle of the body: the client's body is not complete and its
    // connection closes (no terminating chunk).
    let mut c = Client::connect(p.addrs[0]);
    let r = c.get("/app/cut");
    assert_eq!(r.status, 200);
    assert!(r.truncated, "a cut body must not look complete");
    assert!(c.is_closed());
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
