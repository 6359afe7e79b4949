//! ringload against in-test servers on 127.0.0.1 with known behaviour.

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use loadgen::engine::{self, LoadSpec, RunResult};
use loadgen::search::{self, SearchSpec};
use loadgen::target::{RequestSpec, Target};
use ringproxy::runtime::DriverChoice;

mod common;

use common::server;

const BIN: &str = env!("CARGO_BIN_EXE_ringload");

fn spec(addr: SocketAddr, connections: usize, secs: f64, rate: Option<f64>) -> LoadSpec {
    LoadSpec {
        targets: vec![Target::new(&format!("http://{addr}/"), &RequestSpec::default()).unwrap()],
        connections,
        max_connections: connections,
        threads: 1,
        duration: Duration::from_secs_f64(secs),
        requests: None,
        rate,
        pipeline: 1,
        warmup: Duration::ZERO,
        timeout: Duration::from_secs(5),
        driver: DriverChoice::Auto,
        pin: false,
        cpus: Vec::new(),
        progress: false,
    }
}

fn p(r: &RunResult, pct: f64) -> f64 {
    r.corrected.value_at_percentile(pct) as f64
}

#[test]
fn measured_p50_matches_a_known_delay() {
    let addr = server(|_| Duration::from_millis(20));
    let r = engine::run(&spec(addr, 4, 2.0, None)).unwrap();
    assert!(r.requests > 200, "{}", r.requests);
    let p50 = p(&r, 50.0);
    assert!(
        (p50 - 20_000.0).abs() <= 2_000.0,
        "p50 {p50} us is not within 10 % of 20 ms"
    );
    assert_eq!(r.errors.total(), 0);
    assert_eq!(r.status[2], r.requests);
}

#[test]
fn one_stall_shows_in_corrected_latency_only() {
    // 100 requests a second on one connection; request 100 (about 1 s in) stalls 500 ms.
    let addr = server(|n| {
        if n == 100 {
            Duration::from_millis(500)
        } else {
            Duration::from_millis(1)
        }
    });
    let r = engine::run(&spec(addr, 1, 4.0, Some(100.0))).unwrap();
    let (c99, u99) = (
        r.corrected.value_at_percentile(99.0) as f64,
        r.uncorrected.value_at_percentile(99.0) as f64,
    );
    // ~50 requests were due during the stall: corrected latency shows them waiting.
    assert!(
        c99 > 300_000.0,
        "corrected p99 {c99} us should show the stall"
    );
    // Only one request was actually slow once sent.
    assert!(u99 < 50_000.0, "uncorrected p99 {u99} us should not");
    assert!(r.uncorrected.max() >= 500_000);
    assert!(r.late >= 30, "late sends {}", r.late);
}

#[test]
fn capacity_search_finds_a_known_capacity() {
    // Requests are served one at a time, 1 ms each: about 1000 per second at most.
    let lock = Arc::new(Mutex::new(()));
    let addr = server(move |_| {
        let _g = lock.lock().unwrap();
        std::thread::sleep(Duration::from_millis(1));
        Duration::ZERO
    });
    let base = spec(addr, 32, 1.0, None);
    let conds = search::parse_slo("p99<50ms").unwrap();
    let s = SearchSpec {
        start_rate: 250.0,
        min_rate: 10.0,
        max_rate: 100_000.0,
        factor: 2.0,
        precision: 0.05,
        max_steps: 10,
        step_duration: Duration::from_millis(1500),
        step_warmup: Duration::from_millis(300),
    };
    let out = search::search(&base, &conds, &s, |_, _, _| {}).unwrap();
    let best = out.best.expect("some rate holds");
    assert!(
        (800.0..=1200.0).contains(&best),
        "found {best} req/s; capacity is about 1000 (steps: {:?})",
        out.steps
            .iter()
            .map(|(r, res)| (*r, res.rps()))
            .collect::<Vec<_>>()
    );
}

