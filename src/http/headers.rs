//! mod_headers' `Header` and `RequestHeader`, for the forms proxies use: `set`, `append`,
//! `add`, `unset`, `merge`, `edit`/`edit*`, values with `%{BALANCER_…}e`, `%D` and `%t`, and
//! `env=VAR` / `env=!VAR` conditions. The Apache docs' sticky recipe
//! `Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/" env=BALANCER_ROUTE_CHANGED`
//! works as written.

use std::borrow::Cow;

use super::message::Headers;
use std::time::{Duration, SystemTime};

/// Variables a value or condition may use (what mod_proxy_balancer sets).
pub const VARIABLES: &[&str] = &[
    "BALANCER_NAME",
    "BALANCER_WORKER_NAME",
    "BALANCER_WORKER_ROUTE",
    "BALANCER_ROUTE_CHANGED",
    "BALANCER_SESSION_STICKY",
    "BALANCER_SESSION_ROUTE",
];

#[derive(Clone, Debug)]
pub enum Part {
    Lit(String),
    Var(String),
    /// `%D`: microseconds since the request was received (`D=` prefix, as Apache).
    Duration,
    /// `%t`: `t=` and microseconds since the epoch, as Apache.
    Time,
    /// `%{NAME}s`: a mod_ssl variable (`transport::tls::vars`).
    Ssl(&'static str),
}

#[derive(Clone, Debug)]
pub enum Action {
    Set(Vec<Part>),
    /// `setifempty`: set only when the header is absent or empty.
    SetIfEmpty(Vec<Part>),
    Append(Vec<Part>),
    Add(Vec<Part>),
    Merge(Vec<Part>),
    Unset,
    Edit {
        re: regex::Regex,
        with: String,
        all: bool,
    },
}

#[derive(Clone, Debug)]
pub struct Rule {
    pub name: String,
    pub action: Action,
    /// (variable, must be set): `env=VAR` or `env=!VAR`.
    pub cond: Option<(String, bool)>,
}

fn parse_value(v: &str) -> Result<Vec<Part>, String> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            lit.push(c);
            continue;
        }
        let part = match chars.next() {
            Some('%') => {
                lit.push('%');
                continue;
            }
            Some('D') => Part::Duration,
            Some('t') => Part::Time,
            Some('{') => {
                let mut name = String::new();
                for ch in chars.by_ref() {
                    if ch == '}' {
                        break;
                    }
                    name.push(ch);
                }
                let ssl = crate::transport::tls::vars::NAMES
                    .iter()
                    .find(|n| **n == name.as_str());
                match chars.next() {
                    Some('e') if VARIABLES.contains(&name.as_str()) => Part::Var(name),
                    Some('s') => match ssl {
                        Some(n) => Part::Ssl(n),
                        None => {
                            return Err(format!(
                                "%{{{name}}}s: not a mod_ssl variable ringproxy sets (it sets {})",
                                crate::transport::tls::vars::NAMES.join(", ")
                            ))
                        }
                    },
                    Some('e') => {
                        return Err(format!(
                            "%{{{name}}}e: not a variable ringproxy sets (it sets {})",
                            VARIABLES.join(", ")
                        ))
                    }
                    Some(k) => {
                        return Err(format!(
                            "%{{{name}}}{k} is not supported (only %{{VAR}}e and %{{VAR}}s)"
                        ))
                    }
                    None => return Err("value ends inside %{…}".into()),
                }
            }
            Some(k) => {
                return Err(format!(
                    "%{k} is not supported in header values (%D, %t, %{{VAR}}e are)"
                ))
            }
            None => return Err("value ends with '%'".into()),
        };
        if !lit.is_empty() {
            out.push(Part::Lit(std::mem::take(&mut lit)));
        }
        out.push(part);
    }
    if !lit.is_empty() {
        out.push(Part::Lit(lit));
    }
    Ok(out)
}

