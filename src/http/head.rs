//! Request and response heads: parsing over httparse, Apache's size limits, and the RFC 9112
//! §6 framing decision. No I/O: `parse_*` return `Ok(None)` when more bytes are needed.
//!
//! Heads are stored as byte ranges into the connection's read buffer, so parsing allocates
//! nothing once the header vector has grown to its working size.

use std::mem::MaybeUninit;
use std::ops::Range;

use crate::config::url::{split_scheme, Scheme};

/// Header lines we look at when forwarding; anything else is copied as bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderRange {
    pub name: Range<usize>,
    pub value: Range<usize>,
}

impl HeaderRange {
    /// Whether this field is named `name` (ASCII case-insensitive, as RFC 9110 §5.1 says).
    pub fn is(&self, buf: &[u8], name: &[u8]) -> bool {
        buf[self.name.clone()].eq_ignore_ascii_case(name)
    }
}

/// Request body framing (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestBody {
    None,
    Length(u64),
    Chunked,
}

/// Response body framing (RFC 9112 §6.3, in the order the rules apply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseBody {
    None,
    Length(u64),
    Chunked,
    /// Ends when the backend closes.
    UntilClose,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("request line longer than LimitRequestLine")]
    LineTooLong,
    #[error("header field longer than LimitRequestFieldSize")]
    FieldTooLarge,
    #[error("more header fields than LimitRequestFields")]
    TooManyFields,
    #[error("malformed head: {0}")]
    Malformed(&'static str),
    #[error("method not allowed: {0}")]
    MethodNotAllowed(&'static str),
}

impl HeadError {
    /// The status a client gets for this error (issue: 414 / 431 / 400).
    pub fn status(&self) -> u16 {
        match self {
            HeadError::LineTooLong => 414,
            HeadError::FieldTooLarge => 431,
            HeadError::TooManyFields | HeadError::Malformed(_) => 400,
            HeadError::MethodNotAllowed(_) => 405,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub request_line: usize,
    pub field_size: usize,
    pub fields: usize,
}

/// Largest response head accepted from a backend (Apache's ResponseFieldSize is per line,
/// 8 KiB; we bound the whole head, which covers the same attack).
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Most header fields accepted in a backend response.
pub const MAX_RESPONSE_FIELDS: usize = 256;

#[derive(Clone, Debug, Default)]
pub struct RequestHead {
    /// Bytes of the head including the final CRLF CRLF.
    pub len: usize,
    pub method: Range<usize>,
    /// Path and query as forwarded (origin-form; for absolute-form the part after the
    /// authority).
    pub path: Range<usize>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub headers: Vec<HeaderRange>,
    pub host: Option<Range<usize>>,
    pub body: Option<RequestBody>,
    /// Connection: close, or HTTP/1.0 without keep-alive.
    pub close: bool,
    pub expect_continue: bool,
    /// Header names listed in `Connection` (to strip as hop-by-hop), as ranges.
    pub connection_tokens: Vec<Range<usize>>,
    pub is_head: bool,
    /// The Content-Length value, when one was sent.
    pub content_length: Option<u64>,
    /// Content-Length came as a list or on several lines (all equal): forward one value.
    pub rewrite_length: bool,
}

#[derive(Clone, Debug, Default)]
pub struct ResponseHead {
    pub len: usize,
    pub status: u16,
    pub reason: Range<usize>,
    pub minor: u8,
    pub headers: Vec<HeaderRange>,
    pub body: Option<ResponseBody>,
    /// The backend said it will close (or is HTTP/1.0 without keep-alive).
    pub close: bool,
    pub connection_tokens: Vec<Range<usize>>,
    pub content_length: Option<u64>,
    /// Content-Length is dropped from what is forwarded and, for a body of that length,
    /// written once: it came as a list or on several lines, or beside Transfer-Encoding
    /// (which overrides it, RFC 9112 §6.3, and a proxy must then remove it).
    pub rewrite_length: bool,
}

impl RequestHead {
    pub fn method<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.method.clone()]
    }

    /// The fields named `name` (ASCII case-insensitive), in order: every lookup of a
    /// request header by name goes through here.
    pub fn named<'a>(
        &'a self,
        buf: &'a [u8],
        name: &'a [u8],
    ) -> impl Iterator<Item = &'a HeaderRange> + 'a {
        self.headers.iter().filter(move |h| h.is(buf, name))
    }

    /// The values of every header `name`, in order.
    pub fn headers_named<'a>(
        &'a self,
        buf: &'a [u8],
        name: &'a [u8],
    ) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.named(buf, name).map(move |h| &buf[h.value.clone()])
    }

    /// The values of every header `name` that are text, in order.
    pub fn header_texts<'a>(
        &'a self,
        buf: &'a [u8],
        name: &'a [u8],
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.headers_named(buf, name)
            .filter_map(|v| std::str::from_utf8(v).ok())
    }

    /// The value of the first header `name`.
    pub fn header<'a>(&self, buf: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
        let h = self.headers.iter().find(|h| h.is(buf, name))?;
        Some(&buf[h.value.clone()])
    }

    /// The request-target's path and query (without `?`), as received: where the path
    /// ends in `buf`, and the query's range.
    pub fn target_parts(&self, buf: &[u8]) -> (Range<usize>, Option<Range<usize>>) {
        let t = self.path.clone();
        let (path, query) = split_target(&buf[t.clone()]);
        let start = t.start;
        let query = query.map(|q| t.end - q.len()..t.end);
        (start..start + path.len(), query)
    }

    pub fn body(&self) -> RequestBody {
        self.body.unwrap_or(RequestBody::None)
    }
    /// RFC 9110 §9.2.2 idempotent methods: safe to send twice.
    pub fn is_idempotent(&self, buf: &[u8]) -> bool {
        matches!(
            self.method(buf),
            b"GET" | b"HEAD" | b"OPTIONS" | b"PUT" | b"DELETE" | b"TRACE"
        )
    }
}

