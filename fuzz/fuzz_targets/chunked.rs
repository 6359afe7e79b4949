//! The chunked decoder: never panics, consumes no more than it is given, and gives the same
//! answer however the input is split into reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringproxy::http::body::decode_in_pieces;

fuzz_target!(|input: &[u8]| {
    let (step, input) = match input.split_first() {
        Some((s, rest)) => (usize::from(*s % 16) + 1, rest),
        None => return,
    };
    let whole = decode_in_pieces(input, input.len().max(1));
    let split = decode_in_pieces(input, step);
    assert_eq!(whole.is_ok(), split.is_ok(), "{whole:?} vs {split:?}");
    if let (Ok(a), Ok(b)) = (whole, split) {
        assert_eq!(a, b);
    }
});
