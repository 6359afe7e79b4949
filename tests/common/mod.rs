//! Shared helpers for end-to-end tests: in-test backends, a raw HTTP client, and ringproxy
//! started in-process on 127.0.0.1:0.
#![allow(dead_code)]

pub mod ajp;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringproxy::config::{load_str, LoadOptions};
use ringproxy::runtime::{self, DriverChoice, RunOptions, Server};

/// Bounded waits everywhere: a broken proxy fails a test instead of hanging it.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits, bounded, for a state the proxy reaches on its own (a health-check transition, a
/// park, a close) and that no event in the test announces.
pub fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A request as the backend saw it. Bodies over 1 MiB are counted, not kept.
#[derive(Clone, Debug, Default)]
pub struct SeenRequest {
    pub head: String,
    pub body_len: u64,
    pub body_sum: u64,
    pub body: Vec<u8>,
    /// For a TLS backend: the server name the client sent.
    pub sni: Option<String>,
    /// For a TLS backend: the client's certificate (DER), when it presented one.
    pub client_cert: Option<Vec<u8>>,
    /// For a TLS backend: the protocol version (`TLSv1_3`…).
    pub tls_version: Option<String>,
}

impl SeenRequest {
    pub fn request_line(&self) -> &str {
        self.head.lines().next().unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<String> {
        header_in(&self.head, name)
    }
}

/// The value of the first header `name` in a head (status or request line first).
pub fn header_in(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// What a backend does with a request.
pub enum Action {
    /// Write these bytes and keep the connection.
    Respond(Vec<u8>),
    /// Write these bytes, then close.
    RespondClose(Vec<u8>),
    /// Write these bytes, then end TLS with close_notify (a plain backend just closes).
    RespondCloseNotify(Vec<u8>),
    /// Wait, then act.
    Delay(Duration, Box<Action>),
    /// Close without answering.
    Close,
    /// Stream a body of `len` bytes with Content-Length.
    Stream(u64),
}

pub type Handler = Arc<dyn Fn(&SeenRequest) -> Action + Send + Sync>;

pub struct Backend {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    /// Connections that have ended (closed by the proxy, or by this backend).
    pub closed: Arc<AtomicUsize>,
    pub requests: Arc<Mutex<Vec<SeenRequest>>>,
    handler: Handler,
    /// Set for a TLS backend ([`tls_backend`]).
    tls: Option<Arc<rustls::ServerConfig>>,
    /// Set to stop: the listener closes (connects are refused) and open connections end.
    stop: Arc<std::sync::atomic::AtomicBool>,
    accept_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Backend {
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
    pub fn request_count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
    pub fn last(&self) -> SeenRequest {
        self.requests
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }
    /// The last request whose request line starts with `prefix` (health checks and other
    /// traffic may arrive in between).
    pub fn last_matching(&self, prefix: &str) -> Option<SeenRequest> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|r| r.request_line().starts_with(prefix))
            .cloned()
    }

    /// Stops listening: from now on connecting to its port is refused.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept_thread.lock().unwrap().take() {
            let _ = t.join();
        }
    }

    /// Listens again on the same port after `stop`.
    pub fn restart(&self) {
        self.stop.store(false, Ordering::SeqCst);
        let l = TcpListener::bind(self.addr).expect("rebind the same port");
        *self.accept_thread.lock().unwrap() = Some(self.spawn_accept(l));
    }

    fn spawn_accept(&self, l: TcpListener) -> std::thread::JoinHandle<()> {
        l.set_nonblocking(true).unwrap();
        let (conns, closed, reqs, handler, stop, tls) = (
            self.connections.clone(),
            self.closed.clone(),
            self.requests.clone(),
            self.handler.clone(),
            self.stop.clone(),
            self.tls.clone(),
        );
        std::thread::spawn(move || {
            // Non-blocking accept polled every millisecond, so `stop` can close the
            // listener promptly (a blocking accept cannot be interrupted).
            while !stop.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false).ok();
                        conns.fetch_add(1, Ordering::SeqCst);
                        let (h, r, st) = (handler.clone(), reqs.clone(), stop.clone());
                        let closed = closed.clone();
                        let tls = tls.clone();
                        std::thread::spawn(move || {
                            s.set_read_timeout(Some(IO_TIMEOUT)).ok();
                            match tls {
                                None => serve_backend(s, h, r, st),
                                Some(config) => {
                                    let conn = rustls::ServerConnection::new(config).unwrap();
                                    serve_backend(rustls::StreamOwned::new(conn, s), h, r, st);
                                }
                            }
                            closed.fetch_add(1, Ordering::SeqCst);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        })
    }
}

