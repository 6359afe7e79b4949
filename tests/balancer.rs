//! Balancer behaviour end to end: sticky sessions, member states, failover, health checks,
//! hashing and cross-worker propagation, through real sockets.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ringproxy::balancer::flag;
use ringproxy::runtime::{DriverChoice, Server};

fn member_flags(p: &Server, m: usize) -> u32 {
    p.shared().table.balancers[0].view().members[m]
        .state
        .status()
}

fn get_with(c: &mut Client, path: &str, headers: &str) -> Response {
    c.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n{headers}\r\n").as_bytes());
    c.read_response(false).expect("response")
}

/// Sends `n` requests, each on a fresh connection (so they spread over workers).
fn spread(p: &Server, n: usize, headers: &str) -> Vec<String> {
    (0..n)
        .map(|_| get_with(&mut Client::connect(p.addrs[0]), "/", headers).text())
        .collect()
}

fn count(v: &[String], name: &str) -> usize {
    v.iter().filter(|s| *s == name).count()
}

#[test]
fn sticky_cookie_url_param_and_semicolon_forms() {
    let (a, b) = (named("a"), named("b"));
    let p = proxy(&balancer_config(
        &[(&a, "route=n1"), (&b, "route=n2")],
        "ProxySet balancer://c stickysession=JSESSIONID|jsessionid scolonpathdelim=On",
    ));
    let mut c = Client::connect(p.addrs[0]);
    for _ in 0..5 {
        assert_eq!(
            get_with(&mut c, "/", "Cookie: JSESSIONID=abc.n2\r\n").text(),
            "b"
        );
    }
    // The URL parameter wins over the cookie.
    assert_eq!(
        get_with(
            &mut c,
            "/x?jsessionid=abc.n1",
            "Cookie: JSESSIONID=abc.n2\r\n"
        )
        .text(),
        "a"
    );
    // Path parameter ended by ';'.
    for _ in 0..3 {
        assert_eq!(
            get_with(&mut c, "/app;jsessionid=abc.n2;x=1", "").text(),
            "b"
        );
    }
    // No separator in the value: no route, ordinary balancing. The sticky hits above moved
    // the counters (8 to b, 1 to a), so balancing now evens out toward a, as in Apache.
    let v: Vec<String> = (0..4)
        .map(|_| get_with(&mut c, "/", "Cookie: JSESSIONID=n2\r\n").text())
        .collect();
    assert_eq!(count(&v, "a"), 4);
}

#[test]
fn redirect_nofailover_and_draining() {
    let (a, b, d) = (named("a"), named("b"), named("d"));
    // b is disabled and redirects its sessions to a; d is draining.
    let p = proxy(&balancer_config(
        &[
            (&a, "route=n1"),
            (&b, "route=n2 redirect=n1 status=+D"),
            (&d, "route=n3 status=+N"),
        ],
        "ProxySet balancer://c stickysession=ROUTEID",
    ));
    let mut c = Client::connect(p.addrs[0]);
    assert_eq!(get_with(&mut c, "/", "Cookie: ROUTEID=.n2\r\n").text(), "a");
    // Draining: its sessions still go there, new sessions never do.
    assert_eq!(get_with(&mut c, "/", "Cookie: ROUTEID=.n3\r\n").text(), "d");
    let fresh = spread(&p, 10, "");
    assert_eq!(count(&fresh, "a"), 10);

    // nofailover: a dead route answers 503 instead of moving the session.
    let x = named("x");
    let dead = free_port();
    let cfg = format!(
        "Listen 127.0.0.1:0\n<Proxy balancer://c>\nBalancerMember http://127.0.0.1:{} route=n1\nBalancerMember http://127.0.0.1:{dead} route=n2\nProxySet stickysession=ROUTEID nofailover=On\n</Proxy>\nProxyPass / balancer://c/\n",
        x.port()
    );
    let p = proxy(&cfg);
    let mut c = Client::connect(p.addrs[0]);
    assert_eq!(get_with(&mut c, "/", "Cookie: ROUTEID=.n2\r\n").status, 503);
    let mut c = Client::connect(p.addrs[0]);
    assert_eq!(get_with(&mut c, "/", "Cookie: ROUTEID=.n1\r\n").text(), "x");
    assert_eq!(get_with(&mut c, "/", "").text(), "x");
}

