//! After every line is read: rules resolved to balancers, ProxyPassReverse expanded,
//! virtual hosts inheriting the main server's rules, health-check templates applied,
//! member names resolved, and the checks that need the whole file (a `SetHandler` page a
//! ProxyPass shadows, a balancer nothing routes to).

use super::*;

impl Builder<'_> {
    pub(super) fn finish(mut self) -> Result<Config, Vec<ConfigError>> {
        // `<Proxy *>` sections without access rules cost nothing per request.
        for v in &mut self.vhosts {
            v.proxy_access
                .retain(|p| p.access != crate::routing::access::Access::default());
        }
        let rules = std::mem::take(&mut self.rules);
        for r in rules {
            let target = match r.target {
                None => Target::Exclude,
                Some((name, template)) => {
                    let Some(idx) = self.resolve_target(&name, &r.loc, r.vhost) else {
                        continue;
                    };
                    for (k, v) in &r.params {
                        let b = &mut self.balancers[idx];
                        let res = if b.implicit {
                            // Worker parameters on a plain URL apply to its one member;
                            // balancer parameters (timeout, failonstatus…) to the balancer.
                            match b.members[0].params.apply(k, v) {
                                Ok(false) => b.params.apply(k, v),
                                other => other,
                            }
                        } else {
                            b.params.apply(k, v)
                        };
                        match res {
                            Ok(true) => {}
                            Ok(false) => {
                                // Suggest only words valid here; a member parameter on a
                                // balancer:// line is valid elsewhere, and saying where
                                // helps more than a near miss.
                                let implicit = self.balancers[idx].implicit;
                                let is_member_key = params::MEMBER_KEYS
                                    .iter()
                                    .any(|m| m.eq_ignore_ascii_case(k));
                                let msg = if !implicit && is_member_key {
                                    format!(
                                        "'{k}' is a BalancerMember parameter: on a ProxyPass line to {name} only balancer parameters apply; put it on the BalancerMember lines"
                                    )
                                } else {
                                    let mut valid: Vec<&str> = params::BALANCER_KEYS.to_vec();
                                    if implicit {
                                        valid.extend_from_slice(params::MEMBER_KEYS);
                                    }
                                    let hint = did_you_mean(k, &valid);
                                    format!("unknown ProxyPass parameter '{k}'{hint}")
                                };
                                self.err(&r.loc, msg);
                            }
                            Err(m) => self.err(&r.loc, m),
                        }
                    }
                    Target::Backend {
                        balancer: idx,
                        template,
                        noquery: r.noquery,
                        nocanon: r.nocanon,
                    }
                }
            };
            self.vhosts[r.vhost].rules.push(ProxyRule {
                matcher: r.matcher,
                target,
                loc: r.loc,
            });
        }
        for r in std::mem::take(&mut self.rewrites) {
            let mut rule = r.rule;
            if let Some((name, template)) = r.proxy {
                let Some(balancer) = self.resolve_target(&name, &rule.loc, r.vhost) else {
                    continue;
                };
                rule.action = RewriteAction::Proxy { balancer, template };
            }
            self.vhosts[r.vhost].rewrites.push(rule);
        }
        if !self.pending_conds.is_empty() {
            self.warnings
                .push("RewriteCond without a following RewriteRule has no effect".into());
        }
        for v in &mut self.vhosts {
            // Set again after the main server's sections are merged in (below) too.
            v.names_needed = needs_names(v);
        }
        let reverses = std::mem::take(&mut self.reverses);
        for rv in reverses {
            let lower = rv.url.to_ascii_lowercase();
            if is_balancer_url(&lower) {
                let Some(name) = balancer_name(&rv.url) else {
                    self.err(&rv.loc, format!("bad balancer URL '{}'", rv.url));
                    continue;
                };
                let full = Scheme::Balancer.url(&name);
                let suffix = &rv.url[full.len()..];
                let Some(b) = self
                    .balancers
                    .iter()
                    .find(|b| !b.implicit && b.name.eq_ignore_ascii_case(&full))
                else {
                    self.err(&rv.loc, format!("{full} is not defined"));
                    continue;
                };
                let urls: Vec<String> = b
                    .members
                    .iter()
                    .map(|m| format!("{}{}{}", m.name, m.path, suffix))
                    .collect();
                for url in urls {
                    self.vhosts[rv.vhost].reverse.push(ReverseRule {
                        path: rv.path.clone(),
                        url,
                    });
                }
            } else {
                self.vhosts[rv.vhost].reverse.push(ReverseRule {
                    path: rv.path,
                    url: rv.url,
                });
            }
        }
        // Health-check templates and expressions referenced by members.
        let templates = std::mem::take(&mut self.hc_templates);
        let mut problems = Vec::new();
        for b in &mut self.balancers {
            for m in &mut b.members {
                if let Some(t) = m.params.hc.template.clone() {
                    match templates.get(&t) {
                        Some(kvs) => {
                            // The member's own hc* parameters win over the template's.
                            let own = m.params.hc.clone();
                            for (k, v) in kvs {
                                let _ = m.params.apply(k, v);
                            }
                            let merged = m.params.hc.clone();
                            m.params.hc = crate::config::params::HealthCheckParams {
                                method: own.method.or(merged.method),
                                uri: own.uri.or(merged.uri),
                                interval: own.interval.or(merged.interval),
                                passes: own.passes.or(merged.passes),
                                fails: own.fails.or(merged.fails),
                                expr: own.expr.or(merged.expr),
                                template: own.template,
                            };
                        }
                        None => problems.push(ConfigError::new(
                            &m.loc,
                            format!("hctemplate={t}: no ProxyHCTemplate {t}"),
                        )),
                    }
                }
                if let Some(e) = &m.params.hc.expr {
                    if !self.hc_exprs.contains_key(e) {
                        problems.push(ConfigError::new(
                            &m.loc,
                            format!("hcexpr={e}: no ProxyHCExpr {e} is defined"),
                        ));
                    }
                }
            }
        }
        self.errors.extend(problems);
        for b in &self.balancers {
            if b.members.is_empty() {
                self.errors.push(ConfigError::new(
                    &b.loc,
                    format!("{} has no BalancerMember", b.name),
                ));
            }
        }
        // ProxyPassInherit On (Apache's default): vhosts also use the main server's rules,
        // after their own; ProxyPreserveHost/ProxyTimeout are inherited when not set.
        let main = self.vhosts[0].clone();
        for (i, v) in self.vhosts.iter_mut().enumerate().skip(1) {
            if v.inherit_rules {
                v.rules.extend(main.rules.iter().cloned());
            }
            v.reverse.extend(main.reverse.iter().cloned());
            v.cookie_domains.extend(main.cookie_domains.iter().cloned());
            v.cookie_paths.extend(main.cookie_paths.iter().cloned());
            // mod_alias: the host's redirects first, then the main server's.
            v.redirects.extend(main.redirects.iter().cloned());
            // Header rules of the main server apply first, then the host's own.
            let own = std::mem::take(&mut v.request_headers);
            v.request_headers = main.request_headers.iter().cloned().chain(own).collect();
            let own = std::mem::take(&mut v.response_headers);
            v.response_headers = main.response_headers.iter().cloned().chain(own).collect();
            // A host without its own CustomLog writes the main server's (Apache).
            if v.logs.is_empty() {
                v.logs = main.logs.clone();
            }
            // Main-server locations apply first; the vhost's own come later and win.
            let own = std::mem::take(&mut v.locations);
            v.locations = main.locations.iter().cloned().chain(own).collect();
            let own = std::mem::take(&mut v.proxy_access);
            v.proxy_access = main.proxy_access.iter().cloned().chain(own).collect();
            v.names_needed = needs_names(v);
            inherit_files(&mut v.files, &main.files);
            if v.add_headers.is_none() {
                v.add_headers = main.add_headers;
            }
            if v.via.is_none() {
                v.via = main.via;
            }
            if v.error_override.is_none() {
                v.error_override = main.error_override.clone();
            }
            // mod_remoteip merges per setting: the host's own, else the main server's.
            let rip = &mut v.remote_ip;
            if rip.header.is_none() {
                rip.header = main.remote_ip.header.clone();
            }
            if rip.proxies.is_empty() {
                rip.proxies = main.remote_ip.proxies.clone();
            }
            if rip.proxies_header.is_none() {
                rip.proxies_header = main.remote_ip.proxies_header.clone();
            }
            let set = self.vhost_set[i];
            if !set.preserve_host {
                v.preserve_host = main.preserve_host;
            }
            if !set.merge_slashes {
                v.paths.merge_slashes = main.paths.merge_slashes;
            }
            if !set.encoded_slashes {
                v.paths.encoded_slashes = main.paths.encoded_slashes;
            }
            if !set.servlet_dot_segments {
                v.paths.servlet_dot_segments = main.paths.servlet_dot_segments;
            }
            if !set.trace {
                v.trace = main.trace;
            }
            if v.proxy_timeout.is_none() {
                v.proxy_timeout = main.proxy_timeout;
            }
        }
        for v in &mut self.vhosts {
            v.files.sort_sections();
        }
        let mime = self.finish_mime();
        self.finish_mpm_limits();
        self.finish_identity_and_paths();
        if !self.unprovided.is_empty() {
            let names: Vec<&str> = self.unprovided.iter().map(|(n, _)| n.as_str()).collect();
            let loc = self.unprovided[0].1.clone();
            self.warn(
                &loc,
                format!(
                    "LoadModule: ringproxy has no equivalent of {} module(s), so they are not loaded and their <IfModule> sections are skipped: {}",
                    names.len(),
                    names.join(", ")
                ),
            );
        }
        self.check_member_protocols();
        self.finish_proxy_tls();
        self.finish_tls();
        self.warn_shadowed_handlers();
        if self.listens.is_empty() {
            self.errors.push(ConfigError::new(
                &Loc {
                    file: self.main_file.clone(),
                    line: 0,
                },
                "no Listen directive: nothing to serve",
            ));
        }
        // Apache looks the machine's name up only when the main server has no ServerName.
        let main_named = self.vhosts.first().is_some_and(|v| v.server_name.is_some());
        if self.errors.is_empty() {
            Ok(Config {
                listens: self.listens,
                vhosts: self.vhosts,
                balancers: self.balancers,
                core: self.core,
                hc_exprs: self.hc_exprs,
                access_logs: self.access_logs,
                warnings: self.warnings,
                mime,
                default_server_name: match (main_named, self.opts.resolve) {
                    (true, _) => String::new(),
                    // A loader with its own resolver looks nothing up on the system either.
                    (false, Some(_)) => "127.0.0.1".into(),
                    (false, None) => crate::runtime::dns::local_host_name(),
                },
            })
        } else {
            Err(in_line_order(self.errors))
        }
    }

    /// `User`/`Group` resolved now (an unknown name is an error at its line, at `-t` too),
    /// and the directories of the files the process writes checked: one that does not exist
    /// is an error (the start would fail on it); one the process cannot write is an error
    /// when it runs as itself, and a warning when it starts as root and runs as `User`
    /// (files are opened before the switch; SIGUSR1 reopens logs as `User`). Only with the
    /// system's resolver: a loader given its own (the fuzz targets) looks nothing up.
    fn finish_identity_and_paths(&mut self) {
        if self.opts.resolve.is_some() {
            return;
        }
        if let Some(user) = self.core.user.clone() {
            match super::identity::resolve(&user, self.core.group.as_deref()) {
                Ok(ids) => self.core.run_as = Some(ids),
                Err(m) => {
                    let loc = self.identity_locs.first().cloned().unwrap_or(Loc {
                        file: self.main_file.clone(),
                        line: 0,
                    });
                    self.errors.push(ConfigError::new(&loc, m));
                }
            }
        }
        // SAFETY: geteuid cannot fail.
        let switching = unsafe { libc::geteuid() } == 0 && self.core.run_as.is_some();
        for (what, path, loc) in std::mem::take(&mut self.path_checks) {
            let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
                continue;
            };
            if !dir.is_dir() {
                self.errors.push(ConfigError::new(
                    &loc,
                    format!(
                        "{what} {}: directory {} does not exist",
                        path.display(),
                        dir.display()
                    ),
                ));
                continue;
            }
            match (switching, self.core.run_as) {
                // Root opens the logs and writes the PidFile before switching; only a
                // reopen (SIGUSR1) runs as User.
                (true, Some((uid, gid))) => {
                    if what != "PidFile" && !super::identity::writable_by(dir, uid, gid) {
                        self.warn(
                            &loc,
                            format!(
                                "{what} {}: directory {} is not writable by User (uid {uid}): SIGUSR1 cannot reopen it there",
                                path.display(),
                                dir.display()
                            ),
                        );
                    }
                }
                _ => {
                    let ok =
                        super::identity::writable_now(dir) || super::identity::writable_now(&path);
                    if !ok {
                        self.errors.push(ConfigError::new(
                            &loc,
                            format!(
                                "{what} {}: directory {} is not writable by this process",
                                path.display(),
                                dir.display()
                            ),
                        ));
                    }
                }
            }
        }
    }

    /// Apache's event MPM: MaxRequestWorkers is at most ServerLimit × ThreadsPerChild
    /// (lowered with a warning, AH00179's meaning), and that product is its value when
    /// MaxRequestWorkers is not written. Defaults as Apache's: ServerLimit 16,
    /// ThreadsPerChild 25, used only when one of the two is written.
    fn finish_mpm_limits(&mut self) {
        let (limit, threads) = self.mpm_limits;
        if limit.is_none() && threads.is_none() {
            return;
        }
        let product = limit
            .unwrap_or(16)
            .saturating_mul(threads.unwrap_or(25))
            .max(1);
        if !self.max_request_workers_set {
            self.core.max_request_workers = product;
        } else if self.core.max_request_workers > product {
            let loc = Loc {
                file: self.main_file.clone(),
                line: 0,
            };
            self.warn(
                &loc,
                format!(
                    "MaxRequestWorkers {} is more than ServerLimit × ThreadsPerChild; lowered to {product}, as Apache does",
                    self.core.max_request_workers
                ),
            );
            self.core.max_request_workers = product;
        }
    }

    /// mod_mime's table: `TypesConfig` (default: the system's mime.types, else a built-in
    /// table), then every `AddType`/`RemoveType` in order.
    fn finish_mime(&mut self) -> crate::files::mime::Types {
        use crate::files::mime::{Types, SYSTEM_TYPES};
        let mut types = match self.types_config.clone() {
            Some((path, loc)) => match std::fs::read_to_string(&path) {
                Ok(text) => Types::parse(&text),
                Err(e) => {
                    self.errors.push(ConfigError::new(
                        &loc,
                        format!("TypesConfig: cannot read {}: {e}", path.display()),
                    ));
                    Types::default()
                }
            },
            None => std::fs::read_to_string(SYSTEM_TYPES)
                .map(|t| Types::parse(&t))
                .unwrap_or_else(|_| Types::built_in()),
        };
        for (remove, args) in &self.type_edits {
            match remove {
                true => types.remove(args.iter().map(String::as_str)),
                false => types.add(&args[0], args[1..].iter().map(String::as_str)),
            }
        }
        types
    }

    /// A `SetHandler` page whose path a ProxyPass also takes is proxied, as in Apache
    /// (mod_proxy's handler runs first there). That is rarely what the admin meant, so say
    /// which rule takes it and how to keep the page.
    pub(super) fn warn_shadowed_handlers(&mut self) {
        let mut found = Vec::new();
        for v in &self.vhosts {
            for l in &v.locations {
                let (Some(h), Some(at), None) = (l.handler, &l.handler_loc, &l.regex) else {
                    continue;
                };
                let covering = v.rules.iter().find(|r| match &r.matcher {
                    Matcher::Prefix(p) => {
                        crate::routing::normalize::prefix_match(l.path.as_bytes(), p.as_bytes())
                            .is_some()
                    }
                    Matcher::Regex(re) => re.is_match(l.path.as_bytes()),
                });
                if let Some(r) = covering.filter(|r| !matches!(r.target, Target::Exclude)) {
                    found.push((
                        at.clone(),
                        format!(
                            "<Location {p}> SetHandler {h}: ProxyPass at {rule} also takes {p}, so it is proxied (as in Apache); add 'ProxyPass {p} !' before that line to serve the page",
                            p = l.path,
                            h = h.name(),
                            rule = r.loc,
                        ),
                    ));
                }
            }
        }
        for (at, msg) in found {
            if !self.warnings.iter().any(|w| w.ends_with(&msg)) {
                self.warn(&at, msg);
            }
        }
    }
}

