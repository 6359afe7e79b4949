//! `Header`/`RequestHeader` rules: parsing any arguments never panics, and applying rules
//! to any header lines keeps every untouched line byte for byte and never writes CR or LF
//! into a value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringproxy::http::headers::{apply, parse, Env};
use ringproxy::http::message::Headers;

fuzz_target!(|data: &[u8]| {
    // First line: the rule's arguments; the rest: header lines.
    let (rule_line, input) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(rule_text) = std::str::from_utf8(rule_line) else {
        return;
    };
    let Ok(args) = ringproxy::config::lexer::split_args(rule_text) else {
        return;
    };
    let Ok(rule) = parse(&args, true) else { return };
    let mut fields = Headers::default();
    fields.load_lines(input);
    let named = |n: &[u8]| n.eq_ignore_ascii_case(rule.name.as_bytes());
    let before: Vec<(Vec<u8>, Vec<u8>)> = fields
        .iter(input)
        .filter(|(n, _)| !named(n))
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect();
    apply(std::slice::from_ref(&rule), &mut fields, input, &Env::default());
    for i in 0..fields.len() {
        if fields.unchanged(i) {
            continue;
        }
        let mut one = Headers::default();
        let (n, v) = fields.get(input, i);
        one.push(n, v);
        let mut out = Vec::new();
        one.write_h1(b"", &mut out);
        let line = out.strip_suffix(b"\r\n").unwrap_or(&out);
        assert!(!line.contains(&b'\r') && !line.contains(&b'\n'));
    }
    // Fields whose name the rule does not name are unchanged, in order.
    let after: Vec<(Vec<u8>, Vec<u8>)> = fields
        .iter(input)
        .filter(|(n, _)| !named(n))
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect();
    assert_eq!(before, after);
});
