//! A small AJP/1.3 container for tests: the protocol as Tomcat speaks it (the first body
//! packet unasked when the request has a length, the rest by GET_BODY_CHUNK; the response
//! as SEND_HEADERS, SEND_BODY_CHUNKs, END_RESPONSE; CPONG for CPING).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ringproxy::upstream::ajp::codec::{decode_forward, DecodedForward};

use super::IO_TIMEOUT;

/// What the container saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub forward: DecodedForward,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<String> {
        self.forward
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
    /// A named request attribute (`AJP_REMOTE_PORT`…) or a coded one's value.
    pub fn attribute(&self, code: u8) -> Vec<String> {
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
pub struct Answer {
    pub status: u16,
    pub reason: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub reuse: bool,
    /// Raw bytes instead of an answer (a broken container).
    pub raw: Option<Vec<u8>>,
    /// Close after the head and this many body bytes.
    pub cut_after: Option<usize>,
    /// Close after a complete answer that said the connection may be reused (a container
    /// that dropped an idle connection).
    pub close_after: bool,
    /// Send the head and this many body bytes, wait at the barrier (the test has read
    /// them), then the rest.
    pub pause: Option<(usize, Arc<std::sync::Barrier>)>,
}

pub fn answer(body: &str) -> Answer {
    Answer {
        status: 200,
        reason: "",
        headers: vec![("Content-Type".into(), "text/plain".into())],
        body: body.as_bytes().to_vec(),
        reuse: true,
        raw: None,
        cut_after: None,
        close_after: false,
        pause: None,
    }
}

pub struct Container {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub connections: Arc<AtomicUsize>,
    pub cpings: Arc<AtomicUsize>,
    /// Set: CPINGs are counted and left unanswered (a container that hangs).
    pub mute_cping: Arc<std::sync::atomic::AtomicBool>,
}

impl Container {
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a request")
    }
    pub fn conns(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

pub fn container(handler: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> Container {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let cpings = Arc::new(AtomicUsize::new(0));
    let mute_cping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handler = Arc::new(handler);
    let (s2, c2, p2, m2) = (
        seen.clone(),
        connections.clone(),
        cpings.clone(),
        mute_cping.clone(),
    );
    std::thread::spawn(move || {
        for sock in l.incoming().flatten() {
            c2.fetch_add(1, Ordering::SeqCst);
            let (seen, handler, pings, mute) =
                (s2.clone(), handler.clone(), p2.clone(), m2.clone());
            std::thread::spawn(move || serve(sock, &*handler, &seen, &pings, &mute));
        }
    });
    Container {
        addr,
        seen,
        connections,
        cpings,
        mute_cping,
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
    mute: &std::sync::atomic::AtomicBool,
) {
    s.set_read_timeout(Some(IO_TIMEOUT)).ok();
    while let Some(p) = read_packet(&mut s) {
        if p == [10] {
            cpings.fetch_add(1, Ordering::SeqCst);
            if !mute.load(Ordering::SeqCst) {
                let _ = s.write_all(&packet(&[9]));
            }
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
        for (i, chunk) in body.chunks(8184).enumerate() {
            if let Some((n, barrier)) = &a.pause {
                if i * 8184 == *n {
                    if s.write_all(&out).is_err() {
                        return;
                    }
                    out.clear();
                    barrier.wait();
                }
            }
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
