//! TLS to members (`https://`, `wss://`), end to end: members are in-test TLS servers whose
//! certificates (a test CA, leaves signed by it, client certificates) are made here.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use common::*;
use ringproxy::runtime::Server;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate authority made for one test.
struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, name.to_string());
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let cert = p.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// Writes the CA certificate as PEM (what SSLProxyCACertificateFile names).
    fn write(&self, dir: &Dir, file: &str) -> String {
        let p = dir.0.join(file);
        std::fs::write(&p, self.cert.pem()).unwrap();
        p.display().to_string()
    }

    /// A leaf for `names`, valid now unless `expired`.
    fn leaf(&self, names: &[&str], expired: bool) -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut p = rcgen::CertificateParams::new(names).unwrap();
        if expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        (p.signed_by(&key, &self.cert, &self.key).unwrap(), key)
    }
}

/// A test's directory, its CA, and the lines that make ringproxy trust that CA for
/// members.
fn trusted_ca(test: &str) -> (Dir, Ca, String) {
    let dir = Dir::new(test);
    let ca = Ca::new("Test CA");
    let trust = format!(
        "SSLProxyEngine On\nSSLProxyCACertificateFile {}\n",
        ca.write(&dir, "ca.pem")
    );
    (dir, ca, trust)
}

/// A member with a valid certificate from `ca` for 127.0.0.1.
fn member_of(ca: &Ca, handler: impl Fn(&SeenRequest) -> Action + Send + Sync + 'static) -> Backend {
    tls_backend(member_config(ca.leaf(&["127.0.0.1"], false), None), handler)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A member's TLS server configuration: `leaf`, and when `client_ca` is given, a client
/// certificate it issued is required.
fn member_config(
    leaf: (rcgen::Certificate, rcgen::KeyPair),
    client_ca: Option<CertificateDer<'static>>,
) -> Arc<rustls::ServerConfig> {
    let b = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let b = match client_ca {
        None => b.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca).unwrap();
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .unwrap();
            b.with_client_cert_verifier(v)
        }
    };
    let key = PrivateKeyDer::try_from(leaf.1.serialize_der()).unwrap();
    Arc::new(b.with_single_cert(vec![leaf.0.der().clone()], key).unwrap())
}

/// A proxy whose `balancer://app` has `members` (URLs), with `extra` lines in the main
/// server, and /metrics.
fn proxy_to(members: &[String], extra: &str) -> Server {
    let members: String = members
        .iter()
        .map(|m| format!("BalancerMember {m}\n"))
        .collect();
    proxy(&format!(
        "Listen 127.0.0.1:0\nLogLevel error\n{extra}\n<Location /metrics>\nSetHandler metrics\n</Location>\nProxyPass /metrics !\n<Proxy balancer://app>\n{members}</Proxy>\nProxyPass / balancer://app/\n"
    ))
}

fn https(b: &Backend) -> String {
    format!("https://127.0.0.1:{}", b.port())
}

#[test]
fn https_members_are_verified_pooled_and_counted() {
    let (_dir, ca, trust) = trusted_ca("members-pool");
    let member = member_of(&ca, |r| ok(&format!("tls {}", r.request_line())));
    let p = proxy_to(&[https(&member)], &trust);
    let mut c = Client::connect(p.addrs[0]);
    for i in 0..5 {
        let r = c.get(&format!("/x{i}"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), format!("tls GET /x{i} HTTP/1.1"));
    }
    // One handshake, then the pooled connection; no server name for an IP address.
    assert_eq!(
        member.connections.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    assert_eq!(member.last().sni, None);
    assert!(member.last().head.contains("X-Forwarded-Proto: http\r\n"));
    assert_eq!(
        metric(&p, "ringproxy_member_tls_handshakes_total{kind=\"full\"}"),
        1.0
    );
    assert_eq!(
        metric(&p, "ringproxy_backend_pool_total{result=\"hit\"}"),
        4.0
    );
}

/// A member named by host name gets it as SNI (resolved as ringproxy resolves it).
#[test]
fn a_member_named_by_host_gets_its_name_as_sni() {
    let (_dir, ca, trust) = trusted_ca("members-sni");
    let first: SocketAddr = "localhost:0".to_socket_addrs().unwrap().next().unwrap();
    let config = member_config(ca.leaf(&["localhost"], false), None);
    let member = tls_backend_on(first, config, |_| ok("named"));
    let p = proxy_to(&[format!("https://localhost:{}", member.port())], &trust);
    let r = Client::connect(p.addrs[0]).get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "named"));
    assert_eq!(member.last().sni.as_deref(), Some("localhost"));
    assert!(member
        .last()
        .head
        .contains(&format!("Host: localhost:{}\r\n", member.port())));
}

