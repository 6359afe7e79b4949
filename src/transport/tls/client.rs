//! TLS to members: one rustls client configuration per `https://` or `wss://` member, built
//! from mod_ssl's `SSLProxy*` settings.
//!
//! The configuration is per member because the name a member's certificate is checked
//! against is the one configured for it (`BalancerMember https://app1.internal:8443`),
//! whatever server name the handshake sends (the client's Host with ProxyPreserveHost On,
//! as Apache does), and because each member keeps its own sessions for resumption.
//!
//! What each setting checks, as mod_ssl does as a proxy client:
//! - `SSLProxyVerify require` (here also the default, see [`Verify`]): the chain up to a
//!   trusted CA, with `SSLProxyVerifyDepth` as mod_ssl counts it;
//! - `SSLProxyCheckPeerName` (default on): the configured name, against the certificate's
//!   subjectAltName (RFC 6125, as browsers; a certificate naming its host only in the CN
//!   fails);
//! - `SSLProxyCheckPeerExpire` (default on): the validity dates.
//!
//! Name and dates are checked under `SSLProxyVerify none` too, as mod_ssl does: `none`
//! only stops asking who issued the certificate.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, ResolvesClientCert, Resumption,
    WebPkiServerVerifier,
};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme,
    SupportedCipherSuite, SupportedProtocolVersion,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// A TLS member's client side: its configuration and the name its certificate must have.
#[derive(Clone, Debug)]
pub struct MemberTls {
    pub config: Arc<ClientConfig>,
    /// The configured host: what is checked, and the server name sent unless the request
    /// says otherwise (ProxyPreserveHost On).
    pub name: ServerName<'static>,
    /// The member's sessions for resumption (the store `config` uses), shared by the
    /// workers.
    sessions: Arc<dyn ClientSessionStore>,
}

impl MemberTls {
    /// After a handshake that sent `sent` and used `group`: the next handshake with that
    /// name starts with `group` alone. rustls keeps the group it started with
    /// (X25519MLKEM768, sent beside a classical X25519 share) as that hint, even when
    /// the member chose the X25519 share, so every later handshake would make an ML-KEM
    /// key nobody uses (about 14 µs of CPU). A member that chose the hybrid keeps it.
    pub fn remember_group(&self, sent: ServerName<'static>, group: rustls::NamedGroup) {
        self.sessions.set_kx_hint(sent, group);
    }
}

/// Sessions kept per member for resumption (rustls's default size).
const SESSIONS_PER_MEMBER: usize = 256;

/// `SSLProxyVerify`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Verify {
    /// Any issuer (name and dates still checked unless turned off).
    None,
    /// The chain to a trusted CA. ringproxy's default where Apache's is `none`: a member
    /// reached over TLS should be the one it claims to be; `-t` says so when the
    /// directive is missing.
    #[default]
    Require,
}

/// What one member's TLS is made of (merged from its `<Proxy>` section, the server that
/// defines it and the main server).
#[derive(Clone, Debug)]
pub struct ClientSettings {
    pub protocols: Vec<&'static SupportedProtocolVersion>,
    pub tls12_suites: Vec<SupportedCipherSuite>,
    pub tls13_suites: Vec<SupportedCipherSuite>,
    pub verify: Verify,
    /// The CAs trusted (`SSLProxyCACertificateFile`/`Path`, else the system's store).
    pub roots: Arc<RootCertStore>,
    /// `SSLProxyVerifyDepth`, when written.
    pub depth: Option<u32>,
    pub check_name: bool,
    pub check_expire: bool,
    /// `SSLProxyMachineCertificateFile`: the certificate presented to members that ask.
    pub client_cert: Option<Arc<CertifiedKey>>,
}

/// The system's trusted CAs (rustls-native-certs: `SSL_CERT_FILE`/`SSL_CERT_DIR`, else the
/// distribution's bundle, `/etc/ssl/certs` on Debian), loaded once. `Err` says why none.
pub fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map_or("none found".to_string(), |e| e.to_string());
                return Err(format!(
                    "the system's trusted CAs could not be loaded ({why})"
                ));
            }
            Ok(Arc::new(roots))
        })
        .clone()
}

/// The client side of a member whose certificate must name `name`.
pub fn member(settings: &ClientSettings, name: ServerName<'static>) -> Result<MemberTls, Error> {
    let mut provider = (*super::provider()).clone();
    provider.cipher_suites = super::host::suites(
        &settings.protocols,
        &settings.tls12_suites,
        &settings.tls13_suites,
        &provider.cipher_suites,
    );
    let provider = Arc::new(provider);
    let chain = match settings.verify {
        Verify::None => None,
        Verify::Require => Some(
            WebPkiServerVerifier::builder_with_provider(settings.roots.clone(), provider.clone())
                .build()
                .map_err(|e| Error::General(format!("member certificates: {e}")))?,
        ),
    };
    let verifier = Arc::new(MemberVerifier {
        chain,
        roots: settings.roots.clone(),
        name: name.clone(),
        depth: settings.depth,
        check_name: settings.check_name,
        check_expire: settings.check_expire,
        signatures: super::AnyCertificate::new(provider.clone()),
    });
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&settings.protocols)?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &settings.client_cert {
        Some(key) => builder.with_client_cert_resolver(Arc::new(MachineCert(key.clone()))),
        None => builder.with_no_client_auth(),
    };
    // Members speak HTTP/1.1 to ringproxy; saying so lets a member that also speaks h2
    // pick the protocol ringproxy talks.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let sessions: Arc<dyn ClientSessionStore> =
        Arc::new(ClientSessionMemoryCache::new(SESSIONS_PER_MEMBER));
    config.resumption = Resumption::store(sessions.clone());
    Ok(MemberTls {
        config: Arc::new(config),
        name,
        sessions,
    })
}

