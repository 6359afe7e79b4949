//! Static files where no ProxyPass takes the path: `DocumentRoot` and mod_alias's
//! `Alias`/`AliasMatch`, governed by `<Directory>`/`<Files>` sections as Apache's core
//! governs them (Options Indexes and FollowSymLinks, Require, DirectoryIndex), typed by
//! `TypesConfig`/`AddType`.
//!
//! This module is the policy, without I/O on the request path beyond `lstat`: which file a
//! URL path names, and what the sections allow for it. [`serve`] sends it.
//!
//! Safety rules, in the order they apply:
//! - only the normalized path is mapped (no `..`, no NUL: see `routing::normalize`), and a
//!   mapped path holding a `..` component is refused again here;
//! - a symbolic link on the way is followed only where `Options FollowSymLinks` (or
//!   `SymLinksIfOwnerMatch` with matching owners) holds, as in Apache; Apache's default
//!   options include FollowSymLinks;
//! - a file some handler would run in Apache (`AddHandler` extensions, `SetHandler` in a
//!   section, `ScriptAlias`) is refused (403), never sent as its source;
//! - `<Files>` and `<Directory>` access rules apply to the file actually served (an index
//!   file too).

pub mod mime;
pub mod serve;

use std::path::{Component, Path, PathBuf};

use crate::config::Matcher;
use crate::routing::access::Access;

/// What one host serves from disk. Vhosts carry the main server's sections and aliases
/// after their own (see config's finish).
#[derive(Clone, Debug, Default)]
pub struct FileSpace {
    /// `DocumentRoot` (a vhost without one uses the main server's; none: nothing is served).
    pub document_root: Option<PathBuf>,
    /// `Alias`, `AliasMatch`, `ScriptAlias`, `ScriptAliasMatch`, in config order.
    pub aliases: Vec<Alias>,
    /// `<Directory>` and `<DirectoryMatch>`, in config order.
    pub sections: Vec<DirSection>,
    /// `<Files>` and `<FilesMatch>` outside any `<Directory>`.
    pub files: Vec<FilesSection>,
    /// `DirectoryIndex` at server level (`None`: Apache's default, `index.html`).
    pub index: Option<Vec<String>>,
    /// `DirectorySlash` at server level.
    pub slash: Option<bool>,
    /// `AddHandler` extensions (lower case, without the dot): files a handler would run.
    pub handled_exts: Vec<String>,
}

/// An alias: a URL-path prefix (whole segments) or a regex with `$N` in the target.
#[derive(Clone, Debug)]
pub struct Alias {
    pub matcher: Matcher,
    pub target: String,
    /// `ScriptAlias`: CGI programs, which ringproxy does not run; answered 403.
    pub script: bool,
}

/// `Options` flags.
pub mod opt {
    pub const INDEXES: u8 = 1;
    pub const FOLLOW: u8 = 2;
    pub const OWNER_MATCH: u8 = 4;
    /// ExecCGI, Includes, IncludesNOEXEC, MultiViews: accepted, with no effect here.
    pub const INERT: u8 = 8;
    /// Apache 2.4's default: `Options FollowSymLinks`.
    pub const DEFAULT: u8 = FOLLOW;
}

/// One `Options` line: absolute (`Options Indexes`) or relative (`Options +Indexes -X`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OptionsLine {
    pub absolute: bool,
    pub add: u8,
    pub remove: u8,
}

impl OptionsLine {
    /// Parses `Options` arguments as Apache 2.4 does (mixing relative and absolute
    /// forms is an error there too).
    pub fn parse(args: &[String]) -> Result<OptionsLine, String> {
        let mut line = OptionsLine::default();
        let (mut rel, mut abs) = (false, false);
        for a in args {
            let (sign, word) = match a.as_bytes().first() {
                Some(b'+') => (Some(true), &a[1..]),
                Some(b'-') => (Some(false), &a[1..]),
                _ => (None, a.as_str()),
            };
            let flag = match word.to_ascii_lowercase().as_str() {
                "indexes" => opt::INDEXES,
                "followsymlinks" => opt::FOLLOW,
                "symlinksifownermatch" => opt::OWNER_MATCH,
                "execcgi" | "includes" | "includesnoexec" | "multiviews" => opt::INERT,
                "all" if sign.is_none() => opt::INDEXES | opt::FOLLOW | opt::OWNER_MATCH,
                "none" if sign.is_none() => 0,
                _ => return Err(format!("Options: unknown option '{a}'")),
            };
            match sign {
                Some(true) => (rel, line.add) = (true, line.add | flag),
                Some(false) => (rel, line.remove) = (true, line.remove | flag),
                None => (abs, line.add) = (true, line.add | flag),
            }
        }
        if rel && abs {
            return Err(
                "Options: either all options start with + or -, or none does (Apache 2.4)".into(),
            );
        }
        line.absolute = abs || args.is_empty();
        Ok(line)
    }