/// Errors in the order of their lines within each file (files in the order they were
/// first named): checks that need the whole file (certificates, references) run after
/// the walk, and their errors belong among the others.
fn in_line_order(mut errors: Vec<ConfigError>) -> Vec<ConfigError> {
    let mut files: Vec<Arc<str>> = Vec::new();
    for e in &errors {
        if !files.contains(&e.loc.file) {
            files.push(e.loc.file.clone());
        }
    }
    // Line 0 is about the whole file: after its lines.
    errors.sort_by_key(|e| {
        let line = if e.loc.line == 0 {
            usize::MAX
        } else {
            e.loc.line
        };
        (files.iter().position(|f| *f == e.loc.file), line)
    });
    errors
}

impl Builder<'_> {
    /// What only one member protocol can do, asked of another: an error at the member.
    fn check_member_protocols(&mut self) {
        let mut errors = Vec::new();
        for b in &self.balancers {
            for m in &b.members {
                let ajp = m.scheme() == super::url::Scheme::Ajp;
                match m.params.hc.method.as_deref() {
                    Some("CPING") if !ajp => errors.push((
                        m.loc.clone(),
                        format!("member '{}': hcmethod=CPING is AJP's; use TCP, OPTIONS, HEAD or GET", m.name),
                    )),
                    Some(h) if ajp && h != "CPING" && h != "TCP" => errors.push((
                        m.loc.clone(),
                        format!("member '{}': hcmethod={h} would send HTTP to an AJP port; use CPING or TCP", m.name),
                    )),
                    _ => {}
                }
                if ajp && m.params.upgrade.is_some() {
                    errors.push((
                        m.loc.clone(),
                        format!("member '{}': upgrade= cannot be honoured over AJP (an upgraded connection is not an AJP request)", m.name),
                    ));
                }
            }
        }
        for (loc, msg) in errors {
            self.err(&loc, msg);
        }
    }
}

/// A virtual host's files: its own DocumentRoot, else the main server's; its aliases before
/// the main server's (mod_alias); the main server's sections before its own (Apache merges
/// the two lists, and among sections of one depth the later wins).
fn inherit_files(v: &mut crate::files::FileSpace, main: &crate::files::FileSpace) {
    if v.document_root.is_none() {
        v.document_root = main.document_root.clone();
    }
    v.aliases.extend(main.aliases.iter().cloned());
    let own = std::mem::take(&mut v.sections);
    v.sections = main.sections.iter().cloned().chain(own).collect();
    let own = std::mem::take(&mut v.files);
    v.files = main.files.iter().cloned().chain(own).collect();
    if v.index.is_none() {
        v.index = main.index.clone();
    }
    if v.slash.is_none() {
        v.slash = main.slash;
    }
    v.handled_exts.extend(main.handled_exts.iter().cloned());
}
