//! The transport seam: every byte to or from a socket, client or member, goes through a
//! stream type of this module.
//!
//! [`ClientStream`] (what a listener accepted) and [`BackendStream`] (what ringproxy
//! connected to a member) are enums with one variant per transport: plain TCP today, TLS
//! next (a server-side variant on the client stream, a client-side one on the backend
//! stream). monoio's owned-buffer I/O traits are not object-safe, so an enum, not a trait
//! object, is the shape; callers are generic over [`Transport`] where a function moves
//! bytes between either kind (bodies, tunnels).
//!
//! What bypasses user-space buffers is a capability a stream reports rather than something
//! callers take from a raw descriptor: splicing ([`splice`]), parking an idle connection
//! ([`park`]), a tunnel's second handle ([`tunnel`]), a receive made on the spot
//! ([`Transport::read_now`]). A TLS stream answers "no" to the first three and serves the
//! last from the plaintext it already decrypted, so nothing can skip its layer.

pub mod io;
pub mod park;
mod plain;
pub mod splice;
pub mod tls;
pub mod tunnel;

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::Duration;

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::CancelHandle;
use monoio::net::{TcpListener, TcpStream};
use monoio::BufResult;

/// What a TLS layer negotiated: for X-Forwarded-Proto, logs and the choice of virtual host
/// by server name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFacts {
    /// The server name the client asked for (SNI).
    pub server_name: Option<String>,
    /// `TLSv1.2`, `TLSv1.3`.
    pub protocol: &'static str,
    /// The negotiated cipher suite, by the name OpenSSL (and so mod_ssl's `SSL_CIPHER`)
    /// gives it: `TLS_AES_128_GCM_SHA256`, `ECDHE-RSA-AES128-GCM-SHA256`.
    pub cipher: &'static str,
    /// The ALPN protocol agreed on (`h2`, `http/1.1`).
    pub alpn: Option<Vec<u8>>,
    /// The session was resumed (no full handshake).
    pub resumed: bool,
    /// The certificate the client presented (it was verified, or the handshake would have
    /// failed).
    pub client: Option<ClientCert>,
}

/// A verified client certificate, as mod_ssl's variables name its parts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientCert {
    /// `SSL_CLIENT_S_DN` (RFC 2253: most specific first, `CN=…,O=…,C=…`).
    pub subject: String,
    /// `SSL_CLIENT_I_DN`.
    pub issuer: String,
    /// `SSL_CLIENT_M_SERIAL` (upper-case hex).
    pub serial: String,
    /// `SSL_CLIENT_CERT`: the certificate as PEM (what AJP's `ssl_cert` attribute carries).
    pub pem: String,
}

/// One connection's byte stream, whatever carries it.
///
/// The methods are what the HTTP and proxy layers need; capabilities that only a bare
/// socket has (splice, park, dup) are reached through [`Transport::socket`], which only
/// this module's code calls.
// The I/O methods return the underlying operation's future itself, not an `async fn`
// wrapping it: each wrapper would be one more state machine to poll and to move the buffer
// through on every operation of every request. With a second transport (TLS) the enums'
// futures are an enum of futures, one variant per transport ([`Either`]).
pub trait Transport {
    /// Reads into `buf`'s spare room. `Ok(0)`: the peer closed.
    fn read<T: IoBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>>;
    /// As `read`, withdrawable through `handle` (an idle wait that may end in parking).
    fn read_cancelable<T: IoBufMut>(
        &mut self,
        buf: T,
        handle: CancelHandle,
    ) -> impl Future<Output = BufResult<usize, T>>;
    /// Writes all of `buf`.
    fn write_all<T: IoBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>>;
    /// Takes what is readable now into `buf`'s spare capacity without waiting. `Ok(None)`:
    /// nothing after all; `Ok(Some(0))`: the peer closed.
    fn read_now(&mut self, buf: &mut Vec<u8>) -> std::io::Result<Option<usize>>;
    /// Waits until a read would not block (for a TLS stream: including plaintext it holds).
    fn readable(&mut self) -> impl Future<Output = std::io::Result<()>>;
    /// Ends the sending direction (a TLS stream sends close_notify first); the peer reads
    /// what was sent, then end of stream.
    fn shutdown_write(&mut self) -> impl Future<Output = ()>;
    fn peer_addr(&self) -> std::io::Result<SocketAddr>;
    fn local_addr(&self) -> std::io::Result<SocketAddr>;
    /// TLS facts, when the stream is TLS.
    fn tls(&self) -> Option<&TlsFacts>;
    /// The bare socket when the bytes on it are the application's own (no TLS record
    /// layer): only then may they be spliced, the descriptor parked or duplicated.
    fn socket(&self) -> Option<&TcpStream>;
    /// A second stream on the same connection, for the other direction of a tunnel.
    /// `None` when this transport cannot be duplicated (its state lives in user space).
    fn duplicate(&self) -> Option<std::io::Result<Self>>
    where
        Self: Sized;

