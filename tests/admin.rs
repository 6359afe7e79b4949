//! server-status, metrics and `<Location>` access rules, through real sockets.

mod common;

use std::collections::HashMap;

use common::*;
use common::{manager_post as post, manager_state as state, url_enc as enc};
use ringproxy::runtime::DriverChoice;

fn cfg(a: &Backend, b: &Backend, locations: &str) -> String {
    format!(
        "Listen 127.0.0.1:0\nServerName status.example\nProxyStatus On\n{locations}\n<Proxy balancer://c>\nBalancerMember http://127.0.0.1:{} route=n1\nBalancerMember http://127.0.0.1:{} route=n2\n</Proxy>\nProxyPass /server-status !\nProxyPass /metrics !\nProxyPass / balancer://c/\n",
        a.port(),
        b.port()
    )
}

const STATUS_AND_METRICS: &str = "<Location /server-status>\n  SetHandler server-status\n  Require local\n</Location>\n<Location /metrics>\n  SetHandler metrics\n  Require ip 127.0.0.1\n</Location>";

fn auto(p: &ringproxy::runtime::Server) -> HashMap<String, String> {
    let r = Client::connect(p.addrs[0]).get("/server-status?auto");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let text = r.text();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("status.example"));
    lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn server_status_auto_counts_requests_and_members() {
    let (a, b) = (named("a"), named("b"));
    let p = proxy_with(&cfg(&a, &b, STATUS_AND_METRICS), 2, DriverChoice::Auto);
    let mut c = Client::connect(p.addrs[0]);
    for _ in 0..20 {
        assert_eq!(c.get("/x").status, 200);
    }
    drop(c);
    // A request is counted just after its response went out: the last one may still be
    // on its way into the counters when the page is asked for.
    // (Read from the counters themselves: asking the page would count that request too.)
    wait_until("20 requests counted", || {
        ringproxy::admin::stats::totals(&p.shared().stats).requests >= 20
    });
    let s = auto(&p);
    assert_eq!(s["Total Accesses"], "20", "{s:?}");
    for key in [
        "ServerVersion",
        "Uptime",
        "ReqPerSec",
        "BytesPerSec",
        "BusyWorkers",
        "IdleWorkers",
        "ConnsTotal",
        "ConnsAsyncKeepAlive",
        "Total kBytes",
        "Scoreboard",
    ] {
        assert!(s.contains_key(key), "missing {key}");
    }
    assert_eq!(s["Scoreboard"].len(), 2, "one entry per worker");
    assert!(s.contains_key("Worker0Driver") && s.contains_key("Worker1Requests"));
    assert_eq!(s["ProxyBalancer[0]Name"], "balancer://c");
    let elected: u64 = (0..2)
        .map(|n| {
            s[&format!("ProxyBalancer[0]Worker[{n}]Elected")]
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(elected, 20);
    assert_eq!(s["ProxyBalancer[0]Worker[0]Status"], "Init Ok");
    // The HTML page lists the members too.
    let html = Client::connect(p.addrs[0]).get("/server-status").text();
    assert!(html.contains("<table") && html.contains("http://127.0.0.1:"));
}

#[test]
fn metrics_parse_and_counts_match() {
    let (a, b) = (named("a"), named("b"));
    let p = proxy_with(&cfg(&a, &b, STATUS_AND_METRICS), 1, DriverChoice::Auto);
    let mut c = Client::connect(p.addrs[0]);
    for _ in 0..12 {
        assert_eq!(c.get("/y").status, 200);
    }
    let r = c.get("/metrics");
    assert_eq!(r.status, 200);
    let text = r.text();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid exposition format");
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
                prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    assert_eq!(value("ringproxy_requests_total", &[("class", "2xx")]), 12.0);
    assert_eq!(value("ringproxy_member_requests_total", &[]), 12.0);
    assert_eq!(value("ringproxy_member_up", &[]), 2.0);
    assert_eq!(value("ringproxy_backend_pool_total", &[]), 12.0);
    let histogram = scrape
        .samples
        .iter()
        .find(|s| s.metric == "ringproxy_request_duration_seconds")
        .expect("latency histogram");
    match &histogram.value {
        prometheus_parse::Value::Histogram(buckets) => {
            let inf = buckets.iter().find(|b| b.less_than.is_infinite()).unwrap();
            assert_eq!(inf.count, 12.0);
        }
        other => panic!("not a histogram: {other:?}"),
    }
}

#[test]
fn location_access_rules_both_styles() {
    let (a, b) = (named("a"), named("b"));
    let cases: &[(&str, &str, u16)] = &[
        ("Require ip 10.0.0.0/8", "/server-status?auto", 403),
        ("Require local", "/server-status?auto", 200),
        ("Require all denied", "/server-status?auto", 403),
        (
            "Order deny,allow\nDeny from all\nAllow from 127.0.0.1",
            "/server-status?auto",
            200,
        ),
        (
            "Order deny,allow\nDeny from all\nAllow from 10.0.0.0/8",
            "/server-status?auto",
            403,
        ),
        (
            "Order allow,deny\nAllow from all\nDeny from 127.0.0.1",
            "/server-status?auto",
            403,
        ),
    ];
    for (rules, path, status) in cases {
        let loc =
            format!("<Location /server-status>\nSetHandler server-status\n{rules}\n</Location>");
        let p = proxy(&cfg(&a, &b, &loc));
        assert_eq!(
            Client::connect(p.addrs[0]).get(path).status,
            *status,
            "{rules}"
        );
    }
    // The same rules guard a proxied path.
    let loc = "<Location /private>\nRequire ip 10.0.0.0/8\n</Location>";
    let p = proxy(&cfg(&a, &b, loc));
    assert_eq!(Client::connect(p.addrs[0]).get("/private/x").status, 403);
    assert_eq!(Client::connect(p.addrs[0]).get("/public").status, 200);
    assert_eq!(
        a.request_count() + b.request_count(),
        1,
        "the denied request never left"
    );
}

#[test]
fn host_names_in_allow_from_load_and_malformed_words_are_errors_at_their_line() {
    let load = |text: &str| {
        ringproxy::config::load_str(text, "t.conf", &ringproxy::config::LoadOptions::default())
    };
    // Host names (as mod_access_compat takes them) and Require host load; they are tested
    // with traffic in tests/configs.rs.
    assert!(load("Listen 127.0.0.1:0\n<Location /server-status>\nSetHandler server-status\nOrder deny,allow\nDeny from all\nAllow from admin.example.com .ops.example.com\n</Location>\n").is_ok());
    assert!(load("Listen 127.0.0.1:0\n<Location /server-status>\nSetHandler server-status\nRequire host example.com\n</Location>\n").is_ok());
    let e = load("Listen 127.0.0.1:0\n<Location /server-status>\nSetHandler server-status\nOrder deny,allow\nDeny from all\nAllow from admin.example.com/24\n</Location>\n")
        .unwrap_err();
    assert!(e[0].to_string().starts_with("t.conf:6: "), "{e:?}");
}

#[test]
fn access_log_lines_match_apache_formats_and_reopen() {
    let (a, b) = (named("a"), named("b"));
    let dir = std::env::temp_dir().join(format!("ringproxy-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let combined = dir.join("access.log");
    let custom = dir.join("custom.log");
    let logs = format!(
        "LogFormat \"%h %>s %b %{{BALANCER_WORKER_NAME}}e %D %m %U%q\" short\nCustomLog {} combined\nCustomLog {} short",
        combined.display(),
        custom.display()
    );
    let p = proxy_with(&cfg(&a, &b, &logs), 1, DriverChoice::Auto);
    let mut c = Client::connect(p.addrs[0]);
    c.send(b"GET /page?x=1 HTTP/1.1\r\nHost: t\r\nUser-Agent: tester/1\r\nReferer: http://ref/\r\n\r\n");
    assert_eq!(c.read_response(false).unwrap().status, 200);
    assert_eq!(c.get("/missing-handler/../x").status, 200);
    // logrotate: move the file away, ask for a reopen (what SIGUSR1 does), log more.
    let rotated = dir.join("access.log.1");
    std::fs::rename(&combined, &rotated).unwrap();
    ringproxy::observe::accesslog::REOPEN_GENERATION
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // The worker reopens at its next tick (within 100 ms): the new file appears.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !combined.exists() {
        assert!(std::time::Instant::now() < deadline, "log not reopened");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    drop(c);
    let mut c = Client::connect(p.addrs[0]);
    assert_eq!(c.get("/after").status, 200);
    // A hostile User-Agent cannot close the quoted field and forge the rest of a line.
    c.send(b"GET /ua HTTP/1.1\r\nHost: t\r\nUser-Agent: evil\" 200 1 \"-\" \"x\xff\\\r\n\r\n");
    assert_eq!(c.read_response(false).unwrap().status, 200);
    drop(c);
    p.shutdown();
    p.join(); // workers flush their logs when they stop
    let old = std::fs::read_to_string(&rotated).unwrap();
    let first = old.lines().next().unwrap();
    // 127.0.0.1 - - [22/Nov/2026:01:23:45 +0000] "GET /page?x=1 HTTP/1.1" 200 1 "http://ref/" "tester/1"
    let re = regex::Regex::new(
        r#"^127\.0\.0\.1 - - \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] "GET /page\?x=1 HTTP/1\.1" 200 1 "http://ref/" "tester/1"$"#,
    )
    .unwrap();
    assert!(re.is_match(first), "{first}");
    assert_eq!(
        old.lines().count(),
        2,
        "both lines logged before the rotation: {old}"
    );
    let new = std::fs::read_to_string(&combined).unwrap();
    assert!(new.contains("\"GET /after HTTP/1.1\" 200 1"), "{new}");
    assert!(
        new.contains(r#""GET /ua HTTP/1.1" 200 1 "-" "evil\" 200 1 \"-\" \"x\xff\\""#),
        "{new}"
    );
    let short = std::fs::read_to_string(&custom).unwrap();
    let line = short.lines().next().unwrap();
    let re = regex::Regex::new(r"^127\.0\.0\.1 200 1 http://127\.0\.0\.1:\d+ \d+ GET /page\?x=1$")
        .unwrap();
    assert!(re.is_match(line), "{line}");
    assert_eq!(short.lines().count(), 4);
    std::fs::remove_dir_all(&dir).ok();
}

fn manager_cfg(a: &Backend, b: &Backend, rules: &str) -> String {
    cfg(
        a,
        b,
        &format!("<Location /balancer-manager>\nSetHandler balancer-manager\n{rules}\n</Location>\nProxyPass /balancer-manager !"),
    )
}

#[test]
fn balancer_manager_json_and_form_changes_reach_traffic() {
    let (a, b, n) = (named("a"), named("b"), named("new"));
    let p = proxy_with(&manager_cfg(&a, &b, "Require local"), 2, DriverChoice::Auto);
    let s = state(&p);
    let bal = &s["balancers"][0];
    assert_eq!(bal["name"], "balancer://c");
    let nonce = bal["nonce"].as_str().unwrap().to_string();
    let a_url = bal["members"][0]["name"].as_str().unwrap().to_string();
    let referer = "Referer: http://lb.test/balancer-manager\r\n";
    // Disable a and give it a new route and loadfactor.
    let form = format!(
        "b=c&w={}&nonce={nonce}&w_status_D=1&w_lf=3&w_wr=node9",
        enc(&a_url)
    );
    let r = post(&p, &form, referer);
    assert_eq!(r.status, 200, "{}", r.text());
    let s: serde_json::Value = serde_json::from_str(&r.text()).unwrap();
    let m = &s["balancers"][0]["members"][0];
    assert_eq!(
        (
            m["status"].as_str(),
            m["loadfactor"].as_f64(),
            m["route"].as_str()
        ),
        (Some("D"), Some(3.0), Some("node9"))
    );
    // Every worker honours it from the next request: nothing reaches a.
    let before = a.request_count();
    for _ in 0..20 {
        assert_eq!(Client::connect(p.addrs[0]).get("/x").text(), "b");
    }
    assert_eq!(a.request_count(), before);
    // Add a member (it starts disabled), then enable it.
    let new_url = format!("http://127.0.0.1:{}", n.port());
    let r = post(
        &p,
        &format!("b=c&nonce={nonce}&b_nwrkr={}&b_wyes=1", enc(&new_url)),
        referer,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let s = state(&p);
    assert_eq!(s["balancers"][0]["members"][2]["status"], "D");
    let r = post(
        &p,
        &format!("b=c&w={}&nonce={nonce}&w_status_D=0", enc(&new_url)),
        referer,
    );
    assert_eq!(r.status, 200);
    let v: Vec<String> = (0..20)
        .map(|_| Client::connect(p.addrs[0]).get("/x").text())
        .collect();
    assert!(v.iter().filter(|s| *s == "new").count() >= 5, "{v:?}");
    // The HTML page shows the members and forms with the nonce.
    let html = Client::connect(p.addrs[0]).get("/balancer-manager").text();
    assert!(html.contains(&new_url) && html.contains(&nonce) && html.contains("<form"));
    // A member named by host name is looked up (on the resolver pool) and added.
    // (`localhost` resolves from /etc/hosts: tests send nothing to a name server.)
    let by_name = format!("http://localhost:{}", n.port());
    let r = post(
        &p,
        &format!("b=c&nonce={nonce}&b_nwrkr={}&b_wyes=1", enc(&by_name)),
        referer,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        state(&p)["balancers"][0]["members"][3]["name"],
        by_name.as_str()
    );
}

#[test]
fn balancer_manager_refuses_csrf_foreign_hosts_bad_values_and_denied_clients() {
    let (a, b) = (named("a"), named("b"));
    let p = proxy(&manager_cfg(&a, &b, "Require local"));
    let nonce = state(&p)["balancers"][0]["nonce"]
        .as_str()
        .unwrap()
        .to_string();
    let w = enc(&format!("http://127.0.0.1:{}", a.port()));
    let ok_ref = "Referer: http://lb.test/balancer-manager\r\n";
    let cases: Vec<(String, &str, u16)> = vec![
        (format!("b=c&w={w}&w_status_D=1"), ok_ref, 403),
        (format!("b=c&w={w}&nonce=wrong&w_status_D=1"), ok_ref, 403),
        (format!("b=c&w={w}&nonce={nonce}&w_status_D=1"), "", 403),
        (
            format!("b=c&w={w}&nonce={nonce}&w_status_D=1"),
            "Referer: http://evil.example/\r\n",
            403,
        ),
        (
            format!("b=c&w={w}&nonce={nonce}&w_status_D=1"),
            "Origin: http://evil.example\r\n",
            403,
        ),
        (
            format!("b=c&w={w}&nonce={nonce}&w_wr=%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
            ok_ref,
            400,
        ),
        (format!("b=c&w={w}&nonce={nonce}&w_lf=500"), ok_ref, 400),
        (format!("b=nope&nonce={nonce}"), ok_ref, 400),
    ];
    for (form, headers, status) in cases {
        let r = post(&p, &form, headers);
        assert_eq!(r.status, status, "{form} {headers:?}: {}", r.text());
        assert!(!r.text().contains("<script>"), "echoed unescaped");
    }
    // Nothing changed.
    let m = &state(&p)["balancers"][0]["members"][0];
    assert_eq!(m["status"], "Ok");
    assert!(m["route"].as_str() != Some("<script>alert(1)</script>"));
    // Access rules guard the manager like any location.
    let p = proxy(&manager_cfg(&a, &b, "Require ip 10.0.0.0/8"));
    assert_eq!(
        Client::connect(p.addrs[0]).get("/balancer-manager").status,
        403
    );
}

#[test]
fn busy_poll_time_shows_in_status_and_metrics() {
    let (a, b) = (named("a"), named("b"));
    let off = proxy_with(&cfg(&a, &b, STATUS_AND_METRICS), 1, DriverChoice::Auto);
    let on = proxy_with(
        &cfg(&a, &b, &format!("BusyPolling 20ms\n{STATUS_AND_METRICS}")),
        1,
        DriverChoice::Auto,
    );
    let seconds = |p: &ringproxy::runtime::Server| -> f64 {
        auto(p)["Worker0BusyPollSeconds"].parse().unwrap()
    };
    // Status requests are requests too: asking starts the polling it reports.
    wait_until("busy-poll time shows in server-status", || {
        seconds(&on) > 0.0
    });
    let m = Client::connect(on.addrs[0]).get("/metrics").text();
    let total: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("ringproxy_busy_poll_seconds_total "))
        .expect("busy-poll counter in metrics")
        .parse()
        .unwrap();
    assert!(total > 0.0, "{total}");
    assert_eq!(seconds(&off), 0.0);
    for p in [off, on] {
        p.shutdown();
        p.join();
    }
}

/// mod_logio's and mod_log_config's counters and the response header token, through the
/// proxy: `%O` counts the head too, `%k` the requests before this one on the connection,
/// `%X` whether it stays open, `%{…}o` the member's header.
#[test]
fn logio_keepalive_and_response_header_tokens() {
    let (a, b) = (named("a"), named("b"));
    let dir = Dir::new("logio");
    let log = dir.0.join("io.log");
    let logs = format!(
        "LogFormat \"%U %I %O %S %X %k %{{Content-Length}}o %{{X-None}}o\" io\nCustomLog {} io",
        log.display()
    );
    let p = proxy_with(&cfg(&a, &b, &logs), 1, DriverChoice::Auto);
    let mut c = Client::connect(p.addrs[0]);
    let first = b"GET /one HTTP/1.1\r\nHost: t\r\n\r\n";
    c.send(first);
    let r1 = c.read_response(false).unwrap();
    c.send(b"GET /two HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let r2 = c.read_response(false).unwrap();
    drop(c);
    p.shutdown();
    p.join();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Vec<String>> = text
        .lines()
        .map(|l| l.split(' ').map(str::to_string).collect())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    let sent = |r: &Response| (r.head.len() + 2 + r.body.len()) as u64;
    let (one, two) = (&lines[0], &lines[1]);
    assert_eq!(one[0], "/one");
    assert_eq!(one[1], first.len().to_string());
    assert!(one[2].parse::<u64>().unwrap() >= sent(&r1) - 2, "{text}");
    assert_eq!(
        one[3].parse::<u64>().unwrap(),
        one[1].parse::<u64>().unwrap() + one[2].parse::<u64>().unwrap()
    );
    assert_eq!((one[4].as_str(), one[5].as_str()), ("+", "0"));
    assert_eq!(one[6], r1.body.len().to_string());
    assert_eq!(one[7], "-");
    assert_eq!(
        (two[0].as_str(), two[4].as_str(), two[5].as_str()),
        ("/two", "-", "1")
    );
    assert!(two[2].parse::<u64>().unwrap() >= sent(&r2) - 2);
}

/// `CustomLog … env=VAR` / `env=!VAR` on the variables ringproxy sets: a log of proxied
/// requests and a log of the rest.
#[test]
fn customlog_env_conditions_split_proxied_and_local_requests() {
    let (a, b) = (named("a"), named("b"));
    let dir = Dir::new("logenv");
    let (proxied, local) = (dir.0.join("proxied.log"), dir.0.join("local.log"));
    let logs = format!(
        "{STATUS_AND_METRICS}\nLogFormat \"%U\" path\nCustomLog {} path env=BALANCER_WORKER_NAME\nCustomLog {} path env=!BALANCER_WORKER_NAME",
        proxied.display(),
        local.display()
    );
    let p = proxy_with(&cfg(&a, &b, &logs), 1, DriverChoice::Auto);
    assert_eq!(Client::connect(p.addrs[0]).get("/page").status, 200);
    assert_eq!(
        Client::connect(p.addrs[0])
            .get("/server-status?auto")
            .status,
        200
    );
    p.shutdown();
    p.join();
    assert_eq!(std::fs::read_to_string(&proxied).unwrap(), "/page\n");
    assert_eq!(std::fs::read_to_string(&local).unwrap(), "/server-status\n");
}

/// contrib/grafana's dashboard asks only for metrics ringproxy exposes: every
/// `ringproxy_*` name in its queries is in a live exposition (histogram series by their
/// `_bucket`/`_sum`/`_count` names), and every label it groups by is on that metric.
#[test]
fn the_grafana_dashboard_queries_metrics_that_exist() {
    let (a, b) = (named("a"), named("b"));
    let p = proxy_with(&cfg(&a, &b, STATUS_AND_METRICS), 1, DriverChoice::Auto);
    assert_eq!(Client::connect(p.addrs[0]).get("/x").status, 200);
    let exposition = Client::connect(p.addrs[0]).get("/metrics").text();
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/contrib/grafana/ringproxy-dashboard.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let names = regex::Regex::new(r"ringproxy_[a-z_]+").unwrap();
    let grouped = regex::Regex::new(r"by \(([^)]*)\)").unwrap();
    let mut checked = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for m in names.find_iter(expr) {
                let name = m.as_str();
                let series: Vec<&str> = exposition
                    .lines()
                    .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
                    .collect();
                assert!(
                    !series.is_empty(),
                    "{name} (panel {}) is not exposed",
                    panel["title"]
                );
                for g in grouped.captures_iter(expr) {
                    for label in g[1].split(',').map(str::trim).filter(|l| *l != "le") {
                        assert!(
                            series.iter().any(|s| s.contains(&format!("{label}=\""))),
                            "{name} has no label {label} (panel {})",
                            panel["title"]
                        );
                    }
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 15, "only {checked} metric references checked");
}

/// The pages people read: balancer-manager with labelled fields, states in words, a
/// legend of the flags, and the change just made confirmed; server-status as a dashboard
/// (`?auto` unchanged for scripts).
#[test]
fn manager_and_status_pages_for_people() {
    let (a, b) = (named("a"), named("b"));
    let manager = "<Location /balancer-manager>\n  SetHandler balancer-manager\n  Require local\n</Location>\nProxyPass /balancer-manager !";
    let p = proxy_with(
        &cfg(&a, &b, &format!("{STATUS_AND_METRICS}\n{manager}")),
        1,
        DriverChoice::Auto,
    );
    let page = Client::connect(p.addrs[0]).get("/balancer-manager").text();
    for want in [
        "<legend>Balancer settings</legend>",
        "<label>Load-balancing method <input name=\"b_lbm\" value=\"byrequests\"",
        "<th>State</th>",
        ">Usable<",
        "Disabled: takes no requests",
        "Hot spare: replaces an unusable member",
        "In error: a request to it failed",
        "<th>Health check</th>",
        ">not checked<",
    ] {
        assert!(page.contains(want), "manager page lacks {want:?}");
    }
    let nonce = manager_state(&p)["balancers"][0]["nonce"]
        .as_str()
        .unwrap()
        .to_string();
    let member = format!("http://127.0.0.1:{}", a.port());
    let form = format!("b=c&w={}&nonce={nonce}&w_status_D=1", url_enc(&member));
    let r = manager_post(&p, &form, "Referer: http://lb.test/balancer-manager\r\n");
    assert_eq!(r.status, 200, "{}", r.text());
    let page = Client::connect(p.addrs[0]).get("/balancer-manager").text();
    assert!(page.contains("Recent changes"), "{page}");
    assert!(
        page.contains(&format!(
            "127.0.0.1 changed balancer://c: {member} flag D: false -&#62; true"
        )),
        "{page}"
    );
    assert!(page.contains(">Disabled<"));

    let status = Client::connect(p.addrs[0]).get("/server-status").text();
    for want in [
        "ringproxy status for status.example",
        "requests in progress",
        "request slots free (MaxRequestWorkers)",
        "<th>Worker (core)</th>",
        "Balancer balancer://c",
        &member,
    ] {
        assert!(status.contains(want), "status page lacks {want:?}");
    }
    let auto = Client::connect(p.addrs[0])
        .get("/server-status?auto")
        .text();
    assert!(auto.starts_with("status.example\n") && auto.contains("\nBusyWorkers: "));
}
