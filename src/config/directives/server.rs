//! The server itself: where it listens, its names, the process (user, pid file, modules, threads), the error log.

use super::super::*;

/// `Listen`.
pub(super) fn listen(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let args = &d.args;
    let loc = &d.loc;
    let in_vhost = ctx.vhost() != 0;
    if in_vhost {
        return b.err(loc, "Listen is not allowed inside <VirtualHost>");
    }
    // `Listen 443 https`: the first host for the address must have SSLEngine On (checked
    // when all hosts are known), so the port is never served as plain HTTP by mistake.
    let https = match args.get(1).map(|p| p.to_ascii_lowercase()).as_deref() {
        None | Some("http") => false,
        Some("https") => true,
        Some(_) => {
            return b.err(
                loc,
                format!(
                    "Listen {} {}: unknown protocol '{}' (ringproxy serves http and https)",
                    args[0], args[1], args[1]
                ),
            )
        }
    };
    if args.len() > 2 {
        return b.err(loc, "Listen takes [ip:]port [protocol]");
    }
    match args.first().map(|a| parse_listen(a)) {
        Some(Ok(addrs)) => {
            if https {
                b.https_listens.push((addrs.clone(), loc.clone()));
            }
            for a in addrs {
                if !b.listens.contains(&a) {
                    b.listens.push(a);
                }
            }
        }
        Some(Err(m)) => b.err(loc, m),
        None => b.err(loc, "Listen needs an address or port"),
    }
}

/// `ServerName`.
pub(super) fn servername(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let args = &d.args;
    let loc = &d.loc;
    let vh = ctx.vhost();
    match args.first() {
        // `ServerName host:port` and `ServerName scheme://host:port` are accepted.
        Some(n) => {
            let n = n.split("://").last().unwrap_or(n);
            b.vhosts[vh].server_name = Some(n.to_string());
        }
        None => b.err(loc, "ServerName needs a name"),
    };
}

/// `ServerAlias`.
pub(super) fn serveralias(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let args = &d.args;
    let vh = ctx.vhost();
    b.vhosts[vh].aliases.extend(args.iter().cloned());
}

/// `WorkerThreads`.
pub(super) fn workerthreads(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    if let Some(n) = b.one_num(d, 1, 4096) {
        b.core.worker_threads = Some(n as usize);
    }
}

/// `CpuAffinity`.
pub(super) fn cpuaffinity(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    if let Some(v) = b.one_flag(d) {
        b.core.cpu_affinity = v;
    }
}

/// `GracefulShutdownTimeout`.
pub(super) fn gracefulshutdowntimeout(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    if let Some(t) = b.one_duration(d) {
        b.core.graceful_shutdown_timeout = t;
    }
}

/// `ErrorLog`.
pub(super) fn errorlog(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    let args = &d.args;
    let loc = &d.loc;
    match args.as_slice() {
        [p] if p.starts_with('|') || p.starts_with("syslog") => b.err(
            loc,
            "ErrorLog to a pipe or syslog is not supported; give a file path",
        ),
        [p] => {
            let path = b.rooted(p);
            b.path_checks.push(("ErrorLog", path.clone(), loc.clone()));
            b.core.error_log = Some(path);
        }
        _ => b.err(loc, "ErrorLog takes one path"),
    };
}

/// `LogLevel`.
pub(super) fn loglevel(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    b.log_level(d);
}

/// `User`, `Group`.
pub(super) fn user_group(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let args = &d.args;
    let loc = &d.loc;
    let in_vhost = ctx.vhost() != 0;
    let name = d.name.to_ascii_lowercase();
    match args.as_slice() {
        [_] if in_vhost => b.err(
            loc,
            format!("{} is not allowed inside <VirtualHost>", d.name),
        ),
        [v] => {
            if name == "user" {
                b.core.user = Some(v.clone());
            } else {
                b.core.group = Some(v.clone());
            }
            b.identity_locs.push(d.loc.clone());
        }
        _ => b.err(loc, format!("{} takes one name", d.name)),
    };
}

/// `PidFile`.
pub(super) fn pidfile(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    let args = &d.args;
    let loc = &d.loc;
    match args.as_slice() {
        [p] => {
            let path = b.rooted(p);
            b.path_checks.push(("PidFile", path.clone(), loc.clone()));
            b.core.pid_file = Some(path);
        }
        _ => b.err(loc, "PidFile takes one path"),
    };
}

/// `LoadModule`.
pub(super) fn loadmodule(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    let args = &d.args;
    let loc = &d.loc;
    match args.as_slice() {
        [module, _path] => {
            let short = module.trim_end_matches("_module");
            if !PROVIDED_MODULES.contains(&short) {
                // Said once for all of them at the end (a stock RHEL tree loads dozens).
                b.unprovided.push((short.to_string(), loc.clone()));
            }
        }
        _ => b.err(loc, "LoadModule takes a module name and a path"),
    };
}

/// mod_remoteip: `RemoteIPHeader`, `RemoteIPProxiesHeader`.
pub(super) fn remoteip_header(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let [name] = d.args.as_slice() else {
        return b.err(&d.loc, format!("{} takes one header name", d.name));
    };
    let cfg = &mut b.vhosts[ctx.vhost()].remote_ip;
    if d.name.eq_ignore_ascii_case("RemoteIPHeader") {
        cfg.header = Some(name.clone());
    } else {
        cfg.proxies_header = Some(name.clone());
    }
}

/// mod_remoteip: `RemoteIPInternalProxy`, `RemoteIPTrustedProxy` (addresses and networks)
/// and their `…List` forms (a file of them, `#` comments). Host names are refused: Apache
/// looks them up once at start, which ties trust to a resolver's answer at that moment.
pub(super) fn remoteip_proxy(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let lower = d.name.to_ascii_lowercase();
    let internal = lower.starts_with("remoteipinternal");
    let words: Vec<String> = if lower.ends_with("list") {
        let [file] = d.args.as_slice() else {
            return b.err(&d.loc, format!("{} takes one file", d.name));
        };
        let path = b.rooted(file);
        match std::fs::read_to_string(&path) {
            Ok(text) => text
                .lines()
                .map(|l| l.split('#').next().unwrap_or_default())
                .flat_map(str::split_whitespace)
                .map(str::to_string)
                .collect(),
            Err(e) => {
                return b.err(
                    &d.loc,
                    format!("{}: cannot read {}: {e}", d.name, path.display()),
                )
            }
        }
    } else {
        d.args.clone()
    };
    if words.is_empty() {
        return b.err(
            &d.loc,
            format!("{} needs at least one address or network", d.name),
        );
    }
    for w in &words {
        match crate::routing::access::Net::parse(w) {
            Ok(net) => b.vhosts[ctx.vhost()]
                .remote_ip
                .proxies
                .push((net, internal)),
            Err(_) => b.err(
                &d.loc,
                format!(
                    "{}: '{w}' is not an address or network (host names are not looked up)",
                    d.name
                ),
            ),
        }
    }
}

/// mod_remoteip's PROXY protocol directives: refused, never ignored, since a listener that
/// expects the PROXY header would read a load balancer's preamble as a request.
pub(super) fn remoteip_proxy_protocol(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    b.err(
        &d.loc,
        format!(
            "{}: the PROXY protocol is not available in ringproxy yet; use RemoteIPHeader with the load balancer's X-Forwarded-For",
            d.name
        ),
    );
}