#[test]
fn sticky_cookie_insert() {
    let (a, b) = (named("a"), named("b"));
    let p = proxy_with(
        &balancer_config(
            &[(&a, "route=n1"), (&b, "route=n2")],
            "ProxySet balancer://c stickysession=ROUTEID stickysessioninsert=On",
        ),
        1,
        DriverChoice::Auto,
    );
    let mut c = Client::connect(p.addrs[0]);
    let first = get_with(&mut c, "/", "");
    let cookie = first.header("set-cookie").expect("affinity cookie set");
    assert!(cookie.starts_with("ROUTEID=.n"), "{cookie}");
    let value = cookie.split(';').next().unwrap().to_string();
    let served = first.text();
    for _ in 0..5 {
        let r = get_with(&mut c, "/", &format!("Cookie: {value}\r\n"));
        assert_eq!(r.text(), served);
        assert!(
            r.header("set-cookie").is_none(),
            "no new cookie while the route holds"
        );
    }
    // A route that no longer exists gets a new cookie.
    let r = get_with(&mut c, "/", "Cookie: ROUTEID=.gone\r\n");
    assert!(r.header("set-cookie").is_some());
}

#[test]
fn failover_within_maxattempts_and_error_state() {
    let live = named("live");
    let (d1, d2) = (free_port(), free_port());
    let cfg = |extra: &str| {
        format!(
            "Listen 127.0.0.1:0\n<Proxy balancer://c>\nBalancerMember http://127.0.0.1:{d1}\nBalancerMember http://127.0.0.1:{d2}\nBalancerMember http://127.0.0.1:{}\n{extra}</Proxy>\nProxyPass / balancer://c/\n",
            live.port()
        )
    };
    // Default maxattempts (members - 1): the first request already fails over twice.
    let p = proxy_with(&cfg(""), 1, DriverChoice::Auto);
    let mut c = Client::connect(p.addrs[0]);
    assert_eq!(get_with(&mut c, "/", "").text(), "live");
    assert_ne!(member_flags(&p, 0) & flag::E, 0);
    assert_ne!(member_flags(&p, 1) & flag::E, 0);
    // The dead members are in error now: no more attempts on them.
    for _ in 0..5 {
        assert_eq!(get_with(&mut c, "/", "").text(), "live");
    }
    // maxattempts=0: no failover, the first dead member answers 503.
    let p = proxy_with(&cfg("ProxySet maxattempts=0\n"), 1, DriverChoice::Auto);
    let mut c = Client::connect(p.addrs[0]);
    assert_eq!(get_with(&mut c, "/", "").status, 503);
}

#[test]
fn idempotent_requests_fail_over_on_backend_close_but_posts_do_not() {
    let closer = backend(|_| Action::Close);
    let good = named("good");
    let p = proxy_with(
        &balancer_config(&[(&closer, ""), (&good, "")], ""),
        1,
        DriverChoice::Auto,
    );
    let mut c = Client::connect(p.addrs[0]);
    // byrequests sends the first request to `closer`; the GET moves to `good`.
    assert_eq!(get_with(&mut c, "/", "").text(), "good");
    // The next request goes to `closer` first again: a POST there is not repeated.
    let mut c = Client::connect(p.addrs[0]);
    get_with(&mut c, "/", ""); // good
    c.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi");
    assert_eq!(c.read_response(false).unwrap().status, 502);
}

const METRICS: &str = "<Location /metrics>\nSetHandler metrics\n</Location>\nProxyPass /metrics !";

