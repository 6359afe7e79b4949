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

/// What the reader knows while it reads. Apache runs a few directives as the file is read
/// (`Define`, `UnDefine`, `ServerRoot`, `Include`, and the `<IfDefine>`/`<IfModule>`/
/// `<IfFile>` conditions) and substitutes `${NAME}` in every line before it is split; so
/// does this reader, in the same order, so that a later line sees exactly what Apache's
/// would. Everything else is left to the builder as a tree.
pub struct Reader<'a> {
    /// Names `<IfDefine>` tests: `-D NAME` and `Define NAME`.
    pub defined: Vec<String>,
    /// `${NAME}` values: `Define NAME VALUE`, and Debian's envvars when read; the process
    /// environment is asked after these, as Apache does.
    pub vars: std::collections::HashMap<String, String>,
    /// `ServerRoot`: relative Include patterns resolve against its value at that line;
    /// every other relative path against its final value (Apache reads those later).
    pub server_root: PathBuf,
    /// Whether ringproxy provides a module (by any of its names).
    provided: &'a dyn Fn(&str) -> bool,
    /// Modules named by `LoadModule` so far (short names). Once a tree loads modules, as a
    /// whole Apache tree does, `<IfModule>` holds only for those it loaded (and those built
    /// into Apache), as in Apache; a bare site file that loads none sees every module
    /// ringproxy provides.
    loaded: Vec<String>,
    pub errors: Vec<ConfigError>,
}

/// A section being read; conditional sections (`<IfModule>` …) are not kept in the tree:
/// their contents join the enclosing section when the condition holds, or are dropped.
struct Open {
    section: Section,
    /// `Some(holds)` for a conditional section.
    condition: Option<bool>,
    /// Whether lines here are read at all (false inside a condition that does not hold,
    /// at any depth: only nesting is tracked there, as Apache's soaking of a skipped block).
    active: bool,
}

