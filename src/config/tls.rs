//! mod_ssl's settings as the builder collects them (per virtual host, each unset value
//! taken from the main server, as mod_ssl merges them), and the finishing step that loads
//! every certificate (so `-t` reports a bad file at its `FILE:LINE`) and builds each TLS
//! host's rustls configuration.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::{SupportedCipherSuite, SupportedProtocolVersion};

use super::{Builder, ConfigError, Loc};
use crate::transport::tls::client::{self, ClientSettings, MemberTls, Verify};
use crate::transport::tls::host::{ClientAuth, VerifyClient};
use crate::transport::tls::{certs, host};

/// What one server (main or virtual host) said with mod_ssl's directives.
#[derive(Clone, Default)]
pub(super) struct TlsSet {
    /// `SSLEngine` and where it was said.
    pub engine: Option<(bool, Loc)>,
    pub certs: Vec<(PathBuf, Loc)>,
    pub keys: Vec<(PathBuf, Loc)>,
    pub chain: Option<(PathBuf, Loc)>,
    /// `SSLProtocol`, `SSLCipherSuite`.
    pub offer: Offer,
    pub honor_order: Option<bool>,
    pub tickets: Option<bool>,
    pub strict_sni: Option<bool>,
    /// `Protocols`: the ALPN names to offer.
    pub alpn: Option<Vec<Vec<u8>>>,
    /// `SSLVerifyClient` for the whole host.
    pub verify: Option<(VerifyClient, Loc)>,
    pub verify_depth: Option<u32>,
    pub ca_file: Option<(PathBuf, Loc)>,
    pub ca_path: Option<(PathBuf, Loc)>,
    /// The first `SSLVerifyClient` inside one of the host's `<Location>`s.
    pub location_verify: Option<Loc>,
    /// The `SSLProxy*` settings of this server.
    pub proxy: ProxyTlsSet,
}

/// What a server or a `<Proxy balancer://…>` section said with the `SSLProxy*` directives.
#[derive(Clone, Default)]
pub(super) struct ProxyTlsSet {
    pub engine: Option<(bool, Loc)>,
    pub verify: Option<(Verify, Loc)>,
    pub depth: Option<u32>,
    pub ca_file: Option<(PathBuf, Loc)>,
    pub ca_path: Option<(PathBuf, Loc)>,
    pub check_name: Option<bool>,
    pub check_cn: Option<bool>,
    pub check_expire: Option<bool>,
    pub machine_cert: Option<(PathBuf, Loc)>,
    pub machine_chain: Option<(PathBuf, Loc)>,
    /// `SSLProxyProtocol`, `SSLProxyCipherSuite`.
    pub offer: Offer,
}

/// What `SSLProtocol` and `SSLCipherSuite` (or their `SSLProxy` forms) said.
#[derive(Clone, Default)]
pub(super) struct Offer {
    pub protocols: Option<Vec<&'static SupportedProtocolVersion>>,
    pub tls12: Option<Vec<SupportedCipherSuite>>,
    pub tls13: Option<Vec<SupportedCipherSuite>>,
}

impl Offer {
    fn over(&self, base: &Offer) -> Offer {
        Offer {
            protocols: self.protocols.clone().or_else(|| base.protocols.clone()),
            tls12: self.tls12.clone().or_else(|| base.tls12.clone()),
            tls13: self.tls13.clone().or_else(|| base.tls13.clone()),
        }
    }

    /// Records the suites of one version; none left for TLS 1.2 turns TLS 1.2 off.
    pub fn set_suites(&mut self, for13: bool, suites: Vec<SupportedCipherSuite>) {
        match (for13, suites.is_empty()) {
            (true, true) => {}
            (true, false) => self.tls13 = Some(suites),
            (false, false) => self.tls12 = Some(suites),
            (false, true) => {
                let current = self.versions();
                self.protocols = Some(
                    current
                        .into_iter()
                        .filter(|p| p.version != rustls::ProtocolVersion::TLSv1_2)
                        .collect(),
                );
            }
        }
    }