pub fn ok(body: &str) -> Action {
    Action::Respond(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

/// A backend that answers every request with `handler`.
pub fn backend(handler: impl Fn(&SeenRequest) -> Action + Send + Sync + 'static) -> Backend {
    backend_on("127.0.0.1:0".parse().unwrap(), handler)
}

/// A backend on a given address (port 0 for any).
pub fn backend_on(
    addr: SocketAddr,
    handler: impl Fn(&SeenRequest) -> Action + Send + Sync + 'static,
) -> Backend {
    start_backend(addr, Arc::new(handler), None)
}

/// A backend speaking HTTPS with `config` (a rustls server configuration made by the
/// test: its certificate, and whether it asks for a client certificate).
pub fn tls_backend(
    config: Arc<rustls::ServerConfig>,
    handler: impl Fn(&SeenRequest) -> Action + Send + Sync + 'static,
) -> Backend {
    tls_backend_on("127.0.0.1:0".parse().unwrap(), config, handler)
}

/// [`tls_backend`] on a given address (port 0 for any).
pub fn tls_backend_on(
    addr: SocketAddr,
    config: Arc<rustls::ServerConfig>,
    handler: impl Fn(&SeenRequest) -> Action + Send + Sync + 'static,
) -> Backend {
    start_backend(addr, Arc::new(handler), Some(config))
}

fn start_backend(
    addr: SocketAddr,
    handler: Handler,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Backend {
    let l = TcpListener::bind(addr).unwrap();
    let b = Backend {
        addr: l.local_addr().unwrap(),
        connections: Arc::new(AtomicUsize::new(0)),
        closed: Arc::new(AtomicUsize::new(0)),
        requests: Arc::new(Mutex::new(Vec::new())),
        handler,
        tls,
        stop: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        accept_thread: Mutex::new(None),
    };
    *b.accept_thread.lock().unwrap() = Some(b.spawn_accept(l));
    b
}

/// What a backend knows of its connection's TLS, for [`SeenRequest`].
trait BackendConn: Read + Write {
    /// The server name sent, the client's certificate, the protocol version.
    fn tls_facts(&self) -> (Option<String>, Option<Vec<u8>>, Option<String>) {
        (None, None, None)
    }
    /// Ends TLS with close_notify (nothing for a plain connection).
    fn close_notify(&mut self) {}
}

impl BackendConn for TcpStream {}

impl BackendConn for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn tls_facts(&self) -> (Option<String>, Option<Vec<u8>>, Option<String>) {
        let sni = self.conn.server_name().map(str::to_string);
        let cert = self
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec());
        let version = self.conn.protocol_version().map(|v| format!("{v:?}"));
        (sni, cert, version)
    }
    fn close_notify(&mut self) {
        self.conn.send_close_notify();
        let _ = self.conn.complete_io(&mut self.sock);
    }
}

/// A backend that answers with its own name.
pub fn named(name: &'static str) -> Backend {
    backend(move |_| ok(name))
}

fn serve_backend(
    s: impl BackendConn,
    h: Handler,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut r = BufReader::new(s);
    loop {
        let Some(mut req) = read_request(&mut r) else {
            return;
        };
        (req.sni, req.client_cert, req.tls_version) = r.get_ref().tls_facts();
        let w = r.get_mut();
        if stop.load(Ordering::SeqCst) {
            return; // a stopped backend answers nothing more
        }
        seen.lock().unwrap().push(req.clone());
        let mut action = h(&req);
        loop {
            match action {
                Action::Delay(d, next) => {
                    std::thread::sleep(d);
                    action = *next;
                }
                Action::Respond(b) => {
                    if w.write_all(&b).is_err() {
                        return;
                    }
                    break;
                }
                Action::RespondClose(b) => {
                    let _ = w.write_all(&b);
                    return;
                }
                Action::RespondCloseNotify(b) => {
                    let _ = w.write_all(&b);
                    w.close_notify();
                    return;
                }
                Action::Close => return,
                Action::Stream(len) => {
                    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
                    if w.write_all(head.as_bytes()).is_err() {
                        return;
                    }
                    let chunk = vec![b'x'; 64 * 1024];
                    let mut left = len;
                    while left > 0 {
                        let n = left.min(chunk.len() as u64) as usize;
                        if w.write_all(&chunk[..n]).is_err() {
                            return;
                        }
                        left -= n as u64;
                    }
                    break;
                }
            }
        }
    }
}

/// Reads head lines up to the blank line; bytes that are not UTF-8 (obs-text) read as
/// U+FFFD rather than failing the read.
fn read_head_lines(r: &mut impl BufRead) -> Option<String> {
    let mut head = String::new();
    loop {
        let mut line = Vec::new();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        if line == b"\r\n" && !head.is_empty() {
            return Some(head);
        }
        head.push_str(&String::from_utf8_lossy(&line));
    }
}

fn read_request(r: &mut impl BufRead) -> Option<SeenRequest> {
    let head = read_head_lines(r)?;
    let mut req = SeenRequest {
        head,
        ..Default::default()
    };
    let te = req.header("transfer-encoding").unwrap_or_default();
    let sink = |data: &[u8], req: &mut SeenRequest| {
        req.body_len += data.len() as u64;
        req.body_sum = data.iter().fold(req.body_sum, |a, &b| {
            a.wrapping_mul(31).wrapping_add(b as u64)
        });
        if req.body.len() < 1 << 20 {
            req.body.extend_from_slice(data);
        }
    };
    if te.to_ascii_lowercase().contains("chunked") {
        loop {
            let mut line = String::new();
            r.read_line(&mut line).ok()?;
            let size = usize::from_str_radix(line.trim().split(';').next()?, 16).ok()?;
            if size == 0 {
                // trailers
                read_trailers(r)?;
                break;
            }
            let mut buf = vec![0; size];
            r.read_exact(&mut buf).ok()?;
            sink(&buf, &mut req);
            let mut crlf = [0; 2];
            r.read_exact(&mut crlf).ok()?;
        }
    } else if let Some(len) = req.header("content-length") {
        let mut left: u64 = len.parse().ok()?;
        let mut buf = vec![0; 64 * 1024];
        while left > 0 {
            let n = (left as usize).min(buf.len());
            r.read_exact(&mut buf[..n]).ok()?;
            sink(&buf[..n], &mut req);
            left -= n as u64;
        }
    }
    Some(req)
}

fn read_trailers(r: &mut impl BufRead) -> Option<()> {
    loop {
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        if line == "\r\n" {
            return Some(());
        }
    }
}

/// A response as the client saw it.
#[derive(Debug, Default)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
    pub body_len: u64,
    /// The body ended early (connection closed before its framing said so).
    pub truncated: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<String> {
        header_in(&self.head, name)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A raw client connection.
pub struct Client {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).ok();
        stream.set_write_timeout(Some(IO_TIMEOUT)).ok();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Client { stream, reader }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    pub fn get(&mut self, path: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
        self.read_response(false).expect("response")
    }

    /// Reads one response; `head_request` = it answers a HEAD (no body).
    pub fn read_response(&mut self, head_request: bool) -> Option<Response> {
        read_response_from(&mut self.reader, head_request)
    }

    /// True when the proxy closed the connection (EOF, or reset).
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0) | Err(_))
    }
}

