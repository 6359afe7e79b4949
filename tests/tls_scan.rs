//! The default TLS setup as a scanner sees it, through OpenSSL's own client (`openssl
//! s_client`): TLS 1.2 and 1.3 only, AEAD suites with forward secrecy, the server's suite
//! order, no compression. The full scan (testssl.sh) is `bench/tls_scan.sh`. Skipped when
//! the `openssl` command is missing, unless `RINGPROXY_OPENSSL_REQUIRED` is set (CI).

mod common;

use std::process::Command;

use common::*;

/// One `openssl s_client` handshake with `args`; returns its output.
fn s_client(port: u16, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .args(["10", "openssl", "s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", "scan.test"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The negotiated `(protocol, cipher)` from s_client's `New, TLSv1.3, Cipher is …` line,
/// or `None` when the handshake failed (`New, (NONE), Cipher is (NONE)`, or no such line).
fn negotiated(out: &str) -> Option<(String, String)> {
    let line = out.lines().find_map(|l| l.trim().strip_prefix("New, "))?;
    let (proto, cipher) = line.split_once(", Cipher is ")?;
    if cipher.trim() == "(NONE)" {
        return None;
    }
    Some((proto.trim().to_string(), cipher.trim().to_string()))
}

#[test]
fn openssl_finds_only_modern_protocols_and_suites() {
    if Command::new("openssl").arg("version").output().is_err() {
        assert!(
            std::env::var_os("RINGPROXY_OPENSSL_REQUIRED").is_none(),
            "openssl is required here"
        );
        eprintln!("openssl not installed: skipped");
        return;
    }
    let dir = std::env::temp_dir().join(format!("ringproxy-scan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let TestCert {
        cert: crt, key: k, ..
    } = self_signed(&dir, "scan", &["scan.test"], true);
    let b = named("S");
    let p = proxy(&format!(
        "Listen 127.0.0.1:0\n<VirtualHost *>\nServerName scan.test\nSSLEngine on\nSSLCertificateFile {}\nSSLCertificateKeyFile {}\nProxyPass / http://127.0.0.1:{}/\n</VirtualHost>\n",
        crt.display(),
        k.display(),
        b.port()
    ));
    let port = p.addrs[0].port();

    // Refused: every version before TLS 1.2, CBC suites, RSA key exchange, finite-field DHE.
    for args in [
        &["-tls1"][..],
        &["-tls1_1"],
        &["-tls1_2", "-cipher", "AES128-SHA"],
        &["-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA"],
        &["-tls1_2", "-cipher", "AES128-GCM-SHA256"],
        &["-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256"],
    ] {
        let out = s_client(port, args);
        assert_eq!(negotiated(&out), None, "{args:?} was accepted:\n{out}");
    }
    // Accepted: TLS 1.3, and TLS 1.2 with ECDHE and AEAD only; no compression.
    let out = s_client(port, &["-tls1_3"]);
    let (proto, _) = negotiated(&out).unwrap_or_else(|| panic!("TLS 1.3 refused:\n{out}"));
    assert_eq!(proto, "TLSv1.3");
    let out = s_client(port, &["-tls1_2"]);
    let (proto, cipher) = negotiated(&out).unwrap_or_else(|| panic!("TLS 1.2 refused:\n{out}"));
    assert_eq!(proto, "TLSv1.2");
    assert!(
        cipher.starts_with("ECDHE-") && (cipher.contains("GCM") || cipher.contains("CHACHA20")),
        "{cipher}"
    );
    assert!(out.contains("Compression: NONE"), "{out}");
    // The server's order decides: offered ChaCha20 first, it picks AES-GCM.
    let out = s_client(
        port,
        &[
            "-tls1_2",
            "-cipher",
            "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256",
        ],
    );
    assert_eq!(
        negotiated(&out).map(|n| n.1).as_deref(),
        Some("ECDHE-RSA-AES128-GCM-SHA256"),
        "{out}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