#[test]
fn a_read_timeout_is_answered_once_and_never_resent() {
    let slow = || backend(|_| Action::Delay(Duration::from_secs(3), Box::new(ok("late"))));
    let members = [slow(), slow(), slow()];
    let p = proxy_with(
        &balancer_config(
            &[
                (&members[0], "timeout=1"),
                (&members[1], "timeout=1"),
                (&members[2], "timeout=1"),
            ],
            METRICS,
        ),
        1,
        DriverChoice::Auto,
    );
    let started = std::time::Instant::now();
    let mut c = Client::connect(p.addrs[0]);
    assert_eq!(get_with(&mut c, "/", "").status, 504);
    // One timeout, not one per member; the backend ran the request once.
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    let sent: usize = members.iter().map(Backend::request_count).sum();
    assert_eq!(sent, 1);
    // Without failontimeout the member stays usable, as in Apache.
    assert_eq!(member_flags(&p, 0) & flag::E, 0);
    let retries = "ringproxy_backend_retries_total{reason=\"idempotent\"}";
    assert_eq!(metric(&p, retries), 0.0);
}

#[test]
fn idempotent_failover_is_one_extra_attempt_and_counted() {
    let closers = [
        backend(|_| Action::Close),
        backend(|_| Action::Close),
        backend(|_| Action::Close),
    ];
    let p = proxy_with(
        &balancer_config(
            &[(&closers[0], ""), (&closers[1], ""), (&closers[2], "")],
            METRICS,
        ),
        1,
        DriverChoice::Auto,
    );
    let mut c = Client::connect(p.addrs[0]);
    assert_eq!(get_with(&mut c, "/", "").status, 502);
    // The first member and one more: never all three.
    let sent: usize = closers.iter().map(Backend::request_count).sum();
    assert_eq!(sent, 2);
    let retries = "ringproxy_backend_retries_total{reason=\"idempotent\"}";
    assert_eq!(metric(&p, retries), 1.0);
}

#[test]
fn failonstatus_puts_a_member_in_error_and_delivers_the_response() {
    let sick = backend(|_| {
        Action::Respond(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nsick".to_vec(),
        )
    });
    let well = named("well");
    let p = proxy_with(
        &balancer_config(
            &[(&sick, ""), (&well, "")],
            "ProxySet balancer://c failonstatus=503",
        ),
        1,
        DriverChoice::Auto,
    );
    let mut c = Client::connect(p.addrs[0]);
    let r = get_with(&mut c, "/", "");
    assert_eq!((r.status, r.text().as_str()), (503, "sick"));
    assert_ne!(member_flags(&p, 0) & flag::E, 0);
    for _ in 0..5 {
        assert_eq!(get_with(&mut c, "/", "").text(), "well");
    }
}

#[test]
fn forcerecovery_default_and_off() {
    let b = named("back");
    let cfg = |extra: &str| {
        format!(
            "Listen 127.0.0.1:0\n<Proxy balancer://c>\nBalancerMember http://127.0.0.1:{} retry=60\n{extra}</Proxy>\nProxyPass / balancer://c/\n",
            b.port()
        )
    };
    let on = proxy_with(&cfg(""), 1, DriverChoice::Auto);
    let off = proxy_with(&cfg("ProxySet forcerecovery=Off\n"), 1, DriverChoice::Auto);
    b.stop();
    for p in [&on, &off] {
        assert_eq!(
            get_with(&mut Client::connect(p.addrs[0]), "/", "").status,
            503
        );
        assert_ne!(member_flags(p, 0) & flag::E, 0);
    }
    b.restart();
    // All members in error: with forcerecovery the error is cleared and the request served.
    assert_eq!(
        get_with(&mut Client::connect(on.addrs[0]), "/", "").text(),
        "back"
    );
    // Without it, the member waits out its retry time.
    assert_eq!(
        get_with(&mut Client::connect(off.addrs[0]), "/", "").status,
        503
    );
}