    /// The versions offered (TLS 1.2 and 1.3 unless set).
    fn versions(&self) -> Vec<&'static SupportedProtocolVersion> {
        self.protocols
            .clone()
            .unwrap_or_else(|| host::Settings::default().protocols)
    }

    /// The suites configured for TLS 1.2 and 1.3 (empty: the defaults).
    fn suites(&self) -> (Vec<SupportedCipherSuite>, Vec<SupportedCipherSuite>) {
        (
            self.tls12.clone().unwrap_or_default(),
            self.tls13.clone().unwrap_or_default(),
        )
    }
}

impl ProxyTlsSet {
    /// This set's values where it has them, else `base`'s.
    fn over(&self, base: &ProxyTlsSet) -> ProxyTlsSet {
        ProxyTlsSet {
            engine: self.engine.clone().or_else(|| base.engine.clone()),
            verify: self.verify.clone().or_else(|| base.verify.clone()),
            depth: self.depth.or(base.depth),
            ca_file: self.ca_file.clone().or_else(|| base.ca_file.clone()),
            ca_path: self.ca_path.clone().or_else(|| base.ca_path.clone()),
            check_name: self.check_name.or(base.check_name),
            check_cn: self.check_cn.or(base.check_cn),
            check_expire: self.check_expire.or(base.check_expire),
            machine_cert: self
                .machine_cert
                .clone()
                .or_else(|| base.machine_cert.clone()),
            machine_chain: self
                .machine_chain
                .clone()
                .or_else(|| base.machine_chain.clone()),
            offer: self.offer.over(&base.offer),
        }
    }
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
            offer: self.offer.over(&main.offer),
            honor_order: self.honor_order.or(main.honor_order),
            tickets: self.tickets.or(main.tickets),
            strict_sni: self.strict_sni.or(main.strict_sni),
            alpn: self.alpn.clone().or_else(|| main.alpn.clone()),
            verify: self.verify.clone().or_else(|| main.verify.clone()),
            verify_depth: self.verify_depth.or(main.verify_depth),
            ca_file: self.ca_file.clone().or_else(|| main.ca_file.clone()),
            ca_path: self.ca_path.clone().or_else(|| main.ca_path.clone()),
            location_verify: self
                .location_verify
                .clone()
                .or_else(|| main.location_verify.clone()),
            proxy: self.proxy.over(&main.proxy),
        }
    }
}

