//! Name lookups off the event loops: the client's host name for `Require host` (looked up
//! the way Apache does, double-reverse: the PTR name must resolve back to the client's
//! address), and the address of a member added through balancer-manager.
//!
//! Lookups are blocking libc calls. They run on a small pool of helper threads
//! ([`super::blocking::Pool`]) fed by a bounded queue, so a flood of clients from new addresses costs a bounded number of
//! threads and queued jobs, never one thread each. A lookup already in flight is not
//! started again: later askers wait for the same answer. Results (names and failures) are
//! cached per worker for a minute, so a client pays for at most one lookup per minute per
//! core, and only on paths whose rules name hosts. When the queue is full, or a lookup
//! takes longer than [`LOOKUP_TIMEOUT`], the answer is "no name" (a `Require host` rule
//! then does not grant).

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::blocking::{completion, Done, Job, Pool};

/// How long a lookup result is kept.
const CACHE_FOR: Duration = Duration::from_secs(60);
/// A lookup slower than this counts as "no name" (the request is then judged without one).
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Bounds the per-worker cache.
const CACHE_MAX: usize = 4096;
/// Helper threads for blocking lookups: enough for a resolver that answers in
/// milliseconds to keep up with many new clients a second, few enough to cost nothing.
const POOL_THREADS: usize = 4;
/// Lookups waiting for a helper thread; past this, new ones answer "no name" at once.
const QUEUE_MAX: usize = 1024;

thread_local! {
    static CACHE: RefCell<HashMap<IpAddr, (Option<String>, Instant)>> = RefCell::new(HashMap::new());
}

/// What to look up.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Query {
    /// The verified (double-reverse) name of an address.
    Name(IpAddr),
    /// The first address of a host name.
    Addr(String, u16),
}

#[derive(Clone, Debug)]
enum Answer {
    Name(Option<String>),
    Addr(Option<SocketAddr>),
}

type Waiters = Vec<Done<Answer>>;

struct Lookups {
    pool: Pool,
    /// Lookups queued or running, with everyone waiting for each.
    inflight: Mutex<HashMap<Query, Waiters>>,
}

fn lookups() -> &'static Lookups {
    static LOOKUPS: OnceLock<Lookups> = OnceLock::new();
    LOOKUPS.get_or_init(|| Lookups {
        pool: Pool::new("dns", POOL_THREADS, QUEUE_MAX),
        inflight: Mutex::new(HashMap::new()),
    })
}

/// Lookups run so far (for tests: de-duplication shows here).
static JOBS_RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// What a helper thread does for `q` (blocking).
fn answer(q: &Query) -> Answer {
    JOBS_RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match q {
        Query::Name(ip) => Answer::Name(verified_name(*ip)),
        Query::Addr(host, port) => Answer::Addr(
            (host.as_str(), *port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next()),
        ),
    }
}

/// Hands `answer` to everyone waiting for `q`.
fn finish(q: &Query, answer: Answer) {
    let waiters = lookups()
        .inflight
        .lock()
        .ok()
        .and_then(|mut m| m.remove(q))
        .unwrap_or_default();
    for w in waiters {
        w.set(answer.clone());
    }
}

/// Looks `q` up on the pool, joining a lookup of the same query already in flight.
/// `None`: the queue was full, or no answer within [`LOOKUP_TIMEOUT`].
async fn lookup(q: Query) -> Option<Answer> {
    let l = lookups();
    let (done, wait) = completion();
    let first = {
        let mut m = l.inflight.lock().ok()?;
        let waiters = m.entry(q.clone()).or_default();
        waiters.push(done);
        waiters.len() == 1
    };
    if first {
        let job_q = q.clone();
        let job: Job = Box::new(move || finish(&job_q, answer(&job_q)));
        if l.pool.submit(job).is_err() {
            tracing::warn!("name lookups: queue full; {q:?} answered without a name");
            finish(&q, Answer::Name(None));
            return None;
        }
    }
    crate::runtime::timer::timeout(LOOKUP_TIMEOUT, wait)
        .await
        .ok()
        .map(|a| a.unwrap_or(Answer::Name(None)))
}

/// The verified host name of `ip`, or `None` when it has none (or the lookup failed).
pub async fn client_name(ip: IpAddr) -> Option<String> {
    let now = Instant::now();
    if let Some(hit) = CACHE.with(|c| {
        c.borrow()
            .get(&ip)
            .filter(|(_, at)| now.duration_since(*at) < CACHE_FOR)
            .map(|(n, _)| n.clone())
    }) {
        return hit;
    }
    let name = match lookup(Query::Name(ip)).await {
        Some(Answer::Name(n)) => n,
        _ => None,
    };
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= CACHE_MAX {
            c.retain(|_, (_, at)| now.duration_since(*at) < CACHE_FOR);
            if c.len() >= CACHE_MAX {
                c.clear();
            }
        }
        c.insert(ip, (name.clone(), now));
    });
    name
}