#[test]
fn health_checks_take_a_member_out_and_back() {
    let healthy = Arc::new(AtomicBool::new(true));
    let h2 = healthy.clone();
    let a = backend(move |req| {
        if req.request_line().contains("/health") {
            if h2.load(Ordering::SeqCst) {
                ok("up")
            } else {
                Action::Respond(b"HTTP/1.1 500 Error\r\nContent-Length: 4\r\n\r\ndown".to_vec())
            }
        } else {
            ok("a")
        }
    });
    let b = named("b");
    let p = proxy(&balancer_config(
        &[
            (
                &a,
                "hcmethod=GET hcuri=/health hcinterval=100ms hcfails=2 hcpasses=2",
            ),
            (&b, ""),
        ],
        "",
    ));
    let checks = |a: &Backend| {
        a.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.request_line().contains("/health"))
            .count()
    };
    wait_until("a first health check", || checks(&a) >= 1);
    assert_eq!(member_flags(&p, 0) & flag::C, 0);
    healthy.store(false, Ordering::SeqCst);
    let before = checks(&a);
    wait_until("flag C after two failed checks", || {
        member_flags(&p, 0) & flag::C != 0
    });
    assert!(
        checks(&a) >= before + 2,
        "C only after hcfails consecutive failures"
    );
    let v = spread(&p, 10, "");
    assert_eq!(
        count(&v, "b"),
        10,
        "a member failing its checks gets no traffic"
    );
    healthy.store(true, Ordering::SeqCst);
    wait_until("C cleared after two passing checks", || {
        member_flags(&p, 0) & flag::C == 0
    });
    let v = spread(&p, 10, "");
    assert!(count(&v, "a") >= 3, "{v:?}");
    // One process-wide checker: about one check per interval, not one per worker.
    let t0 = checks(&a);
    std::thread::sleep(Duration::from_millis(1000));
    let per_second = checks(&a) - t0;
    assert!(
        (5..=14).contains(&per_second),
        "{per_second} checks in 1 s at 100 ms"
    );
}

#[test]
fn a_health_check_reading_1xx_and_the_final_head_at_once_passes() {
    // The interim and final heads arrive in one write, then the member closes.
    let a = backend(|_| {
        Action::RespondClose(
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                .to_vec(),
        )
    });
    let p = proxy(&balancer_config(
        &[(&a, "hcmethod=GET hcuri=/health hcinterval=100ms hcfails=1")],
        "",
    ));
    wait_until("three health checks", || a.request_count() >= 3);
    assert_eq!(
        member_flags(&p, 0) & flag::C,
        0,
        "a passing member was marked C"
    );
}

#[test]
fn tcp_health_check_and_expression() {
    let a = named("a");
    let b = backend(|req| {
        if req.request_line().contains("/status") {
            ok("Out of Order")
        } else {
            ok("b")
        }
    });
    let cfg = format!(
        "Listen 127.0.0.1:0\nProxyHCExpr notooo {{hc('body') !~ /Out of Order/}}\n<Proxy balancer://c>\nBalancerMember http://127.0.0.1:{} hcmethod=TCP hcinterval=100ms\nBalancerMember http://127.0.0.1:{} hcmethod=GET hcuri=/status hcexpr=notooo hcinterval=100ms\n</Proxy>\nProxyPass / balancer://c/\n",
        a.port(),
        b.port()
    );
    let p = proxy(&cfg);
    // b answers 200 but its body says it is out of order.
    wait_until("b marked C by its expression", || {
        member_flags(&p, 1) & flag::C != 0
    });
    assert_eq!(member_flags(&p, 0) & flag::C, 0);
    a.stop();
    wait_until("a marked C by the TCP check", || {
        member_flags(&p, 0) & flag::C != 0
    });
    a.restart();
    wait_until("a back", || member_flags(&p, 0) & flag::C == 0);
}

