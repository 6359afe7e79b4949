//! Error log set-up: Apache-like lines (`[time] [level] [pid N:tid T] message`) to ErrorLog
//! or stderr, filtered by LogLevel. `RUST_LOG` overrides the level for debugging.

use std::fmt;
use std::path::Path;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::config::LogLevel;

/// The target of Apache's `notice` lines (`tracing::info!(target: NOTICE, …)`): start,
/// reload and stop (AH00489 resuming normal operations, AH00493 graceful restart,
/// AH00491 shutting down) and balancer-manager changes; logged whatever the LogLevel.
pub const NOTICE: &str = "ringproxy::notice";

struct ApacheFormat;

impl<S, N> FormatEvent<S, N> for ApacheFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        w.write_str("[")?;
        SystemTime.format_time(&mut w)?;
        // Start, reload and stop: Apache's `notice` lines, shown at every LogLevel.
        let level = match event.metadata().target() {
            NOTICE => "notice".to_string(),
            _ => event.metadata().level().as_str().to_ascii_lowercase(),
        };
        let tid = std::thread::current()
            .name()
            .map(str::to_string)
            .unwrap_or_else(|| "main".into());
        write!(w, "] [proxy:{level}] [pid {}:{tid}] ", std::process::id())?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

fn level_name(l: LogLevel) -> &'static str {
    match l {
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
        LogLevel::Trace => "trace",
    }
}

/// The error log file as the background writer sees it: reopened (for logrotate) when
/// SIGUSR1 has bumped the access logs' generation since the last line.
struct ReopeningFile {
    path: std::path::PathBuf,
    file: std::fs::File,
    generation: u64,
}

fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

impl std::io::Write for ReopeningFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use std::sync::atomic::Ordering;
        let g = crate::observe::accesslog::REOPEN_GENERATION.load(Ordering::Relaxed);
        if g != self.generation {
            self.generation = g;
            match open_log(&self.path) {
                Ok(f) => self.file = f,
                // The old file stays: lines keep going somewhere.
                Err(e) => eprintln!(
                    "ringproxy: cannot reopen ErrorLog {}: {e}",
                    self.path.display()
                ),
            }
        }
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Keeps the error log's background writer alive; dropping it writes what is queued.
pub type LogGuard = tracing_appender::non_blocking::WorkerGuard;

/// Installs the global logger and returns the guard of its background writer (keep it
/// until exit). Lines go through a bounded queue to one writer thread, so a worker never
/// takes a lock or waits for the disk to log, even when every request fails during an
/// outage: a full queue drops lines (counted by the writer) rather than stall a worker.
/// Safe to call more than once (later calls install nothing).
pub fn init(level: LogLevel, error_log: Option<&Path>) -> std::io::Result<Option<LogGuard>> {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| {
        EnvFilter::new(format!("ringproxy={},{NOTICE}=info", level_name(level)))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .event_format(ApacheFormat);
    let lossy = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .thread_name("ringproxy-errorlog");
    let (writer, guard) = match error_log {
        Some(path) => {
            let file = ReopeningFile {
                path: path.to_path_buf(),
                file: open_log(path)?,
                generation: crate::observe::accesslog::REOPEN_GENERATION
                    .load(std::sync::atomic::Ordering::Relaxed),
            };
            lossy.finish(file)
        }
        None => lossy.finish(std::io::stderr()),
    };
    match builder.with_writer(writer).try_init() {
        Ok(()) => Ok(Some(guard)),
        Err(_) => Ok(None),
    }
}
