//! TLS on both sides, with rustls 0.23 on the aws-lc-rs provider: a virtual host's
//! certificates as mod_ssl's directives name them ([`certs`]), its rustls configuration
//! from mod_ssl's settings ([`host`]), a member's from the `SSLProxy*` ones ([`client`]),
//! and the stream that drives rustls over monoio's owned-buffer I/O ([`stream`]).

pub mod certs;
pub mod client;
pub mod host;
pub mod stream;
pub mod vars;

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

pub use host::HostTls;
pub use stream::{accept, connect, ChooseConfig, HandshakeError, TlsStream};

/// The crypto provider every TLS configuration of the process uses: aws-lc-rs, with its
/// defaults (X25519MLKEM768 first among key exchanges, AEAD suites only), its suites in
/// the order of Mozilla's server-side TLS guidelines: AES-128-GCM, AES-256-GCM, then
/// ChaCha20-Poly1305, ECDSA before RSA within each, TLS 1.3's first. All are strong; the
/// AES-256 suites hash with SHA-384, for which aws-lc has no fast path on some CPUs
/// (AMD's), and that cost about 20 µs per full handshake there. `SSLCipherSuite` still
/// sets any order.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let mut p = rustls::crypto::aws_lc_rs::default_provider();
            p.cipher_suites.sort_by_key(|s| {
                (
                    matches!(s, rustls::SupportedCipherSuite::Tls12(_)),
                    bulk_rank(s),
                )
            });
            Arc::new(p)
        })
        .clone()
}

/// AES-128-GCM 0, AES-256-GCM 1, anything else (ChaCha20-Poly1305) 2.
fn bulk_rank(s: &rustls::SupportedCipherSuite) -> u8 {
    let name = s.suite().as_str().unwrap_or("");
    if name.contains("AES_128_GCM") {
        0
    } else if name.contains("AES_256_GCM") {
        1
    } else {
        2
    }
}

/// A client-side verifier that accepts any certificate, for `ringload --insecure` and tests
/// (and `SSLProxyVerify none` to members). Handshake signatures are still checked, so the
/// peer does all the work a verifying client makes it do.
#[derive(Debug)]
pub struct AnyCertificate(Arc<CryptoProvider>);

impl AnyCertificate {
    pub fn new(provider: Arc<CryptoProvider>) -> AnyCertificate {
        AnyCertificate(provider)
    }
}

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_suites_follow_mozillas_order() {
        let names: Vec<_> = super::provider()
            .cipher_suites
            .iter()
            .filter_map(|s| s.suite().as_str())
            .collect();
        assert_eq!(
            names,
            [
                "TLS13_AES_128_GCM_SHA256",
                "TLS13_AES_256_GCM_SHA384",
                "TLS13_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            ]
        );
    }
}
