//! A TLS connection over monoio's owned-buffer I/O: the server side of a client's
//! connection ([`accept`]), or the client side of one ringproxy (or ringload) opens
//! ([`connect`]).
//!
//! rustls's connection object holds the protocol state (keys, sequence numbers, the
//! plaintext it decrypted, the records it encrypted); the socket I/O is ours. The state sits
//! behind an `Rc<RefCell<…>>` that every handle of the connection shares, and a borrow is
//! only ever taken between awaits, never across one. That is what gives separate read and
//! write halves: [`TlsStream::duplicate`] makes a second handle (its own dup of the socket
//! and its own ciphertext buffers), and one handle may read while the other writes, as a
//! tunnel does and an HTTP/2 connection will. Records are encrypted in the order the
//! writes reach rustls, and each handle sends the records it took out of rustls in that
//! order; only one handle writes at a time in every user of this type (a tunnel writes on
//! its second handle only).
//!
//! HTTP/2 comes next over this same stream: the h2 crate drives a connection through
//! poll-based `AsyncRead`/`AsyncWrite` (tokio's traits). That is an adapter here, not a
//! second TLS implementation: two handles from [`TlsStream::duplicate`], one keeping a read
//! in flight and one a write, each future polled from h2's `poll_read`/`poll_write` with
//! the adapter's own buffers; ALPN already says which protocol was agreed
//! ([`TlsFacts::alpn`]).
//!
//! The buffered `ServerConnection` API is used rather than the unbuffered one: its
//! deframer and plaintext queues are what rustls tests most; only it has an `Acceptor`
//! that reads the client's hello before a configuration is chosen (each virtual host has
//! its own, picked by SNI); and what the unbuffered API would save is small: its copies
//! are a part of the 2.5 % of a keep-alive HTTPS request's CPU that rustls, AES-GCM and
//! this stream take together, and its memory rustls's 4 KiB record buffer of an idle
//! connection, already below every peer's idle figure (bench/RESULTS.md). Owning the
//! socket buffers here still keeps idle connections small (both ciphertext buffers are
//! released while a connection waits for its next request, see [`Transport::readable`]).
//! Kernel TLS would hand the negotiated secrets to the socket through
//! `dangerous_extract_secrets` (enabled in the server configuration when needed), after
//! which the stream would become a plain one for splicing: that seam is here, unused,
//! because this machine's kernel has no TLS module to test it with.

use std::cell::{OnceCell, RefCell};
use std::future::Future;
use std::io::{self, BufRead};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, CancelHandle, CancelableAsyncReadRent};
use monoio::net::TcpStream;
use monoio::BufResult;
use rustls::pki_types::ServerName;
use rustls::server::{Accepted, Acceptor, ClientHello};
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig};

use crate::transport::{TlsFacts, Transport};

/// Ciphertext read at once: one full TLS record (16 KiB of plaintext plus its header,
/// padding and tag), so a record never needs two receives when the sender wrote it whole.
const READ_CHUNK: usize = 16 * 1024 + 5 + 256;
/// Ciphertext gathered before a send: a few records, so a large body goes out in writes of
/// this size and the buffer stays bounded whatever the caller hands over.
const WRITE_CHUNK: usize = 64 * 1024;
/// A write buffer grown beyond this by a large response is released after the write
/// rather than kept for the connection's life.
const KEEP_WRITE_BUF: usize = 20 * 1024;

/// Why a handshake did not complete. Each maps to one metrics label ([`Self::reason`]).
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("handshake timed out")]
    Timeout,
    #[error("client closed the connection during the handshake")]
    Closed,
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Tls(#[from] rustls::Error),
    /// No virtual host takes TLS for the name the client asked for.
    #[error("no TLS virtual host for this connection")]
    NoHost,
    /// The client spoke plain HTTP to the TLS port (it was told so with a 400).
    #[error("plain HTTP sent to a TLS port")]
    PlainHttp,
}

