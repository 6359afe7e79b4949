//! The `ringproxy` binary as an admin runs it: `-t`, start with a config file, SIGTERM,
//! and memory while streaming large bodies.

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_ringproxy");

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ringproxy-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn check(config: &str, name: &str) -> (bool, String, String) {
    let dir = temp_dir(name);
    let path = dir.join(format!("{name}.conf"));
    std::fs::write(&path, config).unwrap();
    let out = Command::new(BIN)
        .arg("-t")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn issue_example_config_passes_dash_t() {
    let example = include_str!("configs/issue-example.conf");
    let (ok, stdout, stderr) = check(example, "example");
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "Syntax OK");
}

#[test]
fn config_errors_name_file_and_line_and_exit_non_zero() {
    let bad = "Listen 127.0.0.1:0\n<Proxy balancer://c>\n  BalancerMember http://127.0.0.1:9 loadfactor=500\n</Proxy>\nProxyPass / balancer://missing/\nKeepAliveTimeout soon\n";
    let (ok, stdout, stderr) = check(bad, "bad");
    assert!(!ok);
    assert!(!stdout.contains("Syntax OK"));
    for want in [
        "bad.conf:3: loadfactor=500: must be between 1 and 100",
        "bad.conf:5: balancer://missing is not defined",
        "bad.conf:6: KeepAliveTimeout",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in:\n{stderr}");
    }
    // Running (not just -t) refuses to start too.
    let path = temp_dir("bad").join("bad.conf");
    let out = Command::new(BIN).arg("-f").arg(&path).output().unwrap();
    assert!(!out.status.success());
}

