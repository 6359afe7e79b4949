//! Forwarded heads: what goes to the backend and back to the client. The edits
//! ([`forward_request`], [`forward_response`]) work on the protocol-neutral header list
//! ([`Headers`]); the `write_*` functions serialize it as HTTP/1.1.
//!
//! Header lines that need no change are copied as the client or backend sent them. Hop-by-hop
//! headers are dropped both ways (RFC 9110 §7.6.1: Connection and every name it lists,
//! Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade). The `X-Forwarded-*` headers are
//! added *after* that stripping so a client cannot remove them by listing them in
//! `Connection` (CVE-2022-31813).

use std::io::Write as _;

use super::head::{RequestHead, ResponseHead};
use super::headers::{apply as apply_rules, Env, Rule};
use super::message::Headers;
use crate::config::ReverseRule;

const HOP_BY_HOP: &[&[u8]] = &[
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"upgrade",
];

fn is_hop_by_hop(name: &[u8], buf: &[u8], tokens: &[std::ops::Range<usize>]) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
        || tokens
            .iter()
            .any(|t| name.eq_ignore_ascii_case(&buf[t.clone()]))
}

/// Besides the hop-by-hop ones, names a backend may read as a framing or forwarding header
/// once `_` is `-` (CGI, WSGI, PHP and Rack turn both into `HTTP_CONTENT_LENGTH`).
const UNDERSCORE_SENSITIVE: &[&[u8]] = &[
    b"content-length",
    b"transfer-encoding",
    b"host",
    b"expect",
    b"forwarded",
    b"x-forwarded-for",
    b"x-forwarded-host",
    b"x-forwarded-server",
    b"x-forwarded-proto",
];

/// A request header written with `_` that reads as a hop-by-hop name or one of
/// [`UNDERSCORE_SENSITIVE`] with `-`: dropped, so `Content_Length` cannot frame a body or
/// `X_Forwarded_For` forge the client's address at a backend that folds the two. Other
/// names with `_` pass (nginx drops them all by default, which breaks applications that
/// use such headers).
fn underscore_alias(name: &[u8]) -> bool {
    name.contains(&b'_')
        && HOP_BY_HOP.iter().chain(UNDERSCORE_SENSITIVE).any(|s| {
            s.len() == name.len()
                && s.iter().zip(name).all(|(a, b)| {
                    let b = if *b == b'_' {
                        b'-'
                    } else {
                        b.to_ascii_lowercase()
                    };
                    *a == b
                })
        })
}

/// What changes on the way to the backend.
pub struct RequestRewrite<'a> {
    /// The request-target to send (path and query).
    pub path: &'a [u8],
    /// The member's `host[:port]`: the Host sent, unless `preserve_host` and the client
    /// sent one (an HTTP/1.0 client may not have: the member's then, as Apache does, so
    /// what goes out is always a valid HTTP/1.1 request).
    pub host: &'a [u8],
    /// ProxyPreserveHost.
    pub preserve_host: bool,
    /// The client's address, appended to X-Forwarded-For.
    pub client_ip: &'a [u8],
    pub server_name: &'a [u8],
    pub proto: &'a [u8],
    /// Ask the backend to close after this response (disablereuse).
    pub close: bool,
    /// `RequestHeader` rules and their variables.
    pub rules: &'a [Rule],
    pub env: &'a Env,
    /// mod_remoteip's changes, when it found the client behind trusted proxies.
    pub remote: Option<RemoteEdit<'a>>,
    /// `ProxyVia`.
    pub via: ViaEdit<'a>,
    /// `ProxyAddHeaders` (default On): X-Forwarded-For, -Host and -Server are added (and
    /// the client's own replaced); Off passes the client's as sent and adds none.
    pub add_forwarded: bool,
}

/// What `ProxyVia` does to a forwarded request's `Via`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViaEdit<'a> {
    /// As the client sent it.
    Pass,
    /// This hop appended (`1.1 name:port`).
    Add(&'a [u8]),
    /// Removed.
    Block,
}

/// mod_remoteip's changes to the forwarded head: its header keeps only what was not read
/// (or goes), and the trusted proxies passed go in `RemoteIPProxiesHeader`. When the
/// header is X-Forwarded-For, ringproxy's own address append follows what is left, as
/// mod_proxy's follows mod_remoteip's rewrite in Apache.
pub struct RemoteEdit<'a> {
    pub header: &'a [u8],
    pub rest: Option<&'a [u8]>,
    pub proxies_header: Option<&'a [u8]>,
    pub proxies: Option<&'a [u8]>,
}