#[test]
fn max_connections_grows_the_pool_when_sends_would_be_late() {
    // 20 ms per request at 200 req/s needs about 4 connections in flight; start with 1.
    let addr = server(|_| Duration::from_millis(20));
    let mut s = spec(addr, 1, 2.0, Some(200.0));
    s.max_connections = 16;
    let r = engine::run(&s).unwrap();
    assert!(
        r.connections_opened >= 4 && r.connections_opened <= 16,
        "opened {}",
        r.connections_opened
    );
    assert!(r.rps() > 180.0, "achieved {}", r.rps());
    // Without growth the same run falls behind and says so.
    let fixed = engine::run(&spec(addr, 1, 2.0, Some(200.0))).unwrap();
    assert_eq!(fixed.connections_opened, 1);
    assert!(fixed.late > 50, "late sends {}", fixed.late);
    // It ended on time and said how many requests it could not send.
    assert!(fixed.unsent > 200, "unsent {}", fixed.unsent);
    assert!(fixed.requests + fixed.unsent >= 390);
}

#[test]
fn open_loop_requests_arrive_spread_out_not_in_timer_ticks() {
    // 4,000 req/s is one request every 250 µs. Slept to on a millisecond timer, they would
    // arrive four at a time, once a millisecond, and most gaps between arrivals would be a
    // few microseconds.
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let seen = arrivals.clone();
    let addr = server(move |_| {
        seen.lock().unwrap().push(std::time::Instant::now());
        Duration::ZERO
    });
    let r = engine::run(&spec(addr, 8, 1.0, Some(4000.0))).unwrap();
    assert!(r.requests > 3000, "{}", r.requests);
    let mut at = arrivals.lock().unwrap().clone();
    at.sort();
    let mut gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort();
    // The median is robust to the odd stall of a busy test machine, which bunches a few.
    let median = gaps[gaps.len() / 2];
    assert!(
        median >= Duration::from_micros(100),
        "median gap between arrivals {median:?}, want about 250 µs"
    );
}

#[test]
fn request_count_bounds_a_closed_loop_run() {
    let addr = server(|_| Duration::ZERO);
    let mut s = spec(addr, 4, 0.0, None);
    s.requests = Some(500);
    s.duration = Duration::ZERO;
    let r = engine::run(&s).unwrap();
    assert_eq!(r.requests, 500);
}