    pub fn apply(self, flags: u8) -> u8 {
        if self.absolute {
            self.add
        } else {
            (flags | self.add) & !self.remove
        }
    }
}

/// How a `<Directory>` section names directories.
#[derive(Clone, Debug)]
pub enum DirMatch {
    /// A path; shell wildcards allowed per component (`/var/www/*/html`).
    Path(PathBuf, Option<glob::Pattern>),
    /// `<DirectoryMatch re>` or `<Directory ~ re>`: anywhere in the directory's path.
    Regex(regex::bytes::Regex),
}

#[derive(Clone, Debug)]
pub struct DirSection {
    pub dir: DirMatch,
    pub options: Option<OptionsLine>,
    pub access: Option<Access>,
    pub index: Option<Vec<String>>,
    pub slash: Option<bool>,
    /// `SetHandler` here: files under it are run by a handler in Apache; refused here.
    pub handler: bool,
    /// `<Files>` nested in this section.
    pub files: Vec<FilesSection>,
}

impl DirSection {
    pub fn new(dir: DirMatch) -> DirSection {
        DirSection {
            dir,
            options: None,
            access: None,
            index: None,
            slash: None,
            handler: false,
            files: Vec::new(),
        }
    }

    /// Path components, for Apache's order: shorter sections apply first.
    fn depth(&self) -> usize {
        match &self.dir {
            DirMatch::Path(p, _) => p.components().count(),
            DirMatch::Regex(_) => usize::MAX,
        }
    }

    fn covers(&self, dir: &Path) -> bool {
        match &self.dir {
            DirMatch::Path(p, None) => dir.starts_with(p),
            DirMatch::Path(p, Some(glob)) => {
                let n = p.components().count();
                let head: PathBuf = dir.components().take(n).collect();
                dir.components().count() >= n && glob.matches_path(&head)
            }
            DirMatch::Regex(re) => re.is_match(dir.as_os_str().as_encoded_bytes()),
        }
    }
}

/// `<Files name>` (shell wildcards), `<Files ~ re>` or `<FilesMatch re>`: against the
/// file's base name.
#[derive(Clone, Debug)]
pub struct FilesSection {
    pub name: NameMatch,
    pub access: Option<Access>,
    pub handler: bool,
}

#[derive(Clone, Debug)]
pub enum NameMatch {
    Glob(glob::Pattern),
    Regex(regex::bytes::Regex),
}

impl FilesSection {
    fn covers(&self, base: &[u8]) -> bool {
        match &self.name {
            NameMatch::Glob(g) => std::str::from_utf8(base).is_ok_and(|s| g.matches(s)),
            NameMatch::Regex(re) => re.is_match(base),
        }
    }
}

/// What the sections say about one path.
#[derive(Debug, PartialEq, Eq)]
pub struct Rules<'a> {
    pub options: u8,
    pub access: Option<&'a Access>,
    pub index: Option<&'a [String]>,
    pub slash: bool,
    pub handler: bool,
}

/// A URL path mapped onto the file system.
#[derive(Debug, PartialEq, Eq)]
pub struct Mapped {
    /// The whole path.
    pub path: PathBuf,
    /// Where the mapping started (DocumentRoot or the alias target): symbolic links are
    /// checked from here on.
    pub root: PathBuf,
    pub script: bool,
}

impl FileSpace {
    pub fn is_empty(&self) -> bool {
        self.document_root.is_none() && self.aliases.is_empty()
    }

    /// The file a normalized URL path names: the first alias that takes it, else the
    /// DocumentRoot (Apache: mod_alias translates before the core). `None` when nothing
    /// maps it, or the result would not stay below where it started.
    pub fn map(&self, npath: &[u8]) -> Option<Mapped> {
        if npath.contains(&0) || !npath.starts_with(b"/") {
            return None;
        }
        for a in &self.aliases {
            let (root, rest): (PathBuf, &[u8]) = match &a.matcher {
                Matcher::Prefix(prefix) => {
                    let Some(n) = crate::routing::normalize::prefix_match(npath, prefix.as_bytes())
                    else {
                        continue;
                    };
                    (PathBuf::from(&a.target), &npath[n..])
                }
                Matcher::Regex(re) => {
                    let Some(caps) = re.captures(npath) else {
                        continue;
                    };
                    let mut out = Vec::new();
                    crate::routing::expand_dollars(&a.target, &mut out, |n, out| {
                        if let Some(m) = caps.get(n) {
                            out.extend_from_slice(m.as_bytes());
                        }
                    });
                    // Symbolic links are checked from the last directory the target
                    // names before its first `$`: what comes from the request.
                    let fixed = a.target.split('$').next().unwrap_or_default();
                    let root = PathBuf::from(&fixed[..fixed.rfind('/').map_or(0, |i| i + 1)]);
                    let path = PathBuf::from(os(&out));
                    let rest = path
                        .strip_prefix(&root)
                        .ok()?
                        .as_os_str()
                        .as_encoded_bytes()
                        .to_vec();
                    return joined(root, &rest, a.script);
                }
            };
            return joined(root, rest, a.script);
        }
        let root = self.document_root.clone()?;
        joined(root, npath, false)
    }

