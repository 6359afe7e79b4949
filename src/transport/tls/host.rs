//! A virtual host's TLS setup: mod_ssl's settings mapped onto what rustls offers (TLS 1.2
//! and 1.3, AEAD suites with forward secrecy), and the rustls server configuration built
//! from them. The parsing is pure (table tests below); the configuration builder calls it
//! with each directive's arguments and turns the messages into `FILE:LINE` warnings.

use std::sync::{Arc, OnceLock};

use rustls::crypto::aws_lc_rs::cipher_suite as cs;
use rustls::server::{ClientHello, ResolvesServerCert, StoresServerSessions};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};

use super::certs::CertFiles;

/// What mod_ssl's directives set for one virtual host (after inheritance from the main
/// server).
#[derive(Clone, Debug)]
pub struct Settings {
    /// `SSLProtocol`.
    pub protocols: Vec<&'static SupportedProtocolVersion>,
    /// `SSLCipherSuite` (TLS 1.2 suites) and `SSLCipherSuite TLSv1.3 …`, in preference
    /// order; empty: rustls's defaults.
    pub tls12_suites: Vec<SupportedCipherSuite>,
    pub tls13_suites: Vec<SupportedCipherSuite>,
    /// `SSLHonorCipherOrder` (default on here: the server's order, as a safe default).
    pub server_order: bool,
    /// `SSLSessionTickets` (default on).
    pub tickets: bool,
    /// `SSLSessionCache`: entries of the process-wide session-ID cache; 0: none.
    pub cache_entries: usize,
    /// ALPN protocols offered (from `Protocols`).
    pub alpn: Vec<Vec<u8>>,
    /// Client certificates asked for (`SSLVerifyClient` in the host or in any of its
    /// locations).
    pub client_auth: Option<ClientAuth>,
}

/// `SSLVerifyClient`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VerifyClient {
    #[default]
    None,
    Optional,
    Require,
}

/// How a host checks client certificates.
#[derive(Clone, Debug)]
pub struct ClientAuth {
    /// `SSLCACertificateFile` / `SSLCACertificatePath`.
    pub roots: Arc<rustls::RootCertStore>,
    /// `SSLVerifyClient require` for the whole host: no certificate, no handshake. Else a
    /// certificate is asked for and checked when given, and locations that require one
    /// answer 403 without it (rustls cannot ask again later, as Apache does by
    /// renegotiating).
    pub mandatory: bool,
    /// `SSLVerifyDepth`: at most this many certificates between the client's and the CA.
    pub depth: Option<u32>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            protocols: vec![&rustls::version::TLS13, &rustls::version::TLS12],
            tls12_suites: Vec::new(),
            tls13_suites: Vec::new(),
            server_order: true,
            tickets: true,
            cache_entries: DEFAULT_CACHE_ENTRIES,
            alpn: vec![b"http/1.1".to_vec()],
            client_auth: None,
        }
    }
}

/// Sessions kept for resumption by session ID when `SSLSessionCache` says nothing.
const DEFAULT_CACHE_ENTRIES: usize = 4096;

/// One virtual host's TLS: the rustls configuration and what the request path asks of it.
#[derive(Debug)]
pub struct HostTls {
    pub config: Arc<ServerConfig>,
    /// The certificate files, to tell whether two hosts have the same TLS setup (a request
    /// may only switch between hosts that do: 421 otherwise, as mod_ssl).
    pub files: Vec<CertFiles>,
    /// `SSLStrictSNIVHostCheck`: a client that sent no server name is refused (403).
    pub strict_sni: bool,
}

impl HostTls {
    /// Whether a request that arrived on a connection set up for `self` may be answered by
    /// a host with `other`'s setup (mod_ssl's "compatible" servers).
    pub fn compatible(&self, other: &HostTls) -> bool {
        Arc::ptr_eq(&self.config, &other.config) || self.files == other.files
    }
}

/// The certificates of one host, chosen by what the client can verify: the first (ECDSA
/// sorts first: its handshakes cost less) whose key can sign with a scheme the client
/// offered, else the first.
#[derive(Debug)]
struct Keys(Vec<Arc<CertifiedKey>>);

impl ResolvesServerCert for Keys {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let schemes = hello.signature_schemes();
        self.0
            .iter()
            .find(|k| k.key.choose_scheme(schemes).is_some())
            .or(self.0.first())
            .cloned()
    }
}

