//! The rewrite engine: a fuzzed RewriteCond/RewriteRule pair over a fuzzed request path
//! never panics, and what it proxies to or redirects to carries no raw CR, LF or space.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringproxy::config::{load_str, LoadOptions};
use ringproxy::routing::{normalize, rewrite, PathInput, RewriteInput, Rewritten};

fuzz_target!(|data: &[u8]| {
    // Line 1: a RewriteRule's arguments; line 2: a RewriteCond's (may be empty); the rest:
    // the request target.
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let (Some(rule), Some(cond), Some(target)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let (Ok(rule), Ok(cond)) = (std::str::from_utf8(rule), std::str::from_utf8(cond)) else {
        return;
    };
    if rule.to_ascii_lowercase().contains("include")
        || cond.to_ascii_lowercase().contains("include")
    {
        return;
    }
    let cond_line = if cond.trim().is_empty() {
        String::new()
    } else {
        format!("RewriteCond {cond}\n")
    };
    let text = format!("Listen 127.0.0.1:80\nRewriteEngine On\n{cond_line}RewriteRule {rule}\n");
    let opts = LoadOptions {
        resolve: Some(ringproxy::config::literal_addresses_only),
        ..Default::default()
    };
    let Ok(cfg) = load_str(&text, "fuzz.conf", &opts) else {
        return;
    };
    let (raw, query) = PathInput::split_target(target);
    let (mut path, mut scratch) = (Vec::new(), Vec::new());
    if normalize::normalize(raw, &cfg.vhosts[0].paths, &mut path, &mut scratch).is_err() {
        return;
    }
    let header = |_: &str| -> Option<&[u8]> { Some(b"fuzz") };
    let out = rewrite(
        &cfg.vhosts[0],
        &RewriteInput {
            path: PathInput {
                path: &path,
                raw,
                query,
                keep_encoded_slashes: false,
            },
            method: b"GET",
            https: path.len() % 2 == 0,
            header: &header,
        },
    );
    let clean = |b: &[u8]| !b.iter().any(|c| matches!(c, b'\r' | b'\n'));
    match out {
        Some(Rewritten::Proxy { path, .. }) => assert!(clean(&path) || !clean(target), "{path:?}"),
        Some(Rewritten::Redirect { location, .. }) => {
            assert!(clean(location.as_bytes()) || !clean(target), "{location:?}")
        }
        _ => {}
    }
});
