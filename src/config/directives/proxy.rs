//! mod_proxy and mod_proxy_balancer: ProxyPass and its reverse mappings, balancers and members, health-check templates, ProxyStatus.

use super::super::*;

/// `ProxyRequests`.
pub(super) fn proxyrequests(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    let loc = &d.loc;
    if b.one_flag(d) == Some(true) {
        b.err(
                loc,
                "ProxyRequests On: ringproxy is never a forward proxy (an open proxy is a security risk); remove it or set Off",
            );
    }
}

/// `ProxyPass`, `ProxyPassMatch`.
pub(super) fn proxypass(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let vh = ctx.vhost();
    let name = d.name.to_ascii_lowercase();
    b.proxy_pass(d, vh, name == "proxypassmatch");
}

/// `ProxyPassReverse`.
pub(super) fn proxypassreverse(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let args = &d.args;
    let loc = &d.loc;
    let vh = ctx.vhost();
    let clean: Vec<&String> = args.iter().filter(|a| *a != "interpolate").collect();
    if clean.len() != args.len() {
        return b.err(loc, "ProxyPassReverse interpolate is not supported");
    }
    match clean.as_slice() {
        [path, url] => b.reverses.push(PendingReverse {
            vhost: vh,
            path: path.to_string(),
            url: url.to_string(),
            loc: loc.clone(),
        }),
        _ => b.err(loc, "ProxyPassReverse takes PATH URL"),
    }
}

/// `ProxyPassReverseCookieDomain`, `ProxyPassReverseCookiePath`.
pub(super) fn proxypassreversecookiedomain(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let args = &d.args;
    let loc = &d.loc;
    let vh = ctx.vhost();
    let name = d.name.to_ascii_lowercase();
    match args.as_slice() {
        [internal, public] => {
            let pair = (internal.clone(), public.clone());
            if name.ends_with("domain") {
                b.vhosts[vh].cookie_domains.push(pair);
            } else {
                b.vhosts[vh].cookie_paths.push(pair);
            }
        }
        _ => b.err(loc, format!("{} takes INTERNAL PUBLIC", d.name)),
    }
}

/// `ProxyPreserveHost`.
pub(super) fn proxypreservehost(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let vh = ctx.vhost();
    if let Some(v) = b.one_flag(d) {
        b.vhosts[vh].preserve_host = v;
        b.vhost_set[vh].preserve_host = true;
    }
}

/// `ProxyAddHeaders On|Off`.
pub(super) fn proxyaddheaders(b: &mut Builder, d: &Directive, ctx: Ctx) {
    if let Some(on) = b.one_flag(d) {
        b.vhosts[ctx.vhost()].add_headers = Some(on);
    }
}

/// `ProxyVia Off|On|Full|Block`.
pub(super) fn proxyvia(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let v = match d.args.as_slice() {
        [v] if v.eq_ignore_ascii_case("off") => Via::Off,
        [v] if v.eq_ignore_ascii_case("on") => Via::On,
        [v] if v.eq_ignore_ascii_case("full") => Via::Full,
        [v] if v.eq_ignore_ascii_case("block") => Via::Block,
        _ => return b.err(&d.loc, "ProxyVia takes Off, On, Full or Block"),
    };
    b.vhosts[ctx.vhost()].via = Some(v);
}

/// `ProxyErrorOverride On|Off [code…]` (codes 400–599, as Apache checks them).
pub(super) fn proxyerroroverride(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let Some((flag, codes)) = d.args.split_first() else {
        return b.err(
            &d.loc,
            "ProxyErrorOverride takes On or Off and optional status codes",
        );
    };
    let on = match params::parse_on_off(flag) {
        Ok(on) => on,
        Err(m) => return b.err(&d.loc, format!("ProxyErrorOverride: {m}")),
    };
    let mut list = Vec::new();
    for c in codes {
        match c.parse::<u16>() {
            Ok(n) if (400..=599).contains(&n) => list.push(n),
            _ => {
                return b.err(
                    &d.loc,
                    format!("ProxyErrorOverride: '{c}' is not a status code from 400 to 599"),
                )
            }
        }
    }
    b.vhosts[ctx.vhost()].error_override = Some(ErrorOverride { on, codes: list });
}

/// `ProxySourceAddress`: refused rather than ignored (connections would leave from another
/// address than the admin's firewall rules expect).
pub(super) fn proxysourceaddress(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    b.err(
        &d.loc,
        "ProxySourceAddress is not available in ringproxy yet: member connections leave from the address the kernel's routing picks",
    );
}