impl HandshakeError {
    /// Every label [`Self::reason`] gives, in the order metrics list them.
    pub const REASONS: [&'static str; 14] = [
        "timeout",
        "closed",
        "plain_http",
        "io",
        "no_host",
        "protocol",
        "cipher",
        "key_exchange",
        "signature",
        "incompatible",
        "client_certificate",
        "certificate",
        "alert",
        "protocol_error",
    ];

    /// [`Self::reason`] for a handshake made as the client (with a member): a refused
    /// certificate is the member's.
    pub fn reason_as_client(&self) -> &'static str {
        match self.reason() {
            "client_certificate" => "certificate",
            r => r,
        }
    }

    /// A short, fixed label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        use rustls::{Error as E, PeerIncompatible as P};
        match self {
            HandshakeError::Timeout => "timeout",
            HandshakeError::Closed => "closed",
            HandshakeError::Io(_) => "io",
            HandshakeError::NoHost => "no_host",
            HandshakeError::PlainHttp => "plain_http",
            HandshakeError::Tls(e) => match e {
                E::PeerIncompatible(P::Tls12NotOffered | P::Tls13RequiredForQuic)
                | E::PeerIncompatible(P::SupportedVersionsExtensionRequired) => "protocol",
                E::PeerIncompatible(P::NoCipherSuitesInCommon) => "cipher",
                E::PeerIncompatible(P::NoKxGroupsInCommon | P::NoEcPointFormatsInCommon) => {
                    "key_exchange"
                }
                E::PeerIncompatible(P::NoSignatureSchemesInCommon) => "signature",
                E::PeerIncompatible(_) => "incompatible",
                E::NoCertificatesPresented | E::InvalidCertificate(_) => "client_certificate",
                E::General(_) => "certificate",
                E::AlertReceived(_) => "alert",
                _ => "protocol_error",
            },
        }
    }
}

/// What a listener knows when a handshake starts: it picks the server configuration once
/// the client's hello (and its server name) is known.
pub trait ChooseConfig {
    /// The configuration for this hello, or `None` to refuse the connection.
    fn choose(&self, hello: &ClientHello<'_>) -> Option<Arc<ServerConfig>>;
}

/// State shared by the handles of one connection.
struct Shared {
    conn: RefCell<Connection>,
    /// Set once the handshake is complete.
    facts: OnceCell<TlsFacts>,
}

/// One handle of a TLS connection.
pub struct TlsStream {
    io: TcpStream,
    shared: Rc<Shared>,
    /// Ciphertext received and not yet taken by rustls (it takes at most what its
    /// plaintext queue has room for). Without capacity while nothing is pending.
    rbuf: Vec<u8>,
    /// Records taken out of rustls for the next send.
    wbuf: Vec<u8>,
}

/// Completes a server handshake on `io` within `t`: reads the client's hello, asks
/// `choose` for the configuration its server name selects, and drives the handshake to
/// its end (sending the session tickets of TLS 1.3 with the last flight).
pub async fn accept(
    io: TcpStream,
    choose: &impl ChooseConfig,
    t: Duration,
) -> Result<TlsStream, HandshakeError> {
    match crate::runtime::timer::timeout(t, handshake(io, choose)).await {
        Ok(r) => r,
        Err(_) => Err(HandshakeError::Timeout),
    }
}

async fn handshake(
    mut io: TcpStream,
    choose: &impl ChooseConfig,
) -> Result<TlsStream, HandshakeError> {
    let mut acceptor = Acceptor::default();
    let mut rbuf = Vec::with_capacity(READ_CHUNK);
    let accepted: Accepted = loop {
        let (r, b) = AsyncReadRent::read(&mut io, std::mem::take(&mut rbuf)).await;
        rbuf = b;
        if r? == 0 {
            return Err(HandshakeError::Closed);
        }
        // Every TLS connection starts with a handshake record (22); a letter is an HTTP
        // method: say what went wrong, as Apache does, rather than only close.
        if rbuf.first().is_some_and(u8::is_ascii_uppercase) {
            let mut out = Vec::new();
            crate::error::canned_response_with(
                &mut out,
                400,
                "X-Reason: plain HTTP sent to an HTTPS port; use https://\r\n",
            );
            let _ = AsyncWriteRentExt::write_all(&mut io, out).await;
            return Err(HandshakeError::PlainHttp);
        }
        let mut src = &rbuf[..];
        let got = loop {
            if src.is_empty() {
                break None;
            }
            acceptor.read_tls(&mut src)?;
            match acceptor.accept() {
                Ok(Some(a)) => break Some(a),
                Ok(None) => {}
                Err((e, mut alert)) => {
                    let mut out = Vec::new();
                    let _ = alert.write_all(&mut out);
                    let _ = AsyncWriteRentExt::write_all(&mut io, out).await;
                    return Err(e.into());
                }
            }
        };
        let rest = src.len();
        rbuf.drain(..rbuf.len() - rest);
        if let Some(a) = got {
            break a;
        }
    };
    let Some(config) = choose.choose(&accepted.client_hello()) else {
        return Err(HandshakeError::NoHost);
    };
    let conn = match accepted.into_connection(config) {
        Ok(c) => c,
        Err((e, mut alert)) => {
            let mut out = Vec::new();
            let _ = alert.write_all(&mut out);
            let _ = AsyncWriteRentExt::write_all(&mut io, out).await;
            return Err(e.into());
        }
    };
    TlsStream::new(io, Connection::Server(conn), rbuf)
        .complete_handshake()
        .await
}

/// Opens the client side of a TLS connection on `io` within `t`, naming `name` (SNI and
/// the name the certificate is checked against).
pub async fn connect(
    io: TcpStream,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    t: Duration,
) -> Result<TlsStream, HandshakeError> {
    let conn = ClientConnection::new(config, name)?;
    let s = TlsStream::new(io, Connection::Client(conn), Vec::new());
    match crate::runtime::timer::timeout(t, s.complete_handshake()).await {
        Ok(r) => r,
        Err(_) => Err(HandshakeError::Timeout),
    }
}

impl TlsStream {
    fn new(io: TcpStream, conn: Connection, rbuf: Vec<u8>) -> TlsStream {
        TlsStream {
            io,
            shared: Rc::new(Shared {
                conn: RefCell::new(conn),
                facts: OnceCell::new(),
            }),
            rbuf,
            wbuf: Vec::new(),
        }
    }

