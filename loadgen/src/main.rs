//! ringload command line.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use loadgen::engine::{self, LoadSpec, RunResult};
use loadgen::report;
use loadgen::search::{self, SearchSpec};
use loadgen::target::{parse_header, RequestSpec, Target};
use ringproxy::runtime::DriverChoice;

#[derive(Parser, Debug)]
#[command(
    name = "ringload",
    version,
    about = "HTTP/1.1 load generator for tail latency and capacity planning",
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  ringload -c 64 -d 30s http://127.0.0.1:8080/            closed loop (like wrk)\n  ringload --rate 20000 -c 64 -d 30s http://127.0.0.1:8080/  open loop, coordinated-omission corrected (like wrk2)\n  ringload --slo 'p99<5ms' http://127.0.0.1:8080/           highest rate that keeps p99 under 5 ms\n  ringload --rate 5000 --hlog a.hlog URL; ringload merge a.hlog b.hlog\n  ringload demo                                              ringproxy + backends + load, all on loopback"
)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Add the histograms of interval logs from several runs or machines (never averages
    /// percentiles) and print the combined result.
    Merge {
        /// Interval logs written with --hlog (from several runs or machines).
        #[arg(required = true)]
        logs: Vec<PathBuf>,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
        /// Write the merged corrected histogram's percentile distribution.
        #[arg(long, value_name = "FILE")]
        hgrm: Option<PathBuf>,
    },
    /// Draw labelled values as a bar chart, e.g. `ringload chart --out p.svg a=100 b=140`.
    Chart {
        /// The SVG file to write.
        #[arg(long, value_name = "FILE.svg")]
        out: PathBuf,
        /// The chart's title.
        #[arg(long, default_value = "comparison")]
        title: String,
        /// The values' unit, shown on the axis (e.g. "req/s").
        #[arg(long, default_value = "")]
        unit: String,
        /// LABEL=VALUE pairs.
        #[arg(required = true)]
        bars: Vec<String>,
    },
    /// Run ringproxy with two demo backends on loopback and load it for a few seconds.
    Demo {
        /// How long the load runs.
        #[arg(long, default_value_t = 3)]
        seconds: u64,
    },
    /// Print the manual page (roff) to stdout (the Debian package installs it).
    #[command(hide = true)]
    Man,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Target URLs (http://); several are used round robin.
    #[arg(value_name = "URL")]
    urls: Vec<String>,
    /// A file with one URL per line (added to the URLs given).
    #[arg(long, value_name = "FILE")]
    urls_file: Option<PathBuf>,
    /// Connections to keep open.
    #[arg(short = 'c', long, default_value_t = 64)]
    connections: usize,
    /// Measured duration (after warm-up): 30s, 500ms, 2m.
    #[arg(short = 'd', long, value_parser = loadgen::parse_duration)]
    duration: Option<Duration>,
    /// Stop after this many requests.
    #[arg(short = 'n', long)]
    requests: Option<u64>,
    /// Open loop at this many requests per second in total.
    #[arg(short = 'r', long)]
    rate: Option<f64>,
    /// Open loop: let the pool grow to this many connections when all are busy at a send
    /// time (default: no growth; late sends are counted and reported).
    #[arg(long)]
    max_connections: Option<usize>,
    /// Threads, one per core (default: every core this process may use).
    #[arg(short = 't', long)]
    threads: Option<usize>,
    /// Cores to pin threads to, e.g. 1 or 2,3 (default: all).
    #[arg(long, value_delimiter = ',')]
    cpus: Vec<usize>,
    /// Do not pin threads to cores.
    #[arg(long)]
    no_pin: bool,
    /// Closed loop: requests written back to back on a connection before reading.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Request method.
    #[arg(short = 'm', long, default_value = "GET")]
    method: String,
    /// Request header, 'Name: value' (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// Request body, or @FILE to read it from a file.
    #[arg(short = 'b', long)]
    body: Option<String>,
    /// Excluded from the results.
    #[arg(long, value_parser = loadgen::parse_duration, default_value = "0s")]
    warmup: Duration,
    /// Per request (connect, write, response).
    #[arg(long, value_parser = loadgen::parse_duration, default_value = "10s")]
    timeout: Duration,
    /// Capacity search objective, e.g. 'p99<5ms' or 'p99.9<20ms,errors<0.1%' (repeatable).
    #[arg(long)]
    slo: Vec<String>,
    /// Capacity search: first rate tried.
    #[arg(long, default_value_t = 1000.0)]
    start_rate: f64,
    /// Capacity search: the lowest rate tried (below it the answer is "none").
    #[arg(long, default_value_t = 10.0)]
    min_rate: f64,
    /// Capacity search: the highest rate tried (the answer is at most this).
    #[arg(long, default_value_t = 10_000_000.0)]
    max_rate: f64,
    /// Capacity search: growth factor while steps pass.
    #[arg(long, default_value_t = 2.0)]
    step_factor: f64,
    /// Capacity search: measured length of each step.
    #[arg(long, value_parser = loadgen::parse_duration, default_value = "5s")]
    step_duration: Duration,
    /// Capacity search: warm-up before each step.
    #[arg(long, value_parser = loadgen::parse_duration, default_value = "1s")]
    step_warmup: Duration,
    /// Capacity search: stop when the pass/fail bracket is this narrow (fraction).
    #[arg(long, default_value_t = 0.05)]
    precision: f64,
    /// Capacity search: at most this many steps.
    #[arg(long, default_value_t = 16)]
    max_steps: usize,
    /// Print JSON to stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write JSON to this file.
    #[arg(long, value_name = "FILE")]
    json_out: Option<PathBuf>,
    /// Write the corrected latency's HdrHistogram percentile distribution.
    #[arg(long, value_name = "FILE")]
    hgrm: Option<PathBuf>,
    /// Write an HdrHistogram interval log (one histogram per second).
    #[arg(long, value_name = "FILE")]
    hlog: Option<PathBuf>,
    /// Write an SVG chart (percentile spectrum; for --slo, latency against rate).
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Use the epoll driver instead of io_uring.
    #[arg(long)]
    epoll: bool,
    /// https:// URLs: trust the CAs in this PEM file (default: the system's bundle).
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// https:// URLs: accept any certificate.
    #[arg(long)]
    insecure: bool,
    /// https:// URLs: the server name to send (SNI) and check (default: the URL's host).
    #[arg(long, value_name = "NAME")]
    sni: Option<String>,
    /// A new connection for every request (`Connection: close`; for https://, a full
    /// handshake each time, no session resumption): "new visitors per second".
    #[arg(long)]
    new_connection: bool,
    /// No live progress line.
    #[arg(short = 'q', long)]
    quiet: bool,
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("ringload: {msg}");
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Man) => {
            let man = clap_mangen::Man::new(<Cli as clap::CommandFactory>::command());
            match man.render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
        Some(Command::Demo { seconds }) => match loadgen::demo::run(seconds) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        },
        Some(Command::Merge { logs, json, hgrm }) => merge(&logs, json, hgrm),
        Some(Command::Chart {
            out,
            title,
            unit,
            bars,
        }) => {
            let mut parsed = Vec::new();
            for b in &bars {
                match b.rsplit_once('=').map(|(l, v)| (l, v.parse::<f64>())) {
                    Some((l, Ok(v))) => parsed.push((l.to_string(), v)),
                    _ => return fail(format!("'{b}': expected LABEL=NUMBER")),
                }
            }
            match report::plot_bars(&out, &title, &unit, &parsed) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
        None => match run(cli.run) {
            Ok(code) => code,
            Err(e) => fail(e),
        },
    }
}