/// Wrong name, unknown issuer, expired: each refused (the member in error, the request
/// moved to the good member), each allowed by the directive that turns its check off.
#[test]
fn bad_member_certificates_are_refused_with_failover() {
    let (_dir, ca, trust) = trusted_ca("members-bad");
    let stranger = Ca::new("Unknown CA");
    let good = member_of(&ca, |_| ok("good"));
    let cases = [
        (
            "wrong name",
            ca.leaf(&["other.test"], false),
            "SSLProxyCheckPeerName off",
        ),
        (
            "unknown CA",
            stranger.leaf(&["127.0.0.1"], false),
            "SSLProxyVerify none",
        ),
        (
            "expired",
            ca.leaf(&["127.0.0.1"], true),
            "SSLProxyCheckPeerExpire off",
        ),
    ];
    for (what, leaf, allow) in cases {
        let bad = tls_backend(member_config(leaf, None), |_| ok("bad"));
        // With the good member beside it: every request is answered by the good one.
        let p = proxy_to(&[https(&bad), https(&good)], &trust);
        let mut c = Client::connect(p.addrs[0]);
        for _ in 0..4 {
            let r = c.get("/");
            assert_eq!((r.status, r.text().as_str()), (200, "good"), "{what}");
        }
        assert_eq!(bad.request_count(), 0, "{what}");
        assert!(
            metric(
                &p,
                "ringproxy_member_tls_handshake_failures_total{reason=\"certificate\"}"
            ) >= 1.0,
            "{what}"
        );
        // Alone: Apache's 502 for a failed handshake with the member.
        let p = proxy_to(&[https(&bad)], &trust);
        let r = Client::connect(p.addrs[0]).get("/");
        assert_eq!(r.status, 502, "{what}");
        // The check turned off: the member answers.
        let p = proxy_to(&[https(&bad)], &format!("{trust}{allow}\n"));
        let r = Client::connect(p.addrs[0]).get("/");
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "bad"),
            "{what} with {allow}"
        );
    }
}

/// SSLProxyVerify none still checks the name (as mod_ssl does) and says at start what it
/// gives up.
#[test]
fn verify_none_warns_and_still_checks_the_name() {
    let stranger = Ca::new("Unknown CA");
    let member = tls_backend(
        member_config(stranger.leaf(&["other.test"], false), None),
        |_| ok("m"),
    );
    let config = format!(
        "Listen 127.0.0.1:0\nSSLProxyEngine On\nSSLProxyVerify none\nProxyPass / https://127.0.0.1:{}/\n",
        member.port()
    );
    let cfg = ringproxy::config::load_str(&config, "t.conf", &Default::default()).unwrap();
    assert!(
        cfg.warnings.iter().any(|w| w.starts_with(
            "t.conf:3: SSLProxyVerify none: member certificates are not checked against any CA"
        )),
        "{:?}",
        cfg.warnings
    );
    let p = proxy(&config);
    assert_eq!(Client::connect(p.addrs[0]).get("/").status, 502);
    let p = proxy(&config.replace(
        "SSLProxyVerify none\n",
        "SSLProxyVerify none\nSSLProxyCheckPeerName off\n",
    ));
    assert_eq!(Client::connect(p.addrs[0]).get("/").status, 200);
}

