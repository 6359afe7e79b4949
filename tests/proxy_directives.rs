//! mod_proxy's ProxyVia and ProxyErrorOverride, as Apache applies them.

mod common;

use common::*;

fn site(member: &Backend, lines: &str) -> ringproxy::runtime::Server {
    proxy(&format!(
        "Listen 127.0.0.1:0\nServerName lb.example\n{lines}\nProxyPass / http://127.0.0.1:{}/\n",
        member.port()
    ))
}

fn get(p: &ringproxy::runtime::Server, path: &str, extra: &str) -> Response {
    let mut c = Client::connect(p.addrs[0]);
    c.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n").as_bytes());
    c.read_response(false).unwrap()
}

#[test]
fn proxy_via_adds_this_hop_or_blocks_the_header() {
    let member = named("app");
    let port = |p: &ringproxy::runtime::Server| p.addrs[0].port();
    // Off (the default): Via passes as sent, nothing added either way.
    let p = site(&member, "");
    let r = get(&p, "/", "Via: 1.0 upstream\r\n");
    assert_eq!(member.last().header("via").as_deref(), Some("1.0 upstream"));
    assert_eq!(r.header("via"), None);
    // On: this hop, after the client's, on the request; on the response too.
    let p = site(&member, "ProxyVia On");
    let r = get(&p, "/", "Via: 1.0 upstream\r\n");
    let hop = format!("1.1 lb.example:{}", port(&p));
    assert_eq!(
        member.last().header("via"),
        Some(format!("1.0 upstream, {hop}"))
    );
    assert_eq!(r.header("via"), Some(hop));
    // Full: with the version.
    let p = site(&member, "ProxyVia Full");
    get(&p, "/", "");
    let via = member.last().header("via").unwrap();
    assert!(
        via.ends_with(&format!("(ringproxy/{})", env!("CARGO_PKG_VERSION"))),
        "{via}"
    );
    // Block: the member gets no Via at all.
    let p = site(&member, "ProxyVia Block");
    let r = get(&p, "/", "Via: 1.0 upstream\r\n");
    assert_eq!(member.last().header("via"), None);
    assert_eq!(r.header("via"), None);
}

#[test]
fn proxy_error_override_answers_the_members_errors_itself() {
    let member = backend(|req| {
        let status = req
            .request_line()
            .split('/')
            .nth(1)
            .unwrap_or("200")
            .split(' ')
            .next()
            .unwrap_or("200")
            .to_string();
        let body = "<stack trace with secrets>";
        Action::Respond(
            format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nX-Member: yes\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        )
    });
    let p = site(&member, "ProxyErrorOverride On 500 503");
    let r = get(&p, "/500", "");
    assert_eq!(r.status, 500);
    assert!(
        !r.text().contains("secrets") && r.header("x-member").is_none(),
        "{}",
        r.text()
    );
    // A status not listed, and a success, pass as the member sent them.
    let r = get(&p, "/404", "");
    assert_eq!((r.status, r.text().contains("secrets")), (404, true));
    assert_eq!(get(&p, "/200", "").status, 200);
    // Without codes, every 4xx and 5xx.
    let p = site(&member, "ProxyErrorOverride On");
    let r = get(&p, "/404", "");
    assert_eq!((r.status, r.text().contains("secrets")), (404, false));
    assert_eq!(
        get(&p, "/302", "").header("x-member").as_deref(),
        Some("yes")
    );
}

#[test]
fn proxy_source_address_is_refused_with_its_reason() {
    let errs = ringproxy::config::load_str(
        "Listen 127.0.0.1:0\nProxySourceAddress 127.0.0.2\nProxyPass / http://127.0.0.1:9/\n",
        "t.conf",
        &ringproxy::config::LoadOptions::default(),
    )
    .err()
    .unwrap();
    assert!(
        errs[0]
            .to_string()
            .starts_with("t.conf:2: ProxySourceAddress is not available"),
        "{errs:?}"
    );
}
