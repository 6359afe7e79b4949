//! The chunked decoder: never panics, consumes no more than it is given, and gives the same
//! answer however the input is split into reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringproxy::http::body::ChunkedDecoder;

/// Feeds `input` in pieces of `step`; returns (data, consumed, done) or the error.
fn run(
    input: &[u8],
    step: usize,
) -> Result<(Vec<u8>, usize, bool), ringproxy::http::body::BodyError> {
    let mut d = ChunkedDecoder::new();
    let mut data = Vec::new();
    let mut total = 0;
    let mut pos = 0;
    while pos < input.len() {
        let end = (pos + step).min(input.len());
        let piece = &input[pos..end];
        let mut off = 0;
        loop {
            let s = d.decode(&piece[off..])?;
            assert!(s.consumed <= piece.len() - off);
            if let Some(r) = s.data.clone() {
                assert!(r.end <= s.consumed);
                data.extend_from_slice(&piece[off + r.start..off + r.end]);
            }
            off += s.consumed;
            total += s.consumed;
            if s.done {
                return Ok((data, total, true));
            }
            if off == piece.len() || s.consumed == 0 {
                break;
            }
        }
        if off < piece.len() {
            // The decoder stopped short without finishing: only after the end.
            return Ok((data, total, d.is_done()));
        }
        pos = end;
    }
    Ok((data, total, d.is_done()))
}

fuzz_target!(|input: &[u8]| {
    let (step, input) = match input.split_first() {
        Some((s, rest)) => (usize::from(*s % 16) + 1, rest),
        None => return,
    };
    let whole = run(input, input.len().max(1));
    let split = run(input, step);
    assert_eq!(whole.is_ok(), split.is_ok(), "{whole:?} vs {split:?}");
    if let (Ok(a), Ok(b)) = (whole, split) {
        assert_eq!(a, b);
    }
});
