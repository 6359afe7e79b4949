//! Who may use a `<Location>` that ringproxy serves itself (server-status, metrics…):
//! Apache 2.4's `Require` (mod_authz_core/mod_authz_host) and the 2.2-style `Order`,
//! `Allow from`, `Deny from` of mod_access_compat.
//!
//! `<RequireAll>`, `<RequireAny>` and `<RequireNone>` nest, with mod_authz_core's three
//! outcomes (granted, denied, neutral).
//!
//! `Require host` and host names in `Allow from`/`Deny from` get the client's verified name
//! from [`crate::runtime::dns`] (looked up only when a host's rules name hosts).

use std::net::IpAddr;

/// An address or network: `10.0.0.0/8`, `10.1` (Apache's partial form), `::1`,
/// `192.168.0.0/255.255.0.0`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    pub fn parse(s: &str) -> Result<Net, String> {
        let (a, mask) = match s.split_once('/') {
            Some((a, m)) => (a, Some(m)),
            None => (s, None),
        };
        let addr: IpAddr = match a.parse() {
            Ok(ip) => ip,
            Err(_) => {
                // Apache's partial IPv4: "10.1" means 10.1.0.0/16.
                let parts: Vec<&str> = a.trim_end_matches('.').split('.').collect();
                if parts.is_empty() || parts.len() > 3 || mask.is_some() {
                    return Err(format!("'{s}' is not an IP address or network"));
                }
                let mut octets = [0u8; 4];
                for (i, p) in parts.iter().enumerate() {
                    octets[i] = p
                        .parse()
                        .map_err(|_| format!("'{s}' is not an IP address or network"))?;
                }
                return Ok(Net {
                    addr: IpAddr::from(octets),
                    prefix: (parts.len() * 8) as u8,
                });
            }
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match mask {
            None => max,
            Some(m) => match m.parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => match m.parse::<IpAddr>() {
                    // Netmask form: 255.255.0.0
                    Ok(IpAddr::V4(mask)) if addr.is_ipv4() => {
                        let bits = u32::from(mask);
                        if bits.leading_ones() + bits.trailing_zeros() != 32 {
                            return Err(format!("'{s}': netmask is not contiguous"));
                        }
                        bits.leading_ones() as u8
                    }
                    _ => return Err(format!("'{s}': bad prefix length")),
                },
            },
        };
        Ok(Net { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            // An IPv4 rule matches IPv4-mapped IPv6 clients too.
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            _ => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Require {
    Granted,
    Denied,
    Ip(Vec<Net>),
    /// `Require local`: loopback addresses (and the server's own, which here is loopback).
    Local,
    /// `Require host NAME…`: the client's double-reverse-checked name is NAME or ends in
    /// `.NAME` (lower case).
    Host(Vec<String>),
    Not(Box<Require>),
    /// `<RequireAll>`: none may deny, and one must grant.
    All(Vec<Require>),
    /// `<RequireAny>`: one must grant.
    Any(Vec<Require>),
    /// `<RequireNone>`: none may grant; it never grants by itself.
    None(Vec<Require>),
}

/// mod_authz_core's three outcomes: a negated or `None` rule can only deny or stay
/// neutral, never grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Granted,
    Denied,
    Neutral,
}

impl Require {
    /// One `Require` line's arguments.
    pub fn parse(args: &[String]) -> Result<Require, String> {
        let (negate, rest) = match args.first() {
            Some(a) if a.eq_ignore_ascii_case("not") => (true, &args[1..]),
            _ => (false, args),
        };
        let kind = rest.first().map(|s| s.to_ascii_lowercase());
        let r = match (kind.as_deref(), &rest[1.min(rest.len())..]) {
            (Some("all"), [g]) if g.eq_ignore_ascii_case("granted") => Require::Granted,
            (Some("all"), [d]) if d.eq_ignore_ascii_case("denied") => Require::Denied,
            (Some("ip"), ips) if !ips.is_empty() => Require::Ip(nets(ips)?),
            (Some("local"), []) => Require::Local,
            (Some("host"), names) if !names.is_empty() => Require::Host(
                names
                    .iter()
                    .map(|n| n.trim_start_matches('.').to_ascii_lowercase())
                    .collect(),
            ),
            (Some("forward-dns"), _) => {
                return Err("Require forward-dns is not supported; use Require host or Require ip".into())
            }
            (Some("user" | "valid-user" | "group" | "ldap-user" | "ldap-group"), _) => {
                return Err(format!(
                    "Require {}: authentication is not supported; ringproxy refuses to start rather than serve without it",
                    args.join(" ")
                ))
            }
            _ => {
                return Err(format!(
                    "Require {}: supported forms are all granted|denied, ip ADDR..., local, not ..., and <RequireAll>/<RequireAny>/<RequireNone> blocks",
                    args.join(" ")
                ))
            }
        };
        Ok(if negate {
            if matches!(r, Require::Granted | Require::Denied) {
                return Err(
                    "Require not all ...: negating 'all' is not allowed (as in Apache)".into(),
                );
            }
            Require::Not(Box::new(r))
        } else {
            r
        })
    }

    /// Whether evaluating this needs the client's host name.
    fn needs_name(&self) -> bool {
        match self {
            Require::Host(_) => true,
            Require::Not(r) => r.needs_name(),
            Require::All(l) | Require::Any(l) | Require::None(l) => {
                l.iter().any(Require::needs_name)
            }
            _ => false,
        }
    }

    fn eval(&self, ip: IpAddr, name: Option<&str>) -> Verdict {
        let grant = |yes: bool| {
            if yes {
                Verdict::Granted
            } else {
                Verdict::Denied
            }
        };
        match self {
            Require::Granted => Verdict::Granted,
            Require::Denied => Verdict::Denied,
            Require::Ip(n) => grant(n.iter().any(|n| n.contains(ip))),
            Require::Local => grant(
                ip.is_loopback()
                    || matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())),
            ),
            Require::Host(domains) => grant(name.is_some_and(|n| {
                let n = n.trim_end_matches('.').to_ascii_lowercase();
                domains.iter().any(|d| {
                    n == *d
                        || (n.len() > d.len()
                            && n.ends_with(d.as_str())
                            && n.as_bytes()[n.len() - d.len() - 1] == b'.')
                })
            })),
            Require::Not(inner) => match inner.eval(ip, name) {
                Verdict::Granted => Verdict::Denied,
                _ => Verdict::Neutral,
            },
            Require::Any(list) => {
                let v: Vec<Verdict> = list.iter().map(|r| r.eval(ip, name)).collect();
                if v.contains(&Verdict::Granted) {
                    Verdict::Granted
                } else if v.iter().all(|v| *v == Verdict::Neutral) {
                    Verdict::Neutral
                } else {
                    Verdict::Denied
                }
            }
            Require::All(list) => {
                let v: Vec<Verdict> = list.iter().map(|r| r.eval(ip, name)).collect();
                if v.contains(&Verdict::Denied) {
                    Verdict::Denied
                } else if v.contains(&Verdict::Granted) {
                    Verdict::Granted
                } else {
                    Verdict::Neutral
                }
            }
            Require::None(list) => {
                if list.iter().any(|r| r.eval(ip, name) == Verdict::Granted) {
                    Verdict::Denied
                } else {
                    Verdict::Neutral
                }
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// `Order Allow,Deny`: denied unless allowed, and a Deny match wins.
    AllowDeny,
    /// `Order Deny,Allow`: allowed unless denied, and an Allow match wins.
    DenyAllow,
    /// `Order Mutual-failure`: allowed only when allowed and not denied (in 2.4 this
    /// decides as Allow,Deny does).
    MutualFailure,
}

/// `Satisfy`: how the 2.2-style rules and `Require` combine when both are present.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Satisfy {
    /// Both must allow (the default).
    #[default]
    All,
    /// Either allowing is enough.
    Any,
}

/// One word after `Allow from` / `Deny from`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Who {
    All,
    Net(Net),
    /// A host or domain name: matches when the client's double-reverse-checked name is
    /// this name or ends in it at a dot (`example.com` matches `www.example.com`, not
    /// `badexample.com`); `.example.com` matches any name ending so. Lower case.
    Host(String),
}

