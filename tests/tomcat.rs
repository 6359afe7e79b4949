//! ringproxy in front of two real Tomcat 10 instances through AJP, as the deployments it is
//! for run them: AJP connectors on loopback with a `secret`, `jvmRoute` node1 and node2,
//! sticky sessions on JSESSIONID, the examples webapp (Debian's `tomcat10-examples`; its
//! servlets are precompiled). Each Tomcat runs from a `CATALINA_BASE` of its own under a
//! temporary folder.
//!
//! Needs the `tomcat10` and `tomcat10-examples` packages: without them the test says so and
//! passes, unless RINGPROXY_TOMCAT_REQUIRED=1 (as `.ci/run` sets, after installing them).

mod common;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const HOME: &str = "/usr/share/tomcat10";
const EXAMPLES: &str = "/usr/share/tomcat10-examples/examples";
const SECRET: &str = "ringproxy-test-secret";

fn available() -> bool {
    let there = Path::new(HOME).join("bin/bootstrap.jar").exists() && Path::new(EXAMPLES).exists();
    if !there {
        assert!(
            std::env::var("RINGPROXY_TOMCAT_REQUIRED").is_err(),
            "RINGPROXY_TOMCAT_REQUIRED is set but tomcat10 and tomcat10-examples are not installed"
        );
        eprintln!("tomcat10 or tomcat10-examples not installed: the Tomcat test did not run");
    }
    there
}

/// One Tomcat instance; stopped (killed) when dropped.
struct Tomcat {
    base: PathBuf,
    port: u16,
    route: &'static str,
    child: Option<Child>,
}

impl Tomcat {
    fn new(dir: &Path, route: &'static str) -> Tomcat {
        let base = dir.join(route);
        for d in ["conf", "logs", "temp", "work", "webapps"] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        for f in ["web.xml", "catalina.properties", "logging.properties"] {
            std::fs::copy(
                Path::new(HOME).join("etc").join(f),
                base.join("conf").join(f),
            )
            .unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(
            base.join("conf/server.xml"),
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector protocol="AJP/1.3" address="127.0.0.1" port="{port}" secret="{SECRET}" redirectPort="8443"/>
    <Engine name="Catalina" defaultHost="localhost" jvmRoute="{route}">
      <Host name="localhost" appBase="webapps" unpackWARs="false" autoDeploy="false">
        <Context path="/examples" docBase="{EXAMPLES}"/>
      </Host>
    </Engine>
  </Service>
</Server>
"#
            ),
        )
        .unwrap();
        let mut t = Tomcat {
            base,
            port,
            route,
            child: None,
        };
        t.start();
        t
    }

