//! Results out: the human table, JSON, HdrHistogram percentile distributions (`.hgrm`),
//! interval logs (`.hlog`) and their merge, SVG charts, and the live progress line.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::engine::{new_histogram, Live, LoadSpec, RunResult};

/// Percentiles shown in the table.
pub const TABLE_PERCENTILES: &[(&str, f64)] = &[
    ("p50", 50.0),
    ("p75", 75.0),
    ("p90", 90.0),
    ("p99", 99.0),
    ("p99.9", 99.9),
    ("p99.99", 99.99),
];

fn ms(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else {
        format!("{:.3}ms", us as f64 / 1000.0)
    }
}

/// The human table.
pub fn table(r: &RunResult, title: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{title}");
    let _ = writeln!(
        s,
        "  requests     {:>12}   {:>12.1} req/s   {:.2} MB/s   over {:.2}s",
        r.requests,
        r.rps(),
        r.bytes as f64 / r.duration.as_secs_f64().max(1e-9) / 1e6,
        r.duration.as_secs_f64()
    );
    if let Some(rate) = r.offered_rate {
        let _ = writeln!(
            s,
            "  offered      {:>12.1} req/s   late sends {} (every connection busy; max {} late), unsent {}",
            rate,
            r.late,
            ms(r.max_late_us),
            r.unsent
        );
    }
    let e = &r.errors;
    let _ = writeln!(
        s,
        "  errors       {:>12}   connect {} timeout {} read {} write {} parse {}",
        e.total(),
        e.connect,
        e.timeout,
        e.read,
        e.write,
        e.parse
    );
    let _ = writeln!(
        s,
        "  status       1xx {} 2xx {} 3xx {} 4xx {} 5xx {} other {}",
        r.status[1], r.status[2], r.status[3], r.status[4], r.status[5], r.status[0]
    );
    let mut header = format!("  {:<12}", "latency");
    for (name, _) in TABLE_PERCENTILES {
        let _ = write!(header, "{name:>10}");
    }
    let _ = writeln!(s, "{header}{:>10}", "max");
    let mut rows = vec![("corrected", &r.corrected), ("uncorrected", &r.uncorrected)];
    if !r.handshake.is_empty() {
        // Connect + TLS handshake per new connection, apart from the requests' latency.
        rows.push(("handshake", &r.handshake));
    }
    for (label, h) in rows {
        let mut line = format!("  {label:<12}");
        for (_, p) in TABLE_PERCENTILES {
            let _ = write!(line, "{:>10}", ms(h.value_at_percentile(*p)));
        }
        let _ = writeln!(s, "{line}{:>10}", ms(h.max()));
    }
    if r.offered_rate.is_none() {
        let _ = writeln!(
            s,
            "  (closed loop: each connection waits for its response, so corrected = uncorrected)"
        );
    }
    s
}

fn latency_json(h: &Histogram<u64>) -> Value {
    json!({
        "p50": h.value_at_percentile(50.0) as f64,
        "p75": h.value_at_percentile(75.0) as f64,
        "p90": h.value_at_percentile(90.0) as f64,
        "p99": h.value_at_percentile(99.0) as f64,
        "p999": h.value_at_percentile(99.9) as f64,
        "p9999": h.value_at_percentile(99.99) as f64,
        "max": h.max() as f64,
        "mean": h.mean(),
    })
}

pub fn result_json(r: &RunResult) -> Value {
    json!({
        "requests": r.requests,
        "duration_s": r.duration.as_secs_f64(),
        "rps": r.rps(),
        "bytes": r.bytes,
        "errors": r.errors.total(),
        "errors_by_kind": r.errors,
        "error_rate": r.error_rate(),
        "status": {
            "1xx": r.status[1], "2xx": r.status[2], "3xx": r.status[3],
            "4xx": r.status[4], "5xx": r.status[5], "other": r.status[0],
        },
        "offered_rate": r.offered_rate,
        "late_sends": r.late,
        "unsent": r.unsent,
        "max_late_us": r.max_late_us,
        "connections_opened": r.connections_opened,
        "latency_us": latency_json(&r.corrected),
        "uncorrected_latency_us": latency_json(&r.uncorrected),
        "handshake_us": (!r.handshake.is_empty()).then(|| latency_json(&r.handshake)),
        "driver": if r.epoll { "epoll" } else { "io_uring" },
    })
}

