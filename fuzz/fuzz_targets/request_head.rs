//! A request head and what follows it: the incremental scan and the parser must agree,
//! never panic, and a parsed head must be forwardable; the body framing it declares is then
//! run over the rest of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringproxy::http::body::Framing;
use ringproxy::http::head::{parse_request, HeadScan, Limits, RequestBody, RequestHead};
use ringproxy::http::headers::Env;
use ringproxy::http::write::{write_request_head, RemoteEdit, RequestRewrite, ViaEdit};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        request_line: 8190,
        field_size: 8190,
        fields: 100,
    };
    // The scan over every prefix (as reads would deliver it) is linear and agrees with
    // the parser about where the head ends.
    let mut scan = HeadScan::default();
    let mut complete_at = None;
    for cut in [data.len() / 3, data.len() / 2, data.len()] {
        match scan.advance(&data[..cut], &limits) {
            Ok(true) => {
                complete_at = Some(cut);
                break;
            }
            Ok(false) => {}
            Err(_) => return,
        }
    }
    let mut head = RequestHead::default();
    let parsed = parse_request(data, &limits, &mut head);
    if let (Some(_), Ok(None)) = (complete_at, &parsed) {
        panic!("the scan found a whole head that the parser calls partial");
    }
    let Ok(Some(())) = parsed else { return };
    // The forwarding variants (mod_remoteip's edit, ProxyVia, ProxyAddHeaders), picked by
    // the input's length so that every head meets each of them.
    let variant = data.len() % 4;
    let remote = (variant == 1).then_some(RemoteEdit {
        header: b"X-Forwarded-For",
        rest: Some(b"192.0.2.1"),
        proxies_header: Some(b"X-Forwarded-By"),
        proxies: Some(b"203.0.113.5"),
    });
    let via = match variant {
        2 => ViaEdit::Block,
        3 => ViaEdit::Add(b"1.1 fuzz:8080"),
        _ => ViaEdit::Pass,
    };
    let mut out = Vec::new();
    write_request_head(
        &mut out,
        data,
        &head,
        &RequestRewrite {
            path: b"/x",
            host: b"127.0.0.1:9001",
            preserve_host: true,
            client_ip: b"127.0.0.1",
            server_name: b"fuzz",
            proto: b"http",
            close: false,
            rules: &[],
            env: &Env::default(),
            remote,
            via,
            add_forwarded: variant != 2,
        },
        &mut Default::default(),
    );
    // What goes to a member is one head: it parses again, with the same framing. (Against
    // a member's limits, not ours: X-Forwarded-* adds lines and merges values.)
    let member_limits = Limits {
        request_line: 1 << 16,
        field_size: 1 << 16,
        fields: limits.fields + 8,
    };
    let mut again = RequestHead::default();
    match parse_request(&out, &member_limits, &mut again) {
        Ok(Some(())) => assert_eq!(again.body(), head.body()),
        other => panic!("forwarded head does not parse: {other:?}"),
    }
    let mut framing = match head.body() {
        RequestBody::None => Framing::Length(0),
        RequestBody::Length(n) => Framing::Length(n),
        RequestBody::Chunked => Framing::Chunked(Default::default()),
    };
    if let Ok(adv) = framing.advance(&data[head.len..]) {
        assert!(adv.consumed <= data.len() - head.len);
    }
});
