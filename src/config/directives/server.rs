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