/// HdrHistogram's percentile-distribution text (as `outputPercentileDistribution` writes
/// it, values in milliseconds), readable by the standard HdrHistogram plotter.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let value_ms = v.value_iterated_to() as f64 / 1000.0;
        if q < 1.0 {
            let _ = writeln!(
                s,
                "{value_ms:>12.3} {q:>14.12} {total:>10} {:>14.2}",
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(s, "{value_ms:>12.3} {q:>14.12} {total:>10}");
        }
    }
    let _ = writeln!(
        s,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        h.mean() / 1000.0,
        h.stdev() / 1000.0
    );
    let _ = writeln!(
        s,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64 / 1000.0,
        h.len()
    );
    let _ = writeln!(
        s,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        // As HdrHistogram defines it: the power of two that holds 2 x 10^digits.
        1u64 << (2.0 * 10f64.powi(i32::from(h.sigfig()))).log2().ceil() as u32
    );
    s
}

/// Writes the run's per-second histograms as an HdrHistogram interval log: corrected
/// latency untagged (what plotters and other tools read by default), uncorrected tagged
/// `uncorrected`. Values are microseconds.
pub fn write_hlog(path: &Path, r: &RunResult) -> Result<(), String> {
    let mut file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut ser = V2DeflateSerializer::new();
    let mut builder = IntervalLogWriterBuilder::new();
    builder
        .add_comment("ringload interval log; values in microseconds")
        .with_start_time(r.measure_start)
        .with_base_time(r.measure_start)
        .with_max_value_divisor(1000.0);
    let mut w = builder
        .begin_log_with(&mut file, &mut ser)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let tag = Tag::new("uncorrected");
    for (idx, (c, u)) in &r.intervals {
        let start = Duration::from_secs(*idx);
        let len = Duration::from_secs(1);
        w.write_histogram(c, start, len, None)
            .map_err(|e| format!("{}: {e:?}", path.display()))?;
        w.write_histogram(u, start, len, tag)
            .map_err(|e| format!("{}: {e:?}", path.display()))?;
    }
    Ok(())
}

/// What `ringload merge` computes from interval logs.
pub struct Merged {
    pub corrected: Histogram<u64>,
    pub uncorrected: Histogram<u64>,
    /// Span from the earliest interval start to the latest interval end.
    pub span: Duration,
}

/// Adds every interval histogram of every log (never averages percentiles).
pub fn merge_logs(paths: &[impl AsRef<Path>]) -> Result<Merged, String> {
    let mut corrected = new_histogram();
    let mut uncorrected = new_histogram();
    let mut first: Option<Duration> = None;
    let mut last = Duration::ZERO;
    let mut de = Deserializer::new();
    for p in paths {
        let p = p.as_ref();
        let data = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
        let mut start_time: Option<Duration> = None;
        for entry in IntervalLogIterator::new(&data) {
            let entry =
                entry.map_err(|e| format!("{}: not an interval log ({e:?})", p.display()))?;
            match entry {
                LogEntry::StartTime(t) | LogEntry::BaseTime(t) => {
                    start_time.get_or_insert(t);
                }
                LogEntry::Interval(iv) => {
                    let bytes = base64_decode(iv.encoded_histogram())
                        .ok_or_else(|| format!("{}: bad base64 in interval", p.display()))?;
                    let h: Histogram<u64> = de
                        .deserialize(&mut std::io::Cursor::new(bytes))
                        .map_err(|e| format!("{}: {e:?}", p.display()))?;
                    let target = match iv.tag().map(|t| t.as_str()) {
                        Some("uncorrected") => &mut uncorrected,
                        _ => &mut corrected,
                    };
                    target
                        .add(&h)
                        .map_err(|e| format!("{}: {e:?}", p.display()))?;
                    let abs = start_time.unwrap_or_default() + iv.start_timestamp();
                    first = Some(first.map_or(abs, |f| f.min(abs)));
                    last = last.max(abs + iv.duration());
                }
            }
        }
    }
    Ok(Merged {
        corrected,
        uncorrected,
        span: last.saturating_sub(first.unwrap_or_default()),
    })
}

