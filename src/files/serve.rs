//! Sending a static file: access and symlink checks, directory handling, conditional and
//! range requests, then the bytes.
//!
//! The bytes go without a copy through user space on a plain connection (`sendfile(2)` on
//! the non-blocking socket, waiting for room when it is full); a TLS connection reads
//! them into a buffer to encrypt. Either way the event loop never waits for a disk: before
//! each piece is sent, a `preadv2(RWF_NOWAIT)` probe asks whether its first and last pages
//! are in the page cache, and when they are not a helper thread reads the piece in first
//! ([`crate::runtime::blocking`]). Opening and `stat` run on the worker: metadata stays in
//! the kernel's caches, as nginx's workers also assume.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{opt, FileSpace, Mapped, Rules};
use crate::error::{ErrorKind, ProxyError};
use crate::http::head::RequestBody;
use crate::http::server::{send_local, send_whole, ClientConn, Local, RequestCtx};
use crate::proxy::client_may_keep;
use crate::runtime::CoreGen;
use crate::transport::io::write_all;
use crate::transport::Transport;

/// How much one step sends: the size of a large pipe, so a 1 MiB file takes 4 steps.
const PIECE: u64 = 256 * 1024;

/// Answers a request for a mapped path. Returns whether the connection stays open.
pub async fn answer(
    w: &CoreGen,
    c: &mut ClientConn,
    r: &mut RequestCtx,
    space: &FileSpace,
    mapped: Mapped,
) -> Result<bool, ProxyError> {
    if mapped.script {
        return Err(forbidden(
            &mapped.path,
            "ScriptAlias: ringproxy runs no CGI programs",
        ));
    }
    let (path, meta, rules) = resolve(space, &mapped)?;
    check_access(r.client_ip(c), &rules, &path).await?;
    let mut options = rules.options;
    let (path, meta) = if meta.is_dir() {
        let (raw, query) = r.head.target_parts(&c.buf);
        if !c.buf[raw.clone()].ends_with(b"/") {
            if !rules.slash {
                return Err(ErrorKind::FileNotFound(path.display().to_string()).into());
            }
            // mod_dir: a directory is named with its trailing slash, so relative links in
            // its index resolve under it.
            let mut to = String::from_utf8_lossy(&c.buf[raw]).into_owned();
            to.push('/');
            if let Some(q) = query {
                to.push('?');
                to.push_str(&String::from_utf8_lossy(&c.buf[q]));
            }
            let host = r.head.host.clone().map(|h| &c.buf[h]);
            let cfg = &w.shared.cfg;
            let name = cfg.server_name_of(&cfg.vhosts[r.vhost]);
            let to = crate::routing::fully_qualify(to, c.scheme(), host, name);
            return Err(ErrorKind::Redirect(301, to).into());
        }
        match index_file(space, &path, &rules) {
            Some((file, meta, file_rules)) => {
                check_access(r.client_ip(c), &file_rules, &file).await?;
                options = file_rules.options;
                (file, meta)
            }
            None if rules.options & opt::INDEXES != 0 => {
                let uri =
                    String::from_utf8_lossy(&c.buf[r.head.target_parts(&c.buf).0]).into_owned();
                let page = listing(&path, &uri).map_err(|e| file_io(&path, e))?;
                return send_page(w, c, r, &page).await;
            }
            None => {
                return Err(forbidden(
                    &path,
                    "directory index forbidden by Options (no DirectoryIndex file, no Indexes)",
                ))
            }
        }
    } else {
        (path, meta)
    };
    if !meta.is_file() {
        return Err(forbidden(&path, "not a regular file"));
    }
    // A link swapped in after the checks above is not followed either (the last
    // component; the checks cover the rest).
    let nofollow = options & (opt::FOLLOW | opt::OWNER_MATCH) == 0;
    send_file(w, c, r, &path, nofollow).await
}

fn forbidden(path: &Path, why: &str) -> ProxyError {
    ErrorKind::FileForbidden(format!("{}: {why}", path.display())).into()
}

fn file_io(path: &Path, e: io::Error) -> ProxyError {
    ErrorKind::FileIo(path.display().to_string(), e).into()
}

