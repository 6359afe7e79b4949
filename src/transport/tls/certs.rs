//! A virtual host's certificate as mod_ssl names it: `SSLCertificateFile` (the leaf, then
//! any intermediates in the same file), `SSLCertificateKeyFile` (or the key inside the
//! certificate file, when that line is absent), `SSLCertificateChainFile` (intermediates
//! appended after those of the certificate file). PEM is read with `rustls-pki-types`;
//! the key must match the leaf, or loading fails naming both files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The files of one certificate, as the configuration names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    /// `SSLCertificateKeyFile`; `None`: the key is in `cert`.
    pub key: Option<PathBuf>,
    /// `SSLCertificateChainFile`.
    pub chain: Option<PathBuf>,
}

/// Why a certificate could not be loaded; each names the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{0}: {1}")]
    Read(PathBuf, rustls_pki_types::pem::Error),
    #[error("{0}: no certificate in it")]
    NoCertificate(PathBuf),
    #[error("{0}: not a regular file")]
    NotAFile(PathBuf),
    #[error("{0}: too large for a PEM certificate or key file")]
    TooLarge(PathBuf),
    #[error("{0}: no private key in it")]
    NoKey(PathBuf),
    #[error("{0}: the private key is encrypted; ringproxy asks for no pass phrase (SSLPassPhraseDialog): store it decrypted, readable by root only (openssl pkey -in KEY -out KEY.plain)")]
    Encrypted(PathBuf),
    #[error("{key}: this private key does not match the certificate in {cert} ({why})")]
    Mismatch {
        key: PathBuf,
        cert: PathBuf,
        why: String,
    },
    #[error("{0}: the private key is of a kind that cannot sign here ({1})")]
    Unusable(PathBuf, String),
}

/// Larger than any certificate chain or CA bundle (Debian's is about 200 KiB).
const MAX_PEM_FILE: u64 = 4 << 20;

/// Reads a PEM file whole, refusing what is not a regular file of sane size (a device or a
/// pipe named by mistake would otherwise block or never end).
fn read_pem(path: &Path) -> Result<Vec<u8>, CertError> {
    let io = |e| CertError::Read(path.to_path_buf(), rustls_pki_types::pem::Error::Io(e));
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(CertError::NotAFile(path.to_path_buf()));
    }
    if meta.len() > MAX_PEM_FILE {
        return Err(CertError::TooLarge(path.to_path_buf()));
    }
    std::fs::read(path).map_err(io)
}

/// Reads every certificate in a PEM file, in order.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let read = |e| CertError::Read(path.to_path_buf(), e);
    let text = read_pem(path)?;
    CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)
}

/// Loads and checks one certificate with its key and chain.
pub fn load(files: &CertFiles) -> Result<Arc<CertifiedKey>, CertError> {
    let mut chain = read_certs(&files.cert)?;
    if chain.is_empty() {
        return Err(CertError::NoCertificate(files.cert.clone()));
    }
    if let Some(extra) = &files.chain {
        chain.extend(read_certs(extra)?);
    }
    let key_path = files.key.as_ref().unwrap_or(&files.cert);
    let text = read_pem(key_path)?;
    let key = match PrivateKeyDer::from_pem_slice(&text) {
        Ok(k) => k,
        Err(rustls_pki_types::pem::Error::NoItemsFound) => {
            // An encrypted key is skipped by the PEM reader; say what it is.
            if memchr::memmem::find(&text, b"ENCRYPTED").is_some() {
                return Err(CertError::Encrypted(key_path.clone()));
            }
            return Err(CertError::NoKey(key_path.clone()));
        }
        Err(e) => return Err(CertError::Read(key_path.clone(), e)),
    };
    let provider = super::provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| CertError::Unusable(key_path.clone(), e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| CertError::Mismatch {
        key: key_path.clone(),
        cert: files.cert.clone(),
        why: e.to_string(),
    })?;
    Ok(Arc::new(certified))
}

/// A warning when the leaf certificate has expired or is not valid yet: clients will refuse
/// it, but an admin may be about to replace it, so loading goes on.
pub fn expiry_warning(key: &CertifiedKey) -> Option<String> {
    let leaf = key.cert.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs() as i64;
    let v = cert.validity();
    if v.not_after.timestamp() < now {
        Some(format!(
            "the certificate expired on {} (clients will refuse it)",
            v.not_after
        ))
    } else if v.not_before.timestamp() > now {
        Some(format!(
            "the certificate is not valid before {} (clients will refuse it until then)",
            v.not_before
        ))
    } else {
        None
    }
}

/// The CAs client certificates are checked against: every certificate in `file`
/// (`SSLCACertificateFile`) and in the files of `dir` (`SSLCACertificatePath`; OpenSSL's
/// hash links and any `.pem`/`.crt` file there).
pub fn load_roots(
    file: Option<&Path>,
    dir: Option<&Path>,
) -> Result<rustls::RootCertStore, CertError> {
    let mut roots = rustls::RootCertStore::empty();
    let mut files: Vec<PathBuf> = file.map(Path::to_path_buf).into_iter().collect();
    if let Some(dir) = dir {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| CertError::Read(dir.to_path_buf(), rustls_pki_types::pem::Error::Io(e)))?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        files.extend(found);
    }
    for f in &files {
        let certs = read_certs(f)?;
        // A directory may hold other files; an explicit file must hold certificates.
        if certs.is_empty() && Some(f.as_path()) == file {
            return Err(CertError::NoCertificate(f.clone()));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| CertError::Unusable(f.clone(), e.to_string()))?;
        }
    }
    if roots.is_empty() {
        let what = dir.or(file).map(Path::to_path_buf).unwrap_or_default();
        return Err(CertError::NoCertificate(what));
    }
    Ok(roots)
}