/// Standard base64 (the interval log's encoding of compressed histograms).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

type Root<'a> =
    plotters::drawing::DrawingArea<plotters::backend::SVGBackend<'a>, plotters::coord::Shift>;
type Chart<'a, 'b> = plotters::chart::ChartContext<
    'a,
    plotters::backend::SVGBackend<'b>,
    plotters::coord::cartesian::Cartesian2d<
        plotters::coord::types::RangedCoordf64,
        plotters::coord::types::RangedCoordf64,
    >,
>;

/// An SVG drawing area with a white background.
fn svg_root(path: &Path, size: (u32, u32)) -> Result<Root<'_>, String> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(root)
}

/// The frame every chart here shares: caption, margins, label areas, f64 axes.
fn chart_frame<'a, 'b>(
    root: &'a Root<'b>,
    path: &Path,
    title: &str,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    y_label_area: u32,
) -> Result<Chart<'a, 'b>, String> {
    plotters::chart::ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(y_label_area)
        .build_cartesian_2d(x, y)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Percentile spectrum: latency against percentile on HdrHistogram's usual log axis,
/// corrected and uncorrected.
pub fn plot_spectrum(path: &Path, r: &RunResult, title: &str) -> Result<(), String> {
    use plotters::prelude::*;
    let series = |h: &Histogram<u64>| -> Vec<(f64, f64)> {
        h.iter_quantiles(5)
            .filter(|v| v.quantile_iterated_to() < 1.0)
            .map(|v| {
                let x = (1.0 / (1.0 - v.quantile_iterated_to())).log10();
                (x, v.value_iterated_to() as f64 / 1000.0)
            })
            .collect()
    };
    let c = series(&r.corrected);
    let u = series(&r.uncorrected);
    let max_x = c
        .iter()
        .chain(&u)
        .map(|p| p.0)
        .fold(1.0f64, f64::max)
        .min(6.0);
    let max_y = c.iter().chain(&u).map(|p| p.1).fold(0.001f64, f64::max) * 1.1;
    let root = svg_root(path, (900, 540))?;
    let draw = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let mut chart = chart_frame(&root, path, title, 0f64..max_x, 0f64..max_y, 60)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_label_formatter(&|x| {
            let p = 100.0 * (1.0 - 10f64.powf(-*x));
            format!("{p:.4}%")
        })
        .draw()
        .map_err(|e| draw(&e))?;
    chart
        .draw_series(LineSeries::new(c, &RED))
        .map_err(|e| draw(&e))?
        .label("corrected")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart
        .draw_series(LineSeries::new(u, &BLUE))
        .map_err(|e| draw(&e))?
        .label("uncorrected")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .draw()
        .map_err(|e| draw(&e))?;
    root.present().map_err(|e| draw(&e))?;
    Ok(())
}

/// Capacity search chart: corrected latency percentiles against offered rate on a log
/// latency axis, with what answers the question marked: each SLO latency limit as a
/// dashed line, each step as passed (green) or failed (red) at the SLO's percentile, the
/// rate achieved written over each step, and the answer (the highest rate within the SLO)
/// as a labelled vertical line.
pub fn plot_search(
    path: &Path,
    steps: &[(f64, RunResult)],
    conds: &[crate::search::Condition],
    best: Option<f64>,
    title: &str,
) -> Result<(), String> {
    use crate::search::Metric;
    use plotters::prelude::*;
    let mut sorted: Vec<&(f64, RunResult)> = steps.iter().collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let ms =
        |r: &RunResult, p: f64| (r.corrected.value_at_percentile(p) as f64 / 1000.0).max(0.001);
    let limits: Vec<(f64, f64)> = conds
        .iter()
        .filter_map(|c| match c.metric {
            Metric::Percentile(p) => Some((p, c.limit / 1000.0)),
            Metric::ErrorRate => None,
        })
        .collect();
    let max_x = sorted.iter().map(|s| s.0).fold(1.0f64, f64::max) * 1.1;
    let max_y = sorted
        .iter()
        .map(|s| ms(&s.1, 99.9))
        .chain(limits.iter().map(|l| l.1))
        .fold(0.01f64, f64::max)
        * 3.0;
    let min_y = sorted
        .iter()
        .map(|s| ms(&s.1, 50.0))
        .chain(limits.iter().map(|l| l.1))
        .fold(f64::MAX, f64::min)
        .min(max_y / 10.0)
        / 2.0;
    let root = svg_root(path, (960, 560))?;
    let draw = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..max_x, (min_y..max_y).log_scale())
        .map_err(|e| draw(&e))?;
    chart
        .configure_mesh()
        .x_desc("offered rate (req/s)")
        .y_desc("corrected latency (ms, log scale)")
        .draw()
        .map_err(|e| draw(&e))?;
    let colors = [
        RGBColor(120, 120, 120),
        BLUE,
        MAGENTA,
        RGBColor(255, 140, 0),
    ];
    for ((name, p), color) in [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9)]
        .into_iter()
        .zip(colors)
    {
        let pts: Vec<(f64, f64)> = sorted.iter().map(|s| (s.0, ms(&s.1, p))).collect();
        chart
            .draw_series(LineSeries::new(pts, color))
            .map_err(|e| draw(&e))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    // The SLO's latency limits.
    for &(p, limit) in &limits {
        let label = format!("SLO p{p} < {limit} ms");
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, limit), (max_x, limit)],
                8,
                5,
                RED.stroke_width(2),
            ))
            .map_err(|e| draw(&e))?
            .label(label)
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    }
    // Each step, at the SLO's (first) percentile: passed or failed, and what it achieved.
    let at = limits.first().map_or(99.0, |l| l.0);
    for (rate, r) in &sorted {
        let pass = crate::search::step_passes(conds, r);
        let y = ms(r, at);
        let style = if pass { GREEN.filled() } else { RED.filled() };
        let mark = if pass { "pass" } else { "fail" };
        chart
            .draw_series(std::iter::once(Circle::new((*rate, y), 6, style)))
            .map_err(|e| draw(&e))?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("{mark}, achieved {:.0}/s", r.rps()),
                (*rate, y * 1.25),
                ("sans-serif", 12)
                    .into_font()
                    .color(if pass { &GREEN } else { &RED }),
            )))
            .map_err(|e| draw(&e))?;
    }
    // The answer.
    if let Some(best) = best {
        chart
            .draw_series(LineSeries::new(
                vec![(best, min_y), (best, max_y)],
                GREEN.stroke_width(2),
            ))
            .map_err(|e| draw(&e))?
            .label(format!("max rate within SLO: {best:.0} req/s"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| draw(&e))?;
    root.present().map_err(|e| draw(&e))?;
    Ok(())
}

/// A bar chart of labelled values (for comparing runs, e.g. tuning profiles).
pub fn plot_bars(
    path: &Path,
    title: &str,
    unit: &str,
    bars: &[(String, f64)],
) -> Result<(), String> {
    use plotters::prelude::*;
    if bars.is_empty() {
        return Err("nothing to plot".into());
    }
    let max_y = bars.iter().map(|b| b.1).fold(1e-9f64, f64::max) * 1.15;
    let root = svg_root(path, (960, 540))?;
    let draw = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let n = bars.len();
    let mut chart = chart_frame(&root, path, title, 0f64..n as f64, 0f64..max_y, 70)?;
    let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - i as f64 - 0.5).abs() < 0.01 && i < labels.len() {
                labels[i].clone()
            } else {
                String::new()
            }
        })
        .y_desc(unit)
        .draw()
        .map_err(|e| draw(&e))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
            Rectangle::new(
                [(i as f64 + 0.15, 0.0), (i as f64 + 0.85, *v)],
                BLUE.mix(0.6).filled(),
            )
        }))
        .map_err(|e| draw(&e))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
            Text::new(
                format!("{v:.0}"),
                (i as f64 + 0.35, *v * 1.02),
                ("sans-serif", 14),
            )
        }))
        .map_err(|e| draw(&e))?;
    root.present().map_err(|e| draw(&e))?;
    Ok(())
}