/// Parses the arguments of `Header` / `RequestHeader` (after the directive name).
pub fn parse(args: &[String], response: bool) -> Result<Rule, String> {
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    if response
        && matches!(
            args.first().map(|a| a.to_ascii_lowercase()).as_deref(),
            Some("always" | "onsuccess")
        )
    {
        args.remove(0);
    }
    let mut cond = None;
    if let Some(last) = args.last() {
        if let Some(v) = last.strip_prefix("env=") {
            let (var, set) = match v.strip_prefix('!') {
                Some(x) => (x, false),
                None => (v, true),
            };
            if !VARIABLES.contains(&var) {
                return Err(format!(
                    "env={v}: not a variable ringproxy sets (it sets {})",
                    VARIABLES.join(", ")
                ));
            }
            cond = Some((var.to_string(), set));
            args.pop();
        } else if last.starts_with("expr=") {
            return Err(format!(
                "'{last}': ap_expr conditions are not available (env=VAR and env=!VAR are)"
            ));
        } else if *last == "early" {
            return Err(
                "'early': rules run once per request, after routing; early ones (before the request is read) are not available"
                    .into(),
            );
        }
    }
    let (verb, rest) = args.split_first().ok_or("missing action")?;
    let verb = verb.to_ascii_lowercase();
    let need = |n: usize| -> Result<(), String> {
        if rest.len() == n {
            Ok(())
        } else {
            Err(format!(
                "{verb} takes {n} argument(s) here, got {}",
                rest.len()
            ))
        }
    };
    let action = match verb.as_str() {
        "set" | "setifempty" | "append" | "add" | "merge" => {
            need(2)?;
            let v = parse_value(rest[1])?;
            match verb.as_str() {
                "set" => Action::Set(v),
                "setifempty" => Action::SetIfEmpty(v),
                "append" => Action::Append(v),
                "add" => Action::Add(v),
                _ => Action::Merge(v),
            }
        }
        "unset" => {
            need(1)?;
            Action::Unset
        }
        "edit" | "edit*" => {
            need(3)?;
            Action::Edit {
                re: regex::Regex::new(rest[1]).map_err(|e| format!("edit: bad regex: {e}"))?,
                with: rest[2].to_string(),
                all: verb == "edit*",
            }
        }
        "echo" => {
            return Err(
                "'echo' is not supported: request headers are not copied into responses; name each one with Header set and a value"
                    .into(),
            )
        }
        "note" => {
            return Err(
                "'note' is not supported: ringproxy keeps no request notes (log a header with %{NAME}i or %{NAME}o instead)"
                    .into(),
            )
        }
        other => {
            return Err(format!(
                "action '{other}' is not supported (set, setifempty, append, add, merge, unset, edit, edit*)"
            ))
        }
    };
    Ok(Rule {
        name: rest[0].to_string(),
        action,
        cond,
    })
}

/// The variables of one request.
#[derive(Debug, Default, Clone)]
pub struct Env {
    pub balancer: Option<String>,
    pub worker_name: Option<String>,
    pub worker_route: Option<String>,
    pub route_changed: bool,
    pub sticky: Option<String>,
    pub session_route: Option<String>,
    pub elapsed: Duration,
    /// The TLS connection's facts, for `%{…}s` (`None`: plain TCP).
    pub tls: Option<crate::transport::TlsFacts>,
}

impl Env {
    fn get(&self, var: &str) -> Option<String> {
        match var {
            "BALANCER_NAME" => self.balancer.clone(),
            "BALANCER_WORKER_NAME" => self.worker_name.clone(),
            "BALANCER_WORKER_ROUTE" => self.worker_route.clone(),
            "BALANCER_ROUTE_CHANGED" => self.route_changed.then(|| "1".to_string()),
            "BALANCER_SESSION_STICKY" => self.sticky.clone(),
            "BALANCER_SESSION_ROUTE" => self.session_route.clone(),
            _ => None,
        }
    }
}

fn render(parts: &[Part], env: &Env) -> String {
    let mut s = String::new();
    for p in parts {
        match p {
            Part::Lit(l) => s.push_str(l),
            Part::Var(v) => s.push_str(&env.get(v).unwrap_or_default()),
            Part::Ssl(n) => s.push_str(&crate::transport::tls::vars::value(env.tls.as_ref(), n)),
            Part::Duration => s.push_str(&format!("D={}", env.elapsed.as_micros())),
            Part::Time => {
                let us = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_micros())
                    .unwrap_or(0);
                s.push_str(&format!("t={us}"));
            }
        }
    }
    s
}

