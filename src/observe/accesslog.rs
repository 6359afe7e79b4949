//! Access logs: `LogFormat` / `CustomLog` with mod_log_config's tokens.
//!
//! Each worker formats lines into its own buffer and appends them to its own descriptor of
//! the file (O_APPEND, one write per batch): no lock on the request path. Buffers are
//! written when they fill, about once a second, and when the worker stops. SIGUSR1 reopens
//! the files (for logrotate).

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Apache's predefined nicknames.
pub const COMMON: &str = r#"%h %l %u %t "%r" %>s %b"#;
pub const COMBINED: &str = r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i""#;

/// Bumped by SIGUSR1: workers reopen their log files when they see a new value.
pub static REOPEN_GENERATION: AtomicU64 = AtomicU64::new(0);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token {
    Literal(String),
    ClientIp,
    Dash,
    Time,
    RequestLine,
    Status,
    /// `%b`: bytes or `-`; `%B`: bytes.
    Bytes {
        dash_for_zero: bool,
    },
    DurationUs,
    DurationSecs,
    RequestHeader(String),
    BalancerName,
    MemberName,
    MemberRoute,
    ServerName,
    LocalPort,
    Method,
    Path,
    Query,
    Protocol,
    /// `%{NAME}x`: a mod_ssl variable; `-` when empty.
    Ssl(&'static str),
    /// mod_logio: `%I` bytes received (request head and body), `%O` bytes sent (head and
    /// body), `%S` both.
    BytesIn,
    BytesOut,
    BytesBoth,
    /// `%X`: `X` when the connection was cut before the response was complete, `+` when it
    /// stays open, `-` when it closes.
    ConnStatus,
    /// `%k`: requests answered before this one on the connection.
    KeepAlives,
    /// `%{NAME}o`: a response header as the member sent it.
    ResponseHeader(String),
    /// `%{FORMAT}t`: strftime conversions, or `sec`/`msec`/`usec`/`msec_frac`/`usec_frac`.
    TimeFormat(String),
}

/// Parses a LogFormat string. Unsupported tokens are errors naming them.
pub fn parse_format(f: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut chars = f.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            lit.push(c);
            continue;
        }
        // Optional `>`/`<` (final/original request) and a `{arg}`.
        let mut arg = None;
        while chars.peek() == Some(&'>') || chars.peek() == Some(&'<') {
            chars.next();
        }
        if chars.peek() == Some(&'{') {
            chars.next();
            let mut a = String::new();
            for ch in chars.by_ref() {
                if ch == '}' {
                    break;
                }
                a.push(ch);
            }
            arg = Some(a);
        }
        let Some(t) = chars.next() else {
            return Err("format ends with '%'".into());
        };
        let token = match (t, arg.as_deref()) {
            ('%', _) => {
                lit.push('%');
                continue;
            }
            ('h' | 'a', _) => Token::ClientIp,
            ('l' | 'u', _) => Token::Dash,
            ('t', None) => Token::Time,
            ('t', Some(f)) => {
                // `begin:`/`end:` pick the request's start or end; ringproxy logs at the
                // end and uses that time for both (they differ by the request's duration).
                let f = f.trim_start_matches("begin:").trim_start_matches("end:");
                check_time_format(f)?;
                Token::TimeFormat(f.to_string())
            }
            ('I', None) => Token::BytesIn,
            ('O', None) => Token::BytesOut,
            ('S', None) => Token::BytesBoth,
            ('X', None) => Token::ConnStatus,
            ('k', None) => Token::KeepAlives,
            // mod_log_config's log ID (of mod_unique_id's error-log correlation): none here.
            ('L', None) => Token::Dash,
            ('o', Some(h)) => Token::ResponseHeader(h.to_string()),
            ('r', _) => Token::RequestLine,
            ('s', _) => Token::Status,
            ('b', _) => Token::Bytes {
                dash_for_zero: true,
            },
            ('B', _) => Token::Bytes {
                dash_for_zero: false,
            },
            ('D', _) => Token::DurationUs,
            ('T', None) => Token::DurationSecs,
            ('i', Some(h)) => Token::RequestHeader(h.to_string()),
            ('e', Some("BALANCER_NAME")) => Token::BalancerName,
            ('e', Some("BALANCER_WORKER_NAME")) => Token::MemberName,
            ('e', Some("BALANCER_WORKER_ROUTE")) => Token::MemberRoute,
            ('x', Some(name)) => match crate::transport::tls::vars::NAMES
                .iter()
                .find(|n| **n == name)
            {
                Some(n) => Token::Ssl(n),
                None => {
                    return Err(format!(
                        "log format token %{{{name}}}x: not a mod_ssl variable ringproxy sets ({})",
                        crate::transport::tls::vars::NAMES.join(", ")
                    ))
                }
            },
            ('v', _) | ('V', _) => Token::ServerName,
            ('p', _) => Token::LocalPort,
            ('m', _) => Token::Method,
            ('U', _) => Token::Path,
            ('q', _) => Token::Query,
            ('H', _) => Token::Protocol,
            (t, a) => {
                return Err(format!(
                    "log format token %{}{t} is not supported",
                    a.map(|a| format!("{{{a}}}")).unwrap_or_default()
                ))
            }
        };
        if !lit.is_empty() {
            out.push(Token::Literal(std::mem::take(&mut lit)));
        }
        out.push(token);
    }
    if !lit.is_empty() {
        out.push(Token::Literal(lit));
    }
    Ok(out)
}

