//! The Apache-syntax config lexer and builder: any text gives a config or errors with
//! `FILE:LINE`, never a panic. Names resolve only as literal addresses (no query leaves the
//! process), and Include is left out (it would read the file system).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringproxy::config::{load_str, LoadOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.to_ascii_lowercase().contains("include") {
        return;
    }
    let opts = LoadOptions {
        resolve: Some(ringproxy::config::literal_addresses_only),
        ..Default::default()
    };
    if let Err(errors) = load_str(text, "fuzz.conf", &opts) {
        for e in errors {
            assert!(e.to_string().starts_with("fuzz.conf:"), "{e}");
        }
    }
});