/// `SSLVerifyDepth` over webpki's verification: a chain with more intermediates than the
/// depth allows is refused before the chain is checked.
#[derive(Debug)]
struct DepthLimit {
    inner: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    depth: Option<u32>,
}

impl rustls::server::danger::ClientCertVerifier for DepthLimit {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        intermediates: &[rustls_pki_types::CertificateDer<'_>],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        // Depth 1: signed by a CA the host trusts directly; each more allows one
        // intermediate.
        if let Some(d) = self.depth {
            if intermediates.len() as u64 >= u64::from(d.max(1)) {
                return Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::ApplicationVerificationFailure,
                ));
            }
        }
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The session-ticket keys: one rotating set for the whole process, so that neither
/// another core nor a reloaded configuration breaks resumption. aws-lc-rs's ticketer
/// rotates its key every six hours and accepts the previous one.
fn ticketer() -> Option<Arc<dyn rustls::server::ProducesTickets>> {
    static T: OnceLock<Option<Arc<dyn rustls::server::ProducesTickets>>> = OnceLock::new();
    T.get_or_init(|| rustls::crypto::aws_lc_rs::Ticketer::new().ok())
        .clone()
}

/// The session-ID cache, process-wide for the same reasons (sized by the first host
/// that asks for one).
fn session_cache(entries: usize) -> Arc<dyn StoresServerSessions + Send + Sync> {
    static C: OnceLock<Arc<rustls::server::ServerSessionMemoryCache>> = OnceLock::new();
    C.get_or_init(|| rustls::server::ServerSessionMemoryCache::new(entries))
        .clone()
}

/// Builds a host's rustls configuration from its settings and certificates.
pub fn build(
    settings: &Settings,
    mut keys: Vec<Arc<CertifiedKey>>,
    files: Vec<CertFiles>,
    strict_sni: bool,
) -> Result<HostTls, rustls::Error> {
    keys.sort_by_key(|k| k.key.algorithm() != rustls::SignatureAlgorithm::ECDSA);
    let mut provider = (*super::provider()).clone();
    provider.cipher_suites = suites(
        &settings.protocols,
        &settings.tls12_suites,
        &settings.tls13_suites,
        &provider.cipher_suites,
    );
    let provider = Arc::new(provider);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&settings.protocols)?;
    let builder = match &settings.client_auth {
        None => builder.with_no_client_auth(),
        Some(auth) => {
            let b = rustls::server::WebPkiClientVerifier::builder_with_provider(
                auth.roots.clone(),
                provider,
            );
            let b = if auth.mandatory {
                b
            } else {
                b.allow_unauthenticated()
            };
            let inner = b
                .build()
                .map_err(|e| rustls::Error::General(format!("client certificates: {e}")))?;
            builder.with_client_cert_verifier(Arc::new(DepthLimit {
                inner,
                depth: auth.depth,
            }))
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(Keys(keys)));
    config.ignore_client_order = settings.server_order;
    config.alpn_protocols = settings.alpn.clone();
    config.session_storage = match settings.cache_entries {
        0 => Arc::new(rustls::server::NoServerSessionStorage {}),
        n => session_cache(n),
    };
    if settings.tickets {
        if let Some(t) = ticketer() {
            config.ticketer = t;
        }
    }
    Ok(HostTls {
        config: Arc::new(config),
        files,
        strict_sni,
    })
}