fn merge(logs: &[PathBuf], json: bool, hgrm: Option<PathBuf>) -> ExitCode {
    let merged = match report::merge_logs(logs) {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    let r = report::merged_result(merged);
    if let Some(p) = hgrm {
        if let Err(e) = std::fs::write(&p, report::hgrm(&r.corrected)) {
            return fail(format!("{}: {e}", p.display()));
        }
    }
    if json {
        println!("{}", report::result_json(&r));
    } else {
        print!(
            "{}",
            report::table(&r, &format!("merged {} log(s):", logs.len()))
        );
    }
    ExitCode::SUCCESS
}

fn build_spec(a: &RunArgs) -> Result<LoadSpec, String> {
    let mut urls = a.urls.clone();
    if let Some(f) = &a.urls_file {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        urls.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    if urls.is_empty() {
        return Err("no URL given (try `ringload --help`)".into());
    }
    if a.connections == 0 {
        return Err("--connections must be at least 1".into());
    }
    if let Some(r) = a.rate {
        if !(r > 0.0 && r.is_finite()) {
            return Err("--rate must be a positive number".into());
        }
        if a.pipeline > 1 {
            return Err("--pipeline applies to closed-loop runs only (drop --rate)".into());
        }
    }
    if a.pipeline == 0 {
        return Err("--pipeline must be at least 1".into());
    }
    if let Some(m) = a.max_connections {
        if m < a.connections {
            return Err("--max-connections must be at least --connections".into());
        }
    }
    let body = match &a.body {
        Some(b) if b.starts_with('@') => {
            let mut data = Vec::new();
            std::fs::File::open(&b[1..])
                .and_then(|mut f| f.read_to_end(&mut data))
                .map_err(|e| format!("{}: {e}", &b[1..]))?;
            data
        }
        Some(b) => b.clone().into_bytes(),
        None => Vec::new(),
    };
    let headers = a
        .headers
        .iter()
        .map(|h| parse_header(h).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let req = RequestSpec {
        method: a.method.to_ascii_uppercase(),
        headers,
        body,
        tls: loadgen::target::TlsOptions {
            cacert: a.cacert.clone(),
            insecure: a.insecure,
            sni: a.sni.clone(),
            new_connection: a.new_connection,
        },
    };
    let targets = urls
        .iter()
        .map(|u| Target::new(u, &req).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let threads = a.threads.unwrap_or_else(|| {
        let n = core_affinity::get_core_ids().map(|c| c.len()).unwrap_or(1);
        if a.cpus.is_empty() {
            n
        } else {
            a.cpus.len()
        }
    });
    Ok(LoadSpec {
        targets,
        connections: a.connections,
        max_connections: a.max_connections.unwrap_or(a.connections),
        threads: threads.max(1),
        duration: a.duration.unwrap_or(if a.requests.is_some() {
            Duration::ZERO
        } else {
            Duration::from_secs(10)
        }),
        requests: a.requests,
        rate: a.rate,
        pipeline: a.pipeline,
        warmup: a.warmup,
        timeout: a.timeout,
        driver: if a.epoll {
            DriverChoice::Epoll
        } else {
            ringproxy::runtime::driver_from_env()
        },
        pin: !a.no_pin,
        cpus: a.cpus.clone(),
        progress: !a.quiet && !a.json,
    })
}

/// Fails fast, with the reason, when a target cannot be reached at all.
fn preflight(spec: &LoadSpec) -> Result<(), String> {
    let mut seen = Vec::new();
    for t in &spec.targets {
        if seen.contains(&t.addr) {
            continue;
        }
        seen.push(t.addr);
        let limit = spec.timeout.min(Duration::from_secs(5));
        let mut sock = std::net::TcpStream::connect_timeout(&t.addr, limit)
            .map_err(|e| format!("cannot connect to {} ({}): {e}", t.url, t.addr))?;
        // An https:// target whose certificate is refused would fail every connection of
        // the run: say why once, now.
        if let Some(tls) = &t.tls {
            let _ = sock.set_read_timeout(Some(limit));
            let _ = sock.set_write_timeout(Some(limit));
            let mut conn = rustls::ClientConnection::new(tls.config.clone(), tls.name.clone())
                .map_err(|e| format!("{}: {e}", t.url))?;
            while conn.is_handshaking() {
                conn.complete_io(&mut sock)
                    .map_err(|e| format!("TLS handshake with {} failed: {e}", t.url))?;
            }
        }
    }
    Ok(())
}

/// What an archived result needs to be compared with another: the targets, when the run
/// started, ringload's version, every run parameter, and the machine's cores.
fn run_meta(
    a: &RunArgs,
    spec: &engine::LoadSpec,
    started: std::time::SystemTime,
) -> serde_json::Value {
    let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
    serde_json::json!({
        "ringload_version": env!("CARGO_PKG_VERSION"),
        "started_at": httpdate::fmt_http_date(started),
        "started_unix_s": started
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        "targets": spec.targets.iter().map(|t| t.url.clone()).collect::<Vec<_>>(),
        "machine": {
            "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        },
        "params": {
            "connections": a.connections,
            "duration_s": secs(a.duration),
            "requests": a.requests,
            "rate": a.rate,
            "max_connections": a.max_connections,
            "threads": spec.threads,
            "cpus": a.cpus,
            "pin": !a.no_pin,
            "pipeline": a.pipeline,
            "method": a.method,
            "headers": a.headers,
            "body_bytes": a.body.as_ref().map(String::len),
            "warmup_s": a.warmup.as_secs_f64(),
            "timeout_s": a.timeout.as_secs_f64(),
            "slo": a.slo,
            "start_rate": a.start_rate,
            "min_rate": a.min_rate,
            "max_rate": a.max_rate,
            "step_factor": a.step_factor,
            "step_duration_s": a.step_duration.as_secs_f64(),
            "step_warmup_s": a.step_warmup.as_secs_f64(),
            "precision": a.precision,
            "max_steps": a.max_steps,
            "driver": if a.epoll { "epoll" } else { "auto" },
            "tls_insecure": a.insecure,
            "sni": a.sni,
        },
    })
}

fn write_outputs(a: &RunArgs, r: &RunResult, json: &serde_json::Value) -> Result<(), String> {
    if let Some(p) = &a.json_out {
        std::fs::write(p, format!("{json:#}\n")).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if let Some(p) = &a.hgrm {
        std::fs::write(p, report::hgrm(&r.corrected))
            .map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if let Some(p) = &a.hlog {
        report::write_hlog(p, r)?;
    }
    Ok(())
}

fn run(a: RunArgs) -> Result<ExitCode, String> {
    let spec = build_spec(&a)?;
    preflight(&spec)?;
    if !a.slo.is_empty() {
        return capacity_search(&a, &spec);
    }
    let started = std::time::SystemTime::now();
    let r = engine::run(&spec)?;
    let mode = match spec.rate {
        Some(rate) => format!("open loop at {rate} req/s"),
        None => "closed loop".to_string(),
    };
    let title = format!(
        "ringload: {} connection(s), {} thread(s), {mode}, {}",
        spec.connections,
        spec.threads.min(spec.connections),
        spec.targets[0].url
    );
    let mut json = report::result_json(&r);
    json["meta"] = run_meta(&a, &spec, started);
    if a.json {
        println!("{json}");
    } else {
        print!("{}", report::table(&r, &title));
    }
    write_outputs(&a, &r, &json)?;
    if let Some(p) = &a.plot {
        report::plot_spectrum(p, &r, &title)?;
    }
    if r.requests == 0 {
        return Err(format!(
            "no request completed ({} errors); is {} answering HTTP?",
            r.errors.total(),
            spec.targets[0].url
        ));
    }
    Ok(ExitCode::SUCCESS)
}

fn capacity_search(a: &RunArgs, spec: &LoadSpec) -> Result<ExitCode, String> {
    let started = std::time::SystemTime::now();
    let mut conds = Vec::new();
    for s in &a.slo {
        conds.extend(search::parse_slo(s).map_err(|e| e.to_string())?);
    }
    let s = SearchSpec {
        start_rate: a.start_rate,
        min_rate: a.min_rate,
        max_rate: a.max_rate,
        factor: a.step_factor.max(1.01),
        precision: a.precision,
        max_steps: a.max_steps.max(1),
        step_duration: a.step_duration,
        step_warmup: a.step_warmup,
    };
    let quiet = a.json;
    if !quiet {
        println!(
            "capacity search for {} on {} ({} connections, steps of {:?})",
            a.slo.join(", "),
            spec.targets[0].url,
            spec.connections,
            s.step_duration
        );
        println!(
            "{:>12} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}  result",
            "offered", "achieved", "p50", "p90", "p99", "p99.9", "max", "errors"
        );
    }
    let fmt_ms = |us: u64| format!("{:.3}ms", us as f64 / 1000.0);
    let mut search_spec = spec.clone();
    search_spec.progress = false;
    let outcome = search::search(&search_spec, &conds, &s, |rate, r, pass| {
        if !quiet {
            let h = &r.corrected;
            println!(
                "{:>12.0} {:>12.0} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}  {}",
                rate,
                r.rps(),
                fmt_ms(h.value_at_percentile(50.0)),
                fmt_ms(h.value_at_percentile(90.0)),
                fmt_ms(h.value_at_percentile(99.0)),
                fmt_ms(h.value_at_percentile(99.9)),
                fmt_ms(h.max()),
                r.errors.total() + r.status[5],
                if pass { "pass" } else { "FAIL" }
            );
        }
    })?;
    let steps: Vec<serde_json::Value> = outcome
        .steps
        .iter()
        .map(|(rate, r)| {
            let mut v = report::result_json(r);
            v["offered_rate"] = serde_json::json!(rate);
            v["pass"] = serde_json::json!(search::step_passes(&conds, r));
            v
        })
        .collect();
    let json = serde_json::json!({
        "slo": a.slo,
        "steps": steps,
        "max_rate_within_slo": outcome.best,
        "meta": run_meta(a, spec, started),
    });
    if a.json {
        println!("{json}");
    }
    if let Some(p) = &a.json_out {
        std::fs::write(p, format!("{json:#}\n")).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if let Some(p) = &a.plot {
        report::plot_search(
            p,
            &outcome.steps,
            &conds,
            outcome.best,
            &format!("capacity search: {}", a.slo.join(", ")),
        )?;
    }
    match outcome.best {
        Some(best) => {
            if !quiet {
                println!("\nmax rate within SLO: {best:.0} req/s");
            }
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!(
                "ringload: no rate from {} down to {} req/s held the SLO",
                s.start_rate, s.min_rate
            );
            Ok(ExitCode::from(3))
        }
    }
}

#[cfg(test)]
mod cli_tests {
    use super::*;

    /// Every option and argument of every subcommand says what it is for.
    #[test]
    fn every_option_has_a_help_line() {
        let missing =
            ringproxy::cli::options_without_help(&<Cli as clap::CommandFactory>::command());
        assert!(missing.is_empty(), "options without help: {missing:?}");
    }
}