/// Reads one response from any byte stream (plain or TLS); `head_request` = it answers a
/// HEAD (no body).
pub fn read_response_from(reader: &mut impl BufRead, head_request: bool) -> Option<Response> {
    let head = read_head_lines(reader)?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut resp = Response {
        status,
        head,
        ..Default::default()
    };
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Some(resp);
    }
    let te = resp.header("transfer-encoding").unwrap_or_default();
    let keep = |data: &[u8], resp: &mut Response| {
        resp.body_len += data.len() as u64;
        if resp.body.len() < 1 << 20 {
            resp.body.extend_from_slice(data);
        }
    };
    if te.contains("chunked") {
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).ok()? == 0 {
                resp.truncated = true;
                return Some(resp);
            }
            let size = usize::from_str_radix(line.trim().split(';').next()?, 16).ok()?;
            if size == 0 {
                read_trailers(reader)?;
                break;
            }
            let mut buf = vec![0; size + 2];
            if reader.read_exact(&mut buf).is_err() {
                resp.truncated = true;
                return Some(resp);
            }
            keep(&buf[..size], &mut resp);
        }
    } else if let Some(len) = resp.header("content-length") {
        let mut left: u64 = len.parse().ok()?;
        let mut buf = vec![0; 64 * 1024];
        while left > 0 {
            let n = (left as usize).min(buf.len());
            match reader.read(&mut buf[..n]) {
                Ok(0) | Err(_) => {
                    resp.truncated = true;
                    return Some(resp);
                }
                Ok(got) => {
                    keep(&buf[..got], &mut resp);
                    left -= got as u64;
                }
            }
        }
    } else {
        let mut buf = Vec::new();
        let _ = reader.read_to_end(&mut buf);
        keep(&buf, &mut resp);
    }
    Some(resp)
}

