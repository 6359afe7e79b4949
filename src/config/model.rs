//! What a configuration means once read: the typed model every other module uses (core
//! settings, virtual hosts, rules, balancers and members), and the lookups it answers.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{BalancerParams, Loc, MemberParams};

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
    /// `MaxRequestWorkers`: requests in progress at once, whole process (shared out among
    /// the workers). Idle keep-alive connections do not count, as in Apache's event MPM.
    pub max_request_workers: usize,
    /// `AsyncRequestWorkerFactor`: open connections may reach MaxRequestWorkers times
    /// (this + 1) before the oldest idle ones are closed for new ones (event MPM).
    pub async_request_worker_factor: u32,
    pub worker_threads: Option<usize>,
    pub cpu_affinity: bool,
    pub error_log: Option<PathBuf>,
    pub log_level: LogLevel,
    pub pid_file: Option<PathBuf>,
    /// `User` / `Group`: when started as root, run as these after binding the listeners.
    pub user: Option<String>,
    pub group: Option<String>,
    /// `User`/`Group` resolved to ids when the configuration was read (an unknown name is
    /// an error then, at `-t` too).
    pub run_as: Option<(u32, u32)>,
    /// How long SIGTERM waits for in-flight requests.
    pub graceful_shutdown_timeout: Duration,
    /// `ProxyIOBufferSize`: read size while streaming bodies.
    pub io_buffer_size: usize,
    /// AJP packet size: 8 KiB (Tomcat's `packetSize` default) unless `ProxyIOBufferSize`
    /// is written, then that clamped to 8–64 KiB, as mod_proxy_ajp does.
    pub ajp_packet_size: usize,
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
    pub read_timeouts: crate::http::reqtimeout::ReadTimeouts,
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
            // Apache's default.
            async_request_worker_factor: 2,
            worker_threads: None,
            cpu_affinity: true,
            error_log: None,
            log_level: LogLevel::Warn,
            pid_file: None,
            user: None,
            group: None,
            run_as: None,
            graceful_shutdown_timeout: Duration::from_secs(10),
            // Apache's default is 8 KiB; larger reads cost one buffer per streaming
            // connection and save system calls on large bodies.
            io_buffer_size: 64 * 1024,
            ajp_packet_size: crate::upstream::ajp::codec::DEFAULT_PACKET_SIZE,
            release_idle_buffers: true,
            splice_threshold: 64 * 1024,
            idle_park_after: Some(Duration::from_millis(250)),
            proxy_status: false,
            busy_polling: None,
            read_timeouts: crate::http::reqtimeout::ReadTimeouts::default(),
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
    /// mod_alias redirects, the host's own then the main server's.
    pub redirects: Vec<RedirectRule>,
    /// `SSLEngine On`: the host's TLS setup (certificates loaded, rustls configured).
    pub tls: Option<std::sync::Arc<crate::transport::tls::HostTls>>,
    /// What the host serves from disk (DocumentRoot, Alias, `<Directory>`, `<Files>`).
    pub files: crate::files::FileSpace,
    /// `ProxyAddHeaders` (`None`: not written here; the main server's, else On).
    pub add_headers: Option<bool>,
    /// `ProxyVia` (`None`: not written here; the main server's, else Off).
    pub via: Option<Via>,
    /// `ProxyErrorOverride` (`None`: not written here; the main server's, else Off).
    pub error_override: Option<ErrorOverride>,
    /// mod_remoteip: the client's address from a proxy's header.
    pub remote_ip: crate::routing::remoteip::RemoteIpConfig,
    pub loc: Option<Loc>,
}

/// `ProxyVia`: whether ringproxy adds itself to `Via` (RFC 9110 §7.6.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Via {
    /// Apache's default: `Via` passes as sent, nothing added.
    #[default]
    Off,
    /// `1.1 name[:port]` added to requests and responses.
    On,
    /// The same with `(ringproxy/VERSION)`.
    Full,
    /// Requests go without any `Via`; nothing added.
    Block,
}

/// `ProxyErrorOverride On [code…]`: members' error answers (4xx/5xx, or the codes listed)
/// are replaced by ringproxy's own for that status, as Apache replaces them with its
/// ErrorDocument.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorOverride {
    pub on: bool,
    pub codes: Vec<u16>,
}

impl ErrorOverride {
    pub fn covers(&self, status: u16) -> bool {
        self.on && status >= 400 && (self.codes.is_empty() || self.codes.contains(&status))
    }
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
    /// `Redirect` in the section (its path is the section's).
    pub redirect: Option<RedirectRule>,
    /// `SSLVerifyClient` in the section: `Require` answers 403 to a client without a
    /// verified certificate.
    pub verify_client: Option<crate::transport::tls::host::VerifyClient>,
}

/// mod_alias's `Redirect`/`RedirectMatch` (and `RedirectPermanent`/`RedirectTemp`).
#[derive(Clone, Debug)]
pub struct RedirectRule {
    /// A URL-path prefix (whole segments) or a `RedirectMatch` regex, over the normalized
    /// path.
    pub matcher: Matcher,
    pub status: u16,
    /// The target (a full URL or a path); `None` for a status that is not a redirect.
    pub target: Option<String>,
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
    /// `%{HTTPS}`: `on` over TLS, else `off`.
    Https,
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
    /// TLS to this member (`https://`, `wss://`), built once the `SSLProxy*` settings are
    /// known; `None` for a plain member.
    pub tls: Option<crate::transport::tls::client::MemberTls>,
}

impl Member {
    /// The member's scheme (`http` for a name that somehow has none).
    pub fn scheme(&self) -> super::url::Scheme {
        super::url::split_scheme(&self.name).map_or(super::url::Scheme::Http, |(s, _)| s)
    }

    /// The host a TLS member's certificate must name (without port or brackets); `None`
    /// for a plain member.
    pub fn tls_host(&self) -> Option<&str> {
        if !self.scheme().is_tls() {
            return None;
        }
        let authority = super::url::without_scheme(&self.name);
        let (host, _) = super::url::split_host_port(authority).ok()?;
        Some(host.trim_matches(['[', ']']))
    }
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
    /// The `SSLProxy*` setup its TLS members get, when `SSLProxyEngine` is On for it
    /// (members the balancer-manager adds are set up from it).
    pub member_tls: Option<Arc<crate::transport::tls::client::ClientSettings>>,
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
    /// mod_mime's types for static files (`TypesConfig`, `AddType`, `RemoveType`).
    pub mime: crate::files::mime::Types,
    /// The name used where neither the host nor the main server has a `ServerName`
    /// (X-Forwarded-Server, logs, status pages), found as Apache finds it.
    pub default_server_name: String,
}

impl CoreSettings {
    /// Open client connections before the oldest idle ones make room for new ones: Apache's
    /// event MPM limit, MaxRequestWorkers × (AsyncRequestWorkerFactor + 1).
    pub fn max_connections(&self) -> usize {
        self.max_request_workers
            .saturating_mul(self.async_request_worker_factor as usize + 1)
    }
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
}