    /// The key exchange group the handshake used.
    pub fn key_exchange_group(&self) -> Option<rustls::NamedGroup> {
        let conn = self.shared.conn.borrow();
        conn.negotiated_key_exchange_group().map(|g| g.name())
    }

    /// Sends and receives handshake records until the handshake is over.
    async fn complete_handshake(mut self) -> Result<TlsStream, HandshakeError> {
        let s = &mut self;
        loop {
            let handshaking = s.shared.conn.borrow().is_handshaking();
            if handshaking || !s.tickets_may_wait() {
                s.flush().await?;
            }
            if !handshaking {
                break;
            }
            if s.rbuf.is_empty() {
                s.receive(None).await?;
                if s.rbuf.is_empty() {
                    return Err(HandshakeError::Closed);
                }
            }
            if let Err(e) = s.feed() {
                // The alert that says why goes out before the connection closes.
                let _ = s.flush().await;
                return Err(e);
            }
        }
        let _ = s.shared.facts.set(facts_of(&s.shared.conn.borrow()));
        Ok(self)
    }
}

impl TlsStream {
    /// Whether what rustls has queued at the end of a handshake may wait for the first
    /// write. A TLS 1.3 server has queued only its session tickets by then; when the
    /// client's first request came with its Finished, they leave with the response: one
    /// send fewer per new connection, and on loopback or a busy host each send is also a
    /// wake-up of the peer (about 30 µs of the proxy's CPU measured per send, the largest
    /// cost of a handshake after the signature). A client that has sent nothing yet gets
    /// them before the server waits (`read_into` flushes first). Never for TLS 1.2, where
    /// the server's Finished may be what is queued, nor for a client, whose Finished is.
    fn tickets_may_wait(&self) -> bool {
        let server13 = {
            let conn = self.shared.conn.borrow();
            matches!(*conn, Connection::Server(_))
                && conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3)
        };
        server13 && self.has_plaintext()
    }
}