/// `ProxyTimeout`.
pub(super) fn proxytimeout(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let vh = ctx.vhost();
    if let Some(t) = b.one_duration(d) {
        b.vhosts[vh].proxy_timeout = Some(t);
    }
}

/// `ProxySet`.
pub(super) fn proxyset(b: &mut Builder, d: &Directive, ctx: Ctx) {
    b.proxy_set(d, ctx);
}

/// `ProxyStatus`.
pub(super) fn proxystatus(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    let args = &d.args;
    let loc = &d.loc;
    match args.as_slice() {
        [v] if v.eq_ignore_ascii_case("on") || v.eq_ignore_ascii_case("full") => {
            b.core.proxy_status = true
        }
        [v] if v.eq_ignore_ascii_case("off") => b.core.proxy_status = false,
        _ => b.err(loc, "ProxyStatus takes On, Off or Full"),
    };
}

/// `ProxyHCExpr`.
pub(super) fn proxyhcexpr(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    let args = &d.args;
    let loc = &d.loc;
    match args.split_first() {
        Some((name, rest)) if !rest.is_empty() => {
            match crate::health::expr::parse(&rest.join(" ")) {
                Ok(e) => {
                    b.hc_exprs.insert(name.clone(), e);
                }
                Err(m) => b.err(loc, format!("ProxyHCExpr {name}: {m}")),
            }
        }
        _ => b.err(loc, "ProxyHCExpr takes NAME {expression}"),
    };
}

/// `ProxyHCTemplate`.
pub(super) fn proxyhctemplate(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    let args = &d.args;
    let loc = &d.loc;
    match args.split_first() {
        Some((name, rest)) if !rest.is_empty() => {
            let mut scratch = MemberParams::default();
            let mut kvs = Vec::new();
            for a in rest {
                let Some((k, v)) = b.split_kv(loc, a) else {
                    continue;
                };
                match scratch.apply(&k, v) {
                    Ok(true) if k.starts_with("hc") => kvs.push((k, v.to_string())),
                    Ok(_) => {
                        let hint = did_you_mean(&k, params::MEMBER_KEYS);
                        b.err(
                            loc,
                            format!("ProxyHCTemplate takes hc* parameters, not '{k}'{hint}"),
                        );
                    }
                    Err(m) => b.err(loc, m),
                }
            }
            b.hc_templates.insert(name.clone(), kvs);
        }
        _ => b.err(loc, "ProxyHCTemplate takes NAME key=value ..."),
    };
}

/// `ProxyHCTPsize`.
pub(super) fn proxyhctpsize(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    let loc = &d.loc;
    if b.one_num(d, 0, 100_000).is_some() {
        b.warn(
            loc,
            "ProxyHCTPsize ignored: health checks run on one event loop, not a thread pool",
        );
    }
}

/// `BalancerMember`.
pub(super) fn balancermember(b: &mut Builder, d: &Directive, ctx: Ctx) {
    b.balancer_member(d, ctx);
}

/// `ProxyRequestBuffer`.
pub(super) fn proxyrequestbuffer(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let in_vhost = ctx.vhost() != 0;
    if let Some(n) = b.one_num(d, 0, 64 << 20) {
        b.core.request_buffer = n as usize;
        b.vhost_wide_note(d, in_vhost);
    }
}

/// `ProxyIOBufferSize`.
pub(super) fn proxyiobuffersize(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    if let Some(n) = b.one_num(d, 512, 16 << 20) {
        b.core.io_buffer_size = n as usize;
        use crate::upstream::ajp::codec::{DEFAULT_PACKET_SIZE, MAX_PACKET_SIZE};
        b.core.ajp_packet_size = (n as usize).clamp(DEFAULT_PACKET_SIZE, MAX_PACKET_SIZE);
    }
}

/// `ProxyPassInherit`.
pub(super) fn proxypassinherit(b: &mut Builder, d: &Directive, ctx: Ctx) {
    let vh = ctx.vhost();
    if let Some(v) = b.one_flag(d) {
        b.vhosts[vh].inherit_rules = v;
    }
}

/// `BalancerInherit`.
pub(super) fn balancerinherit(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    let loc = &d.loc;
    if b.one_flag(d) == Some(false) {
        b.warn(
                loc,
                "BalancerInherit Off: balancers are defined once for the whole server in ringproxy; every host can use every balancer",
            );
    }
}

