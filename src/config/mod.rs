//! Apache-syntax configuration -> a typed, validated [`Config`].
//!
//! `lexer` turns text into a tree; this module gives the tree meaning. Errors are collected
//! (not returned at the first one) so that `ringproxy -t` lists every problem, each as
//! `FILE:LINE: message`.

mod directives;
mod dump;
pub mod envvars;
mod finish;
pub mod identity;
pub mod lexer;
mod model;
pub mod params;
mod tls;
pub mod url;

pub use model::*;

pub use tls::member_tls;
use url::*;
pub use url::{member_from_url, member_from_url_resolved, member_host_port};

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use lexer::{ConfigError, Loc};
use lexer::{Directive, Node, Section};
pub use params::{BalancerParams, HashKey, LbMethod, MemberParams};

/// Modules whose function ringproxy provides; `LoadModule` for them is accepted quietly
/// and `<IfModule>` on them is true.
const PROVIDED_MODULES: &[&str] = &[
    "proxy",
    "proxy_http",
    "proxy_balancer",
    "slotmem_shm",
    "lbmethod_byrequests",
    "lbmethod_bytraffic",
    "lbmethod_bybusyness",
    "lbmethod_heartbeat",
    "mpm_event",
    "proxy_hcheck",
    "watchdog",
    "headers",
    "log_config",
    "authz_core",
    "authz_host",
    "unixd",
    "status",
    "access_compat",
    "ssl",
    "socache_shmcb",
    "rewrite",
    "proxy_wstunnel",
    "proxy_ajp",
    "reqtimeout",
    "alias",
    "mime",
    "dir",
    "autoindex",
    "logio",
    "remoteip",
];

/// Directives accepted for compatibility that have nothing to act on in ringproxy; each
/// produces a warning with its reason (README: directive table).
const IGNORED_DIRECTIVES: &[(&str, &str)] = &[
    (
        "serveradmin",
        "ringproxy serves no error pages that show it",
    ),
    (
        "servertokens",
        "ringproxy sends no Server header of its own",
    ),
    ("serversignature", "ringproxy serves no signature pages"),
    (
        "hostnamelookups",
        "ringproxy looks client names up only for Require host and host names in Allow/Deny, never for logs",
    ),
    (
        "usecanonicalname",
        "ringproxy always acts as UseCanonicalName Off: the client's Host for reverse mapping and redirects",
    ),
    (
        "adddefaultcharset",
        "ringproxy does not alter response content types",
    ),
    (
        "defaultruntimedir",
        "ringproxy keeps no runtime files but PidFile",
    ),
    ("mutex", "ringproxy shares no locks between workers"),
];

/// MPM directives with no direct meaning for one pinned thread per core (spec table).
const MPM_NO_MEANING: &[&str] = &[
    "startservers",
    "serverlimit",
    "threadsperchild",
    "threadlimit",
    "minsparethreads",
    "maxsparethreads",
    "maxconnectionsperchild",
    "maxrequestsperchild",
    "minspareservers",
    "maxspareservers",
];

/// Every directive name the builder knows, for "did you mean".
/// Names read outside the directive table (access lines and `<Location>` handlers, MPM
/// tunables that are noted and ignored, sections), for "did you mean" hints.
const OTHER_DIRECTIVES: &[&str] = &[
    "Require",
    "Order",
    "Allow",
    "Deny",
    "Satisfy",
    "SetHandler",
    "StartServers",
    "ServerLimit",
    "ThreadsPerChild",
    "ThreadLimit",
    "MinSpareThreads",
    "MaxSpareThreads",
    "MaxConnectionsPerChild",
    "AsyncRequestWorkerFactor",
    "ServerAdmin",
    "DocumentRoot",
    "VirtualHost",
    "Proxy",
    "IfModule",
    "IfDefine",
    "Location",
    "SSLCertificateFile",
    "SSLCertificateKeyFile",
];

/// A name lookup for member hosts.
pub type Resolve = fn(&str, u16) -> Option<SocketAddr>;

/// A [`Resolve`] that knows only literal addresses: names do not resolve, and nothing is
/// asked of the system's resolver (for fuzzing, where any input must stay on the machine).
pub fn literal_addresses_only(host: &str, port: u16) -> Option<SocketAddr> {
    host.parse().ok().map(|ip| SocketAddr::new(ip, port))
}

/// Options for loading: `-D` defines for `<IfDefine>`.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    pub defines: Vec<String>,
    /// How member host names are looked up; `None`: the system's resolver. (The fuzz
    /// targets give one that knows only literal addresses, so that no input sends a
    /// query anywhere.)
    pub resolve: Option<Resolve>,
}

/// Loads and validates a config file. On failure returns every error found.
///
/// The default ServerRoot is the file's directory. For Debian's `apache2.conf` with an
/// `envvars` beside it, the variables `apache2ctl` would export are read first (see
/// [`envvars`]), so `${APACHE_LOG_DIR}` and the rest resolve as they do under apache2ctl.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Config, Vec<ConfigError>> {
    let cwd = std::env::current_dir().unwrap_or_default();
    let dir = cwd.join(path.parent().unwrap_or(Path::new("")));
    let mut reader = lexer::Reader::new(dir, opts.defines.clone(), &module_provided);
    let main_file: Arc<str> = Arc::from(path.display().to_string());
    match envvars::debian(path) {
        Some(Ok(vars)) => reader.vars = vars,
        Some(Err(m)) => reader.errors.push(ConfigError::new(
            &Loc {
                file: main_file.clone(),
                line: 0,
            },
            m,
        )),
        None => {}
    }
    let nodes = reader.read_file(path);
    build(&nodes, opts, reader.errors, main_file, reader.server_root)
}

/// Loads configuration from text (used by the demo and by tests). `name` is used in errors.
pub fn load_str(text: &str, name: &str, opts: &LoadOptions) -> Result<Config, Vec<ConfigError>> {
    let base = std::env::current_dir().unwrap_or_default();
    let mut reader = lexer::Reader::new(base, opts.defines.clone(), &module_provided);
    let nodes = reader.read_text(text, Arc::from(name), 0);
    build(
        &nodes,
        opts,
        reader.errors,
        Arc::from(name),
        reader.server_root,
    )
}

/// A rule whose balancer reference is resolved after every `<Proxy>` block has been read.
struct PendingRule {
    vhost: usize,
    matcher: Matcher,
    target: Option<(String, String)>, // (balancer or worker name, template)
    params: Vec<(String, String)>,
    noquery: bool,
    nocanon: bool,
    loc: Loc,
}

struct PendingRewrite {
    vhost: usize,
    rule: RewriteRule,
    /// For `[P]`: (balancer or worker name, template), resolved at the end.
    proxy: Option<(String, String)>,
}

struct PendingReverse {
    vhost: usize,
    path: String,
    url: String,
    loc: Loc,
}

/// Settings a virtual host inherits from the main server unless it sets them itself.
#[derive(Clone, Copy, Debug, Default)]
struct VhostSet {
    preserve_host: bool,
    merge_slashes: bool,
    encoded_slashes: bool,
    servlet_dot_segments: bool,
    trace: bool,
}

struct Builder<'a> {
    opts: &'a LoadOptions,
    /// The file loaded (errors about the whole configuration name it, at line 0).
    main_file: Arc<str>,
    /// The final `ServerRoot`: relative paths in directives resolve against it.
    server_root: PathBuf,
    errors: Vec<ConfigError>,
    warnings: Vec<String>,
    listens: Vec<SocketAddr>,
    vhosts: Vec<VirtualHost>,
    balancers: Vec<Balancer>,
    core: CoreSettings,
    rules: Vec<PendingRule>,
    reverses: Vec<PendingReverse>,
    rewrites: Vec<PendingRewrite>,
    /// `RewriteCond`s waiting for the `RewriteRule` they guard.
    pending_conds: Vec<RewriteCond>,
    /// Which inheritable settings each vhost set itself (the rest come from the main server).
    vhost_set: Vec<VhostSet>,
    hc_exprs: HashMap<String, crate::health::expr::Expr>,
    /// `ProxyHCTemplate` name -> its key=value parameters.
    hc_templates: HashMap<String, Vec<(String, String)>>,
    /// `LogFormat` nicknames.
    log_formats: HashMap<String, String>,
    access_logs: Vec<crate::observe::accesslog::LogTarget>,
    /// mod_ssl's settings per server, indexed like `vhosts`.
    tls: Vec<tls::TlsSet>,
    https_listens: tls::HttpsListens,
    /// `SSLSessionCache`: entries of the process-wide session cache (0: none).
    tls_cache_entries: usize,
    /// The `SSLProxy*` settings of `<Proxy balancer://…>` sections, by balancer.
    balancer_tls: HashMap<usize, tls::ProxyTlsSet>,
    /// The server (0: main) where each balancer was first defined: its `SSLProxy*`
    /// settings are the ones its members get.
    defined_in: HashMap<usize, usize>,
    /// `TypesConfig`, and the `AddType`/`RemoveType` lines applied over it in order.
    types_config: Option<(PathBuf, Loc)>,
    type_edits: Vec<(bool, Vec<String>)>,
    /// Directives accepted with a reason that has been given once already.
    noted: std::collections::HashSet<String>,
    /// `LoadModule` lines for modules ringproxy has no equivalent of.
    unprovided: Vec<(String, Loc)>,
    /// `ServerLimit` and `ThreadsPerChild`, and whether `MaxRequestWorkers` was written.
    mpm_limits: (Option<usize>, Option<usize>),
    max_request_workers_set: bool,
    /// Where `User` and `Group` were written (for errors about them).
    identity_locs: Vec<Loc>,
    /// Files the process writes (logs, PidFile): their directories are checked at the end.
    path_checks: Vec<(&'static str, PathBuf, Loc)>,
}