/// Request headers a client may not set for the member: ringproxy sets them itself (Host,
/// X-Forwarded-*) or handles them at its own hop (Expect: the proxy answers `100 Continue`
/// itself, so the member gets the body without having to ask for it).
const REPLACED: &[&[u8]] = &[
    b"host",
    b"expect",
    b"x-forwarded-for",
    b"x-forwarded-host",
    b"x-forwarded-server",
    b"x-forwarded-proto",
];

/// The request's header list as it goes to a member: the client's fields without
/// hop-by-hop ones and those ringproxy replaces, then Host first, one Content-Length where
/// the client sent a list, the X-Forwarded-* set (added after the stripping, so listing
/// them in `Connection` cannot remove them), and finally the `RequestHeader` rules (after
/// ringproxy's own, so `RequestHeader set X-Forwarded-Proto https` wins).
pub fn forward_request(fields: &mut Headers, buf: &[u8], head: &RequestHead, rw: &RequestRewrite) {
    let remote_header = rw.remote.as_ref().map(|e| e.header);
    fields.load_where(buf, &head.headers, |name, _| {
        !(is_hop_by_hop(name, buf, &head.connection_tokens)
            || REPLACED
                .iter()
                .filter(|r| rw.add_forwarded || !r.starts_with(b"x-forwarded-"))
                .any(|r| name.eq_ignore_ascii_case(r))
            || remote_header.is_some_and(|h| name.eq_ignore_ascii_case(h))
            || (rw.via != ViaEdit::Pass && name.eq_ignore_ascii_case(b"via"))
            || (head.rewrite_length && name.eq_ignore_ascii_case(b"content-length"))
            || underscore_alias(name))
    });
    let client_host = head.host.as_ref().map(|r| &buf[r.clone()]);
    let host = client_host.filter(|_| rw.preserve_host).unwrap_or(rw.host);
    fields.insert(0, b"Host", host);
    if head.rewrite_length {
        // `Content-Length: 5, 5` or the same value twice: one value, once (RFC 9110 §8.6),
        // so no member has to decide what the list means.
        if let Some(n) = head.content_length {
            fields.push(b"Content-Length", n.to_string().as_bytes());
        }
    }
    let sent = |name: &'static [u8]| head.headers_named(buf, name);
    // mod_remoteip's header keeps what it did not read; as X-Forwarded-For, ringproxy's
    // append follows that part.
    let remote_rest = rw.remote.as_ref().and_then(|e| Some((e.header, e.rest?)));
    let xff_rest = remote_rest.filter(|(h, _)| h.eq_ignore_ascii_case(b"x-forwarded-for"));
    match remote_rest {
        Some((h, rest)) if !(rw.add_forwarded && xff_rest.is_some()) => fields.push(h, rest),
        _ => {}
    }
    if rw.add_forwarded {
        match (&rw.remote, xff_rest) {
            (Some(e), _) if e.header.eq_ignore_ascii_case(b"x-forwarded-for") => fields
                .push_merged(
                    b"X-Forwarded-For",
                    xff_rest.map(|(_, r)| r).into_iter(),
                    rw.client_ip,
                ),
            _ => fields.push_merged(b"X-Forwarded-For", sent(b"x-forwarded-for"), rw.client_ip),
        }
        if let Some(h) = client_host {
            fields.push_merged(b"X-Forwarded-Host", sent(b"x-forwarded-host"), h);
        }
        fields.push_merged(
            b"X-Forwarded-Server",
            sent(b"x-forwarded-server"),
            rw.server_name,
        );
        // The scheme is what this proxy saw, never what a client claims.
        fields.push(b"X-Forwarded-Proto", rw.proto);
    }
    if let ViaEdit::Add(hop) = rw.via {
        fields.push_merged(b"Via", sent(b"via"), hop);
    }
    if let Some((name, proxies)) = rw
        .remote
        .as_ref()
        .and_then(|e| e.proxies_header.zip(e.proxies))
    {
        fields.push(name, proxies);
    }
    if rw.close {
        fields.push(b"Connection", b"close");
    }
    apply_rules(rw.rules, fields, buf, rw.env);
}