impl ResponseHead {
    pub fn body(&self) -> ResponseBody {
        self.body.unwrap_or(ResponseBody::UntilClose)
    }
}

fn offset(buf: &[u8], part: &[u8]) -> usize {
    part.as_ptr() as usize - buf.as_ptr() as usize
}

fn range_of(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = offset(buf, part);
    start..start + part.len()
}

/// Where the search for a request head's end stands, so that a head arriving in many small
/// reads is scanned once in all, not once per read (which is quadratic in the head's
/// length for a client sending a byte at a time). Line limits are checked as lines grow.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeadScan {
    /// Bytes of the buffer already looked at.
    scanned: usize,
    /// Where the current line starts.
    line_start: usize,
    /// Lines completed so far (0 while in the request line; empty lines before it are
    /// not counted).
    lines: usize,
}

impl HeadScan {
    /// Looks at the bytes of `buf` not seen before. `Ok(true)`: the blank line that ends
    /// the head is in `buf` (parse it now); `Ok(false)`: read more.
    pub fn advance(&mut self, buf: &[u8], limits: &Limits) -> Result<bool, HeadError> {
        let limit_now = |lines: usize, len: usize| -> Result<(), HeadError> {
            if lines == 0 && len > limits.request_line {
                return Err(HeadError::LineTooLong);
            }
            if lines > 0 && len > limits.field_size {
                return Err(HeadError::FieldTooLarge);
            }
            Ok(())
        };
        while self.scanned < buf.len() {
            let rest = &buf[self.scanned..];
            let Some(i) = memchr::memchr(b'\n', rest) else {
                self.scanned = buf.len();
                return limit_now(self.lines, buf.len() - self.line_start).map(|()| false);
            };
            let end = self.scanned + i;
            let line = &buf[self.line_start..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            limit_now(self.lines, line.len())?;
            self.scanned = end + 1;
            self.line_start = end + 1;
            if line.is_empty() {
                if self.lines > 0 {
                    return Ok(true);
                }
                // An empty line before the request line (RFC 9112 §2.2) is skipped.
                continue;
            }
            if self.lines > limits.fields {
                return Err(HeadError::TooManyFields);
            }
            self.lines += 1;
        }
        Ok(false)
    }

    /// Bytes looked at so far (for tests of linearity).
    pub fn scanned(&self) -> usize {
        self.scanned
    }
}

/// Checks the request line and each header line against the limits before httparse runs,
/// so that an over-long line is refused even while it is still arriving.
fn check_limits(buf: &[u8], limits: &Limits) -> Result<(), HeadError> {
    let mut start = 0;
    let mut line_no = 0usize;
    // A client may send empty lines before the request line (RFC 9112 §2.2).
    while buf[start..].starts_with(b"\r\n") {
        start += 2;
    }
    loop {
        let rest = &buf[start..];
        let (line_len, complete) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (
                if i > 0 && rest[i - 1] == b'\r' {
                    i - 1
                } else {
                    i
                },
                true,
            ),
            None => (rest.len(), false),
        };
        let limit = if line_no == 0 {
            limits.request_line
        } else {
            limits.field_size
        };
        if line_len > limit {
            return Err(if line_no == 0 {
                HeadError::LineTooLong
            } else {
                HeadError::FieldTooLarge
            });
        }
        if !complete {
            return Ok(());
        }
        if line_len == 0 && line_no > 0 {
            return Ok(()); // end of head
        }
        if line_no > limits.fields {
            return Err(HeadError::TooManyFields);
        }
        line_no += 1;
        start += rest
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| i + 1)
            .unwrap_or(rest.len());
    }
}

