//! The README's first command: ringproxy with an embedded example config in front of two
//! built-in demo backends on loopback, driven by a few requests so the balancing shows.
//!
//! The demo backends are deliberately plain (a thread per connection, std I/O): they stand
//! in for the admin's application servers and are not part of the proxy.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{load_str, LoadOptions};
use crate::runtime::{self, RunOptions};

/// The example from the Apache guides, with ports filled in at run time.
pub const DEMO_CONFIG: &str = r#"# ringproxy demo: the balancer block as an Apache admin writes it.
Listen 127.0.0.1:{PROXY_PORT}
<VirtualHost *:{PROXY_PORT}>
  ServerName lb.example
  ProxyRequests Off
  <Proxy balancer://mycluster>
    BalancerMember http://127.0.0.1:{B1} route=node1 loadfactor=5
    BalancerMember http://127.0.0.1:{B2} route=node2
    ProxySet lbmethod=byrequests stickysession=BALANCEID
  </Proxy>
  ProxyPass /static !
  ProxyPassMatch ^(/.*)$ balancer://mycluster$1
  ProxyPassReverse / http://127.0.0.1:{B1}/
  ProxyPassReverse / http://127.0.0.1:{B2}/
  ProxyPassReverseCookieDomain 127.0.0.1 lb.example
</VirtualHost>
"#;

/// Starts a demo backend answering `hello from NAME` on keep-alive connections.
pub fn spawn_demo_backend(name: &'static str) -> std::io::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?;
    std::thread::Builder::new()
        .name(format!("demo-{name}"))
        .spawn(move || {
            for s in l.incoming().flatten() {
                std::thread::spawn(move || serve_demo(s, name));
            }
        })?;
    Ok(addr)
}

fn serve_demo(s: TcpStream, name: &str) {
    let _ = s.set_nodelay(true);
    let Ok(mut w) = s.try_clone() else { return };
    let mut r = BufReader::new(s);
    loop {
        let mut len = 0usize;
        let mut line = String::new();
        let mut first = true;
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if first && line.trim().is_empty() {
                continue;
            }
            first = false;
            if line == "\r\n" || line == "\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let text = format!("hello from {name}\n");
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        );
        if w.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

/// A running demo: the proxy, its config text and the two backends.
pub struct Demo {
    pub server: runtime::Server,
    pub config: String,
    pub backends: [SocketAddr; 2],
}

/// Starts the two demo backends and ringproxy in front of them with [`DEMO_CONFIG`].
pub fn start(port: u16, opts: RunOptions) -> Result<Demo, String> {
    let b1 = spawn_demo_backend("node1").map_err(|e| e.to_string())?;
    let b2 = spawn_demo_backend("node2").map_err(|e| e.to_string())?;
    // The vhost names its port, as real configs do, so the port is fixed before the config
    // is written.
    let port = if port == 0 {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port()
    } else {
        port
    };
    let text = DEMO_CONFIG
        .replace("{PROXY_PORT}", &port.to_string())
        .replace("{B1}", &b1.port().to_string())
        .replace("{B2}", &b2.port().to_string());
    let cfg = load_str(&text, "demo.conf", &LoadOptions::default()).map_err(|errs| {
        errs.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let server = runtime::start(Arc::new(cfg), opts).map_err(|e| e.to_string())?;
    Ok(Demo {
        server,
        config: text,
        backends: [b1, b2],
    })
}

/// Runs the demo for `seconds`, printing what a user should see.
pub fn run(seconds: u64, port: u16) -> Result<(), String> {
    let Demo {
        server,
        config: text,
        backends: [b1, b2],
    } = start(port, RunOptions::default())?;
    let addr = server.addrs[0];
    println!("ringproxy demo");
    println!("  backends: node1 on {b1} (loadfactor=5), node2 on {b2} (loadfactor=1)");
    println!(
        "  proxy:    http://{addr}/  ({} worker thread(s))",
        server.workers()
    );
    println!("\nconfig in use:\n{text}");
    println!("12 requests through the proxy on one keep-alive connection:");
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut r = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
    for i in 1..=12 {
        s.write_all(format!("GET /hello/{i} HTTP/1.1\r\nHost: lb.example\r\n\r\n").as_bytes())
            .map_err(|e| e.to_string())?;
        let mut status = String::new();
        r.read_line(&mut status).map_err(|e| e.to_string())?;
        let mut len = 0;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).map_err(|e| e.to_string())?;
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).map_err(|e| e.to_string())?;
        println!(
            "  GET /hello/{i:<3} -> {} {}",
            status.trim(),
            String::from_utf8_lossy(&body).trim()
        );
    }
    println!("\nbyrequests with loadfactor 5:1 sends five of every six requests to node1.");
    println!("Try it yourself while the demo runs ({seconds} s):  curl -v http://{addr}/anything");
    std::thread::sleep(Duration::from_secs(seconds));
    server.shutdown();
    server.join();
    println!("demo finished");
    Ok(())
}
