//! Whole Apache configuration trees run unchanged: a copy of Debian's /etc/apache2 with a
//! balancer site enabled the a2enmod/a2ensite way, and a RHEL-style tree written here.
//! Each passes `ringproxy -t` with only the documented warnings, then serves a proxied
//! path, a static file, an Alias, a Redirect, and writes its access log format.
//!
//! The Debian test needs Debian's apache2 package (for /etc/apache2); without it the test
//! says so and passes, unless `RINGPROXY_APACHE_REQUIRED=1` (set by `.ci/run`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_ringproxy");

/// Warnings a stock tree may produce: each names a directive or module the README's
/// "Running a stock Apache tree" section lists as accepted without effect.
const DOCUMENTED: &[&str] = &[
    "DefaultRuntimeDir",
    "HostnameLookups",
    "IndexOptions",
    "AddIcon",
    "AddIconByEncoding",
    "AddIconByType",
    "DefaultIcon",
    "ReadmeName",
    "HeaderName",
    "IndexIgnore",
    "AddLanguage",
    "AddCharset",
    "AddHandler",
    "AddOutputFilter",
    "ScriptAlias",
    "StartServers",
    "MinSpareThreads",
    "MaxSpareThreads",
    "ThreadLimit",
    "ThreadsPerChild",
    "MaxConnectionsPerChild",
    "LanguagePriority",
    "ForceLanguagePriority",
    "BrowserMatch",
    "AccessFileName",
    "ServerTokens",
    "ServerSignature",
    "ServerAdmin",
    "AddDefaultCharset",
    "EnableSendfile",
    "LoadModule",
    // Debian's mods-available/ssl.conf (the README's mod_ssl rows).
    "SSLRandomSeed",
    "SSLPassPhraseDialog",
    "SSLSessionCache",
    "SSLSessionCacheTimeout",
    "SSLOptions",
];

fn id(flag: &str) -> String {
    let out = Command::new("id").arg(flag).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `ringproxy -t`: must succeed, and every warning must be a documented one.
fn check_tree(conf: &Path) {
    let out = Command::new(BIN)
        .arg("-t")
        .arg("-f")
        .arg(conf)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "-t failed:\n{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Syntax OK"));
    for line in stderr.lines().filter(|l| l.starts_with("warning:")) {
        let rest = line.split_once(": ").map_or("", |x| x.1);
        // `FILE:LINE: Directive …`
        let after_loc = rest.splitn(3, ':').nth(2).unwrap_or(rest).trim_start();
        let word = after_loc.split([' ', ':']).next().unwrap_or_default();
        assert!(
            DOCUMENTED.contains(&word),
            "undocumented warning for a stock tree: {line}"
        );
    }
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(conf: &Path, port: u16) -> Running {
    Running(start_binary(conf, port))
}