/// `BalancerGrowth`.
pub(super) fn balancergrowth(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    let loc = &d.loc;
    if b.one_num(d, 0, 1000).is_some() {
        b.warn(
            loc,
            "BalancerGrowth ignored: balancer-manager can add members without a preallocated limit",
        );
    }
}

/// `BalancerPersist`.
pub(super) fn balancerpersist(b: &mut Builder, d: &Directive, _ctx: Ctx) {
    let loc = &d.loc;
    if b.one_flag(d) == Some(true) {
        b.warn(
                loc,
                "BalancerPersist On: balancer-manager changes last until the process stops; ringproxy does not keep them across restarts",
            );
    }
}

impl Builder<'_> {
    /// A ProxyPass or RewriteRule [P] target name: a defined balancer, or an implicit one
    /// for a worker URL.
    /// The balancer a rule of server `vhost` names (created for a plain URL).
    pub(in crate::config) fn resolve_target(
        &mut self,
        name: &str,
        loc: &Loc,
        vhost: usize,
    ) -> Option<usize> {
        let found = self.find_target(name, loc);
        if let Some(i) = found {
            self.defined_in.entry(i).or_insert(vhost);
        }
        found
    }

    fn find_target(&mut self, name: &str, loc: &Loc) -> Option<usize> {
        if is_balancer_url(name) {
            let found = self
                .balancers
                .iter()
                .position(|b| !b.implicit && b.name.eq_ignore_ascii_case(name));
            if found.is_none() {
                self.err(
                    loc,
                    format!(
                        "{name} is not defined (no <Proxy {name}> block or BalancerMember for it)"
                    ),
                );
            }
            found
        } else {
            self.implicit_balancer(name, loc)
        }
    }

    /// [`member_from_url`] with the loader's resolver.
    pub(in crate::config) fn member_from_url(
        &self,
        url: &str,
        loc: &Loc,
    ) -> Result<Member, ConfigError> {
        match self.opts.resolve {
            Some(resolve) => parse_member_url(url, loc, &resolve),
            None => member_from_url(url, loc),
        }
    }

    pub(in crate::config) fn proxy_pass(&mut self, d: &Directive, vh: usize, is_match: bool) {
        let loc = &d.loc;
        let [path, url, rest @ ..] = d.args.as_slice() else {
            return self.err(loc, format!("{} takes PATH URL [key=value ...]", d.name));
        };
        let matcher = if is_match {
            match path_regex(path) {
                Ok(r) => Matcher::Regex(r),
                Err(e) => return self.err(loc, format!("{}: bad regex: {e}", d.name)),
            }
        } else {
            Matcher::Prefix(path.clone())
        };
        if url == "!" {
            self.rules.push(PendingRule {
                vhost: vh,
                matcher,
                target: None,
                params: Vec::new(),
                noquery: false,
                nocanon: false,
                loc: loc.clone(),
            });
            return;
        }
        let mut params = Vec::new();
        let mut noquery = false;
        let mut nocanon = false;
        for a in rest {
            match a.to_ascii_lowercase().as_str() {
                "nocanon" => {
                    nocanon = true;
                    continue;
                }
                "noquery" => {
                    noquery = true;
                    continue;
                }
                "interpolate" => {
                    self.err(loc, "ProxyPass interpolate is not supported");
                    continue;
                }
                _ => {}
            }
            if let Some((k, v)) = self.split_kv(loc, a) {
                params.push((k, v.to_string()));
            }
        }
        let target = match proxy_target(url) {
            Ok(ProxyTarget::Balancer { name, template }) => {
                if name.contains('$') {
                    return self.err(loc, "a balancer name built from $N is not supported");
                }
                (Scheme::Balancer.url(name), template.to_string())
            }
            Ok(ProxyTarget::Member {
                scheme,
                authority,
                template,
            }) => {
                if authority.contains('$') {
                    return self.err(loc, "a backend host built from $N is not supported");
                }
                (scheme.url(authority), template.to_string())
            }
            Err(m) => return self.err(loc, format!("{}: {m}", d.name)),
        };
        self.rules.push(PendingRule {
            vhost: vh,
            matcher,
            target: Some(target),
            params,
            noquery,
            nocanon,
            loc: loc.clone(),
        });
    }

    pub(in crate::config) fn proxy_set(&mut self, d: &Directive, ctx: Ctx) {
        let loc = &d.loc;
        let (bidx, kvs) = match ctx {
            Ctx::Balancer(_, b) => (Some(b), &d.args[..]),
            _ => match d.args.split_first() {
                Some((url, rest)) if is_balancer_url(url) => match balancer_name(url) {
                    Some(n) => (Some(self.balancer_index(&n, loc)), rest),
                    None => return self.err(loc, format!("bad balancer URL '{url}'")),
                },
                _ => (None, &d.args[..]),
            },
        };
        let Some(bidx) = bidx else {
            return self.err(
                loc,
                "ProxySet outside <Proxy balancer://…> must name a balancer:// URL first",
            );
        };
        if kvs.is_empty() {
            return self.err(loc, "ProxySet needs key=value parameters");
        }
        for a in kvs {
            let Some((k, v)) = self.split_kv(loc, a) else {
                continue;
            };
            self.apply_balancer_param(bidx, &k, v, loc);
        }
    }

    pub(in crate::config) fn apply_balancer_param(
        &mut self,
        bidx: usize,
        k: &str,
        v: &str,
        loc: &Loc,
    ) {
        match self.balancers[bidx].params.apply(k, v) {
            Ok(true) => {}
            Ok(false) => {
                let mut all: Vec<&str> = params::BALANCER_KEYS.to_vec();
                all.extend_from_slice(params::MEMBER_KEYS);
                let hint = did_you_mean(k, &all);
                self.err(loc, format!("unknown balancer parameter '{k}'{hint}"));
            }
            Err(m) => self.err(loc, m),
        }
    }

    pub(in crate::config) fn balancer_member(&mut self, d: &Directive, ctx: Ctx) {
        let loc = &d.loc;
        let (bidx, rest) =
            match ctx {
                Ctx::Balancer(_, b) => (b, &d.args[..]),
                _ => match d.args.split_first() {
                    Some((url, rest)) if is_balancer_url(url) => match balancer_name(url) {
                        Some(n) => (self.balancer_index(&n, loc), rest),
                        None => return self.err(loc, format!("bad balancer URL '{url}'")),
                    },
                    _ => return self.err(
                        loc,
                        "BalancerMember outside <Proxy balancer://…> must name the balancer first",
                    ),
                },
            };
        self.defined_in.entry(bidx).or_insert(ctx.vhost());
        let Some((url, kvs)) = rest.split_first() else {
            return self.err(loc, "BalancerMember needs a URL");
        };
        let mut member = match self.member_from_url(url, loc) {
            Ok(m) => m,
            Err(e) => return self.errors.push(e),
        };
        for a in kvs {
            let Some((k, v)) = self.split_kv(loc, a) else {
                continue;
            };
            match member.params.apply(&k, v) {
                Ok(true) => {
                    if params::MEMBER_KEYS_IGNORED.contains(&k.as_str()) {
                        self.warn(
                            loc,
                            format!(
                                "member parameter {k} is accepted and has no effect in ringproxy"
                            ),
                        );
                    }
                }
                Ok(false) => {
                    let hint = did_you_mean(&k, params::MEMBER_KEYS);
                    self.err(loc, format!("unknown BalancerMember parameter '{k}'{hint}"));
                }
                Err(m) => self.err(loc, m),
            }
        }
        let b = &mut self.balancers[bidx];
        if b.members
            .iter()
            .any(|m| m.name == member.name && m.path == member.path)
        {
            let msg = format!("{} is already a member of {}", member.name, b.name);
            return self.err(loc, msg);
        }
        b.members.push(member);
    }

    /// Returns the index of the implicit one-member balancer for a worker URL.
    pub(in crate::config) fn implicit_balancer(
        &mut self,
        worker: &str,
        loc: &Loc,
    ) -> Option<usize> {
        if let Some(i) = self
            .balancers
            .iter()
            .position(|b| b.implicit && b.name.eq_ignore_ascii_case(worker))
        {
            return Some(i);
        }
        match self.member_from_url(worker, loc) {
            Ok(m) => {
                self.balancers.push(Balancer {
                    name: worker.to_string(),
                    implicit: true,
                    members: vec![m],
                    params: BalancerParams::default(),
                    loc: loc.clone(),
                    member_tls: None,
                });
                Some(self.balancers.len() - 1)
            }
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }
}
