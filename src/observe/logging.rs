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

/// The target of start, reload and stop messages (`tracing::info!(target: LIFECYCLE, …)`):
/// logged whatever the LogLevel, as Apache logs its `notice` lines (AH00489 resuming
/// normal operations, AH00493 graceful restart, AH00491 shutting down).
pub const LIFECYCLE: &str = "ringproxy::lifecycle";

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
            LIFECYCLE => "notice".to_string(),
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

/// Installs the global logger. Safe to call more than once (later calls do nothing).
pub fn init(level: LogLevel, error_log: Option<&Path>) -> std::io::Result<()> {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| {
        EnvFilter::new(format!("ringproxy={},{LIFECYCLE}=info", level_name(level)))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .event_format(ApacheFormat);
    match error_log {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            let _ = builder.with_writer(std::sync::Mutex::new(file)).try_init();
        }
        None => {
            let _ = builder.with_writer(std::io::stderr).try_init();
        }
    }
    Ok(())
}
