//! AJP/1.3 packets, without I/O: what ringproxy sends a servlet container (a forwarded
//! request, request body packets, CPING) and what it reads back (response headers, body
//! chunks, requests for more body, the end of the response, CPONG).
//!
//! The protocol as Tomcat implements it (`org.apache.coyote.ajp`) and httpd's
//! mod_proxy_ajp sends it:
//! - every packet is a 4-byte header and a payload: `0x12 0x34` and the payload's length
//!   towards the container, `A B` and the length back; a payload is at most the packet
//!   size less the header (8 KiB packets unless configured, up to 64 KiB);
//! - integers are big-endian; a string is its length (u16), its bytes and a NUL, with
//!   length `0xFFFF` for none;
//! - common request and response header names, and the methods Tomcat knows, travel as
//!   codes.
//!
//! [`decode`] returns `Ok(None)` while a packet is incomplete, and never reads past what it
//! was given: a container that sends garbage gets [`AjpError`], never a panic.

/// The packet size both sides use unless configured (Tomcat's `packetSize`, httpd's
/// `ProxyIOBufferSize`).
pub const DEFAULT_PACKET_SIZE: usize = 8192;
/// The largest packet size Tomcat and httpd accept.
pub const MAX_PACKET_SIZE: usize = 65536;
/// A packet's header: magic (2 bytes) and payload length (2).
pub const HEADER_LEN: usize = 4;
/// The most request body one packet carries: the packet less its header and the data's own
/// length field.
pub fn max_body_chunk(packet_size: usize) -> usize {
    packet_size - HEADER_LEN - 2
}

/// Message codes, towards the container.
const FORWARD_REQUEST: u8 = 2;
const CPING: u8 = 10;
/// Message codes, from the container.
const SEND_BODY_CHUNK: u8 = 3;
const SEND_HEADERS: u8 = 4;
const END_RESPONSE: u8 = 5;
const GET_BODY_CHUNK: u8 = 6;
const CPONG_REPLY: u8 = 9;

/// Methods by code (1-based); others go as `STORED_METHOD` with the name as an attribute.
const METHODS: [&str; 27] = [
    "OPTIONS",
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "TRACE",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "ACL",
    "REPORT",
    "VERSION-CONTROL",
    "CHECKIN",
    "CHECKOUT",
    "UNCHECKOUT",
    "SEARCH",
    "MKWORKSPACE",
    "UPDATE",
    "LABEL",
    "MERGE",
    "BASELINE-CONTROL",
    "MKACTIVITY",
];
const STORED_METHOD: u8 = 0xFF;

/// Request header names sent as `0xA0nn` (nn from 1), compared without case.
const REQUEST_HEADERS: [&str; 14] = [
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "authorization",
    "connection",
    "content-type",
    "content-length",
    "cookie",
    "cookie2",
    "host",
    "pragma",
    "referer",
    "user-agent",
];

/// Response header names the container sends as `0xA0nn` (nn from 1).
const RESPONSE_HEADERS: [&str; 11] = [
    "Content-Type",
    "Content-Language",
    "Content-Length",
    "Date",
    "Last-Modified",
    "Location",
    "Set-Cookie",
    "Set-Cookie2",
    "Servlet-Engine",
    "Status",
    "WWW-Authenticate",
];

/// Attribute codes of a forwarded request.
mod attr {
    pub const REMOTE_USER: u8 = 3;
    pub const AUTH_TYPE: u8 = 4;
    pub const QUERY_STRING: u8 = 5;
    pub const JVM_ROUTE: u8 = 6;
    pub const SSL_CERT: u8 = 7;
    pub const SSL_CIPHER: u8 = 8;
    pub const SSL_SESSION: u8 = 9;
    pub const REQ_ATTRIBUTE: u8 = 10;
    pub const SSL_KEY_SIZE: u8 = 11;
    pub const SECRET: u8 = 12;
    pub const STORED_METHOD: u8 = 13;
    pub const ARE_DONE: u8 = 0xFF;
}

