//! Logs and headers: LogFormat, CustomLog, ExtendedStatus, and mod_headers' Header and RequestHeader.

use super::super::*;

/// `LogFormat`.
pub(super) fn logformat(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    let args = &d.args;
    let loc = &d.loc;
    match args.as_slice() {
        [fmt] | [fmt, _] => match crate::observe::accesslog::parse_format(fmt) {
            Ok(_) => {
                let nick = args.get(1).cloned().unwrap_or_else(|| "default".into());
                b.log_formats.insert(nick, fmt.clone());
            }
            Err(m) => b.err(loc, format!("LogFormat: {m}")),
        },
        _ => b.err(loc, "LogFormat takes a format and an optional nickname"),
    };
}

/// `CustomLog`.
pub(super) fn customlog(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let args = &d.args;
    let loc = &d.loc;
    let vh = ctx.vhost();
    match args.as_slice() {
        [path, fmt, rest @ ..] => {
            if path.starts_with('|') {
                return b.err(
                    loc,
                    "CustomLog to a pipe is not supported; give a file path",
                );
            }
            let cond = match rest {
                [] => None,
                [c] if c.starts_with("env=") => {
                    let v = &c[4..];
                    let (var, set) = match v.strip_prefix('!') {
                        Some(x) => (x, false),
                        None => (v, true),
                    };
                    if !crate::observe::accesslog::LOG_VARIABLES.contains(&var) {
                        // mod_setenvif's variables are never set here (its directives are
                        // accepted without effect), so the condition has a fixed answer.
                        b.warn(
                            loc,
                            format!(
                                "CustomLog {c}: ringproxy never sets {var} (it sets {}): this log gets {}",
                                crate::observe::accesslog::LOG_VARIABLES.join(", "),
                                if set { "no line" } else { "every request" }
                            ),
                        );
                    }
                    Some((var.to_string(), set))
                }
                _ => {
                    return b.err(
                        loc,
                        format!(
                            "CustomLog condition '{}' is not supported (env=VAR and env=!VAR are; expr= conditions are not available)",
                            rest.join(" ")
                        ),
                    )
                }
            };
            let text = b
                .log_formats
                .get(fmt)
                .cloned()
                .unwrap_or_else(|| fmt.clone());
            match crate::observe::accesslog::parse_format(&text) {
                Ok(format) => {
                    let path = b.rooted(path);
                    b.path_checks.push(("CustomLog", path.clone(), loc.clone()));
                    b.access_logs
                        .push(crate::observe::accesslog::LogTarget { path, format, cond });
                    let i = b.access_logs.len() - 1;
                    b.vhosts[vh].logs.push(i);
                }
                Err(m) => b.err(loc, format!("CustomLog: {m}")),
            }
        }
        _ => b.err(loc, "CustomLog takes a file and a format or nickname"),
    };
}

/// `ExtendedStatus`.
pub(super) fn extendedstatus(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    let loc = &d.loc;
    if b.one_flag(d) == Some(false) {
        b.warn(
                loc,
                "ExtendedStatus Off: ringproxy always keeps the extended counters (they are per core and cheap)",
            );
    }
}

/// `Header`, `RequestHeader`.
pub(super) fn header(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let args = &d.args;
    let loc = &d.loc;
    let vh = ctx.vhost();
    let name = d.name.to_ascii_lowercase();
    match crate::http::headers::parse(args, name == "header") {
        Ok(rule) => {
            if name == "header" {
                b.vhosts[vh].response_headers.push(rule);
            } else {
                b.vhosts[vh].request_headers.push(rule);
            }
        }
        Err(m) => b.err(loc, format!("{}: {m}", d.name)),
    }
}
