//! What ringproxy answers itself: the `SetHandler` pages (server-status, metrics,
//! balancer-manager); `http` serves them. Who may reach them is `routing::location`'s.

pub mod http;
pub mod manager;
pub mod stats;

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use crate::balancer::flag;
use crate::http::reqtimeout::Which;
use crate::runtime::Shared;

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Apache's worker status words (`ap_proxy_parse_wstatus`).
fn status_words(bits: u32, usable: bool) -> String {
    let mut s = String::from("Init ");
    for (f, word) in [
        (flag::I, "Ign "),
        (flag::N, "Drn "),
        (flag::D, "Dis "),
        (flag::S, "Stop "),
        (flag::E, "Err "),
        (flag::H, "Stby "),
        (flag::R, "Spar "),
        (flag::C, "HcFl "),
    ] {
        if bits & f != 0 {
            s.push_str(word);
        }
    }
    if usable {
        s.push_str("Ok ");
    }
    s.trim_end().to_string()
}

fn uptime_words(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    for (n, unit) in [(d, "day"), (h, "hour"), (m, "minute"), (s, "second")] {
        if n > 0 || (unit == "second" && out.is_empty()) {
            let _ = write!(out, "{n} {unit}{} ", if n == 1 { "" } else { "s" });
        }
    }
    out.trim_end().to_string()
}