impl Who {
    fn matches(&self, ip: IpAddr, name: Option<&str>) -> bool {
        match self {
            Who::All => true,
            Who::Net(n) => n.contains(ip),
            Who::Host(domain) => name.is_some_and(|n| in_domain(domain, n)),
        }
    }
}

/// mod_access_compat's domain test: `what` ends in `domain`, at a label boundary.
fn in_domain(domain: &str, what: &str) -> bool {
    let what = what.trim_end_matches('.');
    if what.len() < domain.len() {
        return false;
    }
    let (head, tail) = what.split_at(what.len() - domain.len());
    tail.eq_ignore_ascii_case(domain)
        && (head.is_empty() || domain.starts_with('.') || head.ends_with('.'))
}

/// The access rules of one location. Several `Require` lines mean "any of them" (Apache's
/// implicit `<RequireAny>`); `Require not` lines must all hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    pub require: Vec<Require>,
    pub order: Option<Order>,
    pub allow: Vec<Who>,
    pub deny: Vec<Who>,
    pub satisfy: Satisfy,
}

fn nets(words: &[String]) -> Result<Vec<Net>, String> {
    words.iter().map(|w| Net::parse(w)).collect()
}

impl Access {
    /// Applies one directive (`Require …`, `Order …`, `Allow from …`, `Deny from …`).
    pub fn apply(&mut self, name: &str, args: &[String]) -> Result<(), String> {
        let lower: Vec<String> = args.iter().map(|a| a.to_ascii_lowercase()).collect();
        match name.to_ascii_lowercase().as_str() {
            "require" => self.require.push(Require::parse(args)?),
            "order" => {
                let joined = lower.join("").replace(' ', "");
                self.order = Some(match joined.as_str() {
                    "allow,deny" => Order::AllowDeny,
                    "deny,allow" => Order::DenyAllow,
                    "mutual-failure" => Order::MutualFailure,
                    _ => {
                        return Err(format!(
                            "Order {}: use Allow,Deny, Deny,Allow or Mutual-failure",
                            args.join(" ")
                        ))
                    }
                });
            }
            "allow" | "deny" => {
                let Some(("from", who)) = lower.split_first().map(|(f, w)| (f.as_str(), w)) else {
                    return Err(format!("{name} takes 'from' and addresses"));
                };
                if who.is_empty() {
                    return Err(format!("{name} from: no address or host given"));
                }
                let mut list = Vec::new();
                for w in who {
                    list.push(Self::who(w)?);
                }
                if name.eq_ignore_ascii_case("allow") {
                    self.allow.extend(list);
                } else {
                    self.deny.extend(list);
                }
            }
            "satisfy" => {
                self.satisfy = match lower.as_slice() {
                    [a] if a == "all" => Satisfy::All,
                    [a] if a == "any" => Satisfy::Any,
                    _ => return Err("Satisfy takes either 'any' or 'all'".into()),
                }
            }
            other => return Err(format!("{other} is not an access directive")),
        }
        Ok(())
    }

