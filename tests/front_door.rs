//! The front door, through real sockets: paths spelled another way never get past
//! `ProxyPass !`, `<Location>` rules or into a second webapp; prefixes match whole segments;
//! what a member receives is the canonical path (or the raw one with `nocanon`); invalid
//! hosts and TRACE are handled as Apache does.

mod common;

use common::*;

/// Two "webapps" on one member, an excluded path, a protected location and the manager
/// page guarded by an exclusion, as a site moving from Apache would have them.
fn site(b: &Backend, extra: &str) -> ringproxy::runtime::Server {
    proxy(&fill(
        &format!(
            "Listen 127.0.0.1:0\n\
             Timeout 5\n\
             {extra}\n\
             <Location /internal>\n  Require ip 10.0.0.0/8\n</Location>\n\
             <Location /balancer-manager>\n  SetHandler balancer-manager\n  Require ip 10.0.0.0/8\n</Location>\n\
             ProxyPass /balancer-manager !\n\
             ProxyPass /private !\n\
             ProxyPass /examples http://127.0.0.1:{{B0}}/examples\n\
             ProxyPass /app http://127.0.0.1:{{B0}}/app\n\
             ProxyPass / http://127.0.0.1:{{B0}}/\n"
        ),
        &[b],
    ))
}

fn echo() -> Backend {
    backend(|req| ok(req.request_line()))
}

