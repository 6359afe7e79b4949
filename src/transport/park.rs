//! Parking idle client connections.
//!
//! A keep-alive connection waiting for its next request costs its task (the connection's
//! state and suspended future, about 1.2 KiB) for as long as it waits. Apache's event MPM
//! hands such connections to its listener thread's pollset and frees the worker thread;
//! this module does the same per worker. After `IdleParkAfter` without a byte, the
//! connection's task ends. What it needs later waits in the worker's parking lot, about
//! 100 bytes: the socket, the peer and local addresses, the request count and the
//! keep-alive deadline. The socket is watched by an epoll set of the worker's own. When the
//! client sends again (or closes), the socket comes back as a new connection task on the
//! worker's latest configuration; at its deadline, or when the worker drains, it is closed.
//!
//! One epoll set, waited on by one io_uring poll (or the epoll driver's readiness), replaces
//! one readiness operation and one task per idle connection. Parking costs a few system
//! calls (dup, epoll_ctl, close) and resuming a few more, so it only pays for connections
//! idle long enough that those calls are rare next to their requests.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::Transport;

/// Events taken from the epoll set per call.
const BATCH: usize = 64;
/// How often the lot looks for expired deadlines while it holds connections.
const TICK: Duration = crate::runtime::timer::TICK;

/// What a parked connection keeps.
pub struct Parked {
    fd: OwnedFd,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// Requests served so far (keep-alive limits and timeouts depend on it).
    pub requests: u32,
    /// When the connection's idle time is up.
    pub deadline: Instant,
}

/// A parked connection whose client sent something: the socket and what it kept.
pub struct Resumed {
    pub stream: std::net::TcpStream,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub requests: u32,
}

/// The worker's epoll set. monoio waits for readiness only on its socket types; its
/// `TcpStream` is used as the holder because the wait (an io_uring poll, or epoll on the
/// epoll driver) works on any pollable descriptor and nothing else is called on it.
struct EpollSet {
    waiter: monoio::net::TcpStream,
}

impl EpollSet {
    fn new() -> io::Result<EpollSet> {
        // SAFETY: epoll_create1 with a valid flag; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let std = unsafe { std::net::TcpStream::from_raw_fd(fd) };
        Ok(EpollSet {
            waiter: monoio::net::TcpStream::from_std(std)?,
        })
    }

    fn fd(&self) -> RawFd {
        self.waiter.as_raw_fd()
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events,
            u64: fd as u64,
        };
        // SAFETY: both descriptors are open; `ev` lives for the call.
        if unsafe { libc::epoll_ctl(self.fd(), op, fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Descriptors that became readable (or hung up), without blocking.
    fn ready(&self, out: &mut Vec<RawFd>) -> io::Result<()> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; BATCH];
        loop {
            // SAFETY: `events` has room for BATCH entries; timeout 0 never blocks.
            let n = unsafe {
                libc::epoll_wait(self.fd(), events.as_mut_ptr(), BATCH as libc::c_int, 0)
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let n = n as usize;
            out.extend(events[..n].iter().map(|e| e.u64 as RawFd));
            if n < BATCH {
                return Ok(());
            }
        }
    }
}

/// What the lot does with connections that leave it: the worker side of accounting
/// (open-connection counters, drain) and of spawning.
pub trait LotOwner {
    fn lot(&self) -> &ParkingLot;
    /// A connection parked.
    fn parked(&self);
    /// A parked connection closed without coming back (deadline, drain, error).
    fn closed(&self);
    /// A parked connection's client sent something: serve it.
    fn resume(self: &Rc<Self>, r: Resumed);
    fn draining(&self) -> bool;
    /// Resolves when the worker starts draining.
    fn drain_wait(&self) -> impl std::future::Future<Output = ()> + '_;
}

/// The worker's parked connections.
#[derive(Default)]
pub struct ParkingLot {
    epoll: RefCell<Option<Rc<EpollSet>>>,
    parked: RefCell<HashMap<RawFd, Parked>>,
    /// Deadlines, soonest first. An entry whose connection left (or whose descriptor now
    /// belongs to a later parked connection with another deadline) is skipped when it comes
    /// up. A heap in one allocation, not a tree of nodes: after a burst, nodes scattered
    /// among freed connection tasks would keep those heap pages resident.
    deadlines: RefCell<BinaryHeap<Reverse<(Instant, RawFd)>>>,
    /// Whether the lot's task runs (it ends when the lot is empty).
    running: Cell<bool>,
    /// Connections parked since [`ParkingLot::take_parked_count`] last asked.
    parked_count: Cell<usize>,
}

impl ParkingLot {
    pub fn len(&self) -> usize {
        self.parked.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Parks the connection on `stream` (which the caller closes afterwards: the lot keeps
    /// its own duplicate of the socket). Returns false, and changes nothing, when it
    /// cannot (a stream whose state is not all in the kernel, such as TLS, never parks);
    /// the connection then keeps waiting in its task.
    pub fn park<O: LotOwner + 'static>(
        &self,
        owner: &Rc<O>,
        stream: &impl Transport,
        peer: SocketAddr,
        local: SocketAddr,
        requests: u32,
        deadline: Instant,
    ) -> bool {
        if owner.draining() {
            return false;
        }
        let Some(fd) = stream.socket().map(AsRawFd::as_raw_fd) else {
            return false;
        };
        let set = match self.epoll_set() {
            Ok(s) => s,
            Err(e) => {
                warn!("cannot create the parking epoll set: {e}");
                return false;
            }
        };
        // The connection's own descriptor is still referenced by its cancelled readiness
        // operation, so the lot takes a duplicate and the task closes the original.
        // SAFETY: dup(2) of an open descriptor; the result is checked and owned below.
        let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            debug!("park: dup failed: {}", io::Error::last_os_error());
            return false;
        }
        // SAFETY: `dup` is a fresh descriptor nobody else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(dup) };
        // Level-triggered: bytes that arrived before this call report at once.
        let events = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT) as u32;
        if let Err(e) = set.ctl(libc::EPOLL_CTL_ADD, dup, events) {
            debug!("park: epoll_ctl failed: {e}");
            return false;
        }
        self.insert(Parked {
            fd: owned,
            peer,
            local,
            requests,
            deadline,
        });
        owner.parked();
        if !self.running.replace(true) {
            monoio::spawn(run(owner.clone(), set));
        }
        true
    }

