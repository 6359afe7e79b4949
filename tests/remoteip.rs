//! mod_remoteip: the client behind a trusted load balancer, for access rules, the
//! X-Forwarded-For a member receives, hashing and logs.

mod common;

use common::*;
use ringproxy::config::{load_str, LoadOptions};

fn site(member: &Backend, lines: &str, log: &std::path::Path) -> String {
    format!(
        "Listen 127.0.0.1:0\nRemoteIPHeader X-Forwarded-For\n{lines}\n\
         LogFormat \"%a %h\" ip\nCustomLog {} ip\n\
         <Location /admin>\n  Require ip 198.51.100.0/24\n</Location>\n\
         ProxyPass / http://127.0.0.1:{}/\n",
        log.display(),
        member.port()
    )
}

fn get(p: &ringproxy::runtime::Server, path: &str, xff: Option<&str>) -> Response {
    let mut c = Client::connect(p.addrs[0]);
    let extra = xff
        .map(|v| format!("X-Forwarded-For: {v}\r\n"))
        .unwrap_or_default();
    c.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n").as_bytes());
    c.read_response(false).unwrap()
}

#[test]
fn the_client_behind_an_internal_proxy_decides_access_and_forwarding() {
    let member = named("app");
    let dir = Dir::new("remoteip");
    let log = dir.0.join("ip.log");
    let p = proxy(&site(&member, "RemoteIPInternalProxy 127.0.0.1/32", &log));
    // The balancer (127.0.0.1, internal) vouches for 198.51.100.7: allowed, and the member
    // hears of that client only, as from Apache.
    assert_eq!(get(&p, "/admin/x", Some("198.51.100.7")).status, 200);
    assert_eq!(
        member.last().header("x-forwarded-for").as_deref(),
        Some("198.51.100.7")
    );
    // What a client wrote left of the balancer's entry is not trusted, and stays.
    assert_eq!(
        get(&p, "/admin/y", Some("203.0.113.66, 198.51.100.7")).status,
        200
    );
    assert_eq!(
        member.last().header("x-forwarded-for").as_deref(),
        Some("203.0.113.66, 198.51.100.7")
    );
    assert_eq!(get(&p, "/admin/z", Some("203.0.113.9")).status, 403);
    // No header: the connection's peer, as without the module.
    assert_eq!(get(&p, "/admin/w", None).status, 403);
    assert_eq!(get(&p, "/open", None).status, 200);
    assert_eq!(
        member.last().header("x-forwarded-for").as_deref(),
        Some("127.0.0.1")
    );
    // Not an address: the peer stays the client.
    assert_eq!(get(&p, "/admin/v", Some("client.example")).status, 403);
    p.shutdown();
    p.join();
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    // Each worker writes its own lines: compare as a multiset.
    let count = |l: &str| lines.iter().filter(|x| *x == l).count();
    assert_eq!(lines.len(), 6, "{lines:?}");
    assert_eq!(count("198.51.100.7 198.51.100.7"), 2, "{lines:?}");
    assert_eq!(count("203.0.113.9 203.0.113.9"), 1, "{lines:?}");
    assert_eq!(count("127.0.0.1 127.0.0.1"), 3, "{lines:?}");
}

#[test]
fn trusted_proxies_are_listed_and_cannot_vouch_for_private_addresses() {
    let member = named("app");
    let dir = Dir::new("remoteip-trusted");
    let list = dir.0.join("proxies.txt");
    std::fs::write(&list, "# the CDN\n127.0.0.0/8  # edge\n").unwrap();
    let lines = format!(
        "RemoteIPTrustedProxyList {}\nRemoteIPProxiesHeader X-Forwarded-By",
        list.display()
    );
    let p = proxy(&site(&member, &lines, &dir.0.join("ip.log")));
    assert_eq!(get(&p, "/admin/a", Some("198.51.100.7")).status, 200);
    let seen = member.last();
    assert_eq!(seen.header("x-forwarded-by").as_deref(), Some("127.0.0.1"));
    // A trusted (not internal) proxy presenting a private address is not believed.
    assert_eq!(get(&p, "/admin/b", Some("10.0.0.5")).status, 403);
    assert_eq!(get(&p, "/open", Some("10.0.0.5")).status, 200);
    assert_eq!(
        member.last().header("x-forwarded-for").as_deref(),
        Some("10.0.0.5, 127.0.0.1")
    );
}

#[test]
fn what_mod_remoteip_cannot_do_here_is_refused_at_its_line() {
    let errs = |text: &str| -> Vec<String> {
        load_str(text, "t.conf", &LoadOptions::default())
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    let base = "Listen 127.0.0.1:0\nProxyPass / http://127.0.0.1:9/\n";
    let e = errs(&format!("{base}RemoteIPProxyProtocol On\n"));
    assert!(
        e[0].starts_with("t.conf:3: RemoteIPProxyProtocol: the PROXY protocol is not available"),
        "{e:?}"
    );
    let e = errs(&format!("{base}RemoteIPInternalProxy lb.example.com\n"));
    assert!(e[0].contains("host names are not looked up"), "{e:?}");
}