    /// Whether an idle connection on this stream can wait in the parking lot (its state
    /// is all in the kernel).
    fn can_park(&self) -> bool {
        self.socket().is_some()
    }
    /// The descriptor to splice to or from, when splicing is possible.
    fn splice_fd(&self) -> Option<RawFd> {
        self.socket().map(std::os::fd::AsRawFd::as_raw_fd)
    }
    /// Whether this is a TLS stream (X-Forwarded-Proto, `%{HTTPS}`).
    fn is_tls(&self) -> bool {
        self.tls().is_some()
    }
}

/// A client connection's stream.
pub enum ClientStream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS terminated here.
    Tls(tls::TlsStream),
}

/// A connection this process opened: to a member, or ringload's to a server.
pub enum BackendStream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS, this side the client.
    Tls(tls::TlsStream),
}

pin_project_lite::pin_project! {
    /// The future of an operation on a stream enum: the variant's own future, unboxed.
    #[project = EitherProj]
    pub enum Either<A, B> {
        First { #[pin] f: A },
        Second { #[pin] f: B },
    }
}

impl<A: Future, B: Future<Output = A::Output>> Future for Either<A, B> {
    type Output = A::Output;
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<A::Output> {
        match self.project() {
            EitherProj::First { f } => f.poll(cx),
            EitherProj::Second { f } => f.poll(cx),
        }
    }
}

/// Implements [`Transport`] for a stream enum by handing each call to its variant. With
/// one variant the variant's future is returned as it is; with two, an [`Either`] of them.
macro_rules! delegate_transport {
    (@fut $self:ident, $ty:ident, [$a:ident], $s:ident => $e:expr) => {
        match $self { $ty::$a($s) => $e }
    };
    (@fut $self:ident, $ty:ident, [$a:ident, $b:ident], $s:ident => $e:expr) => {
        match $self {
            $ty::$a($s) => Either::First { f: $e },
            $ty::$b($s) => Either::Second { f: $e },
        }
    };
    ($ty:ident { $($variant:ident),+ }) => {
        impl Transport for $ty {
            fn read<T: IoBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
                delegate_transport!(@fut self, $ty, [$($variant),+], s => Transport::read(s, buf))
            }
            fn read_cancelable<T: IoBufMut>(
                &mut self,
                buf: T,
                handle: CancelHandle,
            ) -> impl Future<Output = BufResult<usize, T>> {
                delegate_transport!(@fut self, $ty, [$($variant),+], s => s.read_cancelable(buf, handle))
            }
            fn write_all<T: IoBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
                delegate_transport!(@fut self, $ty, [$($variant),+], s => Transport::write_all(s, buf))
            }
            fn read_now(&mut self, buf: &mut Vec<u8>) -> std::io::Result<Option<usize>> {
                match self { $($ty::$variant(s) => s.read_now(buf)),+ }
            }
            fn readable(&mut self) -> impl Future<Output = std::io::Result<()>> {
                delegate_transport!(@fut self, $ty, [$($variant),+], s => Transport::readable(s))
            }
            fn shutdown_write(&mut self) -> impl Future<Output = ()> {
                delegate_transport!(@fut self, $ty, [$($variant),+], s => s.shutdown_write())
            }
            fn peer_addr(&self) -> std::io::Result<SocketAddr> {
                match self { $($ty::$variant(s) => Transport::peer_addr(s)),+ }
            }
            fn local_addr(&self) -> std::io::Result<SocketAddr> {
                match self { $($ty::$variant(s) => Transport::local_addr(s)),+ }
            }
            fn tls(&self) -> Option<&TlsFacts> {
                match self { $($ty::$variant(s) => s.tls()),+ }
            }
            fn socket(&self) -> Option<&TcpStream> {
                match self { $($ty::$variant(s) => s.socket()),+ }
            }
            fn duplicate(&self) -> Option<std::io::Result<Self>> {
                match self {
                    $($ty::$variant(s) => s.duplicate().map(|r| r.map($ty::$variant))),+
                }
            }
        }
    };
}

delegate_transport!(ClientStream { Plain, Tls });
delegate_transport!(BackendStream { Plain, Tls });

impl ClientStream {
    /// A connection a listener accepted (or the parking lot gave back).
    pub fn accepted(stream: TcpStream) -> ClientStream {
        // Small answers go out in one write; Nagle would only delay them.
        let _ = stream.set_nodelay(true);
        ClientStream::Plain(stream)
    }

