//! Apache httpd configuration syntax -> a tree of directives and sections.
//!
//! This stage knows nothing about what directives mean: it handles physical lines, `\`
//! continuations, comments, quoting, `<Section>` nesting and `Include`/`IncludeOptional`
//! expansion. Every node carries the file and line it came from so that later stages can
//! report `FILE:LINE: message`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a directive came from. The file name is shared by every node of that file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loc {
    pub file: Arc<str>,
    pub line: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A configuration problem, always tied to a place in a file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{loc}: {msg}")]
pub struct ConfigError {
    pub loc: Loc,
    pub msg: String,
}

impl ConfigError {
    pub fn new(loc: &Loc, msg: impl Into<String>) -> Self {
        ConfigError {
            loc: loc.clone(),
            msg: msg.into(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Directive {
    pub name: String,
    pub args: Vec<String>,
    pub loc: Loc,
}

#[derive(Clone, Debug)]
pub struct Section {
    pub name: String,
    pub args: Vec<String>,
    pub children: Vec<Node>,
    pub loc: Loc,
}

#[derive(Clone, Debug)]
pub enum Node {
    Directive(Directive),
    Section(Section),
}

/// Nested Include depth at which we assume a loop (Apache uses the same order of magnitude).
const MAX_INCLUDE_DEPTH: usize = 16;

/// Reads `path` and everything it includes into one tree. Errors are collected, not
/// short-circuited, so `-t` can show all of them at once.
pub fn parse_file(path: &Path, errors: &mut Vec<ConfigError>) -> Vec<Node> {
    let loc = Loc {
        file: Arc::from(path.display().to_string()),
        line: 0,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
            parse_text(&text, loc.file.clone(), &base, 0, errors)
        }
        Err(e) => {
            errors.push(ConfigError::new(&loc, format!("cannot read config: {e}")));
            Vec::new()
        }
    }
}

/// Parses configuration text. `base` is the directory relative Include paths start from.
pub fn parse_text(
    text: &str,
    file: Arc<str>,
    base: &Path,
    depth: usize,
    errors: &mut Vec<ConfigError>,
) -> Vec<Node> {
    // Stack of open sections; the bottom entry is the file's top level.
    let mut stack: Vec<Section> = vec![Section {
        name: String::new(),
        args: Vec::new(),
        children: Vec::new(),
        loc: Loc {
            file: file.clone(),
            line: 0,
        },
    }];
    for (line_no, logical) in logical_lines(text) {
        let loc = Loc {
            file: file.clone(),
            line: line_no,
        };
        let trimmed = logical.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("</") {
            let Some(name) = rest.strip_suffix('>') else {
                errors.push(ConfigError::new(
                    &loc,
                    format!("'{trimmed}' is missing '>'"),
                ));
                continue;
            };
            let name = name.trim();
            if stack.len() == 1 {
                errors.push(ConfigError::new(
                    &loc,
                    format!("</{name}> without matching <{name}> section"),
                ));
                continue;
            }
            let open = stack.pop().expect("stack has more than the top level");
            if !open.name.eq_ignore_ascii_case(name) {
                errors.push(ConfigError::new(
                    &loc,
                    format!(
                        "</{name}> closes <{}> opened at line {}",
                        open.name, open.loc.line
                    ),
                ));
            }
            push_node(&mut stack, Node::Section(open));
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix('<') {
            let Some(inner) = rest.strip_suffix('>') else {
                errors.push(ConfigError::new(
                    &loc,
                    format!("section '{trimmed}' is missing its closing '>'"),
                ));
                continue;
            };
            let words = match split_args(inner) {
                Ok(w) => w,
                Err(msg) => {
                    errors.push(ConfigError::new(&loc, msg));
                    continue;
                }
            };
            let mut words = words.into_iter();
            let Some(name) = words.next() else {
                errors.push(ConfigError::new(&loc, "empty section name '<>'"));
                continue;
            };
            stack.push(Section {
                name,
                args: words.collect(),
                children: Vec::new(),
                loc,
            });
            continue;
        }
        let words = match split_args(trimmed) {
            Ok(w) => w,
            Err(msg) => {
                errors.push(ConfigError::new(&loc, msg));
                continue;
            }
        };
        let mut words = words.into_iter();
        let Some(name) = words.next() else { continue };
        let args: Vec<String> = words.collect();
        if name.eq_ignore_ascii_case("Include") || name.eq_ignore_ascii_case("IncludeOptional") {
            let optional = name.eq_ignore_ascii_case("IncludeOptional");
            for node in include(&args, optional, base, &loc, depth, errors) {
                push_node(&mut stack, node);
            }
            continue;
        }
        push_node(&mut stack, Node::Directive(Directive { name, args, loc }));
    }
    while stack.len() > 1 {
        let open = stack.pop().expect("checked length");
        errors.push(ConfigError::new(
            &open.loc,
            format!("<{}> section is never closed", open.name),
        ));
        push_node(&mut stack, Node::Section(open));
    }
    stack.pop().map(|s| s.children).unwrap_or_default()
}

fn push_node(stack: &mut [Section], node: Node) {
    if let Some(top) = stack.last_mut() {
        top.children.push(node);
    }
}

fn include(
    args: &[String],
    optional: bool,
    base: &Path,
    loc: &Loc,
    depth: usize,
    errors: &mut Vec<ConfigError>,
) -> Vec<Node> {
    let [pattern] = args else {
        errors.push(ConfigError::new(loc, "Include takes exactly one path"));
        return Vec::new();
    };
    if depth >= MAX_INCLUDE_DEPTH {
        errors.push(ConfigError::new(
            loc,
            format!("Include nested more than {MAX_INCLUDE_DEPTH} deep (a loop?)"),
        ));
        return Vec::new();
    }
    let full: PathBuf = if Path::new(pattern).is_absolute() {
        PathBuf::from(pattern)
    } else {
        base.join(pattern)
    };
    let full_s = full.display().to_string();
    let mut files: Vec<PathBuf> = match glob::glob(&full_s) {
        Ok(paths) => paths
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect(),
        Err(e) => {
            errors.push(ConfigError::new(loc, format!("bad Include pattern: {e}")));
            return Vec::new();
        }
    };
    // Apache reads matches in sorted order so that `conf.d/*.conf` is deterministic.
    files.sort();
    if files.is_empty() {
        // Apache 2.4: IncludeOptional never fails on a missing file or an empty wildcard;
        // Include fails on both.
        if !optional {
            errors.push(ConfigError::new(
                loc,
                format!("Include '{full_s}' matches no file"),
            ));
        }
        return Vec::new();
    }
    let mut out = Vec::new();
    for f in files {
        match std::fs::read_to_string(&f) {
            Ok(text) => {
                let fbase = f.parent().map(Path::to_path_buf).unwrap_or_default();
                out.extend(parse_text(
                    &text,
                    Arc::from(f.display().to_string()),
                    &fbase,
                    depth + 1,
                    errors,
                ));
            }
            Err(e) => errors.push(ConfigError::new(
                loc,
                format!("cannot read included file {}: {e}", f.display()),
            )),
        }
    }
    out
}

/// Joins `\`-continued physical lines; yields (first physical line number, text).
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if cur.is_empty() {
            start = i + 1;
        }
        let body = line.trim_end();
        if let Some(cont) = body.strip_suffix('\\') {
            cur.push_str(cont);
            cur.push(' ');
            continue;
        }
        cur.push_str(line);
        out.push((start, std::mem::take(&mut cur)));
    }
    if !cur.is_empty() {
        out.push((start, cur));
    }
    out
}

/// Splits arguments the way Apache's `ap_getword_conf` does: whitespace separated, `"` or `'`
/// quoting, backslash escaping the quote character inside quotes.
pub fn split_args(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&c) = chars.peek() else { break };
        let mut word = String::new();
        if c == '"' || c == '\'' {
            let quote = c;
            chars.next();
            let mut closed = false;
            while let Some(ch) = chars.next() {
                if ch == '\\' && chars.peek() == Some(&quote) {
                    word.push(quote);
                    chars.next();
                } else if ch == quote {
                    closed = true;
                    break;
                } else {
                    word.push(ch);
                }
            }
            if !closed {
                return Err(format!("unterminated {quote}quoted{quote} argument"));
            }
        } else {
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() {
                    break;
                }
                word.push(ch);
                chars.next();
            }
        }
        out.push(word);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Vec<Node>, Vec<ConfigError>) {
        let mut errors = Vec::new();
        let nodes = parse_text(text, Arc::from("t.conf"), Path::new("."), 0, &mut errors);
        (nodes, errors)
    }

    #[test]
    fn split_args_table() {
        let cases: &[(&str, &[&str])] = &[
            ("a b  c", &["a", "b", "c"]),
            (r#"Header set X "a b""#, &["Header", "set", "X", "a b"]),
            (r#"'x y' z"#, &["x y", "z"]),
            (r#""say \"hi\"""#, &["say \"hi\""]),
            ("", &[]),
        ];
        for (input, want) in cases {
            assert_eq!(split_args(input).unwrap(), *want, "input {input:?}");
        }
        assert!(split_args("\"open").is_err());
    }

    #[test]
    fn sections_continuations_and_lines() {
        let text = "# comment\nListen 8080\n<VirtualHost *:8080>\n  ProxyPass / \\\n    http://127.0.0.1:9000/\n</VirtualHost>\nKeepAlive On\n";
        let (nodes, errors) = parse(text);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(nodes.len(), 3);
        let Node::Section(vh) = &nodes[1] else {
            panic!("expected section")
        };
        assert_eq!(vh.name, "VirtualHost");
        assert_eq!(vh.args, vec!["*:8080"]);
        let Node::Directive(pp) = &vh.children[0] else {
            panic!("expected directive")
        };
        assert_eq!(pp.args, vec!["/", "http://127.0.0.1:9000/"]);
        assert_eq!(pp.loc.line, 4);
        let Node::Directive(ka) = &nodes[2] else {
            panic!()
        };
        assert_eq!(ka.loc.line, 7);
    }

    #[test]
    fn unbalanced_sections_are_errors_with_lines() {
        let (_, errors) = parse("<Proxy balancer://a>\nBalancerMember http://x\n");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].loc.line, 1);
        let (_, errors) = parse("</Proxy>\n");
        assert_eq!(
            errors[0].to_string(),
            "t.conf:1: </Proxy> without matching <Proxy> section"
        );
        let (_, errors) = parse("<Proxy x>\n</VirtualHost>\n");
        assert!(errors[0].msg.contains("closes <Proxy>"));
    }

    #[test]
    fn include_globs_relative_to_config_dir() {
        let dir = std::env::temp_dir().join(format!("ringproxy-lexer-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        std::fs::write(dir.join("conf.d/b.conf"), "KeepAlive Off\n").unwrap();
        std::fs::write(dir.join("conf.d/a.conf"), "Timeout 5\n").unwrap();
        std::fs::write(
            dir.join("main.conf"),
            "Include conf.d/*.conf\nIncludeOptional none/*.conf\n",
        )
        .unwrap();
        let mut errors = Vec::new();
        let nodes = parse_file(&dir.join("main.conf"), &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        let names: Vec<_> = nodes
            .iter()
            .map(|n| match n {
                Node::Directive(d) => d.name.clone(),
                Node::Section(s) => s.name.clone(),
            })
            .collect();
        assert_eq!(names, vec!["Timeout", "KeepAlive"]);
        let mut errors = Vec::new();
        parse_text(
            "Include missing.conf\n",
            Arc::from("m.conf"),
            &dir,
            0,
            &mut errors,
        );
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().starts_with("m.conf:1: "));
        std::fs::remove_dir_all(&dir).ok();
    }
}