    /// Starts the JVM and waits (bounded) for the AJP connector: startup takes seconds on
    /// a busy 2-core machine, and the connector listens only once the webapp is deployed.
    fn start(&mut self) {
        let log = std::fs::File::create(self.base.join("logs/out.log")).unwrap();
        let child = Command::new("java")
            .arg("-cp")
            .arg(format!(
                "{HOME}/bin/bootstrap.jar:{HOME}/bin/tomcat-juli.jar"
            ))
            .arg(format!("-Dcatalina.home={HOME}"))
            .arg(format!("-Dcatalina.base={}", self.base.display()))
            .arg(format!(
                "-Djava.io.tmpdir={}",
                self.base.join("temp").display()
            ))
            .arg("-Xshare:auto")
            .arg("org.apache.catalina.startup.Bootstrap")
            .arg("start")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("java");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(90);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            let log = std::fs::read_to_string(self.base.join("logs/out.log")).unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "Tomcat {} did not start:\n{log}",
                self.route
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Tomcat {
    fn drop(&mut self) {
        self.stop();
    }
}

fn get(p: &ringproxy::runtime::Server, path: &str, cookie: Option<&str>) -> Response {
    let mut c = Client::connect(p.addrs[0]);
    let cookie = cookie
        .map(|v| format!("Cookie: {v}\r\n"))
        .unwrap_or_default();
    c.send(format!("GET {path} HTTP/1.1\r\nHost: app.test\r\n{cookie}\r\n").as_bytes());
    c.read_response(false).expect("a response")
}

#[test]
fn two_tomcats_through_ajp() {
    if !available() {
        return;
    }
    let dir = Dir::new("tomcat");
    let (n1, mut n2) = (Tomcat::new(&dir.0, "node1"), Tomcat::new(&dir.0, "node2"));
    let p = proxy(&format!(
        "Listen 127.0.0.1:0\n<Location /balancer-manager>\nSetHandler balancer-manager\nRequire local\n</Location>\nProxyPass /balancer-manager !\n<Proxy balancer://tomcat>\nBalancerMember ajp://127.0.0.1:{} route=node1 secret={SECRET} ping=2 hcmethod=CPING hcinterval=200ms\nBalancerMember ajp://127.0.0.1:{} route=node2 secret={SECRET} ping=2 hcmethod=CPING hcinterval=200ms\n</Proxy>\nProxyPass /examples balancer://tomcat/examples stickysession=JSESSIONID|jsessionid\n",
        n1.port, n2.port
    ));
    let servlet = "/examples/servlets/servlet";

    // A plain page, with the reason phrase Tomcat leaves out.
    let r = get(&p, &format!("{servlet}/HelloWorldExample"), None);
    assert!(r.head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", r.head);
    assert!(r.text().contains("Hello World!"));

    // A session: its id carries the node's jvmRoute; 20 requests with the cookie, then 20
    // with the id in the URL, all reach that node and see the attribute set on it.
    let r = get(
        &p,
        &format!("{servlet}/SessionExample?dataname=k&datavalue=v42"),
        None,
    );
    let cookie = r.header("set-cookie").expect("a session cookie");
    let id = cookie
        .strip_prefix("JSESSIONID=")
        .and_then(|c| c.split(';').next())
        .expect("JSESSIONID")
        .to_string();
    let node = id.rsplit('.').next().unwrap().to_string();
    assert!(node == "node1" || node == "node2", "{id}");
    let jar = format!("JSESSIONID={id}");
    for _ in 0..20 {
        let r = get(&p, &format!("{servlet}/SessionExample"), Some(&jar));
        assert!(
            r.text().contains("k = v42"),
            "the session moved: {}",
            r.text()
        );
    }
    for _ in 0..20 {
        let r = get(
            &p,
            &format!("{servlet}/SessionExample;jsessionid={id}"),
            None,
        );
        assert!(
            r.text().contains("k = v42"),
            "the session moved: {}",
            r.text()
        );
    }

    // A form POST, and what the servlet knows of the client.
    let mut c = Client::connect(p.addrs[0]);
    let form = "firstname=Ada&lastname=Lovelace";
    c.send(format!("POST {servlet}/RequestParamExample HTTP/1.1\r\nHost: app.test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}", form.len()).as_bytes());
    let r = c.read_response(false).unwrap();
    assert!(
        r.text().contains("Ada") && r.text().contains("Lovelace"),
        "{}",
        r.text()
    );
    let info = get(&p, &format!("{servlet}/RequestInfoExample"), None).text();
    assert!(
        info.contains("127.0.0.1") && info.contains("HTTP/1.1"),
        "{info}"
    );

    // node2 stops: every request is answered by node1, and the CPING health check takes
    // node2 out; back, it is taken in again.
    let status = |i: usize| {
        manager_state(&p)["balancers"][0]["members"][i]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    n2.stop();
    for _ in 0..10 {
        let r = get(&p, &format!("{servlet}/HelloWorldExample"), None);
        assert_eq!(r.status, 200);
    }
    wait_until("node2 is taken out", || status(1).contains('C'));
    n2.start();
    wait_until("node2 is taken in again", || !status(1).contains('C'));
    assert!(!status(0).contains('C'));
    drop(n1);
}