/// A member that asks for a client certificate gets SSLProxyMachineCertificateFile's.
#[test]
fn the_machine_certificate_is_presented_to_members() {
    let dir = Dir::new("members-mtls");
    let ca = Ca::new("Test CA");
    let clients = Ca::new("Client CA");
    let (client_cert, client_key) = clients.leaf(&["proxy.test"], false);
    let machine = dir.0.join("machine.pem");
    std::fs::write(
        &machine,
        format!("{}{}", client_cert.pem(), client_key.serialize_pem()),
    )
    .unwrap();
    let trust = format!(
        "SSLProxyEngine On\nSSLProxyCACertificateFile {}\n",
        ca.write(&dir, "ca.pem")
    );
    let member = tls_backend(
        member_config(
            ca.leaf(&["127.0.0.1"], false),
            Some(clients.cert.der().clone()),
        ),
        |_| ok("mutual"),
    );
    // Without a client certificate the member refuses the handshake.
    let p = proxy_to(&[https(&member)], &trust);
    assert_eq!(Client::connect(p.addrs[0]).get("/").status, 502);
    let p = proxy_to(
        &[https(&member)],
        &format!(
            "{trust}SSLProxyMachineCertificateFile {}\n",
            machine.display()
        ),
    );
    let r = Client::connect(p.addrs[0]).get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "mutual"));
    assert_eq!(
        member.last().client_cert.as_deref(),
        Some(&client_cert.der()[..])
    );
}

/// A pooled TLS connection the member closed while idle, without close_notify or with it,
/// is found stale and the request goes again on a fresh one.
#[test]
fn stale_pooled_tls_connections_are_retried() {
    for notify in [false, true] {
        stale_retried(notify);
    }
}

fn stale_retried(notify: bool) {
    let (_dir, ca, trust) = trusted_ca("members-stale");
    // Answers as if keeping the connection, then closes it.
    let member = tls_backend(
        member_config(ca.leaf(&["127.0.0.1"], false), None),
        move |_| {
            let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec();
            if notify {
                Action::RespondCloseNotify(answer)
            } else {
                Action::RespondClose(answer)
            }
        },
    );
    let p = proxy_to(&[https(&member)], &trust);
    let mut c = Client::connect(p.addrs[0]);
    for _ in 0..4 {
        // The member's close has reached the proxy before the next request goes out.
        let closed = member.closed.load(std::sync::atomic::Ordering::SeqCst);
        let r = c.get("/");
        assert_eq!((r.status, r.text().as_str()), (200, "ok"));
        wait_until("the member closed", || {
            member.closed.load(std::sync::atomic::Ordering::SeqCst) > closed
        });
    }
    assert!(metric(&p, "ringproxy_backend_retries_total{reason=\"stale\"}") >= 1.0);
}