/// Replaces `{B0}`, `{B1}`… with the backends' ports.
pub fn fill(template: &str, backends: &[&Backend]) -> String {
    let mut text = template.to_string();
    for (i, b) in backends.iter().enumerate() {
        text = text.replace(&format!("{{B{i}}}"), &b.port().to_string());
    }
    text
}

/// Starts ringproxy in-process with `config` (which should `Listen 127.0.0.1:0`).
pub fn proxy_with(config: &str, workers: usize, driver: DriverChoice) -> Server {
    let cfg = load_str(config, "test.conf", &LoadOptions::default())
        .unwrap_or_else(|e| panic!("config errors: {e:?}"));
    runtime::start(
        Arc::new(cfg),
        RunOptions {
            workers: Some(workers),
            driver,
            hold_accepts: false,
        },
    )
    .unwrap()
}

pub fn proxy(config: &str) -> Server {
    proxy_with(config, 2, DriverChoice::Auto)
}

/// A one-balancer config in front of the given backends with member parameters.
pub fn balancer_config(members: &[(&Backend, &str)], extra: &str) -> String {
    let mut text = String::from("Listen 127.0.0.1:0\nTimeout 5\n<Proxy balancer://c>\n");
    for (b, params) in members {
        text.push_str(&format!(
            "BalancerMember http://127.0.0.1:{} {params}\n",
            b.port()
        ));
    }
    text.push_str("</Proxy>\n");
    text.push_str(extra);
    text.push_str("\nProxyPass / balancer://c/\n");
    text
}

/// A WebSocket-like backend: answers the upgrade with 101, then echoes until EOF. Sends
/// each upgrade request head it saw.
pub fn upgrade_backend() -> (SocketAddr, mpsc::Receiver<String>) {
    upgrade_backend_with(None)
}

/// [`upgrade_backend`] speaking TLS with `config`.
pub fn tls_upgrade_backend(
    config: Arc<rustls::ServerConfig>,
) -> (SocketAddr, mpsc::Receiver<String>) {
    upgrade_backend_with(Some(config))
}

fn upgrade_backend_with(
    tls: Option<Arc<rustls::ServerConfig>>,
) -> (SocketAddr, mpsc::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let tx = tx.clone();
            let tls = tls.clone();
            std::thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_secs(10))).ok();
                match tls {
                    None => echo_after_upgrade(s, &tx),
                    Some(config) => {
                        let conn = rustls::ServerConnection::new(config).unwrap();
                        echo_after_upgrade(rustls::StreamOwned::new(conn, s), &tx);
                    }
                }
            });
        }
    });
    (addr, rx)
}