/// What one finished request contributes to a log line. Request parts are copied when the
/// head is parsed (the read buffer is reused while a body streams).
#[derive(Debug, Default, Clone)]
pub struct Record {
    pub client_ip: String,
    pub request_line: String,
    pub method: String,
    pub path: String,
    pub query: String,
    pub protocol: &'static str,
    /// (lower-case name, value) of the headers the formats ask for.
    pub headers: Vec<(String, String)>,
    pub status: u16,
    pub bytes: u64,
    /// `%I` and `%O`: request head and body received, response head and body sent.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The response was not sent whole (`%X`).
    pub aborted: bool,
    /// The connection stays open (`%X`).
    pub keep: bool,
    /// Requests before this one on the connection (`%k`).
    pub keepalives: u32,
    /// (lower-case name, value) of the response headers the formats ask for.
    pub response_headers: Vec<(String, String)>,
    pub took: Duration,
    pub balancer: Option<String>,
    pub member: Option<String>,
    pub route: Option<String>,
    pub server_name: String,
    pub port: u16,
    /// The TLS connection's facts (`None`: plain TCP), for `%{…}x`.
    pub tls: Option<crate::transport::TlsFacts>,
}

/// The variables a `CustomLog … env=` condition can see: those ringproxy sets itself.
pub const LOG_VARIABLES: &[&str] = &[
    "BALANCER_NAME",
    "BALANCER_WORKER_NAME",
    "BALANCER_WORKER_ROUTE",
];

impl Record {
    /// Whether a variable of [`LOG_VARIABLES`] is set for this request.
    pub fn has_var(&self, var: &str) -> bool {
        match var {
            "BALANCER_NAME" => self.balancer.is_some(),
            "BALANCER_WORKER_NAME" => self.member.is_some(),
            "BALANCER_WORKER_ROUTE" => self.route.as_deref().is_some_and(|r| !r.is_empty()),
            _ => false,
        }
    }
}

/// `[22/Nov/2026:01:23:45 +0000]`, as Apache writes `%t` (in UTC).
/// Apache's `ap_escape_logitem`: every byte that is not printable ASCII, and `"` and `\`,
/// is escaped (`\"`, `\\`, `\n`, `\xhh`…), so a client cannot end a quoted field or
/// start a new log line with what it sends (a User-Agent, a path, a header).
pub fn escape_log_item(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0b => out.push_str("\\v"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out
}

pub fn clf_time(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86400;
    let (h, m, s) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "[{d:02}/{}/{y}:{h:02}:{m:02}:{s:02} +0000]",
        MONTHS[(mo - 1) as usize]
    )
}

