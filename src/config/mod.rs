//! Apache-syntax configuration -> a typed, validated [`Config`].
//!
//! `lexer` turns text into a tree; this module gives the tree meaning. Errors are collected
//! (not returned at the first one) so that `ringproxy -t` lists every problem, each as
//! `FILE:LINE: message`.

pub mod lexer;
pub mod params;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use lexer::{ConfigError, Loc};
use lexer::{Directive, Node, Section};
pub use params::{BalancerParams, HashKey, LbMethod, MemberParams};

/// Apache's defaults for the core limits (server/core.c, include/httpd.h).
pub const DEFAULT_LIMIT_REQUEST_LINE: usize = 8190;
pub const DEFAULT_LIMIT_REQUEST_FIELDSIZE: usize = 8190;
pub const DEFAULT_LIMIT_REQUEST_FIELDS: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// Server-wide settings (Apache's core and MPM directives, plus ringproxy's own).
#[derive(Clone, Debug)]
pub struct CoreSettings {
    pub timeout: Duration,
    pub keepalive: bool,
    pub keepalive_timeout: Duration,
    /// 0 = unlimited, as in Apache.
    pub max_keepalive_requests: u32,
    pub limit_request_line: usize,
    pub limit_request_fieldsize: usize,
    pub limit_request_fields: usize,
    pub listen_backlog: i32,
    /// Cap on concurrent client connections for the whole process.
    pub max_request_workers: usize,
    pub worker_threads: Option<usize>,
    pub cpu_affinity: bool,
    pub error_log: Option<PathBuf>,
    pub log_level: LogLevel,
    pub pid_file: Option<PathBuf>,
    /// `User` / `Group`: when started as root, run as these after binding the listeners.
    pub user: Option<String>,
    pub group: Option<String>,
    /// How long SIGTERM waits for in-flight requests.
    pub graceful_shutdown_timeout: Duration,
    /// `ProxyIOBufferSize`: read size while streaming bodies.
    pub io_buffer_size: usize,
    /// `IdleBuffers Release` (default): a connection waiting for its next request gives its
    /// read buffer back when it parks (`IdleParkAfter`), or at once when parking is off
    /// (then one readiness poll more per request); `Keep`: it keeps its read buffer and
    /// never parks (about 8 KiB more per idle connection).
    pub release_idle_buffers: bool,
    /// `IdleParkAfter`: a connection idle this long between requests moves to its worker's
    /// parking lot (its task freed, its socket watched by the worker's epoll set); `Off`:
    /// never. Only with `IdleBuffers Release`.
    pub idle_park_after: Option<Duration>,
    /// `SpliceThreshold`: a body with at least this many bytes left moves with splice(2);
    /// tunnels (WebSocket) always do (0 = never, tunnels included).
    pub splice_threshold: u64,
    /// `ProxyStatus On`: server-status shows balancers and members.
    pub proxy_status: bool,
    /// `BusyPolling`: how long a worker keeps polling for events after a request instead
    /// of sleeping in the kernel (see `busypoll`). `None`: Off (default); `Duration::MAX`:
    /// On, never sleep.
    pub busy_polling: Option<Duration>,
    /// `RequestReadTimeout` (mod_reqtimeout): deadlines for a request's head and body.
    pub read_timeouts: crate::reqtimeout::ReadTimeouts,
    /// `ProxyRequestBuffer`: a request body up to this many bytes is read whole before a
    /// member is chosen, so a slow client never holds a member's connection (0: off).
    pub request_buffer: usize,
}

impl Default for CoreSettings {
    fn default() -> Self {
        CoreSettings {
            timeout: Duration::from_secs(60),
            keepalive: true,
            keepalive_timeout: Duration::from_secs(5),
            max_keepalive_requests: 100,
            limit_request_line: DEFAULT_LIMIT_REQUEST_LINE,
            limit_request_fieldsize: DEFAULT_LIMIT_REQUEST_FIELDSIZE,
            limit_request_fields: DEFAULT_LIMIT_REQUEST_FIELDS,
            listen_backlog: 511,
            // Apache's event MPM default is 400 threads x AsyncRequestWorkerFactor; a
            // thread-per-core proxy is bounded by memory instead, so the default is high.
            max_request_workers: 100_000,
            worker_threads: None,
            cpu_affinity: true,
            error_log: None,
            log_level: LogLevel::Warn,
            pid_file: None,
            user: None,
            group: None,
            graceful_shutdown_timeout: Duration::from_secs(10),
            // Apache's default is 8 KiB; larger reads cost one buffer per streaming
            // connection and save system calls on large bodies.
            io_buffer_size: 64 * 1024,
            release_idle_buffers: true,
            splice_threshold: 64 * 1024,
            idle_park_after: Some(Duration::from_millis(250)),
            proxy_status: false,
            busy_polling: None,
            read_timeouts: crate::reqtimeout::ReadTimeouts::default(),
            // As large as the body that is sent with the head in one write anyway.
            request_buffer: 64 * 1024,
        }
    }
}

/// One `<VirtualHost>` (index 0 of [`Config::vhosts`] is the main server).
#[derive(Clone, Debug, Default)]
pub struct VirtualHost {
    /// Empty for the main server.
    pub addrs: Vec<VhostAddr>,
    pub server_name: Option<String>,
    pub aliases: Vec<String>,
    pub rules: Vec<ProxyRule>,
    pub reverse: Vec<ReverseRule>,
    pub cookie_domains: Vec<(String, String)>,
    pub cookie_paths: Vec<(String, String)>,
    pub preserve_host: bool,
    pub proxy_timeout: Option<Duration>,
    /// `<Location>` sections with a handler or access rules, in config order.
    pub locations: Vec<LocationRule>,
    /// Access rules of `<Proxy URL>` sections, in config order.
    pub proxy_access: Vec<ProxyAccess>,
    /// Some access rule of this host has `Require host`: the client's name is looked up.
    pub names_needed: bool,
    /// `RewriteEngine On` in this host (mod_rewrite does not inherit the main server's).
    pub rewrite_engine: bool,
    /// `RewriteRule`s (with their conditions), applied before ProxyPass rules.
    pub rewrites: Vec<RewriteRule>,
    /// `ProxyPassInherit` (default On): also use the main server's ProxyPass rules.
    pub inherit_rules: bool,
    /// `RequestHeader` and `Header` rules, in config order.
    pub request_headers: Vec<crate::http::headers::Rule>,
    pub response_headers: Vec<crate::http::headers::Rule>,
    /// Indexes into `Config::access_logs` of the logs this host writes.
    pub logs: Vec<usize>,
    /// How request paths are normalized before any rule sees them (`MergeSlashes`,
    /// `AllowEncodedSlashes`, `ServletDotSegments`).
    pub paths: crate::routing::normalize::PathPolicy,
    /// `TraceEnable`.
    pub trace: TraceEnable,
    pub loc: Option<Loc>,
}

/// `TraceEnable`: what a TRACE request gets (Apache's core and mod_proxy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TraceEnable {
    /// Apache's default: forwarded, but never with a body (413).
    #[default]
    On,
    /// 405, never forwarded.
    Off,
    /// Forwarded, with a body too.
    Extended,
}

/// What ringproxy serves itself at a `<Location>` (`SetHandler`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handler {
    ServerStatus,
    Metrics,
    BalancerManager,
}

impl LocationRule {
    /// Whether the section covers `path` (normalized): whole segments of a prefix, as
    /// Apache's location walk, or anywhere the regex matches.
    pub fn matches(&self, path: &[u8]) -> bool {
        match &self.regex {
            Some(re) => re.is_match(path),
            None => crate::routing::normalize::prefix_match(path, self.path.as_bytes()).is_some(),
        }
    }
}

impl Handler {
    /// The `SetHandler` word for it.
    pub fn name(self) -> &'static str {
        match self {
            Handler::ServerStatus => "server-status",
            Handler::Metrics => "metrics",
            Handler::BalancerManager => "balancer-manager",
        }
    }
}

#[derive(Clone, Debug)]
pub struct LocationRule {
    /// As written; `~re` for `<LocationMatch re>` / `<Location ~ re>`.
    pub path: String,
    /// The regex of a `<LocationMatch>`, matched against the normalized path's bytes.
    pub regex: Option<regex::bytes::Regex>,
    pub handler: Option<Handler>,
    /// Where `SetHandler` was given (for the warning when a ProxyPass takes the path).
    pub handler_loc: Option<Loc>,
    /// `None`: the section sets no access rules (an earlier matching one may).
    pub access: Option<crate::routing::access::Access>,
}

/// A `RewriteRule` of the supported subset: `[P]` (proxy, the WebSocket recipe), `[R]`,
/// `[F]`, `[G]`, with `RewriteCond` conditions on request headers and variables.
#[derive(Clone, Debug)]
pub struct RewriteRule {
    pub conds: Vec<RewriteCond>,
    /// Matched against the normalized URL path's bytes; `negate` for a `!pattern` (no
    /// back-references then).
    pub pattern: regex::bytes::Regex,
    pub negate: bool,
    pub action: RewriteAction,
    /// `[QSA]`: append the request's query to one in the substitution.
    pub qsa: bool,
    /// `[QSD]`: drop the request's query.
    pub qsd: bool,
    pub loc: Loc,
}

#[derive(Clone, Debug)]
pub enum RewriteAction {
    /// `[P]`: proxy to a balancer (or implicit one for a URL); `template` is the rest of the
    /// substitution after `scheme://authority`, with `$N` / `%N`.
    Proxy {
        balancer: usize,
        template: String,
    },
    /// `[R=code]`: redirect to the expanded substitution.
    Redirect {
        status: u16,
        template: String,
    },
    Forbidden,
    Gone,
}

