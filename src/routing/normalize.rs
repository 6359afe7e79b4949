//! The request path as every rule sees it, made the way Apache's core makes `r->uri`
//! (server/request.c: `ap_normalize_path` then `ap_unescape_url_ex`), and the canonical form
//! sent to a member (mod_proxy's `ap_proxy_canonenc_ex` for paths).
//!
//! Rules (`<Location>`, `ProxyPass`, `ProxyPass … !`, `ProxyPassMatch`, `RewriteRule`,
//! `<Proxy>` access, sticky and hash keys) never see the raw request-target: `/a/../admin`,
//! `//admin`, `/%61dmin` and `/admin` are one path to them, so a rule cannot be walked
//! around by spelling a path another way. No I/O; linear in the path's length.

/// `AllowEncodedSlashes`: what `%2F` in a path means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EncodedSlashes {
    /// Apache's default: a path with `%2F` answers 404.
    #[default]
    Off,
    /// Decoded to `/` like any other escape (the path is normalized again afterwards).
    On,
    /// Allowed, but kept as `%2F`: it separates no segments, and is forwarded encoded.
    NoDecode,
}

/// How one virtual host treats request paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathPolicy {
    /// `MergeSlashes` (Apache's default On): `//` counts as `/`.
    pub merge_slashes: bool,
    pub encoded_slashes: EncodedSlashes,
    /// `ServletDotSegments Allow`: let through segments such as `..;x` that a servlet
    /// container (Tomcat, Jetty) reads as `..` once it drops the `;` parameter, while Apache
    /// and this proxy read them as ordinary names. Off by default: with them a request for
    /// `/app/..;/manager/` passes a rule on `/app` here and reaches `/manager/` there.
    pub servlet_dot_segments: bool,
}

impl Default for PathPolicy {
    fn default() -> Self {
        PathPolicy {
            merge_slashes: true,
            encoded_slashes: EncodedSlashes::Off,
            servlet_dot_segments: false,
        }
    }
}

/// Why a path is refused. Apache's statuses: 400 for a malformed path, 404 for an encoded
/// slash or NUL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("request path does not start with /")]
    NotAbsolute,
    #[error("invalid %-escape in the request path")]
    BadEscape,
    #[error("raw control character or space in the request path")]
    RawControl,
    #[error("request path climbs above /")]
    AboveRoot,
    #[error("encoded slash (%2F) in the request path (AllowEncodedSlashes Off)")]
    EncodedSlash,
    #[error("encoded NUL (%00) in the request path")]
    EncodedNul,
    #[error("path segment that a servlet container reads as . or .. (ServletDotSegments Refuse)")]
    ServletDotSegment,
}

impl PathError {
    pub fn status(self) -> u16 {
        match self {
            PathError::EncodedSlash | PathError::EncodedNul => 404,
            _ => 400,
        }
    }
}

/// RFC 3986 §2.3 unreserved characters: their escapes mean the character itself.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

use crate::http::body::hex;

/// The escape `%XY` at `p[i..]`, decoded.
fn escape_at(p: &[u8], i: usize) -> Option<u8> {
    match (
        p.get(i + 1).copied().and_then(hex),
        p.get(i + 2).copied().and_then(hex),
    ) {
        (Some(h), Some(l)) => Some(h << 4 | l),
        _ => None,
    }
}

/// The character at `p[i]` as the first pass reads it: an escaped unreserved character is
/// that character (three bytes long), anything else is itself. `Err` on a `%` without two
/// hex digits.
fn char_at(p: &[u8], i: usize, decode: bool) -> Result<Option<(u8, usize)>, PathError> {
    let Some(&b) = p.get(i) else { return Ok(None) };
    // A request-target never carries these raw (the head parser refuses them); the first
    // pass refuses them too, so this function stands on its own.
    if decode && (b <= b' ' || b == 0x7f) {
        return Err(PathError::RawControl);
    }
    if decode && b == b'%' {
        let Some(c) = escape_at(p, i) else {
            return Err(PathError::BadEscape);
        };
        if is_unreserved(c) {
            return Ok(Some((c, 3)));
        }
    }
    Ok(Some((b, 1)))
}

