//! mod_rewrite: RewriteEngine, RewriteCond, RewriteRule.

use super::super::*;

/// `RewriteEngine`.
pub(super) fn rewriteengine(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let vh = ctx.vhost();
    if let Some(on) = b.one_flag(d) {
        b.vhosts[vh].rewrite_engine = on;
    }
}

/// `RewriteCond`.
pub(super) fn rewritecond(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    b.rewrite_cond(d);
}

/// `RewriteRule`.
pub(super) fn rewriterule(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let vh = ctx.vhost();
    b.rewrite_rule(d, vh);
}

/// `RewriteOptions`, `RewriteBase`, `RewriteMap`.
pub(super) fn rewriteoptions(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    let loc = &d.loc;
    b.err(
        loc,
        format!(
            "{}: not supported (ringproxy's mod_rewrite subset is RewriteEngine, RewriteCond and RewriteRule with [P], [R], [F], [G])",
            d.name
        ),
    );
}

impl Builder<'_> {
    /// `RewriteCond TestString CondPattern [flags]`, kept for the next RewriteRule.
    pub(in crate::config) fn rewrite_cond(&mut self, d: &Directive) {
        let loc = &d.loc;
        let (test, pattern, flags) = match d.args.as_slice() {
            [t, p] => (t, p, None),
            [t, p, f] => (t, p, Some(f)),
            _ => return self.err(loc, "RewriteCond takes TestString CondPattern [flags]"),
        };
        // `get(..5)` rather than slicing: a name may hold any character, and byte 5 may
        // fall inside one (found by the rewrite fuzz target). Header names are tokens.
        let header = |v: &str, prefix: &str| -> Option<String> {
            let name = v
                .get(..prefix.len())
                .filter(|p| p.eq_ignore_ascii_case(prefix))
                .and_then(|_| v.get(prefix.len()..))?;
            params::is_token(name).then(|| name.to_ascii_lowercase())
        };
        let var = match test.strip_prefix("%{").and_then(|t| t.strip_suffix('}')) {
            Some(v) if header(v, "HTTP:").is_some() => {
                RewriteVar::Header(header(v, "HTTP:").unwrap_or_default())
            }
            Some(v) if v.eq_ignore_ascii_case("REQUEST_URI") => RewriteVar::RequestUri,
            Some(v) if v.eq_ignore_ascii_case("QUERY_STRING") => RewriteVar::QueryString,
            Some(v) if v.eq_ignore_ascii_case("REQUEST_METHOD") => RewriteVar::RequestMethod,
            Some(v) if v.eq_ignore_ascii_case("HTTPS") => RewriteVar::Https,
            Some(v) if header(v, "HTTP_").is_some() => {
                RewriteVar::Header(header(v, "HTTP_").unwrap_or_default().replace('_', "-"))
            }
            _ => {
                return self.err(
                    loc,
                    format!("RewriteCond {test}: supported test strings are %{{HTTP:Header}}, %{{HTTP_HOST}} (and other HTTP_*), %{{REQUEST_URI}}, %{{QUERY_STRING}}, %{{REQUEST_METHOD}}, %{{HTTPS}}"),
                )
            }
        };
        let (mut nc, mut or_next) = (false, false);
        if let Some(f) = flags {
            let Some(inner) = f.strip_prefix('[').and_then(|f| f.strip_suffix(']')) else {
                return self.err(
                    loc,
                    format!("RewriteCond flags '{f}' must be in [brackets]"),
                );
            };
            for flag in inner.split(',') {
                match flag.trim().to_ascii_lowercase().as_str() {
                    "nc" | "nocase" => nc = true,
                    "or" | "ornext" => or_next = true,
                    other => {
                        return self.err(
                            loc,
                            format!("RewriteCond flag '{other}' is not supported (NC and OR are)"),
                        )
                    }
                }
            }
        }
        let (negate, pat) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern.as_str()),
        };
        let pattern = if let Some(text) = pat.strip_prefix('=') {
            CondPattern::Equals(text.trim_matches('"').to_string(), nc)
        } else if pat.starts_with('-') || pat.starts_with('<') || pat.starts_with('>') {
            return self.err(
                loc,
                format!("RewriteCond {pat}: file tests and comparisons are not supported (regex and =text are)"),
            );
        } else {
            let src = if nc {
                format!("(?i){pat}")
            } else {
                pat.to_string()
            };
            match regex::Regex::new(&src) {
                Ok(r) => CondPattern::Regex(r),
                Err(e) => return self.err(loc, format!("RewriteCond: bad regex: {e}")),
            }
        };
        self.pending_conds.push(RewriteCond {
            test: var,
            pattern,
            negate,
            or_next,
        });
    }

    /// `RewriteRule Pattern Substitution [flags]` (server or virtual host context).
    pub(in crate::config) fn rewrite_rule(&mut self, d: &Directive, vh: usize) {
        let loc = &d.loc;
        let conds = std::mem::take(&mut self.pending_conds);
        let (pattern, subst, flags) = match d.args.as_slice() {
            [p, s] => (p, s, None),
            [p, s, f] => (p, s, Some(f)),
            _ => return self.err(loc, "RewriteRule takes Pattern Substitution [flags]"),
        };
        let (mut nc, mut proxy, mut redirect, mut forbidden, mut gone) =
            (false, false, None, false, false);
        let (mut qsa, mut qsd) = (false, false);
        if let Some(f) = flags {
            let Some(inner) = f.strip_prefix('[').and_then(|f| f.strip_suffix(']')) else {
                return self.err(
                    loc,
                    format!("RewriteRule flags '{f}' must be in [brackets]"),
                );
            };
            for flag in inner.split(',') {
                let flag = flag.trim();
                let lower = flag.to_ascii_lowercase();
                match lower.as_str() {
                    "nc" | "nocase" => nc = true,
                    "p" | "proxy" => proxy = true,
                    "f" | "forbidden" => forbidden = true,
                    "g" | "gone" => gone = true,
                    "qsa" | "qsappend" => qsa = true,
                    "qsd" | "qsdiscard" => qsd = true,
                    // Every supported action ends rule processing; ringproxy forwards paths
                    // as received, so there is no escaping to turn off.
                    "l" | "last" | "end" | "ne" | "noescape" => {}
                    "r" | "redirect" => redirect = Some(302),
                    _ if lower.starts_with("r=") || lower.starts_with("redirect=") => {
                        let v = lower.split_once('=').map(|x| x.1).unwrap_or("");
                        let code = match v {
                            "permanent" => Some(301),
                            "temp" => Some(302),
                            "seeother" => Some(303),
                            n => n.parse::<u16>().ok().filter(|c| (300..400).contains(c)),
                        };
                        match code {
                            Some(c) => redirect = Some(c),
                            None => return self.err(loc, format!("RewriteRule [{flag}]: bad redirect status")),
                        }
                    }
                    _ => {
                        return self.err(
                            loc,
                            format!("RewriteRule flag '{flag}' is not supported (P, R, F, G, L, NC, NE, QSA, QSD, END are)"),
                        )
                    }
                }
            }
        }
        let (negate, pat) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern.as_str()),
        };
        let src = if nc {
            format!("(?i){pat}")
        } else {
            pat.to_string()
        };
        let regex = match path_regex(&src) {
            Ok(r) => r,
            Err(e) => return self.err(loc, format!("RewriteRule: bad regex: {e}")),
        };
        if subst.contains("%{") {
            return self.err(
                loc,
                "RewriteRule: %{VAR} in the substitution is not supported ($N and %N are)",
            );
        }
        let mut pending_proxy = None;
        let action = if forbidden {
            RewriteAction::Forbidden
        } else if gone {
            RewriteAction::Gone
        } else if proxy {
            let target = match proxy_target(subst) {
                Ok(ProxyTarget::Balancer { name, template }) if !name.contains(['$', '%']) => {
                    (Scheme::Balancer.url(name), template.to_string())
                }
                Ok(ProxyTarget::Balancer { .. }) => {
                    return self.err(loc, format!("RewriteRule [P]: bad balancer URL '{subst}' (the name cannot come from $N)"))
                }
                Ok(ProxyTarget::Member { authority, .. }) if authority.contains(['$', '%']) => {
                    return self.err(
                        loc,
                        "RewriteRule [P]: a backend host built from $N or %N is not supported; name the host (or a balancer://) in the substitution",
                    );
                }
                Ok(ProxyTarget::Member {
                    scheme,
                    authority,
                    template,
                }) => (scheme.url(authority), template.to_string()),
                Err(m) => return self.err(loc, format!("RewriteRule [P] {subst}: {m}")),
            };
            pending_proxy = Some(target);
            RewriteAction::Proxy {
                balancer: usize::MAX,
                template: String::new(),
            }
        } else if let Some(status) = redirect {
            RewriteAction::Redirect {
                status,
                template: subst.clone(),
            }
        } else {
            return self.err(
                loc,
                format!(
                    "RewriteRule {pattern} {subst}: only [P], [R], [F] and [G] rules are supported; for a WebSocket backend write `ProxyPass /path ws://host/path` or add upgrade=websocket to the ProxyPass line"
                ),
            );
        };
        self.rewrites.push(PendingRewrite {
            vhost: vh,
            rule: RewriteRule {
                conds,
                pattern: regex,
                negate,
                action,
                qsa,
                qsd,
                loc: loc.clone(),
            },
            proxy: pending_proxy,
        });
    }
}