/// While the threads run: on a terminal, one line a second (rate, p99 so far, errors);
/// nothing when stderr is not a terminal.
pub fn progress_while(
    live: &Live,
    spec: &LoadSpec,
    handles: &[JoinHandle<Result<RunResult, std::io::Error>>],
    measure_start: Instant,
) {
    let show = spec.progress && std::io::stderr().is_terminal();
    let mut last_count = 0u64;
    let mut last_t = Instant::now();
    let mut shown = false;
    while !handles.iter().all(|h| h.is_finished()) {
        // Polls the threads for the UI only; results come from the joins.
        std::thread::sleep(Duration::from_millis(100));
        if !show || last_t.elapsed() < Duration::from_secs(1) {
            continue;
        }
        let now = Instant::now();
        let count = live.completed.load(Ordering::Relaxed);
        let rate = (count - last_count) as f64 / now.duration_since(last_t).as_secs_f64();
        last_count = count;
        last_t = now;
        let p99 = live
            .so_far
            .lock()
            .ok()
            .and_then(|h| h.as_ref().map(|h| h.value_at_percentile(99.0)))
            .unwrap_or(0);
        let phase = if now < measure_start {
            "warm-up"
        } else {
            "running"
        };
        eprint!(
            "\r{phase} {:>6.1}s  {:>10.0} req/s  p99 {:>10}  errors {:<8}",
            now.saturating_duration_since(measure_start).as_secs_f64(),
            rate,
            ms(p99),
            live.errors.load(Ordering::Relaxed)
        );
        let _ = std::io::stderr().flush();
        shown = true;
    }
    if shown {
        eprintln!();
    }
}