/// `SSLProxyMachineCertificateFile`: one certificate, offered whatever CAs the member
/// names (mod_ssl picks among several by issuer; one is what sites use).
#[derive(Debug)]
struct MachineCert(Arc<CertifiedKey>);

impl ResolvesClientCert for MachineCert {
    fn resolve(&self, _: &[&[u8]], schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.0.key.choose_scheme(schemes).map(|_| self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

/// A member's certificate checked as its `SSLProxy*` settings say, against the name
/// configured for it (not the server name the handshake sent).
#[derive(Debug)]
struct MemberVerifier {
    /// webpki's chain verification; `None` under `SSLProxyVerify none`.
    chain: Option<Arc<WebPkiServerVerifier>>,
    roots: Arc<RootCertStore>,
    name: ServerName<'static>,
    depth: Option<u32>,
    check_name: bool,
    check_expire: bool,
    signatures: super::AnyCertificate,
}

impl ServerCertVerifier for MemberVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _sent_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let Some(chain) = &self.chain else {
            return self.without_chain(end_entity, now);
        };
        // A self-signed member certificate that is itself in SSLProxyCACertificateFile is
        // trusted as itself, as OpenSSL (and so Apache) trusts it, whatever its CA flag
        // says (`openssl req -x509` marks it a CA, which webpki refuses as a leaf).
        if self.is_anchor(end_entity) {
            return self.without_chain(end_entity, now);
        }
        // mod_ssl's depth: 1 allows a certificate signed by a trusted CA directly, each
        // more one intermediate.
        if let Some(d) = self.depth {
            if intermediates.len() as u64 >= u64::from(d.max(1)) {
                return Err(Error::InvalidCertificate(CertificateError::Other(
                    rustls::OtherError(Arc::new(ChainTooLong(d))),
                )));
            }
        }
        // SSLProxyCheckPeerExpire off: the chain is checked as of a moment the leaf was
        // valid (an expired member still has to be the one it says).
        let at = if self.check_expire {
            now
        } else {
            within_validity(end_entity, now)
        };
        match chain.verify_server_cert(end_entity, intermediates, &self.name, ocsp, at) {
            // webpki checks the name last, after the chain: with the name check off, a
            // name error means everything else passed.
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            r => r,
        }
    }

    // The handshake's signatures are checked whatever the certificate settings, by the
    // provider's algorithms (the one implementation, `AnyCertificate`'s).
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.signatures.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.signatures.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.supported_verify_schemes()
    }
}

impl MemberVerifier {
    /// Whether `cert` is one of the trusted CAs (same subject and key).
    fn is_anchor(&self, cert: &CertificateDer<'_>) -> bool {
        let Ok(ta) = webpki::anchor_from_trusted_cert(cert) else {
            return false;
        };
        self.roots.roots.iter().any(|r| {
            r.subject == ta.subject && r.subject_public_key_info == ta.subject_public_key_info
        })
    }

    /// `SSLProxyVerify none`: no issuer asked for; the name and the dates as set.
    fn without_chain(
        &self,
        cert: &CertificateDer<'_>,
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if self.check_expire {
            let (from, until) = validity(cert)?;
            let t = now.as_secs();
            if t < from {
                return Err(Error::InvalidCertificate(CertificateError::NotValidYet));
            }
            if t > until {
                return Err(Error::InvalidCertificate(CertificateError::Expired));
            }
        }
        if self.check_name {
            let ee = webpki::EndEntityCert::try_from(cert)
                .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
            ee.verify_is_valid_for_subject_name(&self.name)
                .map_err(|_| Error::InvalidCertificate(CertificateError::NotValidForName))?;
        }
        Ok(ServerCertVerified::assertion())
    }
}

/// The chain had more intermediates than `SSLProxyVerifyDepth` allows.
#[derive(Debug)]
struct ChainTooLong(u32);

impl std::fmt::Display for ChainTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "certificate chain longer than SSLProxyVerifyDepth {} allows",
            self.0
        )
    }
}

impl std::error::Error for ChainTooLong {}

/// A certificate's notBefore and notAfter, in seconds since the epoch.
fn validity(cert: &CertificateDer<'_>) -> Result<(u64, u64), Error> {
    let (_, c) = x509_parser::parse_x509_certificate(cert)
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let v = c.validity();
    let secs = |t: x509_parser::time::ASN1Time| u64::try_from(t.timestamp()).unwrap_or(0);
    Ok((secs(v.not_before), secs(v.not_after)))
}

/// `now`, or the nearest moment within the certificate's validity.
fn within_validity(cert: &CertificateDer<'_>, now: UnixTime) -> UnixTime {
    match validity(cert) {
        Ok((from, until)) => {
            let t = now.as_secs().clamp(from, until.max(from));
            UnixTime::since_unix_epoch(Duration::from_secs(t))
        }
        Err(_) => now,
    }
}