/// `ap_normalize_path` with `NOT_ABOVE_ROOT`: removes `.` segments, resolves `..`
/// segments, merges slash runs when asked, and (with `decode`) decodes escaped unreserved
/// characters first, so `/%2e%2e/` is a parent segment too. `out` is cleared first.
fn resolve_dots(p: &[u8], merge: bool, decode: bool, out: &mut Vec<u8>) -> Result<(), PathError> {
    out.clear();
    if p.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    out.push(b'/');
    let mut i = 1;
    while let Some((c, n)) = char_at(p, i, decode)? {
        if out.last() == Some(&b'/') {
            if merge && c == b'/' {
                i += n;
                continue;
            }
            if c == b'.' {
                // What follows the dot decides: end or `/` is a `.` segment, another dot and
                // then end or `/` a `..` segment; anything else an ordinary name.
                let next = char_at(p, i + n, decode)?;
                match next {
                    None | Some((b'/', _)) => {
                        i += n + next.map_or(0, |(_, m)| m);
                        continue;
                    }
                    Some((b'.', m)) => {
                        let after = char_at(p, i + n + m, decode)?;
                        if let None | Some((b'/', _)) = after {
                            if out.len() <= 1 {
                                return Err(PathError::AboveRoot);
                            }
                            // Drop the last segment and its slash.
                            out.pop();
                            while out.last().is_some_and(|&b| b != b'/') {
                                out.pop();
                            }
                            i += n + m + after.map_or(0, |(_, k)| k);
                            continue;
                        }
                    }
                    _ => {}
                }
            }
        }
        out.push(c);
        i += n;
    }
    Ok(())
}

/// The path rules match: `raw` (the request-target's path, without the query) normalized
/// and percent-decoded as Apache's core does, into `out`. Uses `scratch` for the first pass.
pub fn normalize(
    raw: &[u8],
    policy: &PathPolicy,
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) -> Result<(), PathError> {
    resolve_dots(raw, policy.merge_slashes, true, scratch)?;
    // Second pass: every remaining escape is decoded (unreserved ones are gone already).
    out.clear();
    let mut slash_decoded = false;
    let mut i = 0;
    while i < scratch.len() {
        let b = scratch[i];
        if b != b'%' {
            out.push(b);
            i += 1;
            continue;
        }
        let c = escape_at(scratch, i).ok_or(PathError::BadEscape)?;
        match c {
            0 => return Err(PathError::EncodedNul),
            b'/' => match policy.encoded_slashes {
                EncodedSlashes::Off => return Err(PathError::EncodedSlash),
                EncodedSlashes::NoDecode => out.extend_from_slice(&scratch[i..i + 3]),
                EncodedSlashes::On => {
                    out.push(b'/');
                    slash_decoded = true;
                }
            },
            c => out.push(c),
        }
        i += 3;
    }
    if slash_decoded {
        // `/.%2F..%2F` makes new segments once decoded: resolve them too (Apache does the
        // same, without decoding again).
        std::mem::swap(out, scratch);
        resolve_dots(scratch, policy.merge_slashes, false, out)?;
    }
    // Looked for in the path as the client sent it (`/app/.;x/../manager` resolves to
    // `/app/manager` here, but to `/manager` in a servlet container) and as it is now
    // (with `AllowEncodedSlashes On`, `/%2F..;x` has made such a segment by decoding).
    if !policy.servlet_dot_segments
        && (has_servlet_dot_segment(raw, true) || has_servlet_dot_segment(out, false))
    {
        return Err(PathError::ServletDotSegment);
    }
    Ok(())
}

/// A segment `.;…` or `..;…` (in any spelling when `decode`: `%2e%2e;`, `..%3B`): a
/// servlet container drops the `;` parameter and then reads a `.` or `..` segment.
fn has_servlet_dot_segment(path: &[u8], decode: bool) -> bool {
    path.split(|&b| b == b'/').any(|seg| {
        // The segment's first characters, decoded, up to the first `;`.
        let mut dots = 0;
        let mut i = 0;
        while i < seg.len() {
            let (c, n) = match seg[i] {
                b'%' if decode => match escape_at(seg, i) {
                    Some(c) => (c, 3),
                    None => return false,
                },
                c => (c, 1),
            };
            match c {
                b'.' if dots < 2 => dots += 1,
                b';' => return dots > 0,
                _ => return false,
            }
            i += n;
        }
        false
    })
}

/// Bytes a path may carry unescaped when forwarded (mod_proxy's `enc_path` set plus `/`).
fn path_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"~$-_.+!*'(),;:@&=/".contains(&b)
}

