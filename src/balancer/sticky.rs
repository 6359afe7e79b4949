//! Sticky session routes, as mod_proxy_balancer reads them (`find_session_route`,
//! `get_path_param`, `get_cookie_param`): the URL parameter first, then the cookie; the route
//! is what follows the separator.

/// Sticky-session settings of a balancer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sticky {
    pub cookie: String,
    pub param: String,
    /// `None`: the whole value is the route (`stickysessionsep=Off`).
    pub sep: Option<char>,
    /// `scolonpathdelim=On`: `;` also ends a URL parameter value.
    pub scolon: bool,
}

/// Apache searches the whole URL for `NAME=` (as a substring) and takes the value up to
/// `?` or `&` (and `;` with scolonpathdelim).
fn path_param<'a>(url: &'a str, name: &str, scolon: bool) -> Option<&'a str> {
    let mut from = 0;
    while let Some(i) = url[from..].find(name) {
        let after = from + i + name.len();
        if url[after..].starts_with('=') {
            let value = &url[after + 1..];
            let end = value
                .find(|c: char| c == '?' || c == '&' || (scolon && c == ';'))
                .unwrap_or(value.len());
            if end > 0 {
                return Some(&value[..end]);
            }
        }
        // On to the next character (never into the middle of one).
        from += i + url[from + i..].chars().next().map_or(1, char::len_utf8);
    }
    None
}

/// The value of cookie `name` in `Cookie` header values (case-sensitive name, as Apache).
pub fn cookie_value<'a>(
    cookie_headers: impl IntoIterator<Item = &'a str>,
    name: &str,
) -> Option<&'a str> {
    for header in cookie_headers {
        for pair in header.split([';', ',']) {
            if let Some((k, v)) = pair.trim().split_once('=') {
                if k.trim() == name {
                    return Some(v.trim().trim_matches('"'));
                }
            }
        }
    }
    None
}

/// The route a request asks for, if any: from the URL parameter, else the cookie.
/// Returns (route, came_from_url).
pub fn requested_route<'a>(
    s: &Sticky,
    url: &'a str,
    cookie_headers: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let value =
        path_param(url, &s.param, s.scolon).or_else(|| cookie_value(cookie_headers, &s.cookie))?;
    let route = match s.sep {
        // No separator in the value: Apache finds no route.
        Some(sep) => &value[value.find(sep)? + sep.len_utf8()..],
        None => value,
    };
    (!route.is_empty()).then_some(route)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_urls_with_multibyte_characters_never_panic() {
        for (url, name) in [
            ("/é=1/é=2", "é"),
            ("/ééé?x=1", "é"),
            ("/a?ü=.n1", "ü"),
            ("/aaa=.n1", "aa"),
        ] {
            let _ = path_param(url, name, false);
        }
        assert_eq!(path_param("/aaa=.n1", "aa", false), Some(".n1"));
        assert_eq!(path_param("/x?é=.r1", "é", false), Some(".r1"));
    }

    fn sticky(cookie: &str, param: &str, sep: Option<char>, scolon: bool) -> Sticky {
        Sticky {
            cookie: cookie.into(),
            param: param.into(),
            sep,
            scolon,
        }
    }

    #[test]
    fn routes_table() {
        let j = sticky("JSESSIONID", "jsessionid", Some('.'), false);
        let js = sticky("JSESSIONID", "jsessionid", Some('.'), true);
        let whole = sticky("ROUTEID", "ROUTEID", None, false);
        let cases: &[(&Sticky, &str, &[&str], Option<&str>)] = &[
            (&j, "/app", &["JSESSIONID=abc.node1"], Some("node1")),
            (
                &j,
                "/app",
                &["other=1; JSESSIONID=abc.node2; x=y"],
                Some("node2"),
            ),
            (
                &j,
                "/app?jsessionid=x.node3",
                &["JSESSIONID=abc.node1"],
                Some("node3"),
            ),
            (&j, "/app?a=1&jsessionid=x.node3&b=2", &[], Some("node3")),
            (&j, "/app;jsessionid=x.node2", &[], Some("node2")),
            (
                &j,
                "/app;jsessionid=x.node2;foo=bar",
                &[],
                Some("node2;foo=bar"),
            ),
            (&js, "/app;jsessionid=x.node2;foo=bar", &[], Some("node2")),
            (&j, "/app", &["JSESSIONID=noseparator"], None),
            (&j, "/app", &["JSESSIONID=abc."], None),
            (&j, "/app", &["jsessionid=abc.node1"], None),
            (&j, "/app", &[], None),
            (&whole, "/", &["ROUTEID=node1"], Some("node1")),
            (
                &sticky("ROUTEID", "ROUTEID", Some('.'), false),
                "/",
                &["ROUTEID=.node2"],
                Some("node2"),
            ),
        ];
        for (s, url, cookies, want) in cases {
            assert_eq!(
                requested_route(s, url, cookies.iter().copied()),
                *want,
                "{url} {cookies:?}"
            );
        }
    }
}
