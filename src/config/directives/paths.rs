//! How request paths are read before any rule sees them (MergeSlashes, AllowEncodedSlashes, ServletDotSegments) and TraceEnable.

use super::super::*;

/// `MergeSlashes`.
pub(super) fn mergeslashes(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let vh = ctx.vhost();
    if let Some(on) = b.one_flag(d) {
        b.vhosts[vh].paths.merge_slashes = on;
        b.vhost_set[vh].merge_slashes = true;
    }
}

/// `AllowEncodedSlashes`.
pub(super) fn allowencodedslashes(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let args = &d.args;
    let loc = &d.loc;
    let vh = ctx.vhost();
    use crate::routing::normalize::EncodedSlashes;
    let v = match args.as_slice() {
        [v] if v.eq_ignore_ascii_case("off") => EncodedSlashes::Off,
        [v] if v.eq_ignore_ascii_case("on") => EncodedSlashes::On,
        [v] if v.eq_ignore_ascii_case("nodecode") => EncodedSlashes::NoDecode,
        _ => return b.err(loc, "AllowEncodedSlashes takes On, Off or NoDecode"),
    };
    b.vhosts[vh].paths.encoded_slashes = v;
    b.vhost_set[vh].encoded_slashes = true;
}

/// `ServletDotSegments`.
pub(super) fn servletdotsegments(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let args = &d.args;
    let loc = &d.loc;
    let vh = ctx.vhost();
    let v = match args.as_slice() {
        [v] if v.eq_ignore_ascii_case("refuse") => false,
        [v] if v.eq_ignore_ascii_case("allow") => true,
        _ => return b.err(loc, "ServletDotSegments takes Refuse or Allow"),
    };
    b.vhosts[vh].paths.servlet_dot_segments = v;
    b.vhost_set[vh].servlet_dot_segments = true;
}

/// `TraceEnable`.
pub(super) fn traceenable(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let args = &d.args;
    let loc = &d.loc;
    let vh = ctx.vhost();
    let v = match args.as_slice() {
        [v] if v.eq_ignore_ascii_case("on") => TraceEnable::On,
        [v] if v.eq_ignore_ascii_case("off") => TraceEnable::Off,
        [v] if v.eq_ignore_ascii_case("extended") => TraceEnable::Extended,
        _ => return b.err(loc, "TraceEnable takes On, Off or Extended"),
    };
    b.vhosts[vh].trace = v;
    b.vhost_set[vh].trace = true;
}

/// mod_alias: `Redirect`, `RedirectMatch`, `RedirectPermanent`, `RedirectTemp` in a host.
pub(super) fn redirect(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let (status, pattern, target) =
        match crate::routing::redirect::parse_args(&d.name, &d.args, false) {
            Ok(v) => v,
            Err(m) => return b.err(&d.loc, m),
        };
    let pattern = pattern.unwrap_or_default();
    let matcher = if d.name.eq_ignore_ascii_case("RedirectMatch") {
        match path_regex(&pattern) {
            Ok(re) => Matcher::Regex(re),
            Err(e) => return b.err(&d.loc, format!("RedirectMatch {pattern}: {e}")),
        }
    } else {
        Matcher::Prefix(pattern)
    };
    b.vhosts[ctx.vhost()].redirects.push(RedirectRule {
        matcher,
        status,
        target,
    });
}
