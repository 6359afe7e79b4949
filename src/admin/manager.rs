//! balancer-manager: see and change balancers and members at run time, as Apache's
//! `balancer_handler` does, with its parameter names, and safer.
//!
//! Changes go through the shared table (flags are atomics; structure goes through a new
//! epoch-versioned view), so every worker uses them from its next request. A change needs
//! the balancer's nonce (anti-CSRF) and a Referer or Origin naming this host; every value is
//! validated before anything changes, every change is logged (who, what, old -> new), and
//! everything echoed in the page is HTML-escaped (Apache's past advisories: CVE-2007-6420,
//! CVE-2007-6421, CVE-2012-4558, CVE-2007-6422).

use std::sync::Arc;

use serde_json::{json, Value};
use tracing::info;

use crate::balancer::{flag, MemberView, SharedMember, DEFAULT_LBFACTOR};
use crate::config::url::{without_scheme, Scheme};
use crate::config::{LbMethod, Loc};
use crate::runtime::Shared;

/// A per-balancer nonce: `nonce=` from the config, else 128 random bits from the kernel
/// (getrandom(2)). Without randomness there is no nonce to guard the manager's forms, so
/// the caller refuses to start (or to reload) rather than use a guessable one.
pub fn make_nonce(configured: Option<&str>) -> std::io::Result<String> {
    if let Some(n) = configured {
        return Ok(n.to_string());
    }
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| {
        std::io::Error::other(format!("no randomness for the balancer-manager nonce: {e}"))
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The host and port of the member a form adds, to be looked up before [`apply`].
pub fn new_member_host(form: &[(String, String)]) -> Option<(String, u16)> {
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let url = get("b_nwrkr").filter(|v| !v.trim().is_empty())?;
    (get("b_wyes") == Some("1"))
        .then(|| crate::config::member_host_port(url.trim()))
        .flatten()
}

/// `application/x-www-form-urlencoded` -> pairs.
pub fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    fn decode(s: &[u8]) -> String {
        let mut out = Vec::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            match s[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < s.len() => {
                    let hex = std::str::from_utf8(&s[i + 1..i + 3]).ok();
                    match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(b) => {
                            out.push(b);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.iter().position(|&b| b == b'=') {
            Some(i) => (decode(&p[..i]), decode(&p[i + 1..])),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// The Referer's or Origin's host must be the one the client addressed (same-host check).
pub fn same_host(host: Option<&str>, referer: Option<&str>, origin: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    let host_of = |url: &str| -> Option<String> {
        let rest = url.split_once("://")?.1;
        Some(rest.split(['/', '?', '#']).next()?.to_ascii_lowercase())
    };
    [origin, referer]
        .into_iter()
        .flatten()
        .next()
        .and_then(host_of)
        .is_some_and(|h| h == host.to_ascii_lowercase())
}

fn members_json(shared: &Shared, b: usize) -> Vec<Value> {
    let view = shared.table.balancers[b].view();
    view.members
        .iter()
        .map(|m| {
            let st = &m.state;
            json!({
                "name": st.member.name,
                "route": m.route,
                "redirect": m.redirect,
                "loadfactor": f64::from(m.lbfactor) / 100.0,
                "lbset": m.lbset,
                "status": flag::describe(st.status()),
                "usable": shared.table.usable(st),
                "elected": st.elected(),
                "busy": st.busy(),
                "sent": st.sent(),
                "received": st.received(),
                "errors": st.failures(),
                "hcmethod": st.member.params.hc.method,
            })
        })
        .collect()
}

fn lbmethod_name(m: LbMethod) -> &'static str {
    match m {
        LbMethod::ByRequests | LbMethod::Heartbeat => "byrequests",
        LbMethod::ByTraffic => "bytraffic",
        LbMethod::ByBusyness => "bybusyness",
        LbMethod::Hash => "hash",
    }
}

/// The whole state as JSON (the API's GET).
pub fn state_json(shared: &Shared) -> String {
    let balancers: Vec<Value> = shared
        .table
        .balancers
        .iter()
        .enumerate()
        .filter(|(i, _)| !shared.cfg.balancers[*i].implicit)
        .map(|(i, sb)| {
            let v = sb.view();
            json!({
                "name": v.name,
                "nonce": shared.nonces[i],
                "lbmethod": lbmethod_name(v.lbmethod),
                "maxattempts": v.maxattempts,
                "nofailover": v.nofailover,
                "stickysession": v.sticky.as_ref().map(|s| if s.cookie == s.param { s.cookie.clone() } else { format!("{}|{}", s.cookie, s.param) }),
                "members": members_json(shared, i),
            })
        })
        .collect();
    json!({ "balancers": balancers }).to_string()
}

/// The HTML page: every balancer and member, and forms that post Apache's parameters.
/// The flags, as the page's legend explains them: (letter, meaning, who sets it).
const LEGEND: &[(char, &str, &str)] = &[
    (
        'D',
        "Disabled: takes no requests, sticky sessions included",
        "the administrator",
    ),
    ('S', "Stopped", "the administrator"),
    (
        'I',
        "Ignore errors: never put in error state",
        "the administrator",
    ),
    (
        'H',
        "Hot standby: used only when no other member is usable",
        "the administrator",
    ),
    (
        'R',
        "Hot spare: replaces an unusable member one for one",
        "the administrator",
    ),
    (
        'E',
        "In error: a request to it failed; tried again when its retry time is over",
        "ringproxy",
    ),
    (
        'N',
        "Draining: no new sessions, sticky ones still served",
        "the administrator",
    ),
    (
        'C',
        "Health check failed",
        "the health checker (or the administrator)",
    ),
];

/// The flags the member form edits, in Apache's order.
const EDITABLE: [char; 7] = ['I', 'N', 'D', 'H', 'R', 'S', 'C'];

#[derive(askama::Template)]
#[template(path = "manager.html")]
struct ManagerPage<'a> {
    path: &'a str,
    balancers: Vec<BalancerPage>,
    changes: Vec<String>,
    legend: &'static [(char, &'static str, &'static str)],
}

struct BalancerPage {
    name: String,
    short: String,
    nonce: String,
    lbmethod: &'static str,
    maxattempts: usize,
    nofailover: u8,
    members: Vec<MemberPage>,
}

struct MemberPage {
    url: String,
    form_id: String,
    route: String,
    redirect: String,
    lbfactor: String,
    lbset: u8,
    letters: String,
    state: String,
    state_class: &'static str,
    health: String,
    elected: u64,
    rate: String,
    busy: i64,
    failures: u64,
    sent: u64,
    received: u64,
    flags: Vec<FlagBox>,
}

struct FlagBox {
    letter: char,
    on: bool,
    meaning: &'static str,
}

/// A member's state in words: what a request would find.
fn state_words(shared: &Shared, st: &crate::balancer::SharedMember) -> (String, &'static str) {
    let bits = st.status();
    if let Some(left) = shared.table.error_left(st) {
        return (
            format!("In error: retried in {} s", left.as_secs() + 1),
            "bad",
        );
    }
    let words = [
        (flag::S, "Stopped"),
        (flag::D, "Disabled"),
        (flag::C, "Health check failing"),
        (flag::N, "Draining"),
        (flag::H, "Hot standby"),
        (flag::R, "Hot spare"),
    ];
    match words.iter().find(|(f, _)| bits & f != 0) {
        Some((f, w)) if f & flag::NOT_USABLE != 0 => (w.to_string(), "bad"),
        Some((_, w)) => (w.to_string(), "warn"),
        None => ("Usable".to_string(), "ok"),
    }
}

/// balancer-manager's page: labelled fields, the flags as letters (Apache's) and their
/// state in words, health checks, traffic, the recent changes, and a legend. Rendered by
/// an auto-escaping template (templates/manager.html), so nothing from the configuration
/// or a change reaches the page unescaped.
pub fn page(shared: &Shared, path: &str) -> String {
    let uptime = shared.started.elapsed().as_secs_f64().max(1.0);
    let mut balancers = Vec::new();
    for (i, sb) in shared.table.balancers.iter().enumerate() {
        if shared.cfg.balancers[i].implicit {
            continue;
        }
        let v = sb.view();
        let short = without_scheme(&v.name).to_string();
        let members = v
            .members
            .iter()
            .map(|m| {
                let st = &m.state;
                let url = st.member.name.clone();
                let (state, state_class) = state_words(shared, st);
                let health = match (st.member.params.hc.method.as_deref(), st.last_check()) {
                    (None, _) => "not checked".to_string(),
                    (Some(how), None) => format!("{how}: no result yet"),
                    (Some(how), Some(true)) => format!("{how}: passed"),
                    (Some(how), Some(false)) => format!("{how}: failed"),
                };
                MemberPage {
                    form_id: format!("w-{short}-{}", without_scheme(&url)),
                    route: m.route.clone().unwrap_or_default(),
                    redirect: m.redirect.clone().unwrap_or_default(),
                    lbfactor: format!("{:.2}", f64::from(m.lbfactor) / 100.0),
                    lbset: m.lbset,
                    letters: flag::describe(st.status()),
                    state,
                    state_class,
                    health,
                    elected: st.elected(),
                    rate: format!("{:.1}", st.elected() as f64 / uptime),
                    busy: st.busy(),
                    failures: st.failures(),
                    sent: st.sent(),
                    received: st.received(),
                    flags: EDITABLE
                        .iter()
                        .map(|&c| FlagBox {
                            letter: c,
                            on: st.status() & flag::from_char(c).unwrap_or(0) != 0,
                            meaning: LEGEND.iter().find(|l| l.0 == c).map_or("", |l| l.1),
                        })
                        .collect(),
                    url,
                }
            })
            .collect();
        balancers.push(BalancerPage {
            name: v.name.clone(),
            nonce: shared.nonces[i].clone(),
            lbmethod: lbmethod_name(v.lbmethod),
            maxattempts: v.maxattempts,
            nofailover: u8::from(v.nofailover),
            members,
            short,
        });
    }
    let changes = shared
        .manager_changes
        .lock()
        .map(|c| c.iter().rev().cloned().collect())
        .unwrap_or_default();
    let page = ManagerPage {
        path,
        balancers,
        changes,
        legend: LEGEND,
    };
    askama::Template::render(&page).unwrap_or_else(|e| format!("page error: {e}"))
}

/// Changes the page shows as confirmation (the newest).
const RECENT_CHANGES: usize = 10;

/// Why a change was refused: (status, message).
pub type Refusal = (u16, String);

fn bad(msg: impl Into<String>) -> Refusal {
    (400, msg.into())
}

/// Applies a form of changes. Everything is validated first; nothing changes on a refusal.
/// Applies a form. `new_member_addr` is the address of the member the form adds
/// (`b_nwrkr`), looked up by the caller beforehand off the event loop (see
/// [`new_member_host`]); `None` when it did not resolve.
pub fn apply(
    shared: &Shared,
    who: &str,
    form: &[(String, String)],
    new_member_addr: Option<std::net::SocketAddr>,
) -> Result<Vec<String>, Refusal> {
    // A checkbox posts "1" and its hidden companion "0": the first value wins, as in Apache.
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let b_name = get("b").ok_or_else(|| bad("missing balancer (b)"))?;
    let full = Scheme::Balancer.url(b_name);
    let bi = shared
        .table
        .balancers
        .iter()
        .enumerate()
        .position(|(i, sb)| {
            !shared.cfg.balancers[i].implicit && sb.view().name.eq_ignore_ascii_case(&full)
        })
        .ok_or_else(|| bad(format!("no balancer {b_name}")))?;
    if shared.nonces[bi] != "None" && get("nonce") != Some(shared.nonces[bi].as_str()) {
        return Err((403, "missing or wrong nonce".into()));
    }
    let sb = &shared.table.balancers[bi];
    let view = sb.view();
    let mut log = Vec::new();
    if let Some(w) = get("w") {
        let m = view
            .members
            .iter()
            .position(|m| m.state.member.name.eq_ignore_ascii_case(w))
            .ok_or_else(|| bad(format!("no member {w} in {full}")))?;
        let mut params = crate::config::MemberParams::default();
        let lf = match get("w_lf") {
            Some(v) => {
                params.apply("loadfactor", v).map_err(bad)?;
                params.lbfactor
            }
            None => None,
        };
        let ls = match get("w_ls") {
            Some(v) => {
                params.apply("lbset", v).map_err(bad)?;
                params.lbset
            }
            None => None,
        };
        let route_like = |key: &str, v: Option<&str>| -> Result<Option<Option<String>>, Refusal> {
            match v {
                None => Ok(None),
                Some("") => Ok(Some(None)),
                Some(v) => {
                    let mut p = crate::config::MemberParams::default();
                    p.apply(key, v).map_err(bad)?;
                    Ok(Some(Some(v.to_string())))
                }
            }
        };
        let wr = route_like("route", get("w_wr"))?;
        let rr = route_like("redirect", get("w_rr"))?;
        let mut flags = Vec::new();
        for c in ['I', 'N', 'D', 'H', 'R', 'S', 'C'] {
            if let Some(v) = get(&format!("w_status_{c}")) {
                let on = match v {
                    "1" | "on" | "On" => true,
                    "0" | "off" | "Off" => false,
                    _ => return Err(bad(format!("w_status_{c}={v}: 0 or 1"))),
                };
                flags.push((c, on));
            }
        }
        // All valid: apply.
        let mv = &view.members[m];
        let st = &mv.state;
        for (c, on) in flags {
            let bit = flag::from_char(c).unwrap_or(0);
            if st.has(bit) != on {
                st.set_flag(bit, on);
                log.push(format!("{} flag {c}: {} -> {}", st.member.name, !on, on));
            }
        }
        let (old_lf, old_ls, old_wr, old_rr) =
            (mv.lbfactor, mv.lbset, mv.route.clone(), mv.redirect.clone());
        if lf.is_some_and(|v| v != old_lf)
            || ls.is_some_and(|v| v != old_ls)
            || wr.as_ref().is_some_and(|v| *v != old_wr)
            || rr.as_ref().is_some_and(|v| *v != old_rr)
        {
            sb.update(|v| {
                let t = &mut v.members[m];
                if let Some(x) = lf {
                    t.lbfactor = x;
                }
                if let Some(x) = ls {
                    t.lbset = x;
                }
                if let Some(x) = wr.clone() {
                    t.route = x;
                }
                if let Some(x) = rr.clone() {
                    t.redirect = x;
                }
            });
            let nv = sb.view();
            let t = &nv.members[m];
            log.push(format!(
                "{} loadfactor {:.2} -> {:.2}, lbset {} -> {}, route {:?} -> {:?}, redirect {:?} -> {:?}",
                st.member.name, f64::from(old_lf) / 100.0, f64::from(t.lbfactor) / 100.0, old_ls, t.lbset, old_wr, t.route, old_rr, t.redirect
            ));
        }
    } else {
        let mut bp = crate::config::BalancerParams::default();
        if let Some(v) = get("b_lbm") {
            bp.apply("lbmethod", v).map_err(bad)?;
        }
        if let Some(v) = get("b_max") {
            bp.apply("maxattempts", v).map_err(bad)?;
        }
        let nofailover = match get("b_sforce") {
            Some("1") | Some("On") | Some("on") => Some(true),
            Some("0") | Some("Off") | Some("off") => Some(false),
            Some(v) => return Err(bad(format!("b_sforce={v}: 0 or 1"))),
            None => None,
        };
        if let Some(v) = get("b_ss").filter(|v| !v.is_empty()) {
            bp.apply("stickysession", v).map_err(bad)?;
        }
        let new_member = match get("b_nwrkr").filter(|v| !v.trim().is_empty()) {
            Some(url) if get("b_wyes") == Some("1") => {
                let loc = Loc {
                    file: Arc::from("balancer-manager"),
                    line: 0,
                };
                let mut member =
                    crate::config::member_from_url_resolved(url.trim(), &loc, &|_, _| {
                        new_member_addr
                    })
                    .map_err(|e| bad(e.msg))?;
                if member.scheme().is_tls() {
                    // Set up as the balancer's configured TLS members are.
                    let Some(settings) = &shared.cfg.balancers[bi].member_tls else {
                        return Err(bad(format!(
                            "{}: TLS to members needs SSLProxyEngine On for {full}",
                            member.name
                        )));
                    };
                    member.tls = Some(crate::config::member_tls(settings, &member).map_err(bad)?);
                }
                if view.members.iter().any(|m| {
                    m.state.member.name == member.name && m.state.member.path == member.path
                }) {
                    return Err(bad(format!("{} is already a member", member.name)));
                }
                Some(member)
            }
            _ => None,
        };
        let old = (view.lbmethod, view.maxattempts, view.nofailover);
        sb.update(|v| {
            if let Some(m) = bp.lbmethod {
                v.lbmethod = m;
            }
            if let Some(n) = bp.maxattempts {
                v.maxattempts = n as usize;
            }
            if let Some(n) = nofailover {
                v.nofailover = n;
            }
            if let (Some(c), Some(s)) = (&bp.sticky_cookie, v.sticky.as_mut()) {
                s.cookie = c.clone();
                s.param = bp.sticky_param.clone().unwrap_or_else(|| c.clone());
            }
            if let Some(member) = new_member.clone() {
                // A new member starts disabled (Apache), so it takes traffic only when the
                // operator enables it.
                let st = SharedMember::new(member, shared.table.cores);
                st.set_flag(flag::D, true);
                v.members.push(MemberView {
                    state: Arc::new(st),
                    lbfactor: DEFAULT_LBFACTOR,
                    lbset: 0,
                    route: None,
                    redirect: None,
                });
            }
        });
        let nv = sb.view();
        log.push(format!(
            "lbmethod {} -> {}, maxattempts {} -> {}, nofailover {} -> {}",
            lbmethod_name(old.0),
            lbmethod_name(nv.lbmethod),
            old.1,
            nv.maxattempts,
            old.2,
            nv.nofailover
        ));
        if let Some(m) = new_member {
            log.push(format!("added member {} (disabled)", m.name));
        }
    }
    for line in &log {
        info!(target: crate::observe::logging::NOTICE, "balancer-manager: {who} changed {full}: {line}");
    }
    if !log.is_empty() {
        let stamp = httpdate::fmt_http_date(std::time::SystemTime::now());
        let mut recent = shared
            .manager_changes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for line in &log {
            recent.push_back(format!("{stamp}: {who} changed {full}: {line}"));
        }
        while recent.len() > RECENT_CHANGES {
            recent.pop_front();
        }
    }
    Ok(log)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_hosts() {
        assert_eq!(
            parse_form(b"b=c&w=http%3A%2F%2F127.0.0.1%3A9001&w_wr=a+b&x"),
            vec![
                ("b".into(), "c".into()),
                ("w".into(), "http://127.0.0.1:9001".into()),
                ("w_wr".into(), "a b".into()),
                ("x".into(), "".into())
            ]
        );
        assert_eq!(parse_form(b"a=%zz%4"), vec![("a".into(), "%zz%4".into())]);
        assert!(same_host(
            Some("lb:8080"),
            Some("http://lb:8080/balancer-manager"),
            None
        ));
        assert!(same_host(Some("LB:8080"), None, Some("http://lb:8080")));
        assert!(!same_host(Some("lb:8080"), Some("http://evil/"), None));
        assert!(!same_host(Some("lb:8080"), None, None));
        // Origin is checked first when both are present.
        assert!(!same_host(
            Some("lb"),
            Some("http://lb/"),
            Some("http://evil")
        ));
    }
}