impl Builder<'_> {
    /// What `SSLVerifyClient` in the host (or in its locations) asks of the handshake;
    /// `Err` when an error was reported.
    fn client_auth(&mut self, set: &TlsSet, engine_loc: &Loc) -> Result<Option<ClientAuth>, ()> {
        let host = set.verify.as_ref().map(|(v, _)| *v).unwrap_or_default();
        let asked_at = match (&set.verify, &set.location_verify) {
            (Some((v, loc)), _) if *v != VerifyClient::None => loc.clone(),
            (_, Some(loc)) => loc.clone(),
            _ => return Ok(None),
        };
        let (file, dir) = (set.ca_file.as_ref(), set.ca_path.as_ref());
        if file.is_none() && dir.is_none() {
            self.err(
                &asked_at,
                "SSLVerifyClient needs SSLCACertificateFile or SSLCACertificatePath (the CAs client certificates are checked against)",
            );
            return Err(());
        }
        let at = file.or(dir).map_or(engine_loc, |(_, l)| l).clone();
        match certs::load_roots(
            file.map(|(p, _)| p.as_path()),
            dir.map(|(p, _)| p.as_path()),
        ) {
            Ok(roots) => Ok(Some(ClientAuth {
                roots: Arc::new(roots),
                mandatory: host == VerifyClient::Require,
                depth: set.verify_depth,
            })),
            Err(e) => {
                self.err(&at, e.to_string());
                Err(())
            }
        }
    }

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
            let Ok(client_auth) = self.client_auth(&set, &engine_loc) else {
                continue;
            };
            let (tls12_suites, tls13_suites) = set.offer.suites();
            let settings = host::Settings {
                client_auth,
                protocols: set.offer.versions(),
                tls12_suites,
                tls13_suites,
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

    /// Builds the client side of every `https://` and `wss://` member from the `SSLProxy*`
    /// settings of its `<Proxy>` section, over those of the server that defines its
    /// balancer, over the main server's (a balancer is shared by every host that proxies
    /// to it, and so are its pooled connections: one setup per member).
    pub(super) fn finish_proxy_tls(&mut self) {
        let main = self
            .tls
            .first()
            .map(|t| t.proxy.clone())
            .unwrap_or_default();
        let mut cache = SetupCache::default();
        let mut said_default = false;
        for bi in 0..self.balancers.len() {
            let server = self.defined_in.get(&bi).copied().unwrap_or(0);
            let own = self
                .tls
                .get(server)
                .map(|t| t.proxy.clone())
                .unwrap_or_default();
            let section = self.balancer_tls.get(&bi).cloned().unwrap_or_default();
            let set = section.over(&own.over(&main));
            let engine = matches!(set.engine, Some((true, _)));
            let first_tls = self.balancers[bi]
                .members
                .iter()
                .find(|m| m.scheme().is_tls())
                .map(|m| (m.loc.clone(), m.name.clone()));
            let Some((loc, url)) = first_tls else {
                // No TLS member yet: the setup is kept for members the balancer-manager
                // may add; one that cannot be made fails nothing now.
                if engine {
                    let (errors, warnings) = (self.errors.len(), self.warnings.len());
                    let settings =
                        self.client_settings(&set, &self.balancers[bi].loc.clone(), &mut cache);
                    self.errors.truncate(errors);
                    self.warnings.truncate(warnings);
                    self.balancers[bi].member_tls = settings.ok().map(Arc::new);
                }
                continue;
            };
            if !engine {
                let where_ = match self.vhosts.get(server).and_then(|v| v.loc.as_ref()) {
                    Some(l) if server > 0 => format!("the <VirtualHost> at {l}"),
                    _ => "the main server".to_string(),
                };
                for m in self.balancers[bi].members.clone() {
                    if m.scheme().is_tls() {
                        self.err(
                            &m.loc,
                            format!("member '{}': TLS to members needs SSLProxyEngine On in {where_} (or in the balancer's <Proxy> section), as in Apache", m.name),
                        );
                    }
                }
                continue;
            }
            if set.verify.is_none() && !said_default {
                said_default = true;
                self.warn(
                    &loc,
                    format!("member '{url}': SSLProxyVerify is not set: member certificates are verified against {} (Apache's default is none; write SSLProxyVerify none to accept any issuer)", roots_named(&set)),
                );
            }
            let Ok(settings) = self.client_settings(&set, &loc, &mut cache) else {
                continue;
            };
            let settings = Arc::new(settings);
            for mi in 0..self.balancers[bi].members.len() {
                let m = &self.balancers[bi].members[mi];
                if !m.scheme().is_tls() {
                    continue;
                }
                let (loc, url) = (m.loc.clone(), m.name.clone());
                match member_tls(&settings, m) {
                    Ok(tls) => self.balancers[bi].members[mi].tls = Some(tls),
                    Err(e) => self.err(&loc, format!("member '{url}': {e}")),
                }
            }
            self.balancers[bi].member_tls = Some(settings);
        }
    }

    /// A member's client settings from its merged `SSLProxy*` set; `Err` when an error was
    /// reported (each file's error once).
    fn client_settings(
        &mut self,
        set: &ProxyTlsSet,
        member_loc: &Loc,
        cache: &mut SetupCache,
    ) -> Result<ClientSettings, ()> {
        let verify = set.verify.as_ref().map_or(Verify::Require, |v| v.0);
        let ca = (set.ca_file.clone(), set.ca_path.clone());
        let key = (
            ca.0.as_ref().map(|c| c.0.clone()),
            ca.1.as_ref().map(|c| c.0.clone()),
        );
        let roots = match cache.roots.get(&key) {
            // Under SSLProxyVerify none no CA is asked for.
            _ if verify == Verify::None => Some(Arc::new(rustls::RootCertStore::empty())),
            Some(r) => r.clone(),
            None => {
                let r = if key.0.is_none() && key.1.is_none() {
                    client::system_roots()
                } else {
                    certs::load_roots(key.0.as_deref(), key.1.as_deref())
                        .map(Arc::new)
                        .map_err(|e| e.to_string())
                };
                let at =
                    ca.0.as_ref()
                        .or(ca.1.as_ref())
                        .map_or(member_loc, |c| &c.1)
                        .clone();
                let r = r.map_err(|m| {
                    if key.0.is_none() && key.1.is_none() {
                        format!("{m}: set SSLProxyCACertificateFile")
                    } else {
                        m
                    }
                });
                if let Err(m) = &r {
                    self.err(&at, m.clone());
                }
                cache.roots.insert(key.clone(), r.clone().ok());
                r.ok()
            }
        };
        let Some(roots) = roots else { return Err(()) };
        let client_cert = match &set.machine_cert {
            None => None,
            Some((path, loc)) => {
                let files = certs::CertFiles {
                    cert: path.clone(),
                    key: None,
                    chain: set.machine_chain.as_ref().map(|c| c.0.clone()),
                };
                let key = (files.cert.clone(), files.chain.clone());
                match cache.certs.get(&key) {
                    Some(Some(k)) => Some(k.clone()),
                    Some(None) => return Err(()),
                    None => match certs::load(&files) {
                        Ok(k) => {
                            if let Some(w) = certs::expiry_warning(&k) {
                                self.warn(loc, w);
                            }
                            cache.certs.insert(key, Some(k.clone()));
                            Some(k)
                        }
                        Err(e) => {
                            self.err(loc, format!("SSLProxyMachineCertificateFile: {e}"));
                            cache.certs.insert(key, None);
                            return Err(());
                        }
                    },
                }
            }
        };
        let (tls12_suites, tls13_suites) = set.offer.suites();
        Ok(ClientSettings {
            protocols: set.offer.versions(),
            tls12_suites,
            tls13_suites,
            verify,
            roots,
            depth: set.depth,
            // mod_ssl: SSLProxyCheckPeerName, when written, decides; else
            // SSLProxyCheckPeerCN off turns the name check off.
            check_name: set.check_name.or(set.check_cn).unwrap_or(true),
            check_expire: set.check_expire.unwrap_or(true),
            client_cert,
        })
    }
}