    /// One word of `Allow from`/`Deny from`, classified as mod_access_compat does: `all`,
    /// an address or network, else a host name.
    fn who(w: &str) -> Result<Who, String> {
        if w == "all" {
            return Ok(Who::All);
        }
        if w.starts_with("env=") {
            return Err(format!(
                "from {w}: environment conditions are not supported"
            ));
        }
        if w.contains('/') {
            // Apache too insists on an address before a slash.
            return Net::parse(w).map(Who::Net);
        }
        if let Ok(n) = Net::parse(w) {
            return Ok(Who::Net(n));
        }
        if w.contains('#') {
            return Err(format!("'{w}': no comments are allowed here"));
        }
        let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_';
        if !w.chars().all(valid) || w.trim_matches('.').is_empty() {
            return Err(format!(
                "'{w}' is neither an address, a network nor a host name"
            ));
        }
        Ok(Who::Host(w.to_string()))
    }

    /// The `Require` lines of a section form an implicit `<RequireAny>`. A `Require not`
    /// line there has no effect in Apache (it refuses the config); here such lines must all
    /// hold, which only ever denies more.
    fn require_ok(&self, ip: IpAddr, name: Option<&str>) -> bool {
        let negatives_hold = self.require.iter().all(|r| match r {
            Require::Not(_) => r.eval(ip, name) != Verdict::Denied,
            _ => true,
        });
        let positives: Vec<&Require> = self
            .require
            .iter()
            .filter(|r| !matches!(r, Require::Not(_)))
            .collect();
        negatives_hold
            && (positives.is_empty()
                || positives
                    .iter()
                    .any(|r| r.eval(ip, name) == Verdict::Granted))
    }