/// Writes one line for `r` in `format` (no trailing newline).
pub fn render(format: &[Token], r: &Record, now: SystemTime, out: &mut String) {
    let dash = |out: &mut String, v: &str| {
        if v.is_empty() {
            out.push('-')
        } else {
            out.push_str(v)
        }
    };
    for t in format {
        match t {
            Token::Literal(s) => out.push_str(s),
            Token::ClientIp => out.push_str(&r.client_ip),
            Token::Dash => out.push('-'),
            Token::Time => out.push_str(&clf_time(now)),
            Token::RequestLine => out.push_str(&r.request_line),
            Token::Status => {
                let _ = write!(out, "{}", r.status);
            }
            Token::Bytes { dash_for_zero } => {
                if r.bytes == 0 && *dash_for_zero {
                    out.push('-');
                } else {
                    let _ = write!(out, "{}", r.bytes);
                }
            }
            Token::DurationUs => {
                let _ = write!(out, "{}", r.took.as_micros());
            }
            Token::DurationSecs => {
                let _ = write!(out, "{}", r.took.as_secs());
            }
            Token::RequestHeader(h) => {
                let v = r
                    .headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(h))
                    .map(|(_, v)| v.as_str())
                    .unwrap_or("");
                dash(out, v);
            }
            Token::BalancerName => dash(out, r.balancer.as_deref().unwrap_or("")),
            Token::MemberName => dash(out, r.member.as_deref().unwrap_or("")),
            Token::MemberRoute => dash(out, r.route.as_deref().unwrap_or("")),
            Token::ServerName => out.push_str(&r.server_name),
            Token::LocalPort => {
                let _ = write!(out, "{}", r.port);
            }
            Token::Method => out.push_str(&r.method),
            Token::Path => out.push_str(&r.path),
            Token::Query => {
                if !r.query.is_empty() {
                    out.push('?');
                    out.push_str(&r.query);
                }
            }
            Token::Protocol => out.push_str(r.protocol),
            Token::Ssl(n) => {
                let v = crate::transport::tls::vars::value(r.tls.as_ref(), n);
                out.push_str(if v.is_empty() { "-" } else { &v });
            }
            Token::BytesIn => {
                let _ = write!(out, "{}", r.bytes_in);
            }
            Token::BytesOut => {
                let _ = write!(out, "{}", r.bytes_out);
            }
            Token::BytesBoth => {
                let _ = write!(out, "{}", r.bytes_in + r.bytes_out);
            }
            Token::ConnStatus => out.push(match (r.aborted, r.keep) {
                (true, _) => 'X',
                (false, true) => '+',
                (false, false) => '-',
            }),
            Token::KeepAlives => {
                let _ = write!(out, "{}", r.keepalives);
            }
            Token::ResponseHeader(h) => {
                let v = r
                    .response_headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(h))
                    .map(|(_, v)| v.as_str())
                    .unwrap_or("");
                dash(out, v);
            }
            Token::TimeFormat(f) => time_format(f, now, out),
        }
    }
}

/// The conversions `%{…}t` supports (Apache passes the rest to strftime; these are the
/// ones log formats use). Anything else is a config error, never a wrong log field.
const TIME_CONVERSIONS: &[u8] = b"YmdHMSyjbaezsT%";

