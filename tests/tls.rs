//! HTTPS at the front door, end to end through real sockets: certificates made here,
//! clients are rustls's own (blocking) streams.

mod common;

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use ringproxy::runtime::DriverChoice;
use rustls::pki_types::{CertificateDer, ServerName};

type Cert = TestCert;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A client configuration trusting `certs`.
fn client_config(certs: &[&Cert]) -> rustls::ClientConfig {
    client_with(
        provider(),
        certs,
        &[&rustls::version::TLS13, &rustls::version::TLS12],
    )
}

fn client_with(
    provider: Arc<rustls::crypto::CryptoProvider>,
    certs: &[&Cert],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        roots.add(c.der.clone()).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

type Tls = BufReader<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>;

/// Connects and completes the handshake, naming `sni`.
fn connect(addr: SocketAddr, config: rustls::ClientConfig, sni: &str) -> std::io::Result<Tls> {
    let sock = TcpStream::connect(addr)?;
    sock.set_read_timeout(Some(IO_TIMEOUT))?;
    sock.set_write_timeout(Some(IO_TIMEOUT))?;
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut s = rustls::StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(BufReader::new(s))
}

fn get(tls: &mut Tls, host: &str, path: &str) -> Response {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    tls.get_mut().write_all(req.as_bytes()).unwrap();
    read_response_from(tls, false).expect("a response")
}

fn peer_cert(tls: &Tls) -> CertificateDer<'static> {
    tls.get_ref().conn.peer_certificates().unwrap()[0].clone()
}

fn tls_config(dir: &Path, body: &str) -> String {
    format!(
        "Listen 127.0.0.1:0\nTimeout 5\nServerName main.test\n{body}\n# {}\n",
        dir.display()
    )
}

/// The server name picks the host and its certificate; no name (or an unknown one) gets
/// the first host; a Host that picks a host with another TLS setup is answered 421.
#[test]
fn sni_chooses_the_host_and_its_certificate() {
    let dir = Dir::new("tls-sni");
    let a = dir.cert("a", &["a.test"], false);
    let b = dir.cert("b", &["b.test", "*.b.test"], false);
    let (ba, bb) = (named("A"), named("B"));
    let config = tls_config(
        &dir.0,
        &format!(
            "<VirtualHost *>\nServerName a.test\nSSLEngine on\nSSLCertificateFile {}\nSSLCertificateKeyFile {}\nProxyPass / http://127.0.0.1:{}/\n</VirtualHost>\n<VirtualHost *>\nServerName b.test\nServerAlias *.b.test\nSSLEngine on\nSSLCertificateFile {}\nSSLCertificateKeyFile {}\nProxyPass / http://127.0.0.1:{}/\n</VirtualHost>\n",
            a.cert.display(),
            a.key.display(),
            ba.port(),
            b.cert.display(),
            b.key.display(),
            bb.port()
        ),
    );
    let p = proxy(&config);
    let addr = p.addrs[0];
    let both = || client_config(&[&a, &b]);

    let mut ta = connect(addr, both(), "a.test").unwrap();
    assert_eq!(peer_cert(&ta), a.der);
    let r = get(&mut ta, "a.test", "/x");
    assert_eq!((r.status, r.text()), (200, "A".to_string()));
    assert_eq!(
        ba.last().header("x-forwarded-proto").as_deref(),
        Some("https")
    );
    // Keep-alive on the same TLS connection.
    assert_eq!(get(&mut ta, "a.test", "/y").text(), "A");

    let mut tb = connect(addr, both(), "www.b.test").unwrap();
    assert_eq!(
        peer_cert(&tb),
        b.der,
        "a wildcard alias picks b's certificate"
    );
    assert_eq!(get(&mut tb, "www.b.test", "/").text(), "B");

    // SNI a.test, Host b.test: another host with another certificate.
    let r = get(&mut ta, "b.test", "/");
    assert_eq!(r.status, 421, "{}", r.head);

    // No server name: the first host's certificate.
    let mut no_sni = both();
    no_sni.enable_sni = false;
    let mut t = connect(addr, no_sni, "a.test").unwrap();
    assert_eq!(peer_cert(&t), a.der);
    assert_eq!(get(&mut t, "a.test", "/").text(), "A");

    // Handshakes are counted, and the connections open.
    let t = ringproxy::admin::stats::totals(&p.shared().stats);
    assert!(t.tls_handshakes[0] >= 3, "{t:?}");
    assert_eq!(
        (t.tls_open, t.conns_open),
        (2, 2),
        "the 421 closed its connection: {t:?}"
    );
}

