//! ringproxy reloaded again and again while ringload drives it: no request may fail.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringproxy::config::{load_str, LoadOptions};
use ringproxy::runtime::{self, DriverChoice, RunOptions};

const BIN: &str = env!("CARGO_BIN_EXE_ringload");

/// A keep-alive backend that counts the requests it answered.
fn counting_backend() -> (SocketAddr, Arc<AtomicU64>) {
    common::server_counted(|_| Duration::ZERO)
}

fn config(members: &[SocketAddr]) -> ringproxy::config::Config {
    let mut text = String::from("Listen 127.0.0.1:0\nTimeout 5\n<Proxy balancer://c>\n");
    for m in members {
        text.push_str(&format!("BalancerMember http://{m}\n"));
    }
    text.push_str("</Proxy>\nProxyPass / balancer://c/\n");
    load_str(&text, "reload.conf", &LoadOptions::default()).unwrap()
}

/// Waits (bounded) until `count` grew by `by` from `from`.
fn wait_growth(count: &AtomicU64, from: u64, by: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while count.load(Ordering::SeqCst) < from + by {
        assert!(
            Instant::now() < deadline,
            "{what}: no traffic after a reload"
        );
        std::thread::yield_now();
    }
}

#[test]
fn reloads_while_ringload_runs_lose_no_request() {
    let (a, a_count) = counting_backend();
    let (b, b_count) = counting_backend();
    let proxy = runtime::start(
        Arc::new(config(&[a])),
        RunOptions {
            workers: Some(2),
            driver: DriverChoice::Auto,
            hold_accepts: false,
        },
    )
    .unwrap();
    let url = format!("http://{}/", proxy.addrs[0]);
    // Keep-alive clients in one ringload, a new connection per request in the other.
    let runs = [
        vec!["-c", "16", "-t", "1", "--no-pin", "-d", "3s", "--json"],
        vec![
            "-c",
            "4",
            "-t",
            "1",
            "--no-pin",
            "-d",
            "3s",
            "--json",
            "-H",
            "Connection: close",
        ],
    ];
    let children: Vec<_> = runs
        .iter()
        .map(|args| {
            Command::new(BIN)
                .args(args)
                .arg(&url)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Alternate between the two members, each reload proven by traffic on the new one.
    let mut reloads = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        let (target, count, name) = if reloads % 2 == 0 {
            (b, &b_count, "b")
        } else {
            (a, &a_count, "a")
        };
        let before = count.load(Ordering::SeqCst);
        proxy.reload(config(&[target])).unwrap();
        reloads += 1;
        wait_growth(count, before, 200, name);
    }
    assert!(reloads >= 4, "only {reloads} reloads in 2 s");
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let j: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        assert!(j["requests"].as_u64().unwrap() > 0, "{j}");
        assert_eq!(j["errors"].as_u64(), Some(0), "errors during reloads: {j}");
        assert_eq!(
            j["status"]["2xx"], j["requests"],
            "answers other than 2xx during reloads: {j}"
        );
    }
    proxy.shutdown();
    proxy.join();
}