#[test]
fn hash_keeps_users_on_members_and_remaps_little() {
    let names = ["a", "b", "c", "d"];
    let bs: Vec<Backend> = names.iter().map(|n| named(n)).collect();
    let members: Vec<(&Backend, &str)> = bs.iter().map(|b| (b, "")).collect();
    let p = proxy(&balancer_config(
        &members,
        "ProxySet balancer://c lbmethod=hash hashkey=header:X-User",
    ));
    let map = |p: &Server| -> Vec<String> {
        (0..200)
            .map(|u| {
                get_with(
                    &mut Client::connect(p.addrs[0]),
                    "/",
                    &format!("X-User: user{u}\r\n"),
                )
                .text()
            })
            .collect()
    };
    let before = map(&p);
    assert_eq!(
        before,
        map(&p),
        "the same user always reaches the same member"
    );
    for n in names {
        assert!(count(&before, n) >= 25, "{before:?}");
    }
    // Member c leaves: all its users move; of the others, Maglev moves at most a few
    // (its table is rebuilt, so a small share of slots changes hands; the unit test in
    // src/balancer/hash.rs measures it over 50,000 keys).
    p.shared().table.balancers[0].view().members[2]
        .state
        .set_flag(flag::D, true);
    let after = map(&p);
    let mut moved_staying = 0;
    let mut staying = 0;
    for (x, y) in before.iter().zip(&after) {
        if x == "c" {
            assert_ne!(y, "c");
        } else {
            staying += 1;
            if x != y {
                moved_staying += 1;
            }
        }
    }
    // Expected 1-3 %; 10 % leaves a wide margin over 150 users.
    assert!(
        moved_staying * 10 <= staying,
        "{moved_staying} of {staying} users of staying members moved"
    );
}

#[test]
fn bybusyness_avoids_the_busy_member() {
    let slow = backend(|_| Action::Delay(Duration::from_millis(300), Box::new(ok("slow"))));
    let fast = named("fast");
    let p = proxy_with(
        &balancer_config(
            &[(&slow, ""), (&fast, "")],
            "ProxySet balancer://c lbmethod=bybusyness",
        ),
        1,
        DriverChoice::Auto,
    );
    let addr = p.addrs[0];
    let handles: Vec<_> = (0..12)
        .map(|i| {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(i * 10));
                Client::connect(addr).get("/").text()
            })
        })
        .collect();
    let v: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(count(&v, "slow") <= 2, "{v:?}");
}

#[test]
fn weights_hold_over_many_requests_with_bytraffic() {
    let (a, b) = (named("a"), named("b"));
    let p = proxy_with(
        &balancer_config(
            &[(&a, "loadfactor=3"), (&b, "")],
            "ProxySet balancer://c lbmethod=bytraffic\nMaxKeepAliveRequests 0",
        ),
        1,
        DriverChoice::Auto,
    );
    let mut c = Client::connect(p.addrs[0]);
    let v: Vec<String> = (0..200).map(|_| c.get("/").text()).collect();
    let share = count(&v, "a") as f64 / 200.0;
    assert!((0.70..=0.80).contains(&share), "a got {share}");
}

#[test]
fn state_changes_reach_every_worker_on_the_next_request() {
    let a = named("a");
    let b = named("b");
    // Two workers; a is stopped at first.
    let p = proxy_with(
        &balancer_config(&[(&a, "retry=60"), (&b, "")], ""),
        2,
        DriverChoice::Auto,
    );
    a.stop();
    // Whichever worker hits a first puts it in error (and fails over to b).
    let v = spread(&p, 4, "");
    assert_eq!(count(&v, "b"), 4);
    assert_ne!(member_flags(&p, 0) & flag::E, 0);
    a.restart();
    // a is alive again, but in error for 60 s: no worker sends it anything.
    let before = a.request_count();
    let v = spread(&p, 40, "");
    assert_eq!(count(&v, "b"), 40);
    assert_eq!(a.request_count(), before);
    // An operator change (as balancer-manager will make): clear a's error, disable b.
    let view = p.shared().table.balancers[0].view();
    p.shared().table.clear_error(&view.members[0].state);
    view.members[1].state.set_flag(flag::D, true);
    let v = spread(&p, 40, "");
    assert_eq!(
        count(&v, "a"),
        40,
        "every worker honours D from its next request"
    );
    // A structural change through a new view: b back with a heavy weight.
    view.members[1].state.set_flag(flag::D, false);
    p.shared().table.balancers[0].update(|v| v.members[1].lbfactor = 900);
    let v = spread(&p, 100, "");
    assert!(count(&v, "b") >= 80, "{}", count(&v, "b"));
}

