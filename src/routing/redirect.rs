//! mod_alias's redirects: `Redirect`, `RedirectMatch`, `RedirectPermanent`, `RedirectTemp`,
//! in a host or a `<Location>`. Matched against the normalized path like every other rule;
//! what is appended to the target is re-encoded, so a decoded CR, LF or space never reaches
//! a `Location` header raw.

use super::{expand_dollars, normalize, PathInput};
use crate::config::{Matcher, RedirectRule};

/// What a redirect answers: its status and, for a 3xx, the target (a path when the rule
/// gave one; the caller makes it absolute).
#[derive(Debug, PartialEq, Eq)]
pub struct Redirected {
    pub status: u16,
    pub location: Option<String>,
}

/// The first of `rules` that matches, applied.
pub fn first(rules: &[RedirectRule], input: &PathInput<'_>) -> Option<Redirected> {
    rules.iter().find_map(|r| apply(r, input))
}

/// One rule: a prefix takes whole segments and the rest of the path is appended to the
/// target; a regex's `$N` are replaced. The request's query follows unless the target has
/// one of its own (Apache 2.4).
pub fn apply(rule: &RedirectRule, input: &PathInput<'_>) -> Option<Redirected> {
    let path = input.path;
    let mut out = Vec::new();
    match &rule.matcher {
        Matcher::Prefix(prefix) => {
            let len = normalize::prefix_match(path, prefix.as_bytes())?;
            if let Some(t) = &rule.target {
                out.extend_from_slice(t.as_bytes());
                input.encode(&path[len..], &mut out);
            }
        }
        Matcher::Regex(re) => {
            let caps = re.captures(path)?;
            if let Some(t) = &rule.target {
                expand_dollars(t, &mut out, |n, out| {
                    if let Some(m) = caps.get(n) {
                        input.encode(m.as_bytes(), out);
                    }
                });
            }
        }
    }
    let location = rule.target.as_ref().map(|_| {
        if let (Some(q), false) = (input.query, out.contains(&b'?')) {
            out.push(b'?');
            out.extend_from_slice(q);
        }
        String::from_utf8_lossy(&out).into_owned()
    });
    Some(Redirected {
        status: rule.status,
        location,
    })
}