fn ringload(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json_of(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn json_output_and_merge_of_interval_logs() {
    let addr = server(|_| Duration::from_micros(200));
    let dir = std::env::temp_dir().join(format!("ringload-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("http://{addr}/");
    let mut runs = Vec::new();
    for name in ["a", "b"] {
        let hlog = dir.join(format!("{name}.hlog"));
        let (code, out, err) = ringload(&[
            "--rate",
            "300",
            "-c",
            "4",
            "-d",
            "2s",
            "-t",
            "1",
            "--json",
            "--hlog",
            hlog.to_str().unwrap(),
            &url,
        ]);
        assert_eq!(code, 0, "{err}");
        let j = json_of(&out);
        for key in [
            "requests",
            "duration_s",
            "rps",
            "errors",
            "status",
            "latency_us",
            "uncorrected_latency_us",
        ] {
            assert!(j.get(key).is_some(), "missing {key} in {j}");
        }
        for key in ["p50", "p90", "p99", "p999", "max"] {
            assert!(j["latency_us"][key].is_number(), "missing latency_us.{key}");
        }
        // What an archived run needs to be compared: targets, start, version, parameters,
        // the machine's cores.
        let meta = &j["meta"];
        assert_eq!(meta["targets"][0], url.as_str());
        assert_eq!(meta["ringload_version"], env!("CARGO_PKG_VERSION"));
        assert!(meta["started_unix_s"].as_u64().unwrap() > 1_700_000_000);
        assert!(meta["started_at"].as_str().unwrap().ends_with("GMT"));
        assert!(meta["machine"]["cores"].as_u64().unwrap() >= 1);
        assert_eq!(meta["params"]["rate"], 300.0);
        assert_eq!(meta["params"]["connections"], 4);
        assert_eq!(meta["params"]["duration_s"], 2.0);
        runs.push((hlog, j));
    }
    // One log alone gives back exactly that run's histogram.
    let (code, out, err) = ringload(&["merge", "--json", runs[0].0.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let one = json_of(&out);
    assert_eq!(one["requests"], runs[0].1["requests"]);
    for key in ["p50", "p99", "max"] {
        assert_eq!(
            one["latency_us"][key], runs[0].1["latency_us"][key],
            "{key}"
        );
    }
    // Both logs: counts add up, maxima combine (percentiles come from the summed
    // histograms, never from averaging).
    let (code, out, err) = ringload(&[
        "merge",
        "--json",
        runs[0].0.to_str().unwrap(),
        runs[1].0.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let both = json_of(&out);
    let sum = runs[0].1["requests"].as_u64().unwrap() + runs[1].1["requests"].as_u64().unwrap();
    assert_eq!(both["requests"].as_u64().unwrap(), sum);
    let max = runs[0].1["latency_us"]["max"]
        .as_f64()
        .unwrap()
        .max(runs[1].1["latency_us"]["max"].as_f64().unwrap());
    assert_eq!(both["latency_us"]["max"].as_f64().unwrap(), max);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn hgrm_and_plot_files_are_written() {
    let addr = server(|_| Duration::ZERO);
    let dir = std::env::temp_dir().join(format!("ringload-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (hgrm, svg) = (dir.join("r.hgrm"), dir.join("r.svg"));
    let (code, _, err) = ringload(&[
        "-c",
        "2",
        "-d",
        "1s",
        "-q",
        "--hgrm",
        hgrm.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
        &format!("http://{addr}/"),
    ]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&hgrm).unwrap();
    assert!(text.contains("Percentile") && text.contains("#[Max"));
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("corrected"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_arguments_and_unreachable_urls_fail_clearly() {
    let free_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = format!("http://127.0.0.1:{free_port}/");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![], "no URL given"),
        (vec!["ftp://127.0.0.1/"], "only http:// and https:// URLs"),
        (
            vec!["--cacert", "/nonexistent/ca.pem", "https://127.0.0.1:1/"],
            "/nonexistent/ca.pem",
        ),
        (
            vec!["--rate=-5", "http://127.0.0.1:1/"],
            "--rate must be a positive number",
        ),
        (
            vec!["-c", "0", "http://127.0.0.1:1/"],
            "--connections must be at least 1",
        ),
        (
            vec!["--rate", "10", "--pipeline", "4", "http://127.0.0.1:1/"],
            "--pipeline applies to closed-loop runs only",
        ),
        (
            vec!["-H", "NoColon", "http://127.0.0.1:1/"],
            "expected 'Name: value'",
        ),
        (vec!["-d", "soon", "http://127.0.0.1:1/"], "not a duration"),
        (vec![unreachable.as_str()], "cannot connect to"),
    ];
    for (args, want) in cases {
        let (code, _, err) = ringload(&args);
        assert_ne!(code, 0, "{args:?}");
        assert!(err.contains(want), "{args:?}: expected {want:?} in {err:?}");
    }
    let addr = server(|_| Duration::ZERO);
    let (code, _, err) = ringload(&["--slo", "p99 5ms", &format!("http://{addr}/")]);
    assert_ne!(code, 0);
    assert!(err.contains("bad SLO"), "{err}");
}

#[test]
fn capacity_search_exits_non_zero_when_no_rate_holds() {
    let addr = server(|_| Duration::from_millis(30));
    let (code, out, _) = ringload(&[
        "--slo",
        "p99<5ms",
        "--start-rate",
        "40",
        "--min-rate",
        "20",
        "--step-duration",
        "500ms",
        "--step-warmup",
        "0s",
        "-c",
        "4",
        &format!("http://{addr}/"),
    ]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("FAIL"));
}

/// A server that answers with a fixed byte string, then closes when `close` is set.
fn raw_server(response: &'static [u8], close: bool) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                while common::read_request_head(&mut r).is_some() {
                    if w.write_all(response).is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn chunked_and_close_delimited_responses_are_read_whole() {
    let chunked = raw_server(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
        false,
    );
    let mut s = spec(chunked, 2, 0.0, None);
    s.requests = Some(200);
    let r = engine::run(&s).unwrap();
    assert_eq!((r.requests, r.errors.total()), (200, 0));
    // Keep-alive held: two connections carried all 200.
    assert_eq!(r.connections_opened, 2);

    let until_close = raw_server(b"HTTP/1.1 200 OK\r\n\r\nbody until close", true);
    let mut s = spec(until_close, 2, 0.0, None);
    s.requests = Some(50);
    let r = engine::run(&s).unwrap();
    assert_eq!((r.requests, r.errors.total()), (50, 0));
    assert_eq!(
        r.connections_opened, 50,
        "one connection per close-delimited response"
    );
    assert_eq!(r.status[2], 50);
}

#[test]
fn pipelined_closed_loop() {
    let addr = server(|_| Duration::ZERO);
    let mut s = spec(addr, 2, 0.0, None);
    s.requests = Some(400);
    s.pipeline = 8;
    let r = engine::run(&s).unwrap();
    assert_eq!(r.requests, 400);
    assert_eq!(r.errors.total(), 0);
}

/// ringload against an HTTPS ringproxy: keep-alive requests, and a full handshake per
/// request with `--new-connection`, its time reported apart.
#[test]
fn https_targets_keep_alive_and_a_handshake_per_request() {
    let backend = server(|_| Duration::ZERO);
    let dir = std::env::temp_dir().join(format!("ringload-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["t.test".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (crt, k) = (dir.join("t.crt"), dir.join("t.key"));
    std::fs::write(&crt, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    let config = format!(
        "Listen 127.0.0.1:0\n<VirtualHost *>\nServerName t.test\nSSLEngine on\nSSLCertificateFile {}\nSSLCertificateKeyFile {}\nProxyPass / http://{backend}/\n</VirtualHost>\n",
        crt.display(),
        k.display()
    );
    let cfg = ringproxy::config::load_str(&config, "t.conf", &Default::default()).unwrap();
    let proxy = ringproxy::runtime::start(
        Arc::new(cfg),
        ringproxy::runtime::RunOptions {
            workers: Some(1),
            driver: DriverChoice::Auto,
            hold_accepts: false,
        },
    )
    .unwrap();
    let url = format!("https://{}/", proxy.addrs[0]);
    let ca = crt.display().to_string();
    for extra in [&[][..], &["--new-connection"][..]] {
        let mut args = vec![
            "-n", "300", "-c", "4", "--json", "--cacert", &ca, "--sni", "t.test",
        ];
        args.extend_from_slice(extra);
        args.push(&url);
        let (code, out, err) = ringload(&args);
        assert_eq!(code, 0, "{err}");
        let j = json_of(&out);
        assert_eq!(j["requests"], 300, "{out}");
        assert_eq!(j["errors"], 0, "{out}");
        let opened = j["connections_opened"].as_u64().unwrap();
        if extra.is_empty() {
            assert!(opened <= 8, "keep-alive: {out}");
        } else {
            assert!(opened >= 300, "a connection per request: {out}");
            assert!(j["handshake_us"]["p50"].as_f64().unwrap() > 0.0, "{out}");
        }
    }
    // A certificate the client does not trust fails the run at once, saying why.
    let (code, out, err) = ringload(&["-n", "5", "-c", "1", "--json", "--timeout", "2s", &url]);
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("TLS handshake with") && err.contains("certificate"),
        "{err}"
    );
    proxy.shutdown();
    proxy.join();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The capacity chart answers the question: the SLO line, each step passed or failed with
/// what it achieved, and the answer marked and labelled, on a log latency axis.
#[test]
fn capacity_chart_shows_the_slo_the_steps_and_the_answer() {
    let addr = server(|_| Duration::from_millis(2));
    let dir = std::env::temp_dir().join(format!("ringload-chart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("search.svg");
    let (code, out, err) = ringload(&[
        "--slo",
        "p99<50ms",
        "--start-rate",
        "200",
        "--max-rate",
        "20000",
        "--precision",
        "0.25",
        "--step-duration",
        "300ms",
        "--step-warmup",
        "0s",
        "-c",
        "2",
        "-t",
        "1",
        "--plot",
        svg.to_str().unwrap(),
        &format!("http://{addr}/"),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let text = std::fs::read_to_string(&svg).unwrap();
    // Text elements of the SVG, as a reader of the chart sees them.
    let texts: Vec<&str> = text
        .split("<text")
        .skip(1)
        .filter_map(|t| t.split_once('>').map(|(_, rest)| rest))
        .filter_map(|t| t.split_once("</text>").map(|(inner, _)| inner.trim()))
        .collect();
    let has = |needle: &str| texts.iter().any(|t| t.contains(needle));
    assert!(
        has("SLO p99 &lt; 50 ms") || has("SLO p99 < 50 ms"),
        "{texts:?}"
    );
    assert!(has("max rate within SLO:"), "{texts:?}");
    assert!(has("log scale"), "{texts:?}");
    assert!(
        texts.iter().any(|t| t.starts_with("pass, achieved ")),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.starts_with("fail, achieved ")),
        "{texts:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
