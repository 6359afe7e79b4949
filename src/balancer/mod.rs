//! Member selection and the member state every worker shares.
//!
//! Two kinds of state, kept apart on purpose:
//! - Per worker ([`LocalBalancer`], `Cell`/`RefCell`, no atomics): selection counters
//!   (`lbstatus`), the cached view and the hash table. Apache keeps byrequests counters in
//!   shared memory; running the same smooth weighted round robin on each core gives every
//!   core, and so the sum, the configured proportions without cross-core traffic.
//! - Shared ([`SharedTable`]): per member atomics for what changes often (status flags,
//!   error time, busy count, traffic, elected), and per balancer an epoch-versioned immutable
//!   [`BalancerView`] (arc-swap) for structural changes (loadfactor, lbset, route, redirect,
//!   members, balancer settings). A worker compares the epoch once per request and rebuilds
//!   its local view when it moved, so a change made anywhere is used everywhere from the next
//!   request on.

pub mod hash;
pub mod sticky;

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::config::{Balancer, Config, HashKey, LbMethod, Member};
use hash::Maglev;
use sticky::Sticky;

/// Apache's default `retry`: how long a member that refused a connection stays in error.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(60);
/// loadfactor 1 = lbfactor 100 (Apache stores loadfactor x 100).
pub const DEFAULT_LBFACTOR: u32 = 100;

/// Status flags, Apache's letters.
pub mod flag {
    /// Disabled: takes no requests, sticky ones included (Apache's meaning).
    pub const D: u32 = 1 << 0;
    /// Stopped by the administrator.
    pub const S: u32 = 1 << 1;
    /// Ignore errors: never put in error state.
    pub const I: u32 = 1 << 2;
    /// Hot standby: used only when nothing else is.
    pub const H: u32 = 1 << 3;
    /// Hot spare: replaces an unusable regular member one for one.
    pub const R: u32 = 1 << 4;
    /// In error (until the retry time passes).
    pub const E: u32 = 1 << 5;
    /// Draining: no new sessions, sticky ones still served.
    pub const N: u32 = 1 << 6;
    /// Health check failed.
    pub const C: u32 = 1 << 7;
    pub const NOT_USABLE: u32 = D | S | E | C;
    pub const LETTERS: [(char, u32); 8] = [
        ('D', D),
        ('S', S),
        ('I', I),
        ('H', H),
        ('R', R),
        ('E', E),
        ('N', N),
        ('C', C),
    ];

    pub fn from_char(c: char) -> Option<u32> {
        LETTERS
            .iter()
            .find(|(l, _)| *l == c.to_ascii_uppercase())
            .map(|(_, b)| *b)
    }

    /// `Ok`, or the letters of the set flags (as balancer-manager shows them).
    pub fn describe(bits: u32) -> String {
        let s: String = LETTERS
            .iter()
            .filter(|(_, b)| bits & b != 0)
            .map(|(l, _)| *l)
            .collect();
        if s.is_empty() {
            "Ok".into()
        } else {
            s
        }
    }
}

