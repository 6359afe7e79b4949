//! ringproxy command line: run, check (`-t`), demo.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use ringproxy::config::{self, LoadOptions};
use ringproxy::observe::logging::NOTICE;
use ringproxy::runtime::{self, DriverChoice, RunOptions};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};

#[derive(Parser, Debug)]
#[command(
    name = "ringproxy",
    version,
    about = "Thread-per-core io_uring HTTP/1.1 reverse proxy and load balancer that runs Apache mod_proxy_balancer configuration",
    after_help = "Examples:\n  ringproxy -f /etc/apache2/sites-enabled/lb.conf      run in the foreground\n  ringproxy -t -f lb.conf                              check the config, print Syntax OK\n  ringproxy -f lb.conf --workers 4                     four worker threads\n  RINGPROXY_DRIVER=epoll ringproxy -f lb.conf          force the epoll driver\n  ringproxy demo                                       built-in demo on loopback"
)]
struct Cli {
    /// Configuration file (Apache httpd syntax).
    #[arg(short = 'f', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check the configuration and exit (like `apache2 -t`).
    #[arg(short = 't', long = "test")]
    test: bool,
    /// Define a parameter for <IfDefine> (like `httpd -D NAME`).
    #[arg(short = 'D', value_name = "NAME")]
    defines: Vec<String>,
    /// With -t: also print the effective configuration (same as -D DUMP_CONFIG).
    #[arg(long)]
    dump: bool,
    /// Worker threads (overrides WorkerThreads; default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Event driver: auto (io_uring, falling back to epoll) or epoll.
    #[arg(long, value_parser = ["auto", "epoll"])]
    driver: Option<String>,
    /// Signal the running instance found through the config's PidFile (like apachectl):
    /// stop or graceful-stop (both finish in-flight requests first), graceful or restart
    /// (reload the configuration without dropping a connection).
    #[arg(short = 'k', value_name = "SIGNAL", value_parser = ["stop", "graceful-stop", "graceful", "restart"])]
    signal: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the manual page (roff) to stdout (the Debian package installs it).
    #[command(hide = true)]
    Man,
    /// Run ringproxy with an embedded config in front of two built-in demo backends.
    Demo {
        /// How long the demo keeps serving after the scripted requests.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Proxy port on 127.0.0.1 (0 = any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Man) = cli.command {
        let man = clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).section("8");
        return match man.render(&mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ringproxy: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Demo { seconds, port }) = cli.command {
        let _log = ringproxy::observe::logging::init(config::LogLevel::Warn, None);
        return match ringproxy::demo::run(seconds, port) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("demo failed: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let Some(path) = cli.config else {
        eprintln!("ringproxy: no configuration given; use -f FILE (or `ringproxy demo`)");
        return ExitCode::from(2);
    };
    let dump = cli.dump || cli.defines.iter().any(|d| d == "DUMP_CONFIG");
    let opts = LoadOptions {
        defines: cli.defines,
        ..Default::default()
    };
    let config_path = path.clone();
    let cfg = match config::load(&path, &opts) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("{} error(s) in {}", errors.len(), path.display());
            return ExitCode::FAILURE;
        }
    };
    if let Some(sig) = cli.signal.as_deref() {
        return signal_running(&cfg, sig);
    }
    if cli.test {
        for w in &cfg.warnings {
            eprintln!("warning: {w}");
        }
        if dump {
            print!("{}", cfg.dump());
        }
        eprintln!("{}", cfg.summary());
        println!("Syntax OK");
        return ExitCode::SUCCESS;
    }
    // Kept to the end of main: dropping it writes the lines still queued.
    let _log = match ringproxy::observe::logging::init(
        cfg.core.log_level,
        cfg.core.error_log.as_deref(),
    ) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("ringproxy: cannot open ErrorLog: {e}");
            return ExitCode::FAILURE;
        }
    };
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let driver = match cli.driver.as_deref() {
        Some("epoll") => DriverChoice::Epoll,
        Some(_) => DriverChoice::Auto,
        None => runtime::driver_from_env(),
    };
    // Signals are registered before the workers start so none is missed.
    let mut signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGUSR1, SIGHUP])
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ringproxy: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let pid_file = cfg.core.pid_file.clone();
    if let Some(pid) = pid_file.as_deref().and_then(already_running) {
        eprintln!(
            "ringproxy: ringproxy (pid {pid}) already running (PidFile {})",
            pid_file
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
        return ExitCode::FAILURE;
    }
    // User/Group: resolved when the configuration was read, applied after binding.
    let drop_to = privileges(&cfg);
    let server = match runtime::start(
        Arc::new(cfg),
        RunOptions {
            workers: cli.workers,
            driver,
            hold_accepts: true,
        },
    ) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            eprintln!("ringproxy: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(p) = &pid_file {
        if let Err(e) = std::fs::write(p, format!("{}\n", std::process::id())) {
            tracing::warn!("cannot write PidFile {}: {e}", p.display());
        }
    }
    if let Some((uid, gid)) = drop_to {
        if let Some(p) = &pid_file {
            if let Err(e) = pid_file_remover(p) {
                tracing::warn!("PidFile {} will not be removed at exit: {e}", p.display());
            }
        }
        // SAFETY: plain credential system calls; glibc applies them to every thread.
        let ok = unsafe {
            libc::setgroups(1, &gid) == 0 && libc::setgid(gid) == 0 && libc::setuid(uid) == 0
        };
        if !ok {
            tracing::error!(
                "cannot drop privileges to uid {uid} gid {gid}: {}",
                std::io::Error::last_os_error()
            );
            server.shutdown();
            server.join();
            return ExitCode::FAILURE;
        }
        tracing::info!("running as uid {uid} gid {gid}");
    }
    // Listeners bound, privileges dropped: only now are connections accepted.
    server.open();
    systemd::ready(&server);
    systemd::watchdog(&server);
    for sig in signals.forever() {
        if sig == SIGHUP {
            systemd::reloading();
            let (ok, status) = reload(&server, &config_path, &opts);
            systemd::reloaded(&status);
            if let Some(p) = &pid_file {
                reload_outcome::write(p, ok, &status);
            }
            continue;
        }
        if sig == SIGUSR1 {
            // logrotate: every worker reopens its access logs at its next flush.
            ringproxy::observe::accesslog::REOPEN_GENERATION
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(target: NOTICE, "SIGUSR1 received. Reopening the error and access logs");
            continue;
        }
        tracing::info!(target: NOTICE, "caught signal {sig}, shutting down gracefully");
        systemd::stopping();
        break;
    }
    server.shutdown();
    server.join();
    if let Some(p) = &pid_file {
        let _ = std::fs::remove_file(p);
        reload_outcome::remove(p);
    }
    tracing::info!(target: NOTICE, "stopped");
    ExitCode::SUCCESS
}

