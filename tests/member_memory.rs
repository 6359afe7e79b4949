//! What an idle pooled TLS connection to a member holds: the heap bytes live on the
//! worker's thread after 100 TLS member connections each made one exchange and went into
//! the pool's idle state (`release_buffers`), counted by a global allocator that counts
//! only the thread that asks it to (the in-test TLS server's threads are not counted).
//!
//! Not a timed test: a bound on bytes, like the size guards on connection tasks. The
//! measured figure is in bench/RESULTS.md (`cargo test --test member_memory -- --nocapture`
//! prints it).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ringproxy::transport::io::{read_more, write_all};
use ringproxy::transport::BackendStream;
use rustls::pki_types::pem::PemObject;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn counted() -> bool {
    COUNTED.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: every call goes to the system allocator unchanged; only a counter is kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if counted() {
            LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        }
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if counted() {
            LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        }
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if counted() {
            LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        }
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Per idle pooled TLS connection, at most this many heap bytes: rustls's client state
/// (keys, record layer, the member's certificate it keeps) without ciphertext buffers.
const BOUND: isize = 16 * 1024;

#[test]
fn an_idle_pooled_tls_member_connection_holds_little() {
    const N: usize = 100;
    let dir = Dir::new("member-memory");
    let cert = dir.cert("member", &["127.0.0.1"], false);
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&cert.key).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(ringproxy::transport::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der.clone()], key)
        .unwrap();
    let member = tls_backend(Arc::new(server), |_| ok("pooled"));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der.clone()).unwrap();
    let settings = ringproxy::transport::tls::client::ClientSettings {
        protocols: vec![&rustls::version::TLS13, &rustls::version::TLS12],
        tls12_suites: Vec::new(),
        tls13_suites: Vec::new(),
        verify: Default::default(),
        roots: Arc::new(roots),
        depth: None,
        check_name: true,
        check_expire: true,
        client_cert: None,
    };
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = ringproxy::transport::tls::client::member(&settings, name).unwrap();
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .unwrap();
    let per_conn = rt.block_on(async move {
        let t = Duration::from_secs(10);
        // One connection first, so that lazily made state (the session cache, the
        // runtime's own) is not counted against the others.
        let mut pool = Vec::with_capacity(N + 1);
        let open = || {
            let (addr, config, name) = (member.addr, tls.config.clone(), tls.name.clone());
            async move {
                let mut s = BackendStream::connect_tls(addr, t, false, config, name)
                    .await
                    .unwrap();
                let req = b"GET / HTTP/1.1\r\nHost: m\r\n\r\n".to_vec();
                write_all(&mut s, req, t).await.0.unwrap();
                let (r, buf) = read_more(&mut s, Vec::with_capacity(4096), 4096, t).await;
                assert!(r.unwrap() > 0 && buf.ends_with(b"pooled"));
                s.release_buffers();
                s
            }
        };
        pool.push(open().await);
        COUNTED.with(|c| c.set(true));
        let before = LIVE.load(Ordering::Relaxed);
        for _ in 0..N {
            let s = open().await;
            pool.push(s);
        }
        let after = LIVE.load(Ordering::Relaxed);
        COUNTED.with(|c| c.set(false));
        // The pool's own vector was sized first: what remains is the connections'.
        (after - before) / N as isize
    });
    println!("heap per idle pooled TLS member connection: {per_conn} bytes");
    assert!(
        per_conn < BOUND,
        "{per_conn} bytes per idle pooled TLS connection"
    );
}