    fn compat_ok(&self, ip: IpAddr, name: Option<&str>) -> bool {
        let matches = |list: &[Who]| list.iter().any(|w| w.matches(ip, name));
        let (allowed, denied) = (matches(&self.allow), matches(&self.deny));
        match self.order.unwrap_or(Order::DenyAllow) {
            Order::AllowDeny | Order::MutualFailure => allowed && !denied,
            Order::DenyAllow => allowed || !denied,
        }
    }

    /// Apache 2.4 with mod_access_compat: when both styles are present, both must allow
    /// under `Satisfy All` (the default), either under `Satisfy Any`.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allows_named(ip, None)
    }

    /// As [`Self::allows`], with the client's verified host name for `Require host`
    /// (`None`: unknown, so no `Require host` grants).
    pub fn allows_named(&self, ip: IpAddr, name: Option<&str>) -> bool {
        let compat_used = self.order.is_some() || !self.allow.is_empty() || !self.deny.is_empty();
        let require_used = !self.require.is_empty();
        match (compat_used, require_used) {
            (false, false) => true,
            (true, false) => self.compat_ok(ip, name),
            (false, true) => self.require_ok(ip, name),
            (true, true) => match self.satisfy {
                Satisfy::All => self.compat_ok(ip, name) && self.require_ok(ip, name),
                Satisfy::Any => self.compat_ok(ip, name) || self.require_ok(ip, name),
            },
        }
    }

    /// Whether these rules look at the client's host name (so it must be resolved first).
    pub fn needs_name(&self) -> bool {
        self.require.iter().any(Require::needs_name)
            || self
                .allow
                .iter()
                .chain(&self.deny)
                .any(|w| matches!(w, Who::Host(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(lines: &[&str]) -> Access {
        let mut a = Access::default();
        for l in lines {
            let words: Vec<String> = l.split_whitespace().map(String::from).collect();
            a.apply(&words[0], &words[1..]).unwrap();
        }
        a
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn nets_table() {
        let cases = [
            ("10.0.0.0/8", "10.200.1.1", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("10.1", "10.1.2.3", true),
            ("10.1", "10.2.0.1", false),
            ("192.168.0.0/255.255.0.0", "192.168.9.9", true),
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "::ffff:127.0.0.1", true),
            ("::1", "::1", true),
            ("2001:db8::/32", "2001:db8:1::5", true),
            ("2001:db8::/32", "2001:db9::5", false),
        ];
        for (net, addr, want) in cases {
            assert_eq!(
                Net::parse(net).unwrap().contains(ip(addr)),
                want,
                "{net} {addr}"
            );
        }
        assert!(Net::parse("example.com").is_err());
        assert!(Net::parse("10.0.0.0/33").is_err());
        assert!(Net::parse("10.0.0.0/255.0.255.0").is_err());
    }

    #[test]
    fn require_and_compat_table() {
        let cases: &[(&[&str], &str, bool)] = &[
            (&[], "10.0.0.1", true),
            (&["Require all granted"], "10.0.0.1", true),
            (&["Require all denied"], "127.0.0.1", false),
            (&["Require ip 127.0.0.1 10.0.0.0/8"], "10.9.9.9", true),
            (&["Require ip 127.0.0.1 10.0.0.0/8"], "192.168.1.1", false),
            (&["Require local"], "127.0.0.1", true),
            (&["Require local"], "192.168.1.1", false),
            (
                &["Require ip 10.0.0.0/8", "Require local"],
                "127.0.0.1",
                true,
            ),
            (
                &["Require ip 10.0.0.0/8", "Require not ip 10.0.0.5"],
                "10.0.0.5",
                false,
            ),
            (
                &["Require ip 10.0.0.0/8", "Require not ip 10.0.0.5"],
                "10.0.0.6",
                true,
            ),
            (
                &["Order deny,allow", "Deny from all", "Allow from 127.0.0.1"],
                "127.0.0.1",
                true,
            ),
            (
                &["Order deny,allow", "Deny from all", "Allow from 127.0.0.1"],
                "10.0.0.1",
                false,
            ),
            (
                &["Order allow,deny", "Allow from all", "Deny from 10.0.0.0/8"],
                "10.0.0.1",
                false,
            ),
            (
                &["Order allow,deny", "Allow from all", "Deny from 10.0.0.0/8"],
                "127.0.0.1",
                true,
            ),
            (&["Order allow,deny"], "127.0.0.1", false),
            (
                &[
                    "Order deny,allow",
                    "Deny from all",
                    "Allow from 127.0.0.1",
                    "Require all granted",
                ],
                "10.0.0.1",
                false,
            ),
            (
                &[
                    "Order deny,allow",
                    "Deny from all",
                    "Allow from 127.0.0.1",
                    "Require all granted",
                    "Satisfy Any",
                ],
                "10.0.0.1",
                true,
            ),
            (
                &[
                    "Order allow,deny",
                    "Allow from 10.0.0.0/8",
                    "Require ip 192.0.2.0/24",
                    "Satisfy any",
                ],
                "192.0.2.7",
                true,
            ),
            (
                &[
                    "Order mutual-failure",
                    "Allow from all",
                    "Deny from 10.0.0.5",
                ],
                "10.0.0.5",
                false,
            ),
            (
                &[
                    "Order mutual-failure",
                    "Allow from all",
                    "Deny from 10.0.0.5",
                ],
                "10.0.0.6",
                true,
            ),
        ];
        for (lines, addr, want) in cases {
            assert_eq!(
                access(lines).allows(ip(addr)),
                *want,
                "{lines:?} from {addr}"
            );
        }
        let mut a = Access::default();
        a.apply("Require", &["host".into(), ".Example.com".into()])
            .unwrap();
        assert!(a.needs_name());
        let lo = ip("10.0.0.1");
        assert!(a.allows_named(lo, Some("www.example.com")));
        assert!(a.allows_named(lo, Some("example.com.")));
        assert!(!a.allows_named(lo, Some("badexample.com")));
        assert!(!a.allows_named(lo, None), "no verified name: no grant");
        let mut a = Access::default();
        assert!(a.apply("Order", &["sideways".into()]).is_err());
        assert!(a.apply("Satisfy", &["some".into()]).is_err());
        assert!(a.apply("Allow", &["from".into()]).is_err());
        assert!(a
            .apply("Allow", &["from".into(), "host/24".into()])
            .is_err());
        assert!(a
            .apply("Deny", &["from".into(), "bad#host".into()])
            .is_err());
    }

    #[test]
    fn host_names_in_allow_and_deny() {
        // mod_access_compat's in_domain(): whole labels only; a leading dot is a suffix.
        let cases = [
            ("example.com", Some("example.com"), true),
            ("example.com", Some("www.example.com"), true),
            ("example.com", Some("WWW.Example.COM."), true),
            ("example.com", Some("badexample.com"), false),
            ("example.com", Some("example.org"), false),
            (".example.com", Some("a.b.example.com"), true),
            ("example.com", None, false),
        ];
        for (domain, name, want) in cases {
            let a = access(&[
                "Order deny,allow",
                "Deny from all",
                &format!("Allow from {domain}"),
            ]);
            assert!(a.needs_name());
            assert_eq!(
                a.allows_named(ip("192.0.2.1"), name),
                want,
                "{domain} {name:?}"
            );
        }
        // Addresses keep matching without a name; a Deny by name wins under Allow,Deny.
        let a = access(&[
            "Order allow,deny",
            "Allow from 10.0.0.0/8",
            "Deny from bad.example.com",
        ]);
        assert!(a.allows_named(ip("10.1.1.1"), None));
        assert!(a.allows_named(ip("10.1.1.1"), Some("good.example.com")));
        assert!(!a.allows_named(ip("10.1.1.1"), Some("bad.example.com")));
        assert!(!access(&["Allow from 10.0.0.0/8"]).needs_name());
    }
}