/// The suites offered for the protocol versions asked for: of each version, those
/// configured (`SSLCipherSuite`, `SSLProxyCipherSuite`), else the provider's defaults.
pub(super) fn suites(
    protocols: &[&'static SupportedProtocolVersion],
    tls12: &[SupportedCipherSuite],
    tls13: &[SupportedCipherSuite],
    defaults: &[SupportedCipherSuite],
) -> Vec<SupportedCipherSuite> {
    let mut out = Vec::new();
    if protocols.contains(&&rustls::version::TLS13) {
        out.extend(pick(tls13, defaults, true));
    }
    if protocols.contains(&&rustls::version::TLS12) {
        out.extend(pick(tls12, defaults, false));
    }
    out
}

/// The suites of one protocol version: those configured, else the provider's defaults.
fn pick(
    configured: &[SupportedCipherSuite],
    defaults: &[SupportedCipherSuite],
    tls13: bool,
) -> Vec<SupportedCipherSuite> {
    let is13 = |s: &SupportedCipherSuite| matches!(s, SupportedCipherSuite::Tls13(_));
    let from = if configured.is_empty() {
        defaults
    } else {
        configured
    };
    from.iter().filter(|s| is13(s) == tls13).copied().collect()
}

/// `SSLProtocol`: `[+|-]protocol …` as mod_ssl reads it (a bare name sets, `+` adds, `-`
/// removes; `all` is every version). Returns the versions rustls offers of those, and
/// warnings for versions asked for that it does not implement. An error when none is left.
pub fn protocols(
    args: &[String],
) -> Result<(Vec<&'static SupportedProtocolVersion>, Vec<String>), String> {
    // Bits: SSLv3, TLSv1, TLSv1.1, TLSv1.2, TLSv1.3.
    const ALL: u8 = 0b11111;
    let mut set = 0u8;
    let mut legacy_asked = Vec::new();
    for a in args {
        let (op, name) = match a.as_bytes().first() {
            Some(b'+') => ('+', &a[1..]),
            Some(b'-') => ('-', &a[1..]),
            _ => ('=', a.as_str()),
        };
        let bit = match name.to_ascii_lowercase().as_str() {
            "all" => ALL,
            "sslv2" => 0,
            "sslv3" => 1,
            "tlsv1" => 2,
            "tlsv1.1" => 4,
            "tlsv1.2" => 8,
            "tlsv1.3" => 16,
            _ => return Err(format!("SSLProtocol: unknown protocol '{a}'")),
        };
        match op {
            '+' => set |= bit,
            '-' => set &= !bit,
            _ => set = bit,
        }
        if op != '-' && bit & 0b00111 != 0 && bit != ALL {
            legacy_asked.push(name.to_string());
        }
    }
    let mut out: Vec<&'static SupportedProtocolVersion> = Vec::new();
    if set & 16 != 0 {
        out.push(&rustls::version::TLS13);
    }
    if set & 8 != 0 {
        out.push(&rustls::version::TLS12);
    }
    let mut warnings = Vec::new();
    if !legacy_asked.is_empty() {
        warnings.push(format!(
            "SSLProtocol: {} not offered: rustls implements TLS 1.2 and 1.3 only (older versions are broken and no current browser uses them)",
            legacy_asked.join(", ")
        ));
    }
    if out.is_empty() {
        return Err(
            "SSLProtocol leaves no protocol ringproxy offers (TLSv1.2 and TLSv1.3)".to_string(),
        );
    }
    Ok((out, warnings))
}

/// The TLS 1.2 suites rustls offers, with the OpenSSL names mod_ssl's cipher strings use
/// and the attributes OpenSSL's keywords select on.
struct Known {
    openssl: &'static str,
    suite: SupportedCipherSuite,
    ecdsa: bool,
    /// 128, 256 (AES) or 0 (ChaCha20).
    aes: u16,
}

fn known() -> [Known; 6] {
    let k = |openssl, suite, ecdsa, aes| Known {
        openssl,
        suite,
        ecdsa,
        aes,
    };
    [
        k(
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            true,
            128,
        ),
        k(
            "ECDHE-RSA-AES128-GCM-SHA256",
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            false,
            128,
        ),
        k(
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            true,
            256,
        ),
        k(
            "ECDHE-RSA-AES256-GCM-SHA384",
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            false,
            256,
        ),
        k(
            "ECDHE-ECDSA-CHACHA20-POLY1305",
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            true,
            0,
        ),
        k(
            "ECDHE-RSA-CHACHA20-POLY1305",
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            false,
            0,
        ),
    ]
}

/// A suite's name as OpenSSL gives it (mod_ssl's `SSL_CIPHER`): TLS 1.3 suites by their
/// RFC name, TLS 1.2 ones by OpenSSL's own.
pub fn openssl_name(suite: SupportedCipherSuite) -> &'static str {
    let s = suite.suite();
    if let Some(k) = known().into_iter().find(|k| k.suite.suite() == s) {
        return k.openssl;
    }
    match s {
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        other => other.as_str().unwrap_or(""),
    }
}

