//! balancer-manager: see and change balancers and members at run time, as Apache's
//! `balancer_handler` does, with its parameter names, and safer.
//!
//! Changes go through the shared table (flags are atomics; structure goes through a new
//! epoch-versioned view), so every worker uses them from its next request. A change needs
//! the balancer's nonce (anti-CSRF) and a Referer or Origin naming this host; every value is
//! validated before anything changes, every change is logged (who, what, old -> new), and
//! everything echoed in the page is HTML-escaped (Apache's past advisories: CVE-2007-6420,
//! CVE-2007-6421, CVE-2012-4558, CVE-2007-6422).

use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::{json, Value};
use tracing::info;

use super::escape;
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
pub fn page(shared: &Shared, path: &str) -> String {
    let mut o = String::from("<!DOCTYPE html>\n<html><head><title>Balancer Manager</title></head><body>\n<h1>Load Balancer Manager</h1>\n");
    for (i, sb) in shared.table.balancers.iter().enumerate() {
        if shared.cfg.balancers[i].implicit {
            continue;
        }
        let v = sb.view();
        let name = without_scheme(&v.name);
        let nonce = &shared.nonces[i];
        let _ = writeln!(
            o,
            "<h2>LoadBalancer Status for {}</h2>\n<form method=\"post\" action=\"{}\" id=\"b-{}\">\n<input type=\"hidden\" name=\"b\" value=\"{}\"><input type=\"hidden\" name=\"nonce\" value=\"{}\">\nLB method <input name=\"b_lbm\" value=\"{}\"> Failover attempts <input name=\"b_max\" value=\"{}\"> Disable failover <input name=\"b_sforce\" value=\"{}\"> Add member <input name=\"b_nwrkr\" value=\"\"><input type=\"hidden\" name=\"b_wyes\" value=\"1\"> <button type=\"submit\">Submit</button></form>",
            escape(&v.name), escape(path), escape(name), escape(name), escape(nonce),
            lbmethod_name(v.lbmethod), v.maxattempts, u8::from(v.nofailover)
        );
        o.push_str("<table border=\"1\"><tr><th>Worker URL</th><th>Route</th><th>RouteRedir</th><th>Factor</th><th>Set</th><th>Status</th><th>Elected</th><th>Busy</th><th>Errors</th><th>To</th><th>From</th><th>Edit</th></tr>\n");
        for m in &v.members {
            let st = &m.state;
            let url = &st.member.name;
            let id = format!("{}-{}", name, without_scheme(url));
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td><td class=\"status\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><form method=\"post\" action=\"{}\" id=\"w-{}\"><input type=\"hidden\" name=\"b\" value=\"{}\"><input type=\"hidden\" name=\"w\" value=\"{}\"><input type=\"hidden\" name=\"nonce\" value=\"{}\"><input name=\"w_lf\" value=\"{:.2}\" size=\"4\"><input name=\"w_ls\" value=\"{}\" size=\"2\"><input name=\"w_wr\" value=\"{}\" size=\"8\"><input name=\"w_rr\" value=\"{}\" size=\"8\">",
                escape(url),
                escape(m.route.as_deref().unwrap_or("")),
                escape(m.redirect.as_deref().unwrap_or("")),
                f64::from(m.lbfactor) / 100.0,
                m.lbset,
                escape(&flag::describe(st.status())),
                st.elected(),
                st.busy(),
                st.failures(),
                st.sent(),
                st.received(),
                escape(path),
                escape(&id),
                escape(name),
                escape(url),
                escape(nonce),
                f64::from(m.lbfactor) / 100.0,
                m.lbset,
                escape(m.route.as_deref().unwrap_or("")),
                escape(m.redirect.as_deref().unwrap_or("")),
            );
            for (c, f) in [
                ('I', flag::I),
                ('N', flag::N),
                ('D', flag::D),
                ('H', flag::H),
                ('R', flag::R),
                ('S', flag::S),
                ('C', flag::C),
            ] {
                let on = st.status() & f != 0;
                let _ = write!(
                    o,
                    "<label>{c}<input type=\"checkbox\" name=\"w_status_{c}\" value=\"1\"{}></label><input type=\"hidden\" name=\"w_status_{c}\" value=\"0\">",
                    if on { " checked" } else { "" }
                );
            }
            o.push_str("<button type=\"submit\">Submit</button></form></td></tr>\n");
        }
        o.push_str("</table>\n");
    }
    o.push_str("</body></html>\n");
    o
}

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
