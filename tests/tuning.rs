//! Every tuning profile loads through `Include`, every knob it sets takes effect in the
//! loaded configuration, and the proxy serves traffic with it.

mod common;

use std::path::PathBuf;

use common::*;
use ringproxy::config::{load_str, Config, LoadOptions};

const PROFILES: &[&str] = &[
    "apache-event-defaults.conf",
    "low-latency.conf",
    "high-throughput.conf",
    "many-idle-connections.conf",
    "memory-lean.conf",
];

fn profile_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tuning")
        .join(name)
}

/// The knobs a profile sets: (directive, value).
fn knobs(name: &str) -> Vec<(String, String)> {
    std::fs::read_to_string(profile_path(name))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once(char::is_whitespace).unwrap();
            (k.to_string(), v.trim().to_string())
        })
        .collect()
}

/// The effective value of a knob in a loaded config, as the profile would write it.
fn effective(cfg: &Config, directive: &str) -> String {
    let c = &cfg.core;
    let on_off = |b: bool| if b { "On" } else { "Off" }.to_string();
    match directive {
        "KeepAlive" => on_off(c.keepalive),
        "MaxKeepAliveRequests" => c.max_keepalive_requests.to_string(),
        "KeepAliveTimeout" => c.keepalive_timeout.as_secs().to_string(),
        "Timeout" => c.timeout.as_secs().to_string(),
        "ProxyTimeout" => cfg.vhosts[0]
            .proxy_timeout
            .map(|t| t.as_secs().to_string())
            .unwrap_or_default(),
        "ListenBacklog" => c.listen_backlog.to_string(),
        "MaxRequestWorkers" => c.max_request_workers.to_string(),
        "LimitRequestLine" => c.limit_request_line.to_string(),
        "LimitRequestFieldSize" => c.limit_request_fieldsize.to_string(),
        "LimitRequestFields" => c.limit_request_fields.to_string(),
        "ProxyIOBufferSize" => c.io_buffer_size.to_string(),
        "IdleBuffers" => if c.release_idle_buffers {
            "Release"
        } else {
            "Keep"
        }
        .to_string(),
        "CpuAffinity" => on_off(c.cpu_affinity),
        "WorkerThreads" => c.worker_threads.map(|n| n.to_string()).unwrap_or_default(),
        "SpliceThreshold" => c.splice_threshold.to_string(),
        "IdleParkAfter" => c
            .idle_park_after
            .map_or("Off".to_string(), |t| format!("{}ms", t.as_millis())),
        "BusyPolling" => match c.busy_polling {
            None => "Off".to_string(),
            Some(std::time::Duration::MAX) => "On".to_string(),
            Some(t) => format!("{}ms", t.as_millis()),
        },
        other => panic!("profile knob {other} is not covered by this test"),
    }
}

fn config_with(profile: &str, backend_port: u16) -> String {
    format!(
        "Listen 127.0.0.1:0\nInclude {}\n<Proxy balancer://c>\nBalancerMember http://127.0.0.1:{backend_port}\n</Proxy>\nProxyPass / balancer://c/\n",
        profile_path(profile).display()
    )
}

#[test]
fn every_profile_loads_and_every_knob_takes_effect() {
    for p in PROFILES {
        let text = config_with(p, 9);
        let cfg = load_str(&text, "t.conf", &LoadOptions::default())
            .unwrap_or_else(|e| panic!("{p}: {e:?}"));
        assert!(cfg.warnings.is_empty(), "{p}: {:?}", cfg.warnings);
        let set = knobs(p);
        assert!(set.len() >= 5, "{p} sets too few knobs");
        for (k, v) in set {
            assert_eq!(effective(&cfg, &k), v, "{p}: {k}");
        }
    }
}

#[test]
fn every_profile_serves_traffic_and_its_keepalive_limits_show() {
    let b = backend(|req| {
        if req.request_line().contains("/big") {
            Action::Stream(1 << 20)
        } else {
            ok("hello")
        }
    });
    for p in PROFILES {
        let max: u32 = knobs(p)
            .iter()
            .find(|(k, _)| k == "MaxKeepAliveRequests")
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(100);
        let server = proxy_with(
            &config_with(p, b.port()),
            1,
            ringproxy::runtime::DriverChoice::Auto,
        );
        let mut c = Client::connect(server.addrs[0]);
        let big = c.get("/big");
        assert_eq!(big.body_len, 1 << 20, "{p}");
        let rounds = if max == 0 { 150 } else { max - 1 };
        for i in 0..rounds {
            let r = c.get("/");
            assert_eq!(r.text(), "hello", "{p} request {i}");
            let last = max != 0 && i + 2 == max;
            assert_eq!(
                r.header("connection").as_deref() == Some("close"),
                last,
                "{p}: request {} of MaxKeepAliveRequests {max}",
                i + 2
            );
        }
        server.shutdown();
        server.join();
    }
}