/// Which of the known suites one OpenSSL cipher-string word selects. `None`: a word
/// OpenSSL knows that selects none of them (DHE, CBC, RSA key exchange, NULL…), or one
/// ringproxy does not know.
fn selects(word: &str, k: &Known) -> Option<bool> {
    let w = word.to_ascii_uppercase();
    if w.eq_ignore_ascii_case(k.openssl) {
        return Some(true);
    }
    Some(match w.as_str() {
        "ALL"
        | "DEFAULT"
        | "HIGH"
        | "ECDHE"
        | "EECDH"
        | "KECDHE"
        | "KEECDH"
        | "AEAD"
        | "COMPLEMENTOFDEFAULT" => true,
        "AESGCM" | "AES" => k.aes != 0,
        "AES128" => k.aes == 128,
        "AES256" => k.aes == 256,
        "CHACHA20" => k.aes == 0,
        "ECDSA" | "AECDSA" => k.ecdsa,
        "RSA" | "ARSA" => !k.ecdsa,
        "SHA256" => k.aes != 256,
        "SHA384" => k.aes == 256,
        _ => return None,
    })
}

/// Why a word selects nothing rustls offers, for the warning.
fn not_offered_reason(word: &str) -> &'static str {
    let w = word.to_ascii_uppercase();
    if w.starts_with("DHE") || w.starts_with("EDH") || w.contains("-DHE-") || w == "KDHE" {
        "finite-field DHE"
    } else if w.contains("CBC")
        || w.ends_with("-SHA")
        || w.contains("-SHA256") && !w.contains("GCM")
        || w.contains("-SHA384") && !w.contains("GCM")
    {
        "CBC mode"
    } else if w.contains("NULL")
        || w.contains("RC4")
        || w.contains("DES")
        || w.contains("MD5")
        || w.contains("EXP")
        || w == "LOW"
        || w == "MEDIUM"
    {
        "broken cipher"
    } else if w.starts_with("AES") || w.starts_with("CAMELLIA") || w == "KRSA" {
        "RSA key exchange (no forward secrecy)"
    } else {
        "not a suite rustls implements"
    }
}

/// `SSLCipherSuite` for TLS 1.2 (an OpenSSL cipher string: `:`-, `,`- or space-separated
/// words; `!`/`-` remove, `+` moves to the end, `A+B` is both, `@STRENGTH` sorts).
/// Returns the suites in preference order and warnings for words that select only suites
/// rustls does not implement.
pub fn tls12_suites(spec: &str) -> (Vec<SupportedCipherSuite>, Vec<String>) {
    let known = known();
    let mut order: Vec<usize> = Vec::new();
    let mut banned = [false; 6];
    let mut skipped = Vec::new();
    for word in spec.split([':', ',', ' ']).filter(|w| !w.is_empty()) {
        if word.starts_with('@') {
            if word.eq_ignore_ascii_case("@STRENGTH") {
                order.sort_by_key(|&i| std::cmp::Reverse(known[i].aes.max(200)));
            }
            continue;
        }
        let (op, body) = match word.as_bytes()[0] {
            b'!' | b'-' | b'+' => (word.as_bytes()[0], &word[1..]),
            _ => (b'=', word),
        };
        let matched: Vec<usize> = (0..known.len())
            .filter(|&i| {
                body.split('+')
                    .all(|part| selects(part, &known[i]) == Some(true))
            })
            .collect();
        match op {
            b'!' => {
                for &i in &matched {
                    banned[i] = true;
                }
                order.retain(|i| !matched.contains(i));
            }
            b'-' => order.retain(|i| !matched.contains(i)),
            b'+' => {
                let (moved, kept): (Vec<usize>, Vec<usize>) =
                    order.iter().partition(|i| matched.contains(i));
                order = kept.into_iter().chain(moved).collect();
            }
            _ => {
                if matched.is_empty() {
                    skipped.push(format!("{body} ({})", not_offered_reason(body)));
                }
                for i in matched {
                    if !banned[i] && !order.contains(&i) {
                        order.push(i);
                    }
                }
            }
        }
    }
    let mut warnings = Vec::new();
    if !skipped.is_empty() {
        warnings.push(format!(
            "SSLCipherSuite: not offered: {} (rustls offers AEAD suites with ECDHE only)",
            skipped.join(", ")
        ));
    }
    (
        order.into_iter().map(|i| known[i].suite).collect(),
        warnings,
    )
}