fn check_time_format(f: &str) -> Result<(), String> {
    if matches!(f, "sec" | "msec" | "usec" | "msec_frac" | "usec_frac") {
        return Ok(());
    }
    let b = f.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            match b.get(i + 1) {
                Some(c) if TIME_CONVERSIONS.contains(c) => i += 2,
                _ => {
                    return Err(format!(
                        "%{{{f}}}t: ringproxy supports the strftime conversions %{} and sec, msec, usec, msec_frac, usec_frac",
                        TIME_CONVERSIONS
                            .iter()
                            .map(|c| char::from(*c).to_string())
                            .collect::<Vec<_>>()
                            .join(" %")
                    ))
                }
            }
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// Renders a checked `%{…}t` format in UTC (as `%t` is).
fn time_format(f: &str, now: SystemTime, out: &mut String) {
    let since = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    match f {
        "sec" => {
            let _ = write!(out, "{}", since.as_secs());
            return;
        }
        "msec" => {
            let _ = write!(out, "{}", since.as_millis());
            return;
        }
        "usec" => {
            let _ = write!(out, "{}", since.as_micros());
            return;
        }
        "msec_frac" => {
            let _ = write!(out, "{:03}", since.subsec_millis());
            return;
        }
        "usec_frac" => {
            let _ = write!(out, "{:06}", since.subsec_micros());
            return;
        }
        _ => {}
    }
    let secs = since.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, mo, d) = civil_from_days(days);
    let (h, mi, s) = (rem / 3600, rem / 60 % 60, rem % 60);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let mut chars = f.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let _ = match chars.next() {
            Some('Y') => write!(out, "{y}"),
            Some('y') => write!(out, "{:02}", y.rem_euclid(100)),
            Some('m') => write!(out, "{mo:02}"),
            Some('d') => write!(out, "{d:02}"),
            Some('e') => write!(out, "{d:2}"),
            Some('H') => write!(out, "{h:02}"),
            Some('M') => write!(out, "{mi:02}"),
            Some('S') => write!(out, "{s:02}"),
            Some('T') => write!(out, "{h:02}:{mi:02}:{s:02}"),
            Some('j') => {
                let jan1 = days_from_civil(y, 1, 1);
                write!(out, "{:03}", days - jan1 + 1)
            }
            Some('b') => write!(out, "{}", MONTHS[(mo - 1) as usize]),
            Some('a') => write!(out, "{}", DAYS[days.rem_euclid(7) as usize]),
            Some('z') => write!(out, "+0000"),
            Some('s') => write!(out, "{secs}"),
            _ => write!(out, "%"),
        };
    }
}

/// Days since 1970-01-01 -> (year, month, day), proleptic Gregorian (H. Hinnant's method).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// One `CustomLog`.
#[derive(Clone, Debug)]
pub struct LogTarget {
    pub path: PathBuf,
    pub format: Vec<Token>,
    /// `env=VAR` (true) or `env=!VAR` (false): lines only when the variable is set (not
    /// set). Only ringproxy's own variables are ever set (see [`Record::has_var`]).
    pub cond: Option<(String, bool)>,
}

impl LogTarget {
    /// Request headers this log's format needs copied.
    pub fn wanted_headers(&self) -> impl Iterator<Item = &str> {
        self.format.iter().filter_map(|t| match t {
            Token::RequestHeader(h) => Some(h.as_str()),
            _ => None,
        })
    }

    /// Response headers this log's format needs copied.
    pub fn wanted_response_headers(&self) -> impl Iterator<Item = &str> {
        self.format.iter().filter_map(|t| match t {
            Token::ResponseHeader(h) => Some(h.as_str()),
            _ => None,
        })
    }

    /// Whether this log's format shows mod_ssl variables.
    pub fn wants_tls(&self) -> bool {
        self.format.iter().any(|t| matches!(t, Token::Ssl(_)))
    }
}

/// Buffers written when they pass this size.
const FLUSH_AT: usize = 64 * 1024;
/// And at least this often.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

struct Open {
    file: Option<std::fs::File>,
    buf: Vec<u8>,
}

/// One worker's open logs.
pub struct WorkerLogs {
    targets: Vec<LogTarget>,
    /// `%{…}o` names of every target, gathered once: responses copy these (none: nothing to
    /// look at per response).
    response_headers: Vec<String>,
    open: RefCell<Vec<Open>>,
    generation: std::cell::Cell<u64>,
    last_flush: std::cell::Cell<Instant>,
}

