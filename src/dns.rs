//! The client's host name for `Require host`, looked up the way Apache does
//! (double-reverse: the PTR name must resolve back to the client's address).
//!
//! Lookups are blocking libc calls, so they run on a short-lived helper thread while the
//! connection's task waits; the worker's event loop never blocks. Results (names and
//! failures) are cached per worker for a minute, so a client pays for at most one lookup
//! per minute per core, and only on paths whose rules name hosts.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How long a lookup result is kept.
const CACHE_FOR: Duration = Duration::from_secs(60);
/// A lookup slower than this counts as "no name" (the request is then judged without one).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Bounds the per-worker cache.
const CACHE_MAX: usize = 4096;

thread_local! {
    static CACHE: RefCell<HashMap<IpAddr, (Option<String>, Instant)>> = RefCell::new(HashMap::new());
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
    let slot = Arc::new(Mutex::new(Slot::default()));
    let for_thread = slot.clone();
    let spawned = std::thread::Builder::new()
        .name("ringproxy-dns".into())
        .spawn(move || {
            let name = verified_name(ip);
            if let Ok(mut s) = for_thread.lock() {
                s.done = Some(name);
                if let Some(w) = s.waker.take() {
                    w.wake();
                }
            }
        });
    let name = match spawned {
        Ok(_) => crate::timer::timeout(LOOKUP_TIMEOUT, Wait { slot })
            .await
            .unwrap_or(None),
        Err(e) => {
            tracing::warn!("cannot start a name lookup for {ip}: {e}");
            None
        }
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

#[derive(Default)]
struct Slot {
    done: Option<Option<String>>,
    waker: Option<Waker>,
}

struct Wait {
    slot: Arc<Mutex<Slot>>,
}

impl Future for Wait {
    type Output = Option<String>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Ok(mut s) = self.slot.lock() else {
            return Poll::Ready(None);
        };
        match s.done.take() {
            Some(name) => Poll::Ready(name),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
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
    fn loopback_has_a_verified_name() {
        // /etc/hosts maps 127.0.0.1 to localhost on every system this runs on.
        let name = verified_name("127.0.0.1".parse().unwrap());
        assert!(name.is_some_and(|n| n.starts_with("localhost")));
    }
}
