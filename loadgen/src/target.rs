//! What to request: URLs parsed once, requests serialized once per target, so the hot path
//! only writes prepared bytes.

use std::net::{SocketAddr, ToSocketAddrs};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("'{0}': only http:// URLs are supported")]
    Scheme(String),
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
}

/// Request options shared by every target.
#[derive(Clone, Debug, Default)]
pub struct RequestSpec {
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Splits `http://host[:port]/path?q` into (host, port, path-and-query).
pub fn split_url(url: &str) -> Result<(String, u16, String), TargetError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| TargetError::Scheme(url.to_string()))?;
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
            "" => 80,
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
            None => (authority.to_string(), 80),
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
            if port == 80 {
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
        if !spec.body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
            req.push_str(&format!("Content-Length: {}\r\n", spec.body.len()));
        }
        req.push_str("\r\n");
        let mut request = req.into_bytes();
        request.extend_from_slice(&spec.body);
        Ok(Target {
            url: url.to_string(),
            addr,
            request,
            is_head: method == "HEAD",
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
            ("https://h/", Err(TargetError::Scheme("https://h/".into()))),
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
