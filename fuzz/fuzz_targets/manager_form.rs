//! balancer-manager's form parser: any body gives pairs without a panic, and the member
//! URL a form adds is found without a lookup.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringproxy::admin::manager::{new_member_host, parse_form};

fuzz_target!(|data: &[u8]| {
    let form = parse_form(data);
    for (k, v) in &form {
        assert!(!k.contains('&') || data.contains(&b'%'));
        let _ = v.len();
    }
    if let Some((host, _port)) = new_member_host(&form) {
        assert!(!host.contains('/'));
    }
});
