//! TLS for client streams (and later member streams), with rustls 0.23 on the aws-lc-rs
//! provider: a virtual host's certificates as mod_ssl's directives name them ([`certs`]),
//! its rustls configuration from mod_ssl's settings ([`host`]), and the stream that
//! drives rustls over monoio's owned-buffer I/O ([`stream`]).

pub mod certs;
pub mod host;
pub mod stream;
pub mod vars;

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

pub use host::HostTls;
pub use stream::{accept, connect, ChooseConfig, HandshakeError, TlsStream};

/// The crypto provider every TLS configuration of the process uses: aws-lc-rs, with its
/// defaults (X25519MLKEM768 first among key exchanges, AEAD suites only).
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}
