//! What to request: URLs parsed once, requests serialized once per target, so the hot path
//! only writes prepared bytes.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use rustls::pki_types::ServerName;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("'{0}': only http:// and https:// URLs are supported")]
    Scheme(String),
    #[error("{0}")]
    Tls(String),
    #[error("'{0}': no host")]
    NoHost(String),
    #[error("'{0}': bad port")]
    BadPort(String),
    #[error("'{0}': cannot resolve host")]
    Resolve(String),
    #[error("header '{0}': expected 'Name: value'")]
    BadHeader(String),
}

/// One prepared request.
#[derive(Clone, Debug)]
pub struct Target {
    pub url: String,
    pub addr: SocketAddr,
    /// The whole request, head and body.
    pub request: Vec<u8>,
    pub is_head: bool,
    /// For an https:// URL: the client configuration and the name to ask for.
    pub tls: Option<TlsTarget>,
}

#[derive(Clone, Debug)]
pub struct TlsTarget {
    pub config: Arc<rustls::ClientConfig>,
    pub name: ServerName<'static>,
}

/// Request options shared by every target.
#[derive(Clone, Debug, Default)]
pub struct RequestSpec {
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub tls: TlsOptions,
}

/// How https:// URLs are reached.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// `--cacert`: trust these CAs (default: the system's bundle).
    pub cacert: Option<std::path::PathBuf>,
    /// `--insecure`: no certificate check at all.
    pub insecure: bool,
    /// `--sni`: the server name to send and check (default: the URL's host).
    pub sni: Option<String>,
    /// `--new-connection`: a new connection, with a full handshake (no resumption), for
    /// every request.
    pub new_connection: bool,
}

/// Where Debian (and most distributions) keep the system's trusted CAs.
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

impl TlsOptions {
    fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, TargetError> {
        let provider = ringproxy::transport::tls::provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TargetError::Tls(e.to_string()))?;
        let mut config = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(
                    ringproxy::transport::tls::AnyCertificate::new(provider),
                ))
                .with_no_client_auth()
        } else {
            let file = self.cacert.clone().unwrap_or_else(|| SYSTEM_CAS.into());
            let roots =
                ringproxy::transport::tls::certs::load_roots(Some(&file), None).map_err(|e| {
                    TargetError::Tls(format!("{e} (give --cacert FILE, or --insecure)"))
                })?;
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        if self.new_connection {
            config.resumption = rustls::client::Resumption::disabled();
        }
        Ok(Arc::new(config))
    }
}

/// Splits `http[s]://host[:port]/path?q` into (host, port, path-and-query).
pub fn split_url(url: &str) -> Result<(String, u16, String), TargetError> {
    let (rest, default_port) = match url.strip_prefix("http://") {
        Some(rest) => (rest, 80),
        None => (
            url.strip_prefix("https://")
                .ok_or_else(|| TargetError::Scheme(url.to_string()))?,
            443,
        ),
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    if authority.is_empty() {
        return Err(TargetError::NoHost(url.to_string()));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let end = v6
            .find(']')
            .ok_or_else(|| TargetError::NoHost(url.to_string()))?;
        let port = match &v6[end + 1..] {
            "" => default_port,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| TargetError::BadPort(url.to_string()))?,
        };
        (v6[..end].to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse()
                    .map_err(|_| TargetError::BadPort(url.to_string()))?,
            ),
            None => (authority.to_string(), default_port),
        }
    };
    Ok((host, port, path))
}

/// Parses `Name: value`.
pub fn parse_header(h: &str) -> Result<(String, String), TargetError> {
    match h.split_once(':') {
        Some((k, v)) if !k.trim().is_empty() && !k.contains([' ', '\t']) => {
            Ok((k.trim().to_string(), v.trim().to_string()))
        }
        _ => Err(TargetError::BadHeader(h.to_string())),
    }
}

impl Target {
    pub fn new(url: &str, spec: &RequestSpec) -> Result<Target, TargetError> {
        let (host, port, path) = split_url(url)?;
        let addr = (host.as_str(), port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| TargetError::Resolve(url.to_string()))?;
        let method = if spec.method.is_empty() {
            "GET"
        } else {
            spec.method.as_str()
        };
        let mut req = format!("{method} {path} HTTP/1.1\r\n");
        let has = |name: &str| {
            spec.headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case(name))
        };
        if !has("host") {
            let host_hdr = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.clone()
            };
            let https = url.starts_with("https://");
            if port == if https { 443 } else { 80 } {
                req.push_str(&format!("Host: {host_hdr}\r\n"));
            } else {
                req.push_str(&format!("Host: {host_hdr}:{port}\r\n"));
            }
        }
        if !has("user-agent") {
            req.push_str("User-Agent: ringload\r\n");
        }
        for (k, v) in &spec.headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if spec.tls.new_connection && !has("connection") {
            req.push_str("Connection: close\r\n");
        }
        if !spec.body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
            req.push_str(&format!("Content-Length: {}\r\n", spec.body.len()));
        }
        req.push_str("\r\n");
        let mut request = req.into_bytes();
        request.extend_from_slice(&spec.body);
        let tls = match url.starts_with("https://") {
            false => None,
            true => {
                let name = spec.tls.sni.clone().unwrap_or_else(|| host.clone());
                let name = ServerName::try_from(name)
                    .map_err(|e| TargetError::Tls(format!("server name: {e}")))?;
                Some(TlsTarget {
                    config: spec.tls.client_config()?,
                    name,
                })
            }
        };
        Ok(Target {
            url: url.to_string(),
            addr,
            request,
            is_head: method == "HEAD",
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_url_table() {
        let cases = [
            ("http://127.0.0.1:8080/a?b", Ok(("127.0.0.1", 8080, "/a?b"))),
            ("http://localhost", Ok(("localhost", 80, "/"))),
            ("http://h?x=1", Ok(("h", 80, "/?x=1"))),
            ("http://[::1]:9/p", Ok(("::1", 9, "/p"))),
            ("https://h/", Ok(("h", 443, "/"))),
            ("https://h:8443", Ok(("h", 8443, "/"))),
            ("ftp://h/", Err(TargetError::Scheme("ftp://h/".into()))),
            (
                "http://h:x/",
                Err(TargetError::BadPort("http://h:x/".into())),
            ),
            ("http:///p", Err(TargetError::NoHost("http:///p".into()))),
        ];
        for (url, want) in cases {
            let got = split_url(url);
            let want = want.map(|(h, p, path)| (h.to_string(), p, path.to_string()));
            assert_eq!(got, want, "{url}");
        }
    }

    #[test]
    fn request_bytes() {
        let spec = RequestSpec {
            method: "POST".into(),
            headers: vec![("X-A".into(), "1".into())],
            body: b"hi".to_vec(),
            ..Default::default()
        };
        let t = Target::new("http://127.0.0.1:8080/p", &spec).unwrap();
        assert_eq!(
            String::from_utf8(t.request).unwrap(),
            "POST /p HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: ringload\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nhi"
        );
        assert!(parse_header("Bad Header").is_err());
        assert_eq!(parse_header("A: b c").unwrap(), ("A".into(), "b c".into()));
    }
}
