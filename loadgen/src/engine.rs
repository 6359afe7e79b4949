//! Runs one load phase: one pinned monoio thread per core, each owning its connections,
//! its histograms and its counters; merged once at the end.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use ringproxy::runtime::{run_local, DriverChoice};

use crate::client;
use crate::pacer::{self, Pacer};
use crate::schedule::Schedule;
use crate::target::Target;

/// Latency histograms span 1 µs to 60 s with 3 significant digits (0.1 % error).
pub const HIST_MAX_US: u64 = 60_000_000;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("static histogram bounds are valid")
}

/// A connection still busy this long after its slot came due makes a late send: counted,
/// and with `--max-connections` the pool grows. Its latency counts from the slot either
/// way (coordinated-omission correction); this only decides what is worth a connection.
/// Also how early a slot goes when the thread has no [`Pacer`] and sleeps on monoio's
/// millisecond timer wheel instead.
pub const SCHEDULING_TOLERANCE: Duration = Duration::from_millis(1);

#[derive(Clone, Debug)]
pub struct LoadSpec {
    pub targets: Vec<Target>,
    pub connections: usize,
    /// Open loop: connections may grow to this when every one is busy at a send time.
    pub max_connections: usize,
    pub threads: usize,
    /// Measured duration, after warm-up.
    pub duration: Duration,
    pub requests: Option<u64>,
    /// Open loop at this total rate (requests per second); closed loop when `None`.
    pub rate: Option<f64>,
    /// Closed loop: requests written back to back before reading responses.
    pub pipeline: usize,
    pub warmup: Duration,
    pub timeout: Duration,
    pub driver: DriverChoice,
    pub pin: bool,
    /// Cores to pin threads to, in order (empty: every core the process may use).
    pub cpus: Vec<usize>,
    /// Print a live progress line to stderr.
    pub progress: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ErrorCounts {
    pub connect: u64,
    pub timeout: u64,
    pub read: u64,
    pub write: u64,
    pub parse: u64,
}

impl ErrorCounts {
    pub fn total(&self) -> u64 {
        self.connect + self.timeout + self.read + self.write + self.parse
    }
    fn add(&mut self, o: &ErrorCounts) {
        self.connect += o.connect;
        self.timeout += o.timeout;
        self.read += o.read;
        self.write += o.write;
        self.parse += o.parse;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    Connect,
    Timeout,
    Read,
    Write,
    Parse,
}

/// What one thread (or the whole run, merged) measured.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub requests: u64,
    pub duration: Duration,
    pub bytes: u64,
    pub corrected: Histogram<u64>,
    pub uncorrected: Histogram<u64>,
    /// https://: connect plus TLS handshake, per connection opened (apart from request
    /// latency).
    pub handshake: Histogram<u64>,
    pub errors: ErrorCounts,
    /// Index 0 = other, 1..=5 = 1xx..5xx.
    pub status: [u64; 6],
    /// Requests sent more than the tolerance after their intended time because every
    /// connection was busy (open loop).
    pub late: u64,
    pub max_late_us: u64,
    /// Open loop: requests due before the end that were never sent (the target fell
    /// behind and the run ended on time).
    pub unsent: u64,
    pub connections_opened: u64,
    pub offered_rate: Option<f64>,
    /// Per-second histograms (corrected, uncorrected) of the measured window.
    pub intervals: BTreeMap<u64, (Histogram<u64>, Histogram<u64>)>,
    pub measure_start: SystemTime,
    pub epoll: bool,
}

impl RunResult {
    /// A result with nothing counted yet.
    pub fn empty() -> RunResult {
        RunResult {
            requests: 0,
            duration: Duration::ZERO,
            bytes: 0,
            corrected: new_histogram(),
            uncorrected: new_histogram(),
            handshake: new_histogram(),
            errors: ErrorCounts::default(),
            status: [0; 6],
            late: 0,
            max_late_us: 0,
            unsent: 0,
            connections_opened: 0,
            offered_rate: None,
            intervals: BTreeMap::new(),
            measure_start: SystemTime::now(),
            epoll: false,
        }
    }