impl TlsStream {
    /// An identifier of this TLS connection, for AJP's `ssl_session` attribute (mod_ssl's
    /// `SSL_SESSION_ID`). rustls exposes no session ID (TLS 1.3 has none), so it is 32
    /// bytes of keying material exported under a label of ringproxy's own (RFC 8446
    /// §7.5), in upper-case hex as mod_ssl writes IDs: unique per connection and not
    /// guessable. Computed only when asked; a resumed session gets a new one (where
    /// mod_ssl repeats the session's).
    pub fn session_id(&self) -> Option<String> {
        let conn = self.shared.conn.borrow();
        let key = conn
            .export_keying_material([0u8; 32], b"EXPORTER-ringproxy-session-id", None)
            .ok()?;
        Some(key.iter().map(|b| format!("{b:02X}")).collect())
    }
}

fn facts_of(conn: &Connection) -> TlsFacts {
    let protocol = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "",
    };
    let server_name = match conn {
        Connection::Server(c) => c.server_name().map(str::to_owned),
        Connection::Client(_) => None,
    };
    TlsFacts {
        server_name,
        protocol,
        cipher: conn
            .negotiated_cipher_suite()
            .map_or("", super::host::openssl_name),
        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        resumed: conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        // A client's certificate (a server connection's peer); a member's certificate
        // is not parsed for facts nobody asks for.
        client: match conn {
            Connection::Server(c) => c
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| super::certs::client_cert_facts(c)),
            Connection::Client(_) => None,
        },
    }
}

impl TlsStream {
    /// Receives more ciphertext after what `rbuf` holds (`handle`: withdrawable).
    /// Leaves `rbuf` as it was when the peer closed.
    async fn receive(&mut self, handle: Option<CancelHandle>) -> io::Result<()> {
        let mut buf = std::mem::take(&mut self.rbuf);
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        let len = buf.len();
        let (r, slice) = match handle {
            Some(h) => self.io.cancelable_read(buf.slice_mut(len..), h).await,
            None => AsyncReadRent::read(&mut self.io, buf.slice_mut(len..)).await,
        };
        self.rbuf = slice.into_inner();
        if r? == 0 {
            // The peer closed: rustls learns of it (it tells a clean close_notify from a
            // truncation).
            let _ = self.shared.conn.borrow_mut().read_tls(&mut io::empty());
        }
        Ok(())
    }

    /// Hands the received ciphertext to rustls and lets it process the records; what it
    /// cannot take yet (its plaintext queue is full) stays in `rbuf`.
    fn feed(&mut self) -> Result<(), HandshakeError> {
        let mut conn = self.shared.conn.borrow_mut();
        let mut src = &self.rbuf[..];
        while !src.is_empty() {
            match conn.read_tls(&mut src) {
                Ok(0) => {
                    // close_notify was received: nothing after it counts.
                    src = &[];
                }
                Ok(_) => {}
                // The plaintext queue is full: the caller reads some first.
                Err(e) if e.kind() == io::ErrorKind::Other => break,
                Err(e) => return Err(e.into()),
            }
            conn.process_new_packets()?;
        }
        let taken = self.rbuf.len() - src.len();
        self.rbuf.drain(..taken);
        Ok(())
    }

    /// Sends every record rustls has ready.
    async fn flush(&mut self) -> io::Result<()> {
        loop {
            {
                let mut conn = self.shared.conn.borrow_mut();
                while conn.wants_write() && self.wbuf.len() < WRITE_CHUNK {
                    conn.write_tls(&mut self.wbuf)?;
                }
            }
            if self.wbuf.is_empty() {
                return Ok(());
            }
            let (r, mut b) =
                AsyncWriteRentExt::write_all(&mut self.io, std::mem::take(&mut self.wbuf)).await;
            b.clear();
            if b.capacity() <= KEEP_WRITE_BUF {
                self.wbuf = b;
            }
            r?;
        }
    }

