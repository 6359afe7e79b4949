//! Active health checks (mod_proxy_hcheck).
//!
//! One checker for the whole process, on its own thread and event loop: each member with
//! `hcmethod` set is checked once per `hcinterval`, whatever the number of workers, and the
//! result goes into the shared member table, where every worker sees it on its next request.
//! `hcfails` consecutive failures set flag C; `hcpasses` consecutive successes clear C and
//! E (Apache counts these cumulatively; like HAProxy, ringproxy counts them in a row).

pub mod expr;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::balancer::{flag, MemberView};
use crate::http::body::Framing;
use crate::http::head::{parse_response, ResponseHead};
use crate::runtime::Shared;
use crate::transport::io::{read_more, write_all, IoFail};

/// Apache's default `hcinterval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// At most this much of a check response's body is read (for `hc('body')`).
const MAX_BODY: usize = 64 * 1024;

/// Consecutive results for one member, owned by the checker.
#[derive(Default)]
struct Tally {
    due: Option<Instant>,
    in_flight: bool,
    passes: u32,
    fails: u32,
}

/// Checks until the process stops or a reload retires this configuration generation.
pub async fn run(shared: Arc<Shared>) {
    let mut tallies: HashMap<usize, Rc<RefCell<Tally>>> = HashMap::new();
    loop {
        let now = Instant::now();
        let mut next = now + Duration::from_secs(1);
        for (bi, sb) in shared.table.balancers.iter().enumerate() {
            let view = sb.view();
            for mv in &view.members {
                let hc = &mv.state.member.params.hc;
                let Some(method) = hc.method.clone() else {
                    continue;
                };
                let interval = hc.interval.unwrap_or(DEFAULT_INTERVAL);
                // Keyed by the member's shared state: stable while the member exists.
                let key = Arc::as_ptr(&mv.state) as usize;
                let tally = tallies.entry(key).or_default().clone();
                let mut t = tally.borrow_mut();
                let due = *t.due.get_or_insert(now);
                if due <= now && !t.in_flight {
                    t.in_flight = true;
                    t.due = Some(now + interval);
                    monoio::spawn(check_and_record(
                        shared.clone(),
                        bi,
                        mv.clone(),
                        method,
                        tally.clone(),
                    ));
                }
                if let Some(d) = t.due {
                    next = next.min(d);
                }
            }
        }
        let wait = next.saturating_duration_since(Instant::now());
        monoio::select! {
            _ = monoio::time::sleep(wait.max(Duration::from_millis(10))) => {}
            _ = shared.shutdown.wait() => return,
            _ = shared.retired.wait() => return,
        }
    }
}

async fn check_and_record(
    shared: Arc<Shared>,
    balancer: usize,
    mv: MemberView,
    method: String,
    tally: Rc<RefCell<Tally>>,
) {
    let ok = check(&shared, balancer, &mv, &method).await;
    mv.state.record_check(ok);
    let mut t = tally.borrow_mut();
    t.in_flight = false;
    let member = &mv.state.member;
    let hc = &member.params.hc;
    if ok {
        t.fails = 0;
        t.passes += 1;
        let down = mv.state.has(flag::C) || shared.table.in_error(&mv.state);
        if down && t.passes >= hc.passes.unwrap_or(1) {
            mv.state.set_flag(flag::C, false);
            shared.table.clear_error(&mv.state);
            info!(
                "health check of {} passed {} time(s) in a row: member usable again",
                member.name, t.passes
            );
        }
    } else {
        t.passes = 0;
        t.fails += 1;
        if !mv.state.has(flag::C) && t.fails >= hc.fails.unwrap_or(1) {
            mv.state.set_flag(flag::C, true);
            warn!(
                "health check of {} failed {} time(s) in a row: member disabled (C)",
                member.name, t.fails
            );
        }
    }
}

/// One check; true when it passed.
async fn check(shared: &Shared, balancer: usize, mv: &MemberView, method: &str) -> bool {
    let cfg = &shared.cfg;
    let member = &mv.state.member;
    let p = &member.params;
    let timeout = p
        .timeout
        .or(cfg.balancers.get(balancer).and_then(|b| b.params.timeout))
        .unwrap_or(cfg.core.timeout);
    let connect_timeout = p.connection_timeout.unwrap_or(timeout);
    // TLS members are checked through TLS (a TCP check is a full handshake): a member
    // whose certificate fails stays out.
    let mut stream = match crate::upstream::connect_stream(member, connect_timeout, None).await {
        Ok(s) => s,
        Err(e) => {
            debug!("health check of {}: {e}", member.name);
            return false;
        }
    };
    if method == "TCP" {
        return true;
    }
    if method == "CPING" {
        let mut s = crate::upstream::ajp::AjpSession::new(stream, cfg.core.ajp_packet_size);
        return s.cping(timeout).await.is_ok();
    }
    let (verb, version) = match method.strip_suffix("11") {
        Some(v) => (v, "HTTP/1.1"),
        None => (method, "HTTP/1.0"),
    };
    let uri = format!("{}{}", member.path, p.hc.uri.as_deref().unwrap_or(""));
    let uri = if uri.is_empty() { "/".to_string() } else { uri };
    let request = format!(
        "{verb} {uri} {version}\r\nHost: {}\r\nUser-Agent: ringproxy-hcheck\r\nConnection: close\r\n\r\n",
        member.host_header
    );
    if write_all(&mut stream, request.into_bytes(), timeout)
        .await
        .0
        .is_err()
    {
        return false;
    }
    let mut buf = Vec::with_capacity(4096);
    let mut head = ResponseHead::default();
    let is_head = verb == "HEAD";
    // Head first. Interim 1xx heads are skipped; what followed them in the same read is
    // parsed before reading again (a final head may already be there, and the member may
    // close right after it).
    loop {
        if !buf.is_empty() {
            match parse_response(&buf, is_head, &mut head) {
                Ok(Some(())) if (100..200).contains(&head.status) => {
                    buf.drain(..head.len);
                    continue;
                }
                Ok(Some(())) => break,
                Ok(None) => {}
                Err(_) => return false,
            }
        }
        let (r, b) = read_more(&mut stream, buf, 4096, timeout).await;
        buf = b;
        match r {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
    }
    let status = head.status;
    let expr = p.hc.expr.as_ref().and_then(|name| cfg.hc_exprs.get(name));
    let Some(expr) = expr else {
        // Without hcexpr, Apache passes 2xx and 3xx.
        return (200..400).contains(&status);
    };
    // The body, bounded, for hc('body').
    let mut framing = Framing::from(head.body());
    let mut body = buf[head.len..].to_vec();
    let mut pos = 0;
    loop {
        if let Ok(adv) = framing.advance(&body[pos..]) {
            pos += adv.consumed;
        }
        if framing.is_done() || body.len() >= MAX_BODY {
            break;
        }
        let (r, b) = read_more(&mut stream, body, 4096, timeout).await;
        body = b;
        match r {
            Ok(0) | Err(IoFail::Io(_)) | Err(IoFail::Timeout) => break,
            Ok(_) => {}
        }
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_BODY)]);
    expr::eval(
        expr,
        &expr::CheckResult {
            status,
            body: &text,
        },
    )
}