fn build(
    nodes: &[Node],
    opts: &LoadOptions,
    errors: Vec<ConfigError>,
    main_file: Arc<str>,
    server_root: PathBuf,
) -> Result<Config, Vec<ConfigError>> {
    let mut b = Builder {
        main_file,
        server_root,
        opts,
        errors,
        warnings: Vec::new(),
        listens: Vec::new(),
        vhosts: vec![VirtualHost::default()],
        balancers: Vec::new(),
        core: CoreSettings::default(),
        rules: Vec::new(),
        rewrites: Vec::new(),
        pending_conds: Vec::new(),
        reverses: Vec::new(),
        vhost_set: vec![VhostSet::default()],
        hc_exprs: HashMap::new(),
        hc_templates: HashMap::new(),
        log_formats: HashMap::from([
            (
                "common".to_string(),
                crate::observe::accesslog::COMMON.to_string(),
            ),
            (
                "combined".to_string(),
                crate::observe::accesslog::COMBINED.to_string(),
            ),
        ]),
        access_logs: Vec::new(),
        tls: vec![tls::TlsSet::default()],
        https_listens: Vec::new(),
        tls_cache_entries: crate::transport::tls::host::Settings::default().cache_entries,
        balancer_tls: HashMap::new(),
        defined_in: HashMap::new(),
        types_config: None,
        type_edits: Vec::new(),
        noted: Default::default(),
        unprovided: Vec::new(),
        mpm_limits: (None, None),
        max_request_workers_set: false,
        identity_locs: Vec::new(),
        path_checks: Vec::new(),
    };
    b.walk(nodes, Ctx::Server(0));
    b.finish()
}

#[derive(Clone, Copy)]
enum Ctx {
    /// Main server (0) or a virtual host.
    Server(usize),
    /// Inside `<Proxy balancer://…>`: balancer index.
    Balancer(usize, usize),
    /// Inside `<Proxy *>` or `<Proxy http://…>`: only access directives; the index of its
    /// entry in the host's `proxy_access`.
    ProxyOther(usize, usize),
    /// Inside `<Location PATH>`; the path travels as an argument of `directive`.
    Location(usize),
}

/// A `<Directory>` (vhost, section) or `<Files>` (vhost, enclosing directory, section).
#[derive(Clone, Copy)]
enum FileScope {
    Dir(usize, usize),
    Files(usize, Option<usize>, usize),
}

impl FileScope {
    fn vhost(self) -> usize {
        match self {
            FileScope::Dir(v, _) | FileScope::Files(v, ..) => v,
        }
    }
}

impl Ctx {
    fn vhost(self) -> usize {
        match self {
            Ctx::Server(v) | Ctx::Balancer(v, _) | Ctx::ProxyOther(v, _) | Ctx::Location(v) => v,
        }
    }
}

fn needs_names(v: &VirtualHost) -> bool {
    v.locations
        .iter()
        .filter_map(|l| l.access.as_ref())
        .chain(v.proxy_access.iter().map(|p| &p.access))
        .any(crate::routing::access::Access::needs_name)
}

fn is_require_block(name: &str) -> bool {
    ["requireall", "requireany", "requirenone"]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n))
}

/// A regex matched against request paths: over bytes, with PCRE's (Apache's) meaning of
/// `.` and classes (any byte, ASCII classes), so a path that is not UTF-8 matches as it
/// would in Apache. Patterns that need Unicode classes (`\p{L}`) get them.
pub fn path_regex(pattern: &str) -> Result<regex::bytes::Regex, regex::Error> {
    regex::bytes::RegexBuilder::new(pattern)
        .unicode(false)
        .build()
        .or_else(|_| regex::bytes::Regex::new(pattern))
}

fn did_you_mean(word: &str, candidates: &[&str]) -> String {
    let lower = word.to_ascii_lowercase();
    let best = candidates
        .iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(&lower, &c.to_ascii_lowercase()),
                c,
            )
        })
        // The word itself is never the suggestion: the caller says why it is not valid.
        .filter(|(d, _)| *d > 0)
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, c)) if d <= 2 || (d <= 3 && word.len() > 8) => format!(" (did you mean '{c}'?)"),
        _ => String::new(),
    }
}

