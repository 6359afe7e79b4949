//! `key=value` parameters of BalancerMember, ProxySet and ProxyPass, with Apache's names,
//! defaults and value rules (spec: "Member parameters and defaults").

use std::time::Duration;

/// Member (worker) parameters. `None` means "not given": the effective value is inherited
/// from the balancer or the server (timeout), or takes Apache's default.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemberParams {
    /// loadfactor x 100, as Apache stores it (`lbfactor`), so 1.5 -> 150.
    pub lbfactor: Option<u32>,
    pub lbset: Option<u8>,
    pub route: Option<String>,
    pub redirect: Option<String>,
    pub retry: Option<Duration>,
    pub timeout: Option<Duration>,
    pub connection_timeout: Option<Duration>,
    pub keepalive: Option<bool>,
    pub disable_reuse: Option<bool>,
    pub max: Option<usize>,
    pub smax: Option<usize>,
    pub min: Option<usize>,
    pub ttl: Option<Duration>,
    /// Status flags as `(flag, set)` in the order given, e.g. `+H-D` -> [('H',true),('D',false)].
    pub status: Vec<(char, bool)>,
    pub ping: Option<Duration>,
    /// `secret=`: sent to an AJP member (Tomcat's connector `secret`).
    pub secret: Option<String>,
    /// `flushpackets=`: when an AJP member's body packets are written to the client.
    pub flush: Option<Flush>,
    /// `flushwait=` (ms): with `flushpackets=auto`, how long to wait for more before
    /// writing.
    pub flush_wait: Option<Duration>,
    pub hc: HealthCheckParams,
    pub upgrade: Option<String>,
}

/// mod_proxy_ajp's `flushpackets`: when body packets from the container reach the client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Flush {
    /// Gathered until the response ends or a buffer's worth is there (Apache's default).
    #[default]
    Off,
    /// Each packet as it comes.
    On,
    /// When the container has sent nothing more for `flushwait`.
    Auto,
}

/// mod_proxy_hcheck parameters; parsed and validated now, acted on by the health module.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HealthCheckParams {
    pub method: Option<String>,
    pub uri: Option<String>,
    pub interval: Option<Duration>,
    pub passes: Option<u32>,
    pub fails: Option<u32>,
    pub expr: Option<String>,
    pub template: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LbMethod {
    #[default]
    ByRequests,
    ByTraffic,
    ByBusyness,
    Heartbeat,
    /// ringproxy's own: consistent hashing (Maglev) on `hashkey`.
    Hash,
}

/// What `lbmethod=hash` hashes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum HashKey {
    /// The client's IP address.
    #[default]
    ClientIp,
    Header(String),
    Cookie(String),
}

/// Balancer parameters (ProxySet / ProxyPass line on a balancer).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BalancerParams {
    pub lbmethod: Option<LbMethod>,
    pub maxattempts: Option<u32>,
    pub nofailover: Option<bool>,
    pub sticky_cookie: Option<String>,
    pub sticky_param: Option<String>,
    /// `None` = default '.', `Some(None)` = Off (the whole value is the route).
    pub sticky_sep: Option<Option<char>>,
    pub scolonpathdelim: Option<bool>,
    pub timeout: Option<Duration>,
    pub failonstatus: Option<Vec<u16>>,
    pub failontimeout: Option<bool>,
    pub forcerecovery: Option<bool>,
    pub nonce: Option<String>,
    pub growth: Option<u32>,
    /// ringproxy's own: with `lbmethod=hash`, the key.
    pub hashkey: Option<HashKey>,
    /// ringproxy's own: set the sticky cookie on responses (HAProxy's `cookie insert`).
    pub sticky_insert: Option<bool>,
}

/// Names accepted as member parameters, for "did you mean".
pub const MEMBER_KEYS: &[&str] = &[
    "loadfactor",
    "lbset",
    "route",
    "redirect",
    "retry",
    "timeout",
    "connectiontimeout",
    "keepalive",
    "disablereuse",
    "enablereuse",
    "max",
    "smax",
    "min",
    "ttl",
    "status",
    "ping",
    "acquire",
    "flushpackets",
    "flushwait",
    "iobuffersize",
    "receivebuffersize",
    "upgrade",
    "secret",
    "responsefieldsize",
    "mapping",
    "hcmethod",
    "hcuri",
    "hcinterval",
    "hcpasses",
    "hcfails",
    "hcexpr",
    "hctemplate",
];

pub const BALANCER_KEYS: &[&str] = &[
    "lbmethod",
    "maxattempts",
    "nofailover",
    "stickysession",
    "stickysessionsep",
    "scolonpathdelim",
    "timeout",
    "failonstatus",
    "failontimeout",
    "forcerecovery",
    "nonce",
    "growth",
    "hashkey",
    "stickysessioninsert",
];