fn map_httparse(e: httparse::Error) -> HeadError {
    match e {
        httparse::Error::TooManyHeaders => HeadError::TooManyFields,
        httparse::Error::HeaderName => HeadError::Malformed("invalid header name"),
        httparse::Error::HeaderValue => HeadError::Malformed("invalid header value"),
        httparse::Error::NewLine => HeadError::Malformed("invalid line ending"),
        httparse::Error::Status => HeadError::Malformed("invalid status"),
        httparse::Error::Token => HeadError::Malformed("invalid token"),
        httparse::Error::Version => HeadError::Malformed("unsupported HTTP version"),
    }
}

/// Headers up to this count are parsed on the stack.
const STACK_HEADERS: usize = 128;

/// Parses a request head from the start of `buf`. `Ok(None)`: incomplete, read more.
pub fn parse_request(
    buf: &[u8],
    limits: &Limits,
    head: &mut RequestHead,
) -> Result<Option<()>, HeadError> {
    check_limits(buf, limits)?;
    // Uninitialised slots: httparse writes only the ones it fills, so a parse costs no
    // clearing of a table sized for the worst case.
    let mut stack = [const { MaybeUninit::<httparse::Header>::uninit() }; STACK_HEADERS];
    let mut heap;
    let headers: &mut [MaybeUninit<httparse::Header>] = if limits.fields < STACK_HEADERS {
        &mut stack[..limits.fields + 1]
    } else {
        heap = Vec::with_capacity(limits.fields + 1);
        heap.resize_with(limits.fields + 1, MaybeUninit::uninit);
        &mut heap
    };
    let mut req = httparse::Request::new(&mut []);
    let parsed =
        httparse::ParserConfig::default().parse_request_with_uninit_headers(&mut req, buf, headers);
    let len = match parsed.map_err(map_httparse)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    if req.headers.len() > limits.fields {
        return Err(HeadError::TooManyFields);
    }
    let method = req.method.unwrap_or("");
    let target = req.path.unwrap_or("");
    head.len = len;
    head.method = range_of(buf, method.as_bytes());
    head.minor = req.version.unwrap_or(1);
    head.is_head = method == "HEAD";
    head.headers.clear();
    head.connection_tokens.clear();
    head.host = None;
    head.expect_continue = false;
    if method == "CONNECT" {
        return Err(HeadError::MethodNotAllowed(
            "CONNECT: ringproxy is not a forward proxy",
        ));
    }
    // Request target: origin-form, absolute-form (its authority replaces Host, RFC 9112
    // §3.2.2) or `*` for OPTIONS.
    let target_range = range_of(buf, target.as_bytes());
    let mut absolute_host = None;
    if target.starts_with('/') || (target == "*" && method == "OPTIONS") {
        head.path = target_range;
    } else if let Some((Scheme::Http | Scheme::Https, rest)) = split_scheme(target) {
        let auth_len = rest.find(['/', '?']).unwrap_or(rest.len());
        if auth_len == 0 {
            return Err(HeadError::Malformed("absolute URI without host"));
        }
        let auth_start = target_range.end - rest.len();
        absolute_host = Some(auth_start..auth_start + auth_len);
        head.path = auth_start + auth_len..target_range.end;
    } else {
        return Err(HeadError::Malformed("invalid request target"));
    }
    let mut scan = FramingScan::default();
    let mut host_count = 0;
    for h in req.headers.iter() {
        let name = range_of(buf, h.name.as_bytes());
        let value = range_of(buf, h.value);
        let n = h.name.as_bytes();
        let framing = scan.header(buf, n, h.value, &mut head.connection_tokens)?;
        if framing {
            // counted by the scan
        } else if n.eq_ignore_ascii_case(b"host") {
            host_count += 1;
            head.host = Some(value.clone());
        } else if n.eq_ignore_ascii_case(b"expect") {
            if h.value.eq_ignore_ascii_case(b"100-continue") {
                head.expect_continue = true;
            } else {
                return Err(HeadError::Malformed("unsupported Expect"));
            }
        }
        head.headers.push(HeaderRange { name, value });
    }
    let FramingScan {
        content_length,
        saw_te,
        chunked_last,
        chunked_count,
        close: conn_close,
        keep_alive: conn_keep_alive,
        length_repeated,
    } = scan;
    head.content_length = content_length;
    head.rewrite_length = length_repeated;
    if host_count > 1 {
        return Err(HeadError::Malformed("more than one Host header"));
    }
    if let Some(h) = &head.host {
        if !valid_host(&buf[h.clone()]) {
            return Err(HeadError::Malformed("invalid Host header"));
        }
    }
    if let Some(a) = &absolute_host {
        let authority = &buf[a.clone()];
        if !valid_host(authority) || authority.is_empty() {
            return Err(HeadError::Malformed(
                "invalid authority in the request target",
            ));
        }
        // A backend or a log that reads Host must not see another name than the one the
        // request was routed by.
        if let Some(h) = &head.host {
            if !same_authority(&buf[h.clone()], authority) {
                return Err(HeadError::Malformed(
                    "Host differs from the request target's authority",
                ));
            }
        }
    }
    if host_count == 0 && head.minor == 1 && absolute_host.is_none() {
        return Err(HeadError::Malformed("HTTP/1.1 request without Host"));
    }
    if absolute_host.is_some() {
        head.host = absolute_host;
    }
    head.body = Some(if saw_te {
        // A proxy that picks one of TE and CL is a request-smuggling vector: refuse both.
        if content_length.is_some() {
            return Err(HeadError::Malformed(
                "Transfer-Encoding with Content-Length",
            ));
        }
        if head.minor == 0 {
            return Err(HeadError::Malformed(
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        if !chunked_last || chunked_count != 1 {
            return Err(HeadError::Malformed(
                "Transfer-Encoding must end in chunked, once",
            ));
        }
        RequestBody::Chunked
    } else {
        match content_length {
            Some(0) | None => RequestBody::None,
            Some(n) => RequestBody::Length(n),
        }
    });
    head.close = conn_close || (head.minor == 0 && !conn_keep_alive);
    Ok(Some(()))
}

/// Apache's check of a Host value (`fix_hostname` with `HttpProtocolOptions Strict`, its
/// default): `name[:port]` or `[v6]:port`; a name of letters, digits, `-`, `_` and single
/// dots whose last label starts with a letter, or a dotted-quad IPv4 address without
/// leading zeros. Lists, spaces, `/`, `\`, `@`, zone ids and bare numbers are refused.
/// An empty Host is allowed (RFC 9112 §3.2).
pub fn valid_host(v: &[u8]) -> bool {
    if v.is_empty() {
        return true;
    }
    let (host, port) = if v[0] == b'[' {
        match v.iter().position(|&b| b == b']') {
            Some(end) => (&v[..=end], &v[end + 1..]),
            None => return false,
        }
    } else {
        match v.iter().rposition(|&b| b == b':') {
            Some(i) => (&v[..i], &v[i..]),
            None => (v, &v[v.len()..]),
        }
    };
    if let Some(digits) = port.strip_prefix(b":") {
        let ok = digits.len() <= 5
            && digits.iter().all(u8::is_ascii_digit)
            && digits
                .iter()
                .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
                <= 65535;
        if !ok {
            return false;
        }
    } else if !port.is_empty() {
        return false;
    }
    match host {
        [b'[', inner @ .., b']'] => valid_v6_literal(inner),
        _ => valid_host_name(host),
    }
}

fn valid_v6_literal(h: &[u8]) -> bool {
    if h.is_empty() {
        return false;
    }
    let mut double_colon = false;
    for (i, &b) in h.iter().enumerate() {
        let next = h.get(i + 1).copied();
        match b {
            b':' if next == Some(b':') => {
                if double_colon {
                    return false;
                }
                double_colon = true;
            }
            b':' if next == Some(b'.') => return false,
            b':' => {}
            b'.' if matches!(next, Some(b':' | b'.')) => return false,
            b'.' => {}
            b if b.is_ascii_hexdigit() => {}
            _ => return false,
        }
    }
    true
}

fn valid_host_name(h: &[u8]) -> bool {
    // A trailing dot names the same host.
    let h = h.strip_suffix(b".").unwrap_or(h);
    if h.is_empty() || h.iter().all(u8::is_ascii_digit) {
        return false;
    }
    if h.windows(2).any(|w| w == b"..") || h[0] == b'.' {
        return false;
    }
    if !h
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return false;
    }
    let dotted_decimal = h.iter().all(|&b| b.is_ascii_digit() || b == b'.');
    if dotted_decimal {
        // Counted, not collected: a Host like 127.0.0.1 comes with every request.
        let mut parts = 0;
        let each_ok = h.split(|&b| b == b'.').all(|p| {
            parts += 1;
            !p.is_empty() && p.len() <= 3 && (p.len() == 1 || p[0] != b'0')
        });
        return each_ok && parts == 4;
    }
    // The top-level label starts with a letter (RFC 1123 §2.1).
    match h.iter().rposition(|&b| b == b'.') {
        Some(i) => h.get(i + 1).is_some_and(u8::is_ascii_alphabetic),
        None => true,
    }
}

/// Whether two valid authorities name the same host and port (case and a trailing dot
/// aside; port 80 is the default).
fn same_authority(a: &[u8], b: &[u8]) -> bool {
    fn parts(v: &[u8]) -> (Vec<u8>, &[u8]) {
        let (host, port) = super::authority::split(v).unwrap_or((v, None));
        let host = host.strip_suffix(b".").unwrap_or(host).to_ascii_lowercase();
        let port = port.filter(|p| *p != b"80").unwrap_or_default();
        (host, port)
    }
    parts(a) == parts(b)
}

/// A request-target's path and query (without the `?`): the one place a target is split.
pub fn split_target(target: &[u8]) -> (&[u8], Option<&[u8]>) {
    match memchr::memchr(b'?', target) {
        Some(i) => (&target[..i], Some(&target[i + 1..])),
        None => (target, None),
    }
}

/// Parses a backend response head. `request_is_head` decides framing for HEAD.
pub fn parse_response(
    buf: &[u8],
    request_is_head: bool,
    head: &mut ResponseHead,
) -> Result<Option<()>, HeadError> {
    // Uninitialised: 256 slots cleared per response were most of this function's cost.
    let mut headers = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_RESPONSE_FIELDS];
    let mut res = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut res,
        buf,
        &mut headers,
    );
    let len = match parsed.map_err(map_httparse)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => {
            if buf.len() > MAX_RESPONSE_HEAD {
                return Err(HeadError::FieldTooLarge);
            }
            return Ok(None);
        }
    };
    head.len = len;
    head.status = res.code.unwrap_or(0);
    // Three digits, the first 1 to 9 (RFC 9110 §15): `062` is not status 62, and a status
    // written back with fewer digits would be no status line at all.
    if head.status < 100 {
        return Err(HeadError::Malformed("invalid status code"));
    }
    head.reason = match res.reason {
        Some(r) if !r.is_empty() => range_of(buf, r.as_bytes()),
        // httparse gives "" both for no reason and for one with obs-text (not UTF-8):
        // the bytes are read from the status line itself.
        _ => raw_reason(&buf[..len]),
    };
    head.minor = res.version.unwrap_or(1);
    head.headers.clear();
    head.connection_tokens.clear();
    let mut scan = FramingScan::default();
    for h in res.headers.iter() {
        let n = h.name.as_bytes();
        scan.header(buf, n, h.value, &mut head.connection_tokens)?;
        head.headers.push(HeaderRange {
            name: range_of(buf, n),
            value: range_of(buf, h.value),
        });
    }
    let FramingScan {
        content_length,
        saw_te,
        chunked_last,
        close: conn_close,
        keep_alive: conn_keep_alive,
        length_repeated,
        ..
    } = scan;
    // Transfer-Encoding overrides Content-Length (RFC 9112 §6.3): the length is not passed on.
    head.content_length = if saw_te { None } else { content_length };
    head.rewrite_length = length_repeated || (saw_te && content_length.is_some());
    let status = head.status;
    head.body = Some(
        if request_is_head || (100..200).contains(&status) || status == 204 || status == 304 {
            ResponseBody::None
        } else if saw_te {
            // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length; a coding list not
            // ending in chunked is delimited by close.
            if chunked_last {
                ResponseBody::Chunked
            } else {
                ResponseBody::UntilClose
            }
        } else {
            match content_length {
                Some(n) => ResponseBody::Length(n),
                None => ResponseBody::UntilClose,
            }
        },
    );
    head.close = conn_close
        || (head.minor == 0 && !conn_keep_alive)
        || head.body == Some(ResponseBody::UntilClose);
    Ok(Some(()))
}

