//! The member side of a request: a connection to a member with the protocol spoken on it.
//!
//! [`UpstreamSession`] has one variant per member protocol: HTTP/1.1 ([`http1`]) and AJP/1.3
//! ([`ajp`]). The proxy's attempt loop (pooled or new connection, stale retry, failover) only
//! asks a session whether it came from the pool and lends it a buffer; what is said on it
//! is the variant's. [`connect`] makes a new one (TCP, and for a TLS member the handshake
//! within the same connect timeout), [`pool`] keeps idle ones per core, keyed by balancer
//! and member.

pub mod ajp;
pub mod http1;
pub mod pool;

use std::time::Duration;

use crate::config::Member;
use crate::error::{ErrorKind, ProxyError};
use crate::runtime::buffer::BufPool;
use rustls::pki_types::ServerName;

use crate::transport::tls::HandshakeError;
use crate::transport::{BackendStream, ConnectError};
use ajp::AjpSession;
use http1::Http1Session;

/// A connection to a member, by protocol.
pub enum UpstreamSession {
    Http1(Http1Session),
    Ajp(AjpSession),
}

impl UpstreamSession {
    /// Lent from the pool (so it may have been closed by the member while idle).
    pub fn reused(&self) -> bool {
        match self {
            UpstreamSession::Http1(s) => s.reused,
            UpstreamSession::Ajp(s) => s.reused,
        }
    }

    fn buf(&mut self) -> &mut Vec<u8> {
        match self {
            UpstreamSession::Http1(s) => &mut s.buf,
            UpstreamSession::Ajp(s) => &mut s.buf,
        }
    }

    fn stream(&mut self) -> &mut BackendStream {
        match self {
            UpstreamSession::Http1(s) => &mut s.stream,
            UpstreamSession::Ajp(s) => &mut s.stream,
        }
    }

    /// Gives the session a read buffer from the core's pool for one exchange.
    pub fn lend_buffer(&mut self, bufs: &BufPool) {
        let buf = self.buf();
        if buf.capacity() == 0 {
            *buf = bufs.get();
        }
    }

    /// Takes the read buffer back whatever happened: idle pooled connections (up to
    /// hundreds per member) hold none, and a member that closes every connection does not
    /// cost an allocation per request.
    pub fn return_buffer(&mut self, bufs: &BufPool) {
        bufs.put(std::mem::take(self.buf()));
    }

    /// The TLS facts of the connection, for a TLS member.
    pub fn tls(&self) -> Option<&crate::transport::TlsFacts> {
        use crate::transport::Transport;
        match self {
            UpstreamSession::Http1(s) => s.stream.tls(),
            UpstreamSession::Ajp(s) => s.stream.tls(),
        }
    }

    /// The server name sent in its TLS handshake when it was not the configured one.
    pub fn sni(&self) -> Option<&str> {
        match self {
            UpstreamSession::Http1(s) => s.sni.as_deref(),
            UpstreamSession::Ajp(_) => None,
        }
    }

    /// When it went idle (for the pool's `ttl` and purge).
    pub fn idle_since(&self) -> std::time::Instant {
        match self {
            UpstreamSession::Http1(s) => s.idle_since,
            UpstreamSession::Ajp(s) => s.idle_since,
        }
    }

    /// Into the pool: idle from now, no buffer held.
    pub(crate) fn park(&mut self) {
        *self.buf() = Vec::new();
        self.stream().release_buffers();
        // Idle limits are seconds: the coarse clock is precise enough, and cheaper.
        let now = crate::runtime::timer::coarse_now();
        match self {
            UpstreamSession::Http1(s) => s.idle_since = now,
            UpstreamSession::Ajp(s) => {
                s.reset();
                s.idle_since = now;
            }
        }
    }

    /// Out of the pool.
    pub(crate) fn unpark(&mut self) {
        match self {
            UpstreamSession::Http1(s) => s.reused = true,
            UpstreamSession::Ajp(s) => s.reused = true,
        }
    }
}

/// A new session with `member` within `t` (the member's `connectiontimeout`, which
/// covers the TLS handshake of a TLS member too).
/// `sni`: the server name to send instead of the configured one (ProxyPreserveHost On);
/// the session remembers it, so that the pool lends it only to requests for that name.
/// `packet_size`: an AJP member's packet size.
pub async fn connect(
    member: &Member,
    t: Duration,
    sni: Option<&str>,
    packet_size: usize,
) -> Result<UpstreamSession, ProxyError> {
    let stream = match connect_stream(member, t, sni).await {
        Ok(s) => s,
        Err(ConnectError::Io(e)) => return Err(ErrorKind::Connect(member.name.clone(), e).into()),
        Err(ConnectError::Timeout | ConnectError::Tls(HandshakeError::Timeout)) => {
            return Err(ErrorKind::ConnectTimeout(member.name.clone()).into())
        }
        Err(ConnectError::Tls(e)) => {
            return Err(ErrorKind::MemberTls(member.name.clone(), e).into())
        }
    };
    if member.scheme() == crate::config::url::Scheme::Ajp {
        return Ok(UpstreamSession::Ajp(AjpSession::new(stream, packet_size)));
    }
    let mut session = Http1Session::new(stream);
    session.sni = sni.map(Box::from);
    Ok(UpstreamSession::Http1(session))
}

/// A connection to `member` within `t`: TCP, then TLS for an `https://` or `wss://`
/// member, sending `sni` or else the configured host as the server name (the certificate
/// is checked against the configured host either way). Requests and health checks both
/// come through here.
pub async fn connect_stream(
    member: &Member,
    t: Duration,
    sni: Option<&str>,
) -> Result<BackendStream, ConnectError> {
    let keepalive = member.params.keepalive == Some(true);
    let Some(tls) = &member.tls else {
        return BackendStream::connect(member.addr, t, keepalive).await;
    };
    let name = sni
        .and_then(|s| ServerName::try_from(s.to_string()).ok())
        .unwrap_or_else(|| tls.name.clone());
    let stream =
        BackendStream::connect_tls(member.addr, t, keepalive, tls.config.clone(), name.clone())
            .await?;
    if let BackendStream::Tls(s) = &stream {
        if let Some(group) = s.key_exchange_group() {
            tls.remember_group(name, group);
        }
    }
    Ok(stream)
}

/// The server name to send to a TLS member for a request whose Host is `host` under
/// ProxyPreserveHost On (Apache sends the Host it forwards): its host part, when it is a
/// DNS name other than the configured one. `None`: the configured name.
pub fn preserved_sni<'a>(member: &Member, host: &'a [u8]) -> Option<&'a str> {
    let configured = member.tls.as_ref()?;
    let (name, _) = crate::http::authority::split(host).ok()?;
    let name = std::str::from_utf8(name).ok()?;
    match ServerName::try_from(name) {
        Ok(ServerName::DnsName(d)) if ServerName::DnsName(d.clone()) != configured.name => {
            Some(name)
        }
        _ => None,
    }
}
