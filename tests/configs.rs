//! The `tests/configs/` corpus: vhosts written the way Apache admins write them. Each file
//! loads (or fails at known lines with known messages), and the behavioural ones get
//! traffic through ringproxy that must do what Apache does.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use ringproxy::config::{load_str, LoadOptions};

fn corpus(name: &str) -> String {
    let path = format!("{}/tests/configs/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The corpus file with `{Bn}` replaced by the backends' ports (ports 9 and 19 when none
/// are given: loading connects to nothing).
fn filled(name: &str, backends: &[&Backend]) -> String {
    let text = fill(&corpus(name), backends);
    text.replace("{B0}", "9")
        .replace("{B1}", "19")
        .replace("{CERTDIR}", &test_certs().display().to_string())
}

/// A directory with `site.crt` and `site.key` for the TLS corpus files, made once.
fn test_certs() -> std::path::PathBuf {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ringproxy-corpus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        self_signed(&dir, "site", &["secure.example.com"], false);
        dir
    })
    .clone()
}

#[test]
fn every_corpus_file_loads_or_fails_at_its_known_lines() {
    debian_environment();
    let loads = [
        "issue-example.conf",
        "websocket-rewrite.conf",
        "sticky-recipe.conf",
        "proxypass-line-params.conf",
        "old-style-access.conf",
        "ifmodule-choice.conf",
        "full-vhost.conf",
        "front-door.conf",
        "tls-site.conf",
        "ajp-tomcat.conf",
    ];
    for name in loads {
        if let Err(e) = load_str(&filled(name, &[]), name, &LoadOptions::default()) {
            panic!("{name} should load: {e:?}");
        }
    }
    // A SetHandler page that a ProxyPass also takes is proxied (Apache), with a warning
    // naming the page's line, the rule's line and the fix; excluded pages get none.
    let name = "old-style-access.conf";
    let cfg = load_str(&filled(name, &[]), name, &LoadOptions::default()).unwrap();
    let shadowed: Vec<&String> = cfg
        .warnings
        .iter()
        .filter(|w| w.contains("so it is proxied"))
        .collect();
    assert_eq!(shadowed.len(), 3, "{shadowed:#?}");
    assert!(
        shadowed[0].starts_with(&format!("{name}:34: <Location /status-by-name>"))
            && shadowed[0].contains(&format!("ProxyPass at {name}:70 "))
            && shadowed[0].contains("add 'ProxyPass /status-by-name !'"),
        "{shadowed:#?}"
    );
    let fails: [(&str, &[(u32, &str)]); 2] = [
        (
            "broken-typos.conf",
            &[
                (3, "'ProxyRequest' (did you mean 'ProxyRequests'?)"),
                (5, "'BalancerMemeber' (did you mean 'BalancerMember'?)"),
                (6, "'hcpass' (did you mean 'hcpasses'?)"),
                (7, "'lvmetod' (did you mean 'lbmethod'?)"),
            ],
        ),
        (
            "broken-tls-and-rewrite.conf",
            &[
                (6, "/etc/ssl/certs/site.pem: "),
                (8, "only [P], [R], [F] and [G] rules are supported"),
                (
                    10,
                    "TLS to members needs SSLProxyEngine On in the <VirtualHost> at",
                ),
            ],
        ),
    ];
    for (name, want) in fails {
        let errors = load_str(&filled(name, &[]), name, &LoadOptions::default())
            .expect_err(name)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>();
        assert_eq!(errors.len(), want.len(), "{name}: {errors:#?}");
        for ((line, text), got) in want.iter().zip(&errors) {
            let prefix = format!("{name}:{line}: ");
            assert!(
                got.starts_with(&prefix) && got.contains(text),
                "{name}: expected line {line} with {text:?}, got {got:?}"
            );
        }
    }
}

fn cookie_request(path: &str, cookie: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: lb.example.com\r\nCookie: {cookie}\r\n\r\n").into_bytes()
}

#[test]
fn sticky_recipe_sets_routeid_when_the_route_changes_and_routes_by_it() {
    let (b1, b2) = (named("one"), named("two"));
    let p = proxy(&filled("sticky-recipe.conf", &[&b1, &b2]));
    let mut c = Client::connect(p.addrs[0]);
    let first = c.get("/");
    let cookie = first
        .header("set-cookie")
        .expect("ROUTEID set on first response");
    let route = if first.text() == "one" { "1" } else { "2" };
    assert_eq!(cookie, format!("ROUTEID=.{route}; path=/"));
    // With the cookie: always the same member, and no new cookie (the route did not change).
    for _ in 0..4 {
        c.send(&cookie_request("/", &format!("ROUTEID=.{route}")));
        let r = c.read_response(false).unwrap();
        assert_eq!(r.text(), first.text());
        assert_eq!(r.header("set-cookie"), None);
    }
    // A cookie naming the other route moves there: no cookie needed, it already says so.
    let other = if route == "1" { "2" } else { "1" };
    c.send(&cookie_request("/", &format!("ROUTEID=.{other}")));
    let r = c.read_response(false).unwrap();
    assert_ne!(r.text(), first.text());
    p.shutdown();
    p.join();
}

#[test]
fn proxypass_line_stickysession_routes_by_cookie_and_by_path_parameter() {
    let (tc1, tc2) = (named("tc1"), named("tc2"));
    let p = proxy(&filled("proxypass-line-params.conf", &[&tc1, &tc2]));
    let mut c = Client::connect(p.addrs[0]);
    for _ in 0..3 {
        assert_eq!(c.get("/app/page;jsessionid=ABC123.tc2").text(), "tc2");
        c.send(&cookie_request("/app/page", "JSESSIONID=XYZ.tc1"));
        assert_eq!(c.read_response(false).unwrap().text(), "tc1");
    }
    assert!(tc1.last().request_line().starts_with("GET /app/page "));
    p.shutdown();
    p.join();
}

