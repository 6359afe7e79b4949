//! `ringproxy -t -D DUMP_CONFIG`-style output: the configuration as ringproxy understood
//! it, and the one-line summary logged at start.

use super::*;

impl Config {
    /// Everything that was understood, as `-t -D DUMP_CONFIG` prints it: listeners, hosts
    /// with their rules and reverse maps, balancers with their effective settings, members.
    pub fn dump(&self) -> String {
        use std::fmt::Write as _;
        let mut o = String::new();
        let c = &self.core;
        let _ = writeln!(
            o,
            "Listen: {}",
            self.listens
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(
            o,
            "Core: Timeout {}s, KeepAlive {}, KeepAliveTimeout {}s, MaxKeepAliveRequests {}, MaxRequestWorkers {}, WorkerThreads {}, IdleBuffers {}, IdleParkAfter {}, ProxyIOBufferSize {}, SpliceThreshold {}, BusyPolling {}",
            c.timeout.as_secs(),
            if c.keepalive { "On" } else { "Off" },
            c.keepalive_timeout.as_secs(),
            c.max_keepalive_requests,
            c.max_request_workers,
            c.worker_threads.map_or("per core".to_string(), |n| n.to_string()),
            if c.release_idle_buffers { "Release" } else { "Keep" },
            c.idle_park_after
                .map_or("Off".to_string(), |t| format!("{}ms", t.as_millis())),
            c.io_buffer_size,
            c.splice_threshold,
            match c.busy_polling {
                None => "Off".to_string(),
                Some(Duration::MAX) => "On".to_string(),
                Some(t) if t.subsec_micros() % 1000 != 0 => format!("{}us", t.as_micros()),
                Some(t) => format!("{}ms", t.as_millis()),
            }
        );
        for (i, vh) in self.vhosts.iter().enumerate() {
            if i == 0 {
                let _ = writeln!(
                    o,
                    "Main server: {}",
                    vh.server_name.as_deref().unwrap_or("(no ServerName)")
                );
            } else {
                let addrs: Vec<String> = vh
                    .addrs
                    .iter()
                    .map(|a| {
                        format!(
                            "{}:{}",
                            a.ip.map_or("*".to_string(), |ip| ip.to_string()),
                            a.port.map_or("*".to_string(), |p| p.to_string())
                        )
                    })
                    .collect();
                let _ = writeln!(
                    o,
                    "VirtualHost {} ({}){}",
                    addrs.join(" "),
                    vh.server_name.as_deref().unwrap_or("no ServerName"),
                    if vh.aliases.is_empty() {
                        String::new()
                    } else {
                        format!(", aliases {}", vh.aliases.join(" "))
                    }
                );
            }
            if vh.preserve_host {
                let _ = writeln!(o, "  ProxyPreserveHost On");
            }
            let p = &vh.paths;
            let _ = writeln!(
                o,
                "  paths: MergeSlashes {}, AllowEncodedSlashes {:?}, ServletDotSegments {}; TraceEnable {:?}",
                if p.merge_slashes { "On" } else { "Off" },
                p.encoded_slashes,
                if p.servlet_dot_segments { "Allow" } else { "Refuse" },
                vh.trace
            );
            for r in &vh.rules {
                let m = match &r.matcher {
                    Matcher::Prefix(p) => format!("ProxyPass {p}"),
                    Matcher::Regex(re) => format!("ProxyPassMatch {}", re.as_str()),
                };
                let t = match &r.target {
                    Target::Exclude => "! (not proxied)".to_string(),
                    Target::Backend {
                        balancer,
                        template,
                        noquery,
                        nocanon,
                    } => format!(
                        "{}{template}{}{}",
                        self.balancers[*balancer].name,
                        if *noquery { " noquery" } else { "" },
                        if *nocanon { " nocanon" } else { "" }
                    ),
                };
                let _ = writeln!(o, "  {m} -> {t}   ({})", r.loc);
            }
            for rv in &vh.reverse {
                let _ = writeln!(o, "  ProxyPassReverse {} <- {}", rv.path, rv.url);
            }
            for (a, b) in &vh.cookie_domains {
                let _ = writeln!(o, "  ProxyPassReverseCookieDomain {a} -> {b}");
            }
            for (a, b) in &vh.cookie_paths {
                let _ = writeln!(o, "  ProxyPassReverseCookiePath {a} -> {b}");
            }
            for l in &vh.locations {
                let _ = writeln!(
                    o,
                    "  <Location {}> handler {:?}, access rules: {}",
                    l.path,
                    l.handler,
                    if l.access.is_some() { "yes" } else { "none" }
                );
            }
        }
        for b in &self.balancers {
            let p = &b.params;
            let _ = writeln!(
                o,
                "{}{}: lbmethod {:?}, maxattempts {}, nofailover {}, stickysession {}, forcerecovery {}, failonstatus {:?}",
                b.name,
                if b.implicit { " (single worker)" } else { "" },
                p.lbmethod.unwrap_or_default(),
                p.maxattempts.map_or(format!("{} (members - 1)", b.members.len().saturating_sub(1)), |n| n.to_string()),
                p.nofailover.unwrap_or(false),
                match (&p.sticky_cookie, &p.sticky_param) {
                    (Some(c), Some(q)) if c != q => format!("{c}|{q}"),
                    (Some(c), _) => c.clone(),
                    _ => "none".into(),
                },
                p.forcerecovery.unwrap_or(true),
                p.failonstatus.clone().unwrap_or_default()
            );
            for m in &b.members {
                let mp = &m.params;
                let _ = writeln!(
                    o,
                    "  member {}{} = {} loadfactor {:.2} lbset {} route {} redirect {} status {} retry {}s{}   ({})",
                    m.name,
                    m.path,
                    m.addr,
                    f64::from(mp.lbfactor.unwrap_or(100)) / 100.0,
                    mp.lbset.unwrap_or(0),
                    mp.route.as_deref().unwrap_or("-"),
                    mp.redirect.as_deref().unwrap_or("-"),
                    if mp.status.is_empty() {
                        "-".to_string()
                    } else {
                        mp.status.iter().map(|(c, on)| format!("{}{c}", if *on { '+' } else { '-' })).collect()
                    },
                    mp.retry.map_or(60, |r| r.as_secs()),
                    mp.hc.method.as_ref().map_or(String::new(), |h| format!(
                        " hc {h} {} every {}ms",
                        mp.hc.uri.as_deref().unwrap_or("/"),
                        mp.hc.interval.map_or(30_000, |i| i.as_millis())
                    )),
                    m.loc
                );
            }
        }
        o
    }

    /// Human-readable summary of what was understood (for `-t` and logs).
    pub fn summary(&self) -> String {
        let members: usize = self.balancers.iter().map(|b| b.members.len()).sum();
        let rules: usize = self.vhosts.iter().map(|v| v.rules.len()).sum();
        format!(
            "{} listener(s), {} virtual host(s), {} balancer(s) with {} member(s), {} proxy rule(s)",
            self.listens.len(),
            self.vhosts.len() - 1,
            self.balancers.iter().filter(|b| !b.implicit).count(),
            members,
            rules
        )
    }
}