fn status_of(p: &ringproxy::runtime::Server, target: &str) -> (u16, String) {
    let mut c = Client::connect(p.addrs[0]);
    c.send(format!("GET {target} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
    let r = c.read_response(false).expect("an answer");
    (r.status, r.text())
}

#[test]
fn traversal_and_encoded_paths_never_pass_exclusions_or_locations() {
    let b = echo();
    let p = site(&b, "");
    // Each of these names an excluded or protected path in another spelling: none may
    // reach the member, and each gets Apache's status.
    let refused: &[(&str, u16)] = &[
        ("/private/x", 404),
        ("//private/x", 404),
        ("/./private/x", 404),
        ("/app/../private/x", 404),
        ("/app/%2e%2e/private/x", 404),
        ("/%70rivate/x", 404),
        ("/%2570rivate", 200), // %25 is '%': the path is "/%70rivate", not /private
        ("/internal/x", 403),
        ("/%69nternal/x", 403),
        ("//internal", 403),
        ("/app/..//internal/x", 403),
        ("/balancer-manager", 403),
        ("//balancer-manager", 403),
        ("/x/../balancer-manager", 403),
        ("/..", 400),
        ("/%2e%2e/etc/passwd", 400),
        ("/app/%2fx", 404),
        ("/app/%00x", 404),
        ("/app/%zz", 400),
        ("/app/..;/private/x", 400),
        ("/examples/..;/manager/html", 400),
        ("/examples/%2e%2e;jsessionid=1/manager/html", 400),
    ];
    for (target, want) in refused {
        let before = b.request_count();
        let (status, body) = status_of(&p, target);
        assert_eq!(status, *want, "{target}: {body}");
        if *want != 200 {
            assert_eq!(b.request_count(), before, "{target} reached the member");
        }
    }
    // `/examples/../manager/` is the manager webapp's path, and goes there as such: the
    // member never receives the `..` that would let a rule on /examples cover it.
    let (status, body) = status_of(&p, "/examples/../manager/html");
    assert_eq!(status, 200);
    assert_eq!(body, "GET /manager/html HTTP/1.1");
}

#[test]
fn members_receive_the_canonical_path() {
    let b = echo();
    let p = site(&b, "");
    let cases = [
        ("/app//a/./b", "/app/a/b"),
        ("/app/%41%62c", "/app/Abc"),
        ("/app/a%20b?q=%20x", "/app/a%20b?q=%20x"),
        ("/app/caf%c3%a9", "/app/caf%C3%A9"),
        ("/app/a%3Fb", "/app/a%3Fb"),
        ("/app/x;jsessionid=1.n1", "/app/x;jsessionid=1.n1"),
        ("/other/%7Euser", "/other/~user"),
    ];
    for (sent, want) in cases {
        let (status, body) = status_of(&p, sent);
        assert_eq!(status, 200, "{sent}");
        assert_eq!(body, format!("GET {want} HTTP/1.1"), "{sent}");
    }
}

#[test]
fn prefixes_match_whole_segments() {
    let b = echo();
    let p = proxy(&fill(
        "Listen 127.0.0.1:0\n\
         <Location /admin>\n  Require all denied\n</Location>\n\
         ProxyPass /static !\n\
         ProxyPass /app http://127.0.0.1:{B0}/v2\n\
         ProxyPass / http://127.0.0.1:{B0}/root/\n",
        &[&b],
    ));
    let cases: &[(&str, u16, &str)] = &[
        ("/app", 200, "GET /v2 HTTP/1.1"),
        ("/app/x", 200, "GET /v2/x HTTP/1.1"),
        ("/app?q=1", 200, "GET /v2?q=1 HTTP/1.1"),
        ("/appx", 200, "GET /root/appx HTTP/1.1"),
        ("/static", 404, ""),
        ("/static/a.css", 404, ""),
        (
            "/staticfiles/a.css",
            200,
            "GET /root/staticfiles/a.css HTTP/1.1",
        ),
        ("/admin", 403, ""),
        ("/admin/x", 403, ""),
        ("/administrator", 200, "GET /root/administrator HTTP/1.1"),
    ];
    for (target, status, body) in cases {
        let (s, text) = status_of(&p, target);
        assert_eq!(s, *status, "{target}: {text}");
        if *status == 200 {
            assert_eq!(text, *body, "{target}");
        }
    }
}

#[test]
fn nocanon_forwards_the_raw_path_but_rules_see_the_normalized_one() {
    let b = echo();
    let p = proxy(&fill(
        "Listen 127.0.0.1:0\n\
         <Location /secret>\n  Require all denied\n</Location>\n\
         ProxyPass /raw http://127.0.0.1:{B0}/raw nocanon\n\
         ProxyPass / http://127.0.0.1:{B0}/\n",
        &[&b],
    ));
    let (s, body) = status_of(&p, "/raw/a%20b/%41?x=%20");
    assert_eq!(s, 200);
    assert_eq!(body, "GET /raw/a%20b/%41?x=%20 HTTP/1.1");
    // The raw path names /secret once normalized: the rule sees that.
    let (s, _) = status_of(&p, "/raw/../secret");
    assert_eq!(s, 403);
    // A raw path that does not start with the prefix (`//raw`) falls back to canonical,
    // as Apache does (AH01136).
    let (s, body) = status_of(&p, "//raw/a%20b");
    assert_eq!(s, 200);
    assert_eq!(body, "GET /raw/a%20b HTTP/1.1");
}

#[test]
fn path_policies_merge_slashes_encoded_slashes_and_servlet_segments() {
    let b = echo();
    let p = site(
        &b,
        "MergeSlashes Off\nAllowEncodedSlashes NoDecode\nServletDotSegments Allow",
    );
    let cases: &[(&str, u16, &str)] = &[
        ("/app//x", 200, "GET /app//x HTTP/1.1"),
        ("/app/a%2Fb", 200, "GET /app/a%2Fb HTTP/1.1"),
        ("/app/..;x/y", 200, "GET /app/..;x/y HTTP/1.1"),
    ];
    for (target, status, body) in cases {
        let (s, text) = status_of(&p, target);
        assert_eq!((s, text.as_str()), (*status, *body), "{target}");
    }
    let p = site(&b, "AllowEncodedSlashes On");
    let (s, text) = status_of(&p, "/app/a%2Fb");
    assert_eq!((s, text.as_str()), (200, "GET /app/a/b HTTP/1.1"));
    // Decoded slashes are normalized again: they cannot climb into an excluded path.
    let (s, _) = status_of(&p, "/app%2F..%2Fprivate/x");
    assert_eq!(s, 404);
}

#[test]
fn regex_rules_match_the_normalized_path_even_when_it_is_not_utf8() {
    let b = echo();
    let p = proxy(&fill(
        "Listen 127.0.0.1:0\n\
         ProxyPassMatch ^/private !\n\
         ProxyPassMatch ^/img/(.*)\\.png$ http://127.0.0.1:{B0}/images/$1.webp\n\
         RewriteEngine On\n\
         RewriteRule ^/old/([^/]*)$ /new/$1 [R=301]\n\
         ProxyPass / http://127.0.0.1:{B0}/\n",
        &[&b],
    ));
    let (s, _) = status_of(&p, "/private/%ff");
    assert_eq!(s, 404, "an exclusion must hold for non-UTF-8 paths");
    let (s, _) = status_of(&p, "/x/../private/%ff");
    assert_eq!(s, 404);
    let (s, body) = status_of(&p, "/img/a%20b%ff.png");
    assert_eq!(s, 200);
    assert_eq!(body, "GET /images/a%20b%FF.webp HTTP/1.1");
    // A decoded CR/LF in a back-reference goes out encoded, never raw.
    let mut c = Client::connect(p.addrs[0]);
    c.send(b"GET /old/a%0d%0aSet-Cookie:x=1 HTTP/1.1\r\nHost: test\r\n\r\n");
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location").as_deref(),
        Some("http://test/new/a%0D%0ASet-Cookie:x=1")
    );
    assert!(r.header("set-cookie").is_none());
}

#[test]
fn location_match_sections_see_the_normalized_path() {
    let b = echo();
    let p = proxy(&fill(
        "Listen 127.0.0.1:0\n\
         <LocationMatch \"^/(admin|private)(/|$)\">\n  Require all denied\n</LocationMatch>\n\
         <Location ~ \"\\.bak$\">\n  Require all denied\n</Location>\n\
         ProxyPass / http://127.0.0.1:{B0}/\n",
        &[&b],
    ));
    let cases: &[(&str, u16)] = &[
        ("/admin", 403),
        ("/admin/x", 403),
        ("/x/../admin/y", 403),
        ("/%61dmin/y", 403),
        ("//private", 403),
        ("/administrator", 200),
        ("/public", 200),
        ("/a/b.bak", 403),
        ("/a/b.%62ak", 403),
        ("/a/b.bakx", 200),
    ];
    for (target, want) in cases {
        let (s, body) = status_of(&p, target);
        assert_eq!(s, *want, "{target}: {body}");
    }
}

#[test]
fn invalid_hosts_are_refused_and_never_forwarded() {
    let b = echo();
    let p = site(&b, "");
    let bad = [
        "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: user@evil.example\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: 12345\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a..b\r\n\r\n",
        "GET http://good.example/ HTTP/1.1\r\nHost: evil.example\r\n\r\n",
    ];
    for raw in bad {
        let mut c = Client::connect(p.addrs[0]);
        c.send(raw.as_bytes());
        let r = c.read_response(false).unwrap();
        assert_eq!(r.status, 400, "{raw:?}");
        assert!(c.is_closed());
    }
    assert_eq!(b.request_count(), 0);
    // A valid one is forwarded, and X-Forwarded-Host carries it.
    let mut c = Client::connect(p.addrs[0]);
    c.send(b"GET /x HTTP/1.1\r\nHost: WWW.Example.com:8080\r\n\r\n");
    assert_eq!(c.read_response(false).unwrap().status, 200);
    assert_eq!(
        b.last().header("x-forwarded-host").as_deref(),
        Some("WWW.Example.com:8080")
    );
}

#[test]
fn trace_enable_is_honoured() {
    let b = echo();
    let p = site(&b, "TraceEnable Off");
    let mut c = Client::connect(p.addrs[0]);
    c.send(b"TRACE /x HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(c.read_response(false).unwrap().status, 405);
    assert_eq!(b.request_count(), 0);
    // On (Apache's default): forwarded, but never with a body.
    let p = site(&b, "");
    let mut c = Client::connect(p.addrs[0]);
    c.send(b"TRACE /x HTTP/1.1\r\nHost: test\r\n\r\n");
    let r = c.read_response(false).unwrap();
    assert_eq!((r.status, r.text()), (200, "TRACE /x HTTP/1.1".to_string()));
    let mut c = Client::connect(p.addrs[0]);
    c.send(b"TRACE /x HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!(c.read_response(false).unwrap().status, 413);
    assert_eq!(b.request_count(), 1);
}