#[test]
fn old_style_and_nested_access_rules_act_as_in_apache() {
    let (internal, public) = (named("internal"), named("public"));
    let p = proxy(&filled("old-style-access.conf", &[&internal, &public]));
    let get = |path: &str| Client::connect(p.addrs[0]).get(path);
    // Order Deny,Allow + Deny from all + Allow from 10/8: 127.0.0.1 is refused.
    assert_eq!(get("/balancer-manager").status, 403);
    // <RequireAny> with Require local: allowed.
    let status = get("/server-status?auto");
    assert_eq!(status.status, 200);
    assert!(status.text().contains("Total Accesses:"));
    // Require host: 127.0.0.1 is localhost (PTR and back, as Apache checks it).
    assert_eq!(get("/metrics").status, 200);
    assert_eq!(get("/metrics-ops").status, 403);
    // Allow from / Deny from with a host name (mod_access_compat), and Satisfy Any. These
    // locations are also under ProxyPass /: allowed requests are proxied, as in Apache.
    assert_eq!(get("/status-by-name?auto").text(), "public");
    assert_eq!(get("/status-not-by-name?auto").status, 403);
    assert_eq!(get("/status-either?auto").text(), "public");
    // <Proxy balancer://internal> with <RequireAll>: 127.0.0.1 is not in 10/8.
    assert_eq!(get("/internal/x").status, 403);
    assert_eq!(internal.request_count(), 0);
    // <Proxy *> allows all; the public balancer has no rules of its own.
    assert_eq!(get("/x").text(), "public");
    p.shutdown();
    p.join();
}

#[test]
fn ifmodule_takes_the_branch_of_the_modules_ringproxy_provides() {
    let (balanced, fallback) = (named("balanced"), named("fallback"));
    let p = proxy(&filled("ifmodule-choice.conf", &[&balanced, &fallback]));
    let r = Client::connect(p.addrs[0]).get("/");
    assert_eq!(r.text(), "balanced");
    assert_eq!(r.header("x-choice").as_deref(), Some("no-modsecurity"));
    assert_eq!(fallback.request_count(), 0);
    p.shutdown();
    p.join();
}

#[test]
fn full_vhost_serves_and_excluded_paths_answer_404() {
    debian_environment();
    let (web, spare) = (named("web"), named("spare"));
    let p = proxy(&filled("full-vhost.conf", &[&web, &spare]));
    let mut c = Client::connect(p.addrs[0]);
    c.send(b"GET /page HTTP/1.1\r\nHost: www.example.com\r\n\r\n");
    let r = c.read_response(false).unwrap();
    assert_eq!(
        r.text(),
        "web",
        "the hot standby (+H) takes nothing while web is up"
    );
    assert_eq!(
        web.last_matching("GET /page ")
            .and_then(|r| r.header("x-forwarded-proto"))
            .as_deref(),
        Some("https")
    );
    // DocumentRoot is not served: a path no rule proxies is a clean 404.
    let mut c = Client::connect(p.addrs[0]);
    c.send(b"GET /static/logo.png HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_eq!(c.read_response(false).unwrap().status, 404);
    p.shutdown();
    p.join();
}

#[test]
fn websocket_recipe_tunnels_upgrades_and_rewrite_rules_redirect_and_forbid() {
    let (ws_addr, heads) = upgrade_backend();
    let app = named("app");
    let text = corpus("websocket-rewrite.conf")
        .replace("{B0}", &ws_addr.port().to_string())
        .replace("{B1}", &app.port().to_string());
    let p = proxy(&text);
    let addr = p.addrs[0];

    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    w.write_all(b"GET /chat/room1 HTTP/1.1\r\nHost: t\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").unwrap();
    let head = read_head(&mut r);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let seen = heads.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(seen.starts_with("GET /chat/room1 HTTP/1.1\r\n"), "{seen}");
    assert_eq!(header_in(&seen, "upgrade").as_deref(), Some("WebSocket"));
    assert_eq!(header_in(&seen, "connection").as_deref(), Some("Upgrade"));
    assert!(header_in(&seen, "sec-websocket-key").is_some());
    // Bytes flow both ways, several times, through the tunnel.
    for msg in [
        &b"frame-one"[..],
        &[0x81, 0x05, b'h', b'e', b'l', b'l', b'o'],
        &[7u8; 20_000],
    ] {
        w.write_all(msg).unwrap();
        let mut back = vec![0u8; msg.len()];
        r.read_exact(&mut back).unwrap();
        assert_eq!(back, msg);
    }
    // The client closes its side: the backend sees EOF, closes, and the client sees EOF.
    w.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());

    // Not an upgrade: the balancer.
    assert_eq!(Client::connect(addr).get("/chat/room1").text(), "app");
    // [R=301] with $1 (and the query kept), [F].
    let moved = Client::connect(addr).get("/old/page?x=1");
    assert_eq!(moved.status, 301);
    // Made absolute from the Host header, as mod_rewrite does.
    assert_eq!(
        moved.header("location").as_deref(),
        Some("http://test/new/page?x=1")
    );
    assert_eq!(Client::connect(addr).get("/private/data").status, 403);
    assert_eq!(app.request_count(), 1);
    p.shutdown();
    p.join();
}

/// Site files copied from Debian name `${APACHE_LOG_DIR}`, which apache2ctl exports from
/// /etc/apache2/envvars; a lone site file reads it from the environment, as here.
fn debian_environment() {
    std::env::set_var("APACHE_LOG_DIR", std::env::temp_dir());
}