/// SIGHUP / `-k graceful`: re-read the file; an invalid one changes nothing.
fn reload(server: &runtime::Server, path: &std::path::Path, opts: &LoadOptions) -> (bool, String) {
    tracing::info!(
        target: NOTICE,
        "SIGHUP received. Doing graceful reload of {}",
        path.display()
    );
    let cfg = match config::load(path, opts) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors {
                tracing::error!("reload: {e}");
            }
            let status = format!(
                "reload refused: {} error(s) in {}; still running the previous configuration",
                errors.len(),
                path.display()
            );
            tracing::error!("{status}");
            return (false, status);
        }
    };
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    match server.reload(cfg) {
        Ok(generation) => {
            let status = format!(
                "ringproxy/{} configured (generation {generation}) -- resuming normal operations",
                env!("CARGO_PKG_VERSION")
            );
            tracing::info!(target: NOTICE, "{status}");
            (true, status)
        }
        Err(e) => {
            let status = format!("reload refused: {e}; still running the previous configuration");
            tracing::error!("{status}");
            (false, status)
        }
    }
}

/// `-k stop|graceful-stop|graceful|restart`: a signal to the PID in the config's PidFile
/// (TERM to stop, HUP to reload), as apachectl does.
fn signal_running(cfg: &config::Config, sig: &str) -> ExitCode {
    // Both reload forms are graceful: requests in flight always finish.
    let signo = if sig == "graceful" || sig == "restart" {
        libc::SIGHUP
    } else {
        libc::SIGTERM
    };
    let Some(pid_file) = &cfg.core.pid_file else {
        eprintln!("ringproxy: -k {sig} needs a PidFile in the configuration");
        return ExitCode::FAILURE;
    };
    let pid: i32 = match std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        Some(p) if p > 0 => p,
        _ => {
            eprintln!(
                "ringproxy: no running instance ({} is missing or empty)",
                pid_file.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let before = reload_outcome::read(pid_file);
    // Both stop forms finish in-flight requests within GracefulShutdownTimeout.
    // SAFETY: kill(2) with a PID read from our own PidFile; no memory is involved.
    if unsafe { libc::kill(pid, signo) } != 0 {
        eprintln!(
            "ringproxy: cannot signal process {pid}: {}",
            std::io::Error::last_os_error()
        );
        return ExitCode::FAILURE;
    }
    if signo != libc::SIGHUP {
        return ExitCode::SUCCESS;
    }
    // A reload is answered: the running process writes its outcome next to the PidFile,
    // so `-k graceful` (and `systemctl reload` through it) fails when the reload was
    // refused, not only when the file is broken.
    match reload_outcome::wait_change(pid_file, before.as_deref()) {
        Some((true, msg)) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Some((false, msg)) => {
            eprintln!("ringproxy: {msg}");
            ExitCode::FAILURE
        }
        None => {
            eprintln!(
                "ringproxy: SIGHUP sent to {pid}; its outcome did not arrive (see its error log)"
            );
            ExitCode::SUCCESS
        }
    }
}

/// A reload's outcome, for `-k graceful` to report: `PIDFILE.reload` holds `ok|refused TIME
/// MESSAGE`, written whole (a temporary file renamed over it).
mod reload_outcome {
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    /// How long `-k graceful` waits for the answer (a reload reads the file and may look
    /// names up); shorter when no answer was ever written (the running process may not be
    /// able to write beside its PidFile, or predate this).
    const WAIT: Duration = Duration::from_secs(30);
    const WAIT_FIRST: Duration = Duration::from_secs(10);

    fn path(pid_file: &Path) -> PathBuf {
        let mut p = pid_file.as_os_str().to_owned();
        p.push(".reload");
        PathBuf::from(p)
    }

    pub fn write(pid_file: &Path, ok: bool, msg: &str) {
        let target = path(pid_file);
        let tmp = target.with_extension("reload.tmp");
        // The time makes each outcome differ from the one before, even the same refusal.
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let verdict = if ok { "ok" } else { "refused" };
        let text = format!("{verdict} {stamp} {}\n", msg.replace('\n', " "));
        let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &target));
        if let Err(e) = written {
            tracing::warn!(
                "cannot write the reload outcome to {}: {e}",
                target.display()
            );
        }
    }

    /// At exit: the answer file goes with the PidFile (best effort).
    pub fn remove(pid_file: &Path) {
        let _ = std::fs::remove_file(path(pid_file));
    }

    pub fn read(pid_file: &Path) -> Option<String> {
        std::fs::read_to_string(path(pid_file)).ok()
    }

    /// The outcome once it differs from `before` (each write carries the time it was
    /// made). `None` after [`WAIT`].
    pub fn wait_change(pid_file: &Path, before: Option<&str>) -> Option<(bool, String)> {
        let deadline = Instant::now() + if before.is_some() { WAIT } else { WAIT_FIRST };
        while Instant::now() < deadline {
            if let Some(now) = read(pid_file).filter(|n| Some(n.as_str()) != before) {
                let now = now.trim_end();
                let (verdict, rest) = now.split_once(' ').unwrap_or((now, ""));
                let msg = rest.split_once(' ').map_or(rest, |(_, m)| m);
                return Some((verdict == "ok", msg.to_string()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// The (uid, gid) to switch to after binding, when started as root with `User` (the names
/// were resolved when the configuration was read).
fn privileges(cfg: &config::Config) -> Option<(libc::uid_t, libc::gid_t)> {
    let user = cfg.core.user.as_ref()?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        tracing::warn!("User {user} ignored: not started as root");
        return None;
    }
    cfg.core.run_as
}

/// apachectl's check: a PidFile naming a live ringproxy means one is running already. A
/// file left by one that died (or by another program since) is stale and rewritten.
fn already_running(pid_file: &std::path::Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if pid <= 0 || pid as u32 == std::process::id() {
        return None;
    }
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim() == "ringproxy").then_some(pid)
}

/// Apache's parent, which stays root, removes the PidFile at exit. ringproxy is one
/// process that gives up root, so before it does, it forks a helper that keeps root and
/// nothing else: the helper closes every descriptor but a pipe from the main process,
/// waits for that pipe to end (the main process exited, however), removes the PidFile and
/// exits. Only async-signal-safe calls run in the helper (it is forked from a process with
/// threads).
fn pid_file_remover(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let cstr = |p: &std::ffi::OsStr| {
        std::ffi::CString::new(p.as_bytes())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))
    };
    let c = cstr(path.as_os_str())?;
    // The reload answer beside it (see `reload_outcome`) goes too.
    let mut answer = path.as_os_str().to_owned();
    answer.push(".reload");
    let c_answer = cstr(&answer)?;
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let (read_end, write_end) = (fds[0], fds[1]);
    // SAFETY: fork(2); the child below only makes async-signal-safe calls and _exits.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => {
            // SAFETY: plain system calls on integers and the path prepared before fork.
            unsafe {
                for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR1] {
                    libc::signal(sig, libc::SIG_IGN);
                }
                // Hold nothing of the main process: no listener, no client connection.
                for fd in 0..read_end {
                    libc::close(fd);
                }
                if libc::syscall(libc::SYS_close_range, read_end + 1, u32::MAX, 0) != 0 {
                    for fd in read_end + 1..65_536 {
                        libc::close(fd);
                    }
                }
                let mut b = 0u8;
                loop {
                    let n = libc::read(read_end, (&mut b as *mut u8).cast(), 1);
                    if n == 0 || (n < 0 && *libc::__errno_location() != libc::EINTR) {
                        break;
                    }
                }
                libc::unlink(c.as_ptr());
                libc::unlink(c_answer.as_ptr());
                libc::_exit(0);
            }
        }
        _ => {
            // SAFETY: closing our copy of the read end; the write end stays open for the
            // life of this process (it is what the helper waits on).
            unsafe { libc::close(read_end) };
            let _ = write_end;
            Ok(())
        }
    }
}