    pub fn rps(&self) -> f64 {
        let s = self.duration.as_secs_f64();
        if s > 0.0 {
            self.requests as f64 / s
        } else {
            0.0
        }
    }

    /// Errors (transport failures and 5xx) per request attempted.
    pub fn error_rate(&self) -> f64 {
        let failed = self.errors.total() + self.status[5];
        let attempts = self.requests + self.errors.total();
        if attempts == 0 {
            0.0
        } else {
            failed as f64 / attempts as f64
        }
    }

    fn merge(&mut self, o: RunResult) {
        self.requests += o.requests;
        self.duration = self.duration.max(o.duration);
        self.bytes += o.bytes;
        // Same bounds on both sides: adding cannot fail.
        let _ = self.corrected.add(&o.corrected);
        let _ = self.uncorrected.add(&o.uncorrected);
        let _ = self.handshake.add(&o.handshake);
        self.errors.add(&o.errors);
        for (a, b) in self.status.iter_mut().zip(o.status) {
            *a += b;
        }
        self.late += o.late;
        self.unsent += o.unsent;
        self.max_late_us = self.max_late_us.max(o.max_late_us);
        self.connections_opened += o.connections_opened;
        for (k, (c, u)) in o.intervals {
            let e = self
                .intervals
                .entry(k)
                .or_insert_with(|| (new_histogram(), new_histogram()));
            let _ = e.0.add(&c);
            let _ = e.1.add(&u);
        }
        self.epoll |= o.epoll;
    }
}

/// Counters the main thread reads while the run goes on (progress line).
#[derive(Default)]
pub struct Live {
    pub completed: AtomicU64,
    pub errors: AtomicU64,
    /// p99 so far needs a histogram: threads add theirs once a second.
    pub so_far: Mutex<Option<Histogram<u64>>>,
    /// Closed loop with `-n`: requests left to send, whole run.
    pub budget: AtomicI64,
}

/// One thread's state; shared by its connection tasks through `Rc`.
pub struct ThreadState {
    pub spec: Arc<LoadSpec>,
    pub live: Arc<Live>,
    pub measure_start: Instant,
    pub end: Instant,
    pub sched: Option<Schedule>,
    /// Open loop: sleeps until each slot with sub-millisecond precision.
    pacer: Option<Rc<Pacer>>,
    pub has_budget: bool,
    result: RefCell<RunResult>,
    interval_idx: Cell<u64>,
    interval: RefCell<(Histogram<u64>, Histogram<u64>)>,
    pub open_connections: Cell<usize>,
    pub max_connections: usize,
    /// Target slot for the next connection the pool grows by.
    pub next_slot: Cell<usize>,
    last_done: Cell<Option<Instant>>,
}

impl ThreadState {
    /// Waits for an open-loop slot due at `intended`; returns whether it waited (false: the
    /// slot was due already, or so close that waiting would overshoot it).
    pub async fn wait_for_slot(&self, intended: Instant) -> bool {
        let now = Instant::now();
        match &self.pacer {
            Some(p) if intended > now + pacer::RESOLUTION => {
                p.sleep_until(intended).await;
                true
            }
            None if intended > now + SCHEDULING_TOLERANCE => {
                monoio::time::sleep(intended - now).await;
                true
            }
            _ => false,
        }
    }

    pub fn stopping(&self) -> bool {
        Instant::now() >= self.end
    }

    /// Is there any request left to send (so that reconnecting is worth it)?
    pub fn work_left(&self) -> bool {
        if self.stopping() {
            return false;
        }
        match &self.sched {
            Some(s) => s.has_more(),
            None => !self.has_budget || self.live.budget.load(Ordering::Relaxed) > 0,
        }
    }

    /// Closed loop: may another request be sent?
    pub fn take_budget(&self) -> bool {
        if self.stopping() {
            return false;
        }
        !self.has_budget || self.live.budget.fetch_sub(1, Ordering::Relaxed) > 0
    }

