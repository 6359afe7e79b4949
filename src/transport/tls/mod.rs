//! TLS for client streams (and later member streams), with rustls 0.23 on the aws-lc-rs
//! provider. What is here so far: loading a virtual host's certificates as mod_ssl's
//! directives name them ([`certs`]). The TLS stream itself, the SNI resolver and the
//! configuration mapping come next; until then `SSLEngine On` is refused (README).

pub mod certs;

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

/// The crypto provider every TLS configuration of the process uses: aws-lc-rs, with its
/// defaults (X25519MLKEM768 first among key exchanges, AEAD suites only).
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}