/// What is wrong with a packet, or with a request that cannot be put into one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AjpError {
    #[error("AJP packet does not start with 'AB'")]
    BadMagic,
    #[error("AJP packet of {0} bytes is larger than the packet size {1}")]
    TooLarge(usize, usize),
    #[error("empty AJP packet")]
    Empty,
    #[error("unknown AJP message type {0}")]
    UnknownType(u8),
    #[error("AJP message ends inside a field")]
    Truncated,
    #[error("AJP string without its terminating NUL")]
    Unterminated,
    #[error("unknown coded AJP response header 0x{0:04X}")]
    UnknownHeaderCode(u16),
    #[error("AJP body chunk of {0} bytes in a message of {1}")]
    BadChunkLength(usize, usize),
    #[error("the request head does not fit an AJP packet of {0} bytes")]
    RequestTooLarge(usize),
    #[error("a request field longer than 65,534 bytes cannot be sent through AJP")]
    FieldTooLong,
}

/// A header name from the container: one of the coded ones, or as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderName<'a> {
    Coded(&'static str),
    Sent(&'a [u8]),
}

impl HeaderName<'_> {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            HeaderName::Coded(s) => s.as_bytes(),
            HeaderName::Sent(b) => b,
        }
    }
}

/// `SEND_HEADERS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead<'a> {
    pub status: u16,
    /// The reason phrase as sent (Tomcat sends none by default: an empty one).
    pub reason: &'a [u8],
    pub headers: Vec<(HeaderName<'a>, &'a [u8])>,
}

/// A message from the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<'a> {
    Headers(ResponseHead<'a>),
    /// Response body bytes.
    Body(&'a [u8]),
    /// The container asks for up to this many more request body bytes.
    GetBody(u16),
    /// The response is over; `reuse`: the connection may carry another request.
    End {
        reuse: bool,
    },
    Cpong,
}

/// Decodes the packet at the start of `buf`: the message and the bytes it took, `Ok(None)`
/// while the packet is incomplete. `packet_size` bounds what is accepted.
pub fn decode(buf: &[u8], packet_size: usize) -> Result<Option<(Reply<'_>, usize)>, AjpError> {
    let Some(len) = packet_len(buf, packet_size)? else {
        return Ok(None);
    };
    Ok(Some((reply(&buf[HEADER_LEN..len])?, len)))
}

/// The length of the packet at the start of `buf` (header included) once it is all there;
/// `Ok(None)` before. Checks the header only.
pub fn packet_len(buf: &[u8], packet_size: usize) -> Result<Option<usize>, AjpError> {
    if buf.len() < HEADER_LEN {
        // The magic can be judged as soon as it is there.
        if buf.len() >= 2 && &buf[..2] != b"AB" {
            return Err(AjpError::BadMagic);
        }
        return Ok(None);
    }
    if &buf[..2] != b"AB" {
        return Err(AjpError::BadMagic);
    }
    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]])) + HEADER_LEN;
    if len > packet_size {
        return Err(AjpError::TooLarge(len, packet_size));
    }
    Ok((buf.len() >= len).then_some(len))
}

fn reply(payload: &[u8]) -> Result<Reply<'_>, AjpError> {
    let mut r = Reader(payload);
    let kind = r.u8().map_err(|_| AjpError::Empty)?;
    match kind {
        SEND_HEADERS => {
            let status = r.u16()?;
            let reason = r.string()?.unwrap_or_default();
            let n = r.u16()?;
            // Each header takes at least 4 bytes: a count beyond what is left is a lie,
            // and is not allowed to size an allocation.
            let mut headers = Vec::with_capacity(usize::from(n).min(r.0.len() / 4));
            for _ in 0..n {
                let name = r.header_name()?;
                let value = r.string()?.unwrap_or_default();
                headers.push((name, value));
            }
            Ok(Reply::Headers(ResponseHead {
                status,
                reason,
                headers,
            }))
        }
        SEND_BODY_CHUNK => {
            let n = usize::from(r.u16()?);
            // Tomcat ends the chunk with a NUL that is not data; it may be absent.
            match r.0.get(..n) {
                Some(data) if r.0.len() <= n + 1 => Ok(Reply::Body(data)),
                _ => Err(AjpError::BadChunkLength(n, payload.len())),
            }
        }
        GET_BODY_CHUNK => Ok(Reply::GetBody(r.u16()?)),
        END_RESPONSE => Ok(Reply::End {
            reuse: r.u8().map(|b| b == 1).unwrap_or(false),
        }),
        CPONG_REPLY => Ok(Reply::Cpong),
        other => Err(AjpError::UnknownType(other)),
    }
}