/// Parses the arguments of a redirect directive (after its name). `in_location`: the
/// URL-path is the section's, so it is not written. Returns the status, the URL-path (or
/// regex) and the target.
pub fn parse_args(
    name: &str,
    args: &[String],
    in_location: bool,
) -> Result<(u16, Option<String>, Option<String>), String> {
    let lower = name.to_ascii_lowercase();
    let mut rest = args;
    let status = match lower.as_str() {
        "redirectpermanent" => 301,
        "redirecttemp" => 302,
        _ => {
            let word = rest.first().map(|a| a.to_ascii_lowercase());
            let named = match word.as_deref() {
                Some("permanent") => Some(301),
                Some("temp") => Some(302),
                Some("seeother") => Some(303),
                Some("gone") => Some(410),
                Some(w) if w.len() == 3 && w.bytes().all(|b| b.is_ascii_digit()) => {
                    let n: u16 = w.parse().map_err(|_| format!("{name}: bad status {w}"))?;
                    if !(300..600).contains(&n) {
                        return Err(format!(
                            "{name}: status {n} is not a redirect or an error status"
                        ));
                    }
                    Some(n)
                }
                _ => None,
            };
            if named.is_some() {
                rest = &rest[1..];
            }
            named.unwrap_or(302)
        }
    };
    let (pattern, target) = match (in_location, rest) {
        (true, [t]) => (None, Some(t.clone())),
        (true, []) => (None, None),
        (false, [p, t]) => (Some(p.clone()), Some(t.clone())),
        (false, [p]) => (Some(p.clone()), None),
        _ => {
            return Err(format!(
                "{name} takes [status] {}URL",
                if in_location { "" } else { "URL-path " }
            ))
        }
    };
    let redirect = (300..400).contains(&status);
    match (&target, redirect) {
        (None, true) => return Err(format!("{name}: a {status} redirect needs a target URL")),
        (Some(_), false) => {
            return Err(format!(
                "{name}: status {status} takes no URL (it is not a redirect)"
            ))
        }
        (Some(t), true) if !(t.starts_with('/') || t.contains("://")) => {
            return Err(format!(
                "{name}: target '{t}' must be a full URL (https://host/…) or a path starting with /"
            ))
        }
        _ => {}
    }
    if pattern.as_deref().is_some_and(|p| !p.starts_with('/')) && !lower.ends_with("match") {
        return Err(format!("{name}: the URL-path must start with /"));
    }
    Ok((status, pattern, target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(matcher: Matcher, status: u16, target: Option<&str>) -> RedirectRule {
        RedirectRule {
            matcher,
            status,
            target: target.map(String::from),
        }
    }

    #[test]
    fn redirects_as_mod_alias_makes_them() {
        let run = |r: &RedirectRule, target: &str| {
            let (path, query) = PathInput::split_target(target.as_bytes());
            let input = PathInput {
                path,
                raw: path,
                query,
                keep_encoded_slashes: false,
            };
            apply(r, &input)
        };
        let all = rule(
            Matcher::Prefix("/".into()),
            301,
            Some("https://www.example.com/"),
        );
        assert_eq!(
            run(&all, "/a/b?x=1"),
            Some(Redirected {
                status: 301,
                location: Some("https://www.example.com/a/b?x=1".into())
            })
        );
        let svc = rule(
            Matcher::Prefix("/service".into()),
            302,
            Some("http://foo2.example.com/service"),
        );
        assert_eq!(
            run(&svc, "/service/foo.txt").unwrap().location.as_deref(),
            Some("http://foo2.example.com/service/foo.txt")
        );
        assert_eq!(run(&svc, "/services"), None, "whole segments only");
        // A decoded CR/LF in the path is re-encoded, never written raw.
        assert_eq!(
            run(&all, "/a\r\nSet-Cookie:x").unwrap().location.as_deref(),
            Some("https://www.example.com/a%0D%0ASet-Cookie:x")
        );
        let re = rule(
            Matcher::Regex(regex::bytes::Regex::new(r"^/old/(.*)\.gif$").unwrap()),
            301,
            Some("/new/$1.png?from=old"),
        );
        assert_eq!(
            run(&re, "/old/a.gif?q").unwrap().location.as_deref(),
            Some("/new/a.png?from=old"),
            "the target's own query wins"
        );
        let gone = rule(Matcher::Prefix("/gone".into()), 410, None);
        assert_eq!(
            run(&gone, "/gone/x"),
            Some(Redirected {
                status: 410,
                location: None
            })
        );
    }

    #[test]
    fn arguments_as_mod_alias_reads_them() {
        let a = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            parse_args("Redirect", &a("permanent / https://x/"), false).unwrap(),
            (301, Some("/".into()), Some("https://x/".into()))
        );
        assert_eq!(
            parse_args("Redirect", &a("/a https://x/"), false)
                .unwrap()
                .0,
            302
        );
        assert_eq!(
            parse_args("Redirect", &a("303 /a /b"), false).unwrap().0,
            303
        );
        assert_eq!(
            parse_args("Redirect", &a("gone /a"), false).unwrap(),
            (410, Some("/a".into()), None)
        );
        assert_eq!(
            parse_args("RedirectPermanent", &a("/a /b"), false)
                .unwrap()
                .0,
            301
        );
        assert_eq!(
            parse_args("Redirect", &a("https://x/"), true).unwrap(),
            (302, None, Some("https://x/".into()))
        );
        for bad in [
            "gone /a https://x/",
            "/a",
            "301 /a relative",
            "a https://x/",
            "999 /a /b",
        ] {
            assert!(parse_args("Redirect", &a(bad), false).is_err(), "{bad}");
        }
    }
}
