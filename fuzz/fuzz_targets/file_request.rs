//! What a client sends about a static file and its address: the conditional and Range
//! headers (`files::serve::decide`) and a mod_remoteip header (`routing::remoteip`). Never a
//! panic; a byte range always lies within the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringproxy::files::serve::{decide, Conditions, Decision, Validators};
use ringproxy::routing::access::Net;
use ringproxy::routing::remoteip::{evaluate, RemoteIpConfig};

fuzz_target!(|data: &[u8]| {
    // Fields separated by NUL: method, If-Match, If-Unmodified-Since, If-None-Match,
    // If-Modified-Since, If-Range, Range, and a RemoteIPHeader value; the file's size
    // comes from the input's length.
    let mut parts = data.split(|&b| b == 0);
    let mut next = || parts.next().filter(|p| !p.is_empty());
    let method = next().unwrap_or(b"GET");
    let cond = Conditions {
        method,
        if_match: next(),
        if_unmodified_since: next(),
        if_none_match: next(),
        if_modified_since: next(),
        if_range: next(),
        range: next(),
    };
    let size = (data.len() as u64).wrapping_mul(7919) % 100_000;
    let v = Validators {
        etag: format!("\"{size:x}-5f\""),
        mtime: std::time::UNIX_EPOCH + std::time::Duration::from_secs(784_111_777),
        size,
    };
    if let Decision::Part(a, b) = decide(&cond, &v) {
        assert!(a < b && b <= size, "range {a}..{b} outside a file of {size}");
    }
    if let Some(value) = next().and_then(|v| std::str::from_utf8(v).ok()) {
        let cfg = RemoteIpConfig {
            header: Some("X-Forwarded-For".into()),
            proxies: vec![
                (Net::parse("127.0.0.0/8").unwrap(), true),
                (Net::parse("203.0.113.0/24").unwrap(), false),
            ],
            proxies_header: None,
        };
        let open = RemoteIpConfig {
            proxies: Vec::new(),
            ..cfg.clone()
        };
        for c in [&cfg, &open] {
            let _ = evaluate(c, "127.0.0.1".parse().unwrap(), value);
        }
    }
});