    /// Plaintext rustls holds, copied into `buf`'s room. `None`: none yet; `Some(0)`: the
    /// peer closed (with close_notify or without: HTTP frames its own messages, so a
    /// truncated body is caught there).
    fn take_plaintext(&self, dst: *mut u8, room: usize) -> Option<io::Result<usize>> {
        let mut conn = self.shared.conn.borrow_mut();
        let mut reader = conn.reader();
        match reader.fill_buf() {
            Ok(chunk) => {
                let n = chunk.len().min(room);
                // SAFETY: `dst` has room for `room` bytes (the caller's buffer spare
                // capacity) and does not overlap rustls's own queue.
                unsafe { std::ptr::copy_nonoverlapping(chunk.as_ptr(), dst, n) };
                reader.consume(n);
                Some(Ok(n))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Some(Ok(0)),
            Err(e) => Some(Err(e)),
        }
    }

    /// Whether a read would return at once (plaintext, or the end of the stream).
    fn has_plaintext(&self) -> bool {
        let mut conn = self.shared.conn.borrow_mut();
        !matches!(conn.reader().fill_buf(), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    async fn read_into<T: IoBufMut>(
        &mut self,
        mut buf: T,
        handle: Option<CancelHandle>,
    ) -> BufResult<usize, T> {
        let room = buf.bytes_total();
        if room == 0 {
            return (Ok(0), buf);
        }
        loop {
            if let Some(r) = self.take_plaintext(buf.write_ptr(), room) {
                if let Ok(n) = r {
                    // SAFETY: `take_plaintext` initialised the first `n` bytes.
                    unsafe { buf.set_init(n) };
                }
                return (r, buf);
            }
            if !self.rbuf.is_empty() {
                let before = self.rbuf.len();
                if let Err(e) = self.feed() {
                    let _ = self.flush().await;
                    return (Err(into_io(e)), buf);
                }
                if self.rbuf.len() < before || self.has_plaintext() {
                    continue;
                }
            }
            // Replies rustls owes the peer (a key update) go out before waiting.
            if let Err(e) = self.flush().await {
                return (Err(e), buf);
            }
            let before = self.rbuf.len();
            if let Err(e) = self.receive(handle.clone()).await {
                return (Err(e), buf);
            }
            if self.rbuf.len() == before {
                // The peer closed; what rustls says about it is the answer.
                return match self.take_plaintext(buf.write_ptr(), room) {
                    Some(Ok(n)) => {
                        // SAFETY: as above.
                        unsafe { buf.set_init(n) };
                        (Ok(n), buf)
                    }
                    Some(Err(e)) => (Err(e), buf),
                    None => (Ok(0), buf),
                };
            }
        }
    }

    async fn write_from<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: `read_ptr` and `bytes_init` describe the initialised bytes of `buf`,
        // which this function owns until it returns it.
        let data = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        let mut done = 0;
        loop {
            {
                let mut conn = self.shared.conn.borrow_mut();
                while done < data.len() && self.wbuf.len() < WRITE_CHUNK {
                    let n = match io::Write::write(&mut conn.writer(), &data[done..]) {
                        Ok(n) => n,
                        Err(e) => return (Err(e), buf),
                    };
                    done += n;
                    if let Err(e) = conn.write_tls(&mut self.wbuf) {
                        return (Err(e), buf);
                    }
                    if n == 0 && !conn.wants_write() {
                        break;
                    }
                }
            }
            if let Err(e) = self.flush().await {
                return (Err(e), buf);
            }
            if done == data.len() {
                return (Ok(done), buf);
            }
        }
    }

    /// Sends close_notify, then ends the sending direction of the socket.
    async fn close_write(&mut self) {
        self.shared.conn.borrow_mut().send_close_notify();
        let _ = self.flush().await;
        let _ = Transport::shutdown_write(&mut self.io).await;
    }

    /// A receive made on the spot for a socket known to be readable: plaintext already
    /// decrypted first, else one non-blocking receive fed to rustls.
    fn read_at_once(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
        let room = buf.capacity() - buf.len();
        if room == 0 {
            return Ok(None);
        }
        let dst = buf.spare_capacity_mut().as_mut_ptr().cast::<u8>();
        let mut got = self.take_plaintext(dst, room);
        // Whole records may wait in `rbuf` (rustls's plaintext queue was full when they
        // came): they are decrypted before the socket is asked for more.
        if got.is_none() && !self.rbuf.is_empty() {
            self.feed().map_err(into_io)?;
            got = self.take_plaintext(dst, room);
        }
        if got.is_none() {
            if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
                self.rbuf.reserve(READ_CHUNK);
            }
            match self.io.read_now(&mut self.rbuf)? {
                None => return Ok(None),
                Some(0) => {
                    let _ = self.shared.conn.borrow_mut().read_tls(&mut io::empty());
                }
                Some(_) => self.feed().map_err(into_io)?,
            }
            got = self.take_plaintext(dst, room);
        }
        match got {
            Some(Ok(n)) => {
                // SAFETY: `take_plaintext` initialised `n` bytes of the spare capacity.
                unsafe { buf.set_len(buf.len() + n) };
                Ok(Some(n))
            }
            Some(Err(e)) => Err(e),
            None => Ok(None),
        }
    }

    /// Gives back both ciphertext buffers when nothing is pending in them: a connection
    /// idle in the member pool then holds only rustls's own state.
    pub fn release_buffers(&mut self) {
        if self.rbuf.is_empty() {
            self.rbuf = Vec::new();
        }
        if self.wbuf.is_empty() {
            self.wbuf = Vec::new();
        }
    }

    /// Waits until a read would not block. Between requests nothing is pending, and both
    /// ciphertext buffers are released first: an idle TLS connection then holds only
    /// rustls's own state.
    async fn wait_readable(&mut self) -> io::Result<()> {
        if self.has_plaintext() {
            return Ok(());
        }
        // Records already received but not yet decrypted make a read return at once too;
        // the socket may have nothing more to say.
        if !self.rbuf.is_empty() {
            self.feed().map_err(into_io)?;
            if self.has_plaintext() {
                return Ok(());
            }
        }
        if self.rbuf.is_empty() {
            self.rbuf = Vec::new();
        }
        self.wbuf = Vec::new();
        Transport::readable(&mut self.io).await
    }
}

fn into_io(e: HandshakeError) -> io::Error {
    match e {
        HandshakeError::Io(e) => e,
        // The peer ended the connection with an alert: a disconnect (a pooled member
        // connection that ends so before any response byte is stale, not failed).
        HandshakeError::Tls(rustls::Error::AlertReceived(a)) => io::Error::new(
            io::ErrorKind::ConnectionAborted,
            format!("TLS alert received: {a:?}"),
        ),
        other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
    }
}

impl Transport for TlsStream {
    fn read<T: IoBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.read_into(buf, None)
    }