    /// Puts the sections in the order Apache applies them: `<Directory>` by depth (a stable
    /// sort keeps config order among equals, the main server's first), `<DirectoryMatch>`
    /// after. Done once when the configuration is built.
    pub fn sort_sections(&mut self) {
        self.sections.sort_by_key(DirSection::depth);
    }

    /// The sections that apply to `path` (a file, or a directory when `is_dir`), merged as
    /// Apache merges them: `<Directory>` by depth (shorter first, config order among
    /// equals), then `<DirectoryMatch>` in config order, then `<Files>` on the base name.
    /// The last section with access rules decides access (AuthMerging Off).
    pub fn rules(&self, path: &Path, is_dir: bool) -> Rules<'_> {
        let dir = if is_dir {
            path
        } else {
            path.parent().unwrap_or(path)
        };
        // In Apache's order already (see `sort_sections`): no sorting per request.
        let applying = || self.sections.iter().filter(|s| s.covers(dir));
        let mut rules = Rules {
            options: opt::DEFAULT,
            access: None,
            index: self.index.as_deref(),
            slash: self.slash.unwrap_or(true),
            handler: false,
        };
        for s in applying() {
            if let Some(o) = s.options {
                rules.options = o.apply(rules.options);
            }
            rules.access = s.access.as_ref().or(rules.access);
            rules.index = s.index.as_deref().or(rules.index);
            rules.slash = s.slash.unwrap_or(rules.slash);
            rules.handler |= s.handler;
        }
        if !is_dir {
            let base = path
                .file_name()
                .map(|n| n.as_encoded_bytes())
                .unwrap_or_default();
            let nested = applying().flat_map(|s| s.files.iter());
            for f in nested.chain(&self.files).filter(|f| f.covers(base)) {
                rules.access = f.access.as_ref().or(rules.access);
                rules.handler |= f.handler;
            }
            let ext = Path::new(os(base)).extension().and_then(|e| e.to_str());
            if ext.is_some_and(|e| self.handled_exts.iter().any(|h| h.eq_ignore_ascii_case(e))) {
                rules.handler = true;
            }
        }
        rules
    }
}

/// `root` + the rest of the URL path, refusing anything that could climb out of `root`.
fn joined(root: PathBuf, rest: &[u8], script: bool) -> Option<Mapped> {
    let rel = Path::new(os(rest));
    if rel.components().any(|c| matches!(c, Component::ParentDir)) {
        return None;
    }
    let mut path = root.clone();
    for c in rel.components() {
        if let Component::Normal(part) = c {
            path.push(part);
        }
    }
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return None;
    }
    Some(Mapped { path, root, script })
}