#[test]
fn failontimeout_puts_a_silent_member_in_error() {
    let silent = backend(|_| Action::Delay(Duration::from_secs(3), Box::new(ok("late"))));
    let well = named("well");
    let p = proxy_with(
        &balancer_config(
            &[(&silent, "timeout=1"), (&well, "")],
            "ProxySet balancer://c failontimeout=On maxattempts=0",
        ),
        1,
        DriverChoice::Auto,
    );
    let mut c = Client::connect(p.addrs[0]);
    assert_eq!(get_with(&mut c, "/", "").status, 504);
    assert_ne!(member_flags(&p, 0) & flag::E, 0);
    let mut c = Client::connect(p.addrs[0]);
    for _ in 0..3 {
        assert_eq!(get_with(&mut c, "/", "").text(), "well");
    }
}

#[test]
fn apache_docs_sticky_recipe_and_request_headers() {
    let (a, b) = (
        backend(|req| {
            ok(&format!(
                "a {}",
                req.header("x-forwarded-proto").unwrap_or_default()
            ))
        }),
        backend(|req| {
            ok(&format!(
                "b {}",
                req.header("x-forwarded-proto").unwrap_or_default()
            ))
        }),
    );
    let cfg = format!(
        r#"Listen 127.0.0.1:0
Header add Set-Cookie "ROUTEID=.%{{BALANCER_WORKER_ROUTE}}e; path=/" env=BALANCER_ROUTE_CHANGED
RequestHeader set X-Forwarded-Proto "https"
<Proxy balancer://c>
  BalancerMember http://127.0.0.1:{} route=1
  BalancerMember http://127.0.0.1:{} route=2
  ProxySet stickysession=ROUTEID
</Proxy>
ProxyPass / balancer://c/
"#,
        a.port(),
        b.port()
    );
    let p = proxy_with(&cfg, 1, DriverChoice::Auto);
    let mut c = Client::connect(p.addrs[0]);
    let first = get_with(&mut c, "/", "");
    let cookie = first
        .header("set-cookie")
        .expect("cookie set on the first response");
    assert!(
        cookie == "ROUTEID=.1; path=/" || cookie == "ROUTEID=.2; path=/",
        "{cookie}"
    );
    let served = first.text();
    assert!(
        served.ends_with(" https"),
        "RequestHeader set reached the backend: {served}"
    );
    let value = cookie.split(';').next().unwrap().to_string();
    for _ in 0..5 {
        let r = get_with(&mut c, "/", &format!("Cookie: {value}\r\n"));
        assert_eq!(r.text(), served, "the route holds");
        assert!(
            r.header("set-cookie").is_none(),
            "no cookie while the route is unchanged"
        );
    }
    // An unknown route changes the route: a new cookie comes back.
    let r = get_with(&mut c, "/", "Cookie: ROUTEID=.9\r\n");
    assert!(r.header("set-cookie").is_some());
    let e = ringproxy::config::load_str(
        "Listen 80\nHeader set X %{REMOTE_USER}e\n",
        "t.conf",
        &ringproxy::config::LoadOptions::default(),
    )
    .unwrap_err();
    assert!(
        e[0].to_string()
            .starts_with("t.conf:2: Header: %{REMOTE_USER}e"),
        "{e:?}"
    );
}
