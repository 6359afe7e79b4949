//! Per-worker counters for server-status and metrics. Each worker writes only its own block
//! (relaxed atomics, on cache lines of its own, so no worker slows another); readers sum
//! them.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Request latency histogram bounds (seconds), Prometheus-style cumulative buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// 128-byte aligned: the adjacent-line prefetcher fetches 64-byte lines in pairs, so blocks
/// only 64 bytes apart would still interfere.
#[repr(align(128))]
#[derive(Default)]
pub struct WorkerStats {
    /// The worker's housekeeping ticks (every 100 ms while its event loop runs): what the
    /// systemd watchdog looks at.
    pub ticks: AtomicU64,
    pub requests: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Index 0 = no status (connection closed without an answer), 1..=5 = 1xx..5xx.
    pub status: [AtomicU64; 6],
    pub conns_total: AtomicU64,
    pub conns_open: AtomicI64,
    /// Requests in progress.
    pub busy: AtomicI64,
    /// Idle connections in the worker's parking lot (`IdleParkAfter`).
    pub parked: AtomicI64,
    /// Non-cumulative bucket counts; the last is +Inf.
    pub latency: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    pub latency_sum_us: AtomicU64,
    pub pool_hits: AtomicU64,
    pub pool_misses: AtomicU64,
    /// Requests sent again, by reason (see [`Retry`]).
    pub retries: [AtomicU64; 3],
    /// RequestReadTimeout stages that ran out (header, body).
    pub read_timeouts: [AtomicU64; 2],
    /// TLS handshakes completed: full TLS 1.3, full TLS 1.2, resumed.
    pub tls_handshakes: [AtomicU64; 3],
    /// TLS handshakes that failed, by `HandshakeError::REASONS`.
    pub tls_failures: [AtomicU64; TLS_REASONS],
    /// TLS connections open.
    pub tls_open: AtomicI64,
    /// TLS handshakes with members: full, resumed.
    pub member_tls_handshakes: [AtomicU64; 2],
    /// TLS handshakes with members that failed, by `HandshakeError::REASONS`.
    pub member_tls_failures: [AtomicU64; TLS_REASONS],
    pub epoll: AtomicBool,
    /// Time spent busy polling (`BusyPolling`), in microseconds: the CPU it costs.
    pub busy_poll_us: AtomicU64,
}

impl WorkerStats {
    pub fn record(&self, status: u16, bytes: u64, took: Duration) {
        let r = Ordering::Relaxed;
        self.requests.fetch_add(1, r);
        self.bytes_out.fetch_add(bytes, r);
        let class = usize::from(status / 100);
        self.status[if (1..=5).contains(&class) { class } else { 0 }].fetch_add(1, r);
        let secs = took.as_secs_f64();
        let b = LATENCY_BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.latency[b].fetch_add(1, r);
        self.latency_sum_us.fetch_add(took.as_micros() as u64, r);
    }
}

/// The sum over workers.
#[derive(Default, Debug)]
pub struct Totals {
    pub requests: u64,
    pub bytes_out: u64,
    pub status: [u64; 6],
    pub conns_total: u64,
    pub conns_open: i64,
    pub busy: i64,
    pub parked: i64,
    pub latency: [u64; LATENCY_BUCKETS.len() + 1],
    pub latency_sum_us: u64,
    pub pool_hits: u64,
    pub pool_misses: u64,
    pub retries: [u64; 3],
    pub read_timeouts: [u64; 2],
    pub busy_poll_us: u64,
    pub tls_handshakes: [u64; 3],
    pub tls_failures: [u64; TLS_REASONS],
    pub tls_open: i64,
    pub member_tls_handshakes: [u64; 2],
    pub member_tls_failures: [u64; TLS_REASONS],
}

/// How many handshake failure reasons are counted.
pub const TLS_REASONS: usize = crate::transport::tls::HandshakeError::REASONS.len();

/// Why a request was sent again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// A pooled connection the backend had closed: the same member, a fresh connection.
    Stale = 0,
    /// The connect failed: another member (Apache's failover).
    Connect = 1,
    /// ringproxy's own: an idempotent request whose fresh connection closed before any
    /// response byte goes to another member, once.
    Idempotent = 2,
}

impl Retry {
    pub const ALL: [Retry; 3] = [Retry::Stale, Retry::Connect, Retry::Idempotent];
    pub fn label(self) -> &'static str {
        match self {
            Retry::Stale => "stale",
            Retry::Connect => "connect",
            Retry::Idempotent => "idempotent",
        }
    }
}

pub fn totals(all: &[WorkerStats]) -> Totals {
    let r = Ordering::Relaxed;
    let mut t = Totals::default();
    for s in all {
        t.requests += s.requests.load(r);
        t.bytes_out += s.bytes_out.load(r);
        for (a, b) in t.status.iter_mut().zip(&s.status) {
            *a += b.load(r);
        }
        t.conns_total += s.conns_total.load(r);
        t.conns_open += s.conns_open.load(r);
        t.busy += s.busy.load(r);
        t.parked += s.parked.load(r);
        for (a, b) in t.latency.iter_mut().zip(&s.latency) {
            *a += b.load(r);
        }
        t.latency_sum_us += s.latency_sum_us.load(r);
        t.pool_hits += s.pool_hits.load(r);
        t.pool_misses += s.pool_misses.load(r);
        for (a, b) in t.retries.iter_mut().zip(&s.retries) {
            *a += b.load(r);
        }
        for (a, b) in t.read_timeouts.iter_mut().zip(&s.read_timeouts) {
            *a += b.load(r);
        }
        t.busy_poll_us += s.busy_poll_us.load(r);
        for (a, b) in t.tls_handshakes.iter_mut().zip(&s.tls_handshakes) {
            *a += b.load(r);
        }
        for (a, b) in t.tls_failures.iter_mut().zip(&s.tls_failures) {
            *a += b.load(r);
        }
        t.tls_open += s.tls_open.load(r);
        for (a, b) in t
            .member_tls_handshakes
            .iter_mut()
            .zip(&s.member_tls_handshakes)
        {
            *a += b.load(r);
        }
        for (a, b) in t.member_tls_failures.iter_mut().zip(&s.member_tls_failures) {
            *a += b.load(r);
        }
    }
    t
}