/// Parameters that Apache accepts and whose effect ringproxy does not need: the I/O
/// buffer sizes are chosen per core by ringproxy, and `acquire` tunes Apache's thread
/// model. They are validated as numbers/flags and otherwise ignored (the caller
/// records a warning, so nothing is silently dropped).
pub const MEMBER_KEYS_IGNORED: &[&str] = &[
    "acquire",
    "iobuffersize",
    "receivebuffersize",
    "responsefieldsize",
    "mapping",
];

/// An HTTP token (RFC 9110 §5.6.2): what a header, cookie or parameter name may be. Names
/// from the config are matched against request bytes, so they are ASCII by construction.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

pub fn parse_on_off(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("'{v}' must be On or Off")),
    }
}

/// Time units a duration may carry, longest suffix first, in nanoseconds; a bare number is
/// seconds. Apache's `ap_timeout_parameter_parse` takes `ms`, `s`, `mi` and `h`.
const APACHE_UNITS: &[(&str, u64)] = &[
    ("ms", 1_000_000),
    ("mi", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("s", 1_000_000_000),
];

/// Apache's units plus `us`, for ringproxy's own directives whose useful values are
/// shorter than a millisecond (Apache's timeouts take no `us`).
const FINE_UNITS: &[(&str, u64)] = &[
    ("us", 1_000),
    ("ms", 1_000_000),
    ("mi", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("s", 1_000_000_000),
];

/// The one duration grammar: a whole number with an optional unit of `units`.
fn parse_with_units(v: &str, units: &[(&str, u64)], hint: &str) -> Result<Duration, String> {
    let lower = v.to_ascii_lowercase();
    let (num, nanos) = units
        .iter()
        .find_map(|(suffix, ns)| lower.strip_suffix(suffix).map(|n| (n, *ns)))
        .unwrap_or((lower.as_str(), 1_000_000_000));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{v}' is not a time (seconds, or with {hint})"))?;
    n.checked_mul(nanos)
        .map(Duration::from_nanos)
        .ok_or_else(|| format!("'{v}' is too large"))
}

/// A timeout as Apache writes it: seconds, or with an `ms`, `s`, `mi` or `h` suffix.
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    parse_with_units(v, APACHE_UNITS, "an ms suffix")
}

/// [`parse_duration`], plus `us` for microseconds.
pub fn parse_fine_duration(v: &str) -> Result<Duration, String> {
    parse_with_units(v, FINE_UNITS, "an ms or us suffix")
}

fn parse_num<T>(key: &str, v: &str, lo: T, hi: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let n: T = v.parse().map_err(|_| format!("{key}={v}: not a number"))?;
    if n < lo || n > hi {
        return Err(format!("{key}={v}: must be between {lo} and {hi}"));
    }
    Ok(n)
}

/// Apache's loadfactor accepts 1..100 with up to two decimals; stored x100.
fn parse_loadfactor(v: &str) -> Result<u32, String> {
    let f: f64 = v
        .parse()
        .map_err(|_| format!("loadfactor={v}: not a number"))?;
    if !(1.0..=100.0).contains(&f) {
        return Err(format!("loadfactor={v}: must be between 1 and 100"));
    }
    Ok((f * 100.0).round() as u32)
}

/// `status=+H-D`, `status=D` (a leading flag without sign means set).
pub fn parse_status_flags(v: &str) -> Result<Vec<(char, bool)>, String> {
    let mut out = Vec::new();
    let mut set = true;
    for c in v.chars() {
        match c {
            '+' => set = true,
            '-' => set = false,
            c => {
                let f = c.to_ascii_uppercase();
                if !"DSIHRENC".contains(f) {
                    return Err(format!(
                        "status={v}: unknown flag '{c}' (known: D S I H R E N C)"
                    ));
                }
                out.push((f, set));
            }
        }
    }
    if out.is_empty() {
        return Err(format!("status={v}: no flag given"));
    }
    Ok(out)
}

fn route_like(key: &str, v: &str) -> Result<String, String> {
    // Apache stores route/redirect in a fixed 64-byte slot (spec: <= 63 chars). Restricting
    // the alphabet also keeps these values safe to echo in the manager and in logs.
    if v.len() > 63 {
        return Err(format!("{key}: longer than 63 characters"));
    }
    if !v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
    {
        return Err(format!(
            "{key}={v}: only letters, digits and - _ . ~ are allowed"
        ));
    }
    Ok(v.to_string())
}

impl MemberParams {
    /// Applies one `key=value`. Returns Ok(false) when the key is not a member key.
    pub fn apply(&mut self, key: &str, v: &str) -> Result<bool, String> {
        match key {
            "loadfactor" => self.lbfactor = Some(parse_loadfactor(v)?),
            "lbset" => self.lbset = Some(parse_num(key, v, 0u8, 99)?),
            "route" => self.route = Some(route_like(key, v)?),
            "redirect" => self.redirect = Some(route_like(key, v)?),
            "retry" => self.retry = Some(parse_duration(v)?),
            "timeout" => self.timeout = Some(parse_duration(v)?),
            "connectiontimeout" => self.connection_timeout = Some(parse_duration(v)?),
            "keepalive" => self.keepalive = Some(parse_on_off(v)?),
            "disablereuse" => self.disable_reuse = Some(parse_on_off(v)?),
            "enablereuse" => self.disable_reuse = Some(!parse_on_off(v)?),
            "max" => self.max = Some(parse_num(key, v, 1usize, 1 << 20)?),
            "smax" => self.smax = Some(parse_num(key, v, 0usize, 1 << 20)?),
            "min" => self.min = Some(parse_num(key, v, 0usize, 1 << 20)?),
            "ttl" => self.ttl = Some(parse_duration(v)?),
            "status" => self.status = parse_status_flags(v)?,
            "ping" => self.ping = Some(parse_duration(v)?),
            "upgrade" => self.upgrade = Some(v.to_string()),
            "hcmethod" => {
                let m = v.to_ascii_uppercase();
                let known = [
                    "TCP",
                    "CPING",
                    "OPTIONS",
                    "HEAD",
                    "GET",
                    "OPTIONS11",
                    "HEAD11",
                    "GET11",
                ];
                if !known.contains(&m.as_str()) {
                    return Err(format!("hcmethod={v}: must be one of {}", known.join(", ")));
                }
                self.hc.method = Some(m);
            }
            "hcuri" => self.hc.uri = Some(v.to_string()),
            "hcinterval" => {
                let d = parse_duration(v)?;
                if d < Duration::from_millis(100) {
                    return Err(format!("hcinterval={v}: the minimum is 100ms"));
                }
                self.hc.interval = Some(d);
            }
            "hcpasses" => self.hc.passes = Some(parse_num(key, v, 1u32, 1000)?),
            "hcfails" => self.hc.fails = Some(parse_num(key, v, 1u32, 1000)?),
            "hcexpr" => self.hc.expr = Some(v.to_string()),
            "hctemplate" => self.hc.template = Some(v.to_string()),
            "acquire" | "iobuffersize" | "receivebuffersize" | "responsefieldsize" => {
                parse_num(key, v, 0u64, u64::MAX)?;
            }
            "flushwait" => {
                self.flush_wait = Some(Duration::from_millis(parse_num(key, v, 0u64, 60_000)?));
            }
            "flushpackets" => {
                self.flush = Some(match v.to_ascii_lowercase().as_str() {
                    "on" => Flush::On,
                    "off" => Flush::Off,
                    "auto" => Flush::Auto,
                    _ => return Err(format!("flushpackets={v}: must be On, Off or auto")),
                });
            }
            "secret" => self.secret = Some(v.to_string()),
            "mapping" => {}
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl BalancerParams {
    /// Applies one `key=value`. Returns Ok(false) when the key is not a balancer key.
    pub fn apply(&mut self, key: &str, v: &str) -> Result<bool, String> {
        match key {
            "lbmethod" => {
                self.lbmethod = Some(match v.to_ascii_lowercase().as_str() {
                    "byrequests" => LbMethod::ByRequests,
                    "bytraffic" => LbMethod::ByTraffic,
                    "bybusyness" => LbMethod::ByBusyness,
                    "heartbeat" => {
                        return Err(
                            "lbmethod=heartbeat needs mod_heartmonitor, which ringproxy does not provide; use byrequests, bybusyness or hash".into(),
                        )
                    }
                    "hash" => LbMethod::Hash,
                    _ => {
                        return Err(format!(
                            "lbmethod={v}: must be byrequests, bytraffic, bybusyness or hash"
                        ))
                    }
                })
            }
            "maxattempts" => self.maxattempts = Some(parse_num(key, v, 0u32, 1000)?),
            "nofailover" => self.nofailover = Some(parse_on_off(v)?),
            "stickysession" => {
                let (cookie, param) = match v.split_once('|') {
                    Some((c, p)) => (c, p),
                    None => (v, v),
                };
                if cookie.is_empty() || param.is_empty() {
                    return Err(format!("stickysession={v}: empty name"));
                }
                if !is_token(cookie) || !is_token(param) {
                    return Err(format!(
                        "stickysession={v}: a cookie or parameter name is ASCII letters, digits and !#$%&'*+-.^_`|~"
                    ));
                }
                self.sticky_cookie = Some(cookie.to_string());
                self.sticky_param = Some(param.to_string());
            }
            "stickysessionsep" => {
                self.sticky_sep = Some(if v.eq_ignore_ascii_case("off") {
                    None
                } else {
                    let mut cs = v.chars();
                    match (cs.next(), cs.next()) {
                        (Some(c), None) if c.is_ascii_graphic() => Some(c),
                        _ => {
                            return Err(format!(
                                "stickysessionsep={v}: must be one visible ASCII character or Off"
                            ))
                        }
                    }
                })
            }
            "scolonpathdelim" => self.scolonpathdelim = Some(parse_on_off(v)?),
            "timeout" => self.timeout = Some(parse_duration(v)?),
            "failonstatus" => {
                let mut codes = Vec::new();
                for part in v.split(',') {
                    codes.push(parse_num("failonstatus", part.trim(), 100u16, 599)?);
                }
                self.failonstatus = Some(codes);
            }
            "failontimeout" => self.failontimeout = Some(parse_on_off(v)?),
            "forcerecovery" => self.forcerecovery = Some(parse_on_off(v)?),
            "nonce" => self.nonce = Some(v.to_string()),
            "growth" => self.growth = Some(parse_num(key, v, 0u32, 1000)?),
            "hashkey" => {
                let lower = v.to_ascii_lowercase();
                self.hashkey = Some(if lower == "ip" || lower == "client_ip" {
                    HashKey::ClientIp
                } else if let Some(h) = lower.strip_prefix("header:").filter(|h| is_token(h)) {
                    HashKey::Header(h.to_string())
                } else if let Some(c) = v.get(7..).filter(|_| lower.starts_with("cookie:")) {
                    if !is_token(c) {
                        return Err(format!("hashkey={v}: the cookie name must be a token"));
                    }
                    HashKey::Cookie(c.to_string())
                } else {
                    return Err(format!(
                        "hashkey={v}: must be ip, header:NAME or cookie:NAME"
                    ));
                })
            }
            "stickysessioninsert" => self.sticky_insert = Some(parse_on_off(v)?),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases = [
            ("5", Some(5000)),
            ("100ms", Some(100)),
            ("2s", Some(2000)),
            ("1mi", Some(60_000)),
            ("x", None),
            ("-1", None),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_duration(input).ok().map(|d| d.as_millis() as u64),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn member_params_table() {
        let mut m = MemberParams::default();
        assert_eq!(m.apply("loadfactor", "1.5"), Ok(true));
        assert_eq!(m.lbfactor, Some(150));
        assert!(m.apply("loadfactor", "0").is_err());
        assert!(m.apply("loadfactor", "101").is_err());
        assert_eq!(m.apply("status", "+H-D"), Ok(true));
        assert_eq!(m.status, vec![('H', true), ('D', false)]);
        assert!(m.apply("status", "+Q").is_err());
        assert!(m.apply("route", "<script>").is_err());
        assert!(m.apply("hcinterval", "50ms").is_err());
        assert_eq!(m.apply("hcinterval", "100ms"), Ok(true));
        assert_eq!(m.apply("lvmetod", "x"), Ok(false));
    }

    #[test]
    fn balancer_params_table() {
        let mut b = BalancerParams::default();
        b.apply("stickysession", "JSESSIONID|jsessionid").unwrap();
        assert_eq!(b.sticky_cookie.as_deref(), Some("JSESSIONID"));
        assert_eq!(b.sticky_param.as_deref(), Some("jsessionid"));
        b.apply("stickysessionsep", "Off").unwrap();
        assert_eq!(b.sticky_sep, Some(None));
        b.apply("failonstatus", "500, 503").unwrap();
        assert_eq!(b.failonstatus, Some(vec![500, 503]));
        assert!(b.apply("lbmethod", "roundrobin").is_err());
        b.apply("lbmethod", "hash").unwrap();
        assert_eq!(b.lbmethod, Some(LbMethod::Hash));
        b.apply("hashkey", "header:X-User").unwrap();
        assert_eq!(b.hashkey, Some(HashKey::Header("x-user".into())));
        b.apply("hashkey", "cookie:SID").unwrap();
        assert_eq!(b.hashkey, Some(HashKey::Cookie("SID".into())));
        assert!(b.apply("hashkey", "url").is_err());
        assert_eq!(b.apply("hcpass", "3"), Ok(false));
        // Config-supplied names are matched against request bytes: ASCII tokens only.
        for (k, v) in [
            ("stickysession", "SÉSSION"),
            ("stickysession", "JSESSIONID|jsé"),
            ("stickysession", "a b"),
            ("stickysessionsep", "é"),
            ("hashkey", "header:x-ü"),
            ("hashkey", "cookie:a;b"),
        ] {
            assert!(b.apply(k, v).is_err(), "{k}={v}");
        }
    }
}