/// The HTTP/1.1 request head for a member: [`forward_request`]'s fields after the request
/// line. `fields` is scratch space (kept per core for its memory).
pub fn write_request_head(
    out: &mut Vec<u8>,
    buf: &[u8],
    head: &RequestHead,
    rw: &RequestRewrite,
    fields: &mut Headers,
) {
    forward_request(fields, buf, head, rw);
    out.extend_from_slice(head.method(buf));
    out.push(b' ');
    out.extend_from_slice(rw.path);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    fields.write_h1(buf, out);
    out.extend_from_slice(b"\r\n");
}

/// What changes on the way back to the client.
pub struct ResponseRewrite<'a> {
    pub reverse: &'a [ReverseRule],
    pub cookie_domains: &'a [(String, String)],
    pub cookie_paths: &'a [(String, String)],
    /// `http://host[:port]` as the client addressed us, for ProxyPassReverse results.
    pub public_base: &'a [u8],
    /// Tell the client this connection closes after the response.
    pub close: bool,
    /// HTTP/1.0 client kept alive: say so explicitly.
    pub keep_alive_10: bool,
    /// The body is being de-chunked for an HTTP/1.0 client: drop Transfer-Encoding.
    pub dechunk: bool,
    /// Fields added by the proxy (name, value).
    pub extra: &'a [(&'a [u8], &'a [u8])],
    /// `Header` rules and their variables.
    pub rules: &'a [Rule],
    pub env: &'a Env,
}

/// The response's header list as it goes to the client: the member's fields without
/// hop-by-hop ones, Location-like values and cookies mapped back (ProxyPassReverse*), one
/// Content-Length where the member sent a list, the proxy's own fields, the `Header` rules,
/// and last (out of the rules' reach) what this hop's connection will do.
pub fn forward_response(
    fields: &mut Headers,
    buf: &[u8],
    head: &ResponseHead,
    rw: &ResponseRewrite,
) {
    fields.load_where(buf, &head.headers, |name, _| {
        !(is_hop_by_hop(name, buf, &head.connection_tokens)
            || (head.rewrite_length && name.eq_ignore_ascii_case(b"content-length"))
            || (rw.dechunk && name.eq_ignore_ascii_case(b"transfer-encoding")))
    });
    let cookies = !rw.cookie_domains.is_empty() || !rw.cookie_paths.is_empty();
    if !rw.reverse.is_empty() || cookies {
        for i in 0..fields.len() {
            let (name, value) = fields.get(buf, i);
            let new = if name.eq_ignore_ascii_case(b"location")
                || name.eq_ignore_ascii_case(b"content-location")
                || name.eq_ignore_ascii_case(b"uri")
            {
                reverse_map(value, rw.reverse, rw.public_base)
            } else if cookies && name.eq_ignore_ascii_case(b"set-cookie") {
                rewrite_cookie(value, rw.cookie_domains, rw.cookie_paths).map(String::into_bytes)
            } else {
                None
            };
            if let Some(new) = new {
                fields.set_value(i, &new);
            }
        }
    }
    if head.rewrite_length && !rw.dechunk {
        if let Some(n) = head.content_length {
            fields.push(b"Content-Length", n.to_string().as_bytes());
        }
    }
    for (name, value) in rw.extra {
        fields.push(name, value);
    }
    apply_rules(rw.rules, fields, buf, rw.env);
    if rw.close {
        fields.push(b"Connection", b"close");
    } else if rw.keep_alive_10 {
        fields.push(b"Connection", b"keep-alive");
    }
}

/// The HTTP/1.1 response head for the client: status line, then [`forward_response`]'s
/// fields. The member's reason phrase goes out as it sent it (obs-text included); for none,
/// the registered phrase, or none for an unregistered code. `fields` is scratch space.
pub fn write_response_head(
    out: &mut Vec<u8>,
    buf: &[u8],
    head: &ResponseHead,
    rw: &ResponseRewrite,
    fields: &mut Headers,
) {
    forward_response(fields, buf, head, rw);
    let _ = write!(out, "HTTP/1.1 {} ", head.status);
    if head.reason.is_empty() {
        out.extend_from_slice(default_reason(head.status).as_bytes());
    } else {
        out.extend_from_slice(&buf[head.reason.clone()]);
    }
    out.extend_from_slice(b"\r\n");
    fields.write_h1(buf, out);
    out.extend_from_slice(b"\r\n");
}

