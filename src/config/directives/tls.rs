//! mod_ssl: refused clearly until TLS is available, never served as plain HTTP.

use super::super::*;

/// `SSLEngine`, `SSLProxyEngine`.
pub(super) fn sslengine(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    let loc = &d.loc;
    let name = d.name.to_ascii_lowercase();
    if b.one_flag(d) == Some(true) {
        let what = if name == "sslengine" {
            "SSLEngine On: TLS termination is not available yet; ringproxy refuses this host rather than serve it as plain HTTP (terminate TLS in front of ringproxy, or remove the host)"
        } else {
            "SSLProxyEngine On: TLS to backends is not available yet; use http:// members"
        };
        b.err(loc, what);
    }
}