/// The parts of a client certificate that mod_ssl's variables show. `None` for a
/// certificate that does not parse (it was verified, so that does not happen in practice).
pub fn client_cert_facts(der: &[u8]) -> Option<crate::transport::ClientCert> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(crate::transport::ClientCert {
        subject: rfc2253(cert.subject()),
        issuer: rfc2253(cert.issuer()),
        serial: cert
            .raw_serial()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect(),
        pem: pem_certificate(der),
    })
}

/// A certificate as PEM, base64 in lines of 64 as OpenSSL writes it.
fn pem_certificate(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 60);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    // Base64 is ASCII: every 64-byte piece is whole characters.
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// A distinguished name as OpenSSL prints it with `XN_FLAG_RFC2253` (mod_ssl's default
/// for `SSL_*_DN`): the last RDN first, `,` between RDNs, `+` within one, special
/// characters escaped.
fn rfc2253(name: &x509_parser::x509::X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let mut out = String::new();
    for (i, rdn) in name
        .iter_rdn()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            match x509_parser::objects::oid2abbrev(attr.attr_type(), registry) {
                Ok(abbrev) => out.push_str(abbrev),
                Err(_) => out.push_str(&attr.attr_type().to_id_string()),
            }
            out.push('=');
            let value = attr.as_str().unwrap_or("");
            let last = value.chars().count().saturating_sub(1);
            for (k, c) in value.chars().enumerate() {
                let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
                    || (k == 0 && (c == '#' || c == ' '))
                    || (k == last && c == ' ');
                if special {
                    out.push('\\');
                }
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The PEM a client certificate is passed on as reads back as the same certificate,
    /// and is written as rcgen (and OpenSSL) write it.
    #[test]
    fn client_certificates_as_pem() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["client.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let facts = client_cert_facts(cert.der()).unwrap();
        assert_eq!(
            facts.pem.replace("\r\n", "\n"),
            cert.pem().replace("\r\n", "\n")
        );
        let back = CertificateDer::from_pem_slice(facts.pem.as_bytes()).unwrap();
        assert_eq!(back.as_ref(), cert.der().as_ref());
    }

    /// A self-signed certificate for `name` and its key, as PEM.
    fn make(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn loads_what_mod_ssl_names_and_names_the_file_when_it_cannot() {
        let dir = std::env::temp_dir().join(format!("ringproxy-certs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = make("a.example");
        let (other_cert, other_key) = make("b.example");
        let cert_p = write(&dir, "a.crt", &cert);
        let key_p = write(&dir, "a.key", &key);
        let both_p = write(&dir, "a.pem", &format!("{cert}{key}"));
        let chain_p = write(&dir, "chain.crt", &other_cert);
        let other_key_p = write(&dir, "b.key", &other_key);
        let empty_p = write(&dir, "empty.pem", "");
        let files = |cert: &PathBuf, key: Option<&PathBuf>, chain: Option<&PathBuf>| CertFiles {
            cert: cert.clone(),
            key: key.cloned(),
            chain: chain.cloned(),
        };

        // Separate files; the key inside the certificate file; a chain file appended.
        assert_eq!(
            load(&files(&cert_p, Some(&key_p), None))
                .unwrap()
                .cert
                .len(),
            1
        );
        assert_eq!(load(&files(&both_p, None, None)).unwrap().cert.len(), 1);
        let chained = load(&files(&cert_p, Some(&key_p), Some(&chain_p))).unwrap();
        assert_eq!(chained.cert.len(), 2);

        let err = |f: CertFiles| load(&f).err().map(|e| e.to_string()).unwrap();
        let e = err(files(&cert_p, Some(&other_key_p), None));
        assert!(
            e.contains("b.key") && e.contains("does not match") && e.contains("a.crt"),
            "{e}"
        );
        let e = err(files(&cert_p, None, None));
        assert!(e.contains("a.crt: no private key"), "{e}");
        let e = err(files(&empty_p, Some(&key_p), None));
        assert!(e.contains("empty.pem: no certificate"), "{e}");
        let e = err(files(&dir.join("missing.crt"), Some(&key_p), None));
        assert!(e.contains("missing.crt"), "{e}");
        // A device named by mistake is refused, not read forever.
        let e = err(files(&PathBuf::from("/dev/zero"), Some(&key_p), None));
        assert!(e.contains("/dev/zero: not a regular file"), "{e}");
        // An encrypted key is named as such (the PEM reader alone would say "no key").
        let enc_p = write(
            &dir,
            "enc.key",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
        );
        let e = err(files(&cert_p, Some(&enc_p), None));
        assert!(e.contains("enc.key: the private key is encrypted"), "{e}");

        // Expired: loaded, with a warning saying when.
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["old.example".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let old = params.self_signed(&key).unwrap();
        let old_p = write(
            &dir,
            "old.pem",
            &format!("{}{}", old.pem(), key.serialize_pem()),
        );
        let loaded = load(&files(&old_p, None, None)).unwrap();
        let w = expiry_warning(&loaded).unwrap();
        assert!(w.contains("expired on") && w.contains("2021"), "{w}");
        assert!(expiry_warning(&chained).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