/// SIGTERM, then the exit (logs are flushed on the way out).
fn stop(mut r: Running) {
    // SAFETY: signalling a child this test started.
    unsafe { libc::kill(r.0.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + IO_TIMEOUT;
    while r.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "ringproxy did not stop");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn req(port: u16, host: &str, path: &str) -> Response {
    let mut c = Client::connect(format!("127.0.0.1:{port}").parse().unwrap());
    c.send(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: tree-test\r\n\r\n").as_bytes(),
    );
    c.read_response(false).expect("response")
}

fn copy_tree(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(ok.success(), "cp -a {} {}", from.display(), to.display());
}

fn edit(path: &Path, f: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(path).unwrap();
    std::fs::write(path, f(text)).unwrap();
}

#[test]
fn debian_tree_runs_unchanged() {
    let stock = Path::new("/etc/apache2/apache2.conf");
    if !stock.exists() {
        if std::env::var_os("RINGPROXY_APACHE_REQUIRED").is_some_and(|v| v == "1") {
            panic!(
                "/etc/apache2 is missing and RINGPROXY_APACHE_REQUIRED=1: install Debian's apache2"
            );
        }
        eprintln!("apache_tree: /etc/apache2 not present; Debian tree test not run");
        return;
    }
    let dir = Dir::new("debian-tree");
    let etc = dir.0.join("apache2");
    copy_tree(Path::new("/etc/apache2"), &etc);
    for d in ["log", "run", "lock", "www"] {
        std::fs::create_dir_all(dir.0.join(d)).unwrap();
    }
    std::fs::write(dir.0.join("www/index.html"), "debian home\n").unwrap();
    let port = free_port();
    let member = named("app");
    let d = dir.0.display();
    // What a packager's envvars says, pointed at this test's directories.
    edit(&etc.join("envvars"), |t| {
        t + &format!(
            "export APACHE_LOG_DIR={d}/log\nexport APACHE_RUN_DIR={d}/run\nexport APACHE_PID_FILE={d}/run/apache2.pid\nexport APACHE_LOCK_DIR={d}/lock\nexport APACHE_RUN_USER={}\nexport APACHE_RUN_GROUP={}\n",
            id("-un"),
            id("-gn")
        )
    });
    edit(&etc.join("ports.conf"), |t| {
        t.replace("Listen 80\n", &format!("Listen 127.0.0.1:{port}\n"))
    });
    edit(&etc.join("sites-available/000-default.conf"), |t| {
        // As Apache, a DocumentRoot outside /var/www needs its own grant against
        // apache2.conf's `<Directory />` Require all denied.
        t.replace("*:80", &format!("*:{port}"))
            .replace("/var/www/html", &format!("{d}/www"))
            + &format!("<Directory {d}/www>\n\tRequire all granted\n</Directory>\n")
    });
    // a2enmod proxy proxy_http proxy_balancer lbmethod_byrequests; a2ensite lb.
    for m in [
        "proxy.load",
        "proxy.conf",
        "proxy_http.load",
        "proxy_balancer.load",
        "proxy_balancer.conf",
        "slotmem_shm.load",
        "lbmethod_byrequests.load",
    ] {
        let target = PathBuf::from("../mods-available").join(m);
        if etc.join("mods-available").join(m).exists() {
            std::os::unix::fs::symlink(target, etc.join("mods-enabled").join(m)).ok();
        }
    }
    std::fs::write(
        etc.join("sites-available/lb.conf"),
        format!(
            "<VirtualHost *:{port}>\n\tServerName lb.test\n\tDocumentRoot {d}/www\n\
             \t<Proxy balancer://app>\n\t\tBalancerMember http://127.0.0.1:{m} route=n1\n\t</Proxy>\n\
             \tProxyPass /app balancer://app/app\n\tRedirect /old /app/new\n\
             \tCustomLog ${{APACHE_LOG_DIR}}/lb_access.log combined\n</VirtualHost>\n",
            m = member.port()
        ),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "../sites-available/lb.conf",
        etc.join("sites-enabled/lb.conf"),
    )
    .unwrap();
    // a2enmod ssl; a2ensite default-ssl, with this site's certificate in place of the
    // snakeoil one (the ssl-cert package's, which a bare machine may not have).
    let tls_port = free_port();
    let cert = dir.cert("site", &["localhost"], false);
    for m in ["ssl.load", "ssl.conf", "socache_shmcb.load"] {
        let target = PathBuf::from("../mods-available").join(m);
        std::os::unix::fs::symlink(target, etc.join("mods-enabled").join(m)).ok();
    }
    edit(&etc.join("ports.conf"), |t| {
        t.replace("Listen 443\n", &format!("Listen 127.0.0.1:{tls_port}\n"))
    });
    edit(&etc.join("sites-available/default-ssl.conf"), |t| {
        t.replace("*:443", &format!("*:{tls_port}"))
            .replace("/var/www/html", &format!("{d}/www"))
            .replace(
                "/etc/ssl/certs/ssl-cert-snakeoil.pem",
                &cert.cert.display().to_string(),
            )
            .replace(
                "/etc/ssl/private/ssl-cert-snakeoil.key",
                &cert.key.display().to_string(),
            )
    });
    std::os::unix::fs::symlink(
        "../sites-available/default-ssl.conf",
        etc.join("sites-enabled/default-ssl.conf"),
    )
    .unwrap();
    let conf = etc.join("apache2.conf");
    check_tree(&conf);

    let running = start(&conf, port);
    let r = https_get(tls_port, &cert, "localhost", "/");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "debian home\n"),
        "{}",
        r.head
    );
    let r = req(port, "localhost", "/");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "debian home\n"),
        "{}",
        r.head
    );
    let r = req(port, "lb.test", "/app/x");
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(member.last().request_line(), "GET /app/x HTTP/1.1");
    let r = req(port, "lb.test", "/old/y");
    assert_eq!(
        r.header("location").as_deref(),
        Some("http://lb.test/app/new/y")
    );
    // mods-enabled/alias.conf's Alias /icons/ into /usr/share/apache2/icons.
    if Path::new("/usr/share/apache2/icons/a.png").exists() {
        let r = req(port, "localhost", "/icons/a.png");
        assert_eq!(r.status, 200, "{}", r.head);
        assert_eq!(r.header("content-type").as_deref(), Some("image/png"));
    }
    // apache2.conf's <FilesMatch "^\.ht"> and <Directory /> Require all denied.
    std::fs::write(dir.0.join("www/.htaccess"), "x").unwrap();
    assert_eq!(req(port, "localhost", "/.htaccess").status, 403);
    stop(running);
    // Debian's combined format ends in %O (bytes with headers) and the two quoted fields.
    let log = std::fs::read_to_string(dir.0.join("log/access.log")).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("GET / HTTP/1.1"))
        .expect(&log);
    let fields: Vec<&str> = line.split('"').collect();
    let after = fields[2].split_whitespace().collect::<Vec<_>>();
    assert_eq!(after[0], "200");
    let sent: u64 = after[1].parse().unwrap();
    assert!(
        sent > "debian home\n".len() as u64,
        "%O counts the head too: {line}"
    );
    assert!(line.ends_with("\"tree-test\""), "{line}");
    let lb_log = std::fs::read_to_string(dir.0.join("log/lb_access.log")).unwrap();
    assert!(lb_log.contains("GET /app/x HTTP/1.1"), "{lb_log}");
}