/// Walks from where the mapping started to the file, component by component, refusing a
/// symbolic link where the options do not allow following it; returns the path, what it
/// is (after links) and the sections' rules for it.
fn resolve<'s>(
    space: &'s FileSpace,
    mapped: &Mapped,
) -> Result<(PathBuf, std::fs::Metadata, Rules<'s>), ProxyError> {
    let not_found = || ProxyError::from(ErrorKind::FileNotFound(mapped.path.display().to_string()));
    let meta = std::fs::metadata(&mapped.path).map_err(|_| not_found())?;
    let rules = space.rules(&mapped.path, meta.is_dir());
    if rules.handler {
        return Err(forbidden(
            &mapped.path,
            "a handler (AddHandler or SetHandler) would run this file in Apache; ringproxy does not send it as its source",
        ));
    }
    if rules.options & opt::FOLLOW == 0 {
        let rest = mapped
            .path
            .strip_prefix(&mapped.root)
            .map_err(|_| not_found())?;
        let mut at = mapped.root.clone();
        for part in rest.components() {
            at.push(part);
            if !link_allowed(&at, rules.options).map_err(|_| not_found())? {
                return Err(forbidden(&at, LINK_REFUSED));
            }
        }
    }
    Ok((mapped.path.clone(), meta, rules))
}

const LINK_REFUSED: &str =
    "symbolic link not allowed or link target not accessible (Options FollowSymLinks is off)";

/// Whether `at` may be passed under these options: it is not a symbolic link, or
/// FollowSymLinks holds, or SymLinksIfOwnerMatch and the link and its target have one
/// owner (Apache's test).
fn link_allowed(at: &Path, options: u8) -> io::Result<bool> {
    if options & opt::FOLLOW != 0 {
        return Ok(true);
    }
    let link = std::fs::symlink_metadata(at)?;
    if !link.file_type().is_symlink() {
        return Ok(true);
    }
    let target = std::fs::metadata(at)?;
    Ok(options & opt::OWNER_MATCH != 0 && target.uid() == link.uid())
}

/// Apache's access check for the sections' rules (a `<Location>` was checked before).
async fn check_access(
    ip: std::net::IpAddr,
    rules: &Rules<'_>,
    path: &Path,
) -> Result<(), ProxyError> {
    let Some(access) = rules.access else {
        return Ok(());
    };
    let name = match access.needs_name() {
        true => crate::runtime::dns::client_name(ip).await,
        false => None,
    };
    if access.allows_named(ip, name.as_deref()) {
        Ok(())
    } else {
        Err(forbidden(path, "client denied by server configuration"))
    }
}

/// mod_dir: the first `DirectoryIndex` name that is a file in `dir`.
fn index_file<'s>(
    space: &'s FileSpace,
    dir: &Path,
    rules: &Rules<'_>,
) -> Option<(PathBuf, std::fs::Metadata, Rules<'s>)> {
    // mod_dir's default.
    let default_index = [String::from("index.html")];
    for name in rules.index.unwrap_or(&default_index) {
        // `DirectoryIndex disabled` turns indexes off; names with a slash (URL paths)
        // would need a subrequest, which ringproxy does not make.
        if name.eq_ignore_ascii_case("disabled") || name.contains('/') {
            continue;
        }
        let p = dir.join(name);
        if let Ok(meta) = std::fs::metadata(&p) {
            if meta.is_file() {
                let file_rules = space.rules(&p, false);
                // The index file itself may be a link the options do not let through.
                if file_rules.handler || !link_allowed(&p, file_rules.options).unwrap_or(false) {
                    continue;
                }
                return Some((p, meta, file_rules));
            }
        }
    }
    None
}

/// A plain listing for `Options Indexes` (mod_autoindex's look without its icons), from an
/// auto-escaping template (templates/listing.html).
#[derive(askama::Template)]
#[template(path = "listing.html")]
struct Listing<'a> {
    uri: &'a str,
    entries: Vec<ListingEntry>,
}

struct ListingEntry {
    /// Percent-encoded, with a slash for a directory.
    href: String,
    name: String,
}