/// Reads a request head, answers 101 and echoes every byte after it.
fn echo_after_upgrade(s: impl BackendConn, heads: &mpsc::Sender<String>) {
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let _ = heads.send(head);
    let _ = r.get_mut().write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if r.get_mut().write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

pub fn read_head(r: &mut BufReader<TcpStream>) -> String {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert!(
            r.read_line(&mut line).unwrap() > 0,
            "closed in head: {head}"
        );
        head.push_str(&line);
        if line == "\r\n" {
            return head;
        }
    }
}

/// The value of one sample line (`name{labels}`) on the proxy's metrics page, which the
/// config serves at `/metrics`.
pub fn metric(p: &Server, line_prefix: &str) -> f64 {
    let page = Client::connect(p.addrs[0]).get("/metrics").text();
    page.lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line_prefix} in metrics:\n{page}"))
}

/// A self-signed certificate made for a test (RSA-2048 or ECDSA P-256), written to
/// `dir/STEM.crt` and `dir/STEM.key`.
pub struct TestCert {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    pub der: rustls::pki_types::CertificateDer<'static>,
}

pub fn self_signed(dir: &std::path::Path, stem: &str, names: &[&str], rsa: bool) -> TestCert {
    let alg = if rsa {
        &rcgen::PKCS_RSA_SHA256
    } else {
        &rcgen::PKCS_ECDSA_P256_SHA256
    };
    let key = rcgen::KeyPair::generate_for(alg).unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = rcgen::CertificateParams::new(names)
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let write = |ext: &str, text: String| {
        let p = dir.join(format!("{stem}.{ext}"));
        std::fs::write(&p, text).unwrap();
        p
    };
    TestCert {
        cert: write("crt", cert.pem()),
        key: write("key", key.serialize_pem()),
        der: cert.der().clone(),
    }
}

/// GET over TLS to 127.0.0.1:`port`, naming and trusting `cert` for `host`.
pub fn https_get(port: u16, cert: &TestCert, host: &str, path: &str) -> Response {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut tls = BufReader::new(rustls::StreamOwned::new(conn, sock));
    tls.get_mut()
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .unwrap();
    read_response_from(&mut tls, false).expect("a response over TLS")
}

/// A temporary directory for one test's files, removed at the end.
pub struct Dir(pub std::path::PathBuf);