struct Running {
    child: Child,
    addr: std::net::SocketAddr,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary on a free port with `body` (a config without Listen).
fn run(name: &str, body: &str) -> Running {
    let port = free_port();
    let dir = temp_dir(name);
    let path = dir.join("run.conf");
    std::fs::write(&path, format!("Listen 127.0.0.1:{port}\n{body}")).unwrap();
    let child = start_binary(&path, port);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    Running { child, addr }
}

/// Waits (bounded) for the child to exit and returns its status.
fn wait_exit(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn sixty_four_mib_bodies_stream_without_growing_memory() {
    const SIZE: u64 = 64 << 20;
    let b = backend(|req| {
        if req.request_line().starts_with("GET") {
            Action::Stream(SIZE)
        } else {
            ok(&format!("len={}", req.body_len))
        }
    });
    let p = run(
        "stream",
        &format!(
            "<Proxy balancer://c>\nBalancerMember http://127.0.0.1:{}\n</Proxy>\nProxyPass / balancer://c/\n",
            b.port()
        ),
    );
    let before = vm_hwm_kib(p.child.id());
    let mut c = Client::connect(p.addr);
    // Upload, Content-Length.
    c.send(format!("POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: {SIZE}\r\n\r\n").as_bytes());
    let chunk = vec![b'y'; 1 << 20];
    for _ in 0..64 {
        c.stream.write_all(&chunk).unwrap();
    }
    assert_eq!(
        c.read_response(false).unwrap().text(),
        format!("len={SIZE}")
    );
    // Upload, chunked.
    c.send(b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    for _ in 0..64 {
        c.stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .unwrap();
        c.stream.write_all(&chunk).unwrap();
        c.stream.write_all(b"\r\n").unwrap();
    }
    c.stream.write_all(b"0\r\n\r\n").unwrap();
    assert_eq!(
        c.read_response(false).unwrap().text(),
        format!("len={SIZE}")
    );
    // Download.
    let r = c.get("/down");
    assert_eq!(r.body_len, SIZE);
    let after = vm_hwm_kib(p.child.id());
    // 192 MiB went through; the proxy's peak memory may move by buffers, not bodies.
    assert!(
        after - before < 16 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB"
    );
}

#[test]
fn sigterm_stops_gracefully_with_exit_zero() {
    let b = backend(|_| Action::Delay(Duration::from_millis(300), Box::new(ok("finished"))));
    let mut p = run(
        "sigterm",
        &format!(
            "<Proxy balancer://c>\nBalancerMember http://127.0.0.1:{}\n</Proxy>\nProxyPass / balancer://c/\n",
            b.port()
        ),
    );
    let addr = p.addr;
    let t = std::thread::spawn(move || Client::connect(addr).get("/"));
    let deadline = Instant::now() + IO_TIMEOUT;
    while b.request_count() == 0 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    unsafe {
        libc::kill(p.child.id() as i32, libc::SIGTERM);
    }
    assert_eq!(t.join().unwrap().text(), "finished");
    let status = wait_exit(&mut p.child, "did not exit after SIGTERM");
    assert!(status.success(), "{status:?}");
    let mut rest = String::new();
    let _ = p
        .child
        .stdout
        .take()
        .map(|mut s| s.read_to_string(&mut rest));
}

/// `ringproxy -k SIGNAL -f CONF`.
fn dash_k(signal: &str, conf: &std::path::Path) -> std::process::Output {
    Command::new(BIN)
        .args(["-k", signal])
        .arg("-f")
        .arg(conf)
        .output()
        .unwrap()
}

#[test]
fn dash_k_stop_uses_the_pid_file() {
    let dir = temp_dir("dashk");
    let pid_file = dir.join("ringproxy.pid");
    let mut p = run(
        "dashk",
        &format!(
            "PidFile {}\nProxyPass / http://127.0.0.1:9/\n",
            pid_file.display()
        ),
    );
    let deadline = Instant::now() + IO_TIMEOUT;
    while !pid_file.exists() {
        assert!(Instant::now() < deadline, "PidFile not written");
        std::thread::sleep(Duration::from_millis(10));
    }
    let conf = dir.join("run.conf");
    let out = dash_k("stop", &conf);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = wait_exit(&mut p.child, "did not stop");
    assert!(status.success());
    assert!(!pid_file.exists(), "PidFile removed at exit");
    let out = dash_k("stop", &conf);
    assert!(!out.status.success(), "nothing left to stop");
}

#[test]
fn dash_t_dump_config_prints_what_was_understood() {
    let dir = temp_dir("dump");
    let path = dir.join("example.conf");
    std::fs::write(&path, include_str!("configs/issue-example.conf")).unwrap();
    for flags in [&["-t", "-D", "DUMP_CONFIG"][..], &["-t", "--dump"][..]] {
        let out = Command::new(BIN)
            .args(flags)
            .arg("-f")
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        for want in [
            "VirtualHost *:8080 (lb.example)",
            "ProxyPass /static -> ! (not proxied)",
            "ProxyPassMatch ^(/.*)$ -> balancer://mycluster$1",
            "ProxyPassReverse / <- http://127.0.0.1:9001/",
            "balancer://mycluster: lbmethod ByRequests",
            "stickysession BALANCEID",
            "member http://127.0.0.1:9001 = 127.0.0.1:9001 loadfactor 5.00 lbset 0 route node1",
            "Syntax OK",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
    }
}

/// Waits (bounded) until `file` contains `text`; returns the file's text.
fn wait_for_log(file: &std::path::Path, text: &str) -> String {
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let log = std::fs::read_to_string(file).unwrap_or_default();
        if log.contains(text) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "{text:?} never logged; log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sighup_reloads_and_an_invalid_file_keeps_the_old_configuration() {
    let a = backend(|_| ok("a"));
    let b = backend(|_| ok("b"));
    let dir = temp_dir("sighup");
    let error_log = dir.join("error.log");
    let pid_file = dir.join("ringproxy.pid");
    let body = |port: u16, extra: &str| {
        format!(
            "ErrorLog {}\nLogLevel info\nPidFile {}\n<Proxy balancer://c>\nBalancerMember http://127.0.0.1:{port}\n</Proxy>\nProxyPass / balancer://c/\n{extra}",
            error_log.display(),
            pid_file.display()
        )
    };
    let mut p = run("sighup", &body(a.port(), ""));
    let conf = dir.join("run.conf");
    let listen = std::fs::read_to_string(&conf)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let mut kept = Client::connect(p.addr);
    assert_eq!(kept.get("/").text(), "a");

    // A broken file: the running configuration stays, the errors are logged.
    std::fs::write(
        &conf,
        format!("{listen}\n{}", body(b.port(), "ProxyRequest Off\n")),
    )
    .unwrap();
    // SAFETY: a signal to the child this test started.
    unsafe {
        libc::kill(p.child.id() as i32, libc::SIGHUP);
    }
    let log = wait_for_log(&error_log, "reload refused");
    assert!(log.contains("run.conf:"), "errors carry file:line:\n{log}");
    assert_eq!(kept.get("/").text(), "a");
    assert_eq!(Client::connect(p.addr).get("/").text(), "a");

    // A valid one through `-k graceful` (apachectl's form, via the PidFile).
    std::fs::write(&conf, format!("{listen}\n{}", body(b.port(), ""))).unwrap();
    let out = dash_k("graceful", &conf);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for_log(&error_log, "configuration reloaded (generation 2)");
    assert!(String::from_utf8_lossy(&out.stdout).contains("resuming normal operations"));
    assert_eq!(kept.get("/").text(), "b", "kept-alive connection moved on");
    assert_eq!(Client::connect(p.addr).get("/").text(), "b");
    // A file that reads well but asks for what a reload cannot do (a new Listen): the
    // running process refuses it, and `-k graceful` (so `systemctl reload`) fails saying so.
    let other = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    std::fs::write(&conf, format!("Listen {other}\n{}", body(b.port(), ""))).unwrap();
    let out = dash_k("graceful", &conf);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("reload refused"), "{err}");
    assert!(p.child.try_wait().unwrap().is_none(), "still running");
}

#[test]
fn user_and_group_drop_privileges_after_binding() {
    let b = backend(|_| ok("served"));
    // The PidFile's directory is root's alone (as /run is): the process running as nobody
    // cannot remove the file itself at exit.
    let run_dir = temp_dir("user-run");
    let pid_file = run_dir.join("rp.pid");
    let mut p = run(
        "user",
        &format!(
            "User nobody\nPidFile {}\nProxyPass / http://127.0.0.1:{}/\n",
            pid_file.display(),
            b.port()
        ),
    );
    assert_eq!(Client::connect(p.addr).get("/").text(), "served");
    let status = std::fs::read_to_string(format!("/proc/{}/status", p.child.id())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        // Real, effective, saved and filesystem uid are all nobody's (65534 on Debian).
        let uids: Vec<&str> = uid_line.split_whitespace().skip(1).collect();
        assert!(
            uids.iter().all(|u| *u == uids[0] && *u != "0"),
            "{uid_line}"
        );
    } else {
        // Not root: User is ignored with a warning and the proxy runs as it was started.
        assert!(!uid_line.contains("\t0\t"), "{uid_line}");
    }
    // Stopped, the PidFile goes (removed by the helper that kept root, as Apache's parent).
    assert!(pid_file.exists());
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(p.child.id() as i32, libc::SIGTERM) };
    wait_exit(&mut p.child, "did not stop");
    wait_until("the PidFile is removed", || !pid_file.exists());
    // A user that does not exist stops the start with a message.
    let dir = temp_dir("user-bad");
    let path = dir.join("bad.conf");
    std::fs::write(
        &path,
        "Listen 127.0.0.1:0\nUser no-such-user-here\nProxyPass / http://127.0.0.1:9/\n",
    )
    .unwrap();
    let out = Command::new(BIN).arg("-f").arg(&path).output().unwrap();
    if root {
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("no such user"));
    }
}

/// A second instance on the same `Listen` fails to start (SO_REUSEPORT would otherwise let
/// it share the first one's traffic), saying why; the first keeps serving.
#[test]
fn a_second_instance_on_the_same_port_fails_to_start() {
    let first = run("second-instance", "");
    let dir = temp_dir("second-instance-b");
    let path = dir.join("b.conf");
    std::fs::write(&path, format!("Listen {}\n", first.addr)).unwrap();
    let out = Command::new(BIN)
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
        .wait_with_output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Address already in use"), "{err}");
    assert!(std::net::TcpStream::connect(first.addr).is_ok());
}

/// `-t` finds what the start would fail on, at its line: an unknown `User` or `Group`, a
/// log or PidFile directory that does not exist.
#[test]
fn dash_t_checks_users_groups_and_directories() {
    let (ok, _, err) = check(
        "Listen 127.0.0.1:0\nUser no-such-user-here\nErrorLog /no-such-dir-here/error.log\n\
         CustomLog /no-such-dir-here/access.log common\nPidFile /no-such-dir-here/rp.pid\n\
         ProxyPass / http://127.0.0.1:9/\n",
        "startchecks",
    );
    assert!(!ok);
    for want in [
        "startchecks.conf:2: User no-such-user-here: no such user",
        "startchecks.conf:3: ErrorLog /no-such-dir-here/error.log: directory /no-such-dir-here does not exist",
        "startchecks.conf:4: CustomLog /no-such-dir-here/access.log: directory /no-such-dir-here does not exist",
        "startchecks.conf:5: PidFile /no-such-dir-here/rp.pid: directory /no-such-dir-here does not exist",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    let (ok, _, err) = check(
        "Listen 127.0.0.1:0\nUser root\nGroup no-such-group-here\nProxyPass / http://127.0.0.1:9/\n",
        "startchecks-group",
    );
    assert!(!ok);
    assert!(
        err.contains("Group no-such-group-here: no such group"),
        "{err}"
    );
}

/// As apachectl: a PidFile naming a running ringproxy stops a second start; a stale one
/// (its process gone) is rewritten.
#[test]
fn a_pid_file_of_a_running_instance_stops_a_second_start() {
    let dir = temp_dir("pidfile-running");
    let pid_file = dir.join("rp.pid");
    let first = run(
        "pidfile-running-a",
        &format!("PidFile {}\n", pid_file.display()),
    );
    let pid = wait_for_log(&pid_file, "\n");
    assert_eq!(pid.trim(), first.child.id().to_string());
    let path = dir.join("second.conf");
    std::fs::write(
        &path,
        format!("Listen 127.0.0.1:0\nPidFile {}\n", pid_file.display()),
    )
    .unwrap();
    let out = Command::new(BIN).arg("-f").arg(&path).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "ringproxy (pid {}) already running",
            first.child.id()
        )),
        "{err}"
    );
    drop(first);
    // Killed without a chance to clean up: the file is stale, and a new start takes it.
    std::fs::write(&pid_file, format!("{}\n", u32::MAX / 2)).unwrap();
    let second = run(
        "pidfile-running-b",
        &format!("PidFile {}\n", pid_file.display()),
    );
    wait_for_log(&pid_file, &second.child.id().to_string());
}