    fn epoll_set(&self) -> io::Result<Rc<EpollSet>> {
        let mut slot = self.epoll.borrow_mut();
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let s = Rc::new(EpollSet::new()?);
        *slot = Some(s.clone());
        Ok(s)
    }

    fn insert(&self, p: Parked) {
        let (fd, deadline) = (p.fd.as_raw_fd(), p.deadline);
        self.parked.borrow_mut().insert(fd, p);
        self.push_deadline(deadline, fd);
        self.parked_count.set(self.parked_count.get() + 1);
    }

    /// Connections parked since the last call (for the worker's memory housekeeping).
    pub fn take_parked_count(&self) -> usize {
        self.parked_count.replace(0)
    }

    fn push_deadline(&self, deadline: Instant, fd: RawFd) {
        let mut heap = self.deadlines.borrow_mut();
        heap.push(Reverse((deadline, fd)));
        // Skipped entries pile up when connections resume; rebuild (from the parked
        // connections, this one included) when they dominate.
        let parked = self.parked.borrow();
        if heap.len() > 2 * parked.len() + 64 {
            heap.clear();
            heap.extend(parked.iter().map(|(fd, p)| Reverse((p.deadline, *fd))));
            heap.shrink_to_fit();
        }
    }

    fn take(&self, fd: RawFd) -> Option<Parked> {
        self.parked.borrow_mut().remove(&fd)
    }

    /// Closes every parked connection whose deadline is before `now`. Returns how many.
    fn expire(&self, now: Instant) -> usize {
        let mut n = 0;
        let mut heap = self.deadlines.borrow_mut();
        while let Some(&Reverse((at, fd))) = heap.peek() {
            if at > now {
                break;
            }
            heap.pop();
            let mut parked = self.parked.borrow_mut();
            if parked.get(&fd).is_some_and(|p| p.deadline == at) {
                self.unwatch(fd);
                parked.remove(&fd);
                n += 1;
            }
        }
        n
    }

    /// Closes the parked connection that has waited longest (the soonest deadline: every
    /// connection parks with the same keep-alive timeout), to make room for a new one.
    /// Returns whether there was one; the caller accounts for its close.
    pub fn evict_oldest(&self) -> bool {
        let mut heap = self.deadlines.borrow_mut();
        while let Some(Reverse((at, fd))) = heap.pop() {
            let mut parked = self.parked.borrow_mut();
            if parked.get(&fd).is_some_and(|p| p.deadline == at) {
                self.unwatch(fd);
                parked.remove(&fd);
                return true;
            }
        }
        false
    }