impl Builder<'_> {
    fn err(&mut self, loc: &Loc, msg: impl Into<String>) {
        self.errors.push(ConfigError::new(loc, msg));
    }

    /// A path from a directive, relative ones against ServerRoot (Apache's
    /// `ap_server_root_relative`).
    fn rooted(&self, arg: &str) -> PathBuf {
        lexer::rooted(&self.server_root, arg)
    }

    fn warn(&mut self, loc: &Loc, msg: impl AsRef<str>) {
        self.warnings.push(format!("{loc}: {}", msg.as_ref()));
    }

    /// A directive accepted with a reason: the reason is given at its first use only, so a
    /// stock tree's hundred `AddLanguage` lines make one line of warning.
    fn note_once(&mut self, loc: &Loc, name: &str, msg: &str) {
        if self.noted.insert(name.to_ascii_lowercase()) {
            self.warn(
                loc,
                format!("{name} {msg} (further {name} lines are not reported)"),
            );
        }
    }

    fn walk(&mut self, nodes: &[Node], ctx: Ctx) {
        for node in nodes {
            match node {
                Node::Directive(d) => self.directive(d, ctx, None),
                Node::Section(s) => self.section(s, ctx),
            }
        }
    }

    fn section(&mut self, s: &Section, ctx: Ctx) {
        match s.name.to_ascii_lowercase().as_str() {
            "directory" | "directorymatch" => {
                let Ctx::Server(vh) = ctx else {
                    return self.err(&s.loc, format!("<{}> is not allowed here", s.name));
                };
                match directives::dir_match(self, s) {
                    Ok(m) => {
                        let list = &mut self.vhosts[vh].files.sections;
                        list.push(crate::files::DirSection::new(m));
                        let i = list.len() - 1;
                        self.file_scope(s, FileScope::Dir(vh, i));
                    }
                    Err(m) => self.err(&s.loc, m),
                }
            }
            "files" | "filesmatch" => {
                let Ctx::Server(vh) = ctx else {
                    return self.err(&s.loc, format!("<{}> is not allowed here", s.name));
                };
                self.files_section(s, vh, None);
            }
            "virtualhost" => {
                if !matches!(ctx, Ctx::Server(0)) {
                    return self.err(&s.loc, "<VirtualHost> is only allowed at the top level");
                }
                let mut addrs = Vec::new();
                for a in &s.args {
                    match parse_vhost_addr(a) {
                        Ok(v) => addrs.push(v),
                        Err(m) => self.err(&s.loc, m),
                    }
                }
                if addrs.is_empty() {
                    self.err(&s.loc, "<VirtualHost> needs at least one address");
                }
                self.vhosts.push(VirtualHost {
                    addrs,
                    loc: Some(s.loc.clone()),
                    inherit_rules: true,
                    ..Default::default()
                });
                self.vhost_set.push(VhostSet::default());
                self.tls.push(tls::TlsSet::default());
                let idx = self.vhosts.len() - 1;
                self.walk(&s.children, Ctx::Server(idx));
            }
            "proxy" | "proxymatch" => {
                let Some(url) = s.args.first() else {
                    return self.err(&s.loc, "<Proxy> needs a URL");
                };
                let vh = ctx.vhost();
                if is_balancer_url(url) {
                    let Some(name) = balancer_name(url) else {
                        return self.err(&s.loc, format!("bad balancer URL '{url}'"));
                    };
                    let idx = self.balancer_index(&name, &s.loc);
                    self.defined_in.entry(idx).or_insert(vh);
                    self.walk(&s.children, Ctx::Balancer(vh, idx));
                } else {
                    let pi = self.proxy_access_index(vh, url);
                    self.walk(&s.children, Ctx::ProxyOther(vh, pi));
                }
            }
            "location" | "locationmatch" => {
                // A regex section (`<LocationMatch re>` or `<Location ~ re>`) is kept as
                // `~re`: Location paths start with `/`, so the marker is unambiguous.
                let is_match = s.name.eq_ignore_ascii_case("locationmatch");
                let owned;
                let path = match (is_match, s.args.as_slice()) {
                    (true, [re]) | (false, [_, re]) if is_match || s.args[0] == "~" => {
                        if let Err(e) = path_regex(re) {
                            return self.err(&s.loc, format!("<{} {re}>: bad regex: {e}", s.name));
                        }
                        owned = format!("~{re}");
                        &owned
                    }
                    (false, [p]) => p,
                    _ => {
                        return self.err(
                            &s.loc,
                            format!("<{}> takes one path (or ~ and a regex)", s.name),
                        )
                    }
                };
                let vh = ctx.vhost();
                for child in &s.children {
                    match child {
                        Node::Directive(d) => self.directive(d, Ctx::Location(vh), Some(path)),
                        Node::Section(sec) if is_require_block(&sec.name) => {
                            if let Some(r) = self.require_block(sec) {
                                let rule = self.location_rule(vh, path);
                                rule.access
                                    .get_or_insert_with(Default::default)
                                    .require
                                    .push(r);
                            }
                        }
                        Node::Section(sec) => self.err(
                            &sec.loc,
                            format!("<{}> inside <Location> is not supported", sec.name),
                        ),
                    }
                }
            }
            _ if is_require_block(&s.name) => match ctx {
                Ctx::Balancer(..) | Ctx::ProxyOther(..) => {
                    if let Some(r) = self.require_block(s) {
                        if let Some(access) = self.proxy_access_of(ctx) {
                            access.require.push(r);
                        }
                    }
                }
                _ => self.err(
                    &s.loc,
                    format!("<{}> is only allowed in <Location> and <Proxy>", s.name),
                ),
            },
            other => {
                let known = [
                    "VirtualHost",
                    "Directory",
                    "DirectoryMatch",
                    "Files",
                    "FilesMatch",
                    "Proxy",
                    "IfModule",
                    "IfDefine",
                    "Location",
                    "RequireAll",
                    "RequireAny",
                    "RequireNone",
                ];
                let hint = did_you_mean(other, &known);
                self.err(&s.loc, format!("unknown section <{}>{hint}", s.name));
            }
        }
    }

    /// `<Files>`/`<FilesMatch>` at server level (`dir: None`) or inside a `<Directory>`.
    fn files_section(&mut self, s: &Section, vh: usize, dir: Option<usize>) {
        let name = match directives::name_match(s) {
            Ok(n) => n,
            Err(m) => return self.err(&s.loc, m),
        };
        let section = crate::files::FilesSection {
            name,
            access: None,
            handler: false,
        };
        let space = &mut self.vhosts[vh].files;
        let list = match dir {
            Some(d) => &mut space.sections[d].files,
            None => &mut space.files,
        };
        list.push(section);
        let i = list.len() - 1;
        self.file_scope(s, FileScope::Files(vh, dir, i));
    }

    /// The contents of a `<Directory>` or `<Files>` section: what governs the files served
    /// under it. Directives that act elsewhere are refused here, never silently dropped.
    fn file_scope(&mut self, s: &Section, scope: FileScope) {
        for child in &s.children {
            match child {
                Node::Directive(d) => self.file_directive(d, scope),
                Node::Section(sec) if is_require_block(&sec.name) => {
                    if let Some(r) = self.require_block(sec) {
                        self.scope_access(scope)
                            .get_or_insert_with(Default::default)
                            .require
                            .push(r);
                    }
                }
                Node::Section(sec)
                    if matches!(scope, FileScope::Dir(..))
                        && ["files", "filesmatch"]
                            .contains(&sec.name.to_ascii_lowercase().as_str()) =>
                {
                    if let FileScope::Dir(vh, d) = scope {
                        self.files_section(sec, vh, Some(d));
                    }
                }
                Node::Section(sec) => self.err(
                    &sec.loc,
                    format!("<{}> inside <{}> is not supported", sec.name, s.name),
                ),
            }
        }
    }

    fn scope_access(&mut self, scope: FileScope) -> &mut Option<crate::routing::access::Access> {
        match scope {
            FileScope::Dir(vh, d) => &mut self.vhosts[vh].files.sections[d].access,
            FileScope::Files(vh, None, f) => &mut self.vhosts[vh].files.files[f].access,
            FileScope::Files(vh, Some(d), f) => {
                &mut self.vhosts[vh].files.sections[d].files[f].access
            }
        }
    }

    fn file_directive(&mut self, d: &Directive, scope: FileScope) {
        let name = d.name.to_ascii_lowercase();
        let dir = match scope {
            FileScope::Dir(vh, i) => Some((vh, i)),
            FileScope::Files(..) => None,
        };
        match (name.as_str(), dir) {
            ("require" | "order" | "allow" | "deny" | "satisfy", _) => {
                let access = self
                    .scope_access(scope)
                    .get_or_insert_with(Default::default);
                if let Err(m) = access.apply(&d.name, &d.args) {
                    self.err(&d.loc, m);
                }
            }
            ("options", Some((vh, i))) => match crate::files::OptionsLine::parse(&d.args) {
                Ok(line) => self.vhosts[vh].files.sections[i].options = Some(line),
                Err(m) => self.err(&d.loc, m),
            },
            ("directoryindex", Some((vh, i))) => {
                if let Some(names) = directives::index_names(self, d) {
                    self.vhosts[vh].files.sections[i].index = Some(names);
                }
            }
            ("directoryslash", Some((vh, i))) => {
                if let Some(on) = self.one_flag(d) {
                    self.vhosts[vh].files.sections[i].slash = Some(on);
                }
            }
            ("allowoverride" | "allowoverridelist", _) => {
                if !d.args.iter().all(|a| a.eq_ignore_ascii_case("none")) {
                    self.note_once(
                        &d.loc,
                        &d.name,
                        "ignored: ringproxy reads no .htaccess files; what they would say must be in the configuration",
                    );
                }
            }
            ("sethandler", _) => {
                let none = d
                    .args
                    .first()
                    .is_some_and(|a| a.eq_ignore_ascii_case("none"));
                if !none {
                    match scope {
                        FileScope::Dir(vh, i) => self.vhosts[vh].files.sections[i].handler = true,
                        FileScope::Files(vh, None, f) => {
                            self.vhosts[vh].files.files[f].handler = true
                        }
                        FileScope::Files(vh, Some(i), f) => {
                            self.vhosts[vh].files.sections[i].files[f].handler = true
                        }
                    }
                    self.warn(
                        &d.loc,
                        format!(
                            "SetHandler {}: ringproxy runs no handlers; files here answer 403, never their source",
                            d.args.join(" ")
                        ),
                    );
                }
            }
            // mod_ssl's per-directory options: said once, as at server level.
            ("ssloptions", _) => self.directive(d, Ctx::Server(scope.vhost()), None),
            ("addtype" | "removetype" | "addhandler", _) => {
                // mod_mime's maps are per directory in Apache; ringproxy keeps one per
                // server, so a section's lines widen to the server (refusing more, never less).
                self.directive(d, Ctx::Server(scope.vhost()), None);
            }
            _ if directives::accepted_reason(&name).is_some() => {
                self.directive(d, Ctx::Server(scope.vhost()), None);
            }
            _ => self.err(
                &d.loc,
                format!(
                    "{} inside <{}> is not supported",
                    d.name,
                    if dir.is_some() { "Directory" } else { "Files" }
                ),
            ),
        }
    }

    /// The rule for `<Location path>` in a vhost, created on first use (`~re` for a
    /// regex section, already checked to compile).
    fn location_rule(&mut self, vh: usize, path: &str) -> &mut LocationRule {
        let list = &mut self.vhosts[vh].locations;
        let i = match list.iter().position(|r| r.path == path) {
            Some(i) => i,
            None => {
                list.push(LocationRule {
                    path: path.to_string(),
                    regex: path.strip_prefix('~').and_then(|re| path_regex(re).ok()),
                    handler: None,
                    handler_loc: None,
                    access: None,
                    redirect: None,
                    verify_client: None,
                });
                list.len() - 1
            }
        };
        &mut list[i]
    }

    /// The host's `proxy_access` entry for a `<Proxy URL>` pattern, created on first use.
    fn proxy_access_index(&mut self, vh: usize, url: &str) -> usize {
        let pattern = url.to_ascii_lowercase();
        let list = &mut self.vhosts[vh].proxy_access;
        match list.iter().position(|p| p.pattern == pattern) {
            Some(i) => i,
            None => {
                list.push(ProxyAccess {
                    pattern,
                    access: Default::default(),
                });
                list.len() - 1
            }
        }
    }

    /// The access rules a directive in a `<Proxy>` context adds to.
    fn proxy_access_of(&mut self, ctx: Ctx) -> Option<&mut crate::routing::access::Access> {
        let (vh, pi) = match ctx {
            Ctx::ProxyOther(vh, pi) => (vh, pi),
            Ctx::Balancer(vh, b) => {
                let name = self.balancers[b].name.clone();
                (vh, self.proxy_access_index(vh, &name))
            }
            _ => return None,
        };
        Some(&mut self.vhosts[vh].proxy_access[pi].access)
    }

    /// `<RequireAll>`, `<RequireAny>` or `<RequireNone>`, with nested blocks.
    fn require_block(&mut self, s: &Section) -> Option<crate::routing::access::Require> {
        use crate::routing::access::Require;
        let mut list = Vec::new();
        let mut ok = true;
        for child in &s.children {
            match child {
                Node::Directive(d) if d.name.eq_ignore_ascii_case("require") => {
                    match Require::parse(&d.args) {
                        Ok(r) => list.push(r),
                        Err(m) => {
                            ok = false;
                            self.err(&d.loc, m);
                        }
                    }
                }
                Node::Section(sec) if is_require_block(&sec.name) => {
                    match self.require_block(sec) {
                        Some(r) => list.push(r),
                        None => ok = false,
                    }
                }
                Node::Directive(d) => {
                    ok = false;
                    self.err(
                        &d.loc,
                        format!(
                            "{} is not allowed in <{}>; only Require lines and blocks",
                            d.name, s.name
                        ),
                    );
                }
                Node::Section(sec) => {
                    ok = false;
                    self.err(
                        &sec.loc,
                        format!("<{}> is not allowed in <{}>", sec.name, s.name),
                    );
                }
            }
        }
        if list.is_empty() && ok {
            self.err(
                &s.loc,
                format!("<{}> needs at least one Require line", s.name),
            );
            return None;
        }
        let all_negative = list.iter().all(|r| matches!(r, Require::Not(_)));
        let lower = s.name.to_ascii_lowercase();
        if all_negative && lower != "requirenone" && ok {
            // Apache refuses this too: a block of negations can never grant.
            self.err(
                &s.loc,
                format!(
                    "<{}> holds only negated Require lines, so it can never grant access",
                    s.name
                ),
            );
            return None;
        }
        if lower == "requireany" && list.iter().any(|r| matches!(r, Require::Not(_))) {
            self.err(
                &s.loc,
                "a negated Require has no effect in <RequireAny> (Apache refuses it too); use <RequireAll>",
            );
            return None;
        }
        if !ok {
            return None;
        }
        Some(match lower.as_str() {
            "requireall" => Require::All(list),
            "requirenone" => Require::None(list),
            _ => Require::Any(list),
        })
    }

    fn balancer_index(&mut self, name: &str, loc: &Loc) -> usize {
        let full = Scheme::Balancer.url(name);
        if let Some(i) = self
            .balancers
            .iter()
            .position(|b| !b.implicit && b.name.eq_ignore_ascii_case(&full))
        {
            return i;
        }
        self.balancers.push(Balancer {
            name: full,
            implicit: false,
            members: Vec::new(),
            params: BalancerParams::default(),
            loc: loc.clone(),
            member_tls: None,
        });
        self.balancers.len() - 1
    }

    fn directive(&mut self, d: &Directive, ctx: Ctx, location: Option<&str>) {
        let name = d.name.to_ascii_lowercase();
        let args = &d.args;
        let loc = &d.loc;
        let vh = ctx.vhost();
        // Access control and handlers are valid in <Proxy> and <Location>.
        match name.as_str() {
            "require" | "order" | "allow" | "deny" | "satisfy"
                if matches!(ctx, Ctx::Location(_)) =>
            {
                let path = location.unwrap_or("/").to_string();
                let rule = self.location_rule(vh, &path);
                let access = rule.access.get_or_insert_with(Default::default);
                if let Err(m) = access.apply(&d.name, &d.args) {
                    self.err(loc, m);
                }
                return;
            }
            "require" | "order" | "allow" | "deny" | "satisfy"
                if matches!(ctx, Ctx::Balancer(..) | Ctx::ProxyOther(..)) =>
            {
                let r = match self.proxy_access_of(ctx) {
                    Some(access) => access.apply(&d.name, &d.args),
                    None => Ok(()),
                };
                if let Err(m) = r {
                    self.err(loc, m);
                }
                return;
            }
            "require" | "order" | "allow" | "deny" | "satisfy" => return self.access(d),
            _ => {}
        }
        if let Ctx::ProxyOther(..) = ctx {
            return self.err(
                loc,
                format!(
                    "{} is not allowed in <Proxy> other than <Proxy balancer://…>",
                    d.name
                ),
            );
        }
        if let Ctx::Location(_) = ctx {
            let path = location.unwrap_or("/");
            return match name.as_str() {
                "proxypass" | "proxypassreverse" if path.starts_with('~') => self.err(
                    loc,
                    format!(
                        "{} inside <LocationMatch> is not supported; use ProxyPassMatch with the regex",
                        d.name
                    ),
                ),
                "proxypass" | "proxypassreverse" => {
                    let mut full = vec![path.to_string()];
                    full.extend(args.iter().cloned());
                    let d2 = Directive {
                        name: d.name.clone(),
                        args: full,
                        loc: loc.clone(),
                    };
                    self.directive(&d2, Ctx::Server(vh), None)
                }
                "sethandler" => match args.first().map(|a| a.to_ascii_lowercase()).as_deref() {
                    Some(h @ ("server-status" | "metrics" | "balancer-manager")) => {
                        let rule = self.location_rule(vh, path);
                        rule.handler = Some(match h {
                            "server-status" => Handler::ServerStatus,
                            "metrics" => Handler::Metrics,
                            _ => Handler::BalancerManager,
                        });
                        rule.handler_loc = Some(loc.clone());
                    }
                    Some(h) => {
                        self.warn(
                            loc,
                            format!("SetHandler {h} is not available yet; {path} answers 404 instead of being proxied"),
                        );
                        self.rules.push(PendingRule {
                            vhost: vh,
                            matcher: Matcher::Prefix(path.to_string()),
                            target: None,
                            params: Vec::new(),
                            noquery: false,
                            nocanon: false,
                            loc: loc.clone(),
                        });
                    }
                    None => self.err(loc, "SetHandler needs a handler name"),
                },
                "redirect" | "redirectpermanent" | "redirecttemp" => {
                    match crate::routing::redirect::parse_args(&d.name, args, true) {
                        Ok((status, _, target)) => {
                            let rule = self.location_rule(vh, path);
                            let matcher = match &rule.regex {
                                Some(re) => Matcher::Regex(re.clone()),
                                None => Matcher::Prefix(path.to_string()),
                            };
                            rule.redirect = Some(RedirectRule {
                                matcher,
                                status,
                                target,
                            });
                        }
                        Err(m) => self.err(loc, m),
                    }
                }
                "sslverifyclient" => {
                    if let Some(v) = directives::verify_client_arg(self, d) {
                        self.location_rule(vh, path).verify_client = Some(v);
                        self.tls[vh].location_verify.get_or_insert(loc.clone());
                    }
                }
                _ => self.err(
                    loc,
                    format!("{} is not supported inside <Location>", d.name),
                ),
            };
        }
        if let Some(spec) = directives::find(&name) {
            if let Some(why) = spec.refused_in(ctx) {
                return self.err(loc, why);
            }
            return (spec.run)(self, d, ctx);
        }
        match name.as_str() {
            n if directives::refused_reason(n, args).is_some() => {
                if let Some(Some(why)) = directives::refused_reason(n, args) {
                    self.err(
                        loc,
                        format!("{} {}: refused: {why}", d.name, args.join(" ")),
                    );
                }
            }
            n if MPM_NO_MEANING.contains(&n) => {
                if let Some(v) = self.one_num(d, 0, u32::MAX as u64) {
                    // Apache caps MaxRequestWorkers at ServerLimit × ThreadsPerChild.
                    match n {
                        "serverlimit" => self.mpm_limits.0 = Some(v as usize),
                        "threadsperchild" => self.mpm_limits.1 = Some(v as usize),
                        _ => {}
                    }
                    self.warn(
                        loc,
                        format!(
                            "{} has no meaning in ringproxy (one worker thread per core; see WorkerThreads)",
                            d.name
                        ),
                    );
                }
            }
            n if directives::accepted_reason(n).is_some() => {
                let why = directives::accepted_reason(n).unwrap_or_default();
                self.note_once(loc, &d.name, &format!("ignored: {why}"));
            }
            n => {
                if let Some((_, why)) = IGNORED_DIRECTIVES.iter().find(|(k, _)| *k == n) {
                    let why = *why;
                    self.warn(loc, format!("{} ignored: {why}", d.name));
                } else {
                    let known: Vec<&str> = directives::names()
                        .chain(OTHER_DIRECTIVES.iter().copied())
                        .chain(directives::accepted_names())
                        .chain(directives::refused_names())
                        .collect();
                    let hint = did_you_mean(&d.name, &known);
                    self.err(
                        loc,
                        format!("unknown or unsupported directive '{}'{hint}", d.name),
                    );
                }
            }
        }
    }

    fn vhost_wide_note(&mut self, d: &Directive, in_vhost: bool) {
        if in_vhost {
            self.warn(
                &d.loc,
                format!(
                    "{} inside <VirtualHost> applies to the whole server in ringproxy",
                    d.name
                ),
            );
        }
    }

    /// Access directives outside `<Location>` and `<Proxy>`: Apache does not allow them
    /// there. The forms that allow everything are accepted (they change nothing); the
    /// restrictive ones are refused, so nothing the admin meant to close is left open.
    fn access(&mut self, d: &Directive) {
        let args: Vec<String> = d.args.iter().map(|a| a.to_ascii_lowercase()).collect();
        let allows_all = match d.name.to_ascii_lowercase().as_str() {
            "require" => args == ["all", "granted"],
            "allow" => args == ["from", "all"],
            "order" | "satisfy" => true,
            _ => false,
        };
        if !allows_all {
            self.err(
                &d.loc,
                format!(
                    "'{} {}' outside <Location> and <Proxy> restricts nothing in Apache; put it in a <Location> or <Proxy> section (ringproxy refuses to start rather than ignore it)",
                    d.name,
                    d.args.join(" ")
                ),
            );
        }
    }

    fn log_level(&mut self, d: &Directive) {
        let mut level = None;
        for a in &d.args {
            if a.contains(':') {
                self.warn(
                    &d.loc,
                    format!("per-module LogLevel '{a}' is not supported; ignored"),
                );
                continue;
            }
            level = Some(match a.to_ascii_lowercase().as_str() {
                "emerg" | "alert" | "crit" | "error" => LogLevel::Error,
                "warn" => LogLevel::Warn,
                "notice" | "info" => LogLevel::Info,
                "debug" => LogLevel::Debug,
                t if t.starts_with("trace") => LogLevel::Trace,
                _ => return self.err(&d.loc, format!("LogLevel: unknown level '{a}'")),
            });
        }
        if let Some(l) = level {
            self.core.log_level = l;
        }
    }

    fn one_flag(&mut self, d: &Directive) -> Option<bool> {
        match d.args.as_slice() {
            [v] => match params::parse_on_off(v) {
                Ok(b) => Some(b),
                Err(m) => {
                    self.err(&d.loc, format!("{}: {m}", d.name));
                    None
                }
            },
            _ => {
                self.err(&d.loc, format!("{} takes one argument, On or Off", d.name));
                None
            }
        }
    }

    fn one_duration(&mut self, d: &Directive) -> Option<Duration> {
        match d.args.as_slice() {
            [v] => match params::parse_duration(v) {
                Ok(t) => Some(t),
                Err(m) => {
                    self.err(&d.loc, format!("{}: {m}", d.name));
                    None
                }
            },
            _ => {
                self.err(&d.loc, format!("{} takes one argument (seconds)", d.name));
                None
            }
        }
    }

    fn one_num(&mut self, d: &Directive, lo: u64, hi: u64) -> Option<u64> {
        match d.args.as_slice() {
            [v] => match v.parse::<u64>() {
                Ok(n) if (lo..=hi).contains(&n) => Some(n),
                _ => {
                    self.err(
                        &d.loc,
                        format!("{} {v}: must be a whole number from {lo} to {hi}", d.name),
                    );
                    None
                }
            },
            _ => {
                self.err(&d.loc, format!("{} takes one number", d.name));
                None
            }
        }
    }

    fn split_kv<'s>(&mut self, loc: &Loc, arg: &'s str) -> Option<(String, &'s str)> {
        match arg.split_once('=') {
            Some((k, v)) => Some((k.to_ascii_lowercase(), v)),
            None => {
                self.err(loc, format!("'{arg}': expected key=value"));
                None
            }
        }
    }
}