    /// The TLS connection's identifier (see [`tls::TlsStream::session_id`]).
    pub fn tls_session_id(&self) -> Option<String> {
        match self {
            ClientStream::Tls(s) => s.session_id(),
            ClientStream::Plain(_) => None,
        }
    }

    /// A connection the parking lot held as a bare socket.
    pub(crate) fn from_std(stream: std::net::TcpStream) -> std::io::Result<ClientStream> {
        Ok(ClientStream::Plain(TcpStream::from_std(stream)?))
    }
}

/// Why a connection to a member could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error("TLS handshake: {0}")]
    Tls(#[from] tls::HandshakeError),
}

impl BackendStream {
    /// Into the member pool: buffers that only a transfer needs are given back.
    pub fn release_buffers(&mut self) {
        if let BackendStream::Tls(s) = self {
            s.release_buffers();
        }
    }

    /// Connects to a member within `t`. `keepalive`: the member's `keepalive=On` (TCP
    /// keep-alive probes on an otherwise idle pooled connection).
    pub async fn connect(
        addr: SocketAddr,
        t: Duration,
        keepalive: bool,
    ) -> Result<BackendStream, ConnectError> {
        Ok(BackendStream::Plain(connect_tcp(addr, t, keepalive).await?))
    }

    /// Connects and completes a TLS handshake as a client, naming `name`, all within `t`.
    pub async fn connect_tls(
        addr: SocketAddr,
        t: Duration,
        keepalive: bool,
        config: std::sync::Arc<rustls::ClientConfig>,
        name: rustls::pki_types::ServerName<'static>,
    ) -> Result<BackendStream, ConnectError> {
        let started = std::time::Instant::now();
        let io = connect_tcp(addr, t, keepalive).await?;
        let left = t.saturating_sub(started.elapsed());
        Ok(BackendStream::Tls(
            tls::connect(io, config, name, left).await?,
        ))
    }
}

async fn connect_tcp(
    addr: SocketAddr,
    t: Duration,
    keepalive: bool,
) -> Result<TcpStream, ConnectError> {
    let stream = match crate::runtime::timer::timeout(t, TcpStream::connect_addr(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(ConnectError::Io(e)),
        Err(_) => return Err(ConnectError::Timeout),
    };
    // Heads and small bodies go out in one write; Nagle would only add latency.
    let _ = stream.set_nodelay(true);
    if keepalive {
        let _ = stream.set_tcp_keepalive(None, None, None);
    }
    Ok(stream)
}

/// Stops a listener at once. Dropping it is not enough on io_uring: its close is queued
/// behind the cancelled accept and may only run after several ring round trips (or never,
/// if the runtime ends first), while shutdown(2) on a listening socket makes Linux refuse
/// new connections immediately.
pub fn stop_listening(listener: &TcpListener) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor belongs to `listener`, which is alive for this call.
    unsafe {
        libc::shutdown(listener.as_raw_fd(), libc::SHUT_RDWR);
    }
}

#[cfg(test)]
mod tests {
    use super::io::{read_more, write_all};
    use super::*;

    /// What a plain stream answers for each capability, and that bytes and half-closes go
    /// through both kinds of stream and a tunnel's second handle.
    #[test]
    fn plain_streams_report_their_capabilities() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let t = Duration::from_secs(5);
            let (backend, accepted) =
                monoio::join!(BackendStream::connect(addr, t, false), listener.accept());
            let mut backend = backend.unwrap();
            let mut client = ClientStream::accepted(accepted.unwrap().0);
            for s in [client.socket(), backend.socket()] {
                assert!(s.is_some());
            }
            assert!(client.can_park() && client.splice_fd().is_some());
            assert!(client.tls().is_none() && !client.is_tls());
            assert_eq!(client.local_addr().unwrap(), addr);
            assert_eq!(backend.peer_addr().unwrap(), addr);

            let mut second = client.duplicate().unwrap().unwrap();
            let (r, _) = write_all(&mut backend, b"ping".to_vec(), t).await;
            r.unwrap();
            let (r, buf) = read_more(&mut second, Vec::new(), 16, t).await;
            assert_eq!((r.unwrap(), &buf[..]), (4, &b"ping"[..]));
            // Nothing more waiting: an on-the-spot read finds nothing, and says so.
            let mut spare = Vec::with_capacity(16);
            assert_eq!(client.read_now(&mut spare).unwrap(), None);

            client.shutdown_write().await;
            let (r, _) = read_more(&mut backend, Vec::new(), 16, t).await;
            assert_eq!(r.unwrap(), 0, "the half-close reads as end of stream");
        });
    }
}