/// What the trusted CAs of a set are, for messages.
fn roots_named(set: &ProxyTlsSet) -> String {
    match (&set.ca_file, &set.ca_path) {
        (Some((f, _)), _) => f.display().to_string(),
        (None, Some((d, _))) => d.display().to_string(),
        (None, None) => "the system's trusted CAs".to_string(),
    }
}

/// Trust stores and client certificates loaded while members are set up, so that a file
/// shared by many members is read (and its error reported) once.
#[derive(Default)]
struct SetupCache {
    /// By (CA file, CA directory); `None`: loading failed (and was reported).
    roots: HashMap<CaFiles, Option<Arc<rustls::RootCertStore>>>,
    /// By (certificate file, chain file).
    certs: HashMap<(PathBuf, Option<PathBuf>), Option<Arc<rustls::sign::CertifiedKey>>>,
}

type CaFiles = (Option<PathBuf>, Option<PathBuf>);

/// The client side of TLS member `m` under `settings`.
pub fn member_tls(settings: &ClientSettings, m: &super::Member) -> Result<MemberTls, String> {
    let host = m.tls_host().unwrap_or_default().to_string();
    let name = rustls_pki_types::ServerName::try_from(host.clone())
        .map_err(|_| format!("'{host}' is not a name a certificate can have"))?;
    client::member(settings, name).map_err(|e| format!("TLS setup: {e}"))
}
