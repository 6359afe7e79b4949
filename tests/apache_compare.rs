//! The `tests/configs/` vhosts run through Debian's Apache 2.4 and through ringproxy, side
//! by side. Each request goes to both. They must agree on what the client gets back: status,
//! the member that answered, and the headers Apache's modules add (Set-Cookie from the sticky
//! recipe, Location, `Header set`, Upgrade). They must also agree on what the member receives:
//! request line, Host, X-Forwarded-For/-Host/-Server.
//!
//! Only 2xx bodies are compared, since error pages are each server's own. Headers that
//! ringproxy adds on purpose (X-Forwarded-Proto, README "Where ringproxy differs") are not
//! compared, and neither are handlers that only ringproxy has (`SetHandler metrics`).
//!
//! Needs `/usr/sbin/apache2` (Debian's `apache2` package). Without it the test says so and
//! passes, unless `RINGPROXY_APACHE_REQUIRED=1` is set. `.ci/run` installs the package and
//! sets that variable, so in CI the comparison always runs.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const APACHE: &str = "/usr/sbin/apache2";
const MODULES: &str = "/usr/lib/apache2/modules";

/// The modules ringproxy stands in for, loaded into Apache so `<IfModule>` takes the same
/// branches in both.
const LOAD: &[(&str, &str)] = &[
    ("mpm_event_module", "mod_mpm_event.so"),
    ("authz_core_module", "mod_authz_core.so"),
    ("authz_host_module", "mod_authz_host.so"),
    ("access_compat_module", "mod_access_compat.so"),
    ("headers_module", "mod_headers.so"),
    ("status_module", "mod_status.so"),
    ("rewrite_module", "mod_rewrite.so"),
    ("proxy_module", "mod_proxy.so"),
    ("proxy_http_module", "mod_proxy_http.so"),
    ("proxy_wstunnel_module", "mod_proxy_wstunnel.so"),
    ("proxy_ajp_module", "mod_proxy_ajp.so"),
    ("proxy_balancer_module", "mod_proxy_balancer.so"),
    ("proxy_hcheck_module", "mod_proxy_hcheck.so"),
    ("slotmem_shm_module", "mod_slotmem_shm.so"),
    ("lbmethod_byrequests_module", "mod_lbmethod_byrequests.so"),
    ("lbmethod_bybusyness_module", "mod_lbmethod_bybusyness.so"),
    ("lbmethod_bytraffic_module", "mod_lbmethod_bytraffic.so"),
    ("alias_module", "mod_alias.so"),
    ("mime_module", "mod_mime.so"),
    ("dir_module", "mod_dir.so"),
    ("autoindex_module", "mod_autoindex.so"),
    ("socache_shmcb_module", "mod_socache_shmcb.so"),
    ("ssl_module", "mod_ssl.so"),
];

/// Apache cannot listen on port 0, so each Apache gets a port the kernel handed out and
/// that was released again; an in-process ringproxy of another test, binding port 0 at that
/// moment, could take it and answer in Apache's place. The comparisons run one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether the comparison can run here; panics where it must run and cannot.
fn apache_available() -> bool {
    if Path::new(APACHE).exists() {
        return true;
    }
    if std::env::var_os("RINGPROXY_APACHE_REQUIRED").is_some_and(|v| v == "1") {
        panic!("{APACHE} is missing and RINGPROXY_APACHE_REQUIRED=1: install Debian's apache2");
    }
    eprintln!(
        "apache_compare: {APACHE} not installed; comparison not run (apt-get install apache2)"
    );
    false
}