/// Builds a [`RunResult`]-shaped summary from merged logs (for `merge`'s table and JSON).
pub fn merged_result(m: Merged) -> RunResult {
    RunResult {
        requests: m.corrected.len(),
        duration: m.span,
        corrected: m.corrected,
        uncorrected: m.uncorrected,
        ..RunResult::empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: &[u64]) -> Histogram<u64> {
        let mut h = new_histogram();
        for v in values {
            h.record(*v).unwrap();
        }
        h
    }

    #[test]
    fn percentile_math() {
        let h = hist(&(1..=1000).collect::<Vec<_>>());
        assert_eq!(h.value_at_percentile(50.0), 500);
        assert_eq!(h.value_at_percentile(99.0), 990);
        assert_eq!(h.max(), 1000);
    }

    #[test]
    fn hgrm_has_the_standard_shape() {
        let text = hgrm(&hist(&[1000, 2000, 3000]));
        let mut lines = text.lines();
        assert!(lines.next().unwrap().contains("1/(1-Percentile)"));
        assert!(
            text.contains("#[Max     =        3.001, Total count    =            3]"),
            "{text}"
        );
        assert!(text.contains("SubBuckets     =         2048]"), "{text}");
        let last_value_line = text
            .lines()
            .rfind(|l| !l.starts_with('#') && !l.is_empty())
            .unwrap();
        assert!(
            last_value_line
                .trim_start()
                .starts_with("3.001 1.000000000000"),
            "{last_value_line}"
        );
    }

    #[test]
    fn hlog_merge_adds_histograms() {
        let dir = std::env::temp_dir().join(format!("ringload-merge-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let run = |vals: &[u64]| {
            let mut r = merged_result(Merged {
                corrected: hist(vals),
                uncorrected: hist(vals),
                span: Duration::from_secs(1),
            });
            r.intervals.insert(0, (hist(vals), hist(vals)));
            r
        };
        let a = run(&[10, 20, 30]);
        let b = run(&[1000, 2000]);
        write_hlog(&dir.join("a.hlog"), &a).unwrap();
        write_hlog(&dir.join("b.hlog"), &b).unwrap();
        let m = merge_logs(&[dir.join("a.hlog"), dir.join("b.hlog")]).unwrap();
        let mut both = hist(&[10, 20, 30]);
        both.add(hist(&[1000, 2000])).unwrap();
        assert_eq!(m.corrected, both);
        assert_eq!(m.uncorrected, both);
        std::fs::remove_dir_all(&dir).ok();
    }
}