/// Keeps what it holds on cache lines of its own. 128 bytes, not 64: the adjacent-line
/// prefetcher of current x86 cores fetches lines in pairs, so two cores writing neighbouring
/// 64-byte lines still slow each other.
#[repr(align(128))]
#[derive(Debug, Default)]
pub struct Padded<T>(pub T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// One core's counters for one member. Only that core writes them (see
/// [`SharedMember::on_core`]), with a plain load and store rather than a locked
/// read-modify-write, and on a line no other core writes; readers (status pages, metrics,
/// bytraffic) sum the cores.
#[derive(Debug, Default)]
pub struct CoreCounters {
    elected: AtomicU64,
    /// Requests in flight on this core.
    busy: AtomicI64,
    sent: AtomicU64,
    received: AtomicU64,
}

impl CoreCounters {
    /// Single writer: a lost update is impossible, and no locked instruction is needed.
    fn bump(a: &AtomicU64, n: u64) {
        a.store(a.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    pub fn elected_one(&self) {
        Self::bump(&self.elected, 1);
    }

    pub fn add_sent(&self, n: u64) {
        Self::bump(&self.sent, n);
    }

    pub fn add_received(&self, n: u64) {
        Self::bump(&self.received, n);
    }

    fn add_busy(&self, d: i64) {
        let b = &self.busy;
        b.store(b.load(Ordering::Relaxed) + d, Ordering::Relaxed);
    }
}

/// One member's shared state. Lives as long as any view holds it.
///
/// What every core reads per request (the configuration, the status word) is written only
/// on state changes; what changes per request is per core ([`CoreCounters`]), except
/// `busy_all`, which bybusyness must compare across cores and which only that method writes.
#[derive(Debug)]
pub struct SharedMember {
    pub member: Member,
    /// Status flags and the error deadline: read per request, written on state changes.
    flags: Padded<StatusWord>,
    /// Requests in flight on all cores, kept only for `lbmethod=bybusyness`.
    busy_all: Padded<AtomicI64>,
    /// Indexed by core (worker thread id).
    per_core: Box<[Padded<CoreCounters>]>,
}

#[derive(Debug, Default)]
struct StatusWord {
    status: AtomicU32,
    /// Milliseconds since the table's start until which E holds (0: none).
    error_until_ms: AtomicU64,
    /// Failed attempts (connect errors, failonstatus, timeouts).
    failures: AtomicU64,
    /// The last health check: 0 none yet, 1 passed, 2 failed (for balancer-manager).
    last_check: std::sync::atomic::AtomicU8,
}

impl SharedMember {
    /// Records a health check's outcome (the checker's thread only; read by status pages).
    pub fn record_check(&self, passed: bool) {
        self.flags
            .last_check
            .store(if passed { 1 } else { 2 }, Ordering::Relaxed);
    }

    /// The last health check: `None` before the first, else whether it passed.
    pub fn last_check(&self) -> Option<bool> {
        match self.flags.last_check.load(Ordering::Relaxed) {
            0 => None,
            v => Some(v == 1),
        }
    }

    /// A member's state for `cores` workers.
    pub fn new(member: Member, cores: usize) -> SharedMember {
        let mut bits = 0;
        for (c, set) in &member.params.status {
            if let Some(b) = flag::from_char(*c) {
                if *set {
                    bits |= b;
                } else {
                    bits &= !b;
                }
            }
        }
        let flags = StatusWord {
            status: AtomicU32::new(bits),
            ..Default::default()
        };
        SharedMember {
            member,
            flags: Padded(flags),
            busy_all: Padded::default(),
            per_core: (0..cores.max(1)).map(|_| Padded::default()).collect(),
        }
    }

    pub fn status(&self) -> u32 {
        self.flags.status.load(Ordering::Acquire)
    }

    pub fn has(&self, f: u32) -> bool {
        self.status() & f != 0
    }

    pub fn set_flag(&self, f: u32, on: bool) {
        if on {
            self.flags.status.fetch_or(f, Ordering::AcqRel);
        } else {
            self.flags.status.fetch_and(!f, Ordering::AcqRel);
        }
    }

    /// The counters core `core` writes. Only that core's thread may call this for writing.
    pub fn on_core(&self, core: usize) -> &CoreCounters {
        // A core outside the table (none is: it has a block per worker) shares the first
        // block rather than panic; no division on this per-request path.
        self.per_core.get(core).unwrap_or(&self.per_core[0])
    }

    fn sum(&self, f: impl Fn(&CoreCounters) -> u64) -> u64 {
        self.per_core
            .iter()
            .map(|c| f(c))
            .fold(0, u64::wrapping_add)
    }

    /// Times chosen, all cores.
    pub fn elected(&self) -> u64 {
        self.sum(|c| c.elected.load(Ordering::Relaxed))
    }

    /// Bytes sent to the member, all cores.
    pub fn sent(&self) -> u64 {
        self.sum(|c| c.sent.load(Ordering::Relaxed))
    }

    /// Bytes received from the member, all cores.
    pub fn received(&self) -> u64 {
        self.sum(|c| c.received.load(Ordering::Relaxed))
    }

    /// Requests in flight, all cores (never below zero when read mid-change).
    pub fn busy(&self) -> i64 {
        let n: i64 = self
            .per_core
            .iter()
            .map(|c| c.busy.load(Ordering::Relaxed))
            .sum();
        n.max(0)
    }

    /// Failed attempts, all cores.
    pub fn failures(&self) -> u64 {
        self.flags.failures.load(Ordering::Relaxed)
    }

    /// Counts a request in flight on this member from `core` while the guard lives;
    /// `for_busyness`: the balancer compares members by it (bybusyness), so the count
    /// shared by all cores moves too.
    pub fn busy_guard(&self, core: usize, for_busyness: bool) -> BusyGuard<'_> {
        self.on_core(core).add_busy(1);
        if for_busyness {
            self.busy_all.fetch_add(1, Ordering::Relaxed);
        }
        BusyGuard {
            member: self,
            core,
            for_busyness,
        }
    }

    /// The counters of `old` (a reload's previous table) become this member's starting
    /// point. Runs before the table is published, so no core writes meanwhile.
    fn carry_counters(&self, old: &SharedMember) {
        let first = &self.per_core[0];
        first.elected.store(old.elected(), Ordering::Relaxed);
        first.sent.store(old.sent(), Ordering::Relaxed);
        first.received.store(old.received(), Ordering::Relaxed);
        self.flags.failures.store(old.failures(), Ordering::Relaxed);
    }
}

/// A request in flight on a member (see [`SharedMember::busy_guard`]).
pub struct BusyGuard<'a> {
    member: &'a SharedMember,
    core: usize,
    for_busyness: bool,
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.member.on_core(self.core).add_busy(-1);
        if self.for_busyness {
            self.member.busy_all.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Per member settings that can change at run time (balancer-manager), in a view.
#[derive(Clone, Debug)]
pub struct MemberView {
    pub state: Arc<SharedMember>,
    pub lbfactor: u32,
    pub lbset: u8,
    pub route: Option<String>,
    pub redirect: Option<String>,
}

/// A balancer as every worker sees it; replaced whole on change.
#[derive(Clone, Debug)]
pub struct BalancerView {
    pub name: String,
    pub members: Vec<MemberView>,
    pub lbmethod: LbMethod,
    /// Failover attempts after the first (Apache: members - 1 unless set).
    pub maxattempts: usize,
    pub nofailover: bool,
    pub sticky: Option<Sticky>,
    pub sticky_insert: bool,
    pub forcerecovery: bool,
    pub failonstatus: Vec<u16>,
    pub failontimeout: bool,
    pub hashkey: HashKey,
}

impl BalancerView {
    fn from_config(b: &Balancer, cores: usize) -> BalancerView {
        let p = &b.params;
        let members: Vec<MemberView> = b
            .members
            .iter()
            .map(|m| MemberView {
                state: Arc::new(SharedMember::new(m.clone(), cores)),
                lbfactor: m.params.lbfactor.unwrap_or(DEFAULT_LBFACTOR),
                lbset: m.params.lbset.unwrap_or(0),
                route: m.params.route.clone(),
                redirect: m.params.redirect.clone(),
            })
            .collect();
        let sticky = p.sticky_cookie.as_ref().map(|cookie| Sticky {
            cookie: cookie.clone(),
            param: p.sticky_param.clone().unwrap_or_else(|| cookie.clone()),
            sep: p.sticky_sep.unwrap_or(Some('.')),
            scolon: p.scolonpathdelim.unwrap_or(false),
        });
        BalancerView {
            name: b.name.clone(),
            maxattempts: p
                .maxattempts
                .map(|n| n as usize)
                .unwrap_or(members.len().saturating_sub(1)),
            members,
            lbmethod: p.lbmethod.unwrap_or_default(),
            nofailover: p.nofailover.unwrap_or(false),
            sticky,
            sticky_insert: p.sticky_insert.unwrap_or(false),
            forcerecovery: p.forcerecovery.unwrap_or(true),
            failonstatus: p.failonstatus.clone().unwrap_or_default(),
            failontimeout: p.failontimeout.unwrap_or(false),
            hashkey: p.hashkey.clone().unwrap_or_default(),
        }
    }
}

pub struct SharedBalancer {
    view: ArcSwap<BalancerView>,
    epoch: AtomicU64,
}

impl SharedBalancer {
    pub fn view(&self) -> Arc<BalancerView> {
        self.view.load_full()
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Applies a structural change: a new view, then a new epoch, so a worker that sees
    /// the new epoch also sees the new view.
    pub fn update(&self, change: impl FnOnce(&mut BalancerView)) {
        let mut v = (*self.view.load_full()).clone();
        change(&mut v);
        self.view.store(Arc::new(v));
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }
}

/// Everything shared about balancers, indexed like `Config::balancers`.
pub struct SharedTable {
    start: Instant,
    /// Worker threads: each member keeps a counter block per core.
    pub cores: usize,
    pub balancers: Vec<SharedBalancer>,
}

impl SharedTable {
    pub fn new(cfg: &Config, cores: usize) -> SharedTable {
        SharedTable {
            start: Instant::now(),
            cores,
            balancers: cfg
                .balancers
                .iter()
                .map(|b| SharedBalancer {
                    view: ArcSwap::from_pointee(BalancerView::from_config(b, cores)),
                    epoch: AtomicU64::new(1),
                })
                .collect(),
        }
    }

    /// The table for a reloaded configuration: member state carries over from `old` for
    /// every member that still exists (same balancer name, same member URL), so a reload
    /// forgets neither errors, health results and traffic counters nor what the
    /// balancer-manager changed. Where the new file changed a setting, the file wins; where
    /// it did not, the running value (possibly set through the manager) stays. Members added
    /// through the manager stay too. `busy` starts at zero: requests still running on the
    /// old table count down there.
    pub fn carried_over(cfg: &Config, old: &SharedTable, old_cfg: &Config) -> SharedTable {
        let balancers = cfg
            .balancers
            .iter()
            .map(|b| {
                let mut view = BalancerView::from_config(b, old.cores);
                let found = old_cfg
                    .balancers
                    .iter()
                    .zip(&old.balancers)
                    .find(|(ob, _)| ob.name == b.name);
                if let Some((ob, osb)) = found {
                    carry_balancer(&mut view, b, &osb.view(), ob);
                }
                SharedBalancer {
                    view: ArcSwap::from_pointee(view),
                    epoch: AtomicU64::new(1),
                }
            })
            .collect();
        SharedTable {
            // Error deadlines are kept relative to this instant.
            start: old.start,
            cores: old.cores,
            balancers,
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Usable for a request: none of D, S, E, C. A member whose error time has passed is
    /// taken out of E here (Apache's `ap_proxy_retry_worker`): it is tried again.
    pub fn usable(&self, m: &SharedMember) -> bool {
        let bits = m.status();
        if bits & flag::E != 0 && m.flags.error_until_ms.load(Ordering::Acquire) <= self.now_ms() {
            m.set_flag(flag::E, false);
            return bits & (flag::NOT_USABLE & !flag::E) == 0;
        }
        bits & flag::NOT_USABLE == 0
    }

    /// How long a member in error stays out before it is tried again.
    pub fn error_left(&self, m: &SharedMember) -> Option<Duration> {
        let until = m.flags.error_until_ms.load(Ordering::Acquire);
        let now = self.now_ms();
        (m.has(flag::E) && until > now).then(|| Duration::from_millis(until - now))
    }

    pub fn in_error(&self, m: &SharedMember) -> bool {
        m.has(flag::E) && m.flags.error_until_ms.load(Ordering::Acquire) > self.now_ms()
    }

    /// Puts a member in error for `retry` (members with flag I are exempt).
    /// Returns whether it was put in error.
    pub fn set_error(&self, m: &SharedMember, retry: Duration) -> bool {
        m.flags.failures.fetch_add(1, Ordering::Relaxed);
        if m.has(flag::I) {
            return false;
        }
        let until = self.now_ms() + retry.as_millis().max(1) as u64;
        m.flags.error_until_ms.store(until, Ordering::Release);
        m.set_flag(flag::E, true);
        true
    }

    pub fn clear_error(&self, m: &SharedMember) {
        m.set_flag(flag::E, false);
        m.flags.error_until_ms.store(0, Ordering::Release);
    }
}

/// Flags only the running proxy sets (errors, failed health checks): always carried over.
const RUNTIME_FLAGS: u32 = flag::E | flag::C;

/// Carries a balancer's running state into `view`, built from the new config `b`.
fn carry_balancer(view: &mut BalancerView, b: &Balancer, old: &BalancerView, ob: &Balancer) {
    if b.params == ob.params {
        // The file did not touch this balancer's settings: keep what runs (the manager may
        // have changed lbmethod, stickysession, maxattempts...).
        view.lbmethod = old.lbmethod;
        // Unless set, maxattempts follows the member count, which the file may have changed.
        if ob.params.maxattempts.is_some() || old.maxattempts != ob.members.len().saturating_sub(1)
        {
            view.maxattempts = old.maxattempts;
        }
        view.nofailover = old.nofailover;
        view.sticky = old.sticky.clone();
        view.sticky_insert = old.sticky_insert;
        view.forcerecovery = old.forcerecovery;
        view.failonstatus = old.failonstatus.clone();
        view.failontimeout = old.failontimeout;
        view.hashkey = old.hashkey.clone();
    }
    for (mv, m) in view.members.iter_mut().zip(&b.members) {
        let Some(omv) = old.members.iter().find(|o| o.state.member.name == m.name) else {
            continue;
        };
        let was = ob.members.iter().find(|o| o.name == m.name);
        let (os, ns) = (&omv.state, &mv.state);
        let unchanged_status = was.is_some_and(|o| o.params.status == m.params.status);
        let bits = if unchanged_status {
            os.status()
        } else {
            (ns.status() & !RUNTIME_FLAGS) | (os.status() & RUNTIME_FLAGS)
        };
        ns.flags.status.store(bits, Ordering::Release);
        ns.flags.error_until_ms.store(
            os.flags.error_until_ms.load(Ordering::Acquire),
            Ordering::Release,
        );
        ns.carry_counters(os);
        if let Some(o) = was {
            if o.params.lbfactor == m.params.lbfactor {
                mv.lbfactor = omv.lbfactor;
            }
            if o.params.lbset == m.params.lbset {
                mv.lbset = omv.lbset;
            }
            if o.params.route == m.params.route {
                mv.route = omv.route.clone();
            }
            if o.params.redirect == m.params.redirect {
                mv.redirect = omv.redirect.clone();
            }
        }
    }
    // Members the manager added (in the old view, in neither file) stay, with their state.
    for omv in &old.members {
        let name = &omv.state.member.name;
        let in_old_file = ob.members.iter().any(|o| &o.name == name);
        let in_view = view.members.iter().any(|v| &v.state.member.name == name);
        if !in_old_file && !in_view {
            view.members.push(omv.clone());
        }
    }
}

/// What the request offers for choosing a member.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestKeys<'a> {
    /// The sticky route the request asks for.
    pub route: Option<&'a str>,
    /// Hash of the `hashkey` value (for lbmethod=hash).
    pub hash: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice {
    pub member: usize,
    /// The request asked for a route and got a member with another one
    /// (Apache's BALANCER_ROUTE_CHANGED).
    pub route_changed: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoChoice {
    /// Nothing usable (Apache's AH01170).
    AllInError,
    /// `nofailover=On` and the requested route's member is unusable.
    RouteUnavailable(String),
}

/// One worker's view and counters for one balancer.
/// A core's handle on a balancer view. Cloning it per request touches only this core's
/// reference count; the `Arc` inside, shared by every core, is cloned only when the epoch
/// moves (an `Arc` clone per request would be an atomic write to a line all cores share).
pub type CoreView = std::rc::Rc<Arc<BalancerView>>;

pub struct LocalBalancer {
    /// The core (worker thread id) whose counters this balancer's selections write.
    core: usize,
    epoch: Cell<u64>,
    view: RefCell<CoreView>,
    lbstatus: RefCell<Vec<i64>>,
    /// (set of candidate members as a bit list, table) for lbmethod=hash.
    maglev: RefCell<Option<(Vec<usize>, Maglev)>>,
    /// Scratch lists for [`LocalBalancer::best`] (regular, spare, standby members), kept so
    /// that choosing a member allocates nothing per request.
    scratch: RefCell<[Vec<usize>; 3]>,
}

impl LocalBalancer {
    pub fn new(shared: &SharedBalancer, core: usize) -> LocalBalancer {
        let view = shared.view();
        LocalBalancer {
            core,
            epoch: Cell::new(shared.epoch()),
            lbstatus: RefCell::new(vec![0; view.members.len()]),
            view: RefCell::new(std::rc::Rc::new(view)),
            maglev: RefCell::new(None),
            scratch: RefCell::new(Default::default()),
        }
    }

    /// The current view (after picking up any change: one atomic load when nothing moved).
    pub fn view(&self, shared: &SharedBalancer) -> CoreView {
        let e = shared.epoch();
        if e != self.epoch.get() {
            let v = shared.view();
            self.lbstatus.borrow_mut().resize(v.members.len(), 0);
            *self.view.borrow_mut() = std::rc::Rc::new(v);
            *self.maglev.borrow_mut() = None;
            self.epoch.set(e);
        }
        self.view.borrow().clone()
    }

    /// Chooses a member for a request, in `view` (which must come from [`Self::view`] for
    /// this request). `tried` members failed earlier in this request.
    pub fn select(
        &self,
        view: &BalancerView,
        table: &SharedTable,
        keys: RequestKeys<'_>,
        tried: &[usize],
    ) -> Result<Choice, NoChoice> {
        let usable = |m: usize| !tried.contains(&m) && table.usable(&view.members[m].state);
        if let (Some(route), Some(_)) = (keys.route, &view.sticky) {
            if let Some(m) = find_route(view, route, &usable) {
                self.sticky_hit(view, m, &usable);
                view.members[m].state.on_core(self.core).elected_one();
                return Ok(Choice {
                    member: m,
                    route_changed: view.members[m].route.as_deref() != Some(route),
                });
            }
            if view.nofailover {
                return Err(NoChoice::RouteUnavailable(route.to_string()));
            }
        }
        let pick = match self.best(view, table, keys.hash, &usable) {
            Some(m) => Some(m),
            None if view.forcerecovery => {
                // forcerecovery (Apache's default): when every member that could serve is
                // in error, clear the errors and try again instead of failing outright.
                let mut recovered = false;
                for (i, mv) in view.members.iter().enumerate() {
                    let bits = mv.state.status();
                    if !tried.contains(&i)
                        && bits & flag::E != 0
                        && bits & (flag::D | flag::S | flag::C) == 0
                    {
                        table.clear_error(&mv.state);
                        recovered = true;
                    }
                }
                if recovered {
                    self.best(view, table, keys.hash, &usable)
                } else {
                    None
                }
            }
            None => None,
        };
        let m = pick.ok_or(NoChoice::AllInError)?;
        view.members[m].state.on_core(self.core).elected_one();
        Ok(Choice {
            member: m,
            route_changed: keys
                .route
                .is_some_and(|r| view.members[m].route.as_deref() != Some(r)),
        })
    }

    /// Apache: a sticky hit also moves the counters, so routed traffic counts toward the
    /// proportions: every usable member gains its factor, the routed one pays the total.
    fn sticky_hit(&self, view: &BalancerView, routed: usize, usable: &dyn Fn(usize) -> bool) {
        let mut st = self.lbstatus.borrow_mut();
        let mut total = 0i64;
        for (i, mv) in view.members.iter().enumerate() {
            if usable(i) {
                st[i] += i64::from(mv.lbfactor);
                total += i64::from(mv.lbfactor);
            }
        }
        st[routed] -= total;
    }

    /// Apache's `ap_proxy_balancer_get_best_worker`: lbsets in order; within one, draining
    /// members are skipped (counted unusable unless spare or standby), regular members
    /// compete, one spare may stand in for each unusable regular member, and standbys are
    /// used only when nothing else was found.
    fn best(
        &self,
        view: &BalancerView,
        table: &SharedTable,
        key_hash: Option<u64>,
        usable: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        let mut scratch = self.scratch.borrow_mut();
        let [regular, spares, standbys] = &mut *scratch;
        // The lbsets in increasing order, found by scanning (members are few) rather than
        // collected and sorted.
        let mut after: Option<u8> = None;
        while let Some(set) = view
            .members
            .iter()
            .map(|m| m.lbset)
            .filter(|&s| after.is_none_or(|a| s > a))
            .min()
        {
            after = Some(set);
            regular.clear();
            spares.clear();
            standbys.clear();
            let mut unusable = 0usize;
            for (i, mv) in view.members.iter().enumerate() {
                if mv.lbset != set {
                    continue;
                }
                let bits = mv.state.status();
                if bits & flag::N != 0 {
                    if bits & (flag::R | flag::H) == 0 {
                        unusable += 1;
                    }
                    continue;
                }
                let ok = usable(i);
                if bits & flag::R != 0 {
                    if ok {
                        spares.push(i);
                    }
                } else if bits & flag::H != 0 {
                    if ok {
                        standbys.push(i);
                    }
                } else if ok {
                    regular.push(i);
                } else {
                    unusable += 1;
                }
            }
            regular.extend(spares.iter().take(unusable));
            let candidates: &[usize] = if regular.is_empty() {
                standbys
            } else {
                regular
            };
            if candidates.is_empty() {
                continue;
            }
            return Some(self.by_method(view, table, candidates, key_hash));
        }
        None
    }

    fn by_method(
        &self,
        view: &BalancerView,
        _table: &SharedTable,
        candidates: &[usize],
        key_hash: Option<u64>,
    ) -> usize {
        let mut st = self.lbstatus.borrow_mut();
        let factor = |i: usize| i64::from(view.members[i].lbfactor.max(1));
        match view.lbmethod {
            LbMethod::ByRequests | LbMethod::Heartbeat => {
                let mut total = 0;
                let mut best: Option<usize> = None;
                for &i in candidates {
                    st[i] += factor(i);
                    total += factor(i);
                    if best.is_none_or(|b| st[i] > st[b]) {
                        best = Some(i);
                    }
                }
                let b = best.unwrap_or(candidates[0]);
                st[b] -= total;
                b
            }
            LbMethod::ByBusyness => {
                let busy = |i: usize| view.members[i].state.busy_all.load(Ordering::Relaxed);
                let mut total = 0;
                let mut best: Option<usize> = None;
                for &i in candidates {
                    st[i] += factor(i);
                    total += factor(i);
                    let better = match best {
                        None => true,
                        Some(b) => busy(i) < busy(b) || (busy(i) == busy(b) && st[i] > st[b]),
                    };
                    if better {
                        best = Some(i);
                    }
                }
                let b = best.unwrap_or(candidates[0]);
                st[b] -= total;
                b
            }
            LbMethod::ByTraffic => {
                let traffic = |i: usize| {
                    let s = &view.members[i].state;
                    (s.sent() + s.received()) / factor(i) as u64
                };
                let mut best = candidates[0];
                for &i in &candidates[1..] {
                    if traffic(i) < traffic(best) {
                        best = i;
                    }
                }
                best
            }
            LbMethod::Hash => {
                drop(st);
                let Some(h) = key_hash else {
                    return candidates[0];
                };
                let mut cache = self.maglev.borrow_mut();
                let stale = cache.as_ref().is_none_or(|(set, _)| set != candidates);
                if stale {
                    let members: Vec<(usize, &str, u32)> = candidates
                        .iter()
                        .map(|&i| {
                            let s = &view.members[i].state.member;
                            (i, s.name.as_str(), view.members[i].lbfactor)
                        })
                        .collect();
                    *cache = Maglev::build(&members).map(|t| (candidates.to_vec(), t));
                }
                cache
                    .as_ref()
                    .map(|(_, t)| t.lookup(h))
                    .unwrap_or(candidates[0])
            }
        }
    }
}

/// Apache's `find_route_worker`: regular members first, then hot standbys; an unusable
/// member's `redirect` route is followed (bounded, to stop cycles).
fn find_route(view: &BalancerView, route: &str, usable: &dyn Fn(usize) -> bool) -> Option<usize> {
    find_route_depth(view, route, usable, 1)
}

fn find_route_depth(
    view: &BalancerView,
    route: &str,
    usable: &dyn Fn(usize) -> bool,
    depth: usize,
) -> Option<usize> {
    for standby_pass in [false, true] {
        for (i, mv) in view.members.iter().enumerate() {
            if mv.state.has(flag::H) != standby_pass || mv.route.as_deref() != Some(route) {
                continue;
            }
            if usable(i) {
                return Some(i);
            }
            if let Some(redirect) = &mv.redirect {
                if depth < view.members.len() {
                    if let Some(r) = find_route_depth(view, redirect, usable, depth + 1) {
                        return Some(r);
                    }
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_str, LoadOptions};

    struct Fixture {
        table: SharedTable,
        local: LocalBalancer,
    }

    fn fixture(members: &str, proxyset: &str) -> Fixture {
        let text = format!(
            "Listen 80\n<Proxy balancer://c>\n{members}{}</Proxy>\nProxyPass / balancer://c/\n",
            if proxyset.is_empty() {
                String::new()
            } else {
                format!("ProxySet {proxyset}\n")
            }
        );
        let cfg = load_str(&text, "t", &LoadOptions::default()).unwrap();
        let table = SharedTable::new(&cfg, 1);
        let local = LocalBalancer::new(&table.balancers[0], 0);
        Fixture { table, local }
    }

    fn members(params: &[&str]) -> String {
        params
            .iter()
            .enumerate()
            .map(|(i, p)| format!("BalancerMember http://127.0.0.1:{} {p}\n", 9001 + i))
            .collect()
    }

    impl Fixture {
        fn pick(&self) -> Option<usize> {
            self.pick_with(RequestKeys::default())
                .ok()
                .map(|c| c.member)
        }
        fn pick_with(&self, keys: RequestKeys) -> Result<Choice, NoChoice> {
            let view = self.local.view(&self.table.balancers[0]);
            self.local.select(&view, &self.table, keys, &[])
        }
        fn seq(&self, n: usize) -> String {
            (0..n)
                .map(|_| self.pick().map_or('-', |m| (b'a' + m as u8) as char))
                .collect()
        }
        fn member(&self, m: usize) -> Arc<SharedMember> {
            self.table.balancers[0].view().members[m].state.clone()
        }
    }

    #[test]
    fn spec_vectors() {
        let f = fixture(
            &members(&[
                "loadfactor=1",
                "loadfactor=1",
                "loadfactor=1",
                "loadfactor=2",
            ]),
            "",
        );
        assert_eq!(f.seq(10), "dabcddabcd");
        let f = fixture(&members(&["", "status=+D", "", ""]), "");
        assert_eq!(f.seq(6), "acdacd");
    }

    #[test]
    fn flags_table() {
        // (member params, picks, expected sequence)
        let cases: &[(&[&str], usize, &str)] = &[
            (&["", "status=S"], 4, "aaaa"),
            (&["", "status=+C"], 4, "aaaa"),
            // Configured in error with no error time: Apache's retry rule
            // (error_time + retry < now) tries it again at once.
            (&["status=+E", ""], 4, "abab"),
            (&["", "status=+N"], 4, "aaaa"),
            // Hot standby: only when nothing else.
            (&["", "status=+H"], 3, "aaa"),
            (&["status=+D", "status=+H"], 3, "bbb"),
            // Hot spare: stands in one for one for unusable regular members.
            (&["", "", "status=+R"], 4, "abab"),
            (&["", "status=+D", "status=+R"], 4, "acac"),
            // Draining counts as unusable for spares.
            (&["", "status=+N", "status=+R"], 4, "acac"),
            // A standby does not step in while a spare can.
            (&["status=+D", "status=+R", "status=+H"], 3, "bbb"),
            (&["status=+D", "status=+D", "status=+H"], 3, "ccc"),
            (&["status=+D", "status=+S"], 2, "--"),
        ];
        for (params, n, want) in cases {
            let f = fixture(&members(params), "");
            assert_eq!(f.seq(*n), *want, "{params:?}");
        }
    }

    #[test]
    fn lbset_tiers() {
        let f = fixture(&members(&["lbset=1", "", ""]), "");
        assert_eq!(f.seq(4), "bcbc");
        f.member(1).set_flag(flag::D, true);
        f.member(2).set_flag(flag::D, true);
        assert_eq!(f.seq(2), "aa");
    }

    #[test]
    fn error_state_retry_and_ignore_flag() {
        let f = fixture(&members(&["", ""]), "");
        let a = f.member(0);
        assert!(f.table.set_error(&a, Duration::from_secs(60)));
        assert_eq!(f.seq(3), "bbb");
        // Retry time passed: tried again.
        assert!(f.table.set_error(&a, Duration::from_millis(1)));
        std::thread::sleep(Duration::from_millis(5));
        assert!(f.seq(4).contains('a'));
        assert!(!a.has(flag::E));
        // Flag I: never put in error.
        a.set_flag(flag::I, true);
        assert!(!f.table.set_error(&a, Duration::from_secs(60)));
        assert!(!a.has(flag::E));
    }

    #[test]
    fn forcerecovery_on_and_off() {
        let f = fixture(&members(&["", ""]), "");
        for m in 0..2 {
            f.table.set_error(&f.member(m), Duration::from_secs(60));
        }
        assert!(
            f.pick().is_some(),
            "forcerecovery clears errors when all are in error"
        );
        let f = fixture(&members(&["", ""]), "forcerecovery=Off");
        for m in 0..2 {
            f.table.set_error(&f.member(m), Duration::from_secs(60));
        }
        assert_eq!(
            f.pick_with(RequestKeys::default()),
            Err(NoChoice::AllInError)
        );
    }

    #[test]
    fn sticky_routes_redirect_and_nofailover() {
        let f = fixture(
            &members(&["route=n1", "route=n2 redirect=n1", "route=n3"]),
            "stickysession=JSESSIONID",
        );
        let pick = |route| {
            f.pick_with(RequestKeys {
                route: Some(route),
                hash: None,
            })
        };
        assert_eq!(
            pick("n2").unwrap(),
            Choice {
                member: 1,
                route_changed: false
            }
        );
        // Sticky requests go to a draining member.
        f.member(1).set_flag(flag::N, true);
        assert_eq!(pick("n2").unwrap().member, 1);
        // Unusable: its redirect route is used.
        f.member(1).set_flag(flag::D, true);
        assert_eq!(
            pick("n2").unwrap(),
            Choice {
                member: 0,
                route_changed: true
            }
        );
        // No redirect: ordinary balancing, route changed.
        f.member(2).set_flag(flag::S, true);
        let c = pick("n3").unwrap();
        assert!(c.route_changed && c.member != 2);
        // Unknown route: balancing.
        assert!(pick("zz").unwrap().route_changed);
        let f = fixture(
            &members(&["route=n1", "route=n2"]),
            "stickysession=JSESSIONID nofailover=On",
        );
        f.member(1).set_flag(flag::E, true);
        f.table.set_error(&f.member(1), Duration::from_secs(60));
        assert_eq!(
            f.pick_with(RequestKeys {
                route: Some("n2"),
                hash: None
            }),
            Err(NoChoice::RouteUnavailable("n2".into()))
        );
    }

    #[test]
    fn sticky_hits_move_byrequests_counters() {
        let f = fixture(&members(&["route=n1", "route=n2"]), "stickysession=S");
        // Two sticky hits on n1, then balancing must favour n2 twice to even out.
        for _ in 0..2 {
            f.pick_with(RequestKeys {
                route: Some("n1"),
                hash: None,
            })
            .unwrap();
        }
        assert_eq!(f.seq(2), "bb");
    }

    #[test]
    fn bybusyness_prefers_idle_members_and_bytraffic_light_ones() {
        let f = fixture(&members(&["", "", ""]), "lbmethod=bybusyness");
        let m: Vec<_> = (0..3).map(|i| f.member(i)).collect();
        // Requests in flight, as the proxy counts them (a guard each).
        fn hold(m: &SharedMember, n: usize) -> Vec<BusyGuard<'_>> {
            (0..n).map(|_| m.busy_guard(0, true)).collect()
        }
        let (_a, mut b, _c) = (hold(&m[0], 3), hold(&m[1], 1), hold(&m[2], 2));
        assert_eq!(f.seq(2), "bb");
        b.extend(hold(&m[1], 4));
        assert_eq!(f.seq(1), "c");
        assert_eq!(m[1].busy(), 5);
        drop(b);
        assert_eq!(m[1].busy(), 0);
        // Equal busyness: byrequests order.
        let f = fixture(&members(&["", "", ""]), "lbmethod=bybusyness");
        let s = f.seq(30);
        for c in ['a', 'b', 'c'] {
            assert_eq!(s.matches(c).count(), 10, "{s}");
        }
        let f = fixture(&members(&["loadfactor=2", ""]), "lbmethod=bytraffic");
        f.member(0).on_core(0).add_sent(3000);
        f.member(1).on_core(0).add_received(1000);
        // 3000/200 = 15 > 1000/100 = 10
        assert_eq!(f.seq(1), "b");
        f.member(1).on_core(0).add_received(1000);
        assert_eq!(f.seq(1), "a");
    }

    #[test]
    fn hash_is_stable_and_remaps_little_when_a_member_leaves() {
        let f = fixture(&members(&["", "", "", "", ""]), "lbmethod=hash");
        let keys: Vec<u64> = (0..5000u64)
            .map(|k| hash::fnv1a(&k.to_le_bytes()))
            .collect();
        let map = |f: &Fixture| -> Vec<usize> {
            keys.iter()
                .map(|&h| {
                    f.pick_with(RequestKeys {
                        route: None,
                        hash: Some(h),
                    })
                    .unwrap()
                    .member
                })
                .collect()
        };
        let before = map(&f);
        assert_eq!(before, map(&f), "same key, same member");
        f.member(2).set_flag(flag::D, true);
        let after = map(&f);
        let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        let moved_others = before
            .iter()
            .zip(&after)
            .filter(|(a, b)| **a != 2 && a != b)
            .count();
        assert!(moved < 5000 / 4, "moved {moved}");
        assert!(
            moved_others < 5000 / 20,
            "keys of staying members moved: {moved_others}"
        );
        assert!(after.iter().all(|&m| m != 2));
    }

    #[test]
    fn view_changes_reach_a_worker_on_its_next_pick() {
        let f = fixture(&members(&["", ""]), "");
        assert_eq!(f.seq(2), "ab");
        f.table.balancers[0].update(|v| v.members[0].lbfactor = 300);
        assert_eq!(f.seq(4), "aaba");
    }

    #[test]
    fn describe_flags() {
        assert_eq!(flag::describe(0), "Ok");
        assert_eq!(flag::describe(flag::D | flag::E), "DE");
    }
}