/// wss:// members: the upgrade and the tunnel go through TLS to the member.
#[test]
fn websocket_tunnels_reach_wss_members() {
    let (_dir, ca, trust) = trusted_ca("members-wss");
    let (addr, heads) = tls_upgrade_backend(member_config(ca.leaf(&["127.0.0.1"], false), None));
    let p = proxy(&format!(
        "Listen 127.0.0.1:0\n{trust}ProxyPass /ws wss://127.0.0.1:{}/ws\n",
        addr.port()
    ));
    let mut c = Client::connect(p.addrs[0]);
    c.send(b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    let mut reader = BufReader::new(c.stream.try_clone().unwrap());
    let head = read_head(&mut reader);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(heads.recv().unwrap().starts_with("GET /ws HTTP/1.1\r\n"));
    for msg in [&b"hello"[..], &[7u8; 100_000][..]] {
        c.send(msg);
        let mut got = vec![0u8; msg.len()];
        reader.read_exact(&mut got).unwrap();
        assert_eq!(got, msg);
    }
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    assert!(rest.is_empty());
    let _ = c.stream.flush();
}

/// The balancer-manager adds an https:// member set up as the configured ones are, and
/// refuses one where SSLProxyEngine is not On.
#[test]
fn the_balancer_manager_adds_https_members() {
    let (_dir, ca, trust) = trusted_ca("members-manager");
    let plain = named("plain");
    let secure = member_of(&ca, |_| ok("secure"));
    let manager = "<Location /balancer-manager>\nSetHandler balancer-manager\nRequire local\n</Location>\nProxyPass /balancer-manager !\n";
    let referer = "Referer: http://lb.test/balancer-manager\r\n";
    for (extra, want) in [(trust.as_str(), 200), ("", 400)] {
        let p = proxy_to(
            &[format!("http://127.0.0.1:{}", plain.port())],
            &format!("{extra}{manager}"),
        );
        let nonce = manager_state(&p)["balancers"][0]["nonce"]
            .as_str()
            .unwrap()
            .to_string();
        let url = https(&secure);
        let r = manager_post(
            &p,
            &format!("b=app&nonce={nonce}&b_nwrkr={}&b_wyes=1", url_enc(&url)),
            referer,
        );
        assert_eq!(r.status, want, "{}", r.text());
        if want != 200 {
            assert!(r.text().contains("SSLProxyEngine On"), "{}", r.text());
            continue;
        }
        // Enabled, with the plain member disabled: the TLS member answers.
        let plain_url = format!("http://127.0.0.1:{}", plain.port());
        for (w, d) in [(&url, 0), (&plain_url, 1)] {
            let form = format!("b=app&w={}&nonce={nonce}&w_status_D={d}", url_enc(w));
            assert_eq!(manager_post(&p, &form, referer).status, 200);
        }
        let r = Client::connect(p.addrs[0]).get("/");
        assert_eq!((r.status, r.text().as_str()), (200, "secure"));
    }
}

/// ProxyPreserveHost On: the client's host name is the server name sent (as Apache sends
/// it), the certificate is still checked against the configured name, and a pooled
/// connection carries only requests for the name it was opened with.
#[test]
fn preserved_hosts_are_sent_as_sni_and_pooled_apart() {
    let dir = Dir::new("members-preserve");
    let ca = Ca::new("Test CA");
    let trust = format!(
        "SSLProxyEngine On\nSSLProxyCACertificateFile {}\nProxyPreserveHost On\n",
        ca.write(&dir, "ca.pem")
    );
    let member = member_of(&ca, |r| ok(&r.sni.clone().unwrap_or_else(|| "-".into())));
    let p = proxy_to(&[https(&member)], &trust);
    let mut c = Client::connect(p.addrs[0]);
    let mut get = |host: &str| {
        c.send(format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
        let r = c.read_response(false).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        r.text()
    };
    let conns = || member.connections.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(get("app.test"), "app.test");
    assert_eq!(get("Other.Test:8443"), "other.test");
    assert_eq!(conns(), 2);
    assert_eq!(get("app.test"), "app.test");
    assert_eq!(get("other.test"), "other.test");
    assert_eq!(conns(), 2, "each name's connection is reused");
    // An address in Host: the configured name (an IP address: no server name at all).
    assert_eq!(get("127.0.0.1"), "-");
    assert_eq!(conns(), 3);
}

/// Health checks go through TLS: a TCP check is a full handshake, so a member whose
/// certificate is refused is taken out (C), and one whose certificate is good stays in.
#[test]
fn health_checks_of_tls_members_are_handshakes() {
    let dir = Dir::new("members-hc");
    let ca = Ca::new("Test CA");
    let trust = format!(
        "SSLProxyEngine On\nSSLProxyCACertificateFile {}\n<Location /balancer-manager>\nSetHandler balancer-manager\nRequire local\n</Location>\nProxyPass /balancer-manager !\n",
        ca.write(&dir, "ca.pem")
    );
    let good = member_of(&ca, |_| ok("good"));
    let bad = tls_backend(member_config(ca.leaf(&["other.test"], false), None), |_| {
        ok("bad")
    });
    let check = "hcmethod=TCP hcinterval=100ms hcfails=1";
    let p = proxy_to(
        &[
            format!("{} {check}", https(&good)),
            format!("{} {check}", https(&bad)),
        ],
        &trust,
    );
    let status = |i: usize| {
        manager_state(&p)["balancers"][0]["members"][i]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    wait_until("the bad member is taken out", || status(1).contains('C'));
    assert!(!status(0).contains('C'), "{}", status(0));
    assert!(good.connections.load(std::sync::atomic::Ordering::SeqCst) >= 1);
}

/// A self-signed member certificate named in SSLProxyCACertificateFile is trusted as
/// itself, as OpenSSL trusts it, even when it says it is a CA (`openssl req -x509` does).
#[test]
fn a_self_signed_member_certificate_trusted_as_itself() {
    let dir = Dir::new("members-selfsigned");
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = p.self_signed(&key).unwrap();
    let file = dir.0.join("self.pem");
    std::fs::write(&file, cert.pem()).unwrap();
    let member = tls_backend(member_config((cert, key), None), |_| ok("self"));
    let p = proxy_to(
        &[https(&member)],
        &format!(
            "SSLProxyEngine On\nSSLProxyCACertificateFile {}\n",
            file.display()
        ),
    );
    let r = Client::connect(p.addrs[0]).get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "self"));
}

/// Without reuse (`disablereuse=On`) each request has a handshake of its own, and the
/// member's session is resumed.
#[test]
fn member_sessions_resume() {
    let (_dir, ca, trust) = trusted_ca("members-resume");
    let member = member_of(&ca, |_| ok("again"));
    let p = proxy_to(&[format!("{} disablereuse=On", https(&member))], &trust);
    let mut c = Client::connect(p.addrs[0]);
    for _ in 0..3 {
        assert_eq!(c.get("/").text(), "again");
    }
    assert_eq!(
        member.connections.load(std::sync::atomic::Ordering::SeqCst),
        3
    );
    let kind = |k: &str| {
        metric(
            &p,
            &format!("ringproxy_member_tls_handshakes_total{{kind=\"{k}\"}}"),
        )
    };
    assert_eq!((kind("full"), kind("resumed")), (1.0, 2.0));
}

/// Large bodies both ways through a TLS member (the copy path: splicing needs bare sockets
/// at both ends), a RewriteRule [P] to an https:// URL, and SSLProxyProtocol reaching the
/// member.
#[test]
fn bodies_rewrites_and_protocols_through_tls_members() {
    let dir = Dir::new("members-bodies");
    let ca = Ca::new("Test CA");
    let trust = format!(
        "SSLProxyEngine On\nSSLProxyCACertificateFile {}\nSpliceThreshold 65536\n",
        ca.write(&dir, "ca.pem")
    );
    let member = member_of(&ca, |r| {
        if r.request_line().starts_with("GET /big") {
            Action::Stream(3 << 20)
        } else {
            ok(&format!(
                "{} {}",
                r.body_len,
                r.tls_version.clone().unwrap_or_default()
            ))
        }
    });
    let rewrite = format!(
        "RewriteEngine On\nRewriteRule ^/rw/(.*)$ https://127.0.0.1:{}/$1 [P]\n",
        member.port()
    );
    let p = proxy_to(&[https(&member)], &format!("{trust}{rewrite}"));
    let mut c = Client::connect(p.addrs[0]);
    let r = c.get("/big");
    assert_eq!((r.status, r.body_len, r.truncated), (200, 3 << 20, false));
    assert!(r.body.iter().all(|b| *b == b'x'));
    let body = vec![b'u'; 2 << 20];
    c.send(
        format!(
            "POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    c.send(&body);
    let r = c.read_response(false).unwrap();
    assert_eq!(r.text(), format!("{} TLSv1_3", 2 << 20));
    assert_eq!(
        member.last().body_sum,
        body.iter()
            .fold(0u64, |a, &b| a.wrapping_mul(31).wrapping_add(b as u64))
    );
    assert_eq!(c.get("/rw/x").text(), "0 TLSv1_3");
    assert!(member.last_matching("GET /x ").is_some());
    // SSLProxyProtocol: TLS 1.2 only to members.
    let p = proxy_to(
        &[https(&member)],
        &format!("{trust}SSLProxyProtocol -all +TLSv1.2\n"),
    );
    assert_eq!(Client::connect(p.addrs[0]).get("/").text(), "0 TLSv1_2");
}