#[derive(Clone, Debug)]
pub struct RewriteCond {
    pub test: RewriteVar,
    pub pattern: CondPattern,
    pub negate: bool,
    /// `[OR]`: this condition or the next one.
    pub or_next: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RewriteVar {
    /// `%{HTTP:Name}` or `%{HTTP_NAME}` (lower-cased name, `_` as `-`).
    Header(String),
    RequestUri,
    QueryString,
    RequestMethod,
}

#[derive(Clone, Debug)]
pub enum CondPattern {
    /// `=text` (lexical equality; `[NC]` folds case).
    Equals(String, bool),
    Regex(regex::Regex),
}

/// Access rules of one `<Proxy URL>` section (`<Proxy *>`, `<Proxy balancer://c>`,
/// `<Proxy http://host/path*>`): they apply to requests proxied to a matching URL.
#[derive(Clone, Debug)]
pub struct ProxyAccess {
    /// As written in the section, lower-cased; `*` matches any run of characters.
    pub pattern: String,
    pub access: crate::routing::access::Access,
}

impl ProxyAccess {
    /// Apache matches `<Proxy>` by prefix, with wildcards when the URL has any.
    pub fn matches(&self, url: &str) -> bool {
        glob_prefix(self.pattern.as_bytes(), url.as_bytes())
    }
}

/// Whether `pat` (with `*` wildcards) matches a prefix of `text`, ASCII case-insensitive.
/// Linear in both: the literal runs between stars are found leftmost, one after another
/// (for `*`-only patterns the leftmost place is always a right one), each with a
/// linear-time substring search. Trying every split at every star instead is polynomial
/// in the URL's length, which a client controls.
fn glob_prefix(pat: &[u8], text: &[u8]) -> bool {
    let text = text.to_ascii_lowercase();
    let pat = pat.to_ascii_lowercase();
    let mut parts = pat.split(|&b| b == b'*');
    let first = parts.next().unwrap_or_default();
    if !text.starts_with(first) {
        return false;
    }
    let mut at = first.len();
    for part in parts.filter(|p| !p.is_empty()) {
        match memchr::memmem::find(&text[at..], part) {
            Some(i) => at += i + part.len(),
            None => return false,
        }
    }
    true
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VhostAddr {
    pub ip: Option<IpAddr>,
    pub port: Option<u16>,
}

#[derive(Clone, Debug)]
pub enum Matcher {
    /// Whole segments of the normalized path (Apache's `alias_match`).
    Prefix(String),
    /// Over the normalized path's bytes, as Apache's PCRE sees them: a path that is not
    /// UTF-8 still matches (and an exclusion still excludes it).
    Regex(regex::bytes::Regex),
}

#[derive(Clone, Debug)]
pub enum Target {
    /// `ProxyPass PATH !`: not proxied.
    Exclude,
    /// Proxied to a balancer (or an implicit one-member balancer for a plain URL).
    /// `template` is the URL text after `scheme://authority`, possibly with `$N`.
    Backend {
        balancer: usize,
        template: String,
        noquery: bool,
        /// `nocanon`: forward the client's own spelling of the path; rules still match the
        /// normalized one.
        nocanon: bool,
    },
}

#[derive(Clone, Debug)]
pub struct ProxyRule {
    pub matcher: Matcher,
    pub target: Target,
    pub loc: Loc,
}

/// `ProxyPassReverse PATH URL` with balancer URLs already expanded to member URLs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReverseRule {
    pub path: String,
    pub url: String,
}

#[derive(Clone, Debug)]
pub struct Member {
    /// The member's URL as written, without trailing path (`http://host:port`).
    pub name: String,
    pub addr: SocketAddr,
    /// `Host` sent to this member when ProxyPreserveHost is Off.
    pub host_header: String,
    /// Path part of the member URL ("" or "/app"); prefixed to the forwarded path.
    pub path: String,
    pub params: MemberParams,
    pub loc: Loc,
}

#[derive(Clone, Debug)]
pub struct Balancer {
    /// `balancer://name`, or the worker URL for an implicit one-member balancer.
    pub name: String,
    /// True for plain `ProxyPass /x http://host/` targets.
    pub implicit: bool,
    pub members: Vec<Member>,
    pub params: BalancerParams,
    pub loc: Loc,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub listens: Vec<SocketAddr>,
    pub vhosts: Vec<VirtualHost>,
    pub balancers: Vec<Balancer>,
    pub core: CoreSettings,
    /// `ProxyHCExpr` conditions by name.
    pub hc_exprs: HashMap<String, crate::health::expr::Expr>,
    /// Every `CustomLog`, in config order.
    pub access_logs: Vec<crate::observe::accesslog::LogTarget>,
    pub warnings: Vec<String>,
    /// The name used where neither the host nor the main server has a `ServerName`
    /// (X-Forwarded-Server, logs, status pages), found as Apache finds it.
    pub default_server_name: String,
}

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
    "rewrite",
    "proxy_wstunnel",
    "reqtimeout",
];

/// Directives accepted for compatibility that have nothing to act on in ringproxy; each
/// produces a warning with its reason (README: directive table).
const IGNORED_DIRECTIVES: &[(&str, &str)] = &[
    (
        "serveradmin",
        "ringproxy serves no error pages that show it",
    ),
    (
        "documentroot",
        "ringproxy serves no files; unmatched paths answer 404",
    ),
    (
        "serverroot",
        "paths are relative to the config file's directory",
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
    ("enablesendfile", "ringproxy serves no files"),
    ("enablemmap", "ringproxy serves no files"),
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
    "asyncrequestworkerfactor",
    "minspareservers",
    "maxspareservers",
];

/// Every directive name the builder knows, for "did you mean".
const KNOWN_DIRECTIVES: &[&str] = &[
    "Listen",
    "ServerName",
    "ServerAlias",
    "ProxyRequests",
    "ProxyPass",
    "ProxyPassMatch",
    "ProxyPassReverse",
    "ProxyPassReverseCookieDomain",
    "ProxyPassReverseCookiePath",
    "ProxyPreserveHost",
    "ProxyTimeout",
    "ProxySet",
    "BalancerMember",
    "ProxyHCExpr",
    "ProxyStatus",
    "ExtendedStatus",
    "LogFormat",
    "CustomLog",
    "User",
    "Group",
    "Header",
    "RequestHeader",
    "SSLEngine",
    "SSLProxyEngine",
    "SSLCertificateFile",
    "SSLCertificateKeyFile",
    "ProxyPassInherit",
    "BalancerInherit",
    "BalancerGrowth",
    "BalancerPersist",
    "ProxyHCTemplate",
    "ProxyHCTPsize",
    "Timeout",
    "KeepAlive",
    "KeepAliveTimeout",
    "MaxKeepAliveRequests",
    "LimitRequestLine",
    "LimitRequestFieldSize",
    "LimitRequestFields",
    "ListenBacklog",
    "MaxRequestWorkers",
    "MaxClients",
    "ErrorLog",
    "LogLevel",
    "PidFile",
    "LoadModule",
    "WorkerThreads",
    "CpuAffinity",
    "GracefulShutdownTimeout",
    "ProxyIOBufferSize",
    "IdleBuffers",
    "IdleParkAfter",
    "SpliceThreshold",
    "BusyPolling",
    "MergeSlashes",
    "AllowEncodedSlashes",
    "ServletDotSegments",
    "TraceEnable",
    "RequestReadTimeout",
    "ProxyRequestBuffer",
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
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Config, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let nodes = lexer::parse_file(path, &mut errors);
    build(&nodes, opts, errors, Arc::from(path.display().to_string()))
}

/// Loads configuration from text (used by the demo and by tests). `name` is used in errors.
pub fn load_str(text: &str, name: &str, opts: &LoadOptions) -> Result<Config, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let base = std::env::current_dir().unwrap_or_default();
    let nodes = lexer::parse_text(text, Arc::from(name), &base, 0, &mut errors);
    build(&nodes, opts, errors, Arc::from(name))
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
}

