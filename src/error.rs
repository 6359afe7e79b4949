//! Typed request errors, mapped once to a status code and a small response.
//!
//! Each error says which side it came from; whether a request may be sent again is decided
//! from its kind where requests are sent (`proxy::attempt`), by the retry rules (`proxy::policy`).

use crate::http::body::BodyError;
use crate::http::head::HeadError;
use crate::http::write::{default_reason, local_head};
use crate::routing::normalize::PathError;
use crate::transport::io::IoFail;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client,
    Backend,
    Proxy,
}

#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    #[error("bad request head: {0}")]
    BadHead(#[from] HeadError),
    #[error("bad chunked body: {0}")]
    BadBody(#[from] BodyError),
    #[error("{0}")]
    BadPath(#[from] PathError),
    #[error("TRACE refused (TraceEnable Off)")]
    TraceDisabled,
    #[error("TRACE with a request body refused (TraceEnable On; Extended allows it)")]
    TraceWithBody,
    #[error("no ProxyPass rule for this path")]
    NotProxied,
    #[error("access denied by the <Location> or <Proxy> rules")]
    Forbidden,
    /// A static file that does not exist (or a path nothing maps).
    #[error("file does not exist: {0}")]
    FileNotFound(String),
    /// A static file the configuration does not let out; the reason goes to the error log.
    #[error("{0}")]
    FileForbidden(String),
    /// Reading a static file failed after it was opened.
    #[error("reading {0} failed: {1}")]
    FileIo(String, std::io::Error),
    /// mod_ssl: the Host header picks a virtual host whose TLS setup differs from the one
    /// the handshake was made for (by the server name the client sent).
    #[error("Host '{0}' selects a virtual host with another TLS setup than the server name sent in the handshake (SNI)")]
    Misdirected(String),
    /// `SSLStrictSNIVHostCheck On`: the client sent no server name.
    #[error("no server name was sent in the TLS handshake (SSLStrictSNIVHostCheck On)")]
    NoServerName,
    /// `RewriteRule … [F]` or `[G]`, `Redirect gone`.
    #[error("answered {0} by a RewriteRule or a Redirect")]
    RewriteStatus(u16),
    /// `RewriteRule … [R=code]`.
    #[error("redirected ({0}) to {1} by a RewriteRule")]
    Redirect(u16, String),
    /// Every request slot (MaxRequestWorkers) stayed taken for the whole Timeout.
    #[error("no request worker free within Timeout (MaxRequestWorkers)")]
    Busy,
    /// `ProxyErrorOverride`: the member's error answer is replaced by ringproxy's own.
    #[error("{1} answered {0}; replaced by ringproxy's own answer (ProxyErrorOverride)")]
    ErrorOverridden(u16, String),
    #[error("{0}: All workers are in error state")]
    NoMember(String),
    #[error("connect to {0} failed: {1}")]
    Connect(String, std::io::Error),
    #[error("connect to {0} timed out")]
    ConnectTimeout(String),
    /// The TLS handshake with a member failed (its certificate, most often): the member
    /// is put in error as for a refused connect, and the answer is Apache's 502.
    #[error("TLS handshake with {0} failed: {1}")]
    MemberTls(String, crate::transport::tls::HandshakeError),
    #[error("timeout reading from backend {0}")]
    BackendTimeout(String),
    #[error("timeout sending request body to backend {0}")]
    BackendSendTimeout(String),
    #[error("backend {0} closed the connection before answering")]
    BackendClosed(String),
    #[error("I/O error with backend {0}: {1}")]
    BackendIo(String, std::io::Error),
    #[error("invalid response from backend {0}: {1}")]
    BackendProtocol(String, String),
    /// An AJP container switched protocols (a WebSocket upgrade): AJP cannot carry the
    /// new protocol, and mod_proxy_ajp answers 500 there too.
    #[error("AJP member {0} switched protocols, which AJP cannot carry")]
    AjpUpgrade(String),
    #[error("client timed out")]
    ClientTimeout,
    /// mod_reqtimeout's stages (AH01382 / AH01383 in Apache).
    #[error("Request {} read timeout (RequestReadTimeout)", .0.label())]
    RequestReadTimeout(crate::http::reqtimeout::Which),
    #[error("client I/O error: {0}")]
    ClientIo(std::io::Error),
    #[error("client closed the connection")]
    ClientClosed,
}

#[derive(Debug, thiserror::Error)]
#[error("{kind}")]
pub struct ProxyError {
    pub kind: ErrorKind,
    pub side: Side,
}

impl ProxyError {
    pub fn new(kind: ErrorKind) -> Self {
        let side = match &kind {
            ErrorKind::BadHead(_)
            | ErrorKind::BadBody(_)
            | ErrorKind::BadPath(_)
            | ErrorKind::TraceDisabled
            | ErrorKind::TraceWithBody
            | ErrorKind::RequestReadTimeout(_)
            | ErrorKind::ClientTimeout
            | ErrorKind::ClientIo(_)
            | ErrorKind::ClientClosed => Side::Client,
            ErrorKind::Misdirected(_) | ErrorKind::NoServerName => Side::Client,
            ErrorKind::NotProxied
            | ErrorKind::Forbidden
            | ErrorKind::FileNotFound(_)
            | ErrorKind::FileForbidden(_)
            | ErrorKind::FileIo(..)
            | ErrorKind::RewriteStatus(_)
            | ErrorKind::Redirect(..)
            | ErrorKind::Busy
            | ErrorKind::ErrorOverridden(..)
            | ErrorKind::NoMember(_) => Side::Proxy,
            ErrorKind::Connect(..)
            | ErrorKind::ConnectTimeout(_)
            | ErrorKind::MemberTls(..)
            | ErrorKind::AjpUpgrade(_)
            | ErrorKind::BackendTimeout(_)
            | ErrorKind::BackendSendTimeout(_)
            | ErrorKind::BackendClosed(_)
            | ErrorKind::BackendIo(..)
            | ErrorKind::BackendProtocol(..) => Side::Backend,
        };
        ProxyError { kind, side }
    }

    /// The status the client receives; `None`: close without an answer (the client is gone
    /// or timed out, so there is no one to answer).
    pub fn status(&self) -> Option<u16> {
        Some(match &self.kind {
            ErrorKind::BadHead(h) => h.status(),
            ErrorKind::BadBody(e) => e.status(),
            ErrorKind::BadPath(e) => e.status(),
            ErrorKind::TraceDisabled => 405,
            ErrorKind::TraceWithBody => 413,
            ErrorKind::RequestReadTimeout(_) => 408,
            ErrorKind::NotProxied | ErrorKind::FileNotFound(_) => 404,
            ErrorKind::Forbidden | ErrorKind::NoServerName | ErrorKind::FileForbidden(_) => 403,
            ErrorKind::FileIo(..) => 500,
            ErrorKind::Misdirected(_) => 421,
            ErrorKind::RewriteStatus(s)
            | ErrorKind::Redirect(s, _)
            | ErrorKind::ErrorOverridden(s, _) => *s,
            // Apache answers 503 when it cannot connect (the worker goes into error state).
            ErrorKind::NoMember(_)
            | ErrorKind::Busy
            | ErrorKind::Connect(..)
            | ErrorKind::ConnectTimeout(_) => 503,
            ErrorKind::BackendTimeout(_) | ErrorKind::BackendSendTimeout(_) => 504,
            ErrorKind::AjpUpgrade(_) => 500,
            ErrorKind::BackendClosed(_)
            | ErrorKind::BackendIo(..)
            | ErrorKind::MemberTls(..)
            | ErrorKind::BackendProtocol(..) => 502,
            ErrorKind::ClientTimeout | ErrorKind::ClientIo(_) | ErrorKind::ClientClosed => {
                return None
            }
        })
    }
}

impl ErrorKind {
    /// A read or write on the client's connection that failed or timed out.
    pub fn client(e: IoFail) -> ErrorKind {
        match e {
            IoFail::Timeout => ErrorKind::ClientTimeout,
            IoFail::Io(e) => ErrorKind::ClientIo(e),
        }
    }

    /// A write to `member` that failed or timed out.
    pub fn backend_send(member: &str, e: IoFail) -> ErrorKind {
        match e {
            IoFail::Timeout => ErrorKind::BackendSendTimeout(member.to_string()),
            IoFail::Io(e) => ErrorKind::BackendIo(member.to_string(), e),
        }
    }
}

impl From<ErrorKind> for ProxyError {
    fn from(kind: ErrorKind) -> Self {
        ProxyError::new(kind)
    }
}

/// A complete, closing response for `status` with a one-line text body.
pub fn canned_response(out: &mut Vec<u8>, status: u16) {
    canned_response_with(out, status, "");
}

/// The same with extra header lines (each ending in CRLF), e.g. a redirect's Location.
pub fn canned_response_with(out: &mut Vec<u8>, status: u16, extra: &str) {
    let reason = default_reason(status);
    let body = format!("{status} {reason}\n");
    local_head(out, status, "text/plain", body.len(), extra, false);
    out.extend_from_slice(body.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping_table() {
        let io = || std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let cases: Vec<(ErrorKind, Option<u16>, Side)> = vec![
            (
                ErrorKind::BadHead(HeadError::LineTooLong),
                Some(414),
                Side::Client,
            ),
            (
                ErrorKind::BadBody(BodyError::BadSize),
                Some(400),
                Side::Client,
            ),
            (ErrorKind::NotProxied, Some(404), Side::Proxy),
            (
                ErrorKind::BadPath(PathError::EncodedSlash),
                Some(404),
                Side::Client,
            ),
            (
                ErrorKind::BadPath(PathError::AboveRoot),
                Some(400),
                Side::Client,
            ),
            (ErrorKind::TraceDisabled, Some(405), Side::Client),
            (
                ErrorKind::NoMember("balancer://c".into()),
                Some(503),
                Side::Proxy,
            ),
            (
                ErrorKind::Connect("m".into(), io()),
                Some(503),
                Side::Backend,
            ),
            (
                ErrorKind::MemberTls(
                    "m".into(),
                    crate::transport::tls::HandshakeError::Tls(rustls::Error::InvalidCertificate(
                        rustls::CertificateError::Expired,
                    )),
                ),
                Some(502),
                Side::Backend,
            ),
            (
                ErrorKind::BackendTimeout("m".into()),
                Some(504),
                Side::Backend,
            ),
            (
                ErrorKind::BackendClosed("m".into()),
                Some(502),
                Side::Backend,
            ),
            (ErrorKind::ClientTimeout, None, Side::Client),
        ];
        for (kind, status, side) in cases {
            let e = ProxyError::new(kind);
            assert_eq!((e.status(), e.side), (status, side), "{e}");
        }
    }

    #[test]
    fn canned_body_length_is_right() {
        let mut out = Vec::new();
        canned_response(&mut out, 503);
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }
}