fn open(path: &PathBuf) -> Option<std::fs::File> {
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::error!("cannot open CustomLog {}: {e}", path.display());
            None
        }
    }
}

impl WorkerLogs {
    pub fn new(targets: Vec<LogTarget>) -> WorkerLogs {
        let open_files = targets
            .iter()
            .map(|t| Open {
                file: open(&t.path),
                buf: Vec::new(),
            })
            .collect();
        let mut response_headers: Vec<String> = Vec::new();
        for h in targets.iter().flat_map(LogTarget::wanted_response_headers) {
            if !response_headers.iter().any(|w| w.eq_ignore_ascii_case(h)) {
                response_headers.push(h.to_ascii_lowercase());
            }
        }
        WorkerLogs {
            targets,
            response_headers,
            open: RefCell::new(open_files),
            generation: std::cell::Cell::new(REOPEN_GENERATION.load(Ordering::Relaxed)),
            last_flush: std::cell::Cell::new(Instant::now()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    pub fn targets(&self) -> &[LogTarget] {
        &self.targets
    }

    /// The response headers (lower case) some format logs with `%{…}o`.
    pub fn response_headers(&self) -> &[String] {
        &self.response_headers
    }

    /// Logs `r` to the targets with the given indexes (the virtual host's logs).
    pub fn log(&self, which: &[usize], r: &Record) {
        let now = SystemTime::now();
        let mut line = String::with_capacity(160);
        let mut open = self.open.borrow_mut();
        for (i, (t, o)) in self.targets.iter().zip(open.iter_mut()).enumerate() {
            if !which.contains(&i) {
                continue;
            }
            if let Some((var, want)) = &t.cond {
                if r.has_var(var) != *want {
                    continue;
                }
            }
            line.clear();
            render(&t.format, r, now, &mut line);
            line.push('\n');
            o.buf.extend_from_slice(line.as_bytes());
        }
        let full = open.iter().any(|o| o.buf.len() >= FLUSH_AT);
        drop(open);
        if full {
            self.flush();
        }
    }

    /// Writes buffered lines; reopens the files first when SIGUSR1 asked for it.
    pub fn flush(&self) {
        let g = REOPEN_GENERATION.load(Ordering::Relaxed);
        let reopen = g != self.generation.get();
        self.generation.set(g);
        let mut open = self.open.borrow_mut();
        for (t, o) in self.targets.iter().zip(open.iter_mut()) {
            // Lines logged before the reopen belong to the old (rotated) file, so they are
            // written before the file is reopened.
            if !o.buf.is_empty() {
                if let Some(f) = o.file.as_mut() {
                    if let Err(e) = f.write_all(&o.buf) {
                        tracing::error!("writing CustomLog {}: {e}", t.path.display());
                    }
                }
                o.buf.clear();
            }
            if reopen {
                o.file = open_file_again(&t.path);
            }
        }
        self.last_flush.set(Instant::now());
    }

    /// Called by the worker's ticker: writes about once a second.
    pub fn tick(&self) {
        let due = self.last_flush.get().elapsed() >= FLUSH_EVERY;
        if due || REOPEN_GENERATION.load(Ordering::Relaxed) != self.generation.get() {
            self.flush();
        }
    }
}

fn open_file_again(path: &PathBuf) -> Option<std::fs::File> {
    open(path)
}

impl Drop for WorkerLogs {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            client_ip: "127.0.0.1".into(),
            request_line: "GET /a?b=1 HTTP/1.1".into(),
            method: "GET".into(),
            path: "/a".into(),
            query: "b=1".into(),
            protocol: "HTTP/1.1",
            headers: vec![("user-agent".into(), "curl/8".into())],
            status: 200,
            bytes: 1234,
            took: Duration::from_micros(1500),
            balancer: Some("balancer://c".into()),
            member: Some("http://127.0.0.1:9001".into()),
            route: None,
            server_name: "lb.example".into(),
            port: 8080,
            tls: None,
            ..Default::default()
        }
    }

    #[test]
    fn logio_connection_and_time_tokens() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_795_309_200_123_456);
        let mut r = record();
        r.bytes_in = 120;
        r.bytes_out = 2_000;
        r.keepalives = 3;
        r.keep = true;
        r.response_headers = vec![("content-type".into(), "text/html".into())];
        let f = r#"%I %O %S %X %k %L %{Content-Type}o %{X-None}o [%{%Y-%m-%d %H:%M:%S %z}t] %{%j %a %b %e}t %{msec_frac}t %{begin:sec}t"#;
        let mut out = String::new();
        render(&parse_format(f).unwrap(), &r, t, &mut out);
        assert_eq!(
            out,
            "120 2000 2120 + 3 - text/html - [2026-11-22 01:00:00 +0000] 326 Sun Nov 22 123 1795309200"
        );
        r.aborted = true;
        out.clear();
        render(&parse_format("%X").unwrap(), &r, t, &mut out);
        assert_eq!(out, "X");
        assert!(parse_format("%{%Q}t").unwrap_err().contains("strftime"));
        // Debian's stock formats parse.
        parse_format(r#"%v:%p %h %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\""#)
            .unwrap();
    }

