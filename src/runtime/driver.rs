//! The event loop each thread runs: monoio on io_uring, or on epoll where the kernel refuses
//! io_uring (or `RINGPROXY_DRIVER=epoll` asks for it). Shared by the proxy's per-core
//! threads, the health checker and ringload's threads.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::{debug, warn};

/// Submission queue size per worker ring.
const URING_ENTRIES: u32 = 4096;

/// Which monoio driver a worker runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverChoice {
    /// io_uring, falling back to epoll (with one warning) where the kernel refuses it.
    Auto,
    /// epoll only (`--driver epoll` or `RINGPROXY_DRIVER=epoll`).
    Epoll,
}

/// `RINGPROXY_DRIVER=epoll` forces the fallback driver.
pub fn driver_from_env() -> DriverChoice {
    match std::env::var("RINGPROXY_DRIVER").as_deref() {
        Ok("epoll") | Ok("legacy") => DriverChoice::Epoll,
        _ => DriverChoice::Auto,
    }
}

/// How the io_uring instance is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UringSetup {
    /// IORING_SETUP_COOP_TASKRUN | TASKRUN_FLAG (kernel 5.19+): completions are processed
    /// when the thread next enters the kernel instead of interrupting it for every socket
    /// event. Measured on ping-pong HTTP traffic: about 1.9x the requests per core of a
    /// plain ring (bench/RESULTS.md).
    Coop,
    /// IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN (6.1+): completions only while waiting.
    Defer,
    /// No setup flags.
    Plain,
}

/// `RINGPROXY_URING_SETUP=coop|defer|plain` (default coop), for A/B measurements.
pub fn uring_setup_from_env() -> UringSetup {
    match std::env::var("RINGPROXY_URING_SETUP").as_deref() {
        Ok("defer") => UringSetup::Defer,
        Ok("plain") => UringSetup::Plain,
        _ => UringSetup::Coop,
    }
}

type UringRuntime = monoio::Runtime<monoio::time::TimeDriver<monoio::IoUringDriver>>;

/// Builds an io_uring runtime with `setup`, falling back to a plain ring where the kernel
/// does not know the flags.
fn build_uring(setup: UringSetup) -> io::Result<UringRuntime> {
    let mut b = io_uring::IoUring::builder();
    match setup {
        UringSetup::Coop => {
            b.setup_coop_taskrun().setup_taskrun_flag();
        }
        UringSetup::Defer => {
            b.setup_single_issuer().setup_defer_taskrun();
        }
        UringSetup::Plain => {}
    }
    let flagged = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .with_entries(URING_ENTRIES)
        .uring_builder(b)
        .enable_timer()
        .build();
    match flagged {
        Ok(rt) => Ok(rt),
        Err(e) if setup != UringSetup::Plain => {
            debug!("io_uring with {setup:?} set-up refused ({e}); using a plain ring");
            monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .with_entries(URING_ENTRIES)
                .enable_timer()
                .build()
        }
        Err(e) => Err(e),
    }
}

/// Logged once per process, not once per worker.
static FALLBACK_LOGGED: AtomicBool = AtomicBool::new(false);

/// Runs the future made by `make` to completion on a new monoio runtime on this thread:
/// io_uring when `driver` is Auto and the kernel allows it, else epoll (logged once per
/// process). `make` is told whether it runs on epoll. Shared by the proxy's workers and
/// ringload's threads.
pub fn run_local<F, Fut>(driver: DriverChoice, make: F) -> io::Result<Fut::Output>
where
    F: FnOnce(bool) -> Fut,
    Fut: std::future::Future,
{
    if driver == DriverChoice::Auto {
        let built = build_uring(uring_setup_from_env());
        match built {
            Ok(mut rt) => return Ok(rt.block_on(make(false))),
            Err(e) => {
                if !FALLBACK_LOGGED.swap(true, Ordering::Relaxed) {
                    warn!("io_uring is not available ({e}); running on the epoll driver");
                }
            }
        }
    } else if !FALLBACK_LOGGED.swap(true, Ordering::Relaxed) {
        warn!("epoll driver forced by configuration; io_uring not used");
    }
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()?;
    Ok(rt.block_on(make(true)))
}