/// systemd's notify protocol (`Type=notify`, contrib/ringproxy.service): READY once the
/// listeners are bound and privileges dropped, RELOADING and READY around a reload with the
/// outcome as the unit's status line, STOPPING on the way out, and watchdog pings while
/// every worker's event loop keeps ticking. Without `NOTIFY_SOCKET` (not started by
/// systemd) nothing is sent.
mod systemd {
    use sd_notify::NotifyState;

    fn send(states: &[NotifyState]) {
        if let Err(e) = sd_notify::notify(false, states) {
            tracing::warn!("systemd notification failed: {e}");
        }
    }

    pub fn ready(server: &ringproxy::runtime::Server) {
        let addrs: Vec<String> = server.addrs.iter().map(ToString::to_string).collect();
        let status = format!("serving on {}", addrs.join(", "));
        send(&[NotifyState::Ready, NotifyState::Status(&status)]);
    }

    pub fn reloading() {
        // systemd 253 and later expect the monotonic time with RELOADING.
        match NotifyState::monotonic_usec_now() {
            Ok(now) => send(&[NotifyState::Reloading, now]),
            Err(_) => send(&[NotifyState::Reloading]),
        }
    }

    /// The reload's outcome: READY again either way (the previous configuration keeps
    /// serving when it was refused), with the outcome as the status `systemctl status`
    /// shows. `systemctl reload` itself fails on a refused file through the unit's
    /// ExecReload, which checks the file first (`ringproxy -k graceful`).
    pub fn reloaded(status: &str) {
        send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub fn stopping() {
        send(&[NotifyState::Stopping]);
    }

    /// With `WatchdogSec=` in the unit: pings at half the interval, each only when every
    /// worker's housekeeping tick moved since the last ping, so a wedged event loop stops
    /// the pings and systemd restarts the service.
    pub fn watchdog(server: &ringproxy::runtime::Server) {
        let mut usec = 0;
        if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
            return;
        }
        let shared = server.shared();
        let every = std::time::Duration::from_micros(usec / 2);
        let spawned = std::thread::Builder::new()
            .name("ringproxy-watchdog".into())
            .spawn(move || {
                let ticks = || -> Vec<u64> {
                    shared
                        .stats
                        .iter()
                        .map(|s| s.ticks.load(std::sync::atomic::Ordering::Relaxed))
                        .collect()
                };
                let mut last = ticks();
                loop {
                    std::thread::sleep(every);
                    let now = ticks();
                    if now.iter().zip(&last).all(|(n, l)| n != l) {
                        send(&[NotifyState::Watchdog]);
                    } else {
                        tracing::error!("watchdog: a worker's event loop has not ticked for {every:?}; not pinging systemd");
                    }
                    last = now;
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start the watchdog thread: {e}");
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
