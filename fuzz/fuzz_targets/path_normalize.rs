//! Path normalization: never panics; a normalized path starts with `/`, has no `.` or `..`
//! segment, and reads back as itself once encoded for the member (so a member normalizing
//! again sees what the rules saw).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringproxy::routing::normalize::{
    encode_path, normalize, prefix_match, EncodedSlashes, PathPolicy,
};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, raw)) = data.split_first() else {
        return;
    };
    let policy = PathPolicy {
        merge_slashes: flags & 1 == 0,
        encoded_slashes: match (flags >> 1) % 3 {
            0 => EncodedSlashes::Off,
            1 => EncodedSlashes::On,
            _ => EncodedSlashes::NoDecode,
        },
        servlet_dot_segments: flags & 8 != 0,
    };
    let (mut out, mut scratch) = (Vec::new(), Vec::new());
    if normalize(raw, &policy, &mut out, &mut scratch).is_err() {
        return;
    }
    assert_eq!(out.first(), Some(&b'/'));
    for seg in out.split(|&b| b == b'/') {
        assert!(seg != b"." && seg != b"..", "{out:?}");
    }
    let mut fwd = Vec::new();
    encode_path(
        &out,
        policy.encoded_slashes == EncodedSlashes::NoDecode,
        &mut fwd,
    );
    let mut again = Vec::new();
    normalize(&fwd, &policy, &mut again, &mut scratch).expect("the canonical form normalizes");
    assert_eq!(again, out);
    // Prefix matching never reads past either side.
    if let Some(n) = prefix_match(&out, &raw[..raw.len().min(8)]) {
        assert!(n <= out.len());
    }
});
