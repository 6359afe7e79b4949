//! `Header`/`RequestHeader` rules: parsing any arguments never panics, and applying rules
//! to any header lines keeps every untouched line byte for byte and never writes CR or LF
//! into a value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringproxy::http::headers::{apply, parse, Env, Field};

fuzz_target!(|data: &[u8]| {
    // First line: the rule's arguments; the rest: header lines.
    let mut lines = data.split(|&b| b == b'\n');
    let Some(rule_line) = lines.next() else {
        return;
    };
    let Ok(rule_text) = std::str::from_utf8(rule_line) else {
        return;
    };
    let Ok(args) = ringproxy::config::lexer::split_args(rule_text) else {
        return;
    };
    let Ok(rule) = parse(&args, true) else { return };
    let lines: Vec<&[u8]> = lines.collect();
    let mut fields: Vec<Field> = lines.iter().filter_map(|l| Field::parse(l)).collect();
    let before = fields.clone();
    apply(std::slice::from_ref(&rule), &mut fields, &Env::default());
    for f in &fields {
        let mut out = Vec::new();
        f.write(&mut out);
        if f.raw.is_none() {
            assert!(!out.contains(&b'\r') && !out.contains(&b'\n'));
        }
    }
    // A field whose name the rule does not name is unchanged.
    for f in before
        .iter()
        .filter(|f| !f.name.eq_ignore_ascii_case(rule.name.as_bytes()))
    {
        assert!(fields.contains(f), "{f:?} changed");
    }
});