/// Two certificates in one host: a client that verifies ECDSA gets the ECDSA one, a
/// client that only verifies RSA gets the RSA one.
#[test]
fn rsa_or_ecdsa_by_what_the_client_supports() {
    let dir = Dir::new("tls-kinds");
    let rsa = dir.cert("rsa", &["k.test"], true);
    let ec = dir.cert("ec", &["k.test"], false);
    let be = named("K");
    let config = tls_config(
        &dir.0,
        &format!(
            "<VirtualHost *>\nServerName k.test\nSSLEngine on\nSSLCertificateFile {}\nSSLCertificateKeyFile {}\nSSLCertificateFile {}\nSSLCertificateKeyFile {}\nProxyPass / http://127.0.0.1:{}/\n</VirtualHost>\n",
            rsa.cert.display(),
            rsa.key.display(),
            ec.cert.display(),
            ec.key.display(),
            be.port()
        ),
    );
    let p = proxy(&config);
    let t = connect(p.addrs[0], client_config(&[&rsa, &ec]), "k.test").unwrap();
    assert_eq!(peer_cert(&t), ec.der);

    let mut only_rsa = rustls::crypto::aws_lc_rs::default_provider();
    let algs = only_rsa.signature_verification_algorithms;
    only_rsa.signature_verification_algorithms = rustls::crypto::WebPkiSupportedAlgorithms {
        all: algs.all,
        mapping: Box::leak(
            algs.mapping
                .iter()
                .filter(|(s, _)| format!("{s:?}").starts_with("RSA"))
                .copied()
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        ),
    };
    let cfg = client_with(
        Arc::new(only_rsa),
        &[&rsa, &ec],
        &[&rustls::version::TLS13, &rustls::version::TLS12],
    );
    let mut t = connect(p.addrs[0], cfg, "k.test").unwrap();
    assert_eq!(peer_cert(&t), rsa.der);
    assert_eq!(get(&mut t, "k.test", "/").text(), "K");
}