impl<'a> Reader<'a> {
    pub fn new(
        server_root: PathBuf,
        defined: Vec<String>,
        provided: &'a dyn Fn(&str) -> bool,
    ) -> Self {
        Reader {
            defined,
            vars: Default::default(),
            server_root,
            provided,
            loaded: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Reads `path` and everything it includes into one tree. Errors are collected, not
    /// short-circuited, so `-t` can show all of them at once.
    pub fn read_file(&mut self, path: &Path) -> Vec<Node> {
        let loc = Loc {
            file: Arc::from(path.display().to_string()),
            line: 0,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => self.read_text(&text, loc.file.clone(), 0),
            Err(e) => {
                self.err(&loc, format!("cannot read config: {e}"));
                Vec::new()
            }
        }
    }

    fn err(&mut self, loc: &Loc, msg: impl Into<String>) {
        self.errors.push(ConfigError::new(loc, msg));
    }

    /// A path as Apache's `ap_server_root_relative` makes it.
    pub fn rooted(&self, p: &str) -> PathBuf {
        rooted(&self.server_root, p)
    }

    /// Reads configuration text (one file, `depth` Includes deep).
    pub fn read_text(&mut self, text: &str, file: Arc<str>, depth: usize) -> Vec<Node> {
        // Stack of open sections; the bottom entry is the file's top level.
        let mut stack: Vec<Open> = vec![Open {
            section: Section {
                name: String::new(),
                args: Vec::new(),
                children: Vec::new(),
                loc: Loc {
                    file: file.clone(),
                    line: 0,
                },
            },
            condition: None,
            active: true,
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
            let active = stack.last().is_some_and(|o| o.active);
            if let Some(rest) = trimmed.strip_prefix("</") {
                self.close(&mut stack, rest, trimmed, &loc);
                continue;
            }
            let substituted;
            let line = if active && trimmed.contains("${") {
                substituted = self.substitute(trimmed, &loc);
                substituted.as_str()
            } else {
                trimmed
            };
            if let Some(rest) = line.strip_prefix('<') {
                let Some(inner) = rest.strip_suffix('>') else {
                    if active {
                        self.err(&loc, format!("section '{line}' is missing its closing '>'"));
                    }
                    continue;
                };
                let words = match split_args(inner) {
                    Ok(w) => w,
                    Err(msg) if active => {
                        self.err(&loc, msg);
                        continue;
                    }
                    // Inside a skipped block only the name matters (for nesting).
                    Err(_) => inner.split_whitespace().map(str::to_string).collect(),
                };
                let mut words = words.into_iter();
                let Some(name) = words.next() else {
                    if active {
                        self.err(&loc, "empty section name '<>'");
                    }
                    continue;
                };
                let args: Vec<String> = words.collect();
                let condition = if active {
                    self.condition(&name, &args, &loc)
                } else {
                    None
                };
                stack.push(Open {
                    section: Section {
                        name,
                        args,
                        children: Vec::new(),
                        loc,
                    },
                    condition,
                    active: active && condition != Some(false),
                });
                continue;
            }
            if !active {
                continue;
            }
            let words = match split_args(line) {
                Ok(w) => w,
                Err(msg) => {
                    self.err(&loc, msg);
                    continue;
                }
            };
            let mut words = words.into_iter();
            let Some(name) = words.next() else { continue };
            let args: Vec<String> = words.collect();
            let nested = stack.len() > 1;
            let in_vhost_only = stack[1..].iter().all(|o| {
                o.condition.is_some() || o.section.name.eq_ignore_ascii_case("VirtualHost")
            });
            match name.to_ascii_lowercase().as_str() {
                "include" | "includeoptional" => {
                    let optional = name.eq_ignore_ascii_case("IncludeOptional");
                    for node in self.include(&args, optional, &loc, depth) {
                        push_node(&mut stack, node);
                    }
                }
                "define" => match args.as_slice() {
                    _ if !in_vhost_only => self.err(
                        &loc,
                        "Define is only allowed at the top level or in <VirtualHost>",
                    ),
                    [n, ..] if n.contains(':') => {
                        self.err(&loc, "Define: variable name must not contain ':'")
                    }
                    [n] => self.define(n),
                    [n, v] => {
                        self.define(n);
                        self.vars.insert(n.clone(), v.clone());
                    }
                    _ => self.err(&loc, "Define takes a name and an optional value"),
                },
                "undefine" => match args.as_slice() {
                    _ if !in_vhost_only => self.err(
                        &loc,
                        "UnDefine is only allowed at the top level or in <VirtualHost>",
                    ),
                    [n] => {
                        self.defined.retain(|d| d != n);
                        self.vars.remove(n);
                    }
                    _ => self.err(&loc, "UnDefine takes one name"),
                },
                "loadmodule" => {
                    if let Some(m) = args.first() {
                        self.loaded.push(module_short(m).to_string());
                    }
                    push_node(&mut stack, Node::Directive(Directive { name, args, loc }));
                }
                "serverroot" => match args.as_slice() {
                    _ if nested => self.err(&loc, "ServerRoot is only allowed at the top level"),
                    [p] => {
                        let root = std::env::current_dir().unwrap_or_default().join(p);
                        if root.is_dir() {
                            self.server_root = root;
                        } else {
                            self.err(
                                &loc,
                                format!("ServerRoot must be a valid directory ('{p}' is not)"),
                            );
                        }
                    }
                    _ => self.err(&loc, "ServerRoot takes one directory"),
                },
                _ => push_node(&mut stack, Node::Directive(Directive { name, args, loc })),
            }
        }
        while stack.len() > 1 {
            let open = stack.pop().expect("checked length");
            self.err(
                &open.section.loc,
                format!("<{}> section is never closed", open.section.name),
            );
            finish_section(&mut stack, open);
        }
        stack.pop().map(|o| o.section.children).unwrap_or_default()
    }

    fn close(&mut self, stack: &mut Vec<Open>, rest: &str, trimmed: &str, loc: &Loc) {
        let Some(name) = rest.strip_suffix('>') else {
            self.err(loc, format!("'{trimmed}' is missing '>'"));
            return;
        };
        let name = name.trim();
        if stack.len() == 1 {
            self.err(loc, format!("</{name}> without matching <{name}> section"));
            return;
        }
        let open = stack.pop().expect("stack has more than the top level");
        if !open.section.name.eq_ignore_ascii_case(name) {
            self.err(
                loc,
                format!(
                    "</{name}> closes <{}> opened at line {}",
                    open.section.name, open.section.loc.line
                ),
            );
        }
        finish_section(stack, open);
    }

    fn define(&mut self, name: &str) {
        if !self.defined.iter().any(|d| d == name) {
            self.defined.push(name.to_string());
        }
    }

    /// Whether a conditional section holds (`None`: not a conditional section).
    fn condition(&mut self, name: &str, args: &[String], loc: &Loc) -> Option<bool> {
        let lower = name.to_ascii_lowercase();
        if !matches!(lower.as_str(), "ifmodule" | "ifdefine" | "iffile") {
            return None;
        }
        let [arg] = args else {
            self.err(loc, format!("<{name}> takes one argument"));
            return Some(false);
        };
        let (negate, what) = match arg.strip_prefix('!') {
            Some(n) => (true, n),
            None => (false, arg.as_str()),
        };
        let holds = match lower.as_str() {
            "ifmodule" => {
                let short = module_short(what);
                (self.provided)(what)
                    && (self.loaded.is_empty()
                        || BUILT_IN_MODULES.contains(&short)
                        || self.loaded.iter().any(|m| m == short))
            }
            "ifdefine" => self.defined.iter().any(|d| d == what),
            _ => self.rooted(what).exists(),
        };
        Some(holds != negate)
    }

    /// `${NAME}` and `${NAME?=default}` as Apache's `ap_resolve_env`: Defines first, then
    /// the environment, then the default. An undefined name is an error here (Apache warns
    /// and keeps the text, which then fails somewhere less clear); names with ':' are left
    /// alone, as Apache does, for the modules that use `${map:key}` themselves.
    fn substitute(&mut self, line: &str, loc: &Loc) -> String {
        let mut out = String::with_capacity(line.len());
        let mut rest = line;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[i..]);
                return out;
            };
            let spec = &after[..end];
            let (name, default) = match spec.split_once("?=") {
                Some((n, d)) => (n, Some(d)),
                None => (spec, None),
            };
            let value = self
                .vars
                .get(name)
                .cloned()
                .or_else(|| std::env::var(name).ok())
                .or_else(|| default.map(str::to_string));
            match value {
                Some(v) => out.push_str(&v),
                None => {
                    if !name.contains(':') {
                        self.err(loc, format!("Config variable ${{{name}}} is not defined"));
                    }
                    out.push_str(&rest[i..i + 3 + end]);
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    fn include(&mut self, args: &[String], optional: bool, loc: &Loc, depth: usize) -> Vec<Node> {
        let [pattern] = args else {
            self.err(loc, "Include takes exactly one path");
            return Vec::new();
        };
        if depth >= MAX_INCLUDE_DEPTH {
            self.err(
                loc,
                format!("Include nested more than {MAX_INCLUDE_DEPTH} deep (a loop?)"),
            );
            return Vec::new();
        }
        let full = self.rooted(pattern);
        let full_s = full.display().to_string();
        let mut files: Vec<PathBuf> = if full.is_dir() {
            // Apache includes every file of a named directory (and of its subdirectories).
            walk_dir(&full)
        } else {
            match glob::glob(&full_s) {
                Ok(paths) => paths
                    .filter_map(Result::ok)
                    .flat_map(|p| if p.is_dir() { walk_dir(&p) } else { vec![p] })
                    .filter(|p| p.is_file())
                    .collect(),
                Err(e) => {
                    self.err(loc, format!("bad Include pattern: {e}"));
                    return Vec::new();
                }
            }
        };
        // Apache reads matches in sorted order so that `conf.d/*.conf` is deterministic.
        files.sort();
        if files.is_empty() {
            // Apache 2.4: IncludeOptional never fails on a missing file or an empty wildcard;
            // Include fails on both.
            if !optional {
                self.err(loc, format!("Include '{full_s}' matches no file"));
            }
            return Vec::new();
        }
        let mut out = Vec::new();
        for f in files {
            match std::fs::read_to_string(&f) {
                Ok(text) => {
                    out.extend(self.read_text(&text, Arc::from(f.display().to_string()), depth + 1))
                }
                Err(e) => self.err(
                    loc,
                    format!("cannot read included file {}: {e}", f.display()),
                ),
            }
        }
        out
    }
}

/// `p` as Apache's `ap_server_root_relative` makes it: absolute as written, else under
/// `root` (ServerRoot).
pub fn rooted(root: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        root.join(p)
    }
}

/// Modules compiled into Debian's and RHEL's httpd (`apache2 -l`): present without
/// `LoadModule`.
const BUILT_IN_MODULES: &[&str] = &[
    "core",
    "so",
    "http_core",
    "log_config",
    "logio",
    "unixd",
    "watchdog",
    "version",
];

/// A module's short name from any of its spellings: `mod_proxy.c`, `proxy_module`, `proxy`.
pub fn module_short(name: &str) -> &str {
    name.trim_end_matches(".c")
        .trim_start_matches("mod_")
        .trim_end_matches("_module")
}

/// Every file under a directory, at any depth.
fn walk_dir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_dir(&p));
        } else if p.is_file() {
            out.push(p);
        }
    }
    out
}