/// server-status's page for people (templates/status.html, auto-escaping): traffic and
/// connection figures as cards, the per-core workers, and with `ProxyStatus On` the
/// balancers and their members.
#[derive(askama::Template)]
#[template(path = "status.html")]
struct StatusPage<'a> {
    server_name: &'a str,
    version: String,
    uptime: String,
    generation: u64,
    traffic: Vec<(&'static str, String)>,
    connections: Vec<(&'static str, String)>,
    workers: Vec<StatusWorker>,
    balancers: Vec<StatusBalancer>,
}

struct StatusWorker {
    id: usize,
    driver: &'static str,
    connections: i64,
    requests: u64,
    busy: i64,
    busy_poll: String,
}

struct StatusBalancer {
    name: String,
    members: Vec<StatusMember>,
}

struct StatusMember {
    name: String,
    route: String,
    factor: String,
    lbset: u8,
    status: String,
    usable: bool,
    elected: u64,
    busy: i64,
    sent: String,
    received: String,
}

/// Bytes for people: 1.5 MB, 320 kB.
fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} {}", UNITS[i])
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// server-status: `?auto` gives mod_status's machine-readable lines, otherwise HTML.
pub fn server_status(shared: &Shared, auto: bool, server_name: &str) -> (&'static str, String) {
    let t = stats::totals(&shared.stats);
    let up = shared.started.elapsed().as_secs_f64().max(1e-3);
    let uptime = up as u64;
    let cap = shared.cfg.core.max_request_workers as i64;
    // As Apache's: request slots (MaxRequestWorkers) not serving a request now.
    let idle_capacity = (cap - t.busy).max(0);
    let keepalive_idle = (t.conns_open - t.busy).max(0);
    let scoreboard: String = shared
        .stats
        .iter()
        .map(|s| {
            if s.busy.load(Ordering::Relaxed) > 0 {
                'W'
            } else {
                '_'
            }
        })
        .collect();
    let mut lines: Vec<(String, String)> = vec![
        (
            "ServerVersion".into(),
            format!("ringproxy/{}", env!("CARGO_PKG_VERSION")),
        ),
        (
            "ServerMPM".into(),
            "ringproxy (one pinned thread per core)".into(),
        ),
        // Apache's name for the count of (graceful) restarts plus one.
        (
            "ParentServerConfigGeneration".into(),
            shared.generation.to_string(),
        ),
        ("ServerUptimeSeconds".into(), uptime.to_string()),
        ("ServerUptime".into(), uptime_words(uptime)),
        ("Total Accesses".into(), t.requests.to_string()),
        ("Total kBytes".into(), (t.bytes_out / 1024).to_string()),
        ("Uptime".into(), uptime.to_string()),
        ("ReqPerSec".into(), format!("{:.6}", t.requests as f64 / up)),
        (
            "BytesPerSec".into(),
            format!("{:.6}", t.bytes_out as f64 / up),
        ),
        (
            "BytesPerReq".into(),
            format!("{:.6}", t.bytes_out as f64 / (t.requests.max(1)) as f64),
        ),
        ("BusyWorkers".into(), t.busy.to_string()),
        // ringproxy's own: requests cut off by RequestReadTimeout (408).
        (
            "ReadTimeoutsHeader".into(),
            t.read_timeouts[Which::Header as usize].to_string(),
        ),
        (
            "ReadTimeoutsBody".into(),
            t.read_timeouts[Which::Body as usize].to_string(),
        ),
        ("IdleWorkers".into(), idle_capacity.to_string()),
        ("Processes".into(), "1".into()),
        ("ConnsTotal".into(), t.conns_open.to_string()),
        ("ConnsAsyncWriting".into(), "0".into()),
        ("ConnsAsyncKeepAlive".into(), keepalive_idle.to_string()),
        ("ConnsAsyncClosing".into(), "0".into()),
        // ringproxy's own: the keep-alive connections that gave up their tasks.
        ("ConnsParked".into(), t.parked.to_string()),
        // ringproxy's own: TLS connections and handshakes (mod_ssl reports its session
        // cache only).
        ("TLSConnections".into(), t.tls_open.to_string()),
        ("TLSHandshakesTLS13".into(), t.tls_handshakes[0].to_string()),
        ("TLSHandshakesTLS12".into(), t.tls_handshakes[1].to_string()),
        ("TLSResumptions".into(), t.tls_handshakes[2].to_string()),
        (
            "TLSHandshakeFailures".into(),
            t.tls_failures.iter().sum::<u64>().to_string(),
        ),
        (
            "MemberTLSHandshakes".into(),
            t.member_tls_handshakes[0].to_string(),
        ),
        (
            "MemberTLSResumptions".into(),
            t.member_tls_handshakes[1].to_string(),
        ),
        (
            "MemberTLSHandshakeFailures".into(),
            t.member_tls_failures.iter().sum::<u64>().to_string(),
        ),
    ];
    for (i, s) in shared.stats.iter().enumerate() {
        let r = Ordering::Relaxed;
        lines.push((
            format!("Worker{i}Connections"),
            s.conns_open.load(r).to_string(),
        ));
        lines.push((format!("Worker{i}Requests"), s.requests.load(r).to_string()));
        lines.push((
            format!("Worker{i}Driver"),
            if s.epoll.load(r) { "epoll" } else { "io_uring" }.into(),
        ));
        // ringproxy's own: what BusyPolling costs on this worker.
        lines.push((
            format!("Worker{i}BusyPollSeconds"),
            format!("{:.6}", s.busy_poll_us.load(r) as f64 / 1e6),
        ));
    }
    lines.push(("Scoreboard".into(), scoreboard));
    if shared.cfg.core.proxy_status {
        for (i, sb) in shared.table.balancers.iter().enumerate() {
            let view = sb.view();
            lines.push((format!("ProxyBalancer[{i}]Name"), view.name.clone()));
            for (n, mv) in view.members.iter().enumerate() {
                let st = &mv.state;
                let p = format!("ProxyBalancer[{i}]Worker[{n}]");
                lines.push((format!("{p}Name"), st.member.name.clone()));
                lines.push((
                    format!("{p}Status"),
                    status_words(st.status(), shared.table.usable(st)),
                ));
                lines.push((format!("{p}Elected"), st.elected().to_string()));
                lines.push((format!("{p}Busy"), st.busy().to_string()));
                lines.push((format!("{p}Sent"), format!("{}K", st.sent() >> 10)));
                lines.push((format!("{p}Rcvd"), format!("{}K", st.received() >> 10)));
            }
        }
    }
    if auto {
        let mut out = format!("{server_name}\n");
        for (k, v) in &lines {
            let _ = writeln!(out, "{k}: {v}");
        }
        return ("text/plain; charset=ISO-8859-1", out);
    }
    let value = |key: &str| {
        lines
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let card = |label: &'static str, key: &str| (label, value(key));
    let traffic = vec![
        card("requests", "Total Accesses"),
        (
            "requests per second (average)",
            format!("{:.1}", t.requests as f64 / up),
        ),
        (
            "bytes per second (average)",
            human_bytes(t.bytes_out as f64 / up),
        ),
        ("bytes sent", human_bytes(t.bytes_out as f64)),
        card("requests cut off (slow heads)", "ReadTimeoutsHeader"),
        card("requests cut off (slow bodies)", "ReadTimeoutsBody"),
    ];
    let connections = vec![
        card("requests in progress", "BusyWorkers"),
        card("request slots free (MaxRequestWorkers)", "IdleWorkers"),
        card("client connections open", "ConnsTotal"),
        card("idle keep-alive", "ConnsAsyncKeepAlive"),
        card("parked (idle, no task)", "ConnsParked"),
        card("TLS connections", "TLSConnections"),
        card("TLS handshake failures", "TLSHandshakeFailures"),
    ];
    let r = Ordering::Relaxed;
    let workers = shared
        .stats
        .iter()
        .enumerate()
        .map(|(id, s)| StatusWorker {
            id,
            driver: if s.epoll.load(r) { "epoll" } else { "io_uring" },
            connections: s.conns_open.load(r),
            requests: s.requests.load(r),
            busy: s.busy.load(r),
            busy_poll: format!("{:.3}", s.busy_poll_us.load(r) as f64 / 1e6),
        })
        .collect();
    let balancers = match shared.cfg.core.proxy_status {
        false => Vec::new(),
        true => shared
            .table
            .balancers
            .iter()
            .map(|sb| {
                let view = sb.view();
                StatusBalancer {
                    name: view.name.clone(),
                    members: view
                        .members
                        .iter()
                        .map(|mv| {
                            let st = &mv.state;
                            let usable = shared.table.usable(st);
                            StatusMember {
                                name: st.member.name.clone(),
                                route: mv.route.clone().unwrap_or_default(),
                                factor: format!("{:.2}", f64::from(mv.lbfactor) / 100.0),
                                lbset: mv.lbset,
                                status: status_words(st.status(), usable),
                                usable,
                                elected: st.elected(),
                                busy: st.busy(),
                                sent: human_bytes(st.sent() as f64),
                                received: human_bytes(st.received() as f64),
                            }
                        })
                        .collect(),
                }
            })
            .collect(),
    };
    let page = StatusPage {
        server_name,
        version: value("ServerVersion"),
        uptime: value("ServerUptime"),
        generation: shared.generation,
        traffic,
        connections,
        workers,
        balancers,
    };
    let html = askama::Template::render(&page).unwrap_or_else(|e| format!("page error: {e}"));
    ("text/html; charset=utf-8", html)
}

/// Label values in the Prometheus text format escape backslash, quote and newline.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus text exposition (version 0.0.4): counters are per core and summed here.
pub fn metrics(shared: &Shared) -> (&'static str, String) {
    let t = stats::totals(&shared.stats);
    let mut o = String::new();
    let family = |o: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(
        &mut o,
        "ringproxy_requests_total",
        "counter",
        "Requests answered, by status class.",
    );
    for (i, class) in ["none", "1xx", "2xx", "3xx", "4xx", "5xx"]
        .iter()
        .enumerate()
    {
        let _ = writeln!(
            o,
            "ringproxy_requests_total{{class=\"{class}\"}} {}",
            t.status[i]
        );
    }
    family(
        &mut o,
        "ringproxy_response_bytes_total",
        "counter",
        "Bytes sent to clients.",
    );
    let _ = writeln!(o, "ringproxy_response_bytes_total {}", t.bytes_out);
    family(
        &mut o,
        "ringproxy_connections_total",
        "counter",
        "Client connections accepted.",
    );
    let _ = writeln!(o, "ringproxy_connections_total {}", t.conns_total);
    family(
        &mut o,
        "ringproxy_connections_open",
        "gauge",
        "Client connections open.",
    );
    let _ = writeln!(o, "ringproxy_connections_open {}", t.conns_open);
    family(
        &mut o,
        "ringproxy_connections_parked",
        "gauge",
        "Idle keep-alive connections parked (no task, socket in the worker's epoll set).",
    );
    let _ = writeln!(o, "ringproxy_connections_parked {}", t.parked);
    family(
        &mut o,
        "ringproxy_requests_in_progress",
        "gauge",
        "Requests being handled.",
    );
    let _ = writeln!(o, "ringproxy_requests_in_progress {}", t.busy);
    family(
        &mut o,
        "ringproxy_busy_poll_seconds_total",
        "counter",
        "Time workers spent polling for events instead of sleeping (BusyPolling).",
    );
    let _ = writeln!(
        o,
        "ringproxy_busy_poll_seconds_total {:.6}",
        t.busy_poll_us as f64 / 1e6
    );
    // Counters with one label: one family, one line per label value.
    let labelled = |o: &mut String, name: &str, help: &str, label: &str, rows: &[(&str, u64)]| {
        family(o, name, "counter", help);
        for (value, n) in rows {
            let _ = writeln!(o, "{name}{{{label}=\"{value}\"}} {n}");
        }
    };
    labelled(
        &mut o,
        "ringproxy_backend_pool_total",
        "Backend connections lent from the keep-alive pool (hit) or newly opened (miss).",
        "result",
        &[("hit", t.pool_hits), ("miss", t.pool_misses)],
    );
    let retries: Vec<(&str, u64)> = stats::Retry::ALL
        .iter()
        .map(|r| (r.label(), t.retries[*r as usize]))
        .collect();
    labelled(
        &mut o,
        "ringproxy_backend_retries_total",
        "Requests sent again: on a fresh connection after a stale pooled one (stale), to another member after a failed connect (connect), or once to another member after an idempotent request's connection closed before any response byte (idempotent). Never after a timeout.",
        "reason",
        &retries,
    );
    labelled(
        &mut o,
        "ringproxy_request_read_timeouts_total",
        "Requests answered 408 because their head or body arrived slower than RequestReadTimeout allows.",
        "stage",
        &[Which::Header, Which::Body].map(|w| (w.label(), t.read_timeouts[w as usize])),
    );
    labelled(
        &mut o,
        "ringproxy_tls_handshakes_total",
        "TLS handshakes completed, by kind: a full TLS 1.3 or TLS 1.2 handshake, or a resumed session.",
        "kind",
        &[
            ("full_tls13", t.tls_handshakes[0]),
            ("full_tls12", t.tls_handshakes[1]),
            ("resumed", t.tls_handshakes[2]),
        ],
    );
    labelled(
        &mut o,
        "ringproxy_tls_handshake_failures_total",
        "TLS handshakes that failed, by reason (timeout, closed, protocol: no common version, cipher: no common suite, client_certificate, alert, protocol_error: not TLS or malformed…).",
        "reason",
        &by_reason(t.tls_failures),
    );
    labelled(
        &mut o,
        "ringproxy_member_tls_handshakes_total",
        "TLS handshakes with https:// and wss:// members, by kind: full or resumed.",
        "kind",
        &[
            ("full", t.member_tls_handshakes[0]),
            ("resumed", t.member_tls_handshakes[1]),
        ],
    );
    labelled(
        &mut o,
        "ringproxy_member_tls_handshake_failures_total",
        "TLS handshakes with members that failed, by reason (certificate: the member's certificate was refused; timeout, closed, protocol, cipher, alert, protocol_error…).",
        "reason",
        &by_reason(t.member_tls_failures),
    );
    family(
        &mut o,
        "ringproxy_tls_connections_open",
        "gauge",
        "Client connections open over TLS.",
    );
    let _ = writeln!(o, "ringproxy_tls_connections_open {}", t.tls_open);
    family(
        &mut o,
        "ringproxy_request_duration_seconds",
        "histogram",
        "Time from a complete request head to the end of the response.",
    );
    let mut cumulative = 0;
    for (i, le) in stats::LATENCY_BUCKETS.iter().enumerate() {
        cumulative += t.latency[i];
        let _ = writeln!(
            o,
            "ringproxy_request_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
        );
    }
    cumulative += t.latency[stats::LATENCY_BUCKETS.len()];
    let _ = writeln!(
        o,
        "ringproxy_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
    );
    let _ = writeln!(
        o,
        "ringproxy_request_duration_seconds_sum {}",
        t.latency_sum_us as f64 / 1e6
    );
    let _ = writeln!(o, "ringproxy_request_duration_seconds_count {cumulative}");
    family(
        &mut o,
        "ringproxy_member_requests_total",
        "counter",
        "Requests sent to each balancer member.",
    );
    let members: Vec<(
        String,
        String,
        std::sync::Arc<crate::balancer::SharedMember>,
    )> = shared
        .table
        .balancers
        .iter()
        .flat_map(|sb| {
            let v = sb.view();
            v.members
                .iter()
                .map(|m| (label(&v.name), label(&m.state.member.name), m.state.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    for (b, m, st) in &members {
        let _ = writeln!(
            o,
            "ringproxy_member_requests_total{{balancer=\"{b}\",member=\"{m}\"}} {}",
            st.elected()
        );
    }
    family(
        &mut o,
        "ringproxy_member_bytes_total",
        "counter",
        "Bytes sent to and received from each member.",
    );
    for (b, m, st) in &members {
        let _ = writeln!(
            o,
            "ringproxy_member_bytes_total{{balancer=\"{b}\",member=\"{m}\",direction=\"sent\"}} {}",
            st.sent()
        );
        let _ = writeln!(o, "ringproxy_member_bytes_total{{balancer=\"{b}\",member=\"{m}\",direction=\"received\"}} {}", st.received());
    }
    family(
        &mut o,
        "ringproxy_member_up",
        "gauge",
        "1 when the member is usable (none of D, S, E, C).",
    );
    for (b, m, st) in &members {
        let _ = writeln!(
            o,
            "ringproxy_member_up{{balancer=\"{b}\",member=\"{m}\"}} {}",
            u8::from(shared.table.usable(st))
        );
    }
    family(
        &mut o,
        "ringproxy_member_busy",
        "gauge",
        "Requests in flight on each member.",
    );
    for (b, m, st) in &members {
        let _ = writeln!(
            o,
            "ringproxy_member_busy{{balancer=\"{b}\",member=\"{m}\"}} {}",
            st.busy()
        );
    }
    ("text/plain; version=0.0.4; charset=utf-8", o)
}

/// Handshake failure counts labelled by their reasons.
fn by_reason(counts: [u64; stats::TLS_REASONS]) -> Vec<(&'static str, u64)> {
    crate::transport::tls::HandshakeError::REASONS
        .into_iter()
        .zip(counts)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        assert_eq!(status_words(0, true), "Init Ok");
        assert_eq!(status_words(flag::D | flag::E, false), "Init Dis Err");
        assert_eq!(uptime_words(0), "0 seconds");
        assert_eq!(uptime_words(3661), "1 hour 1 minute 1 second");
        assert_eq!(escape("<a href='x'>&"), "&lt;a href=&#39;x&#39;&gt;&amp;");
        assert_eq!(label("a\"b\\c"), "a\\\"b\\\\c");
    }
}