/// One Apache 2.4 (event MPM, one child process) running a corpus config in the foreground
/// on a port of its own; stopped with SIGTERM on drop.
struct Apache {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Apache {
    fn start(name: &str, config: &str) -> Apache {
        let dir = std::env::temp_dir().join(format!(
            "ringproxy-apache-{}-{}",
            std::process::id(),
            name.trim_end_matches(".conf")
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Apache refuses port 0: take a free port from the kernel and hand it over.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let d = dir.display();
        let mut text = String::new();
        for (module, file) in LOAD {
            text.push_str(&format!("LoadModule {module} {MODULES}/{file}\n"));
        }
        text.push_str(&format!(
            "DefaultRuntimeDir {d}\nPidFile {d}/apache.pid\nErrorLog {d}/error.log\nLogLevel warn\n\
             StartServers 1\nServerLimit 1\nThreadsPerChild 16\nMaxRequestWorkers 16\n\
             MinSpareThreads 1\nMaxSpareThreads 16\nTimeout 10\nTypesConfig /etc/mime.types\n"
        ));
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            text.push_str("User nobody\nGroup nogroup\n");
        }
        text.push_str(&config.replace("Listen 127.0.0.1:0", &format!("Listen {addr}")));
        let conf = dir.join("httpd.conf");
        std::fs::write(&conf, text).unwrap();
        let mut child = Command::new(APACHE)
            .arg("-f")
            .arg(&conf)
            .arg("-DFOREGROUND")
            .env("APACHE_LOG_DIR", &dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Apache announces nothing on its own socket: ready is "accepts a connection",
        // polled within a bound, failing at once if it exited.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                panic!("apache2 exited ({status}) with {name}:\n{err}\n{log}");
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "apache2 did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Apache { child, addr, dir }
    }
}

impl Drop for Apache {
    fn drop(&mut self) {
        // SIGTERM lets Apache stop its child process too (SIGKILL would orphan it).
        // SAFETY: kill on our own child's PID.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A member that answers with its name and what it was sent, so one body says which member
/// answered and how the proxy rewrote the request.
fn echoing(name: &'static str) -> Backend {
    backend(move |req| {
        let h = |n: &str| req.header(n).unwrap_or_else(|| "-".into());
        ok(&format!(
            "{name}|{}|host={}|xff={}|xfh={}|xfs={}",
            req.request_line(),
            h("host"),
            h("x-forwarded-for"),
            h("x-forwarded-host"),
            h("x-forwarded-server"),
        ))
    })
}

/// What a client and a member observe for one request.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    status: u16,
    headers: Vec<(String, Option<String>)>,
    body: Option<String>,
}

const COMPARED_HEADERS: &[&str] = &[
    "set-cookie",
    "location",
    "x-choice",
    "upgrade",
    "content-type",
    "content-range",
    "accept-ranges",
];

/// Headers that describe a body: compared on successful answers only.
const CONTENT_HEADERS: &[&str] = &["content-type", "content-range", "accept-ranges"];

/// One connection to a server under test, plain or TLS.
trait Conn {
    fn send(&mut self, bytes: &[u8]);
    fn response(&mut self, head_request: bool) -> Option<Response>;
}

impl<T: Read + Write> Conn for BufReader<T> {
    fn send(&mut self, bytes: &[u8]) {
        self.get_mut().write_all(bytes).unwrap();
    }
    fn response(&mut self, head_request: bool) -> Option<Response> {
        read_response_from(self, head_request)
    }
}

/// A connection to `addr`; over TLS naming `sni` (any certificate accepted: the comparison
/// is about HTTP, and both servers present the same test certificate).
fn open(addr: SocketAddr, sni: Option<&str>) -> Box<dyn Conn> {
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let Some(name) = sni else {
        return Box::new(BufReader::new(sock));
    };
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(
            ringproxy::transport::tls::AnyCertificate::new(provider),
        ))
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    Box::new(BufReader::new(rustls::StreamOwned::new(conn, sock)))
}

/// Sends each request in order on one keep-alive connection (a new one after the server
/// closed it), so byrequests sees the same sequence on both servers. `sni`: over TLS.
fn exchange(addr: SocketAddr, requests: &[Vec<u8>], sni: Option<&str>) -> Vec<Observed> {
    let mut conn: Option<Box<dyn Conn>> = None;
    let mut out = Vec::new();
    for req in requests {
        let c = conn.get_or_insert_with(|| open(addr, sni));
        c.send(req);
        let r = c
            .response(req.starts_with(b"HEAD "))
            .unwrap_or_else(|| panic!("no response from {addr} to {:?}", first_line(req)));
        if r.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
        {
            conn = None;
        }
        out.push(Observed {
            status: r.status,
            headers: COMPARED_HEADERS
                .iter()
                // Error pages are each server's own (Apache's HTML, ringproxy's text):
                // their framing headers are not compared.
                .filter(|h| (200..300).contains(&r.status) || !CONTENT_HEADERS.contains(h))
                .map(|h| (h.to_string(), r.header(h).map(|v| normalize(&v, addr))))
                .collect(),
            body: (200..300)
                .contains(&r.status)
                .then(|| normalize(&r.text(), addr)),
        });
    }
    out
}

/// The listening port differs on purpose between the two runs, and so do the session ids a
/// servlet container makes (32 hexadecimal digits).
fn normalize(text: &str, addr: SocketAddr) -> String {
    let text = text.replace(&addr.port().to_string(), "PORT");
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    for ch in text.chars() {
        if ch.is_ascii_hexdigit() && !ch.is_ascii_lowercase() {
            run.push(ch);
            continue;
        }
        out.push_str(if run.len() == 32 { "SESSIONID" } else { &run });
        run.clear();
        out.push(ch);
    }
    out.push_str(if run.len() == 32 { "SESSIONID" } else { &run });
    out
}

fn first_line(req: &[u8]) -> String {
    String::from_utf8_lossy(req)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn get(path: &str, host: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n").into_bytes()
}

fn corpus(name: &str) -> String {
    let path = format!("{}/tests/configs/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Runs `requests` through Apache and ringproxy with the same config and returns every
/// request on which they disagree.
fn differences(name: &str, config: &str, requests: &[Vec<u8>]) -> Vec<String> {
    differences_over(name, config, requests, None)
}

/// [`differences`], over TLS naming `sni` when given.
fn differences_over(
    name: &str,
    config: &str,
    requests: &[Vec<u8>],
    sni: Option<&str>,
) -> Vec<String> {
    // Host headers name the listening port; each server gets its own.
    let for_addr = |addr: SocketAddr| -> Vec<Vec<u8>> {
        requests
            .iter()
            .map(|r| {
                String::from_utf8_lossy(r)
                    .replace("{PORT}", &addr.port().to_string())
                    .into_bytes()
            })
            .collect()
    };
    let apache = Apache::start(name, config);
    let from_apache = exchange(apache.addr, &for_addr(apache.addr), sni);
    drop(apache);
    // Apache reads `${APACHE_LOG_DIR}` from its environment (set when it starts); ringproxy
    // runs in this process, so the same value is given as a Define.
    let log_dir = std::env::temp_dir().display().to_string();
    let p = proxy(&format!("Define APACHE_LOG_DIR {log_dir}\n{config}"));
    let from_ringproxy = exchange(p.addrs[0], &for_addr(p.addrs[0]), sni);
    p.shutdown();
    p.join();
    requests
        .iter()
        .zip(from_apache.iter().zip(&from_ringproxy))
        .filter(|(_, (a, r))| a != r)
        .map(|(req, (a, r))| {
            format!(
                "{name}: {}\n  apache:    {a:?}\n  ringproxy: {r:?}",
                first_line(req)
            )
        })
        .collect()
}

/// [`differences`] for a corpus file whose `{B0}`/`{B1}` members are two echoing backends
/// with these names.
fn corpus_differences(name: &str, members: [&'static str; 2], requests: &[Vec<u8>]) -> Vec<String> {
    let (b0, b1) = (echoing(members[0]), echoing(members[1]));
    differences(name, &fill(&corpus(name), &[&b0, &b1]), requests)
}

#[test]
fn corpus_vhosts_answer_as_apache_does() {
    let _one_at_a_time = serial();
    if !apache_available() {
        return;
    }
    let h = "127.0.0.1:{PORT}";
    let mut diffs = Vec::new();

    diffs.extend(corpus_differences(
        "sticky-recipe.conf",
        ["one", "two"],
        &[
            get("/", h, ""),
            get("/a", h, ""),
            get("/b", h, "Cookie: ROUTEID=.2\r\n"),
            get("/c", h, "Cookie: ROUTEID=.1\r\n"),
            get("/d", h, "Cookie: ROUTEID=.9\r\n"),
            get("/e", "lb.example.com", "Cookie: other=x; ROUTEID=.2\r\n"),
        ],
    ));

    diffs.extend(corpus_differences(
        "proxypass-line-params.conf",
        ["tc1", "tc2"],
        &[
            get("/app/page;jsessionid=ABC123.tc2", h, ""),
            get("/app/page", h, "Cookie: JSESSIONID=XYZ.tc1\r\n"),
            get("/app/page?jsessionid=Q.tc2", h, ""),
            get("/app/x", h, ""),
            get("/app/y", h, ""),
            get("/other", h, ""),
        ],
    ));

    diffs.extend(corpus_differences(
        "old-style-access.conf",
        ["internal", "public"],
        &[
            get("/balancer-manager", h, ""),
            get("/status-by-name?auto", h, ""),
            get("/status-not-by-name?auto", h, ""),
            get("/status-either?auto", h, ""),
            get("/internal/x", h, ""),
            get("/x?y=1", h, ""),
        ],
    ));

    diffs.extend(corpus_differences(
        "ifmodule-choice.conf",
        ["balanced", "fallback"],
        &[get("/", h, ""), get("/z", "example.com", "")],
    ));

    diffs.extend(corpus_differences(
        "full-vhost.conf",
        ["web", "spare"],
        &[
            get("/page", "www.example.com", ""),
            get(
                "/page?q=1",
                "shop.example.org",
                "X-Forwarded-For: 192.0.2.1\r\n",
            ),
            get("/static/logo.png", "example.com", ""),
        ],
    ));

    // The front door: each spelling of a path meets the rules of its plain form, and the
    // member receives the same canonical path from both.
    diffs.extend(corpus_differences(
        "front-door.conf",
        ["examples", "manager"],
        &[
            "/examples/x",
            "/examples/../manager/html",
            "/examples/%2e%2e/manager/html",
            "//examples//a/./b",
            "/examples/%41%62c",
            "/examples/a%20b?q=%20x",
            "/examples/caf%c3%a9",
            "/examples/a%3Fb",
            "/examples/x;jsessionid=1.n1",
            "/%7Euser/x",
            "/examplesx",
            "/private/x",
            "//private/x",
            "/x/../private/x",
            "/%70rivate/x",
            "/%2570rivate",
            "/internal/x",
            "/%69nternal/x",
            "//internal",
            "/internalx",
            "/..",
            "/%2e%2e/etc/passwd",
            "/examples/%2fx",
            "/examples/%00x",
            "/examples/%zz",
            "/manager",
            "/managerx",
            "/hidden",
            "/hidden/a",
            "/x/../hidden/a",
            "/%68idden/a",
            "/hiddenx",
            "/a/b.secret",
            "/a/b.%73ecret",
            "/a/b.secretx",
        ]
        // One connection each: Apache closes after a 400 without saying so.
        .map(|p| get(p, h, "Connection: close\r\n")),
    ));
    // Hosts: valid ones agree; a list, a space, `/`, `@` or a bare number is 400 in both.
    diffs.extend(corpus_differences(
        "front-door.conf",
        ["examples", "manager"],
        &[
            get("/examples/h", "Front.Example.", "Connection: close\r\n"),
            get("/examples/h", "[::1]:8080", "Connection: close\r\n"),
            get("/examples/h", "a, b", "Connection: close\r\n"),
            get("/examples/h", "a/b", "Connection: close\r\n"),
            get("/examples/h", "user@front.example", "Connection: close\r\n"),
            get("/examples/h", "12345", "Connection: close\r\n"),
            get("/examples/h", "a..b", "Connection: close\r\n"),
        ],
    ));

    // HTTPS through mod_ssl and through ringproxy, with the same certificate.
    let certs = std::env::temp_dir().join(format!("ringproxy-apache-certs-{}", std::process::id()));
    std::fs::create_dir_all(&certs).unwrap();
    self_signed(&certs, "site", &["secure.example.com"], false);
    // Apache's workers read the files after dropping to `nobody`.
    for f in ["site.crt", "site.key"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(certs.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let (s0, s1) = (echoing("s0"), echoing("s1"));
    let tls_config = fill(&corpus("tls-site.conf"), &[&s0, &s1])
        .replace("{CERTDIR}", &certs.display().to_string());
    let sh = "secure.example.com:{PORT}";
    diffs.extend(differences_over(
        "tls-site.conf",
        &tls_config,
        &[
            get("/a", sh, ""),
            get("/b", sh, ""),
            get("/old/page?x=1", sh, ""),
            get("/c", "www.secure.example.com", ""),
        ],
        Some("secure.example.com"),
    ));
    // And not by failing alike: the site answers, and the redirect is to https.
    let p = proxy(&tls_config);
    let port = p.addrs[0].port().to_string();
    let seen = exchange(
        p.addrs[0],
        &[
            get("/a", &sh.replace("{PORT}", &port), ""),
            get("/old/x", &sh.replace("{PORT}", &port), ""),
        ],
        Some("secure.example.com"),
    );
    assert_eq!(seen[0].status, 200, "{seen:?}");
    assert_eq!(
        (seen[1].status, seen[1].headers[1].1.as_deref()),
        (301, Some("https://secure.example.com:PORT/new/x")),
        "{seen:?}"
    );
    p.shutdown();
    p.join();
    let _ = std::fs::remove_dir_all(&certs);

    let (ws_addr, _heads) = upgrade_backend();
    let app = echoing("app");
    let ws_config = corpus("websocket-rewrite.conf")
        .replace("{B0}", &ws_addr.port().to_string())
        .replace("{B1}", &app.port().to_string());
    diffs.extend(differences(
        "websocket-rewrite.conf",
        &ws_config,
        &[
            get("/chat/room1", h, ""),
            get("/old/page?x=1", h, ""),
            get("/old/page", "www.example.com", ""),
            get("/private/data", h, ""),
        ],
    ));
    // The upgrade itself: 101 from both, and bytes echoed through the tunnel.
    let upgrade = b"GET /chat/room1 HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let tunnel = |addr: SocketAddr| -> (String, Vec<u8>) {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        w.write_all(upgrade).unwrap();
        let status = read_head(&mut r)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        w.write_all(b"ping-through-the-tunnel").unwrap();
        let mut back = vec![0u8; 23];
        r.read_exact(&mut back).unwrap();
        (status, back)
    };
    let apache = Apache::start("websocket-tunnel", &ws_config);
    let through_apache = tunnel(apache.addr);
    drop(apache);
    let p = proxy(&ws_config);
    let through_ringproxy = tunnel(p.addrs[0]);
    p.shutdown();
    p.join();
    if through_apache != through_ringproxy {
        diffs.push(format!(
            "websocket tunnel\n  apache:    {through_apache:?}\n  ringproxy: {through_ringproxy:?}"
        ));
    }

    assert!(
        diffs.is_empty(),
        "ringproxy and Apache disagree on {} request(s):\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

/// The AJP vhost through Apache's mod_proxy_ajp and through ringproxy, against the same
/// two Tomcats: same statuses, cookies (routes), Location headers and bodies.
#[test]
fn ajp_vhost_answers_as_apache_does() {
    let _one_at_a_time = serial();
    if !apache_available() || !tomcat_available() {
        return;
    }
    let dir = Dir::new("compare-tomcat");
    let (t1, t2) = (Tomcat::new(&dir.0, "node1"), Tomcat::new(&dir.0, "node2"));
    let config = corpus("ajp-tomcat.conf")
        .replace("{B0}", &t1.port.to_string())
        .replace("{B1}", &t2.port.to_string());
    let h = "127.0.0.1:{PORT}";
    let s = "/examples/servlets/servlet";
    let form = "firstname=Ada&lastname=Lovelace";
    let head = |path: &str, extra: &str| {
        format!("HEAD {path} HTTP/1.1\r\nHost: {h}\r\n{extra}\r\n").into_bytes()
    };
    let requests = vec![
        get(&format!("{s}/HelloWorldExample"), h, ""),
        get(&format!("{s}/HelloWorldExample"), h, ""),
        // Tomcat's own redirect to the context root.
        get("/examples", h, ""),
        // New sessions (their pages show times: only the head is compared), a session on a
        // node by cookie, and by URL.
        head(&format!("{s}/SessionExample"), ""),
        head(&format!("{s}/SessionExample"), ""),
        head(
            &format!("{s}/SessionExample"),
            "Cookie: JSESSIONID=0123456789ABCDEF0123456789ABCDEF.node2\r\n",
        ),
        head(
            &format!("{s}/SessionExample;jsessionid=0123456789ABCDEF0123456789ABCDEF.node1"),
            "",
        ),
        format!(
            "POST {s}/RequestParamExample HTTP/1.1\r\nHost: {h}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        )
        .into_bytes(),
        get(&format!("{s}/RequestInfoExample"), h, ""),
        get("/examples/no-such-page", h, ""),
    ];
    let diffs = differences("ajp-tomcat.conf", &config, &requests);
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    // A WebSocket upgrade cannot cross AJP: Tomcat switches protocols and both answer 500
    // (Apache's answer also carries Tomcat's `Upgrade` header, which is not compared).
    let upgrade = [get(
        "/examples/websocket/echoProgrammatic",
        h,
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
    )];
    let statuses = |addr: SocketAddr| -> Vec<u16> {
        let reqs: Vec<Vec<u8>> = upgrade
            .iter()
            .map(|r| {
                String::from_utf8_lossy(r)
                    .replace("{PORT}", &addr.port().to_string())
                    .into_bytes()
            })
            .collect();
        exchange(addr, &reqs, None)
            .iter()
            .map(|o| o.status)
            .collect()
    };
    let apache = Apache::start("ajp-upgrade", &config);
    let from_apache = statuses(apache.addr);
    drop(apache);
    // Equal, and not because both failed.
    let p = proxy(&config);
    assert_eq!(statuses(p.addrs[0]), from_apache);
    assert_eq!(from_apache, [500]);
    let r = Client::connect(p.addrs[0]).get(&format!("{s}/HelloWorldExample"));
    assert!(
        r.status == 200 && r.text().contains("Hello World!"),
        "{}",
        r.head
    );
    let r = Client::connect(p.addrs[0]).get("/examples");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location").as_deref(), Some("/examples/"));
}

/// Files Apache serves itself next to the proxied paths (`ProxyPass /static !` beside a
/// DocumentRoot or an Alias), with mod_alias redirects: the same answers from both.
#[test]
fn static_files_and_redirects_answer_as_apache_does() {
    let _one_at_a_time = serial();
    if !apache_available() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ringproxy-static-compare-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for d in ["www/docs", "www/private", "assets"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    for (f, text) in [
        ("www/index.html", "<p>home</p>\n"),
        ("www/style.css", "body { margin: 0 }\n"),
        ("www/docs/index.html", "docs\n"),
        ("www/docs/notes.txt", "0123456789\n"),
        ("www/private/x.txt", "private\n"),
        ("www/old.bak", "backup\n"),
        ("assets/app.js", "let a = 1;\n"),
    ] {
        std::fs::write(dir.join(f), text).unwrap();
    }
    let member = echoing("app");
    let d = dir.display();
    let config = format!(
        "Listen 127.0.0.1:0\nServerName test.example\nTypesConfig /etc/mime.types\n\
         DocumentRoot {d}/www\nAlias /assets {d}/assets\n\
         Redirect /old /new\nRedirect permanent /moved http://elsewhere.example/there\n\
         RedirectMatch 410 ^/gone\nProxyPass /app http://127.0.0.1:{port}/app\n\
         <Directory />\n  Require all denied\n  Options None\n</Directory>\n\
         <Directory {d}/www>\n  Require all granted\n</Directory>\n\
         <Directory {d}/assets>\n  Require all granted\n</Directory>\n\
         <Directory {d}/www/private>\n  Require all denied\n</Directory>\n\
         <Files \"*.bak\">\n  Require all denied\n</Files>\n",
        port = member.port()
    );
    let h = "127.0.0.1:{PORT}";
    let requests = [
        get("/", h, ""),
        get("/index.html", h, ""),
        get("/style.css", h, ""),
        get("/docs", h, ""),
        get("/docs/", h, ""),
        get("/docs/notes.txt", h, "Range: bytes=2-5\r\n"),
        get("/docs/notes.txt", h, "Range: bytes=-3\r\n"),
        get("/docs/notes.txt", h, "Range: bytes=50-\r\n"),
        get("/docs/notes.txt", h, "If-None-Match: *\r\n"),
        get("/missing.html", h, ""),
        get("/private/x.txt", h, ""),
        get("/old.bak", h, ""),
        get("/assets/app.js", h, ""),
        get("/assets/", h, ""),
        get("/old/x?q=1", h, ""),
        get("/moved/y", h, ""),
        get("/gone/z", h, ""),
        get("/app/x", h, ""),
        format!("HEAD /style.css HTTP/1.1\r\nHost: {h}\r\n\r\n").into_bytes(),
    ];
    let diffs = differences("static-files", &config, &requests);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}