/// A closed section joins its parent: as a node, or (a conditional one that holds) by
/// handing its contents over; a skipped one leaves nothing.
fn finish_section(stack: &mut [Open], open: Open) {
    match open.condition {
        None if open.active => push_node(stack, Node::Section(open.section)),
        Some(true) if open.active => {
            for node in open.section.children {
                push_node(stack, node);
            }
        }
        _ => {}
    }
}

fn push_node(stack: &mut [Open], node: Node) {
    if let Some(top) = stack.last_mut() {
        top.section.children.push(node);
    }
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

    fn provided(name: &str) -> bool {
        name == "mod_proxy.c"
    }

    fn reader() -> Reader<'static> {
        Reader::new(PathBuf::from("."), vec!["CLI".into()], &provided)
    }

    fn parse(text: &str) -> (Vec<Node>, Vec<ConfigError>) {
        let mut r = reader();
        let nodes = r.read_text(text, Arc::from("t.conf"), 0);
        (nodes, r.errors)
    }

    fn names(nodes: &[Node]) -> Vec<String> {
        nodes
            .iter()
            .map(|n| match n {
                Node::Directive(d) => format!("{} {}", d.name, d.args.join(" ")),
                Node::Section(s) => format!("<{}>", s.name),
            })
            .collect()
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
        let mut r = Reader::new(dir.clone(), Vec::new(), &provided);
        let nodes = r.read_file(&dir.join("main.conf"));
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(names(&nodes), vec!["Timeout 5", "KeepAlive Off"]);
        let mut r = Reader::new(dir.clone(), Vec::new(), &provided);
        r.read_text("Include missing.conf\n", Arc::from("m.conf"), 0);
        assert_eq!(r.errors.len(), 1);
        assert!(r.errors[0].to_string().starts_with("m.conf:1: "));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn server_root_governs_includes_read_after_it() {
        let dir = std::env::temp_dir().join(format!("ringproxy-root-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        std::fs::create_dir_all(dir.join("etc/sub")).unwrap();
        std::fs::write(dir.join("conf.d/a.conf"), "Timeout 5\n").unwrap();
        // A relative Include in an included file is against ServerRoot, not that file.
        std::fs::write(dir.join("etc/sub/x.conf"), "Include conf.d/*.conf\n").unwrap();
        let text = format!(
            "ServerRoot {}\nInclude etc/sub\n<VirtualHost *:80>\nServerRoot /\n</VirtualHost>\nServerRoot /nonexistent-dir\n",
            dir.display()
        );
        let mut r = reader();
        let nodes = r.read_text(&text, Arc::from("t.conf"), 0);
        assert_eq!(names(&nodes), vec!["Timeout 5", "<VirtualHost>"]);
        let errs: Vec<_> = r.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            errs,
            vec![
                "t.conf:4: ServerRoot is only allowed at the top level",
                "t.conf:6: ServerRoot must be a valid directory ('/nonexistent-dir' is not)",
            ]
        );
        assert_eq!(r.server_root, dir);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn defines_and_variables_in_reading_order() {
        std::env::set_var("RINGPROXY_LEXER_TEST_ENV", "fromenv");
        let text = "\
Define PORT 8080
Listen ${PORT}
Define FAST
<IfDefine FAST>
  Define INNER yes
</IfDefine>
<IfDefine !FAST>
  Define NEVER
  <Nested>
  Unclosed \"quote
  </Nested>
</IfDefine>
<IfDefine NEVER>
  Bad ${UNDEFINED_HERE_IS_SKIPPED}
</IfDefine>
X ${INNER} ${RINGPROXY_LEXER_TEST_ENV} ${MISSING?=dflt} ${map:key}
UnDefine PORT
Y ${PORT}
<IfDefine CLI>
<IfModule mod_proxy.c>
Z in
</IfModule>
<IfModule !mod_proxy.c>
Z out
</IfModule>
</IfDefine>
<Location />
Define NOPE
</Location>
";
        let (nodes, errors) = parse(text);
        assert_eq!(
            names(&nodes),
            vec![
                "Listen 8080",
                "X yes fromenv dflt ${map:key}",
                "Y ${PORT}",
                "Z in",
                "<Location>"
            ]
        );
        let errs: Vec<_> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            errs,
            vec![
                "t.conf:18: Config variable ${PORT} is not defined",
                "t.conf:28: Define is only allowed at the top level or in <VirtualHost>",
            ]
        );
    }
}