fn listing(dir: &Path, uri: &str) -> io::Result<String> {
    let mut names: Vec<(String, bool)> = std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            // mod_autoindex's stock IndexIgnore hides dot files.
            (!name.starts_with('.')).then(|| (name, e.file_type().is_ok_and(|t| t.is_dir())))
        })
        .collect();
    names.sort();
    let entries = names
        .into_iter()
        .map(|(name, is_dir)| {
            let slash = if is_dir { "/" } else { "" };
            ListingEntry {
                href: format!("{}{slash}", percent_encode_segment(&name)),
                name: format!("{name}{slash}"),
            }
        })
        .collect();
    askama::Template::render(&Listing { uri, entries }).map_err(io::Error::other)
}

fn percent_encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn send_page(
    w: &CoreGen,
    c: &mut ClientConn,
    r: &mut RequestCtx,
    page: &str,
) -> Result<bool, ProxyError> {
    let keep = client_may_keep(w, c, r) && r.head.body() == RequestBody::None;
    r.consumed = r.head.len;
    let page = Local {
        status: 200,
        ctype: "text/html; charset=utf-8",
        body: page.as_bytes(),
        extra: "",
        keep,
        head_only: r.head.method(&c.buf) == b"HEAD",
        rules: &w.shared.cfg.vhosts[r.vhost].response_headers,
    };
    send_local(c, r, &page, w.shared.cfg.core.timeout).await?;
    Ok(keep)
}

/// What a file's validators and the request's conditions decide.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// 200 with the whole file.
    Whole,
    /// 206 with bytes `start..end`.
    Part(u64, u64),
    NotModified,
    PreconditionFailed,
    /// 416.
    Unsatisfiable,
    /// 405 (and `OPTIONS`: 200 with no body).
    Method(bool),
}

impl Decision {
    pub fn status(&self) -> u16 {
        match self {
            Decision::Whole | Decision::Method(true) => 200,
            Decision::Part(..) => 206,
            Decision::NotModified => 304,
            Decision::PreconditionFailed => 412,
            Decision::Unsatisfiable => 416,
            Decision::Method(false) => 405,
        }
    }
}

/// The request's conditions as RFC 9110 §13.2.2 orders them, and its Range (§14).
pub struct Conditions<'a> {
    pub method: &'a [u8],
    pub if_match: Option<&'a [u8]>,
    pub if_unmodified_since: Option<&'a [u8]>,
    pub if_none_match: Option<&'a [u8]>,
    pub if_modified_since: Option<&'a [u8]>,
    pub if_range: Option<&'a [u8]>,
    pub range: Option<&'a [u8]>,
}

/// A file's validators: Apache's default ETag (`FileETag MTime Size`: size and
/// modification time in microseconds, in hex) and its modification time in seconds.
pub struct Validators {
    pub etag: String,
    pub mtime: SystemTime,
    pub size: u64,
}

impl Validators {
    pub fn of(meta: &std::fs::Metadata) -> Validators {
        let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
        let us = mtime
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Validators {
            etag: format!("\"{:x}-{us:x}\"", meta.len()),
            mtime,
            size: meta.len(),
        }
    }