/// Reads fields off a payload, never past its end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], AjpError> {
        if self.0.len() < n {
            return Err(AjpError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, AjpError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, AjpError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A string: `None` for the null string (length 0xFFFF).
    fn string(&mut self) -> Result<Option<&'a [u8]>, AjpError> {
        let n = self.u16()?;
        if n == 0xFFFF {
            return Ok(None);
        }
        self.string_of(usize::from(n)).map(Some)
    }

    fn string_of(&mut self, n: usize) -> Result<&'a [u8], AjpError> {
        let s = self.take(n)?;
        match self.u8() {
            Ok(0) => Ok(s),
            Ok(_) => Err(AjpError::Unterminated),
            Err(e) => Err(e),
        }
    }

    /// A response header name: a code `0xA0nn`, or a string.
    fn header_name(&mut self) -> Result<HeaderName<'a>, AjpError> {
        let n = self.u16()?;
        if n & 0xFF00 == 0xA000 {
            let i = usize::from(n & 0xFF);
            return match i.checked_sub(1).and_then(|i| RESPONSE_HEADERS.get(i)) {
                Some(name) => Ok(HeaderName::Coded(name)),
                None => Err(AjpError::UnknownHeaderCode(n)),
            };
        }
        if n == 0xFFFF {
            return Err(AjpError::Truncated);
        }
        self.string_of(usize::from(n)).map(HeaderName::Sent)
    }
}

/// A request as `FORWARD_REQUEST` carries it, with the attributes mod_proxy_ajp sends.
#[derive(Debug, Default, Clone)]
pub struct Forward<'a> {
    pub method: &'a [u8],
    /// `HTTP/1.1`.
    pub protocol: &'a [u8],
    /// The path, without the query.
    pub uri: &'a [u8],
    pub query: Option<&'a [u8]>,
    pub remote_addr: &'a [u8],
    /// The client's host name when known (mod_proxy_ajp sends none without
    /// `HostnameLookups`).
    pub remote_host: Option<&'a [u8]>,
    pub server_name: &'a [u8],
    pub server_port: u16,
    pub is_ssl: bool,
    /// Request headers as they go to the container.
    pub headers: &'a [(&'a [u8], &'a [u8])],
    /// The route of the member (`jvm_route`), for Tomcat's session ids.
    pub route: Option<&'a [u8]>,
    /// The member's `secret=`.
    pub secret: Option<&'a [u8]>,
    pub remote_port: Option<u16>,
    pub local_addr: Option<&'a [u8]>,
    pub remote_user: Option<&'a [u8]>,
    pub auth_type: Option<&'a [u8]>,
    /// The client's TLS: certificate (PEM), cipher, session id, key size, protocol.
    pub ssl_cert: Option<&'a [u8]>,
    pub ssl_cipher: Option<&'a [u8]>,
    pub ssl_session: Option<&'a [u8]>,
    pub ssl_key_size: Option<u16>,
    pub ssl_protocol: Option<&'a [u8]>,
}

