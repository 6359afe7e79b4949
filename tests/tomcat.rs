//! ringproxy in front of two real Tomcat 10 instances through AJP, as the deployments it is
//! for run them: AJP connectors on loopback with a `secret`, `jvmRoute` node1 and node2,
//! sticky sessions on JSESSIONID, the examples webapp (Debian's `tomcat10-examples`; its
//! servlets are precompiled). Each Tomcat runs from a `CATALINA_BASE` of its own under a
//! temporary folder.
//!
//! Needs the `tomcat10` and `tomcat10-examples` packages: without them the test says so and
//! passes, unless RINGPROXY_TOMCAT_REQUIRED=1 (as `.ci/run` sets, after installing them).
//! (The Tomcat instances are `common::Tomcat`.)

mod common;

use common::*;

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
    if !tomcat_available() {
        return;
    }
    let dir = Dir::new("tomcat");
    let (n1, mut n2) = (Tomcat::new(&dir.0, "node1"), Tomcat::new(&dir.0, "node2"));
    let p = proxy(&format!(
        "Listen 127.0.0.1:0\n<Location /balancer-manager>\nSetHandler balancer-manager\nRequire local\n</Location>\nProxyPass /balancer-manager !\n<Proxy balancer://tomcat>\nBalancerMember ajp://127.0.0.1:{} route=node1 secret={TOMCAT_SECRET} ping=2 hcmethod=CPING hcinterval=200ms\nBalancerMember ajp://127.0.0.1:{} route=node2 secret={TOMCAT_SECRET} ping=2 hcmethod=CPING hcinterval=200ms\n</Proxy>\nProxyPass /examples balancer://tomcat/examples stickysession=JSESSIONID|jsessionid\nProxyPass /probe balancer://tomcat/probe\n",
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
    // Large form fields up (Tomcat's maxPostSize is 2 MiB) and back in the page the servlet
    // writes (no Content-Length: chunked to the client): 1.9 MB whole, and 0.9 MB compared
    // byte for byte (the test client keeps the first MiB of a body).
    for len in [1_900_000, 900_000] {
        let big: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        let form = format!("firstname={big}&lastname=L");
        c.send(format!("POST {servlet}/RequestParamExample HTTP/1.1\r\nHost: app.test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}", form.len()).as_bytes());
        let r = c.read_response(false).unwrap();
        assert_eq!((r.status, r.truncated), (200, false));
        assert!(r.body_len > len as u64);
        if r.body_len < 1 << 20 {
            assert!(r.text().contains(&big), "the field came back changed");
        }
    }
    let info = get(&p, &format!("{servlet}/RequestInfoExample"), None).text();
    assert!(
        info.contains("127.0.0.1") && info.contains("HTTP/1.1"),
        "{info}"
    );
    // What a servlet reads of the server: its name from Host, the port the client
    // connected to, and the client's address (a JSP, compiled by the Tomcat at first use).
    let port = p.addrs[0].port();
    let mut c = Client::connect(p.addrs[0]);
    c.send(
        format!("GET /examples/jsp/snp/snoop.jsp HTTP/1.1\r\nHost: app.test:{port}\r\n\r\n")
            .as_bytes(),
    );
    let snoop = c.read_response(false).unwrap().text();
    for want in [
        "Server name: app.test".to_string(),
        format!("Server port: {port}"),
        "Remote address: 127.0.0.1".to_string(),
        "Request Protocol: HTTP/1.1".to_string(),
    ] {
        assert!(snoop.contains(&want), "{want:?} not in {snoop}");
    }

    // What the servlet reads of a request over plain HTTP and over TLS (a second
    // ringproxy terminating TLS in front of the same Tomcats): isSecure and the scheme
    // follow the client's connection, as mod_proxy_ajp's is_ssl makes them.
    let plain = get(&p, "/probe/probe.jsp", None).text();
    assert!(
        plain.contains("secure=false scheme=http name=app.test")
            && plain.contains("remote=127.0.0.1"),
        "{plain}"
    );
    let cert = dir.cert("front", &["app.test"], false);
    let tls = proxy(&format!(
        "Listen 127.0.0.1:0\n<VirtualHost *>\nServerName app.test\nSSLEngine on\nSSLCertificateFile {}\nSSLCertificateKeyFile {}\nProxyPass /probe ajp://127.0.0.1:{}/probe secret={TOMCAT_SECRET}\n</VirtualHost>\n",
        cert.cert.display(),
        cert.key.display(),
        n1.port
    ));
    let port = tls.addrs[0].port();
    let secure = https_get(port, &cert, "app.test", "/probe/probe.jsp").text();
    // The port comes from Host as Tomcat reads it: none written there, the scheme's own.
    assert!(
        secure.contains("secure=true scheme=https name=app.test port=443"),
        "{secure}"
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