fn module_provided(name: &str) -> bool {
    PROVIDED_MODULES.contains(&lexer::module_short(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, Vec<ConfigError>> {
        load_str(text, "t.conf", &LoadOptions::default())
    }

    fn errs(text: &str) -> Vec<String> {
        load(text)
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// The balancer block from the Apache guides that ringproxy must run unchanged.
    const ISSUE_EXAMPLE: &str = include_str!("../../tests/configs/issue-example.conf");

    #[test]
    fn issue_example_loads() {
        let c = load(ISSUE_EXAMPLE).unwrap();
        assert_eq!(c.listens, vec!["0.0.0.0:8080".parse().unwrap()]);
        assert_eq!(c.balancers.len(), 1);
        let b = &c.balancers[0];
        assert_eq!(b.members.len(), 2);
        assert_eq!(b.members[0].params.lbfactor, Some(500));
        assert_eq!(b.members[0].params.route.as_deref(), Some("node1"));
        assert_eq!(b.params.sticky_cookie.as_deref(), Some("BALANCEID"));
        let vh = &c.vhosts[1];
        assert_eq!(vh.server_name.as_deref(), Some("lb.example"));
        assert_eq!(vh.rules.len(), 2);
        assert!(matches!(vh.rules[0].target, Target::Exclude));
        assert_eq!(vh.reverse.len(), 2);
        assert_eq!(
            vh.cookie_domains,
            vec![("127.0.0.1".into(), "lb.example".into())]
        );
    }

    #[test]
    fn directives_outside_their_contexts_are_refused() {
        let e = errs(
            "Listen 80\n<Proxy balancer://c>\nBalancerMember http://127.0.0.1:9001\nTimeout 5\nHeader set X-A 1\n</Proxy>\nProxyPass / balancer://c/\n<VirtualHost *:80>\nListen 81\n</VirtualHost>\n",
        );
        let want = [
            "t.conf:4: Timeout is not allowed inside <Proxy balancer://…>",
            "t.conf:9: Listen is not allowed inside <VirtualHost>",
        ];
        for w in want {
            assert!(e.iter().any(|m| m == w), "{w} not in {e:?}");
        }
        assert_eq!(e.len(), want.len(), "Header is allowed in <Proxy>: {e:?}");
    }

    #[test]
    fn errors_carry_file_and_line() {
        let e = errs("Listen 80\nProxyRequests On\nBalancerMemeber http://x\n");
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("t.conf:2: ProxyRequests On"), "{e:?}");
        assert!(e[1].starts_with("t.conf:3: unknown or unsupported directive 'BalancerMemeber'"));
        assert!(e[1].contains("did you mean 'BalancerMember'"));
    }

    #[test]
    fn location_match_sections() {
        let c = load("Listen 80\n<LocationMatch \"^/a(/|$)\">\nRequire all denied\n</LocationMatch>\n<Location ~ \"\\.bak$\">\nRequire all denied\n</Location>\n").unwrap();
        let l = &c.vhosts[0].locations;
        assert_eq!(l.len(), 2);
        assert!(l[0].matches(b"/a/x") && !l[0].matches(b"/ab"));
        assert!(l[1].matches(b"/x.bak") && !l[1].matches(b"/x.bakx"));
        let e = errs("Listen 80\n<LocationMatch \"(\">\nRequire all denied\n</LocationMatch>\n");
        assert!(
            e[0].starts_with("t.conf:2: <LocationMatch (>: bad regex"),
            "{e:?}"
        );
        let e = errs(
            "Listen 80\n<LocationMatch ^/a>\nProxyPass http://127.0.0.1:1/\n</LocationMatch>\n",
        );
        assert!(
            e[0].starts_with("t.conf:3: ProxyPass inside <LocationMatch>"),
            "{e:?}"
        );
        let e = errs("Listen 80\n<Location /a /b>\n</Location>\n");
        assert!(
            e[0].starts_with("t.conf:2: <Location> takes one path"),
            "{e:?}"
        );
    }

    #[test]
    fn rewrite_cond_names_with_any_characters_are_errors_not_panics() {
        // Found by the rewrite fuzz target: byte 5 fell inside a character.
        for test in [
            "%{HTTP\u{1ea}pgra}",
            "%{HTTP:\u{dc}}",
            "%{HTTP_\u{e9}t\u{e9}}",
            "%{HTTP:}",
        ] {
            let e = errs(&format!(
                "Listen 80\nRewriteEngine On\nRewriteCond {test} x\nRewriteRule ^/ - [F]\n"
            ));
            assert!(e[0].starts_with("t.conf:3: RewriteCond"), "{test}: {e:?}");
        }
        assert!(load(
            "Listen 80\nRewriteEngine On\nRewriteCond %{HTTP:X-Up} x\nRewriteRule ^/ - [F]\n"
        )
        .is_ok());
    }

    #[test]
    fn listen_protocols_and_misplaced_parameters_are_explained() {
        // Found by the config fuzz target: the whole-file error named no real file.
        let e = errs("");
        assert_eq!(e, ["t.conf:0: no Listen directive: nothing to serve"]);
        let e = errs("Listen 443 https\n");
        assert!(
            e[0].starts_with("t.conf:1: Listen 0.0.0.0:443 https: the first virtual host for this address has no SSLEngine On"),
            "{e:?}"
        );
        let e = errs("Listen 8080 gopher\n");
        assert!(e[0].contains("unknown protocol 'gopher'"), "{e:?}");
        assert!(load("Listen 8080 http\n").is_ok());
        let e = errs("Listen 80\n<Proxy balancer://c>\nBalancerMember http://127.0.0.1:1\n</Proxy>\nProxyPass / balancer://c/ upgrade=websocket\n");
        assert!(
            e[0].starts_with("t.conf:5: 'upgrade' is a BalancerMember parameter"),
            "{e:?}"
        );
        assert!(!e[0].contains("did you mean"), "{e:?}");
        let e = errs("Listen 80\n<Proxy balancer://c>\nBalancerMember http://127.0.0.1:1\n</Proxy>\nProxyPass / balancer://c/ lbmetod=bybusyness\n");
        assert!(e[0].contains("did you mean 'lbmethod'"), "{e:?}");
        // A plain URL takes worker parameters on the line.
        assert!(load("Listen 80\nProxyPass / http://127.0.0.1:1/ upgrade=websocket\n").is_ok());
    }

    #[test]
    fn idle_park_after_takes_a_time_or_off() {
        let c = load("Listen 80\n").unwrap();
        assert_eq!(c.core.idle_park_after, Some(Duration::from_millis(250)));
        for (arg, want) in [
            ("100ms", Some(Duration::from_millis(100))),
            ("2", Some(Duration::from_secs(2))),
            ("off", None),
            ("Off", None),
        ] {
            let c = load(&format!("Listen 80\nIdleParkAfter {arg}\n")).unwrap();
            assert_eq!(c.core.idle_park_after, want, "{arg}");
        }
        let e = errs("Listen 80\nIdleParkAfter soon\n");
        assert!(e[0].starts_with("t.conf:2: IdleParkAfter"), "{e:?}");
    }

    #[test]
    fn busy_polling_takes_on_off_or_a_window() {
        let c = load("Listen 80\n").unwrap();
        assert_eq!(c.core.busy_polling, None);
        for (arg, want) in [
            ("On", Some(Duration::MAX)),
            ("off", None),
            ("5ms", Some(Duration::from_millis(5))),
            ("200us", Some(Duration::from_micros(200))),
            ("0us", None),
            ("1", Some(Duration::from_secs(1))),
            // A zero window would never spin: the same as Off.
            ("0", None),
        ] {
            let c = load(&format!("Listen 80\nBusyPolling {arg}\n")).unwrap();
            assert_eq!(c.core.busy_polling, want, "{arg}");
        }
        for bad in ["always", "fastus"] {
            let e = errs(&format!("Listen 80\nBusyPolling {bad}\n"));
            assert!(e[0].starts_with("t.conf:2: BusyPolling"), "{e:?}");
        }
    }

    #[test]
    fn undefined_balancer_and_bad_params() {
        let e = errs("Listen 80\nProxyPass / balancer://nope/\n");
        assert!(
            e[0].starts_with("t.conf:2: balancer://nope is not defined"),
            "{e:?}"
        );
        let e = errs(
            "Listen 80\n<Proxy balancer://a>\nBalancerMember http://127.0.0.1:1 hcpass=3\nProxySet lvmetod=byrequests\n</Proxy>\nProxyPass / balancer://a/\n",
        );
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].contains("t.conf:3:") && e[0].contains("did you mean 'hcpasses'"),
            "{e:?}"
        );
        assert!(
            e[1].contains("t.conf:4:") && e[1].contains("did you mean 'lbmethod'"),
            "{e:?}"
        );
    }

    #[test]
    fn plain_url_targets_share_an_implicit_balancer() {
        let c = load(
            "Listen 80\nProxyPass /a http://127.0.0.1:9000/x\nProxyPass /b http://127.0.0.1:9000/y timeout=3\n",
        )
        .unwrap();
        assert_eq!(c.balancers.len(), 1);
        assert!(c.balancers[0].implicit);
        assert_eq!(
            c.balancers[0].members[0].params.timeout,
            Some(Duration::from_secs(3))
        );
        let Target::Backend { template, .. } = &c.vhosts[0].rules[0].target else {
            panic!()
        };
        assert_eq!(template, "/x");
    }

    #[test]
    fn ifmodule_and_ifdefine() {
        let text = "Listen 80\n<IfModule mod_proxy.c>\nTimeout 7\n</IfModule>\n<IfModule !proxy_module>\nTimeout 9\n</IfModule>\n<IfModule mod_nothing.c>\nBogus x\n</IfModule>\n<IfDefine FAST>\nKeepAliveTimeout 1\n</IfDefine>\n";
        let c = load(text).unwrap();
        assert_eq!(c.core.timeout, Duration::from_secs(7));
        assert_eq!(c.core.keepalive_timeout, Duration::from_secs(5));
        let c = load_str(
            text,
            "t",
            &LoadOptions {
                defines: vec!["FAST".into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(c.core.keepalive_timeout, Duration::from_secs(1));
    }

    #[test]
    fn vhosts_inherit_main_rules_and_reverse_expands_balancers() {
        let c = load(
            "Listen 80\nProxyPreserveHost On\n<Proxy balancer://c>\nBalancerMember http://127.0.0.1:9001/app\nBalancerMember http://127.0.0.1:9002\n</Proxy>\nProxyPass /m balancer://c/\n<VirtualHost *:80>\nProxyPass /v balancer://c/\nProxyPassReverse / balancer://c/\n</VirtualHost>\n",
        )
        .unwrap();
        let vh = &c.vhosts[1];
        assert_eq!(vh.rules.len(), 2);
        assert!(vh.preserve_host);
        assert_eq!(
            vh.reverse,
            vec![
                ReverseRule {
                    path: "/".into(),
                    url: "http://127.0.0.1:9001/app/".into()
                },
                ReverseRule {
                    path: "/".into(),
                    url: "http://127.0.0.1:9002/".into()
                }
            ]
        );
    }

    #[test]
    fn mpm_and_limits() {
        let c = load(
            "Listen 127.0.0.1:8081\nLimitRequestLine 100\nLimitRequestFields 5\nMaxKeepAliveRequests 0\nThreadsPerChild 25\nMaxRequestWorkers 400\nWorkerThreads 2\nCpuAffinity Off\nLoadModule proxy_module modules/mod_proxy.so\nLoadModule php_module x.so\n",
        )
        .unwrap();
        assert_eq!(c.core.limit_request_line, 100);
        assert_eq!(c.core.limit_request_fields, 5);
        assert_eq!(c.core.max_keepalive_requests, 0);
        assert_eq!(c.core.max_request_workers, 400);
        assert_eq!(c.core.worker_threads, Some(2));
        assert!(!c.core.cpu_affinity);
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    }

    #[test]
    fn health_check_expressions_and_templates() {
        let c = load(
            "Listen 80\nProxyHCExpr ok234 {%{REQUEST_STATUS} =~ /^[234]/}\nProxyHCTemplate tcheck hcmethod=GET hcuri=/health hcinterval=2\n<Proxy balancer://c>\nBalancerMember http://127.0.0.1:1 hctemplate=tcheck hcexpr=ok234 hcinterval=500ms\n</Proxy>\nProxyPass / balancer://c/\n",
        )
        .unwrap();
        let hc = &c.balancers[0].members[0].params.hc;
        assert_eq!(hc.method.as_deref(), Some("GET"));
        assert_eq!(hc.uri.as_deref(), Some("/health"));
        assert_eq!(hc.interval, Some(Duration::from_millis(500)));
        assert!(c.hc_exprs.contains_key("ok234"));
        let e = errs("Listen 80\nProxyHCExpr bad {%{REMOTE_ADDR} == 'x'}\n<Proxy balancer://c>\nBalancerMember http://127.0.0.1:1 hcexpr=nope hctemplate=none\n</Proxy>\nProxyPass / balancer://c/\n");
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].starts_with("t.conf:2: ProxyHCExpr bad:"), "{e:?}");
        assert!(
            e.iter().any(|x| x.contains("t.conf:4: hctemplate=none")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|x| x.contains("t.conf:4: hcexpr=nope")),
            "{e:?}"
        );
    }

    #[test]
    fn proxypass_inherit_and_balancer_directives() {
        let c = load("Listen 80\nProxyPass /m http://127.0.0.1:9/\n<VirtualHost *:80>\nProxyPassInherit Off\nProxyPass /v http://127.0.0.1:9/\n</VirtualHost>\n<VirtualHost *:80>\nServerName b\nProxyPass /w http://127.0.0.1:9/\n</VirtualHost>\nBalancerGrowth 5\nBalancerPersist On\nBalancerInherit Off\nUser nobody\nGroup nogroup\n").unwrap();
        assert_eq!(c.vhosts[1].rules.len(), 1, "Off: only its own rule");
        assert_eq!(
            c.vhosts[2].rules.len(),
            2,
            "default On: its own and the main server's"
        );
        assert_eq!(c.warnings.len(), 3, "{:?}", c.warnings);
        assert_eq!(c.core.user.as_deref(), Some("nobody"));
        assert_eq!(c.core.group.as_deref(), Some("nogroup"));
    }

    #[test]
    fn mod_ssl_lines_load_or_fail_at_their_line() {
        let dir = std::env::temp_dir().join(format!("ringproxy-ssl-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["s.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let (crt, k, wrong) = (dir.join("s.crt"), dir.join("s.key"), dir.join("o.key"));
        std::fs::write(&crt, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        std::fs::write(&wrong, other.serialize_pem()).unwrap();
        let host = |lines: &str| {
            format!("Listen 443 https\n<VirtualHost *:443>\nServerName s.test\nSSLEngine on\n{lines}</VirtualHost>\n")
        };
        let good = format!(
            "SSLCertificateFile {}\nSSLCertificateKeyFile {}\nSSLProtocol all -SSLv3 -TLSv1 -TLSv1.1\nSSLCipherSuite HIGH:!aNULL:!MD5\nSSLHonorCipherOrder on\nSSLSessionTickets off\n",
            crt.display(),
            k.display()
        );
        let c = load(&host(&good)).unwrap();
        assert!(c.vhosts[1].tls.is_some() && c.vhosts[0].tls.is_none());
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        // Main-server settings reach the hosts; legacy versions and suites are warned of.
        let c = load(&format!(
            "SSLProtocol +TLSv1.1 +TLSv1.2\nSSLCipherSuite ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA\n{}",
            host(&good.replace("SSLProtocol all -SSLv3 -TLSv1 -TLSv1.1\n", ""))
        ))
        .unwrap();
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(c.warnings[0].starts_with("t.conf:1: SSLProtocol: TLSv1.1 not offered"));
        assert!(c.warnings[1].contains("AES128-SHA (CBC mode)"));

        // Each error names the line and the file.
        let e = errs(&host(""));
        assert!(
            e[0].starts_with("t.conf:4: SSLEngine On needs an SSLCertificateFile"),
            "{e:?}"
        );
        let e = errs(&host(&format!(
            "SSLCertificateFile {}\nSSLCertificateKeyFile {}\n",
            crt.display(),
            wrong.display()
        )));
        assert!(
            e[0].starts_with("t.conf:5: ") && e[0].contains("does not match"),
            "{e:?}"
        );
        let e = errs(&host("SSLCertificateFile /nonexistent/x.pem\n"));
        assert!(e[0].starts_with("t.conf:5: /nonexistent/x.pem"), "{e:?}");
        let e = errs(&host(&format!("{good}SSLProtocol TLSv1\n")));
        assert!(e[0].contains("leaves no protocol"), "{e:?}");
        let e = errs(&host(&format!("{good}SSLVerifyClient require\n")));
        assert!(e[0].contains("needs SSLCACertificateFile"), "{e:?}");
        let e = errs(&host(&format!(
            "{good}SSLCACertificateFile {}\n<Location /admin>\nSSLVerifyClient optional_no_ca\n</Location>\n",
            crt.display()
        )));
        assert!(
            e[0].starts_with("t.conf:13: SSLVerifyClient optional_no_ca"),
            "{e:?}"
        );
        let c = load(&host(&format!(
            "{good}SSLCACertificateFile {}\nSSLVerifyDepth 2\n<Location /admin>\nSSLVerifyClient require\n</Location>\n",
            crt.display()
        )))
        .unwrap();
        assert!(c.vhosts[1].tls.is_some());
        let e = errs("Listen 80\nSSLEngine optional\n");
        assert!(
            e[0].starts_with("t.conf:2: SSLEngine optional (RFC 2817"),
            "{e:?}"
        );
        // ALPN: h2 is said to be unavailable, never silently dropped.
        let c = load(&host(&format!("{good}Protocols h2 http/1.1\n"))).unwrap();
        assert!(
            c.warnings[0].contains("HTTP/2 is not available yet"),
            "{:?}",
            c.warnings
        );
        let e = errs(&host(&format!("{good}Protocols h2\n")));
        assert!(e[0].contains("must include http/1.1"), "{e:?}");
        // Without SSLEngine On the lines are read and nothing is served over TLS.
        let c = load("Listen 80\nSSLEngine Off\nSSLProtocol all -SSLv3\n").unwrap();
        assert!(c.vhosts[0].tls.is_none() && c.warnings.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sslproxy_lines_set_up_tls_members() {
        let dir = std::env::temp_dir().join(format!("ringproxy-sslproxy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["app.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (ca, client) = (dir.join("ca.pem"), dir.join("client.pem"));
        std::fs::write(&ca, cert.pem()).unwrap();
        std::fs::write(&client, format!("{}{}", cert.pem(), key.serialize_pem())).unwrap();
        let site = |engine_at_main: &str, in_vhost: &str, in_proxy: &str| {
            format!(
                "Listen 80\n{engine_at_main}<VirtualHost *:80>\n{in_vhost}<Proxy balancer://app>\n{in_proxy}BalancerMember https://127.0.0.1:8443\nBalancerMember http://127.0.0.1:8080\n</Proxy>\nProxyPass /b balancer://app/\nProxyPass /w wss://127.0.0.1:9443/\n</VirtualHost>\n"
            )
        };
        let trust = format!("SSLProxyCACertificateFile {}\n", ca.display());

        // Without SSLProxyEngine On: the member's line, and where the line is missing.
        let e = errs(&site("", &trust, ""));
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].starts_with("t.conf:5: member 'https://127.0.0.1:8443': TLS to members needs SSLProxyEngine On in the <VirtualHost> at t.conf:2"),
            "{e:?}"
        );
        assert!(
            e[1].starts_with("t.conf:9: member 'wss://127.0.0.1:9443'"),
            "{e:?}"
        );

        // In the host, in the main server or in the <Proxy> section: every TLS member
        // gets its setup, plain ones none; the default verification is said once.
        for (main, vhost, proxy) in [
            ("", "SSLProxyEngine On\n", ""),
            ("SSLProxyEngine On\n", "", ""),
        ] {
            let c = load(&site(main, &format!("{vhost}{trust}"), proxy)).unwrap();
            let tls: Vec<bool> = c
                .balancers
                .iter()
                .flat_map(|b| b.members.iter().map(|m| m.tls.is_some()))
                .collect();
            assert_eq!(tls, [true, false, true], "{main}{vhost}{proxy}");
            let said: Vec<_> = c
                .warnings
                .iter()
                .filter(|w| w.contains("SSLProxyVerify is not set"))
                .collect();
            assert_eq!(said.len(), 1, "{:?}", c.warnings);
            assert!(said[0].contains("ca.pem") && said[0].contains("Apache's default is none"));
        }
        // A <Proxy> section's SSLProxyEngine covers its own members only.
        let e = errs(&site("", &trust, "SSLProxyEngine On\n"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("t.conf:10: member 'wss://"), "{e:?}");

        // SSLProxyVerify none is a warning that says what it costs; so is turning the
        // name check off.
        let c = load(&site(
            "",
            &format!("SSLProxyEngine On\nSSLProxyVerify none\nSSLProxyCheckPeerName off\nSSLProxyMachineCertificateFile {}\nSSLProxyCipherSuite ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA\n", client.display()),
            "",
        ))
        .unwrap();
        let w = c.warnings.join("\n");
        assert!(
            w.contains(
                "t.conf:4: SSLProxyVerify none: member certificates are not checked against any CA"
            ),
            "{w}"
        );
        assert!(w.contains("t.conf:5: SSLProxyCheckPeerName off"), "{w}");
        assert!(
            w.contains("t.conf:7: ") && w.contains("AES128-SHA (CBC mode)"),
            "{w}"
        );
        assert!(!w.contains("SSLProxyVerify is not set"), "{w}");

        // Files: a missing trust store or client certificate fails at its line, once.
        let e = errs(&site(
            "",
            "SSLProxyEngine On\nSSLProxyCACertificateFile /nonexistent/ca.pem\n",
            "",
        ));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("t.conf:4: "), "{e:?}");
        let e = errs(&site(
            "",
            &format!(
                "SSLProxyEngine On\n{trust}SSLProxyMachineCertificateFile {}\n",
                ca.display()
            ),
            "",
        ));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("t.conf:5: SSLProxyMachineCertificateFile: "),
            "{e:?}"
        );
        let e = errs("Listen 80\nSSLProxyMachineCertificatePath /etc/ssl\n");
        assert!(
            e[0].contains("name the file with SSLProxyMachineCertificateFile"),
            "{e:?}"
        );
        let e = errs("Listen 80\nSSLProxyVerify sometimes\n");
        assert!(e[0].contains("expected none, optional, require"), "{e:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn access_outside_sections_is_refused_not_ignored() {
        let e = errs("Listen 80\nRequire ip 10.0.0.0/8\n");
        assert!(e[0].contains("put it in a <Location> or <Proxy>"), "{e:?}");
        assert!(load("Listen 80\nRequire all granted\n").is_ok());
    }

    #[test]
    fn proxy_sections_carry_access_rules() {
        let c = load("Listen 80\n<Proxy *>\nRequire ip 10.0.0.0/8\n</Proxy>\n<Proxy balancer://c>\nBalancerMember http://127.0.0.1:9001\nOrder deny,allow\nDeny from all\nAllow from 127.0.0.1\n</Proxy>\n<Proxy http://a.example/*>\nRequire all granted\n</Proxy>\nProxyPass / balancer://c/\n").unwrap();
        let pa = &c.vhosts[0].proxy_access;
        let patterns: Vec<&str> = pa.iter().map(|p| p.pattern.as_str()).collect();
        assert_eq!(patterns, ["*", "balancer://c", "http://a.example/*"]);
        let ip = |s: &str| s.parse().unwrap();
        assert!(pa[0].access.allows(ip("10.1.1.1")) && !pa[0].access.allows(ip("192.0.2.1")));
        assert!(pa[1].access.allows(ip("127.0.0.1")) && !pa[1].access.allows(ip("10.1.1.1")));
        for (pattern, url, want) in [
            ("*", "balancer://c/x", true),
            ("balancer://c", "balancer://c/x", true),
            ("balancer://c", "balancer://other/x", false),
            ("http://a.example/*", "http://A.example/app", true),
            ("http://a.example/app*", "http://a.example/other", false),
            ("http://*.example/", "http://b.example/x", true),
            ("http://*/a*b*c", "http://h/a-b-c", true),
            ("http://*/a*b*c", "http://h/a-b-", false),
            ("a**b", "ab", true),
        ] {
            let p = ProxyAccess {
                pattern: pattern.into(),
                access: Default::default(),
            };
            assert_eq!(p.matches(url), want, "{pattern} {url}");
        }
        // A long URL against a many-star pattern that cannot match: linear, not
        // exponential (this took minutes with backtracking at every star).
        let p = ProxyAccess {
            pattern: "http://*a*a*a*a*a*a*a*b".into(),
            access: Default::default(),
        };
        let url = format!("http://h/{}", "a".repeat(100_000));
        let started = std::time::Instant::now();
        assert!(!p.matches(&url));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn require_blocks_table() {
        use crate::routing::access::Access;
        let cases: &[(&str, &str, bool)] = &[
            ("<RequireAll>\nRequire ip 10.0.0.0/8\nRequire not ip 10.0.0.5\n</RequireAll>", "10.0.0.6", true),
            ("<RequireAll>\nRequire ip 10.0.0.0/8\nRequire not ip 10.0.0.5\n</RequireAll>", "10.0.0.5", false),
            ("<RequireAll>\nRequire ip 10.0.0.0/8\nRequire not ip 10.0.0.5\n</RequireAll>", "192.0.2.1", false),
            ("<RequireAny>\nRequire ip 10.0.0.0/8\nRequire local\n</RequireAny>", "127.0.0.1", true),
            ("<RequireAny>\nRequire ip 10.0.0.0/8\nRequire local\n</RequireAny>", "192.0.2.1", false),
            ("<RequireAll>\nRequire all granted\n<RequireNone>\nRequire ip 192.0.2.0/24\n</RequireNone>\n</RequireAll>", "192.0.2.9", false),
            ("<RequireAll>\nRequire all granted\n<RequireNone>\nRequire ip 192.0.2.0/24\n</RequireNone>\n</RequireAll>", "198.51.100.1", true),
            ("<RequireAny>\n<RequireAll>\nRequire ip 10.0.0.0/8\nRequire not ip 10.9.0.0/16\n</RequireAll>\nRequire local\n</RequireAny>", "10.9.1.1", false),
            ("<RequireAny>\n<RequireAll>\nRequire ip 10.0.0.0/8\nRequire not ip 10.9.0.0/16\n</RequireAll>\nRequire local\n</RequireAny>", "::1", true),
            // A lone RequireNone never grants.
            ("<RequireNone>\nRequire ip 192.0.2.0/24\n</RequireNone>", "198.51.100.1", false),
        ];
        for (block, addr, want) in cases {
            let text = format!("Listen 80\n<Location /x>\n{block}\n</Location>\n");
            let c = load(&text).unwrap_or_else(|e| panic!("{block}: {e:?}"));
            let access: &Access = c.vhosts[0].locations[0].access.as_ref().unwrap();
            assert_eq!(
                access.allows(addr.parse().unwrap()),
                *want,
                "{block} from {addr}"
            );
        }
        for (block, msg) in [
            (
                "<RequireAny>\nRequire ip 10.0.0.0/8\nRequire not ip 10.0.0.5\n</RequireAny>",
                "t.conf:3: a negated Require has no effect in <RequireAny>",
            ),
            (
                "<RequireAll>\nRequire not ip 10.0.0.5\n</RequireAll>",
                "t.conf:3: <RequireAll> holds only negated Require lines",
            ),
            (
                "<RequireAll>\nProxyPass / http://a/\n</RequireAll>",
                "t.conf:4: ProxyPass is not allowed in <RequireAll>",
            ),
            (
                "<RequireAll>\n</RequireAll>",
                "t.conf:3: <RequireAll> needs at least one Require line",
            ),
            (
                "<RequireAll>\nRequire valid-user\n</RequireAll>",
                "t.conf:4: Require valid-user: authentication is not supported",
            ),
        ] {
            let e = errs(&format!("Listen 80\n<Location /x>\n{block}\n</Location>\n"));
            assert!(e.iter().any(|e| e.starts_with(msg)), "{block}: {e:?}");
        }
        let e = errs("Listen 80\n<RequireAll>\nRequire all granted\n</RequireAll>\n");
        assert!(
            e[0].contains("only allowed in <Location> and <Proxy>"),
            "{e:?}"
        );
    }
}