/// `SSLProtocol`, ALPN and `SSLStrictSNIVHostCheck` as a client meets them.
#[test]
fn protocols_alpn_and_strict_sni() {
    let dir = Dir::new("tls-proto");
    let c = dir.cert("c", &["p.test"], false);
    let be = named("P");
    let config = tls_config(
        &dir.0,
        &format!(
            "<VirtualHost *>\nServerName p.test\nSSLEngine on\nSSLProtocol -all +TLSv1.2\nSSLStrictSNIVHostCheck on\nSSLCertificateFile {}\nSSLCertificateKeyFile {}\nProxyPass / http://127.0.0.1:{}/\n</VirtualHost>\n",
            c.cert.display(),
            c.key.display(),
            be.port()
        ),
    );
    let p = proxy(&config);
    let addr = p.addrs[0];
    let mut cfg = client_config(&[&c]);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut t = connect(addr, cfg, "p.test").unwrap();
    let conn = &t.get_ref().conn;
    assert_eq!(
        conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(get(&mut t, "p.test", "/").text(), "P");

    // A client that speaks TLS 1.3 only finds no common version.
    let only13 = client_with(provider(), &[&c], &[&rustls::version::TLS13]);
    assert!(connect(addr, only13, "p.test").is_err());
    // A client that offers only h2 finds no common application protocol.
    let mut h2 = client_config(&[&c]);
    h2.alpn_protocols = vec![b"h2".to_vec()];
    assert!(connect(addr, h2, "p.test").is_err());

    // Without SNI the strict host refuses the request.
    let mut no_sni = client_config(&[&c]);
    no_sni.enable_sni = false;
    let mut t = connect(addr, no_sni, "p.test").unwrap();
    assert_eq!(get(&mut t, "p.test", "/").status, 403);

    // A client that does not speak TLS is told so, and costs its own connection only.
    let mut plain = Client::connect(addr);
    plain.send(b"GET / HTTP/1.1\r\nHost: p.test\r\n\r\n");
    let r = plain.read_response(false).unwrap();
    assert_eq!(r.status, 400);
    assert!(r.head.contains("HTTPS port"), "{}", r.head);
    assert!(plain.is_closed());
}

/// Large bodies both ways and a WebSocket tunnel over TLS (through user space).
#[test]
fn bodies_and_tunnels_over_tls() {
    let dir = Dir::new("tls-bodies");
    let c = dir.cert("c", &["t.test"], false);
    let big = backend(|req| {
        if req.request_line().starts_with("POST") {
            ok(&req.body_len.to_string())
        } else {
            Action::Stream(3 << 20)
        }
    });
    let (ws, heads) = upgrade_backend();
    let config = tls_config(
        &dir.0,
        &format!(
            "<VirtualHost *>\nServerName t.test\nSSLEngine on\nSSLCertificateFile {}\nSSLCertificateKeyFile {}\nProxyPass /ws ws://{}/ws\nProxyPass / http://127.0.0.1:{}/\n<Location /moved>\nRedirect permanent /new\n</Location>\n</VirtualHost>\n",
            c.cert.display(),
            c.key.display(),
            ws,
            big.port()
        ),
    );
    let p = proxy(&config);
    let mut t = connect(p.addrs[0], client_config(&[&c]), "t.test").unwrap();
    // Redirects made absolute take the scheme the client used.
    let mut m = connect(p.addrs[0], client_config(&[&c]), "t.test").unwrap();
    let r = get(&mut m, "t.test", "/moved/x");
    assert_eq!(
        (r.status, r.header("location").as_deref()),
        (301, Some("https://t.test/new/x"))
    );
    let r = get(&mut t, "t.test", "/big");
    assert_eq!((r.status, r.body_len, r.truncated), (200, 3 << 20, false));

    let body = vec![b'x'; 2 << 20];
    let head = format!(
        "POST /up HTTP/1.1\r\nHost: t.test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    t.get_mut().write_all(head.as_bytes()).unwrap();
    t.get_mut().write_all(&body).unwrap();
    let r = read_response_from(&mut t, false).unwrap();
    assert_eq!(r.text(), (2u64 << 20).to_string());

    let mut w = connect(p.addrs[0], client_config(&[&c]), "t.test").unwrap();
    w.get_mut()
        .write_all(b"GET /ws HTTP/1.1\r\nHost: t.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .unwrap();
    let r = read_response_from(&mut w, true).unwrap();
    assert_eq!(r.status, 101);
    assert!(heads.recv().unwrap().contains("X-Forwarded-Proto: https"));
    for msg in [&b"hello"[..], &[7u8; 100_000][..]] {
        w.get_mut().write_all(msg).unwrap();
        let mut got = vec![0u8; msg.len()];
        std::io::Read::read_exact(&mut w, &mut got).unwrap();
        assert_eq!(got, msg);
    }
}

/// A CA and a client certificate it signed (subject `CN=alice,O=Example`).
fn client_identity(
    dir: &Dir,
    name: &str,
) -> (
    PathBuf,
    rustls::pki_types::CertificateDer<'static>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} CA"));
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Example");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "alice");
    let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let ca_path = dir.0.join(format!("{name}-ca.crt"));
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    (ca_path, cert.der().clone(), key_der)
}

/// `SSLVerifyClient` for a host and for a location, and the client certificate's
/// variables reaching the member through `RequestHeader`.
#[test]
fn client_certificates_required_optional_and_refused() {
    let dir = Dir::new("tls-mtls");
    let server = dir.cert("s", &["m.test", "r.test"], false);
    let (ca, cert, key) = client_identity(&dir, "good");
    let (_, stranger, stranger_key) = client_identity(&dir, "other");
    let be = backend(|_| ok("M"));
    let config = tls_config(
        &dir.0,
        &format!(
            "SSLCACertificateFile {ca}\nSSLCertificateFile {c}\nSSLCertificateKeyFile {k}\n\
             <VirtualHost *>\nServerName m.test\nSSLEngine on\nSSLVerifyClient optional\nSSLVerifyDepth 1\n\
             RequestHeader set X-Client-DN \"%{{SSL_CLIENT_S_DN}}s\"\n\
             RequestHeader set X-Verify \"%{{SSL_CLIENT_VERIFY}}s\"\n\
             RequestHeader set X-TLS \"%{{SSL_PROTOCOL}}s %{{HTTPS}}s\"\n\
             <Location /admin>\nSSLVerifyClient require\n</Location>\n\
             ProxyPass / http://127.0.0.1:{p}/\n</VirtualHost>\n\
             <VirtualHost *>\nServerName r.test\nSSLEngine on\nSSLVerifyClient require\nProxyPass / http://127.0.0.1:{p}/\n</VirtualHost>\n",
            ca = ca.display(),
            c = server.cert.display(),
            k = server.key.display(),
            p = be.port()
        ),
    );
    let p = proxy(&config);
    let addr = p.addrs[0];
    let with_cert = |cert: &CertificateDer<'static>,
                     key: &rustls::pki_types::PrivateKeyDer<'static>| {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(server.der.clone()).unwrap();
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(vec![cert.clone()], key.clone_key())
            .unwrap()
    };

    // Optional: no certificate is fine for the host, not for /admin.
    let mut t = connect(addr, client_config(&[&server]), "m.test").unwrap();
    assert_eq!(get(&mut t, "m.test", "/").status, 200);
    let seen = be.last();
    assert_eq!(seen.header("x-verify").as_deref(), Some("NONE"));
    assert_eq!(seen.header("x-tls").as_deref(), Some("TLSv1.3 on"));
    assert_eq!(get(&mut t, "m.test", "/admin/x").status, 403);

    let mut t = connect(addr, with_cert(&cert, &key), "m.test").unwrap();
    assert_eq!(get(&mut t, "m.test", "/admin/x").status, 200);
    let seen = be.last();
    assert_eq!(seen.header("x-verify").as_deref(), Some("SUCCESS"));
    assert_eq!(
        seen.header("x-client-dn").as_deref(),
        Some("CN=alice,O=Example")
    );

    // A certificate from a CA the host does not trust ends the handshake.
    let refused = connect(addr, with_cert(&stranger, &stranger_key), "m.test").and_then(|mut t| {
        t.get_mut()
            .write_all(b"GET / HTTP/1.1\r\nHost: m.test\r\n\r\n")?;
        read_response_from(&mut t, false).ok_or(std::io::ErrorKind::UnexpectedEof.into())
    });
    assert!(refused.is_err(), "{refused:?}");

    // Require for the whole host: no certificate, no answer.
    let refused = connect(addr, client_config(&[&server]), "r.test").and_then(|mut t| {
        t.get_mut()
            .write_all(b"GET / HTTP/1.1\r\nHost: r.test\r\n\r\n")?;
        read_response_from(&mut t, false).ok_or(std::io::ErrorKind::UnexpectedEof.into())
    });
    assert!(refused.is_err(), "{refused:?}");
    let mut t = connect(addr, with_cert(&cert, &key), "r.test").unwrap();
    assert_eq!(get(&mut t, "r.test", "/").status, 200);
    let failures = ringproxy::admin::stats::totals(&p.shared().stats).tls_failures;
    assert!(failures.iter().sum::<u64>() >= 2, "{failures:?}");
}

/// A graceful reload swaps the certificate under load: no request fails, new connections
/// get the new certificate, and sessions resume across the reload (the ticket keys are
/// the process's, not the configuration's).
#[test]
fn reload_swaps_the_certificate_under_load_losing_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    let dir = Dir::new("tls-reload");
    let (a, b) = (
        dir.cert("a", &["r.test"], false),
        dir.cert("b", &["r.test"], false),
    );
    let be = named("R");
    let config_for = |c: &Cert| {
        tls_config(
            &dir.0,
            &format!(
                "<VirtualHost *>\nServerName r.test\nSSLEngine on\nSSLCertificateFile {}\nSSLCertificateKeyFile {}\nProxyPass / http://127.0.0.1:{}/\n</VirtualHost>\n",
                c.cert.display(),
                c.key.display(),
                be.port()
            ),
        )
    };
    let parse = |text: &str| {
        ringproxy::config::load_str(text, "t.conf", &ringproxy::config::LoadOptions::default())
            .unwrap()
    };
    let p = proxy(&config_for(&a));
    let addr = p.addrs[0];
    // One client configuration per thread: its session store lets connections resume.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen_b = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    // Keep-alive; a new connection per request resuming its session; a new connection per
    // request with a full handshake (a resumed session shows the certificate of the
    // handshake it resumes, so only this one sees the swap).
    for (new_conn_each, resume) in [(false, true), (true, true), (true, false)] {
        let (stop, failures, seen_b) = (stop.clone(), failures.clone(), seen_b.clone());
        let mut config = client_config(&[&a, &b]);
        if !resume {
            config.resumption = rustls::client::Resumption::disabled();
        }
        let b_der = b.der.clone();
        load.push(std::thread::spawn(move || {
            let mut t: Option<Tls> = None;
            while !stop.load(Ordering::SeqCst) {
                if new_conn_each || t.is_none() {
                    match connect(addr, config.clone(), "r.test") {
                        Ok(c) => {
                            if peer_cert(&c) == b_der {
                                seen_b.store(true, Ordering::SeqCst);
                            }
                            t = Some(c);
                        }
                        Err(e) => {
                            failures.lock().unwrap().push(format!("handshake: {e}"));
                            continue;
                        }
                    }
                }
                let Some(c) = t.as_mut() else { continue };
                let r = c
                    .get_mut()
                    .write_all(b"GET / HTTP/1.1\r\nHost: r.test\r\n\r\n")
                    .ok()
                    .and_then(|_| read_response_from(c, false));
                match r {
                    Some(r) if r.status == 200 => {
                        if r.header("connection").is_some_and(|v| v == "close") {
                            t = None;
                        }
                    }
                    other => {
                        failures.lock().unwrap().push(format!("{other:?}"));
                        t = None;
                    }
                }
            }
        }));
    }
    let handshakes = || {
        let t = ringproxy::admin::stats::totals(&p.shared().stats);
        t.tls_handshakes.iter().sum::<u64>()
    };
    for round in 0..6 {
        let before = handshakes();
        let next = if round % 2 == 0 { &b } else { &a };
        p.reload(parse(&config_for(next))).unwrap();
        wait_until("handshakes on the new configuration", || {
            handshakes() >= before + 20
        });
    }
    stop.store(true, Ordering::SeqCst);
    for t in load {
        t.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    assert!(failures.is_empty(), "failed: {failures:?}");
    assert!(
        seen_b.load(Ordering::SeqCst),
        "new connections got the new certificate"
    );
    let t = ringproxy::admin::stats::totals(&p.shared().stats);
    assert!(t.tls_handshakes[2] > 0, "sessions resumed: {t:?}");
}

/// A client that came over TLS is described to an AJP container as mod_ssl and
/// mod_proxy_ajp describe it: `is_ssl`, the cipher, its key size, the protocol, and the
/// client's certificate as PEM.
#[test]
fn tls_clients_are_described_to_ajp_members() {
    use common::ajp::{answer, container};
    let dir = Dir::new("tls-ajp");
    let server = dir.cert("s", &["a.test"], false);
    let (ca, cert, key) = client_identity(&dir, "good");
    let tomcat = container(|_| answer("secure"));
    let config = tls_config(
        &dir.0,
        &format!(
            "<VirtualHost *>\nServerName a.test\nSSLEngine on\nSSLCertificateFile {c}\nSSLCertificateKeyFile {k}\n\
             SSLCACertificateFile {ca}\nSSLVerifyClient optional\nProxyPass / ajp://127.0.0.1:{p}/\n</VirtualHost>\n",
            c = server.cert.display(),
            k = server.key.display(),
            ca = ca.display(),
            p = tomcat.port()
        ),
    );
    let p = proxy(&config);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server.der.clone()).unwrap();
    let with_cert = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![cert.clone()], key)
        .unwrap();
    let mut t = connect(p.addrs[0], with_cert, "a.test").unwrap();
    assert_eq!(get(&mut t, "a.test", "/x").text(), "secure");
    let seen = tomcat.last();
    assert!(seen.forward.is_ssl);
    let pem = seen.attribute(7);
    use rustls::pki_types::pem::PemObject;
    let back = CertificateDer::from_pem_slice(pem[0].as_bytes()).unwrap();
    assert_eq!(back.as_ref(), cert.as_ref(), "the client's certificate");
    let cipher = &seen.attribute(8)[0];
    assert!(cipher.starts_with("TLS_AES_"), "{cipher}");
    let bits = if cipher.contains("128") { "128" } else { "256" };
    assert_eq!(seen.attribute(11), [bits]);
    assert!(seen
        .attribute(10)
        .contains(&"AJP_SSL_PROTOCOL=TLSv1.3".to_string()));
    // The connection's identifier (mod_ssl's SSL_SESSION_ID): 32 bytes in upper-case
    // hex, the same for every request of one connection.
    let session = seen.attribute(9)[0].clone();
    assert!(
        session.len() == 64
            && session
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase()),
        "{session}"
    );
    assert_eq!(get(&mut t, "a.test", "/x2").text(), "secure");
    assert_eq!(tomcat.last().attribute(9), std::slice::from_ref(&session));
    // Without a certificate: the TLS fields, no certificate attribute; another connection,
    // another identifier.
    let mut t = connect(p.addrs[0], client_config(&[&server]), "a.test").unwrap();
    assert_eq!(get(&mut t, "a.test", "/y").text(), "secure");
    let seen = tomcat.last();
    assert!(seen.forward.is_ssl && seen.attribute(7).is_empty());
    assert_ne!(seen.attribute(9), [session]);
}