/// The reason phrase's bytes in a complete response head: what follows
/// `HTTP/1.x NNN ` on the status line (after any empty lines before it).
fn raw_reason(head: &[u8]) -> Range<usize> {
    let mut start = 0;
    while head[start..].starts_with(b"\r\n") {
        start += 2;
    }
    while head[start..].starts_with(b"\n") {
        start += 1;
    }
    let line_len = head[start..]
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(head.len() - start);
    let line = &head[start..start + line_len];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > 13 && line[12] == b' ' {
        start + 13..start + line.len()
    } else {
        0..0
    }
}

/// What the framing-relevant headers (Content-Length, Transfer-Encoding, Connection) say,
/// gathered the same way for requests and responses.
#[derive(Default)]
struct FramingScan {
    content_length: Option<u64>,
    saw_te: bool,
    chunked_last: bool,
    chunked_count: u32,
    close: bool,
    keep_alive: bool,
    /// Content-Length was a list or came on more than one line.
    length_repeated: bool,
}

impl FramingScan {
    /// Takes one header; returns whether it was one of the framing headers.
    fn header(
        &mut self,
        buf: &[u8],
        name: &[u8],
        value: &[u8],
        connection_tokens: &mut Vec<Range<usize>>,
    ) -> Result<bool, HeadError> {
        if name.eq_ignore_ascii_case(b"content-length") {
            let v = parse_content_length(value)?;
            if self.content_length.is_some_and(|prev| prev != v) {
                return Err(HeadError::Malformed("conflicting Content-Length"));
            }
            self.length_repeated |= self.content_length.is_some() || value.contains(&b',');
            self.content_length = Some(v);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.saw_te = true;
            for coding in split_list(value) {
                self.chunked_last = coding.eq_ignore_ascii_case(b"chunked");
                if self.chunked_last {
                    self.chunked_count += 1;
                }
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for tok in split_list(value) {
                if tok.eq_ignore_ascii_case(b"close") {
                    self.close = true;
                } else if tok.eq_ignore_ascii_case(b"keep-alive") {
                    self.keep_alive = true;
                }
                connection_tokens.push(range_of(buf, tok));
            }
        } else {
            return Ok(false);
        }
        Ok(true)
    }
}

/// `Content-Length` must be 1*DIGIT; a list of identical values is tolerated (RFC 9110
/// §8.6), differing ones are not.
fn parse_content_length(v: &[u8]) -> Result<u64, HeadError> {
    let mut out: Option<u64> = None;
    for part in split_list(v) {
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return Err(HeadError::Malformed("invalid Content-Length"));
        }
        let n = part
            .iter()
            .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
        if out.is_some_and(|o| o != n) {
            return Err(HeadError::Malformed("conflicting Content-Length"));
        }
        out = Some(n);
    }
    out.ok_or(HeadError::Malformed("empty Content-Length"))
}

