//! Test servers shared by ringload's integration tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A keep-alive server; `delay(n)` is how long request number n (from 0, whole server)
/// takes before its answer.
pub fn server(delay: impl Fn(u64) -> Duration + Send + Sync + 'static) -> SocketAddr {
    server_counted(delay).0
}

/// [`server`], with the count of requests it has read (counted before each answer).
pub fn server_counted(
    delay: impl Fn(u64) -> Duration + Send + Sync + 'static,
) -> (SocketAddr, Arc<AtomicU64>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let delay = Arc::new(delay);
    let count = Arc::new(AtomicU64::new(0));
    let answered = count.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let (delay, count) = (delay.clone(), count.clone());
            std::thread::spawn(move || {
                let _ = s.set_nodelay(true);
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                loop {
                    let Some(len) = read_request_head(&mut r) else {
                        return;
                    };
                    let mut body = vec![0; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    let n = count.fetch_add(1, Ordering::SeqCst);
                    let d = delay(n);
                    if !d.is_zero() {
                        std::thread::sleep(d);
                    }
                    if w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (addr, answered)
}

/// Reads one request head; returns its Content-Length (0 without one), or `None` once the
/// client has closed.
pub fn read_request_head(r: &mut impl BufRead) -> Option<usize> {
    let mut line = String::new();
    let mut len = 0;
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return None;
        }
        if line == "\r\n" {
            return Some(len);
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
}