/// Appends the `FORWARD_REQUEST` packet for `f` to `out`; an error (and `out` as it was)
/// when it does not fit `packet_size`.
pub fn encode_forward(
    f: &Forward<'_>,
    out: &mut Vec<u8>,
    packet_size: usize,
) -> Result<(), AjpError> {
    let start = out.len();
    let r = write_forward(f, out);
    let len = out.len() - start - HEADER_LEN;
    match r {
        Ok(()) if len + HEADER_LEN <= packet_size => {
            // `len` fits u16: the packet size is at most 65,536.
            out[start + 2..start + 4].copy_from_slice(&(len as u16).to_be_bytes());
            Ok(())
        }
        Ok(()) => {
            out.truncate(start);
            Err(AjpError::RequestTooLarge(packet_size))
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

fn write_forward(f: &Forward<'_>, out: &mut Vec<u8>) -> Result<(), AjpError> {
    out.extend_from_slice(&[0x12, 0x34, 0, 0, FORWARD_REQUEST]);
    let code = METHODS
        .iter()
        .position(|m| m.as_bytes() == f.method)
        .map_or(STORED_METHOD, |i| i as u8 + 1);
    out.push(code);
    put_str(out, Some(f.protocol))?;
    put_str(out, Some(f.uri))?;
    put_str(out, Some(f.remote_addr))?;
    put_str(out, f.remote_host)?;
    put_str(out, Some(f.server_name))?;
    out.extend_from_slice(&f.server_port.to_be_bytes());
    out.push(u8::from(f.is_ssl));
    let n = u16::try_from(f.headers.len()).map_err(|_| AjpError::FieldTooLong)?;
    out.extend_from_slice(&n.to_be_bytes());
    for (name, value) in f.headers {
        match REQUEST_HEADERS
            .iter()
            .position(|h| h.as_bytes().eq_ignore_ascii_case(name))
        {
            Some(i) => out.extend_from_slice(&(0xA001 + i as u16).to_be_bytes()),
            // A name's length of 0xA000 or more would read as a code.
            None if name.len() >= 0xA000 => return Err(AjpError::FieldTooLong),
            None => put_str(out, Some(name))?,
        }
        put_str(out, Some(value))?;
    }
    // Attributes in mod_proxy_ajp's order.
    let attrs = [
        (attr::SECRET, f.secret),
        (attr::REMOTE_USER, f.remote_user),
        (attr::AUTH_TYPE, f.auth_type),
        (attr::QUERY_STRING, f.query),
        (attr::JVM_ROUTE, f.route),
        (attr::SSL_CERT, f.ssl_cert),
        (attr::SSL_CIPHER, f.ssl_cipher),
        (attr::SSL_SESSION, f.ssl_session),
    ];
    for (code, value) in attrs {
        if let Some(v) = value {
            out.push(code);
            put_str(out, Some(v))?;
        }
    }
    if let Some(bits) = f.ssl_key_size {
        out.push(attr::SSL_KEY_SIZE);
        out.extend_from_slice(&bits.to_be_bytes());
    }
    if code == STORED_METHOD {
        out.push(attr::STORED_METHOD);
        put_str(out, Some(f.method))?;
    }
    let port = f.remote_port.map(|p| p.to_string());
    let named = [
        (&b"AJP_SSL_PROTOCOL"[..], f.ssl_protocol),
        (&b"AJP_REMOTE_PORT"[..], port.as_deref().map(str::as_bytes)),
        (&b"AJP_LOCAL_ADDR"[..], f.local_addr),
    ];
    for (name, value) in named {
        if let Some(v) = value {
            out.push(attr::REQ_ATTRIBUTE);
            put_str(out, Some(name))?;
            put_str(out, Some(v))?;
        }
    }
    out.push(attr::ARE_DONE);
    Ok(())
}

/// An AJP string: length, bytes, NUL; `None` as the null string.
fn put_str(out: &mut Vec<u8>, s: Option<&[u8]>) -> Result<(), AjpError> {
    let Some(s) = s else {
        out.extend_from_slice(&[0xFF, 0xFF]);
        return Ok(());
    };
    // 0xFFFF is the null string: the longest real one is a byte shorter.
    let n = u16::try_from(s.len())
        .ok()
        .filter(|&n| n != 0xFFFF)
        .ok_or(AjpError::FieldTooLong)?;
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(s);
    out.push(0);
    Ok(())
}

/// Appends a request body packet carrying `data` (at most [`max_body_chunk`] bytes; empty:
/// the end of the body).
pub fn encode_body(data: &[u8], out: &mut Vec<u8>) {
    if data.is_empty() {
        out.extend_from_slice(&[0x12, 0x34, 0, 0]);
        return;
    }
    // Callers chunk by `max_body_chunk`, which keeps both lengths below 65,536.
    let n = data.len() as u16;
    out.extend_from_slice(&[0x12, 0x34]);
    out.extend_from_slice(&(n + 2).to_be_bytes());
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(data);
}

/// Appends a CPING packet.
pub fn encode_cping(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x12, 0x34, 0, 1, CPING]);
}

/// The name a coded request header stands for, for logs and tests.
pub fn request_header_for_code(code: u16) -> Option<&'static str> {
    let i = usize::from(code.checked_sub(0xA001)?);
    REQUEST_HEADERS.get(i).copied()
}