/// Unix paths are bytes: any byte string names a path.
fn os(b: &[u8]) -> &std::ffi::OsStr {
    std::os::unix::ffi::OsStrExt::from_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn options_lines() {
        use opt::*;
        let cases: &[(&str, u8, u8)] = &[
            // (line, result over the default FollowSymLinks, result over Indexes)
            ("Indexes", INDEXES, INDEXES),
            ("None", 0, 0),
            (
                "All",
                INDEXES | FOLLOW | OWNER_MATCH,
                INDEXES | FOLLOW | OWNER_MATCH,
            ),
            ("+Indexes", FOLLOW | INDEXES, INDEXES),
            (
                "-FollowSymLinks +SymLinksIfOwnerMatch",
                OWNER_MATCH,
                INDEXES | OWNER_MATCH,
            ),
            ("+ExecCGI -MultiViews", FOLLOW | INERT, INDEXES | INERT),
            ("Indexes followsymlinks", INDEXES | FOLLOW, INDEXES | FOLLOW),
        ];
        for (line, over_default, over_indexes) in cases {
            let o = OptionsLine::parse(&args(line)).unwrap();
            assert_eq!(o.apply(DEFAULT) & !INERT, over_default & !INERT, "{line}");
            assert_eq!(o.apply(INDEXES) & !INERT, over_indexes & !INERT, "{line}");
        }
        assert!(OptionsLine::parse(&args("+Indexes FollowSymLinks")).is_err());
        assert!(OptionsLine::parse(&args("Bogus")).is_err());
        assert!(OptionsLine::parse(&args("+All")).is_err());
    }

    fn space() -> FileSpace {
        FileSpace {
            document_root: Some(PathBuf::from("/srv/www")),
            aliases: vec![
                Alias {
                    matcher: Matcher::Prefix("/static".into()),
                    target: "/srv/static".into(),
                    script: false,
                },
                Alias {
                    matcher: Matcher::Regex(
                        regex::bytes::Regex::new("^/u/([a-z]+)/(.*)$").unwrap(),
                    ),
                    target: "/home/$1/public/$2".into(),
                    script: false,
                },
                Alias {
                    matcher: Matcher::Prefix("/cgi-bin/".into()),
                    target: "/srv/cgi".into(),
                    script: true,
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn url_paths_map_to_files_and_never_climb_out() {
        let s = space();
        // (URL path, mapped to (path, root, script)).
        type Case = (&'static [u8], Option<(&'static str, &'static str, bool)>);
        let cases: &[Case] = &[
            (b"/", Some(("/srv/www", "/srv/www", false))),
            (b"/a/b.html", Some(("/srv/www/a/b.html", "/srv/www", false))),
            (
                b"/static/x.css",
                Some(("/srv/static/x.css", "/srv/static", false)),
            ),
            (b"/static", Some(("/srv/static", "/srv/static", false))),
            (b"/staticx", Some(("/srv/www/staticx", "/srv/www", false))),
            (
                b"/u/ann/i.png",
                Some(("/home/ann/public/i.png", "/home/", false)),
            ),
            (b"/cgi-bin/run", Some(("/srv/cgi/run", "/srv/cgi", true))),
            (b"/a/../../etc/passwd", None),
            (b"/u/ann/../../../etc/passwd", None),
            (b"/a\0b", None),
            (b"relative", None),
        ];
        for (path, want) in cases {
            let got = s.map(path);
            let want = want.map(|(p, root, script)| Mapped {
                path: PathBuf::from(p),
                root: PathBuf::from(root),
                script,
            });
            assert_eq!(got, want, "{}", String::from_utf8_lossy(path));
        }
        assert_eq!(FileSpace::default().map(b"/x"), None);
    }

    #[test]
    fn sections_merge_as_apache_merges_them() {
        use crate::routing::access::Access;
        let deny = || {
            let mut a = Access::default();
            a.apply("Require", &args("all denied")).unwrap();
            a
        };
        let grant = || {
            let mut a = Access::default();
            a.apply("Require", &args("all granted")).unwrap();
            a
        };
        let dir = |p: &str| DirMatch::Path(PathBuf::from(p), None);
        let mut s = FileSpace {
            handled_exts: vec!["php".into()],
            ..Default::default()
        };
        // Written deepest first: the order applied is by depth all the same.
        let mut www = DirSection::new(dir("/srv/www"));
        www.access = Some(grant());
        www.options = Some(OptionsLine::parse(&args("+Indexes")).unwrap());
        www.files.push(FilesSection {
            name: NameMatch::Glob(glob::Pattern::new("*.bak").unwrap()),
            access: Some(deny()),
            handler: false,
        });
        let mut root = DirSection::new(dir("/"));
        root.access = Some(deny());
        root.options = Some(OptionsLine::parse(&args("None")).unwrap());
        let mut re = DirSection::new(DirMatch::Regex(
            regex::bytes::Regex::new("/private$").unwrap(),
        ));
        re.access = Some(deny());
        let mut glob = DirSection::new(DirMatch::Path(
            PathBuf::from("/srv/*/cgi"),
            Some(glob::Pattern::new("/srv/*/cgi").unwrap()),
        ));
        glob.handler = true;
        s.sections = vec![re, www, root, glob];
        s.sort_sections();

        let r = s.rules(Path::new("/srv/www/a.html"), false);
        assert_eq!(
            (r.access, r.options, r.handler),
            (Some(&grant()), opt::INDEXES, false)
        );
        assert_eq!(
            s.rules(Path::new("/etc/passwd"), false).access,
            Some(&deny())
        );
        assert_eq!(
            s.rules(Path::new("/srv/www/old.bak"), false).access,
            Some(&deny())
        );
        assert_eq!(
            s.rules(Path::new("/srv/www/private"), true).access,
            Some(&deny())
        );
        assert_eq!(
            s.rules(Path::new("/srv/www/private/x"), false).access,
            Some(&deny())
        );
        assert!(s.rules(Path::new("/srv/www/i.PHP"), false).handler);
        assert!(s.rules(Path::new("/srv/app/cgi/run"), false).handler);
        assert!(!s.rules(Path::new("/srv/app/x"), false).handler);
        assert_eq!(s.rules(Path::new("/srv/www"), true).options, opt::INDEXES);
    }
}
