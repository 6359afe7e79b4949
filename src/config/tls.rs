//! mod_ssl's settings as the builder collects them (per virtual host, each unset value
//! taken from the main server, as mod_ssl merges them), and the finishing step that loads
//! every certificate (so `-t` reports a bad file at its `FILE:LINE`) and builds each TLS
//! host's rustls configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::{SupportedCipherSuite, SupportedProtocolVersion};

use super::{Builder, ConfigError, Loc};
use crate::transport::tls::{certs, host};

/// What one server (main or virtual host) said with mod_ssl's directives.
#[derive(Clone, Default)]
pub(super) struct TlsSet {
    /// `SSLEngine` and where it was said.
    pub engine: Option<(bool, Loc)>,
    pub certs: Vec<(PathBuf, Loc)>,
    pub keys: Vec<(PathBuf, Loc)>,
    pub chain: Option<(PathBuf, Loc)>,
    pub protocols: Option<Vec<&'static SupportedProtocolVersion>>,
    pub tls12: Option<Vec<SupportedCipherSuite>>,
    pub tls13: Option<Vec<SupportedCipherSuite>>,
    pub honor_order: Option<bool>,
    pub tickets: Option<bool>,
    pub strict_sni: Option<bool>,
    /// `Protocols`: the ALPN names to offer.
    pub alpn: Option<Vec<Vec<u8>>>,
}

/// `Listen … https` lines, checked once the hosts are known.
pub(super) type HttpsListens = Vec<(Vec<SocketAddr>, Loc)>;

impl TlsSet {
    /// This server's value where it set one, else the main server's.
    fn merged(&self, main: &TlsSet) -> TlsSet {
        TlsSet {
            engine: self.engine.clone().or_else(|| main.engine.clone()),
            // Certificates are not merged piecemeal: a host with its own certificate
            // lines uses those, else the main server's.
            certs: if self.certs.is_empty() {
                main.certs.clone()
            } else {
                self.certs.clone()
            },
            keys: if self.certs.is_empty() {
                main.keys.clone()
            } else {
                self.keys.clone()
            },
            chain: self.chain.clone().or_else(|| main.chain.clone()),
            protocols: self.protocols.clone().or_else(|| main.protocols.clone()),
            tls12: self.tls12.clone().or_else(|| main.tls12.clone()),
            tls13: self.tls13.clone().or_else(|| main.tls13.clone()),
            honor_order: self.honor_order.or(main.honor_order),
            tickets: self.tickets.or(main.tickets),
            strict_sni: self.strict_sni.or(main.strict_sni),
            alpn: self.alpn.clone().or_else(|| main.alpn.clone()),
        }
    }
}

impl Builder<'_> {
    /// Loads the certificates and builds the rustls configuration of every host with
    /// `SSLEngine On`; checks that each `Listen … https` address has such a host.
    pub(super) fn finish_tls(&mut self) {
        let sets = std::mem::take(&mut self.tls);
        let main = sets.first().cloned().unwrap_or_default();
        // Hosts with SSLEngine On, set up or not (a host whose setup failed already has
        // its error; its Listen line needs no second one).
        let mut engine_on = vec![false; sets.len()];
        for (i, own) in sets.iter().enumerate() {
            let set = if i == 0 {
                main.clone()
            } else {
                own.merged(&main)
            };
            let Some((true, engine_loc)) = set.engine.clone() else {
                continue;
            };
            engine_on[i] = true;
            if set.certs.is_empty() {
                self.err(
                    &engine_loc,
                    "SSLEngine On needs an SSLCertificateFile for this host (or the main server)",
                );
                continue;
            }
            let mut keys = Vec::new();
            let mut files = Vec::new();
            for (n, (cert, loc)) in set.certs.iter().enumerate() {
                // mod_ssl pairs certificate and key files by their order.
                let f = certs::CertFiles {
                    cert: cert.clone(),
                    key: set.keys.get(n).map(|(k, _)| k.clone()),
                    chain: set.chain.as_ref().map(|(c, _)| c.clone()),
                };
                match certs::load(&f) {
                    Ok(k) => {
                        if let Some(w) = certs::expiry_warning(&k) {
                            self.warn(loc, w);
                        }
                        keys.push(k);
                        files.push(f);
                    }
                    Err(e) => self.err(loc, e.to_string()),
                }
            }
            if keys.len() < set.certs.len() {
                continue;
            }
            let settings = host::Settings {
                protocols: set
                    .protocols
                    .clone()
                    .unwrap_or_else(|| host::Settings::default().protocols),
                tls12_suites: set.tls12.clone().unwrap_or_default(),
                tls13_suites: set.tls13.clone().unwrap_or_default(),
                server_order: set.honor_order.unwrap_or(true),
                tickets: set.tickets.unwrap_or(true),
                cache_entries: self.tls_cache_entries,
                alpn: set
                    .alpn
                    .clone()
                    .unwrap_or_else(|| host::Settings::default().alpn),
            };
            match host::build(&settings, keys, files, set.strict_sni.unwrap_or(false)) {
                Ok(h) => self.vhosts[i].tls = Some(Arc::new(h)),
                Err(e) => self.err(&engine_loc, format!("TLS setup of this host: {e}")),
            }
        }
        for (addrs, loc) in std::mem::take(&mut self.https_listens) {
            for a in addrs {
                let first = crate::routing::first_vhost_for(&self.vhosts, a);
                if !engine_on.get(first).copied().unwrap_or(false) {
                    self.errors.push(ConfigError::new(
                        &loc,
                        format!(
                            "Listen {a} https: the first virtual host for this address has no SSLEngine On; ringproxy will not serve it as plain HTTP"
                        ),
                    ));
                }
            }
        }
    }
}