/// Static files over TLS (read and encrypted, no sendfile): whole, ranges, HEAD and a
/// 3 MiB file on one connection.
#[test]
fn static_files_over_tls() {
    let dir = Dir::new("tls-files");
    let c = dir.cert("c", &["t.test"], false);
    let root = dir.0.join("www");
    std::fs::create_dir_all(&root).unwrap();
    let big: Vec<u8> = (0..3 * 1024 * 1024 + 5).map(|i| (i % 253) as u8).collect();
    std::fs::write(root.join("big.bin"), &big).unwrap();
    std::fs::write(root.join("a.txt"), "hello over tls\n").unwrap();
    let config = tls_config(
        &dir.0,
        &format!(
            "<VirtualHost *>\nServerName t.test\nSSLEngine on\nSSLCertificateFile {}\nSSLCertificateKeyFile {}\nDocumentRoot {}\n</VirtualHost>\n",
            c.cert.display(),
            c.key.display(),
            root.display()
        ),
    );
    let p = proxy(&config);
    let mut t = connect(p.addrs[0], client_config(&[&c]), "t.test").unwrap();
    let r = get(&mut t, "t.test", "/a.txt");
    assert_eq!((r.status, r.text().as_str()), (200, "hello over tls\n"));
    for _ in 0..2 {
        let r = get(&mut t, "t.test", "/big.bin");
        assert_eq!(
            (r.status, r.body_len, r.truncated),
            (200, big.len() as u64, false)
        );
        assert!(r.body[..] == big[..r.body.len()]);
    }
    t.get_mut()
        .write_all(b"GET /big.bin HTTP/1.1\r\nHost: t.test\r\nRange: bytes=-100000\r\n\r\n")
        .unwrap();
    let r = read_response_from(&mut t, false).unwrap();
    assert_eq!(
        (r.status, r.body.as_slice()),
        (206, &big[big.len() - 100_000..])
    );
    t.get_mut()
        .write_all(b"HEAD /a.txt HTTP/1.1\r\nHost: t.test\r\n\r\n")
        .unwrap();
    let r = read_response_from(&mut t, true).unwrap();
    assert_eq!(
        (r.status, r.header("content-length").as_deref()),
        (200, Some("15"))
    );
    assert_eq!(get(&mut t, "t.test", "/a.txt").text(), "hello over tls\n");
}