    /// Closes every parked connection (the worker is draining). Returns how many.
    fn close_all(&self) -> usize {
        let n = self.len();
        for fd in self.parked.borrow().keys() {
            self.unwatch(*fd);
        }
        self.parked.borrow_mut().clear();
        self.release_if_empty();
        n
    }

    /// Takes a descriptor out of the epoll set before it is closed. Closing alone removes
    /// it only once every descriptor of the socket is closed, and the connection's own one
    /// may still be waiting for its queued close; the set would then report the socket
    /// under a number that a later parked connection may have been given.
    fn unwatch(&self, fd: RawFd) {
        if let Some(set) = self.epoll.borrow().as_ref() {
            let _ = set.ctl(libc::EPOLL_CTL_DEL, fd, 0);
        }
    }

    /// An empty lot gives its tables' memory back (a burst may have grown them far).
    fn release_if_empty(&self) {
        if self.is_empty() {
            *self.parked.borrow_mut() = HashMap::new();
            *self.deadlines.borrow_mut() = BinaryHeap::new();
        }
    }
}

/// The lot's task: hands ready connections back to the worker, closes expired ones, and
/// ends when the lot is empty (the next park starts it again).
async fn run<O: LotOwner + 'static>(owner: Rc<O>, set: Rc<EpollSet>) {
    let lot = owner.lot();
    let mut ready = Vec::new();
    loop {
        let woke = monoio::select! {
            r = set.waiter.readable(false) => r.map(|()| true),
            _ = monoio::time::sleep(TICK) => Ok(false),
            _ = owner.drain_wait() => {
                for _ in 0..lot.close_all() {
                    owner.closed();
                }
                break;
            }
        };
        match woke {
            Ok(true) => {
                ready.clear();
                if let Err(e) = set.ready(&mut ready) {
                    warn!("parking lot: epoll_wait failed: {e}");
                }
                for &fd in &ready {
                    let Some(p) = lot.take(fd) else { continue };
                    lot.unwatch(fd);
                    owner.resume(Resumed {
                        stream: std::net::TcpStream::from(p.fd),
                        peer: p.peer,
                        local: p.local,
                        requests: p.requests,
                    });
                }
            }
            Ok(false) => {}
            Err(e) => {
                warn!(
                    "parking lot: waiting on the epoll set failed ({e}); closing its connections"
                );
                for _ in 0..lot.close_all() {
                    owner.closed();
                }
                break;
            }
        }
        for _ in 0..lot.expire(Instant::now()) {
            owner.closed();
        }
        if lot.is_empty() {
            break;
        }
    }
    lot.release_if_empty();
    lot.running.set(false);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parked(deadline: Instant) -> Parked {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        Parked {
            fd: OwnedFd::from(a),
            peer: addr,
            local: addr,
            requests: 1,
            deadline,
        }
    }

    #[test]
    fn deadlines_expire_in_order_and_skip_connections_that_left() {
        let lot = ParkingLot::default();
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let first = parked(t0 + s);
        let fd = first.fd.as_raw_fd();
        lot.insert(first);
        lot.insert(parked(t0 + 2 * s));
        assert_eq!(lot.expire(t0), 0);
        // The first one resumes; its descriptor number comes back with a later deadline
        // (as a new connection's would).
        let resumed = lot.take(fd).unwrap();
        let mut again = parked(t0 + 3 * s);
        again.fd = resumed.fd;
        lot.insert(again);
        assert_eq!(
            lot.expire(t0 + s + s / 2),
            0,
            "the stale entry closes nothing"
        );
        assert_eq!(lot.len(), 2);
        assert_eq!(lot.expire(t0 + 2 * s + s / 2), 1);
        assert_eq!(lot.expire(t0 + 4 * s), 1);
        assert!(lot.is_empty());
        assert_eq!(lot.take_parked_count(), 3);
    }

    #[test]
    fn skipped_entries_do_not_pile_up() {
        let lot = ParkingLot::default();
        let t0 = Instant::now();
        for i in 0..1000u32 {
            let p = parked(t0 + Duration::from_secs(60) + Duration::from_millis(i.into()));
            let fd = p.fd.as_raw_fd();
            lot.insert(p);
            // Every connection resumes right away, leaving its heap entry behind.
            lot.take(fd);
        }
        assert!(lot.deadlines.borrow().len() <= 66);
        lot.release_if_empty();
        assert_eq!(lot.deadlines.borrow().capacity(), 0);
    }
}