/// A forwarded request decoded back, for tests and the in-test container: method, URI,
/// headers with their names spelled out, and the attributes by code (named ones as
/// `name=value`), all as the bytes sent.
#[doc(hidden)]
pub fn decode_forward(payload: &[u8]) -> Result<DecodedForward, AjpError> {
    let mut r = Reader(payload);
    if r.u8()? != FORWARD_REQUEST {
        return Err(AjpError::UnknownType(payload[0]));
    }
    let code = r.u8()?;
    let bytes = |b: Option<&[u8]>| b.map(<[u8]>::to_vec);
    let mut d = DecodedForward {
        method: usize::from(code)
            .checked_sub(1)
            .and_then(|i| METHODS.get(i))
            .map(|m| m.as_bytes().to_vec())
            .unwrap_or_default(),
        protocol: bytes(r.string()?).unwrap_or_default(),
        uri: bytes(r.string()?).unwrap_or_default(),
        remote_addr: bytes(r.string()?).unwrap_or_default(),
        remote_host: bytes(r.string()?),
        server_name: bytes(r.string()?).unwrap_or_default(),
        server_port: r.u16()?,
        is_ssl: r.u8()? == 1,
        headers: Vec::new(),
        attributes: Vec::new(),
    };
    for _ in 0..r.u16()? {
        let n = r.u16()?;
        let name = match request_header_for_code(n) {
            Some(h) => h.as_bytes().to_vec(),
            None => r.string_of(usize::from(n))?.to_vec(),
        };
        d.headers
            .push((name, bytes(r.string()?).unwrap_or_default()));
    }
    loop {
        match r.u8()? {
            attr::ARE_DONE => break,
            attr::SSL_KEY_SIZE => {
                let bits = r.u16()?;
                d.attributes
                    .push((attr::SSL_KEY_SIZE, bits.to_string().into_bytes()));
            }
            attr::REQ_ATTRIBUTE => {
                let mut v = bytes(r.string()?).unwrap_or_default();
                v.push(b'=');
                v.extend(bytes(r.string()?).unwrap_or_default());
                d.attributes.push((attr::REQ_ATTRIBUTE, v));
            }
            a => {
                let v = bytes(r.string()?).unwrap_or_default();
                if a == attr::STORED_METHOD {
                    d.method = v.clone();
                }
                d.attributes.push((a, v));
            }
        }
    }
    Ok(d)
}