    fn modified_secs(&self) -> u64 {
        self.mtime
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

fn etag_list_matches(list: &[u8], etag: &str, weak: bool) -> bool {
    let strip = |t: &[u8]| -> Vec<u8> {
        let t = t.trim_ascii();
        match (weak, t.strip_prefix(b"W/")) {
            (true, Some(rest)) => rest.to_vec(),
            _ => t.to_vec(),
        }
    };
    list.split(|&b| b == b',').any(|t| {
        let t = t.trim_ascii();
        t == b"*" || strip(t) == etag.as_bytes()
    })
}

fn date_secs(v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(v).ok()?;
    let t = httpdate::parse_http_date(s.trim()).ok()?;
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// Decides the answer for a file from the request's method, conditions and Range.
pub fn decide(cond: &Conditions<'_>, v: &Validators) -> Decision {
    match cond.method {
        b"GET" | b"HEAD" => {}
        b"OPTIONS" => return Decision::Method(true),
        _ => return Decision::Method(false),
    }
    let mtime = v.modified_secs();
    if let Some(im) = cond.if_match {
        if !etag_list_matches(im, &v.etag, false) {
            return Decision::PreconditionFailed;
        }
    } else if let Some(ius) = cond.if_unmodified_since.and_then(date_secs) {
        if mtime > ius {
            return Decision::PreconditionFailed;
        }
    }
    if let Some(inm) = cond.if_none_match {
        if etag_list_matches(inm, &v.etag, true) {
            return Decision::NotModified;
        }
    } else if let Some(ims) = cond.if_modified_since.and_then(date_secs) {
        if mtime <= ims {
            return Decision::NotModified;
        }
    }
    let Some(range) = cond.range else {
        return Decision::Whole;
    };
    if let Some(ir) = cond.if_range {
        let ir = ir.trim_ascii();
        let holds = if ir.starts_with(b"\"") || ir.starts_with(b"W/") {
            ir == v.etag.as_bytes()
        } else {
            date_secs(ir) == Some(mtime)
        };
        if !holds {
            return Decision::Whole;
        }
    }
    parse_range(range, v.size)
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n`. Several ranges are answered with the whole file
/// (RFC 9110 allows a server to ignore Range; ringproxy sends no multipart answers); a
/// Range it cannot read is ignored as the RFC says.
fn parse_range(range: &[u8], size: u64) -> Decision {
    let Some(spec) = range.trim_ascii().strip_prefix(b"bytes=") else {
        return Decision::Whole;
    };
    if spec.contains(&b',') {
        return Decision::Whole;
    }
    let Some(dash) = spec.iter().position(|&b| b == b'-') else {
        return Decision::Whole;
    };
    let num = |b: &[u8]| -> Option<u64> {
        let b = b.trim_ascii();
        if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(b).ok()?.parse().ok()
    };
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    match (num(first), num(last)) {
        (Some(a), _) if a >= size => Decision::Unsatisfiable,
        (Some(a), Some(b)) if b >= a => Decision::Part(a, b.min(size - 1) + 1),
        (Some(_), Some(_)) => Decision::Whole,
        (Some(a), None) if last.trim_ascii().is_empty() => Decision::Part(a, size),
        (None, Some(0)) if first.trim_ascii().is_empty() => Decision::Unsatisfiable,
        (None, Some(n)) if first.trim_ascii().is_empty() => {
            if size == 0 {
                Decision::Unsatisfiable
            } else {
                Decision::Part(size - n.min(size), size)
            }
        }
        _ => Decision::Whole,
    }
}

async fn send_file(
    w: &CoreGen,
    c: &mut ClientConn,
    r: &mut RequestCtx,
    path: &Path,
    nofollow: bool,
) -> Result<bool, ProxyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = if nofollow { libc::O_NOFOLLOW } else { 0 };
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path);
    let file = opened.map_err(|e| match e.kind() {
        io::ErrorKind::PermissionDenied => forbidden(path, "the file is not readable by ringproxy"),
        _ => ProxyError::from(ErrorKind::FileNotFound(path.display().to_string())),
    })?;
    let meta = file.metadata().map_err(|e| file_io(path, e))?;
    // A file only root may read is not served even when ringproxy runs as root (no
    // `User`): Apache's children, never root, could not read it either.
    if !readable_as_unprivileged(&meta) {
        return Err(forbidden(path, "the file is not readable by ringproxy"));
    }
    let v = Validators::of(&meta);
    let buf = &c.buf;
    let head = &r.head;
    let h = |name: &[u8]| head.header(buf, name);
    let cond = Conditions {
        method: head.method(buf),
        if_match: h(b"if-match"),
        if_unmodified_since: h(b"if-unmodified-since"),
        if_none_match: h(b"if-none-match"),
        if_modified_since: h(b"if-modified-since"),
        if_range: h(b"if-range"),
        range: h(b"range"),
    };
    let decision = decide(&cond, &v);
    let head_only = cond.method == b"HEAD";
    let keep = client_may_keep(w, c, r) && r.head.body() == RequestBody::None;
    r.consumed = r.head.len;
    let cfg = &w.shared.cfg;
    let t = cfg.core.timeout;
    let status = decision.status();
    use std::fmt::Write as _;
    let mut head = String::with_capacity(256);
    let _ = write!(
        head,
        "HTTP/1.1 {status} {}\r\n",
        crate::http::write::default_reason(status)
    );
    let body = match decision {
        Decision::Method(_) => {
            head.push_str("Allow: GET,HEAD,OPTIONS\r\nContent-Length: 0\r\n");
            None
        }
        _ => {
            let _ = write!(
                head,
                "Date: {}\r\nLast-Modified: {}\r\nETag: {}\r\nAccept-Ranges: bytes\r\n",
                httpdate::fmt_http_date(SystemTime::now()),
                httpdate::fmt_http_date(v.mtime),
                v.etag
            );
            match decision {
                Decision::Whole => Some((0, v.size)),
                Decision::Part(a, b) => Some((a, b)),
                Decision::Unsatisfiable => {
                    let _ = write!(
                        head,
                        "Content-Range: bytes */{}\r\nContent-Length: 0\r\n",
                        v.size
                    );
                    None
                }
                Decision::PreconditionFailed => {
                    head.push_str("Content-Length: 0\r\n");
                    None
                }
                Decision::NotModified | Decision::Method(_) => None,
            }
        }
    };
    if let Some((start, end)) = body {
        if let Some(ct) = cfg.mime.of(path) {
            let _ = write!(head, "Content-Type: {ct}\r\n");
        }
        if status == 206 {
            let _ = write!(
                head,
                "Content-Range: bytes {start}-{}/{}\r\n",
                end - 1,
                v.size
            );
        }
        let _ = write!(head, "Content-Length: {}\r\n", end - start);
    }
    if !keep {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut out = std::mem::take(&mut c.out);
    out.clear();
    out.extend_from_slice(head.as_bytes());
    let rules = &cfg.vhosts[r.vhost].response_headers;
    if !rules.is_empty() {
        crate::http::server::local_rules(c, rules, &mut out, 0);
    }
    r.head_out = out.len() as u64;
    let Some((start, end)) = body.filter(|(a, b)| a < b && !head_only) else {
        send_whole(c, r, out, status, t).await?;
        return Ok(keep);
    };
    r.status = status;
    r.response_started = true;
    let file = Arc::new(file);
    let res = match c.stream.socket().is_some() {
        true => body_sendfile(c, r, out, &file, start, end, t).await,
        false => body_copied(c, r, out, &file, start, end, t).await,
    };
    res.map_err(|e| match e {
        Fail::Client(e) => ProxyError::new(ErrorKind::client(e)),
        Fail::Disk(e) => file_io(path, e),
    })?;
    Ok(keep)
}

/// Read permission for someone: others, or the owner / group when that is who we run as.
fn readable_as_unprivileged(meta: &std::fs::Metadata) -> bool {
    let mode = meta.permissions().mode();
    // SAFETY: geteuid and getegid cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    mode & 0o004 != 0
        || (uid != 0 && meta.uid() == uid && mode & 0o400 != 0)
        || (uid != 0 && meta.gid() == gid && mode & 0o040 != 0)
}

enum Fail {
    Client(crate::transport::io::IoFail),
    Disk(io::Error),
}

/// Whether the first and last pages of `start..end` are in the page cache: a one-byte
/// `preadv2(RWF_NOWAIT)` at each end answers without waiting for the disk.
fn cached(file: &File, start: u64, end: u64) -> bool {
    let probe = |at: u64| -> bool {
        let mut byte = [0u8; 1];
        let iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        // SAFETY: one iovec over a live one-byte buffer; the descriptor is open.
        let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, at as i64, libc::RWF_NOWAIT) };
        n == 1
    };
    probe(start) && probe(end.saturating_sub(1).max(start))
}

/// Brings `start..end` into the page cache on a helper thread when it is not there.
async fn warm(file: &Arc<File>, start: u64, end: u64) -> Result<(), io::Error> {
    if cached(file, start, end) {
        return Ok(());
    }
    let file = file.clone();
    crate::runtime::blocking::run(move || {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; (end - start) as usize];
        file.read_exact_at(&mut buf, start)
    })
    .await
    .unwrap_or_else(|| Err(io::Error::other("disk helper thread failed")))
}

/// Plain connection: the head, then `sendfile(2)` piece by piece.
async fn body_sendfile(
    c: &mut ClientConn,
    r: &mut RequestCtx,
    out: Vec<u8>,
    file: &Arc<File>,
    start: u64,
    end: u64,
    t: Duration,
) -> Result<(), Fail> {
    let (res, out) = write_all(&mut c.stream, out, t).await;
    r.bytes_out = out.len() as u64;
    c.out = out;
    res.map_err(Fail::Client)?;
    let Some(sock) = c.stream.socket() else {
        return Err(Fail::Client(crate::transport::io::IoFail::Io(
            io::ErrorKind::Unsupported.into(),
        )));
    };
    let fd = sock.as_raw_fd();
    let _nb = crate::transport::splice::NonBlocking::set(fd)
        .map_err(|e| Fail::Client(crate::transport::io::IoFail::Io(e)))?;
    let mut off = start;
    while off < end {
        let piece_end = end.min(off + PIECE);
        warm(file, off, piece_end).await.map_err(Fail::Disk)?;
        while off < piece_end {
            let mut pos = off as libc::off_t;
            // SAFETY: both descriptors are open; `pos` is a live off_t.
            let n = unsafe {
                libc::sendfile(fd, file.as_raw_fd(), &mut pos, (piece_end - off) as usize)
            };
            if n > 0 {
                off += n as u64;
                r.bytes_out += n as u64;
                continue;
            }
            if n == 0 {
                // The file shrank under us: the length already promised cannot be kept.
                return Err(Fail::Disk(io::ErrorKind::UnexpectedEof.into()));
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::WouldBlock {
                return Err(Fail::Client(crate::transport::io::IoFail::Io(e)));
            }
            match crate::runtime::timer::timeout(t, sock.writable(false)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(Fail::Client(crate::transport::io::IoFail::Io(e))),
                Err(_) => return Err(Fail::Client(crate::transport::io::IoFail::Timeout)),
            }
        }
    }
    Ok(())
}

/// TLS connection: pieces read into the connection's output buffer and written through
/// the TLS stream.
async fn body_copied(
    c: &mut ClientConn,
    r: &mut RequestCtx,
    mut out: Vec<u8>,
    file: &Arc<File>,
    start: u64,
    end: u64,
    t: Duration,
) -> Result<(), Fail> {
    use std::os::unix::fs::FileExt;
    let mut off = start;
    let head_len = out.len();
    r.bytes_out = head_len as u64;
    loop {
        let piece_end = end.min(off + PIECE);
        let n = (piece_end - off) as usize;
        if n > 0 {
            warm(file, off, piece_end).await.map_err(Fail::Disk)?;
            let at = out.len();
            out.resize(at + n, 0);
            file.read_exact_at(&mut out[at..], off)
                .map_err(Fail::Disk)?;
            off = piece_end;
            r.bytes_out += n as u64;
        }
        let (res, mut back) = write_all(&mut c.stream, out, t).await;
        res.map_err(Fail::Client)?;
        back.clear();
        out = back;
        if off >= end {
            break;
        }
    }
    c.out = out;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v() -> Validators {
        Validators {
            etag: "\"a-5f\"".into(),
            mtime: UNIX_EPOCH + Duration::from_secs(784_111_777),
            size: 10,
        }
    }

    fn cond<'a>(method: &'a [u8]) -> Conditions<'a> {
        Conditions {
            method,
            if_match: None,
            if_unmodified_since: None,
            if_none_match: None,
            if_modified_since: None,
            if_range: None,
            range: None,
        }
    }

    #[test]
    fn conditions_and_ranges() {
        type Case = (&'static str, fn(&mut Conditions<'static>), Decision);
        let cases: Vec<Case> = vec![
            ("plain", |_| {}, Decision::Whole),
            ("post", |c| c.method = b"POST", Decision::Method(false)),
            ("options", |c| c.method = b"OPTIONS", Decision::Method(true)),
            (
                "inm hit",
                |c| c.if_none_match = Some(b"\"x\", \"a-5f\""),
                Decision::NotModified,
            ),
            (
                "inm weak hit",
                |c| c.if_none_match = Some(b"W/\"a-5f\""),
                Decision::NotModified,
            ),
            (
                "inm star",
                |c| c.if_none_match = Some(b"*"),
                Decision::NotModified,
            ),
            (
                "inm miss",
                |c| c.if_none_match = Some(b"\"b\""),
                Decision::Whole,
            ),
            (
                "ims same",
                |c| c.if_modified_since = Some(b"Sun, 06 Nov 1994 08:49:37 GMT"),
                Decision::NotModified,
            ),
            (
                "ims older",
                |c| c.if_modified_since = Some(b"Sun, 06 Nov 1994 08:49:36 GMT"),
                Decision::Whole,
            ),
            (
                "ims garbage",
                |c| c.if_modified_since = Some(b"yesterday"),
                Decision::Whole,
            ),
            (
                "inm miss wins over ims",
                |c| {
                    c.if_none_match = Some(b"\"b\"");
                    c.if_modified_since = Some(b"Sun, 06 Nov 1994 08:49:37 GMT");
                },
                Decision::Whole,
            ),
            (
                "if-match miss",
                |c| c.if_match = Some(b"\"b\""),
                Decision::PreconditionFailed,
            ),
            (
                "if-match weak is no strong match",
                |c| c.if_match = Some(b"W/\"a-5f\""),
                Decision::PreconditionFailed,
            ),
            (
                "if-match hit",
                |c| c.if_match = Some(b"\"a-5f\""),
                Decision::Whole,
            ),
            (
                "ius older",
                |c| c.if_unmodified_since = Some(b"Sun, 06 Nov 1994 08:49:36 GMT"),
                Decision::PreconditionFailed,
            ),
            (
                "range",
                |c| c.range = Some(b"bytes=2-4"),
                Decision::Part(2, 5),
            ),
            (
                "range open",
                |c| c.range = Some(b"bytes=7-"),
                Decision::Part(7, 10),
            ),
            (
                "range past end clipped",
                |c| c.range = Some(b"bytes=7-100"),
                Decision::Part(7, 10),
            ),
            (
                "suffix",
                |c| c.range = Some(b"bytes=-3"),
                Decision::Part(7, 10),
            ),
            (
                "suffix longer than file",
                |c| c.range = Some(b"bytes=-30"),
                Decision::Part(0, 10),
            ),
            (
                "start past end",
                |c| c.range = Some(b"bytes=10-"),
                Decision::Unsatisfiable,
            ),
            (
                "zero suffix",
                |c| c.range = Some(b"bytes=-0"),
                Decision::Unsatisfiable,
            ),
            (
                "reversed ignored",
                |c| c.range = Some(b"bytes=5-2"),
                Decision::Whole,
            ),
            (
                "several ranges: whole",
                |c| c.range = Some(b"bytes=0-1,4-5"),
                Decision::Whole,
            ),
            (
                "other unit ignored",
                |c| c.range = Some(b"items=0-1"),
                Decision::Whole,
            ),
            (
                "junk ignored",
                |c| c.range = Some(b"bytes=a-b"),
                Decision::Whole,
            ),
            (
                "if-range etag holds",
                |c| {
                    c.range = Some(b"bytes=0-0");
                    c.if_range = Some(b"\"a-5f\"");
                },
                Decision::Part(0, 1),
            ),
            (
                "if-range etag stale",
                |c| {
                    c.range = Some(b"bytes=0-0");
                    c.if_range = Some(b"\"old\"");
                },
                Decision::Whole,
            ),
            (
                "if-range date holds",
                |c| {
                    c.range = Some(b"bytes=0-0");
                    c.if_range = Some(b"Sun, 06 Nov 1994 08:49:37 GMT");
                },
                Decision::Part(0, 1),
            ),
            (
                "304 before range",
                |c| {
                    c.range = Some(b"bytes=0-0");
                    c.if_none_match = Some(b"\"a-5f\"");
                },
                Decision::NotModified,
            ),
        ];
        for (name, set, want) in cases {
            let mut c = cond(b"GET");
            set(&mut c);
            assert_eq!(decide(&c, &v()), want, "{name}");
        }
    }
}