/// Splits a comma-separated header list, trimming optional whitespace; empty items skipped.
pub fn split_list(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',').filter_map(|item| {
        let item = trim(item);
        (!item.is_empty()).then_some(item)
    })
}

pub fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        request_line: 8190,
        field_size: 8190,
        fields: 100,
    };

    fn req(raw: &[u8]) -> Result<Option<RequestHead>, HeadError> {
        let mut h = RequestHead::default();
        parse_request(raw, &LIMITS, &mut h).map(|o| o.map(|_| h))
    }

    #[test]
    fn request_framing_table() {
        use RequestBody::*;
        let ok: &[(&[u8], RequestBody)] = &[
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", None),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
                Length(5),
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
                Length(5),
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
                None,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
                Chunked,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                Chunked,
            ),
            (b"GET / HTTP/1.0\r\n\r\n", None),
        ];
        for (raw, want) in ok {
            let h = req(raw).unwrap().unwrap();
            assert_eq!(h.body(), *want, "{}", String::from_utf8_lossy(raw));
            assert_eq!(h.len, raw.len());
        }
    }

    #[test]
    fn malformed_requests_table() {
        let bad: &[(&[u8], u16)] = &[
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n  folded\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX : a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n", 400),
            (b"GET foo HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 400),
            (b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 405),
        ];
        for (raw, status) in bad {
            let e = req(raw).expect_err(&String::from_utf8_lossy(raw));
            assert_eq!(e.status(), *status, "{}: {e}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn partial_input_returns_none() {
        let full = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n";
        for cut in 0..full.len() {
            assert!(req(&full[..cut]).unwrap().is_none(), "cut at {cut}");
        }
        assert!(req(full).unwrap().is_some());
    }

    #[test]
    fn head_scan_is_linear_and_agrees_with_the_parser() {
        let head = format!(
            "\r\nGET /x HTTP/1.1\r\nHost: a\r\n{}\r\n",
            (0..50).map(|i| format!("X-{i}: v\n")).collect::<String>()
        );
        let bytes = head.as_bytes();
        let mut scan = HeadScan::default();
        let mut looked = 0;
        for n in 1..=bytes.len() {
            let before = scan.scanned();
            let done = scan.advance(&bytes[..n], &LIMITS).unwrap();
            looked += scan.scanned() - before;
            assert_eq!(done, n == bytes.len(), "at {n}");
            assert_eq!(req(&bytes[..n]).unwrap().is_some(), done, "at {n}");
        }
        // Each byte looked at once, however the head was cut.
        assert_eq!(looked, bytes.len());
        // Limits hold while a line is still arriving.
        let small = Limits {
            request_line: 20,
            field_size: 10,
            fields: 2,
        };
        let mut scan = HeadScan::default();
        assert_eq!(
            scan.advance(format!("GET /{}", "a".repeat(30)).as_bytes(), &small),
            Err(HeadError::LineTooLong)
        );
        let mut scan = HeadScan::default();
        assert_eq!(
            scan.advance(b"GET / HTTP/1.1\r\nA: b\r\nB: c\r\nC: d\r\n", &small),
            Err(HeadError::TooManyFields)
        );
    }

    #[test]
    fn limits() {
        let small = Limits {
            request_line: 20,
            field_size: 10,
            fields: 2,
        };
        let mut h = RequestHead::default();
        let long_line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(30));
        assert_eq!(
            parse_request(long_line.as_bytes(), &small, &mut h).unwrap_err(),
            HeadError::LineTooLong
        );
        // Refused while still arriving, before a newline shows up.
        assert_eq!(
            parse_request(&long_line.as_bytes()[..25], &small, &mut h).unwrap_err(),
            HeadError::LineTooLong
        );
        assert_eq!(
            parse_request(
                b"GET / HTTP/1.1\r\nHost: aaaaaaaaaaaa\r\n\r\n",
                &small,
                &mut h
            )
            .unwrap_err()
            .status(),
            431
        );
        assert_eq!(
            parse_request(
                b"GET / HTTP/1.1\r\nHost: a\r\nA: b\r\nB: c\r\n\r\n",
                &small,
                &mut h
            )
            .unwrap_err()
            .status(),
            400
        );
        assert!(
            parse_request(b"GET / HTTP/1.1\r\nHost: a\r\nA: b\r\n\r\n", &small, &mut h)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn connection_semantics() {
        let h = req(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Foo\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.close);
        assert_eq!(h.connection_tokens.len(), 2);
        let h = req(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.close);
        let h = req(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(h.close);
    }

    #[test]
    fn host_values_table() {
        let ok = [
            "a",
            "example.com",
            "Example.COM.",
            "www.example.com:8080",
            "127.0.0.1",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:8443",
            "[fe80::1:2]",
            "my_host.local",
            "x-1.example",
            "localhost:",
            "",
        ];
        for h in ok {
            assert!(valid_host(h.as_bytes()), "{h} should be valid");
        }
        let bad = [
            "a, b",
            "a b",
            "a/b",
            "a\\b",
            "user@host",
            "a..b",
            ".a",
            "123",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "host.123",
            "[::1",
            "[::1]x",
            "[fe80::1%eth0]",
            "[1::2::3]",
            "host:99999",
            "host:8x",
            ":80",
            "ex!ample.com",
            "é.example",
        ];
        for h in bad {
            assert!(!valid_host(h.as_bytes()), "{h} should be refused");
        }
    }

    #[test]
    fn host_and_absolute_target_must_agree() {
        let e = req(b"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n").unwrap_err();
        assert_eq!(e.status(), 400);
        let e = req(b"GET http://a.example/x HTTP/1.1\r\nHost: b.example\r\n\r\n").unwrap_err();
        assert_eq!(e.status(), 400, "{e}");
        let e = req(b"GET http://u@a.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n").unwrap_err();
        assert_eq!(e.status(), 400, "{e}");
        for same in ["A.example", "a.example:80", "a.example."] {
            let raw = format!("GET http://a.example/x HTTP/1.1\r\nHost: {same}\r\n\r\n");
            assert!(req(raw.as_bytes()).unwrap().is_some(), "{same}");
        }
    }

    #[test]
    fn absolute_form_target() {
        let raw = b"GET http://example.com/a?b HTTP/1.1\r\nHost: example.com\r\n\r\n";
        let h = req(raw).unwrap().unwrap();
        assert_eq!(&raw[h.path.clone()], b"/a?b");
        assert_eq!(&raw[h.host.clone().unwrap()], b"example.com");
    }

    fn resp(raw: &[u8], is_head: bool) -> ResponseHead {
        let mut h = ResponseHead::default();
        parse_response(raw, is_head, &mut h).unwrap().unwrap();
        h
    }

    #[test]
    fn reason_phrases_are_read_from_the_status_line() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"HTTP/1.1 206 \r\n\r\n", b""),
            (b"HTTP/1.1 206\r\n\r\n", b""),
            (b"HTTP/1.1 200 OK\r\n\r\n", b"OK"),
            (b"HTTP/1.1 200 caf\xe9 au lait\r\n\r\n", b"caf\xe9 au lait"),
            (b"\r\nHTTP/1.1 200 \xff\r\n\r\n", b"\xff"),
        ];
        for (raw, want) in cases {
            let h = resp(raw, false);
            assert_eq!(
                &raw[h.reason.clone()],
                *want,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn status_codes_below_100_are_refused() {
        // Found by the response_head fuzz target: `062` was forwarded as `62`.
        for raw in [&b"HTTP/1.1 062 \r\n\r\n"[..], b"HTTP/1.1 000 x\r\n\r\n"] {
            let mut h = ResponseHead::default();
            assert!(parse_response(raw, false, &mut h).is_err());
        }
    }

    #[test]
    fn repeated_lengths_are_marked_for_one_value() {
        let h = req(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((h.content_length, h.rewrite_length), (Some(5), true));
        let h = req(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((h.content_length, h.rewrite_length), (Some(5), false));
        let h = resp(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
            false,
        );
        assert_eq!((h.content_length, h.rewrite_length), (None, true));
    }

    #[test]
    fn response_framing_table() {
        use ResponseBody::*;
        let cases: &[(&[u8], bool, ResponseBody)] = &[
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
                false,
                Length(3),
            ),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", true, None),
            (b"HTTP/1.1 204 No Content\r\n\r\n", false, None),
            (
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                false,
                None,
            ),
            (b"HTTP/1.1 100 Continue\r\n\r\n", false, None),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                Chunked,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
                false,
                Chunked,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                false,
                UntilClose,
            ),
            (b"HTTP/1.1 200 OK\r\n\r\n", false, UntilClose),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n",
                false,
                Length(1),
            ),
        ];
        for (raw, is_head, want) in cases {
            assert_eq!(
                resp(raw, *is_head).body(),
                *want,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        assert!(resp(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false).close);
        assert!(!resp(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n", false).close);
        let mut h = ResponseHead::default();
        assert!(parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            false,
            &mut h
        )
        .is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Len", false, &mut h)
                .unwrap()
                .is_none()
        );
    }
}