    fn read_cancelable<T: IoBufMut>(
        &mut self,
        buf: T,
        handle: CancelHandle,
    ) -> impl Future<Output = BufResult<usize, T>> {
        self.read_into(buf, Some(handle))
    }

    fn write_all<T: IoBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.write_from(buf)
    }

    fn read_now(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
        self.read_at_once(buf)
    }

    fn readable(&mut self) -> impl Future<Output = io::Result<()>> {
        self.wait_readable()
    }

    fn shutdown_write(&mut self) -> impl Future<Output = ()> {
        self.close_write()
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.peer_addr()
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    fn tls(&self) -> Option<&TlsFacts> {
        self.shared.facts.get()
    }

    /// The bytes on the socket are TLS records: nothing may bypass this layer.
    fn socket(&self) -> Option<&TcpStream> {
        None
    }

    /// A second handle on the same connection: a dup of the socket, the same rustls
    /// state, buffers of its own.
    fn duplicate(&self) -> Option<io::Result<TlsStream>> {
        Some(self.io.duplicate()?.map(|io| TlsStream {
            io,
            shared: self.shared.clone(),
            rbuf: Vec::new(),
            wbuf: Vec::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;
    use crate::transport::io::{read_more, write_all};

    struct One(Arc<ServerConfig>);
    impl ChooseConfig for One {
        fn choose(&self, _: &ClientHello<'_>) -> Option<Arc<ServerConfig>> {
            Some(self.0.clone())
        }
    }

    fn runtime() -> monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>> {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap()
    }

    /// The next connection on `listener`, as the runtime's stream.
    fn accepted(listener: &std::net::TcpListener) -> TcpStream {
        let (sock, _) = listener.accept().unwrap();
        sock.set_nonblocking(true).unwrap();
        TcpStream::from_std(sock).unwrap()
    }

    /// A server configuration for `localhost` and a client configuration trusting it.
    fn configs() -> (Arc<ServerConfig>, Arc<rustls::ClientConfig>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().clone();
        let key_der = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let server = ServerConfig::builder_with_provider(crate::transport::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key_der)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(crate::transport::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    /// Echo, a large write, both handles of one connection at once, a half-close with
    /// close_notify; the client is rustls's own blocking stream on another thread.
    #[test]
    fn a_tls_stream_carries_bytes_both_ways_at_once() {
        let (server, client) = configs();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (sent, written) = std::sync::mpsc::channel();
        let peer = std::thread::spawn(move || {
            let sock = std::net::TcpStream::connect(addr).unwrap();
            let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
            let conn = rustls::ClientConnection::new(client, name).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, sock);
            tls.write_all(b"hello").unwrap();
            sent.send(()).unwrap();
            let mut got = vec![0u8; 5];
            tls.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"HELLO");
            // 1 MiB down while the client sends a line up.
            let mut big = vec![0u8; 1 << 20];
            tls.write_all(b"up").unwrap();
            tls.read_exact(&mut big).unwrap();
            assert!(big.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
            // The server's close_notify reads as a clean end.
            let mut rest = Vec::new();
            tls.read_to_end(&mut rest).unwrap();
            assert!(rest.is_empty());
        });
        let mut rt = runtime();
        rt.block_on(async move {
            let io = accepted(&listener);
            let t = Duration::from_secs(10);
            let mut s = accept(io, &One(server), t).await.unwrap();
            let facts = s.tls().unwrap().clone();
            assert_eq!(facts.protocol, "TLSv1.3");
            assert_eq!(facts.server_name.as_deref(), Some("localhost"));
            assert!(s.socket().is_none() && !s.can_park());

            // On-the-spot reads: the first takes what fits, the next what rustls already
            // decrypted (a request that came with the handshake's last flight).
            written.recv().unwrap();
            let mut buf = Vec::with_capacity(2);
            while s.read_now(&mut buf).unwrap().is_none() {
                s.readable().await.unwrap();
            }
            assert_eq!(buf, b"he");
            s.readable().await.unwrap();
            buf.reserve(16);
            assert_eq!(s.read_now(&mut buf).unwrap(), Some(3));
            assert_eq!(buf, b"hello");
            let (r, _) = write_all(&mut s, buf.to_ascii_uppercase(), t).await;
            r.unwrap();

            // One handle writes the megabyte while the other reads.
            let mut second = s.duplicate().unwrap().unwrap();
            let big: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
            let (up, down) = monoio::join!(
                read_more(&mut s, Vec::new(), 64, t),
                write_all(&mut second, big, t)
            );
            assert_eq!(&up.1[..up.0.unwrap()], b"up");
            down.0.unwrap();
            second.shutdown_write().await;
        });
        peer.join().unwrap();
    }

    /// A client that is not speaking TLS costs its connection, with a reason to count.
    #[test]
    fn garbage_and_silence_end_the_handshake() {
        let (server, _) = configs();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = std::thread::spawn(move || {
            let mut a = std::net::TcpStream::connect(addr).unwrap();
            a.write_all(b"\x16\x03\x01\x00\x05hello").unwrap();
            let _b = std::net::TcpStream::connect(addr).unwrap();
            let mut sink = Vec::new();
            let _ = a.read_to_end(&mut sink);
            std::thread::sleep(Duration::from_millis(400));
        });
        let mut rt = runtime();
        rt.block_on(async move {
            let config = One(server);
            for want in ["protocol_error", "timeout"] {
                let io = accepted(&listener);
                let e = accept(io, &config, Duration::from_millis(200))
                    .await
                    .err()
                    .unwrap();
                assert_eq!(e.reason(), want, "{e}");
            }
        });
        peer.join().unwrap();
    }

    /// A TLS 1.3 server holds its session tickets when the first request came with the
    /// client's Finished, and sends them with the response: the client still gets them
    /// (its next connection resumes).
    #[test]
    fn session_tickets_leave_with_the_first_response() {
        let (server, client) = configs();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = std::thread::spawn(move || {
            let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
            let mut kinds = Vec::new();
            for _ in 0..2 {
                let mut sock = std::net::TcpStream::connect(addr).unwrap();
                let mut conn = rustls::ClientConnection::new(client.clone(), name.clone()).unwrap();
                // The handshake by hand, so that Finished and the request leave in one write.
                while conn.is_handshaking() {
                    while conn.wants_write() {
                        conn.write_tls(&mut sock).unwrap();
                    }
                    if conn.is_handshaking() {
                        conn.read_tls(&mut sock).unwrap();
                        conn.process_new_packets().unwrap();
                    }
                }
                conn.writer().write_all(b"hello").unwrap();
                let mut out = Vec::new();
                while conn.wants_write() {
                    conn.write_tls(&mut out).unwrap();
                }
                sock.write_all(&out).unwrap();
                let mut got = Vec::new();
                while got.len() < 5 {
                    conn.read_tls(&mut sock).unwrap();
                    conn.process_new_packets().unwrap();
                    let _ = conn.reader().read_to_end(&mut got);
                }
                assert_eq!(got, b"HELLO");
                kinds.push(conn.handshake_kind());
            }
            kinds
        });
        let mut rt = runtime();
        rt.block_on(async move {
            let config = One(server);
            let t = Duration::from_secs(10);
            for _ in 0..2 {
                let io = accepted(&listener);
                let mut s = accept(io, &config, t).await.unwrap();
                // The request was there at the end of the handshake: the tickets wait.
                assert!(s.shared.conn.borrow().wants_write());
                let (r, buf) = read_more(&mut s, Vec::new(), 64, t).await;
                assert_eq!(&buf[..r.unwrap()], b"hello");
                let (r, _) = write_all(&mut s, b"HELLO".to_vec(), t).await;
                r.unwrap();
                assert!(!s.shared.conn.borrow().wants_write());
            }
        });
        let kinds = peer.join().unwrap();
        assert_eq!(
            kinds,
            [
                Some(rustls::HandshakeKind::Full),
                Some(rustls::HandshakeKind::Resumed)
            ]
        );
    }

    /// The on-the-spot path in small pieces: a reader taking 1 KiB at a time with
    /// `readable` + `read_now` gets every byte of a large write, though the peer sends
    /// nothing more until it has.
    #[test]
    fn small_on_the_spot_reads_get_every_byte() {
        const LEN: usize = 100 * 1024;
        let (server, client) = configs();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = std::thread::spawn(move || {
            let sock = std::net::TcpStream::connect(addr).unwrap();
            let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
            let conn = rustls::ClientConnection::new(client, name).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, sock);
            tls.write_all(&vec![7u8; LEN]).unwrap();
            // Nothing more is sent until the server has read it all.
            let mut done = [0u8; 1];
            tls.read_exact(&mut done).unwrap();
        });
        let mut rt = runtime();
        rt.block_on(async move {
            let io = accepted(&listener);
            let t = Duration::from_secs(10);
            let mut s = accept(io, &One(server), t).await.unwrap();
            let mut got = 0;
            while got < LEN {
                let mut piece = Vec::with_capacity(1024);
                match s.read_now(&mut piece).unwrap() {
                    Some(n) => got += n,
                    None => crate::runtime::timer::timeout(t, s.readable())
                        .await
                        .expect("readable in time")
                        .unwrap(),
                }
            }
            assert_eq!(got, LEN);
            let (r, _) = write_all(&mut s, b"!".to_vec(), t).await;
            r.unwrap();
        });
        peer.join().unwrap();
    }
}