/// Applies `rules` to a header list over `input`, in order. A field no rule changed keeps
/// every byte it came with, whatever its spelling (`Name:value`, extra spaces, bytes that
/// are not UTF-8); a changed or added one is written as `Name: value`.
pub fn apply(rules: &[Rule], headers: &mut Headers, input: &[u8], env: &Env) {
    for r in rules {
        if let Some((var, want_set)) = &r.cond {
            if env.get(var).is_some() != *want_set {
                continue;
            }
        }
        let name = r.name.as_bytes();
        let named = |h: &Headers, i: usize| h.get(input, i).0.eq_ignore_ascii_case(name);
        match &r.action {
            Action::Set(v) => {
                headers.retain(input, |n, _| !n.eq_ignore_ascii_case(name));
                headers.push(name, render(v, env).as_bytes());
            }
            Action::SetIfEmpty(v) => {
                let has_value = (0..headers.len())
                    .any(|i| named(headers, i) && !headers.get(input, i).1.trim_ascii().is_empty());
                if !has_value {
                    headers.retain(input, |n, _| !n.eq_ignore_ascii_case(name));
                    headers.push(name, render(v, env).as_bytes());
                }
            }
            Action::Add(v) => headers.push(name, render(v, env).as_bytes()),
            Action::Append(v) | Action::Merge(v) => {
                let value = render(v, env);
                match (0..headers.len()).find(|&i| named(headers, i)) {
                    Some(i) => {
                        let old = headers.get(input, i).1;
                        let merge = matches!(r.action, Action::Merge(_));
                        let present = old
                            .split(|&b| b == b',')
                            .any(|t| crate::http::head::trim(t) == value.as_bytes());
                        if !(merge && present) {
                            let mut joined = old.to_vec();
                            joined.extend_from_slice(b", ");
                            joined.extend_from_slice(value.as_bytes());
                            headers.set_value(i, &joined);
                        }
                    }
                    None => headers.push(name, value.as_bytes()),
                }
            }
            Action::Unset => headers.retain(input, |n, _| !n.eq_ignore_ascii_case(name)),
            Action::Edit { re, with, all } => {
                for i in 0..headers.len() {
                    if !named(headers, i) {
                        continue;
                    }
                    // A value that is not text is left as it is: the regex cannot see it.
                    let Ok(text) = std::str::from_utf8(headers.get(input, i).1) else {
                        continue;
                    };
                    let edited = if *all {
                        re.replace_all(text, with.as_str())
                    } else {
                        re.replace(text, with.as_str())
                    };
                    if let Cow::Owned(new) = edited {
                        headers.set_value(i, new.as_bytes());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str, response: bool) -> Result<Rule, String> {
        let args = crate::config::lexer::split_args(s).unwrap();
        parse(&args, response)
    }

    /// The fields after `rules`, as (name, value) text.
    fn after(rules: &[Rule], lines: &[u8], env: &Env) -> (Vec<(String, String)>, Vec<u8>) {
        let mut h = Headers::default();
        h.load_lines(lines);
        apply(rules, &mut h, lines, env);
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let fields = h.iter(lines).map(|(n, v)| (text(n), text(v))).collect();
        let mut out = Vec::new();
        h.write_h1(lines, &mut out);
        (fields, out)
    }

    #[test]
    fn sticky_recipe_and_actions() {
        let recipe = rule(r#"add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/" env=BALANCER_ROUTE_CHANGED"#, true).unwrap();
        let mut env = Env {
            worker_route: Some("node1".into()),
            route_changed: true,
            ..Default::default()
        };
        let recipe = std::slice::from_ref(&recipe);
        let (h, _) = after(recipe, b"Content-Type: text/plain\r\n", &env);
        assert_eq!(h[1], ("Set-Cookie".into(), "ROUTEID=.node1; path=/".into()));
        env.route_changed = false;
        let (h, _) = after(recipe, b"", &env);
        assert!(h.is_empty(), "condition not met");

        let rules: Vec<Rule> = [
            "set X-A one",
            "append X-A two",
            "merge X-A two",
            "add X-B b1",
            "add X-B b2",
            "unset X-C",
            r#"edit X-D ^http: https:"#,
            "setifempty X-E e",
            "setifempty X-F f",
            "setifempty X-G g",
        ]
        .iter()
        .map(|r| rule(r, false).unwrap())
        .collect();
        let (h, _) = after(
            &rules,
            b"X-C: gone\r\nX-D:http://x\r\nX-F: kept\r\nX-G: \r\n",
            &Env::default(),
        );
        let get = |n: &str| {
            h.iter()
                .filter(|x| x.0 == n)
                .map(|x| x.1.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("X-A"), vec!["one, two"]);
        assert_eq!(get("X-B"), vec!["b1", "b2"]);
        assert!(get("X-C").is_empty());
        assert_eq!(get("X-D"), vec!["https://x"]);
        assert_eq!(get("X-E"), vec!["e"]);
        assert_eq!(get("X-F"), vec!["kept"]);
        assert_eq!(get("X-G"), vec!["g"]);
    }

    #[test]
    fn unchanged_lines_keep_every_byte() {
        let lines = b"Content-Length:5\r\nX-Bin: caf\xe9\r\nX-Spaced:    v\r\nX-Edit: http://a\r\n";
        let rules = [rule("edit X-Edit ^http: https:", false).unwrap()];
        let (_, out) = after(&rules, lines, &Env::default());
        assert_eq!(
            out,
            b"Content-Length:5\r\nX-Bin: caf\xe9\r\nX-Spaced:    v\r\nX-Edit: https://a\r\n"
        );
    }

    #[test]
    fn unsupported_forms_name_what_is_unsupported() {
        for (bad, want) in [
            ("set X %{REMOTE_USER}e", "not a variable ringproxy sets"),
            (
                "set X %{SSL_CLIENT_CERT}s",
                "not a mod_ssl variable ringproxy sets",
            ),
            ("set X %{SSL_PROTOCOL}z", "is not supported"),
            ("set X y expr=%{X}", "ap_expr conditions are not available"),
            ("set X y early", "early ones"),
            ("echo X", "request headers are not copied"),
            ("note X y", "no request notes"),
            ("set X y env=HOME", "not a variable"),
        ] {
            let e = rule(bad, true).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }
}