#[test]
fn rhel_style_tree_runs_unchanged() {
    let dir = Dir::new("rhel-tree");
    let root = dir.0.join("httpd");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/rhel");
    copy_tree(&src, &root);
    for d in ["logs", "html", "cgi-bin"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("html/index.html"), "rhel home\n").unwrap();
    std::fs::write(root.join("cgi-bin/run.sh"), "#!/bin/sh\necho secret\n").unwrap();
    let port = free_port();
    let member = named("app");
    let fill_in = |t: String| {
        t.replace("@ROOT@", &root.display().to_string())
            .replace("@PORT@", &port.to_string())
            .replace("@MEMBER@", &member.port().to_string())
    };
    for f in ["conf/httpd.conf", "conf.d/lb.conf"] {
        edit(&root.join(f), fill_in);
    }
    let conf = root.join("conf/httpd.conf");
    check_tree(&conf);
    let running = start(&conf, port);
    assert_eq!(req(port, "h", "/").text(), "rhel home\n");
    assert_eq!(req(port, "h", "/app/z").status, 200);
    assert_eq!(member.last().request_line(), "GET /app/z HTTP/1.1");
    assert_eq!(
        req(port, "h", "/old").header("location").as_deref(),
        Some("http://h/app/new")
    );
    // ScriptAlias: the program is neither run nor shown.
    let r = req(port, "h", "/cgi-bin/run.sh");
    assert_eq!(r.status, 403);
    assert!(!r.text().contains("secret"));
    stop(running);
    // `logs/access_log` under ServerRoot, in combinedio (%I %O at the end).
    let log = std::fs::read_to_string(root.join("logs/access_log")).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("GET / HTTP/1.1"))
        .expect(&log);
    let tail: Vec<u64> = line
        .rsplit(' ')
        .take(2)
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(tail[0] > 10 && tail[1] > 10, "%I %O: {line}");
}
