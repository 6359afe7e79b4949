//! Client connections: timeouts, keep-alive, request limits, MaxRequestWorkers, and ringproxy's own knobs for idle connections, splicing and busy polling.

use super::super::*;

/// `Timeout`.
pub(super) fn timeout(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let in_vhost = ctx.vhost() != 0;
    if let Some(t) = b.one_duration(d) {
        b.core.timeout = t;
        b.vhost_wide_note(d, in_vhost);
    }
}

/// `KeepAlive`.
pub(super) fn keepalive(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let in_vhost = ctx.vhost() != 0;
    if let Some(v) = b.one_flag(d) {
        b.core.keepalive = v;
        b.vhost_wide_note(d, in_vhost);
    }
}

/// `KeepAliveTimeout`.
pub(super) fn keepalivetimeout(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let in_vhost = ctx.vhost() != 0;
    if let Some(t) = b.one_duration(d) {
        b.core.keepalive_timeout = t;
        b.vhost_wide_note(d, in_vhost);
    }
}

/// `MaxKeepAliveRequests`.
pub(super) fn maxkeepaliverequests(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let in_vhost = ctx.vhost() != 0;
    if let Some(n) = b.one_num(d, 0, u32::MAX as u64) {
        b.core.max_keepalive_requests = n as u32;
        b.vhost_wide_note(d, in_vhost);
    }
}

/// `LimitRequestLine`.
pub(super) fn limitrequestline(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    if let Some(n) = b.one_num(d, 1, 1 << 20) {
        b.core.limit_request_line = n as usize;
    }
}

/// `LimitRequestFieldSize`.
pub(super) fn limitrequestfieldsize(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    if let Some(n) = b.one_num(d, 1, 1 << 20) {
        b.core.limit_request_fieldsize = n as usize;
    }
}

/// `LimitRequestFields`.
pub(super) fn limitrequestfields(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    if let Some(n) = b.one_num(d, 1, 10_000) {
        b.core.limit_request_fields = n as usize;
    }
}

/// `ListenBacklog`.
pub(super) fn listenbacklog(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    if let Some(n) = b.one_num(d, 1, i32::MAX as u64) {
        b.core.listen_backlog = n as i32;
    }
}

/// `MaxRequestWorkers`, `MaxClients`.
pub(super) fn max_request_workers(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    if let Some(n) = b.one_num(d, 1, 10_000_000) {
        b.core.max_request_workers = n as usize;
        b.max_request_workers_set = true;
    }
}

/// `AsyncRequestWorkerFactor`.
pub(super) fn async_request_worker_factor(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    if let Some(n) = b.one_num(d, 0, 1000) {
        b.core.async_request_worker_factor = n as u32;
    }
}

/// `IdleBuffers`.
pub(super) fn idlebuffers(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    let args = &d.args;
    let loc = &d.loc;
    match args.as_slice() {
        [v] if v.eq_ignore_ascii_case("release") => b.core.release_idle_buffers = true,
        [v] if v.eq_ignore_ascii_case("keep") => b.core.release_idle_buffers = false,
        _ => b.err(loc, "IdleBuffers takes Release or Keep"),
    };
}

/// `IdleParkAfter`.
pub(super) fn idleparkafter(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    match d.args.as_slice() {
        [v] if v.eq_ignore_ascii_case("off") => b.core.idle_park_after = None,
        _ => {
            if let Some(t) = b.one_duration(d) {
                b.core.idle_park_after = Some(t);
            }
        }
    };
}

/// `BusyPolling`.
pub(super) fn busypolling(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    match d.args.as_slice() {
        [v] if v.eq_ignore_ascii_case("off") => b.core.busy_polling = None,
        [v] if v.eq_ignore_ascii_case("on") => b.core.busy_polling = Some(Duration::MAX),
        // Microseconds too: a window just long enough to catch the backend's
        // answer costs a fraction of a core where a millisecond would cost all of
        // it (bench/RESULTS.md, busy polling).
        [v] => match params::parse_fine_duration(v) {
            Ok(t) => b.core.busy_polling = (!t.is_zero()).then_some(t),
            Err(m) => b.err(&d.loc, format!("{}: {m}", d.name)),
        },
        _ => b.err(&d.loc, format!("{} takes one argument", d.name)),
    };
}

/// `SpliceThreshold`.
pub(super) fn splicethreshold(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    if let Some(n) = b.one_num(d, 0, u64::MAX >> 1) {
        b.core.splice_threshold = n;
    }
}

/// `RequestReadTimeout`.
pub(super) fn requestreadtimeout(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let args = &d.args;
    let loc = &d.loc;
    let in_vhost = ctx.vhost() != 0;
    match crate::http::reqtimeout::parse(args, b.core.read_timeouts) {
        Ok(t) => b.core.read_timeouts = t,
        Err(m) => return b.err(loc, format!("RequestReadTimeout: {m}")),
    }
    b.vhost_wide_note(d, in_vhost);
}