/// Appends `path` (decoded, as [`normalize`] made it) to `out` in canonical form: every
/// byte outside the safe set becomes `%XX`. With `keep_encoded_slashes`
/// (`AllowEncodedSlashes NoDecode`) a `%2F` the path kept stays as it is.
pub fn encode_path(path: &[u8], keep_encoded_slashes: bool, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut i = 0;
    while i < path.len() {
        let b = path[i];
        if keep_encoded_slashes && b == b'%' && escape_at(path, i) == Some(b'/') {
            out.extend_from_slice(&path[i..i + 3]);
            i += 3;
            continue;
        }
        if path_safe(b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
        i += 1;
    }
}

/// Apache's `alias_match`: whether `path` starts with the rule's `prefix`, where a run of
/// slashes in one matches a run in the other and the prefix must end at a segment boundary
/// (`/app` takes `/app` and `/app/x`, never `/appx`). Returns how many bytes of `path`
/// matched.
pub fn prefix_match(path: &[u8], prefix: &[u8]) -> Option<usize> {
    let (mut a, mut u) = (0, 0);
    while a < prefix.len() && u < path.len() {
        if prefix[a] == b'/' {
            if path[u] != b'/' {
                return None;
            }
            while prefix.get(a) == Some(&b'/') {
                a += 1;
            }
            while path.get(u) == Some(&b'/') {
                u += 1;
            }
        } else {
            if path[u] != prefix[a] {
                return None;
            }
            a += 1;
            u += 1;
        }
    }
    if a < prefix.len() {
        return None;
    }
    let ends_segment = prefix.last() == Some(&b'/') || prefix.is_empty();
    if !ends_segment && u < path.len() && path[u] != b'/' {
        return None;
    }
    Some(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str, policy: &PathPolicy) -> Result<String, PathError> {
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        normalize(raw.as_bytes(), policy, &mut out, &mut scratch)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    #[test]
    fn normalization_table() {
        use PathError::*;
        let d = PathPolicy::default();
        let cases: &[(&str, Result<&str, PathError>)] = &[
            ("/", Ok("/")),
            ("/a/b", Ok("/a/b")),
            ("/examples/../manager/", Ok("/manager/")),
            ("//balancer-manager", Ok("/balancer-manager")),
            ("/a//b///c", Ok("/a/b/c")),
            ("/./a/./b/.", Ok("/a/b/")),
            ("/a/b/..", Ok("/a/")),
            ("/a/b/../..", Ok("/")),
            ("/%69nternal/x", Ok("/internal/x")),
            ("/%2e%2e/etc", Err(AboveRoot)),
            ("/a/%2e%2e/b", Ok("/b")),
            ("/a/.%2E/b", Ok("/b")),
            ("/a/%2E./b", Ok("/b")),
            ("/a/%2e/b", Ok("/a/b")),
            ("/..", Err(AboveRoot)),
            ("/../a", Err(AboveRoot)),
            ("/a/../../b", Err(AboveRoot)),
            ("/a%2fb", Err(EncodedSlash)),
            ("/a%2Fb", Err(EncodedSlash)),
            ("/a%00b", Err(EncodedNul)),
            ("/a%zz", Err(BadEscape)),
            ("/a%4", Err(BadEscape)),
            ("/a%", Err(BadEscape)),
            ("/a%20b", Ok("/a b")),
            ("/a%3Fb", Ok("/a?b")),
            ("/a%252e%252e/b", Ok("/a%2e%2e/b")),
            ("/caf%C3%A9", Ok("/café")),
            ("/...", Ok("/...")),
            ("/a/..b/c", Ok("/a/..b/c")),
            ("/a/b..", Ok("/a/b..")),
            ("/app/..;/manager/", Err(ServletDotSegment)),
            ("/app/%2e%2e;jsessionid=1/manager", Err(ServletDotSegment)),
            ("/app/..%3B/manager", Err(ServletDotSegment)),
            ("/app/.;x/../manager", Err(ServletDotSegment)),
            ("/app/%2E;/x", Err(ServletDotSegment)),
            ("/app/...;x", Ok("/app/...;x")),
            ("/app/.x;y", Ok("/app/.x;y")),
            ("/app;x/page", Ok("/app;x/page")),
            (
                "/app/page;jsessionid=abc.n1",
                Ok("/app/page;jsessionid=abc.n1"),
            ),
            ("a/b", Err(NotAbsolute)),
            // Found by the path_normalize fuzz target: a raw NUL passed, then came back
            // from the member's side as %00 (refused).
            ("/\0", Err(RawControl)),
            ("/a b", Err(RawControl)),
            ("/a\x7f", Err(RawControl)),
            ("", Err(NotAbsolute)),
        ];
        for (raw, want) in cases {
            assert_eq!(norm(raw, &d).as_deref(), want.as_deref(), "{raw}");
        }
    }

    #[test]
    fn policies_change_what_they_name() {
        let no_merge = PathPolicy {
            merge_slashes: false,
            ..Default::default()
        };
        assert_eq!(norm("/a//b", &no_merge).unwrap(), "/a//b");
        assert_eq!(norm("/a//../b", &no_merge).unwrap(), "/a/b");
        let on = PathPolicy {
            encoded_slashes: EncodedSlashes::On,
            ..Default::default()
        };
        assert_eq!(norm("/a%2fb", &on).unwrap(), "/a/b");
        // Decoding a slash can make new dot segments: resolved again.
        assert_eq!(norm("/a/b%2F..%2Fc", &on).unwrap(), "/a/c");
        assert_eq!(norm("/a%2F..%2F..%2Fx", &on), Err(PathError::AboveRoot));
        // Found by the path_normalize fuzz target: a decoded slash makes a servlet dot
        // segment that the raw path did not show.
        assert_eq!(norm("/%2F.;", &on), Err(PathError::ServletDotSegment));
        assert_eq!(norm("/x%2F..;y/z", &on), Err(PathError::ServletDotSegment));
        let keep = PathPolicy {
            encoded_slashes: EncodedSlashes::NoDecode,
            ..Default::default()
        };
        assert_eq!(norm("/a%2fb%41", &keep).unwrap(), "/a%2fbA");
        let servlet = PathPolicy {
            servlet_dot_segments: true,
            ..Default::default()
        };
        assert_eq!(norm("/app/..;/x", &servlet).unwrap(), "/app/..;/x");
    }

    #[test]
    fn canonical_encoding() {
        let cases: &[(&[u8], &str)] = &[
            (b"/a b", "/a%20b"),
            (b"/a?b#c", "/a%3Fb%23c"),
            (b"/caf\xc3\xa9", "/caf%C3%A9"),
            (b"/x;p=1,2:@&=+$!*'()~_-.", "/x;p=1,2:@&=+$!*'()~_-."),
            (b"/100%", "/100%25"),
            (b"/a\r\nb", "/a%0D%0Ab"),
        ];
        for (path, want) in cases {
            let mut out = Vec::new();
            encode_path(path, false, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), *want);
        }
        let mut out = Vec::new();
        encode_path(b"/a%2Fb%", true, &mut out);
        assert_eq!(out, b"/a%2Fb%25");
    }

    #[test]
    fn prefix_matches_whole_segments() {
        let cases: &[(&str, &str, Option<usize>)] = &[
            ("/app", "/app", Some(4)),
            ("/app/x", "/app", Some(4)),
            ("/appx", "/app", None),
            ("/app", "/app/", None),
            ("/app/", "/app/", Some(5)),
            ("/app/x", "/app/", Some(5)),
            ("/a//b/c", "/a/b", Some(5)),
            ("/", "/", Some(1)),
            ("/anything", "/", Some(1)),
            ("/ap", "/app", None),
            ("/static/a.css", "/static", Some(7)),
        ];
        for (path, prefix, want) in cases {
            assert_eq!(
                prefix_match(path.as_bytes(), prefix.as_bytes()),
                *want,
                "{path} ~ {prefix}"
            );
        }
    }

    /// A small deterministic generator, so the property runs the same everywhere.
    fn paths(n: usize) -> impl Iterator<Item = Vec<u8>> {
        const PIECES: &[&[u8]] = &[
            b"/", b"//", b".", b"..", b"a", b"b", b"%2e", b"%2E", b"%2f", b"%41", b"%25", b";",
            b"%3b", b"%", b"x", b"%00", b"%c3%a9", b"?", b" ", b"%2",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        (0..n).map(move |_| {
            let mut p = vec![b'/'];
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 12) as usize;
            for k in 0..len {
                let r = state.rotate_left(k as u32 * 5) as usize;
                p.extend_from_slice(PIECES[r % PIECES.len()]);
            }
            p
        })
    }

    #[test]
    fn normalized_paths_are_stable_and_stay_under_root() {
        for policy in [
            PathPolicy::default(),
            PathPolicy {
                merge_slashes: false,
                encoded_slashes: EncodedSlashes::On,
                servlet_dot_segments: true,
            },
            PathPolicy {
                encoded_slashes: EncodedSlashes::NoDecode,
                ..Default::default()
            },
        ] {
            let keep = policy.encoded_slashes == EncodedSlashes::NoDecode;
            for raw in paths(20_000) {
                let (mut out, mut scratch) = (Vec::new(), Vec::new());
                if normalize(&raw, &policy, &mut out, &mut scratch).is_err() {
                    continue;
                }
                assert!(out.starts_with(b"/"), "{raw:?}");
                // No `.` or `..` segment survives.
                for seg in out.split(|&b| b == b'/') {
                    assert!(seg != b"." && seg != b"..", "{raw:?} -> {out:?}");
                }
                // What is forwarded reads back as the same path at the member.
                let mut fwd = Vec::new();
                encode_path(&out, keep, &mut fwd);
                let mut again = Vec::new();
                normalize(&fwd, &policy, &mut again, &mut scratch)
                    .unwrap_or_else(|e| panic!("{raw:?} -> {fwd:?}: {e}"));
                assert_eq!(again, out, "{raw:?} -> {fwd:?}");
            }
        }
    }
}