impl Dir {
    pub fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("ringproxy-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    /// A self-signed certificate for `names` (RSA-2048 or ECDSA P-256).
    pub fn cert(&self, file: &str, names: &[&str], rsa: bool) -> TestCert {
        self_signed(&self.0, file, names, rsa)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// POSTs `form` to the balancer-manager (as JSON), with `extra_headers` (a Referer…).
pub fn manager_post(p: &Server, form: &str, extra_headers: &str) -> Response {
    let mut c = Client::connect(p.addrs[0]);
    c.send(
        format!(
            "POST /balancer-manager?json HTTP/1.1\r\nHost: lb.test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n{extra_headers}\r\n{form}",
            form.len()
        )
        .as_bytes(),
    );
    c.read_response(false).unwrap()
}

/// The balancer-manager's state as JSON.
pub fn manager_state(p: &Server) -> serde_json::Value {
    let r = Client::connect(p.addrs[0]).get("/balancer-manager?json");
    assert_eq!(r.status, 200);
    serde_json::from_str(&r.text()).unwrap()
}

/// Percent-encodes a form value.
pub fn url_enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const TOMCAT_HOME: &str = "/usr/share/tomcat10";
pub const TOMCAT_EXAMPLES: &str = "/usr/share/tomcat10-examples/examples";
pub const TOMCAT_SECRET: &str = "ringproxy-test-secret";

/// Whether the Tomcat packages are here; panics where they must be and are not.
pub fn tomcat_available() -> bool {
    let there = std::path::Path::new(TOMCAT_HOME)
        .join("bin/bootstrap.jar")
        .exists()
        && std::path::Path::new(TOMCAT_EXAMPLES).exists();
    if !there {
        assert!(
            std::env::var("RINGPROXY_TOMCAT_REQUIRED").is_err(),
            "RINGPROXY_TOMCAT_REQUIRED is set but tomcat10 and tomcat10-examples are not installed"
        );
        eprintln!("tomcat10 or tomcat10-examples not installed: the Tomcat test did not run");
    }
    there
}

/// One Tomcat 10 instance (AJP connector on loopback with a `secret`, `jvmRoute` = its
/// route, the examples webapp at /examples) from a `CATALINA_BASE` under `dir`; stopped
/// (killed) when dropped.
pub struct Tomcat {
    base: std::path::PathBuf,
    pub port: u16,
    route: &'static str,
    child: Option<std::process::Child>,
}

impl Tomcat {
    pub fn new(dir: &std::path::Path, route: &'static str) -> Tomcat {
        let base = dir.join(route);
        for d in ["conf", "logs", "temp", "work", "webapps", "probe"] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        // A page of the test's own: what a servlet reads of the request it got over AJP.
        std::fs::write(
            base.join("probe/probe.jsp"),
            "secure=<%= request.isSecure() %> scheme=<%= request.getScheme() %> name=<%= request.getServerName() %> port=<%= request.getServerPort() %> remote=<%= request.getRemoteAddr() %>\n",
        )
        .unwrap();
        let probe = base.join("probe").display().to_string();
        for f in ["web.xml", "catalina.properties", "logging.properties"] {
            std::fs::copy(
                std::path::Path::new(TOMCAT_HOME).join("etc").join(f),
                base.join("conf").join(f),
            )
            .unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(
            base.join("conf/server.xml"),
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector protocol="AJP/1.3" address="127.0.0.1" port="{port}" secret="{TOMCAT_SECRET}" redirectPort="8443"/>
    <Engine name="Catalina" defaultHost="localhost" jvmRoute="{route}">
      <Host name="localhost" appBase="webapps" unpackWARs="false" autoDeploy="false">
        <Context path="/examples" docBase="{TOMCAT_EXAMPLES}"/>
        <Context path="/probe" docBase="{probe}"/>
      </Host>
    </Engine>
  </Service>
</Server>
"#
            ),
        )
        .unwrap();
        let mut t = Tomcat {
            base,
            port,
            route,
            child: None,
        };
        t.start();
        t
    }

    /// Starts the JVM and waits (bounded) for the AJP connector: startup takes seconds on
    /// a busy 2-core machine, and the connector listens only once the webapp is deployed.
    pub fn start(&mut self) {
        let log = std::fs::File::create(self.base.join("logs/out.log")).unwrap();
        let child = std::process::Command::new("java")
            .arg("-cp")
            .arg(format!(
                "{TOMCAT_HOME}/bin/bootstrap.jar:{TOMCAT_HOME}/bin/tomcat-juli.jar"
            ))
            .arg(format!("-Dcatalina.home={TOMCAT_HOME}"))
            .arg(format!("-Dcatalina.base={}", self.base.display()))
            .arg(format!(
                "-Djava.io.tmpdir={}",
                self.base.join("temp").display()
            ))
            .arg("-Xshare:auto")
            .arg("org.apache.catalina.startup.Bootstrap")
            .arg("start")
            .stdout(std::process::Stdio::from(log.try_clone().unwrap()))
            .stderr(std::process::Stdio::from(log))
            .spawn()
            .expect("java");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            let log = std::fs::read_to_string(self.base.join("logs/out.log")).unwrap_or_default();
            assert!(
                std::time::Instant::now() < deadline,
                "Tomcat {} did not start:\n{log}",
                self.route
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Tomcat {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port on 127.0.0.1 that nothing listened on a moment ago (for a configuration that
/// must name its port before the server starts).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the ringproxy binary on `conf` with one worker and waits (bounded) until
/// 127.0.0.1:`port` accepts connections.
pub fn start_binary(conf: &std::path::Path, port: u16) -> std::process::Child {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_ringproxy"))
        .arg("-f")
        .arg(conf)
        .arg("--workers")
        .arg("1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    while TcpStream::connect(addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "ringproxy did not start on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}