    #[test]
    fn apache_formats() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_309_200); // 2026-11-22 01:00:00
        let mut out = String::new();
        render(&parse_format(COMBINED).unwrap(), &record(), t, &mut out);
        assert_eq!(
            out,
            r#"127.0.0.1 - - [22/Nov/2026:01:00:00 +0000] "GET /a?b=1 HTTP/1.1" 200 1234 "-" "curl/8""#
        );
        out.clear();
        let f = parse_format(
            "%D %{BALANCER_WORKER_NAME}e %{BALANCER_WORKER_ROUTE}e %m %U%q %H %v:%p 100%%",
        )
        .unwrap();
        render(&f, &record(), t, &mut out);
        assert_eq!(
            out,
            "1500 http://127.0.0.1:9001 - GET /a?b=1 HTTP/1.1 lb.example:8080 100%"
        );
        let mut r = record();
        r.bytes = 0;
        out.clear();
        render(&parse_format("%b %B").unwrap(), &r, t, &mut out);
        assert_eq!(out, "- 0");
        // mod_ssl's variables: `-` on a plain connection.
        let f = parse_format("%{SSL_PROTOCOL}x %{SSL_CIPHER}x").unwrap();
        out.clear();
        render(&f, &r, t, &mut out);
        assert_eq!(out, "- -");
        r.tls = Some(crate::transport::TlsFacts {
            protocol: "TLSv1.3",
            cipher: "TLS_AES_128_GCM_SHA256",
            ..Default::default()
        });
        out.clear();
        render(&f, &r, t, &mut out);
        assert_eq!(out, "TLSv1.3 TLS_AES_128_GCM_SHA256");
        assert!(parse_format("%{SSL_NOPE}x").is_err());
        assert!(parse_format("%{X-Out}o").is_ok());
        assert!(parse_format("%{REMOTE_USER}e").is_err());
    }

    #[test]
    fn log_items_are_escaped_as_apache_does() {
        assert_eq!(escape_log_item(b"curl/8"), "curl/8");
        assert_eq!(
            escape_log_item(b"x\" 200 1 \"-\"\n1.2.3.4 - - forged"),
            "x\\\" 200 1 \\\"-\\\"\\n1.2.3.4 - - forged"
        );
        assert_eq!(escape_log_item(b"a\\b\x01\xff\t"), "a\\\\b\\x01\\xff\\t");
    }

    #[test]
    fn clf_dates() {
        let at = |s| clf_time(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "[01/Jan/1970:00:00:00 +0000]");
        assert_eq!(at(951_782_400), "[29/Feb/2000:00:00:00 +0000]");
        assert_eq!(at(1_795_309_200), "[22/Nov/2026:01:00:00 +0000]");
    }
}