/// A TLS connection idle for `IdleParkAfter` gives back every buffer it keeps between
/// requests and goes on waiting with only its task and rustls's state. Requests that
/// arrive around that moment are answered, and so is one whose record arrives in two
/// pieces, the first before that moment and the rest after it (the first piece is kept by
/// the stream, not lost with the buffers). The send times are the stimulus, not a
/// synchronization: every answer is awaited.
#[test]
fn requests_arriving_while_tls_connections_shrink_are_answered() {
    use std::time::{Duration, Instant};
    let dir = Dir::new("tls-shrink");
    let c = dir.cert("c", &["t.test"], false);
    let b = named("b");
    for driver in [DriverChoice::Auto, DriverChoice::Epoll] {
        let config = tls_config(
            &dir.0,
            &format!(
                "IdleParkAfter 50ms\nKeepAliveTimeout 10\n<VirtualHost *>\nServerName t.test\nSSLEngine on\nSSLCertificateFile {}\nSSLCertificateKeyFile {}\nProxyPass / http://127.0.0.1:{}/\n</VirtualHost>\n",
                c.cert.display(),
                c.key.display(),
                b.port()
            ),
        );
        let p = proxy_with(&config, 1, driver);
        let mut clients: Vec<Tls> = (0..80)
            .map(|_| connect(p.addrs[0], client_config(&[&c]), "t.test").unwrap())
            .collect();
        // The first five send half of their next request's record right after their
        // first answer, and the rest after their moment has passed.
        let mut rest = Vec::new();
        for (i, t) in clients.iter_mut().enumerate() {
            assert_eq!(get(t, "t.test", "/").text(), "b");
            if i < 5 {
                let s = t.get_mut();
                s.conn
                    .writer()
                    .write_all(b"GET /split HTTP/1.1\r\nHost: t.test\r\n\r\n")
                    .unwrap();
                let mut record = Vec::new();
                s.conn.write_tls(&mut record).unwrap();
                let half = record.len() / 2;
                s.sock.write_all(&record[..half]).unwrap();
                rest.push(record[half..].to_vec());
            }
        }
        let start = Instant::now();
        for (i, t) in clients.iter_mut().enumerate().skip(5) {
            let at = start + Duration::from_micros(4_000 * i as u64);
            if let Some(wait) = at.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            t.get_mut()
                .write_all(b"GET /second HTTP/1.1\r\nHost: t.test\r\n\r\n")
                .unwrap();
        }
        // 300 ms on: after the split ones' moment (50 ms, plus up to two ticks of the
        // worker's 100 ms timer).
        for (t, piece) in clients.iter_mut().zip(&rest) {
            t.get_mut().sock.write_all(piece).unwrap();
        }
        for (i, t) in clients.iter_mut().enumerate() {
            let r = read_response_from(t, false);
            assert_eq!(
                r.map(|r| (r.status, r.text())),
                Some((200, "b".to_string())),
                "{driver:?}: client {i}"
            );
        }
        p.shutdown();
        p.join();
    }
}