/// `SSLCipherSuite TLSv1.3 …`: TLS 1.3 suite names (`TLS_AES_128_GCM_SHA256`…).
pub fn tls13_suites(spec: &str) -> (Vec<SupportedCipherSuite>, Vec<String>) {
    let all = [
        ("TLS_AES_128_GCM_SHA256", cs::TLS13_AES_128_GCM_SHA256),
        ("TLS_AES_256_GCM_SHA384", cs::TLS13_AES_256_GCM_SHA384),
        (
            "TLS_CHACHA20_POLY1305_SHA256",
            cs::TLS13_CHACHA20_POLY1305_SHA256,
        ),
    ];
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for word in spec.split([':', ',', ' ']).filter(|w| !w.is_empty()) {
        match all.iter().find(|(n, _)| n.eq_ignore_ascii_case(word)) {
            Some((_, s)) if !out.contains(s) => out.push(*s),
            Some(_) => {}
            None => skipped.push(word.to_string()),
        }
    }
    let mut warnings = Vec::new();
    if !skipped.is_empty() {
        warnings.push(format!(
            "SSLCipherSuite TLSv1.3: not offered: {} (rustls implements TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256)",
            skipped.join(", ")
        ));
    }
    (out, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &[SupportedCipherSuite]) -> Vec<&'static str> {
        s.iter().filter_map(|s| s.suite().as_str()).collect()
    }

    #[test]
    fn ssl_protocol_is_read_as_mod_ssl_reads_it() {
        let args = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let v = |s: &str| {
            let (p, w) = protocols(&args(s)).unwrap();
            let p: Vec<_> = p.iter().map(|p| format!("{:?}", p.version)).collect();
            (p.join(","), w.len())
        };
        assert_eq!(v("all -SSLv3"), ("TLSv1_3,TLSv1_2".into(), 0));
        assert_eq!(
            v("all -SSLv3 -TLSv1 -TLSv1.1"),
            ("TLSv1_3,TLSv1_2".into(), 0)
        );
        assert_eq!(v("-all +TLSv1.3"), ("TLSv1_3".into(), 0));
        assert_eq!(v("TLSv1.2"), ("TLSv1_2".into(), 0));
        // Versions rustls does not implement are said, not silently dropped.
        assert_eq!(v("TLSv1.2 +TLSv1.1 +TLSv1"), ("TLSv1_2".into(), 1));
        let e = protocols(&args("TLSv1.1")).unwrap_err();
        assert!(e.contains("leaves no protocol"), "{e}");
        assert!(protocols(&args("TLSv9")).unwrap_err().contains("TLSv9"));
    }

    #[test]
    fn cipher_strings_map_onto_rustls_suites() {
        let t = |s: &str| {
            let (suites, w) = tls12_suites(s);
            (names(&suites), w)
        };
        // Mozilla's intermediate list: the ECDHE AEAD suites in its order; the DHE ones
        // are said to be left out.
        let (n, w) = t("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256");
        assert_eq!(n.len(), 6);
        assert_eq!(n[0], "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
        assert!(
            w[0].contains("DHE-RSA-AES128-GCM-SHA256 (finite-field DHE)"),
            "{w:?}"
        );
        // Keywords, exclusions and `+` intersections.
        let (n, w) = t("HIGH:!aNULL:!MD5");
        assert_eq!((n.len(), w.len()), (6, 0));
        let (n, _) = t("EECDH+AESGCM:EDH+AESGCM");
        assert_eq!(n.len(), 4);
        assert!(n.iter().all(|n| n.contains("GCM")));
        let (n, _) = t("ECDHE:!CHACHA20:!AES256");
        assert_eq!(
            n,
            [
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
            ]
        );
        let (n, _) = t("ECDHE:+AES128");
        assert_eq!(
            n.last().copied(),
            Some("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
        );
        // CBC and RSA key exchange only: nothing left, and the warning says why.
        let (n, w) = t("AES128-SHA:ECDHE-RSA-AES128-SHA256");
        assert!(n.is_empty());
        assert!(w[0].contains("AES128-SHA (CBC mode)"), "{w:?}");
        let (n, w) = tls13_suites("TLS_AES_256_GCM_SHA384:TLS_AES_128_CCM_SHA256");
        assert_eq!(names(&n), ["TLS13_AES_256_GCM_SHA384"]);
        assert!(w[0].contains("TLS_AES_128_CCM_SHA256"));
    }
}