/// The first address of `host` (a name or a literal address), looked up on the pool.
pub async fn resolve(host: &str, port: u16) -> Option<SocketAddr> {
    if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, port));
    }
    match lookup(Query::Addr(host.to_string(), port)).await {
        Some(Answer::Addr(a)) => a,
        _ => None,
    }
}

/// The server's name where no `ServerName` gives one, found as Apache's
/// `ap_get_local_host` finds it: the host name, resolved and looked up back; if that yields
/// no fully qualified name, the resolved address; `127.0.0.1` when nothing resolves.
/// Blocking: called once per configuration load, never on a worker's event loop.
pub fn local_host_name() -> String {
    let mut buf = [0 as libc::c_char; 256];
    // SAFETY: the buffer is writable for the length passed, less one byte so that the
    // result is NUL-terminated even when truncated.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr(), buf.len() - 1) };
    if rc != 0 {
        return "127.0.0.1".into();
    }
    // SAFETY: gethostname wrote a NUL-terminated string (the last byte is still 0).
    let host = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    let Some(addr) = (host.as_str(), 0)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
    else {
        return "127.0.0.1".into();
    };
    match reverse(addr) {
        Some(name) if name.contains('.') => name,
        _ => addr.ip().to_string(),
    }
}

/// PTR lookup, then a forward lookup that must contain `ip` (blocking).
fn verified_name(ip: IpAddr) -> Option<String> {
    let sa = SocketAddr::new(ip, 0);
    let name = reverse(sa)?;
    let back = (name.as_str(), 0).to_socket_addrs().ok()?;
    let mut found = false;
    for a in back {
        found |= a.ip() == ip
            || matches!((a.ip(), ip), (IpAddr::V4(v4), IpAddr::V6(v6)) if v6.to_ipv4_mapped() == Some(v4));
    }
    found.then_some(name)
}

fn reverse(sa: SocketAddr) -> Option<String> {
    let storage = socket2::SockAddr::from(sa);
    let mut host = [0 as libc::c_char; 1025];
    // SAFETY: `storage` is a valid sockaddr of the given length; `host` is writable for
    // its full length, which is passed; the service buffer is null with length 0.
    let rc = unsafe {
        libc::getnameinfo(
            storage.as_ptr().cast(),
            storage.len(),
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: getnameinfo wrote a NUL-terminated string into `host` on success.
    let name = unsafe { std::ffi::CStr::from_ptr(host.as_ptr()) };
    name.to_str().ok().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_host_name_is_a_name_with_a_dot_or_an_address() {
        let n = local_host_name();
        assert!(n.contains('.') || n.parse::<IpAddr>().is_ok(), "{n}");
    }

    #[test]
    fn concurrent_lookups_of_one_address_share_a_job_and_all_get_the_answer() {
        let jobs_before = JOBS_RUN.load(std::sync::atomic::Ordering::Relaxed);
        let names = crate::runtime::run_local(crate::runtime::DriverChoice::Auto, |_| async {
            let ip: IpAddr = "127.0.0.1".parse().unwrap();
            // Fifty tasks ask at once: one job runs, all fifty get its answer.
            let tasks: Vec<_> = (0..50)
                .map(|_| monoio::spawn(lookup(Query::Name(ip))))
                .collect();
            let mut answers = Vec::new();
            for t in tasks {
                answers.push(t.await);
            }
            let addr = resolve("localhost", 80).await;
            (answers, addr)
        })
        .unwrap();
        let (answers, addr) = names;
        assert_eq!(answers.len(), 50);
        for a in answers {
            assert!(
                matches!(a, Some(Answer::Name(Some(ref n))) if n.starts_with("localhost")),
                "{a:?}"
            );
        }
        assert!(addr.is_some_and(|a| a.ip().is_loopback()));
        // One job for the fifty name lookups (a few more only if some asked after the
        // first answer came), one for the address.
        let jobs = JOBS_RUN.load(std::sync::atomic::Ordering::Relaxed) - jobs_before;
        assert!(jobs < 10, "{jobs} lookups ran for 50 identical questions");
        // Nothing is left in flight once everyone has its answer.
        assert!(lookups().inflight.lock().unwrap().is_empty());
    }

    #[test]
    fn loopback_has_a_verified_name() {
        // /etc/hosts maps 127.0.0.1 to localhost on every system this runs on.
        let name = verified_name("127.0.0.1".parse().unwrap());
        assert!(name.is_some_and(|n| n.starts_with("localhost")));
    }
}