/// Start, SIGUSR1 and stop are in the error log at the default LogLevel (warn), as
/// Apache's notice lines are.
#[test]
fn start_reopen_and_stop_are_logged_at_the_default_level() {
    let dir = temp_dir("lifecycle");
    let log = dir.join("error.log");
    let mut p = run("lifecycle", &format!("ErrorLog {}\n", log.display()));
    wait_for_log(&log, "configured -- resuming normal operations");
    // logrotate: the file moved away, then SIGUSR1; the error log reopens too, and the
    // lines from then on go to the new file.
    let rotated = dir.join("error.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(p.child.id() as i32, libc::SIGUSR1) };
    wait_for_log(&log, "[proxy:notice] [pid");
    wait_for_log(&log, "SIGUSR1 received");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(
        old.contains("resuming normal operations") && !old.contains("SIGUSR1"),
        "{old}"
    );
    // SAFETY: as above.
    unsafe { libc::kill(p.child.id() as i32, libc::SIGTERM) };
    wait_exit(&mut p.child, "did not stop");
    let text = wait_for_log(&log, "shutting down gracefully");
    assert!(text.contains("stopped"), "{text}");
}

/// A 64 MiB static file to eight clients at once, twice over: the file's bytes never pass
/// through the proxy's memory (sendfile), so its peak RSS moves by buffers only.
#[test]
fn large_static_files_under_load_keep_memory_flat() {
    const SIZE: u64 = 64 << 20;
    let dir = temp_dir("static-mem");
    let root = dir.join("www");
    std::fs::create_dir_all(&root).unwrap();
    let f = std::fs::File::create(root.join("big.bin")).unwrap();
    f.set_len(SIZE).unwrap();
    let p = run("static-mem", &format!("DocumentRoot {}\n", root.display()));
    let before = vm_hwm_kib(p.child.id());
    for _ in 0..2 {
        let clients: Vec<_> = (0..8)
            .map(|_| {
                let addr = p.addr;
                std::thread::spawn(move || Client::connect(addr).get("/big.bin"))
            })
            .collect();
        for c in clients {
            let r = c.join().unwrap();
            assert_eq!((r.status, r.body_len, r.truncated), (200, SIZE, false));
        }
    }
    let after = vm_hwm_kib(p.child.id());
    assert!(
        after - before < 16 * 1024,
        "1 GiB of files sent; peak RSS grew from {before} KiB to {after} KiB"
    );
}

/// A balancer-manager change is in the error log at the default LogLevel: who, what, old
/// and new.
#[test]
fn manager_changes_are_logged_at_the_default_level() {
    let dir = temp_dir("manager-log");
    let log = dir.join("error.log");
    let b = backend(|_| ok("m"));
    let member = format!("http://127.0.0.1:{}", b.port());
    let p = run(
        "manager-log",
        &format!(
            "ErrorLog {}\n<Proxy balancer://app>\nBalancerMember {member}\n</Proxy>\n\
             <Location /balancer-manager>\nSetHandler balancer-manager\nRequire local\n</Location>\n\
             ProxyPass /balancer-manager !\nProxyPass / balancer://app/\n",
            log.display()
        ),
    );
    let state: serde_json::Value =
        serde_json::from_str(&Client::connect(p.addr).get("/balancer-manager?json").text())
            .unwrap();
    let nonce = state["balancers"][0]["nonce"].as_str().unwrap().to_string();
    let form = format!("b=app&w={}&nonce={nonce}&w_status_D=1", url_enc(&member));
    let mut c = Client::connect(p.addr);
    c.send(
        format!(
            "POST /balancer-manager HTTP/1.1\r\nHost: lb.test\r\nReferer: http://lb.test/balancer-manager\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        )
        .as_bytes(),
    );
    assert_eq!(c.read_response(false).unwrap().status, 303);
    let text = wait_for_log(&log, "balancer-manager: 127.0.0.1 changed balancer://app");
    assert!(
        text.contains("[proxy:notice]") && text.contains("flag D: false -> true"),
        "{text}"
    );
}

/// systemd's notify protocol, from the socket's side: READY after start, RELOADING then
/// READY with the outcome around a reload (a refused one too), watchdog pings while the
/// workers tick, STOPPING at the end.
#[test]
fn systemd_notifications() {
    use std::os::unix::net::UnixDatagram;
    let dir = temp_dir("notify");
    let sock_path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&sock_path);
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.join("n.conf");
    let good = format!("Listen 127.0.0.1:{port}\nProxyPass / http://127.0.0.1:9/\n");
    std::fs::write(&conf, &good).unwrap();
    // The watchdog is for the main process only: WATCHDOG_PID is the shell's PID, which
    // `exec` hands to ringproxy.
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "WATCHDOG_PID=$$ WATCHDOG_USEC=300000 exec {BIN} -f {} --workers 1",
            conf.display()
        ))
        .env("NOTIFY_SOCKET", &sock_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let next = || -> String {
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    // Skips watchdog pings until a message holding `want`.
    let until = |want: &str| -> String {
        loop {
            let m = next();
            if m.trim() == "WATCHDOG=1" {
                continue;
            }
            assert!(m.contains(want), "expected {want:?}, got {m:?}");
            return m;
        }
    };
    let ready = until("READY=1");
    assert!(
        ready.contains(&format!("STATUS=serving on 127.0.0.1:{port}")),
        "{ready}"
    );
    // A broken file: RELOADING, then READY with the refusal as the status.
    std::fs::write(&conf, "Listen 127.0.0.1:0\nBogusDirective x\n").unwrap();
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    assert!(until("RELOADING=1").contains("MONOTONIC_USEC="));
    assert!(until("READY=1").contains("STATUS=reload refused"));
    std::fs::write(&conf, &good).unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    until("RELOADING=1");
    assert!(until("READY=1").contains("resuming normal operations"));
    // Pings come at half of WATCHDOG_USEC while the worker ticks.
    let m = next();
    assert_eq!(m.trim(), "WATCHDOG=1");
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    until("STOPPING=1");
    wait_exit(&mut child, "did not stop");
}