/// What [`decode_forward`] gives.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedForward {
    pub method: Vec<u8>,
    pub protocol: Vec<u8>,
    pub uri: Vec<u8>,
    pub remote_addr: Vec<u8>,
    pub remote_host: Option<Vec<u8>>,
    pub server_name: Vec<u8>,
    pub server_port: u16,
    pub is_ssl: bool,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub attributes: Vec<(u8, Vec<u8>)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(payload: &[u8]) -> Vec<u8> {
        let mut p = b"AB".to_vec();
        p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn s(text: &str) -> Vec<u8> {
        let mut v = (text.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(text.as_bytes());
        v.push(0);
        v
    }

    #[test]
    fn replies_decode() {
        let mut head = vec![SEND_HEADERS, 0, 200];
        head.extend(s("OK"));
        head.extend([0, 3]);
        head.extend([0xA0, 0x01]);
        head.extend(s("text/plain"));
        head.extend(s("X-Own"));
        head.extend(s("v"));
        head.extend([0xA0, 0x07]);
        head.extend(s("JSESSIONID=abc.node1; Path=/"));
        let want = Reply::Headers(ResponseHead {
            status: 200,
            reason: b"OK",
            headers: vec![
                (HeaderName::Coded("Content-Type"), &b"text/plain"[..]),
                (HeaderName::Sent(b"X-Own"), b"v"),
                (
                    HeaderName::Coded("Set-Cookie"),
                    b"JSESSIONID=abc.node1; Path=/",
                ),
            ],
        });
        let cases: Vec<(Vec<u8>, Reply<'_>)> = vec![
            (packet(&head), want),
            // Tomcat's body chunk ends with a NUL that is not data; without it, too.
            (
                packet(&[SEND_BODY_CHUNK, 0, 3, b'a', b'b', b'c', 0]),
                Reply::Body(b"abc"),
            ),
            (
                packet(&[SEND_BODY_CHUNK, 0, 3, b'a', b'b', b'c']),
                Reply::Body(b"abc"),
            ),
            (packet(&[GET_BODY_CHUNK, 0x1F, 0xFA]), Reply::GetBody(8186)),
            (packet(&[END_RESPONSE, 1]), Reply::End { reuse: true }),
            (packet(&[END_RESPONSE, 0]), Reply::End { reuse: false }),
            (packet(&[CPONG_REPLY]), Reply::Cpong),
        ];
        for (bytes, want) in cases {
            let (got, used) = decode(&bytes, DEFAULT_PACKET_SIZE).unwrap().unwrap();
            assert_eq!((got, used), (want, bytes.len()));
            // Every shorter prefix is incomplete, never an error.
            for cut in 0..bytes.len() {
                assert_eq!(
                    decode(&bytes[..cut], DEFAULT_PACKET_SIZE),
                    Ok(None),
                    "{cut}"
                );
            }
        }
    }

    #[test]
    fn bad_packets_are_errors() {
        let cases: Vec<(Vec<u8>, AjpError)> = vec![
            (b"HTTP/1.1 200".to_vec(), AjpError::BadMagic),
            (b"XY".to_vec(), AjpError::BadMagic),
            (
                vec![b'A', b'B', 0x20, 0x00],
                AjpError::TooLarge(0x2004, 8192),
            ),
            (packet(&[]), AjpError::Empty),
            (packet(&[42]), AjpError::UnknownType(42)),
            (packet(&[SEND_HEADERS, 0]), AjpError::Truncated),
            (
                packet(&[SEND_HEADERS, 0, 200, 0, 2, b'O', b'K', 1]),
                AjpError::Unterminated,
            ),
            (
                packet(&[SEND_HEADERS, 0, 200, 0xFF, 0xFF, 0, 1, 0xA0, 0x0C]),
                AjpError::UnknownHeaderCode(0xA00C),
            ),
            (
                packet(&[SEND_HEADERS, 0, 200, 0xFF, 0xFF, 0, 1, 0xA0, 0x00]),
                AjpError::UnknownHeaderCode(0xA000),
            ),
            // A header count far beyond the message: truncated, and no huge allocation.
            (
                packet(&[SEND_HEADERS, 0, 200, 0xFF, 0xFF, 0xFF, 0xFF]),
                AjpError::Truncated,
            ),
            (
                packet(&[SEND_BODY_CHUNK, 0, 9, b'a']),
                AjpError::BadChunkLength(9, 4),
            ),
            (
                packet(&[SEND_BODY_CHUNK, 0, 1, b'a', 0, 0]),
                AjpError::BadChunkLength(1, 6),
            ),
            (packet(&[GET_BODY_CHUNK, 1]), AjpError::Truncated),
        ];
        for (bytes, want) in cases {
            assert_eq!(decode(&bytes, DEFAULT_PACKET_SIZE), Err(want), "{bytes:?}");
        }
        // A larger configured packet size takes the same packet.
        let big = [b'A', b'B', 0x20, 0x00];
        assert_eq!(decode(&big, MAX_PACKET_SIZE), Ok(None));
    }

    fn forward<'a>(headers: &'a [(&'a [u8], &'a [u8])]) -> Forward<'a> {
        Forward {
            method: b"GET",
            protocol: b"HTTP/1.1",
            uri: b"/app/x",
            query: Some(b"a=1"),
            remote_addr: b"192.0.2.7",
            remote_host: None,
            server_name: b"www.example.com",
            server_port: 443,
            is_ssl: true,
            headers,
            route: Some(b"node1"),
            secret: Some(b"s3cret"),
            remote_port: Some(50123),
            local_addr: Some(b"127.0.0.1"),
            ..Forward::default()
        }
    }

    #[test]
    fn a_forwarded_request_encodes_as_mod_proxy_ajp_sends_it() {
        let headers: &[(&[u8], &[u8])] = &[
            (b"Host", b"www.example.com"),
            (b"User-Agent", b"t"),
            (b"X-Custom", b"1"),
        ];
        let mut out = Vec::new();
        encode_forward(&forward(headers), &mut out, DEFAULT_PACKET_SIZE).unwrap();
        let mut want = vec![FORWARD_REQUEST, 2];
        want.extend(s("HTTP/1.1"));
        want.extend(s("/app/x"));
        want.extend(s("192.0.2.7"));
        want.extend([0xFF, 0xFF]);
        want.extend(s("www.example.com"));
        want.extend(443u16.to_be_bytes());
        want.push(1);
        want.extend([0, 3]);
        want.extend([0xA0, 0x0B]);
        want.extend(s("www.example.com"));
        want.extend([0xA0, 0x0E]);
        want.extend(s("t"));
        want.extend(s("X-Custom"));
        want.extend(s("1"));
        want.push(attr::SECRET);
        want.extend(s("s3cret"));
        want.push(attr::QUERY_STRING);
        want.extend(s("a=1"));
        want.push(attr::JVM_ROUTE);
        want.extend(s("node1"));
        want.push(attr::REQ_ATTRIBUTE);
        want.extend(s("AJP_REMOTE_PORT"));
        want.extend(s("50123"));
        want.push(attr::REQ_ATTRIBUTE);
        want.extend(s("AJP_LOCAL_ADDR"));
        want.extend(s("127.0.0.1"));
        want.push(attr::ARE_DONE);
        let mut packet = vec![0x12, 0x34];
        packet.extend((want.len() as u16).to_be_bytes());
        packet.extend(&want);
        assert_eq!(out, packet);
    }

    #[test]
    fn every_code_round_trips() {
        // Every coded method, and one Tomcat has no code for (stored as an attribute).
        for (i, m) in METHODS.iter().chain(["PURGE"].iter()).enumerate() {
            let mut f = forward(&[]);
            f.method = m.as_bytes();
            let mut out = Vec::new();
            encode_forward(&f, &mut out, DEFAULT_PACKET_SIZE).unwrap();
            let d = decode_forward(&out[HEADER_LEN..]).unwrap();
            assert_eq!(d.method, m.as_bytes());
            let stored = d.attributes.iter().any(|(a, _)| *a == attr::STORED_METHOD);
            assert_eq!(stored, i == METHODS.len(), "{m}");
        }
        // Every coded request header, whatever its case.
        for (i, h) in REQUEST_HEADERS.iter().enumerate() {
            let upper = h.to_ascii_uppercase();
            let headers: &[(&[u8], &[u8])] = &[(upper.as_bytes(), b"v")];
            let mut out = Vec::new();
            encode_forward(&forward(headers), &mut out, DEFAULT_PACKET_SIZE).unwrap();
            let d = decode_forward(&out[HEADER_LEN..]).unwrap();
            assert_eq!(d.headers, [(h.as_bytes().to_vec(), b"v".to_vec())]);
            assert_eq!(request_header_for_code(0xA001 + i as u16), Some(*h));
        }
        // Every coded response header.
        for (i, h) in RESPONSE_HEADERS.iter().enumerate() {
            let mut p = vec![SEND_HEADERS, 0, 200, 0xFF, 0xFF, 0, 1];
            p.extend((0xA001 + i as u16).to_be_bytes());
            p.extend(s("v"));
            let bytes = packet(&p);
            let Some((Reply::Headers(head), _)) = decode(&bytes, DEFAULT_PACKET_SIZE).unwrap()
            else {
                panic!("{h}");
            };
            assert_eq!(head.headers, [(HeaderName::Coded(h), &b"v"[..])]);
        }
        // Every attribute, TLS ones included.
        let mut f = forward(&[]);
        f.remote_user = Some(b"alice");
        f.auth_type = Some(b"Basic");
        f.ssl_cert = Some(b"-----BEGIN CERTIFICATE-----");
        f.ssl_cipher = Some(b"TLS_AES_128_GCM_SHA256");
        f.ssl_session = Some(b"00ff");
        f.ssl_key_size = Some(128);
        f.ssl_protocol = Some(b"TLSv1.3");
        let mut out = Vec::new();
        encode_forward(&f, &mut out, DEFAULT_PACKET_SIZE).unwrap();
        let d = decode_forward(&out[HEADER_LEN..]).unwrap();
        let codes: Vec<u8> = d.attributes.iter().map(|(a, _)| *a).collect();
        assert_eq!(
            codes,
            [
                attr::SECRET,
                attr::REMOTE_USER,
                attr::AUTH_TYPE,
                attr::QUERY_STRING,
                attr::JVM_ROUTE,
                attr::SSL_CERT,
                attr::SSL_CIPHER,
                attr::SSL_SESSION,
                attr::SSL_KEY_SIZE,
                attr::REQ_ATTRIBUTE,
                attr::REQ_ATTRIBUTE,
                attr::REQ_ATTRIBUTE,
            ]
        );
        assert_eq!(d.attributes[8].1, b"128");
        assert_eq!(d.attributes[9].1, b"AJP_SSL_PROTOCOL=TLSv1.3");
        assert_eq!((d.server_port, d.is_ssl), (443, true));
    }

    #[test]
    fn what_does_not_fit_is_refused_whole() {
        let long = vec![b'a'; 9000];
        let headers: &[(&[u8], &[u8])] = &[(b"X-Long", &long)];
        let mut out = b"kept".to_vec();
        assert_eq!(
            encode_forward(&forward(headers), &mut out, DEFAULT_PACKET_SIZE),
            Err(AjpError::RequestTooLarge(DEFAULT_PACKET_SIZE))
        );
        assert_eq!(out, b"kept");
        // The same head fits a 16 KiB packet size.
        out.clear();
        encode_forward(&forward(headers), &mut out, 16384).unwrap();
        let long_name = vec![b'n'; 0xA001];
        let headers: &[(&[u8], &[u8])] = &[(&long_name, b"v")];
        out.clear();
        assert_eq!(
            encode_forward(&forward(headers), &mut out, MAX_PACKET_SIZE),
            Err(AjpError::FieldTooLong)
        );
        let huge = vec![b'a'; 70_000];
        let headers: &[(&[u8], &[u8])] = &[(b"X-Huge", &huge)];
        out.clear();
        assert_eq!(
            encode_forward(&forward(headers), &mut out, MAX_PACKET_SIZE),
            Err(AjpError::FieldTooLong)
        );
        assert!(out.is_empty());
    }

    #[test]
    fn body_and_cping_packets() {
        let mut out = Vec::new();
        encode_body(b"hello", &mut out);
        encode_body(b"", &mut out);
        encode_cping(&mut out);
        assert_eq!(
            out,
            [
                0x12, 0x34, 0, 7, 0, 5, b'h', b'e', b'l', b'l', b'o', 0x12, 0x34, 0, 0, 0x12, 0x34,
                0, 1, CPING
            ]
        );
        assert_eq!(max_body_chunk(DEFAULT_PACKET_SIZE), 8186);
    }
}