/// ProxyPassReverse: a value starting with a rule's URL (case-insensitive) becomes the
/// rule's path on this proxy, made absolute with the address the client used (Apache's
/// `ap_proxy_location_reverse_map` + `ap_construct_url`). The URL must end at a segment
/// boundary, as ProxyPass prefixes do: a rule for `http://b/app` maps `http://b/app` and
/// `http://b/app/x`, never `http://b/appx`.
pub fn reverse_map(value: &[u8], rules: &[ReverseRule], public_base: &[u8]) -> Option<Vec<u8>> {
    for r in rules {
        let url = r.url.as_bytes();
        let at_boundary = || {
            url.ends_with(b"/")
                || value
                    .get(url.len())
                    .is_none_or(|b| matches!(b, b'/' | b'?' | b'#'))
        };
        if value.len() >= url.len() && value[..url.len()].eq_ignore_ascii_case(url) && at_boundary()
        {
            let mut out = Vec::with_capacity(public_base.len() + r.path.len() + value.len());
            out.extend_from_slice(public_base);
            out.extend_from_slice(r.path.as_bytes());
            out.extend_from_slice(&value[url.len()..]);
            return Some(out);
        }
    }
    None
}

/// ProxyPassReverseCookieDomain / ...Path: on a prefix match (case-insensitive for the
/// domain, exact for the path) the whole attribute value is replaced, as Apache's
/// `ap_proxy_cookie_reverse_map` does. Returns `None` when nothing changed.
pub fn rewrite_cookie(
    value: &[u8],
    domains: &[(String, String)],
    paths: &[(String, String)],
) -> Option<String> {
    let text = std::str::from_utf8(value).ok()?;
    let mut changed = false;
    let parts: Vec<String> = text
        .split(';')
        .enumerate()
        .map(|(i, part)| {
            if i == 0 {
                return part.to_string();
            }
            let trimmed = part.trim_start();
            let lead = &part[..part.len() - trimmed.len()];
            if let Some((k, v)) = trimmed.split_once('=') {
                let key = k.trim();
                if key.eq_ignore_ascii_case("domain") {
                    for (internal, public) in domains {
                        if v.len() >= internal.len()
                            && v[..internal.len()].eq_ignore_ascii_case(internal)
                        {
                            changed = true;
                            return format!("{lead}{k}={public}");
                        }
                    }
                } else if key.eq_ignore_ascii_case("path") {
                    for (internal, public) in paths {
                        if v.starts_with(internal.as_str()) {
                            changed = true;
                            return format!("{lead}{k}={public}");
                        }
                    }
                }
            }
            part.to_string()
        })
        .collect();
    changed.then(|| parts.join(";"))
}

/// The head of a response ringproxy makes itself: status line, Content-Type,
/// Content-Length, the `extra` lines (each ending in CRLF), and `Connection: close` unless
/// the connection stays.
pub fn local_head(
    out: &mut Vec<u8>,
    status: u16,
    ctype: &str,
    len: usize,
    extra: &str,
    keep: bool,
) {
    let _ = write!(
        out,
        "HTTP/1.1 {status} {}\r\nContent-Type: {ctype}\r\nContent-Length: {len}\r\n{extra}{}\r\n",
        default_reason(status),
        if keep { "" } else { "Connection: close\r\n" }
    );
}

/// The host's `Header` rules over a head ringproxy made itself (a static file, a listing, a
/// status page), in `out[start..]` (status line, fields, empty line): the fields are read
/// back, the rules applied, and the head written again. Only called when there are rules.
pub fn apply_local_rules(
    rules: &[Rule],
    env: &Env,
    fields: &mut Headers,
    out: &mut Vec<u8>,
    start: usize,
) {
    let head = out[start..].to_vec();
    let Some(status_end) = head.windows(2).position(|w| w == b"\r\n") else {
        return;
    };
    let lines_end = head.len().saturating_sub(2).max(status_end + 2);
    let lines = &head[status_end + 2..lines_end];
    fields.load_lines(lines);
    apply_rules(rules, fields, lines, env);
    out.truncate(start);
    out.extend_from_slice(&head[..status_end + 2]);
    fields.write_h1(lines, out);
    out.extend_from_slice(b"\r\n");
}

/// The reason phrase for a status ringproxy answers itself ("" for a code with none).
pub fn default_reason(status: u16) -> &'static str {
    reason_phrase(status).unwrap_or("")
}