    pub fn count_error(&self, kind: ErrorKind) {
        if Instant::now() < self.measure_start {
            return;
        }
        let mut r = self.result.borrow_mut();
        match kind {
            ErrorKind::Connect => r.errors.connect += 1,
            ErrorKind::Timeout => r.errors.timeout += 1,
            ErrorKind::Read => r.errors.read += 1,
            ErrorKind::Write => r.errors.write += 1,
            ErrorKind::Parse => r.errors.parse += 1,
        }
        self.live.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A TLS connection's connect and handshake time (after warm-up).
    pub fn record_handshake(&self, took: Duration) {
        if Instant::now() < self.measure_start {
            return;
        }
        let us = took.as_micros() as u64;
        self.result
            .borrow_mut()
            .handshake
            .saturating_record(us.max(1));
    }

    pub fn connection_opened(&self) {
        self.result.borrow_mut().connections_opened += 1;
    }

    pub fn note_late(&self, late: Duration) {
        if Instant::now() < self.measure_start {
            return;
        }
        let mut r = self.result.borrow_mut();
        r.late += 1;
        r.max_late_us = r.max_late_us.max(late.as_micros() as u64);
    }

    /// Records one response. `start` is where corrected latency counts from; `sent` is when
    /// the bytes actually went out.
    pub fn record(&self, start: Instant, sent: Instant, done: Instant, status: u16, bytes: u64) {
        if done < self.measure_start {
            return; // warm-up
        }
        let corrected = done.saturating_duration_since(start).as_micros() as u64;
        let uncorrected = done.saturating_duration_since(sent).as_micros() as u64;
        {
            let mut r = self.result.borrow_mut();
            r.requests += 1;
            r.bytes += bytes;
            let class = (status / 100) as usize;
            r.status[if (1..=5).contains(&class) { class } else { 0 }] += 1;
            r.corrected.saturating_record(corrected.max(1));
            r.uncorrected.saturating_record(uncorrected.max(1));
        }
        let idx = done.duration_since(self.measure_start).as_secs();
        if idx != self.interval_idx.get() {
            self.flush_interval();
            self.interval_idx.set(idx);
        }
        {
            let mut iv = self.interval.borrow_mut();
            iv.0.saturating_record(corrected.max(1));
            iv.1.saturating_record(uncorrected.max(1));
        }
        self.last_done.set(Some(done));
        self.live.completed.fetch_add(1, Ordering::Relaxed);
    }

    fn flush_interval(&self) {
        let (c, u) = std::mem::replace(
            &mut *self.interval.borrow_mut(),
            (new_histogram(), new_histogram()),
        );
        if c.is_empty() {
            return;
        }
        if let Ok(mut so_far) = self.live.so_far.lock() {
            match so_far.as_mut() {
                Some(h) => {
                    let _ = h.add(&c);
                }
                None => *so_far = Some(c.clone()),
            }
        }
        let mut r = self.result.borrow_mut();
        let e = r
            .intervals
            .entry(self.interval_idx.get())
            .or_insert_with(|| (new_histogram(), new_histogram()));
        let _ = e.0.add(&c);
        let _ = e.1.add(&u);
    }
}

/// Runs one phase and returns the merged result.
pub fn run(spec: &LoadSpec) -> Result<RunResult, String> {
    if spec.targets.is_empty() {
        return Err("no URL given".into());
    }
    let spec = Arc::new(spec.clone());
    let threads = spec.threads.max(1).min(spec.connections.max(1));
    let live = Arc::new(Live::default());
    if let Some(n) = spec.requests {
        live.budget.store(n as i64, Ordering::Relaxed);
    }
    // A common start a little ahead, so every thread's schedule begins together.
    let start = Instant::now() + Duration::from_millis(20);
    let measure_start = start + spec.warmup;
    let wall_start = SystemTime::now() + Duration::from_millis(20) + spec.warmup;
    let end = if spec.requests.is_some() && spec.rate.is_none() {
        // Bounded by count: the duration is only a safety limit.
        measure_start + spec.duration.max(Duration::from_secs(3600))
    } else {
        measure_start + spec.duration
    };
    let cores: Vec<core_affinity::CoreId> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| spec.cpus.is_empty() || spec.cpus.contains(&c.id))
        .collect();
    let mut handles = Vec::new();
    for t in 0..threads {
        let conns = spec.connections / threads + usize::from(t < spec.connections % threads);
        let max_conns =
            spec.max_connections / threads + usize::from(t < spec.max_connections % threads);
        let (spec, live) = (spec.clone(), live.clone());
        let core = (spec.pin && !cores.is_empty()).then(|| cores[t % cores.len()]);
        let h = std::thread::Builder::new()
            .name(format!("ringload-{t}"))
            .spawn(move || {
                if let Some(c) = core {
                    core_affinity::set_for_current(c);
                }
                let driver = spec.driver;
                run_local(driver, move |epoll| {
                    thread_main(
                        spec,
                        live,
                        ThreadPlan {
                            index: t,
                            threads,
                            connections: conns,
                            max_connections: max_conns.max(conns),
                            start,
                            measure_start,
                            end,
                            epoll,
                        },
                    )
                })
            })
            .map_err(|e| format!("cannot start thread: {e}"))?;
        handles.push(h);
    }
    crate::report::progress_while(&live, &spec, &handles, measure_start);
    let mut total = RunResult::empty();
    total.offered_rate = spec.rate;
    total.measure_start = wall_start;
    for h in handles {
        match h.join() {
            Ok(Ok(r)) => total.merge(r),
            Ok(Err(e)) => return Err(format!("runtime failed: {e}")),
            Err(_) => return Err("a load thread panicked".into()),
        }
    }
    Ok(total)
}

struct ThreadPlan {
    index: usize,
    threads: usize,
    connections: usize,
    max_connections: usize,
    start: Instant,
    measure_start: Instant,
    end: Instant,
    epoll: bool,
}

async fn thread_main(spec: Arc<LoadSpec>, live: Arc<Live>, plan: ThreadPlan) -> RunResult {
    let sched = spec.rate.map(|rate| {
        let limit = spec.requests.map(|n| {
            n / plan.threads as u64 + u64::from((plan.index as u64) < n % plan.threads as u64)
        });
        Schedule::new(plan.start, plan.end, rate, plan.index, plan.threads, limit)
    });
    // Without a timerfd (the process is out of descriptors) pacing falls back to monoio's
    // millisecond wheel: requests then go in per-tick bursts, still at the right rate.
    let pacer = sched.as_ref().and_then(|_| Pacer::new().ok());
    let pacer_task = pacer.clone().map(|p| monoio::spawn(p.run()));
    let st = Rc::new(ThreadState {
        has_budget: spec.requests.is_some() && spec.rate.is_none(),
        spec: spec.clone(),
        live,
        measure_start: plan.measure_start,
        end: plan.end,
        sched,
        pacer: pacer.clone(),
        result: RefCell::new(RunResult::empty()),
        interval_idx: Cell::new(0),
        interval: RefCell::new((new_histogram(), new_histogram())),
        open_connections: Cell::new(0),
        max_connections: plan.max_connections,
        next_slot: Cell::new(plan.index + plan.connections * plan.threads),
        last_done: Cell::new(None),
    });
    let now = Instant::now();
    if plan.start > now {
        monoio::time::sleep(plan.start - now).await;
    }
    let mut tasks = Vec::new();
    for c in 0..plan.connections {
        // Spread connections over targets; thread index keeps threads from all starting on
        // the first target.
        let slot = plan.index + c * plan.threads;
        tasks.push(monoio::spawn(client::connection(st.clone(), slot)));
    }
    for t in tasks {
        t.await;
    }
    // Connections the pool grew by finish on their own; wait for them too.
    while st.open_connections.get() > 0 {
        monoio::time::sleep(Duration::from_millis(5)).await;
    }
    if let (Some(p), Some(t)) = (pacer, pacer_task) {
        p.close();
        t.await;
    }
    st.flush_interval();
    let mut r = st.result.replace(RunResult::empty());
    let last = st.last_done.get().unwrap_or(plan.measure_start);
    r.duration = if spec.rate.is_some() || spec.requests.is_none() {
        plan.end.saturating_duration_since(plan.measure_start)
    } else {
        last.saturating_duration_since(plan.measure_start)
    };
    r.epoll = plan.epoll;
    r.unsent = st.sched.as_ref().map_or(0, Schedule::unsent);
    r
}
