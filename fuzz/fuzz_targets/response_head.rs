//! A backend's response head: parsing never panics, and what goes to the client parses
//! again with the same status and framing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringproxy::http::head::{parse_response, ResponseBody, ResponseHead};
use ringproxy::http::headers::Env;
use ringproxy::http::write::{write_response_head, ResponseRewrite};

fuzz_target!(|data: &[u8]| {
    let (is_head, data) = match data.split_first() {
        Some((b, rest)) => (b & 1 == 1, rest),
        None => return,
    };
    let mut head = ResponseHead::default();
    let Ok(Some(())) = parse_response(data, is_head, &mut head) else {
        return;
    };
    let mut out = Vec::new();
    write_response_head(
        &mut out,
        data,
        &head,
        &ResponseRewrite {
            reverse: &[],
            cookie_domains: &[],
            cookie_paths: &[],
            public_base: b"http://fuzz",
            close: false,
            keep_alive_10: false,
            dechunk: false,
            extra: &[],
            rules: &[],
            env: &Env::default(),
        },
        &mut Default::default(),
    );
    let mut again = ResponseHead::default();
    match parse_response(&out, is_head, &mut again) {
        Ok(Some(())) => {
            assert_eq!(again.status, head.status);
            // A length that was a list or beside Transfer-Encoding is written once or not
            // at all; the framing the client sees is the one ringproxy streams.
            if head.body() != ResponseBody::UntilClose {
                assert_eq!(again.body(), head.body());
            }
        }
        other => panic!("forwarded head does not parse: {other:?}"),
    }
});