fn build(
    nodes: &[Node],
    opts: &LoadOptions,
    errors: Vec<ConfigError>,
    main_file: Arc<str>,
) -> Result<Config, Vec<ConfigError>> {
    let mut b = Builder {
        main_file,
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

    fn warn(&mut self, loc: &Loc, msg: impl AsRef<str>) {
        self.warnings.push(format!("{loc}: {}", msg.as_ref()));
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
            "ifmodule" => {
                let Some(arg) = s.args.first() else {
                    return self.err(&s.loc, "<IfModule> needs a module name");
                };
                let (negate, name) = match arg.strip_prefix('!') {
                    Some(n) => (true, n),
                    None => (false, arg.as_str()),
                };
                if module_provided(name) != negate {
                    self.walk(&s.children, ctx);
                }
            }
            "ifdefine" => {
                let Some(arg) = s.args.first() else {
                    return self.err(&s.loc, "<IfDefine> needs a parameter name");
                };
                let (negate, name) = match arg.strip_prefix('!') {
                    Some(n) => (true, n),
                    None => (false, arg.as_str()),
                };
                if self.opts.defines.iter().any(|d| d == name) != negate {
                    self.walk(&s.children, ctx);
                }
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
                let idx = self.vhosts.len() - 1;
                self.walk(&s.children, Ctx::Server(idx));
            }
            "proxy" | "proxymatch" => {
                let Some(url) = s.args.first() else {
                    return self.err(&s.loc, "<Proxy> needs a URL");
                };
                let vh = ctx.vhost();
                if url.to_ascii_lowercase().starts_with("balancer://") {
                    let Some(name) = balancer_name(url) else {
                        return self.err(&s.loc, format!("bad balancer URL '{url}'"));
                    };
                    let idx = self.balancer_index(&name, &s.loc);
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
        let full = format!("balancer://{name}");
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
                _ => self.err(
                    loc,
                    format!("{} is not supported inside <Location>", d.name),
                ),
            };
        }
        let in_vhost = vh != 0;
        match name.as_str() {
            "listen" => {
                if in_vhost {
                    return self.err(loc, "Listen is not allowed inside <VirtualHost>");
                }
                // `Listen 443 https`: a protocol other than http would be served as plain
                // HTTP, which the admin did not ask for.
                match args.get(1).map(|p| p.to_ascii_lowercase()).as_deref() {
                    None | Some("http") => {}
                    Some("https") => {
                        return self.err(
                            loc,
                            format!(
                                "Listen {} {}: TLS is not available yet, and ringproxy will not serve this port as plain HTTP",
                                args[0], args[1]
                            ),
                        )
                    }
                    Some(_) => {
                        return self.err(
                            loc,
                            format!(
                                "Listen {} {}: unknown protocol '{}' (ringproxy serves http)",
                                args[0], args[1], args[1]
                            ),
                        )
                    }
                }
                if args.len() > 2 {
                    return self.err(loc, "Listen takes [ip:]port [protocol]");
                }
                match args.first().map(|a| parse_listen(a)) {
                    Some(Ok(addrs)) => {
                        for a in addrs {
                            if !self.listens.contains(&a) {
                                self.listens.push(a);
                            }
                        }
                    }
                    Some(Err(m)) => self.err(loc, m),
                    None => self.err(loc, "Listen needs an address or port"),
                }
            }
            "servername" => match args.first() {
                // `ServerName host:port` and `ServerName scheme://host:port` are accepted.
                Some(n) => {
                    let n = n.split("://").last().unwrap_or(n);
                    self.vhosts[vh].server_name = Some(n.to_string());
                }
                None => self.err(loc, "ServerName needs a name"),
            },
            "serveralias" => self.vhosts[vh].aliases.extend(args.iter().cloned()),
            "proxyrequests" => {
                if self.one_flag(d) == Some(true) {
                    self.err(
                        loc,
                        "ProxyRequests On: ringproxy is never a forward proxy (an open proxy is a security risk); remove it or set Off",
                    );
                }
            }
            "proxypass" | "proxypassmatch" => self.proxy_pass(d, vh, name == "proxypassmatch"),
            "rewriteengine" => {
                if let Some(on) = self.one_flag(d) {
                    self.vhosts[vh].rewrite_engine = on;
                }
            }
            "rewritecond" => self.rewrite_cond(d),
            "rewriterule" => self.rewrite_rule(d, vh),
            "rewriteoptions" | "rewritebase" | "rewritemap" => self.err(
                loc,
                format!(
                    "{}: not supported (ringproxy's mod_rewrite subset is RewriteEngine, RewriteCond and RewriteRule with [P], [R], [F], [G])",
                    d.name
                ),
            ),
            "proxypassreverse" => {
                let clean: Vec<&String> = args.iter().filter(|a| *a != "interpolate").collect();
                if clean.len() != args.len() {
                    return self.err(loc, "ProxyPassReverse interpolate is not supported");
                }
                match clean.as_slice() {
                    [path, url] => self.reverses.push(PendingReverse {
                        vhost: vh,
                        path: path.to_string(),
                        url: url.to_string(),
                        loc: loc.clone(),
                    }),
                    _ => self.err(loc, "ProxyPassReverse takes PATH URL"),
                }
            }
            "proxypassreversecookiedomain" | "proxypassreversecookiepath" => {
                match args.as_slice() {
                    [internal, public] => {
                        let pair = (internal.clone(), public.clone());
                        if name.ends_with("domain") {
                            self.vhosts[vh].cookie_domains.push(pair);
                        } else {
                            self.vhosts[vh].cookie_paths.push(pair);
                        }
                    }
                    _ => self.err(loc, format!("{} takes INTERNAL PUBLIC", d.name)),
                }
            }
            "mergeslashes" => {
                if let Some(on) = self.one_flag(d) {
                    self.vhosts[vh].paths.merge_slashes = on;
                    self.vhost_set[vh].merge_slashes = true;
                }
            }
            "allowencodedslashes" => {
                use crate::routing::normalize::EncodedSlashes;
                let v = match args.as_slice() {
                    [v] if v.eq_ignore_ascii_case("off") => EncodedSlashes::Off,
                    [v] if v.eq_ignore_ascii_case("on") => EncodedSlashes::On,
                    [v] if v.eq_ignore_ascii_case("nodecode") => EncodedSlashes::NoDecode,
                    _ => return self.err(loc, "AllowEncodedSlashes takes On, Off or NoDecode"),
                };
                self.vhosts[vh].paths.encoded_slashes = v;
                self.vhost_set[vh].encoded_slashes = true;
            }
            "servletdotsegments" => {
                let v = match args.as_slice() {
                    [v] if v.eq_ignore_ascii_case("refuse") => false,
                    [v] if v.eq_ignore_ascii_case("allow") => true,
                    _ => return self.err(loc, "ServletDotSegments takes Refuse or Allow"),
                };
                self.vhosts[vh].paths.servlet_dot_segments = v;
                self.vhost_set[vh].servlet_dot_segments = true;
            }
            "traceenable" => {
                let v = match args.as_slice() {
                    [v] if v.eq_ignore_ascii_case("on") => TraceEnable::On,
                    [v] if v.eq_ignore_ascii_case("off") => TraceEnable::Off,
                    [v] if v.eq_ignore_ascii_case("extended") => TraceEnable::Extended,
                    _ => return self.err(loc, "TraceEnable takes On, Off or Extended"),
                };
                self.vhosts[vh].trace = v;
                self.vhost_set[vh].trace = true;
            }
            "proxypreservehost" => {
                if let Some(v) = self.one_flag(d) {
                    self.vhosts[vh].preserve_host = v;
                    self.vhost_set[vh].preserve_host = true;
                }
            }
            "proxytimeout" => {
                if let Some(t) = self.one_duration(d) {
                    self.vhosts[vh].proxy_timeout = Some(t);
                }
            }
            "proxyset" => self.proxy_set(d, ctx),
            "logformat" => match args.as_slice() {
                [fmt] | [fmt, _] => match crate::observe::accesslog::parse_format(fmt) {
                    Ok(_) => {
                        let nick = args.get(1).cloned().unwrap_or_else(|| "default".into());
                        self.log_formats.insert(nick, fmt.clone());
                    }
                    Err(m) => self.err(loc, format!("LogFormat: {m}")),
                },
                _ => self.err(loc, "LogFormat takes a format and an optional nickname"),
            },
            "customlog" => match args.as_slice() {
                [path, fmt, rest @ ..] => {
                    if path.starts_with('|') {
                        return self.err(
                            loc,
                            "CustomLog to a pipe is not supported; give a file path",
                        );
                    }
                    if !rest.is_empty() {
                        return self.err(
                            loc,
                            format!("CustomLog condition '{}' is not supported", rest.join(" ")),
                        );
                    }
                    let text = self
                        .log_formats
                        .get(fmt)
                        .cloned()
                        .unwrap_or_else(|| fmt.clone());
                    match crate::observe::accesslog::parse_format(&text) {
                        Ok(format) => {
                            self.access_logs.push(crate::observe::accesslog::LogTarget {
                                path: PathBuf::from(path),
                                format,
                            });
                            let i = self.access_logs.len() - 1;
                            self.vhosts[vh].logs.push(i);
                        }
                        Err(m) => self.err(loc, format!("CustomLog: {m}")),
                    }
                }
                _ => self.err(loc, "CustomLog takes a file and a format or nickname"),
            },
            "proxystatus" => match args.as_slice() {
                [v] if v.eq_ignore_ascii_case("on") || v.eq_ignore_ascii_case("full") => {
                    self.core.proxy_status = true
                }
                [v] if v.eq_ignore_ascii_case("off") => self.core.proxy_status = false,
                _ => self.err(loc, "ProxyStatus takes On, Off or Full"),
            },
            "extendedstatus" => {
                if self.one_flag(d) == Some(false) {
                    self.warn(
                        loc,
                        "ExtendedStatus Off: ringproxy always keeps the extended counters (they are per core and cheap)",
                    );
                }
            }
            "proxyhcexpr" => match args.split_first() {
                Some((name, rest)) if !rest.is_empty() => {
                    match crate::health::expr::parse(&rest.join(" ")) {
                        Ok(e) => {
                            self.hc_exprs.insert(name.clone(), e);
                        }
                        Err(m) => self.err(loc, format!("ProxyHCExpr {name}: {m}")),
                    }
                }
                _ => self.err(loc, "ProxyHCExpr takes NAME {expression}"),
            },
            "proxyhctemplate" => match args.split_first() {
                Some((name, rest)) if !rest.is_empty() => {
                    let mut scratch = MemberParams::default();
                    let mut kvs = Vec::new();
                    for a in rest {
                        let Some((k, v)) = self.split_kv(loc, a) else {
                            continue;
                        };
                        match scratch.apply(&k, v) {
                            Ok(true) if k.starts_with("hc") => kvs.push((k, v.to_string())),
                            Ok(_) => {
                                let hint = did_you_mean(&k, params::MEMBER_KEYS);
                                self.err(
                                    loc,
                                    format!(
                                        "ProxyHCTemplate takes hc* parameters, not '{k}'{hint}"
                                    ),
                                );
                            }
                            Err(m) => self.err(loc, m),
                        }
                    }
                    self.hc_templates.insert(name.clone(), kvs);
                }
                _ => self.err(loc, "ProxyHCTemplate takes NAME key=value ..."),
            },
            "proxyhctpsize" => {
                if self.one_num(d, 0, 100_000).is_some() {
                    self.warn(
                        loc,
                        "ProxyHCTPsize ignored: health checks run on one event loop, not a thread pool",
                    );
                }
            }
            "balancermember" => self.balancer_member(d, ctx),
            "timeout" => {
                if let Some(t) = self.one_duration(d) {
                    self.core.timeout = t;
                    self.vhost_wide_note(d, in_vhost);
                }
            }
            "keepalive" => {
                if let Some(v) = self.one_flag(d) {
                    self.core.keepalive = v;
                    self.vhost_wide_note(d, in_vhost);
                }
            }
            "keepalivetimeout" => {
                if let Some(t) = self.one_duration(d) {
                    self.core.keepalive_timeout = t;
                    self.vhost_wide_note(d, in_vhost);
                }
            }
            "maxkeepaliverequests" => {
                if let Some(n) = self.one_num(d, 0, u32::MAX as u64) {
                    self.core.max_keepalive_requests = n as u32;
                    self.vhost_wide_note(d, in_vhost);
                }
            }
            "limitrequestline" => {
                if let Some(n) = self.one_num(d, 1, 1 << 20) {
                    self.core.limit_request_line = n as usize;
                }
            }
            "limitrequestfieldsize" => {
                if let Some(n) = self.one_num(d, 1, 1 << 20) {
                    self.core.limit_request_fieldsize = n as usize;
                }
            }
            "limitrequestfields" => {
                if let Some(n) = self.one_num(d, 1, 10_000) {
                    self.core.limit_request_fields = n as usize;
                }
            }
            "listenbacklog" => {
                if let Some(n) = self.one_num(d, 1, i32::MAX as u64) {
                    self.core.listen_backlog = n as i32;
                }
            }
            "maxrequestworkers" | "maxclients" => {
                if let Some(n) = self.one_num(d, 1, 10_000_000) {
                    self.core.max_request_workers = n as usize;
                }
            }
            "workerthreads" => {
                if let Some(n) = self.one_num(d, 1, 4096) {
                    self.core.worker_threads = Some(n as usize);
                }
            }
            "cpuaffinity" => {
                if let Some(v) = self.one_flag(d) {
                    self.core.cpu_affinity = v;
                }
            }
            "idlebuffers" => match args.as_slice() {
                [v] if v.eq_ignore_ascii_case("release") => self.core.release_idle_buffers = true,
                [v] if v.eq_ignore_ascii_case("keep") => self.core.release_idle_buffers = false,
                _ => self.err(loc, "IdleBuffers takes Release or Keep"),
            },
            "idleparkafter" => match d.args.as_slice() {
                [v] if v.eq_ignore_ascii_case("off") => self.core.idle_park_after = None,
                _ => {
                    if let Some(t) = self.one_duration(d) {
                        self.core.idle_park_after = Some(t);
                    }
                }
            },
            "busypolling" => match d.args.as_slice() {
                [v] if v.eq_ignore_ascii_case("off") => self.core.busy_polling = None,
                [v] if v.eq_ignore_ascii_case("on") => self.core.busy_polling = Some(Duration::MAX),
                // Microseconds too: a window just long enough to catch the backend's
                // answer costs a fraction of a core where a millisecond would cost all of
                // it (bench/RESULTS.md, busy polling).
                [v] => match params::parse_fine_duration(v) {
                    Ok(t) => self.core.busy_polling = (!t.is_zero()).then_some(t),
                    Err(m) => self.err(&d.loc, format!("{}: {m}", d.name)),
                },
                _ => self.err(&d.loc, format!("{} takes one argument", d.name)),
            },
            "splicethreshold" => {
                if let Some(n) = self.one_num(d, 0, u64::MAX >> 1) {
                    self.core.splice_threshold = n;
                }
            }
            "requestreadtimeout" => {
                match crate::reqtimeout::parse(args, self.core.read_timeouts) {
                    Ok(t) => self.core.read_timeouts = t,
                    Err(m) => return self.err(loc, format!("RequestReadTimeout: {m}")),
                }
                self.vhost_wide_note(d, in_vhost);
            }
            "proxyrequestbuffer" => {
                if let Some(n) = self.one_num(d, 0, 64 << 20) {
                    self.core.request_buffer = n as usize;
                    self.vhost_wide_note(d, in_vhost);
                }
            }
            "proxyiobuffersize" => {
                if let Some(n) = self.one_num(d, 512, 16 << 20) {
                    self.core.io_buffer_size = n as usize;
                }
            }
            "gracefulshutdowntimeout" => {
                if let Some(t) = self.one_duration(d) {
                    self.core.graceful_shutdown_timeout = t;
                }
            }
            "errorlog" => match args.as_slice() {
                [p] if p.starts_with('|') || p.starts_with("syslog") => self.err(
                    loc,
                    "ErrorLog to a pipe or syslog is not supported; give a file path",
                ),
                [p] => self.core.error_log = Some(PathBuf::from(p)),
                _ => self.err(loc, "ErrorLog takes one path"),
            },
            "loglevel" => self.log_level(d),
            "user" | "group" => match args.as_slice() {
                [_] if in_vhost => self.err(
                    loc,
                    format!("{} is not allowed inside <VirtualHost>", d.name),
                ),
                [v] => {
                    if name == "user" {
                        self.core.user = Some(v.clone());
                    } else {
                        self.core.group = Some(v.clone());
                    }
                }
                _ => self.err(loc, format!("{} takes one name", d.name)),
            },
            "sslengine" | "sslproxyengine" => {
                if self.one_flag(d) == Some(true) {
                    let what = if name == "sslengine" {
                        "SSLEngine On: TLS termination is not available yet; ringproxy refuses this host rather than serve it as plain HTTP (terminate TLS in front of ringproxy, or remove the host)"
                    } else {
                        "SSLProxyEngine On: TLS to backends is not available yet; use http:// members"
                    };
                    self.err(loc, what);
                }
            }
            n if n.starts_with("ssl") => {
                self.warn(
                    loc,
                    format!(
                        "{} ignored: TLS is not available yet (no SSLEngine On here)",
                        d.name
                    ),
                );
            }
            "header" | "requestheader" => {
                match crate::http::headers::parse(args, name == "header") {
                    Ok(rule) => {
                        if name == "header" {
                            self.vhosts[vh].response_headers.push(rule);
                        } else {
                            self.vhosts[vh].request_headers.push(rule);
                        }
                    }
                    Err(m) => self.err(loc, format!("{}: {m}", d.name)),
                }
            }
            "proxypassinherit" => {
                if let Some(v) = self.one_flag(d) {
                    self.vhosts[vh].inherit_rules = v;
                }
            }
            "balancerinherit" => {
                if self.one_flag(d) == Some(false) {
                    self.warn(
                        loc,
                        "BalancerInherit Off: balancers are defined once for the whole server in ringproxy; every host can use every balancer",
                    );
                }
            }
            "balancergrowth" => {
                if self.one_num(d, 0, 1000).is_some() {
                    self.warn(
                        loc,
                        "BalancerGrowth ignored: balancer-manager can add members without a preallocated limit",
                    );
                }
            }
            "balancerpersist" => {
                if self.one_flag(d) == Some(true) {
                    self.warn(
                        loc,
                        "BalancerPersist On: balancer-manager changes last until the process stops; ringproxy does not keep them across restarts",
                    );
                }
            }
            "pidfile" => match args.as_slice() {
                [p] => self.core.pid_file = Some(PathBuf::from(p)),
                _ => self.err(loc, "PidFile takes one path"),
            },
            "loadmodule" => match args.as_slice() {
                [module, _path] => {
                    let short = module.trim_end_matches("_module");
                    if !PROVIDED_MODULES.contains(&short) {
                        self.warn(
                            loc,
                            format!("LoadModule {module}: ringproxy does not provide this module; ignored"),
                        );
                    }
                }
                _ => self.err(loc, "LoadModule takes a module name and a path"),
            },
            n if MPM_NO_MEANING.contains(&n) => {
                if self.one_num(d, 0, u32::MAX as u64).is_some() {
                    self.warn(
                        loc,
                        format!(
                            "{} has no meaning in ringproxy (one worker thread per core; see WorkerThreads)",
                            d.name
                        ),
                    );
                }
            }
            n => {
                if let Some((_, why)) = IGNORED_DIRECTIVES.iter().find(|(k, _)| *k == n) {
                    let why = *why;
                    self.warn(loc, format!("{} ignored: {why}", d.name));
                } else {
                    let hint = did_you_mean(&d.name, KNOWN_DIRECTIVES);
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

    /// A `SetHandler` page whose path a ProxyPass also takes is proxied, as in Apache
    /// (mod_proxy's handler runs first there). That is rarely what the admin meant, so say
    /// which rule takes it and how to keep the page.
    fn warn_shadowed_handlers(&mut self) {
        let mut found = Vec::new();
        for v in &self.vhosts {
            for l in &v.locations {
                let (Some(h), Some(at), None) = (l.handler, &l.handler_loc, &l.regex) else {
                    continue;
                };
                let covering = v.rules.iter().find(|r| match &r.matcher {
                    Matcher::Prefix(p) => {
                        crate::routing::normalize::prefix_match(l.path.as_bytes(), p.as_bytes())
                            .is_some()
                    }
                    Matcher::Regex(re) => re.is_match(l.path.as_bytes()),
                });
                if let Some(r) = covering.filter(|r| !matches!(r.target, Target::Exclude)) {
                    found.push((
                        at.clone(),
                        format!(
                            "<Location {p}> SetHandler {h}: ProxyPass at {rule} also takes {p}, so it is proxied (as in Apache); add 'ProxyPass {p} !' before that line to serve the page",
                            p = l.path,
                            h = h.name(),
                            rule = r.loc,
                        ),
                    ));
                }
            }
        }
        for (at, msg) in found {
            if !self.warnings.iter().any(|w| w.ends_with(&msg)) {
                self.warn(&at, msg);
            }
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

    /// `RewriteCond TestString CondPattern [flags]`, kept for the next RewriteRule.
    fn rewrite_cond(&mut self, d: &Directive) {
        let loc = &d.loc;
        let (test, pattern, flags) = match d.args.as_slice() {
            [t, p] => (t, p, None),
            [t, p, f] => (t, p, Some(f)),
            _ => return self.err(loc, "RewriteCond takes TestString CondPattern [flags]"),
        };
        // `get(..5)` rather than slicing: a name may hold any character, and byte 5 may
        // fall inside one (found by the rewrite fuzz target). Header names are tokens.
        let header = |v: &str, prefix: &str| -> Option<String> {
            let name = v
                .get(..prefix.len())
                .filter(|p| p.eq_ignore_ascii_case(prefix))
                .and_then(|_| v.get(prefix.len()..))?;
            params::is_token(name).then(|| name.to_ascii_lowercase())
        };
        let var = match test.strip_prefix("%{").and_then(|t| t.strip_suffix('}')) {
            Some(v) if header(v, "HTTP:").is_some() => {
                RewriteVar::Header(header(v, "HTTP:").unwrap_or_default())
            }
            Some(v) if v.eq_ignore_ascii_case("REQUEST_URI") => RewriteVar::RequestUri,
            Some(v) if v.eq_ignore_ascii_case("QUERY_STRING") => RewriteVar::QueryString,
            Some(v) if v.eq_ignore_ascii_case("REQUEST_METHOD") => RewriteVar::RequestMethod,
            Some(v) if header(v, "HTTP_").is_some() => {
                RewriteVar::Header(header(v, "HTTP_").unwrap_or_default().replace('_', "-"))
            }
            _ => {
                return self.err(
                    loc,
                    format!("RewriteCond {test}: supported test strings are %{{HTTP:Header}}, %{{HTTP_HOST}} (and other HTTP_*), %{{REQUEST_URI}}, %{{QUERY_STRING}}, %{{REQUEST_METHOD}}"),
                )
            }
        };
        let (mut nc, mut or_next) = (false, false);
        if let Some(f) = flags {
            let Some(inner) = f.strip_prefix('[').and_then(|f| f.strip_suffix(']')) else {
                return self.err(
                    loc,
                    format!("RewriteCond flags '{f}' must be in [brackets]"),
                );
            };
            for flag in inner.split(',') {
                match flag.trim().to_ascii_lowercase().as_str() {
                    "nc" | "nocase" => nc = true,
                    "or" | "ornext" => or_next = true,
                    other => {
                        return self.err(
                            loc,
                            format!("RewriteCond flag '{other}' is not supported (NC and OR are)"),
                        )
                    }
                }
            }
        }
        let (negate, pat) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern.as_str()),
        };
        let pattern = if let Some(text) = pat.strip_prefix('=') {
            CondPattern::Equals(text.trim_matches('"').to_string(), nc)
        } else if pat.starts_with('-') || pat.starts_with('<') || pat.starts_with('>') {
            return self.err(
                loc,
                format!("RewriteCond {pat}: file tests and comparisons are not supported (regex and =text are)"),
            );
        } else {
            let src = if nc {
                format!("(?i){pat}")
            } else {
                pat.to_string()
            };
            match regex::Regex::new(&src) {
                Ok(r) => CondPattern::Regex(r),
                Err(e) => return self.err(loc, format!("RewriteCond: bad regex: {e}")),
            }
        };
        self.pending_conds.push(RewriteCond {
            test: var,
            pattern,
            negate,
            or_next,
        });
    }

    /// `RewriteRule Pattern Substitution [flags]` (server or virtual host context).
    fn rewrite_rule(&mut self, d: &Directive, vh: usize) {
        let loc = &d.loc;
        let conds = std::mem::take(&mut self.pending_conds);
        let (pattern, subst, flags) = match d.args.as_slice() {
            [p, s] => (p, s, None),
            [p, s, f] => (p, s, Some(f)),
            _ => return self.err(loc, "RewriteRule takes Pattern Substitution [flags]"),
        };
        let (mut nc, mut proxy, mut redirect, mut forbidden, mut gone) =
            (false, false, None, false, false);
        let (mut qsa, mut qsd) = (false, false);
        if let Some(f) = flags {
            let Some(inner) = f.strip_prefix('[').and_then(|f| f.strip_suffix(']')) else {
                return self.err(
                    loc,
                    format!("RewriteRule flags '{f}' must be in [brackets]"),
                );
            };
            for flag in inner.split(',') {
                let flag = flag.trim();
                let lower = flag.to_ascii_lowercase();
                match lower.as_str() {
                    "nc" | "nocase" => nc = true,
                    "p" | "proxy" => proxy = true,
                    "f" | "forbidden" => forbidden = true,
                    "g" | "gone" => gone = true,
                    "qsa" | "qsappend" => qsa = true,
                    "qsd" | "qsdiscard" => qsd = true,
                    // Every supported action ends rule processing; ringproxy forwards paths
                    // as received, so there is no escaping to turn off.
                    "l" | "last" | "end" | "ne" | "noescape" => {}
                    "r" | "redirect" => redirect = Some(302),
                    _ if lower.starts_with("r=") || lower.starts_with("redirect=") => {
                        let v = lower.split_once('=').map(|x| x.1).unwrap_or("");
                        let code = match v {
                            "permanent" => Some(301),
                            "temp" => Some(302),
                            "seeother" => Some(303),
                            n => n.parse::<u16>().ok().filter(|c| (300..400).contains(c)),
                        };
                        match code {
                            Some(c) => redirect = Some(c),
                            None => return self.err(loc, format!("RewriteRule [{flag}]: bad redirect status")),
                        }
                    }
                    _ => {
                        return self.err(
                            loc,
                            format!("RewriteRule flag '{flag}' is not supported (P, R, F, G, L, NC, NE, QSA, QSD, END are)"),
                        )
                    }
                }
            }
        }
        let (negate, pat) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern.as_str()),
        };
        let src = if nc {
            format!("(?i){pat}")
        } else {
            pat.to_string()
        };
        let regex = match path_regex(&src) {
            Ok(r) => r,
            Err(e) => return self.err(loc, format!("RewriteRule: bad regex: {e}")),
        };
        if subst.contains("%{") {
            return self.err(
                loc,
                "RewriteRule: %{VAR} in the substitution is not supported ($N and %N are)",
            );
        }
        let mut pending_proxy = None;
        let action = if forbidden {
            RewriteAction::Forbidden
        } else if gone {
            RewriteAction::Gone
        } else if proxy {
            let lower = subst.to_ascii_lowercase();
            let target = if lower.starts_with("balancer://") {
                match balancer_name(subst) {
                    Some(name) if !name.contains('$') && !name.contains('%') => {
                        let template = subst["balancer://".len() + name.len()..].to_string();
                        (format!("balancer://{name}"), template)
                    }
                    _ => return self.err(loc, format!("RewriteRule [P]: bad balancer URL '{subst}' (the name cannot come from $N)")),
                }
            } else if let Some(p) = ["http://", "ws://"].iter().find(|p| lower.starts_with(**p)) {
                let rest = &subst[p.len()..];
                let (authority, template) = match rest.find('/') {
                    Some(i) => (&rest[..i], rest[i..].to_string()),
                    None => (rest, String::new()),
                };
                if authority.contains('$') || authority.contains('%') {
                    return self.err(
                        loc,
                        "RewriteRule [P]: a backend host built from $N or %N is not supported; name the host (or a balancer://) in the substitution",
                    );
                }
                (format!("{}{authority}", &lower[..p.len()]), template)
            } else {
                let hint = if lower.starts_with("wss://") || lower.starts_with("https://") {
                    "TLS to backends is not available yet; use http:// or ws://"
                } else {
                    "the substitution must be an http://, ws:// or balancer:// URL"
                };
                return self.err(loc, format!("RewriteRule [P] {subst}: {hint}"));
            };
            pending_proxy = Some(target);
            RewriteAction::Proxy {
                balancer: usize::MAX,
                template: String::new(),
            }
        } else if let Some(status) = redirect {
            RewriteAction::Redirect {
                status,
                template: subst.clone(),
            }
        } else {
            return self.err(
                loc,
                format!(
                    "RewriteRule {pattern} {subst}: only [P], [R], [F] and [G] rules are supported; for a WebSocket backend write `ProxyPass /path ws://host/path` or add upgrade=websocket to the ProxyPass line"
                ),
            );
        };
        self.rewrites.push(PendingRewrite {
            vhost: vh,
            rule: RewriteRule {
                conds,
                pattern: regex,
                negate,
                action,
                qsa,
                qsd,
                loc: loc.clone(),
            },
            proxy: pending_proxy,
        });
    }

    /// A ProxyPass or RewriteRule [P] target name: a defined balancer, or an implicit one
    /// for a worker URL.
    fn resolve_target(&mut self, name: &str, loc: &Loc) -> Option<usize> {
        if name.starts_with("balancer://") {
            let found = self
                .balancers
                .iter()
                .position(|b| !b.implicit && b.name.eq_ignore_ascii_case(name));
            if found.is_none() {
                self.err(
                    loc,
                    format!(
                        "{name} is not defined (no <Proxy {name}> block or BalancerMember for it)"
                    ),
                );
            }
            found
        } else {
            self.implicit_balancer(name, loc)
        }
    }

    /// [`member_from_url`] with the loader's resolver.
    fn member_from_url(&self, url: &str, loc: &Loc) -> Result<Member, ConfigError> {
        match self.opts.resolve {
            Some(resolve) => parse_member_url(url, loc, &resolve),
            None => member_from_url(url, loc),
        }
    }

    fn proxy_pass(&mut self, d: &Directive, vh: usize, is_match: bool) {
        let loc = &d.loc;
        let [path, url, rest @ ..] = d.args.as_slice() else {
            return self.err(loc, format!("{} takes PATH URL [key=value ...]", d.name));
        };
        let matcher = if is_match {
            match path_regex(path) {
                Ok(r) => Matcher::Regex(r),
                Err(e) => return self.err(loc, format!("{}: bad regex: {e}", d.name)),
            }
        } else {
            Matcher::Prefix(path.clone())
        };
        if url == "!" {
            self.rules.push(PendingRule {
                vhost: vh,
                matcher,
                target: None,
                params: Vec::new(),
                noquery: false,
                nocanon: false,
                loc: loc.clone(),
            });
            return;
        }
        let mut params = Vec::new();
        let mut noquery = false;
        let mut nocanon = false;
        for a in rest {
            match a.to_ascii_lowercase().as_str() {
                "nocanon" => {
                    nocanon = true;
                    continue;
                }
                "noquery" => {
                    noquery = true;
                    continue;
                }
                "interpolate" => {
                    self.err(loc, "ProxyPass interpolate is not supported");
                    continue;
                }
                _ => {}
            }
            if let Some((k, v)) = self.split_kv(loc, a) {
                params.push((k, v.to_string()));
            }
        }
        let lower = url.to_ascii_lowercase();
        let target = if lower.starts_with("balancer://") {
            let Some(name) = balancer_name(url) else {
                return self.err(loc, format!("bad balancer URL '{url}'"));
            };
            if name.contains('$') {
                return self.err(loc, "a balancer name built from $N is not supported");
            }
            let template = url["balancer://".len() + name.len()..].to_string();
            (format!("balancer://{name}"), template)
        } else if let Some((scheme, rest)) = ["http://", "ws://"]
            .iter()
            .find(|p| lower.starts_with(**p))
            .map(|p| (&url[..p.len()], &url[p.len()..]))
        {
            let (authority, template) = match rest.find('/') {
                Some(i) => (&rest[..i], rest[i..].to_string()),
                None => (rest, String::new()),
            };
            if authority.contains('$') {
                return self.err(loc, "a backend host built from $N is not supported");
            }
            (
                format!("{}{authority}", scheme.to_ascii_lowercase()),
                template,
            )
        } else {
            let scheme = url.split("://").next().unwrap_or(url);
            return self.err(
                loc,
                format!(
                    "{}: backend scheme '{scheme}' is not supported (http://, ws:// and balancer:// are)",
                    d.name
                ),
            );
        };
        self.rules.push(PendingRule {
            vhost: vh,
            matcher,
            target: Some(target),
            params,
            noquery,
            nocanon,
            loc: loc.clone(),
        });
    }

    fn proxy_set(&mut self, d: &Directive, ctx: Ctx) {
        let loc = &d.loc;
        let (bidx, kvs) = match ctx {
            Ctx::Balancer(_, b) => (Some(b), &d.args[..]),
            _ => match d.args.split_first() {
                Some((url, rest)) if url.to_ascii_lowercase().starts_with("balancer://") => {
                    match balancer_name(url) {
                        Some(n) => (Some(self.balancer_index(&n, loc)), rest),
                        None => return self.err(loc, format!("bad balancer URL '{url}'")),
                    }
                }
                _ => (None, &d.args[..]),
            },
        };
        let Some(bidx) = bidx else {
            return self.err(
                loc,
                "ProxySet outside <Proxy balancer://…> must name a balancer:// URL first",
            );
        };
        if kvs.is_empty() {
            return self.err(loc, "ProxySet needs key=value parameters");
        }
        for a in kvs {
            let Some((k, v)) = self.split_kv(loc, a) else {
                continue;
            };
            self.apply_balancer_param(bidx, &k, v, loc);
        }
    }

    fn apply_balancer_param(&mut self, bidx: usize, k: &str, v: &str, loc: &Loc) {
        match self.balancers[bidx].params.apply(k, v) {
            Ok(true) => {}
            Ok(false) => {
                let mut all: Vec<&str> = params::BALANCER_KEYS.to_vec();
                all.extend_from_slice(params::MEMBER_KEYS);
                let hint = did_you_mean(k, &all);
                self.err(loc, format!("unknown balancer parameter '{k}'{hint}"));
            }
            Err(m) => self.err(loc, m),
        }
    }

    fn balancer_member(&mut self, d: &Directive, ctx: Ctx) {
        let loc = &d.loc;
        let (bidx, rest) =
            match ctx {
                Ctx::Balancer(_, b) => (b, &d.args[..]),
                _ => match d.args.split_first() {
                    Some((url, rest)) if url.to_ascii_lowercase().starts_with("balancer://") => {
                        match balancer_name(url) {
                            Some(n) => (self.balancer_index(&n, loc), rest),
                            None => return self.err(loc, format!("bad balancer URL '{url}'")),
                        }
                    }
                    _ => return self.err(
                        loc,
                        "BalancerMember outside <Proxy balancer://…> must name the balancer first",
                    ),
                },
            };
        let Some((url, kvs)) = rest.split_first() else {
            return self.err(loc, "BalancerMember needs a URL");
        };
        let mut member = match self.member_from_url(url, loc) {
            Ok(m) => m,
            Err(e) => return self.errors.push(e),
        };
        for a in kvs {
            let Some((k, v)) = self.split_kv(loc, a) else {
                continue;
            };
            match member.params.apply(&k, v) {
                Ok(true) => {
                    if params::MEMBER_KEYS_IGNORED.contains(&k.as_str()) {
                        self.warn(
                            loc,
                            format!(
                                "member parameter {k} is accepted and has no effect in ringproxy"
                            ),
                        );
                    }
                }
                Ok(false) => {
                    let hint = did_you_mean(&k, params::MEMBER_KEYS);
                    self.err(loc, format!("unknown BalancerMember parameter '{k}'{hint}"));
                }
                Err(m) => self.err(loc, m),
            }
        }
        let b = &mut self.balancers[bidx];
        if b.members
            .iter()
            .any(|m| m.name == member.name && m.path == member.path)
        {
            let msg = format!("{} is already a member of {}", member.name, b.name);
            return self.err(loc, msg);
        }
        b.members.push(member);
    }

    /// Returns the index of the implicit one-member balancer for a worker URL.
    fn implicit_balancer(&mut self, worker: &str, loc: &Loc) -> Option<usize> {
        if let Some(i) = self
            .balancers
            .iter()
            .position(|b| b.implicit && b.name.eq_ignore_ascii_case(worker))
        {
            return Some(i);
        }
        match self.member_from_url(worker, loc) {
            Ok(m) => {
                self.balancers.push(Balancer {
                    name: worker.to_string(),
                    implicit: true,
                    members: vec![m],
                    params: BalancerParams::default(),
                    loc: loc.clone(),
                });
                Some(self.balancers.len() - 1)
            }
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }

    fn finish(mut self) -> Result<Config, Vec<ConfigError>> {
        // `<Proxy *>` sections without access rules cost nothing per request.
        for v in &mut self.vhosts {
            v.proxy_access
                .retain(|p| p.access != crate::routing::access::Access::default());
        }
        let rules = std::mem::take(&mut self.rules);
        for r in rules {
            let target = match r.target {
                None => Target::Exclude,
                Some((name, template)) => {
                    let Some(idx) = self.resolve_target(&name, &r.loc) else {
                        continue;
                    };
                    for (k, v) in &r.params {
                        let b = &mut self.balancers[idx];
                        let res = if b.implicit {
                            // Worker parameters on a plain URL apply to its one member;
                            // balancer parameters (timeout, failonstatus…) to the balancer.
                            match b.members[0].params.apply(k, v) {
                                Ok(false) => b.params.apply(k, v),
                                other => other,
                            }
                        } else {
                            b.params.apply(k, v)
                        };
                        match res {
                            Ok(true) => {}
                            Ok(false) => {
                                // Suggest only words valid here; a member parameter on a
                                // balancer:// line is valid elsewhere, and saying where
                                // helps more than a near miss.
                                let implicit = self.balancers[idx].implicit;
                                let is_member_key = params::MEMBER_KEYS
                                    .iter()
                                    .any(|m| m.eq_ignore_ascii_case(k));
                                let msg = if !implicit && is_member_key {
                                    format!(
                                        "'{k}' is a BalancerMember parameter: on a ProxyPass line to {name} only balancer parameters apply; put it on the BalancerMember lines"
                                    )
                                } else {
                                    let mut valid: Vec<&str> = params::BALANCER_KEYS.to_vec();
                                    if implicit {
                                        valid.extend_from_slice(params::MEMBER_KEYS);
                                    }
                                    let hint = did_you_mean(k, &valid);
                                    format!("unknown ProxyPass parameter '{k}'{hint}")
                                };
                                self.err(&r.loc, msg);
                            }
                            Err(m) => self.err(&r.loc, m),
                        }
                    }
                    Target::Backend {
                        balancer: idx,
                        template,
                        noquery: r.noquery,
                        nocanon: r.nocanon,
                    }
                }
            };
            self.vhosts[r.vhost].rules.push(ProxyRule {
                matcher: r.matcher,
                target,
                loc: r.loc,
            });
        }
        for r in std::mem::take(&mut self.rewrites) {
            let mut rule = r.rule;
            if let Some((name, template)) = r.proxy {
                let Some(balancer) = self.resolve_target(&name, &rule.loc) else {
                    continue;
                };
                rule.action = RewriteAction::Proxy { balancer, template };
            }
            self.vhosts[r.vhost].rewrites.push(rule);
        }
        if !self.pending_conds.is_empty() {
            self.warnings
                .push("RewriteCond without a following RewriteRule has no effect".into());
        }
        for v in &mut self.vhosts {
            // Set again after the main server's sections are merged in (below) too.
            v.names_needed = needs_names(v);
        }
        let reverses = std::mem::take(&mut self.reverses);
        for rv in reverses {
            let lower = rv.url.to_ascii_lowercase();
            if lower.starts_with("balancer://") {
                let Some(name) = balancer_name(&rv.url) else {
                    self.err(&rv.loc, format!("bad balancer URL '{}'", rv.url));
                    continue;
                };
                let full = format!("balancer://{name}");
                let suffix = &rv.url[full.len()..];
                let Some(b) = self
                    .balancers
                    .iter()
                    .find(|b| !b.implicit && b.name.eq_ignore_ascii_case(&full))
                else {
                    self.err(&rv.loc, format!("{full} is not defined"));
                    continue;
                };
                let urls: Vec<String> = b
                    .members
                    .iter()
                    .map(|m| format!("{}{}{}", m.name, m.path, suffix))
                    .collect();
                for url in urls {
                    self.vhosts[rv.vhost].reverse.push(ReverseRule {
                        path: rv.path.clone(),
                        url,
                    });
                }
            } else {
                self.vhosts[rv.vhost].reverse.push(ReverseRule {
                    path: rv.path,
                    url: rv.url,
                });
            }
        }
        // Health-check templates and expressions referenced by members.
        let templates = std::mem::take(&mut self.hc_templates);
        let mut problems = Vec::new();
        for b in &mut self.balancers {
            for m in &mut b.members {
                if let Some(t) = m.params.hc.template.clone() {
                    match templates.get(&t) {
                        Some(kvs) => {
                            // The member's own hc* parameters win over the template's.
                            let own = m.params.hc.clone();
                            for (k, v) in kvs {
                                let _ = m.params.apply(k, v);
                            }
                            let merged = m.params.hc.clone();
                            m.params.hc = crate::config::params::HealthCheckParams {
                                method: own.method.or(merged.method),
                                uri: own.uri.or(merged.uri),
                                interval: own.interval.or(merged.interval),
                                passes: own.passes.or(merged.passes),
                                fails: own.fails.or(merged.fails),
                                expr: own.expr.or(merged.expr),
                                template: own.template,
                            };
                        }
                        None => problems.push(ConfigError::new(
                            &m.loc,
                            format!("hctemplate={t}: no ProxyHCTemplate {t}"),
                        )),
                    }
                }
                if let Some(e) = &m.params.hc.expr {
                    if !self.hc_exprs.contains_key(e) {
                        problems.push(ConfigError::new(
                            &m.loc,
                            format!("hcexpr={e}: no ProxyHCExpr {e} is defined"),
                        ));
                    }
                }
            }
        }
        self.errors.extend(problems);
        for b in &self.balancers {
            if b.members.is_empty() {
                self.errors.push(ConfigError::new(
                    &b.loc,
                    format!("{} has no BalancerMember", b.name),
                ));
            }
        }
        // ProxyPassInherit On (Apache's default): vhosts also use the main server's rules,
        // after their own; ProxyPreserveHost/ProxyTimeout are inherited when not set.
        let main = self.vhosts[0].clone();
        for (i, v) in self.vhosts.iter_mut().enumerate().skip(1) {
            if v.inherit_rules {
                v.rules.extend(main.rules.iter().cloned());
            }
            v.reverse.extend(main.reverse.iter().cloned());
            v.cookie_domains.extend(main.cookie_domains.iter().cloned());
            v.cookie_paths.extend(main.cookie_paths.iter().cloned());
            // Header rules of the main server apply first, then the host's own.
            let own = std::mem::take(&mut v.request_headers);
            v.request_headers = main.request_headers.iter().cloned().chain(own).collect();
            let own = std::mem::take(&mut v.response_headers);
            v.response_headers = main.response_headers.iter().cloned().chain(own).collect();
            // A host without its own CustomLog writes the main server's (Apache).
            if v.logs.is_empty() {
                v.logs = main.logs.clone();
            }
            // Main-server locations apply first; the vhost's own come later and win.
            let own = std::mem::take(&mut v.locations);
            v.locations = main.locations.iter().cloned().chain(own).collect();
            let own = std::mem::take(&mut v.proxy_access);
            v.proxy_access = main.proxy_access.iter().cloned().chain(own).collect();
            v.names_needed = needs_names(v);
            let set = self.vhost_set[i];
            if !set.preserve_host {
                v.preserve_host = main.preserve_host;
            }
            if !set.merge_slashes {
                v.paths.merge_slashes = main.paths.merge_slashes;
            }
            if !set.encoded_slashes {
                v.paths.encoded_slashes = main.paths.encoded_slashes;
            }
            if !set.servlet_dot_segments {
                v.paths.servlet_dot_segments = main.paths.servlet_dot_segments;
            }
            if !set.trace {
                v.trace = main.trace;
            }
            if v.proxy_timeout.is_none() {
                v.proxy_timeout = main.proxy_timeout;
            }
        }
        self.warn_shadowed_handlers();
        if self.listens.is_empty() {
            self.errors.push(ConfigError::new(
                &Loc {
                    file: self.main_file.clone(),
                    line: 0,
                },
                "no Listen directive: nothing to serve",
            ));
        }
        // Apache looks the machine's name up only when the main server has no ServerName.
        let main_named = self.vhosts.first().is_some_and(|v| v.server_name.is_some());
        if self.errors.is_empty() {
            Ok(Config {
                listens: self.listens,
                vhosts: self.vhosts,
                balancers: self.balancers,
                core: self.core,
                hc_exprs: self.hc_exprs,
                access_logs: self.access_logs,
                warnings: self.warnings,
                default_server_name: match (main_named, self.opts.resolve) {
                    (true, _) => String::new(),
                    // A loader with its own resolver looks nothing up on the system either.
                    (false, Some(_)) => "127.0.0.1".into(),
                    (false, None) => crate::dns::local_host_name(),
                },
            })
        } else {
            Err(self.errors)
        }
    }
}

fn module_provided(name: &str) -> bool {
    // `mod_proxy.c` and `proxy_module` both name the proxy module.
    let short = name
        .trim_end_matches(".c")
        .trim_start_matches("mod_")
        .trim_end_matches("_module");
    PROVIDED_MODULES.contains(&short)
}

/// `balancer://name/path` -> `name`.
fn balancer_name(url: &str) -> Option<String> {
    let rest = url.get("balancer://".len()..)?;
    let name: String = rest.chars().take_while(|&c| c != '/' && c != '$').collect();
    if name.is_empty() {
        None
    } else {
        Some(name)
    }
}

/// A member from its URL (`http://host:port[/path]`), as BalancerMember reads it.
pub fn member_from_url(url: &str, loc: &Loc) -> Result<Member, ConfigError> {
    parse_member_url(url, loc, &|host, port| {
        (host, port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
    })
}

/// A member whose address comes from `resolve(host, port)`: the caller looked the name up
/// already (balancer-manager does, on the resolver pool, so no worker blocks on DNS).
pub fn member_from_url_resolved(
    url: &str,
    loc: &Loc,
    resolve: &dyn Fn(&str, u16) -> Option<SocketAddr>,
) -> Result<Member, ConfigError> {
    parse_member_url(url, loc, resolve)
}

/// The host (without brackets) and port a member URL names, without looking anything up.
pub fn member_host_port(url: &str) -> Option<(String, u16)> {
    let lower = url.to_ascii_lowercase();
    let after = ["http://", "ws://"]
        .iter()
        .find(|p| lower.starts_with(**p))
        .map(|p| &url[p.len()..])?;
    let authority = after.split('/').next()?;
    let (host, port) = split_host_port(authority).ok()?;
    Some((
        host.trim_matches(['[', ']']).to_string(),
        port.unwrap_or(80),
    ))
}

fn parse_member_url(
    url: &str,
    loc: &Loc,
    resolve: &dyn Fn(&str, u16) -> Option<SocketAddr>,
) -> Result<Member, ConfigError> {
    let lower = url.to_ascii_lowercase();
    // ws:// is mod_proxy_wstunnel's scheme: an http:// member that tunnels WebSocket
    // upgrades (as `upgrade=websocket` does for http:// members).
    let (after, websocket) = if lower.starts_with("http://") {
        (&url[7..], false)
    } else if lower.starts_with("ws://") {
        (&url[5..], true)
    } else {
        let scheme = url.split("://").next().unwrap_or(url);
        let what = if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("wss") {
            "TLS to backends is not available yet; use http:// or ws:// members".to_string()
        } else {
            "http:// and ws:// are".to_string()
        };
        return Err(ConfigError::new(
            loc,
            format!("member '{url}': scheme '{scheme}' is not supported ({what})"),
        ));
    };
    let (authority, path) = match after.find('/') {
        Some(i) => (&after[..i], after[i..].trim_end_matches('/').to_string()),
        None => (after, String::new()),
    };
    if authority.is_empty() {
        return Err(ConfigError::new(loc, format!("member '{url}' has no host")));
    }
    let (host, port) = split_host_port(authority)
        .map_err(|m| ConfigError::new(loc, format!("member '{url}': {m}")))?;
    let port = port.unwrap_or(80);
    let addr = resolve(host.trim_matches(['[', ']']), port)
        .ok_or_else(|| ConfigError::new(loc, format!("member '{url}': cannot resolve '{host}'")))?;
    let host_header = if port == 80 {
        host.to_string()
    } else {
        format!("{host}:{port}")
    };
    Ok(Member {
        name: format!("{}://{authority}", if websocket { "ws" } else { "http" }),
        addr,
        host_header,
        path,
        params: MemberParams {
            upgrade: websocket.then(|| "websocket".to_string()),
            ..MemberParams::default()
        },
        loc: loc.clone(),
    })
}

fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), String> {
    if let Some(rest) = authority.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            return Err("unclosed '[' in IPv6 address".into());
        };
        let host = &authority[..end + 2];
        let port = match &rest[end + 1..] {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| format!("bad port in '{authority}'"))?,
            ),
        };
        return Ok((host, port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Ok((h, Some(p.parse().map_err(|_| format!("bad port '{p}'"))?))),
        None => Ok((authority, None)),
    }
}

/// `Listen 8080`, `Listen 127.0.0.1:8080`, `Listen [::1]:8080`, `Listen 0.0.0.0:80 http`.
fn parse_listen(arg: &str) -> Result<Vec<SocketAddr>, String> {
    if let Ok(port) = arg.parse::<u16>() {
        // Apache's bare port listens on every address; IPv4 any is the portable choice.
        return Ok(vec![SocketAddr::from(([0, 0, 0, 0], port))]);
    }
    let (host, port) = split_host_port(arg)?;
    let port = port.ok_or_else(|| format!("Listen '{arg}': no port"))?;
    let ip: IpAddr = host
        .trim_matches(['[', ']'])
        .parse()
        .map_err(|_| format!("Listen '{arg}': '{host}' is not an IP address"))?;
    Ok(vec![SocketAddr::new(ip, port)])
}

fn parse_vhost_addr(arg: &str) -> Result<VhostAddr, String> {
    if arg == "*" || arg == "_default_" {
        return Ok(VhostAddr {
            ip: None,
            port: None,
        });
    }
    // `host:*` is any port (split_host_port only knows numbers).
    let (host, port) = match arg.strip_suffix(":*") {
        Some(h) => (h, None),
        None => split_host_port(arg)?,
    };
    let ip = match host {
        "*" | "_default_" => None,
        h => Some(
            h.trim_matches(['[', ']'])
                .parse()
                .map_err(|_| format!("<VirtualHost {arg}>: '{h}' is not an IP address or *"))?,
        ),
    };
    Ok(VhostAddr { ip, port })
}

impl Config {
    /// The name this host answers as: its `ServerName`, else the main server's, else the
    /// machine's (Apache's inheritance).
    pub fn server_name_of<'a>(&'a self, vh: &'a VirtualHost) -> &'a str {
        vh.server_name
            .as_deref()
            .or(self.vhosts.first().and_then(|v| v.server_name.as_deref()))
            .unwrap_or(&self.default_server_name)
    }

    /// The effective timeout for a member: member `timeout`, else balancer `timeout`, else
    /// the vhost's ProxyTimeout, else Timeout (spec: timeout = ProxyTimeout = Timeout).
    pub fn member_timeout(&self, vhost: usize, balancer: usize, member: &Member) -> Duration {
        member
            .params
            .timeout
            .or(self.balancers[balancer].params.timeout)
            .or(self.vhosts[vhost].proxy_timeout)
            .unwrap_or(self.core.timeout)
    }

    /// The effective connect timeout: `connectiontimeout`, else the member timeout.
    pub fn member_connect_timeout(
        &self,
        vhost: usize,
        balancer: usize,
        member: &Member,
    ) -> Duration {
        member
            .params
            .connection_timeout
            .unwrap_or_else(|| self.member_timeout(vhost, balancer, member))
    }

    /// Everything that was understood, as `-t -D DUMP_CONFIG` prints it: listeners, hosts
    /// with their rules and reverse maps, balancers with their effective settings, members.
    pub fn dump(&self) -> String {
        use std::fmt::Write as _;
        let mut o = String::new();
        let c = &self.core;
        let _ = writeln!(
            o,
            "Listen: {}",
            self.listens
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(
            o,
            "Core: Timeout {}s, KeepAlive {}, KeepAliveTimeout {}s, MaxKeepAliveRequests {}, MaxRequestWorkers {}, WorkerThreads {}, IdleBuffers {}, IdleParkAfter {}, ProxyIOBufferSize {}, SpliceThreshold {}, BusyPolling {}",
            c.timeout.as_secs(),
            if c.keepalive { "On" } else { "Off" },
            c.keepalive_timeout.as_secs(),
            c.max_keepalive_requests,
            c.max_request_workers,
            c.worker_threads.map_or("per core".to_string(), |n| n.to_string()),
            if c.release_idle_buffers { "Release" } else { "Keep" },
            c.idle_park_after
                .map_or("Off".to_string(), |t| format!("{}ms", t.as_millis())),
            c.io_buffer_size,
            c.splice_threshold,
            match c.busy_polling {
                None => "Off".to_string(),
                Some(Duration::MAX) => "On".to_string(),
                Some(t) if t.subsec_micros() % 1000 != 0 => format!("{}us", t.as_micros()),
                Some(t) => format!("{}ms", t.as_millis()),
            }
        );
        for (i, vh) in self.vhosts.iter().enumerate() {
            if i == 0 {
                let _ = writeln!(
                    o,
                    "Main server: {}",
                    vh.server_name.as_deref().unwrap_or("(no ServerName)")
                );
            } else {
                let addrs: Vec<String> = vh
                    .addrs
                    .iter()
                    .map(|a| {
                        format!(
                            "{}:{}",
                            a.ip.map_or("*".to_string(), |ip| ip.to_string()),
                            a.port.map_or("*".to_string(), |p| p.to_string())
                        )
                    })
                    .collect();
                let _ = writeln!(
                    o,
                    "VirtualHost {} ({}){}",
                    addrs.join(" "),
                    vh.server_name.as_deref().unwrap_or("no ServerName"),
                    if vh.aliases.is_empty() {
                        String::new()
                    } else {
                        format!(", aliases {}", vh.aliases.join(" "))
                    }
                );
            }
            if vh.preserve_host {
                let _ = writeln!(o, "  ProxyPreserveHost On");
            }
            let p = &vh.paths;
            let _ = writeln!(
                o,
                "  paths: MergeSlashes {}, AllowEncodedSlashes {:?}, ServletDotSegments {}; TraceEnable {:?}",
                if p.merge_slashes { "On" } else { "Off" },
                p.encoded_slashes,
                if p.servlet_dot_segments { "Allow" } else { "Refuse" },
                vh.trace
            );
            for r in &vh.rules {
                let m = match &r.matcher {
                    Matcher::Prefix(p) => format!("ProxyPass {p}"),
                    Matcher::Regex(re) => format!("ProxyPassMatch {}", re.as_str()),
                };
                let t = match &r.target {
                    Target::Exclude => "! (not proxied)".to_string(),
                    Target::Backend {
                        balancer,
                        template,
                        noquery,
                        nocanon,
                    } => format!(
                        "{}{template}{}{}",
                        self.balancers[*balancer].name,
                        if *noquery { " noquery" } else { "" },
                        if *nocanon { " nocanon" } else { "" }
                    ),
                };
                let _ = writeln!(o, "  {m} -> {t}   ({})", r.loc);
            }
            for rv in &vh.reverse {
                let _ = writeln!(o, "  ProxyPassReverse {} <- {}", rv.path, rv.url);
            }
            for (a, b) in &vh.cookie_domains {
                let _ = writeln!(o, "  ProxyPassReverseCookieDomain {a} -> {b}");
            }
            for (a, b) in &vh.cookie_paths {
                let _ = writeln!(o, "  ProxyPassReverseCookiePath {a} -> {b}");
            }
            for l in &vh.locations {
                let _ = writeln!(
                    o,
                    "  <Location {}> handler {:?}, access rules: {}",
                    l.path,
                    l.handler,
                    if l.access.is_some() { "yes" } else { "none" }
                );
            }
        }
        for b in &self.balancers {
            let p = &b.params;
            let _ = writeln!(
                o,
                "{}{}: lbmethod {:?}, maxattempts {}, nofailover {}, stickysession {}, forcerecovery {}, failonstatus {:?}",
                b.name,
                if b.implicit { " (single worker)" } else { "" },
                p.lbmethod.unwrap_or_default(),
                p.maxattempts.map_or(format!("{} (members - 1)", b.members.len().saturating_sub(1)), |n| n.to_string()),
                p.nofailover.unwrap_or(false),
                match (&p.sticky_cookie, &p.sticky_param) {
                    (Some(c), Some(q)) if c != q => format!("{c}|{q}"),
                    (Some(c), _) => c.clone(),
                    _ => "none".into(),
                },
                p.forcerecovery.unwrap_or(true),
                p.failonstatus.clone().unwrap_or_default()
            );
            for m in &b.members {
                let mp = &m.params;
                let _ = writeln!(
                    o,
                    "  member {}{} = {} loadfactor {:.2} lbset {} route {} redirect {} status {} retry {}s{}   ({})",
                    m.name,
                    m.path,
                    m.addr,
                    f64::from(mp.lbfactor.unwrap_or(100)) / 100.0,
                    mp.lbset.unwrap_or(0),
                    mp.route.as_deref().unwrap_or("-"),
                    mp.redirect.as_deref().unwrap_or("-"),
                    if mp.status.is_empty() {
                        "-".to_string()
                    } else {
                        mp.status.iter().map(|(c, on)| format!("{}{c}", if *on { '+' } else { '-' })).collect()
                    },
                    mp.retry.map_or(60, |r| r.as_secs()),
                    mp.hc.method.as_ref().map_or(String::new(), |h| format!(
                        " hc {h} {} every {}ms",
                        mp.hc.uri.as_deref().unwrap_or("/"),
                        mp.hc.interval.map_or(30_000, |i| i.as_millis())
                    )),
                    m.loc
                );
            }
        }
        o
    }

    /// Human-readable summary of what was understood (for `-t` and logs).
    pub fn summary(&self) -> String {
        let members: usize = self.balancers.iter().map(|b| b.members.len()).sum();
        let rules: usize = self.vhosts.iter().map(|v| v.rules.len()).sum();
        format!(
            "{} listener(s), {} virtual host(s), {} balancer(s) with {} member(s), {} proxy rule(s)",
            self.listens.len(),
            self.vhosts.len() - 1,
            self.balancers.iter().filter(|b| !b.implicit).count(),
            members,
            rules
        )
    }
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
            e[0].starts_with("t.conf:1: Listen 443 https: TLS is not available yet"),
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
    fn tls_hosts_fail_clearly_instead_of_serving_plain_http() {
        let e = errs("Listen 443\n<VirtualHost *:443>\nSSLEngine On\nSSLCertificateFile /etc/ssl/x.pem\n</VirtualHost>\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("t.conf:3: SSLEngine On: TLS termination is not available yet"),
            "{e:?}"
        );
        let e = errs("Listen 80\nSSLProxyEngine On\n");
        assert!(e[0].contains("SSLProxyEngine On"), "{e:?}");
        let c = load("Listen 80\nSSLEngine Off\nSSLProtocol all -SSLv3\n").unwrap();
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
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