/// The registered phrase of every status code in IANA's HTTP Status Code Registry.
pub fn reason_phrase(status: u16) -> Option<&'static str> {
    Some(match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        104 => "Upload Resumption Supported",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::{parse_request, parse_response, Limits};

    fn forward(raw: &[u8], preserve_host: bool) -> String {
        let mut head = RequestHead::default();
        let limits = Limits {
            request_line: 8190,
            field_size: 8190,
            fields: 100,
        };
        parse_request(raw, &limits, &mut head).unwrap().unwrap();
        let mut out = Vec::new();
        write_request_head(
            &mut out,
            raw,
            &head,
            &RequestRewrite {
                path: b"/app/x",
                host: b"127.0.0.1:9001",
                preserve_host,
                client_ip: b"10.1.2.3",
                server_name: b"lb.example",
                proto: b"http",
                close: false,
                rules: &[],
                env: &Env::default(),
                remote: None,
                via: ViaEdit::Pass,
                add_forwarded: true,
            },
            &mut Default::default(),
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn request_head_hop_by_hop_and_forwarded() {
        let raw = b"GET /x HTTP/1.1\r\nHost: public\r\nConnection: keep-alive, X-Secret, X-Forwarded-For\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nUpgrade: h2c\r\nX-Forwarded-For: 1.1.1.1\r\nAccept: */*\r\n\r\n";
        let out = forward(raw, false);
        assert_eq!(
            out,
            "GET /app/x HTTP/1.1\r\nHost: 127.0.0.1:9001\r\nAccept: */*\r\nX-Forwarded-For: 1.1.1.1, 10.1.2.3\r\nX-Forwarded-Host: public\r\nX-Forwarded-Server: lb.example\r\nX-Forwarded-Proto: http\r\n\r\n"
        );
        let out = forward(
            b"GET / HTTP/1.1\r\nHost: public\r\nX-Forwarded-Proto: https\r\n\r\n",
            true,
        );
        assert!(out.contains("Host: public\r\n"));
        // Found by the request_head fuzz target: an HTTP/1.0 request without Host, with
        // ProxyPreserveHost, went out as HTTP/1.1 without Host.
        let out = forward(b"GET / HTTP/1.0\r\n\r\n", true);
        assert!(out.contains("Host: 127.0.0.1:9001\r\n"), "{out}");
        assert!(out.contains("X-Forwarded-Proto: http\r\n"));
        assert!(!out.contains("https"));
    }

    #[test]
    fn response_head_rewrites() {
        let raw = b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9001/login\r\nSet-Cookie: s=1; Domain=127.0.0.1; Path=/app/x\r\nConnection: close, X-Internal\r\nX-Internal: y\r\nContent-Length: 0\r\n\r\n";
        let mut head = ResponseHead::default();
        parse_response(raw, false, &mut head).unwrap().unwrap();
        let reverse = vec![ReverseRule {
            path: "/".into(),
            url: "http://127.0.0.1:9001/".into(),
        }];
        let domains = vec![("127.0.0.1".to_string(), "lb.example".to_string())];
        let paths = vec![("/app".to_string(), "/".to_string())];
        let mut out = Vec::new();
        write_response_head(
            &mut out,
            raw,
            &head,
            &ResponseRewrite {
                reverse: &reverse,
                cookie_domains: &domains,
                cookie_paths: &paths,
                public_base: b"http://lb.example:8080",
                close: false,
                keep_alive_10: false,
                dechunk: false,
                extra: &[],
                rules: &[],
                env: &Env::default(),
            },
            &mut Default::default(),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 302 Found\r\nLocation: http://lb.example:8080/login\r\nSet-Cookie: s=1; Domain=lb.example; Path=/\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn reverse_map_is_case_insensitive_and_prefix_only() {
        let rules = vec![ReverseRule {
            path: "/pub".into(),
            url: "http://backend/".into(),
        }];
        assert_eq!(
            reverse_map(b"HTTP://Backend/a", &rules, b"http://me").unwrap(),
            b"http://me/puba"
        );
        assert!(reverse_map(b"/relative", &rules, b"http://me").is_none());
        let app = vec![ReverseRule {
            path: "/app".into(),
            url: "http://backend/app".into(),
        }];
        for (value, want) in [
            (&b"http://backend/app"[..], Some(&b"http://me/app"[..])),
            (b"http://backend/app/x", Some(b"http://me/app/x")),
            (b"http://backend/app?q", Some(b"http://me/app?q")),
            (b"http://backend/appx", None),
        ] {
            assert_eq!(
                reverse_map(value, &app, b"http://me").as_deref(),
                want,
                "{}",
                String::from_utf8_lossy(value)
            );
        }
    }
}
