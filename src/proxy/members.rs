//! What the request offers for choosing a member (the sticky route, the hash key), and
//! putting a member in error.

use tracing::{error, warn};

use crate::balancer::{hash, sticky, BalancerView, MemberView};
use crate::config::url::without_scheme;
use crate::config::HashKey;
use crate::http::server::{ClientConn, RequestCtx};
use crate::runtime::CoreGen;

/// The sticky route in the request (URL parameter first, then cookie). The parameter is
/// looked for in the normalized path and the query, as Apache reads it from the URL it
/// routed.
pub(super) fn requested_route(
    view: &BalancerView,
    c: &ClientConn,
    r: &RequestCtx,
) -> Option<String> {
    let sticky = view.sticky.as_ref()?;
    let mut url = String::from_utf8_lossy(&r.npath).into_owned();
    if let (_, Some(q)) = r.head.target_parts(&c.buf) {
        url.push('?');
        url.push_str(&String::from_utf8_lossy(&c.buf[q]));
    }
    let cookies = r.head.header_texts(&c.buf, b"cookie");
    sticky::requested_route(sticky, &url, cookies).map(str::to_string)
}

/// The key `lbmethod=hash` hashes; the client address when the header or cookie is absent.
pub(super) fn hash_key(view: &BalancerView, c: &ClientConn, r: &RequestCtx) -> u64 {
    let value = match &view.hashkey {
        HashKey::ClientIp => None,
        HashKey::Header(name) => r.head.header_texts(&c.buf, name.as_bytes()).next(),
        HashKey::Cookie(name) => sticky::cookie_value(r.head.header_texts(&c.buf, b"cookie"), name),
    };
    hash::fnv1a(value.unwrap_or(r.client_text(c)).as_bytes())
}

/// Puts a member in error state for its `retry` (Apache logs AH00959 for connect failures).
pub(super) fn fail_member(w: &CoreGen, mv: &MemberView, e: &dyn std::fmt::Display, what: &str) {
    let member = &mv.state.member;
    let retry = member
        .params
        .retry
        .unwrap_or(crate::balancer::DEFAULT_RETRY);
    let host = without_scheme(&member.name);
    if w.shared.table.set_error(&mv.state, retry) {
        error!("AH00959: {what} for ({host}) for {}s: {e}", retry.as_secs());
    } else {
        warn!("{e} (member {host} has status I: not put in error state)");
    }
}
