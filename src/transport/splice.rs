//! Large bodies move socket -> pipe -> socket with splice(2): the bytes never enter user
//! space (no copy in, no copy out), which is what makes a proxy cheap per megabyte.
//!
//! The splices are plain system calls made on the worker's own thread with non-blocking
//! descriptors, waiting for readiness (an io_uring poll, or epoll) only when a socket has
//! nothing to give or no room to take. io_uring's own splice operation is not used: the
//! kernel always runs it on an io-wq helper thread, whose hand-offs cost about what the
//! avoided copies save (see bench/RESULTS.md).
//!
//! A pipe carries one body at a time, so each worker keeps a small pool of pipes and lends
//! one to a connection for the length of a body.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::Transport;
use crate::http::reqtimeout::RateDeadline;
use crate::runtime::timer::coarse_now;
use monoio::net::TcpStream;

/// The capacity asked for a pipe that carries a body, which is also the most one splice
/// moves. Four times the default (16 pages): a 1 MiB body takes 4 trips through the pipe
/// instead of 16, which cuts the proxy's CPU per MB of uploads by about 40 % and of
/// downloads by about 20 % (bench/RESULTS.md). Pages are taken only while bytes sit in
/// the pipe; what a larger pipe does cost is the per-user pipe accounting, hence the budget.
const PIPE_SIZE: usize = 256 * 1024;
/// Linux's default pipe capacity, assumed when the capacity cannot be read.
const PIPE_DEFAULT: usize = 64 * 1024;
/// Idle default pipes kept per worker.
const KEEP: usize = 64;
/// Idle large pipes kept per worker.
const KEEP_LARGE: usize = 16;
/// Large pipes for the whole process when the kernel sets no per-user limit.
const LARGE_UNLIMITED: usize = 1024;
/// Large pipes for the whole process when the limit cannot be read.
const LARGE_UNKNOWN: usize = 16;

/// How many large pipes the process may hold at once. The kernel counts every pipe's
/// capacity against its user (`fs.pipe-user-pages-soft`, 16,384 pages by default), and a
/// user past that limit gets 2-page pipes for everything, tunnels and other processes of
/// the same user included. Large pipes may take a quarter of the limit; past the budget a
/// body uses a default pipe, which is only a little slower.
pub struct LargeBudget {
    alive: AtomicUsize,
    limit: usize,
}

impl LargeBudget {
    pub const fn new(limit: usize) -> LargeBudget {
        LargeBudget {
            alive: AtomicUsize::new(0),
            limit,
        }
    }

    /// The budget from the user's soft limit in pages (`None`: unreadable; `Some(0)`: no
    /// limit) and the page size.
    fn limit_for(soft_pages: Option<usize>, page: usize) -> usize {
        match soft_pages {
            None => LARGE_UNKNOWN,
            Some(0) => LARGE_UNLIMITED,
            Some(pages) => pages / 4 / (PIPE_SIZE / page.max(1)).max(1),
        }
    }

    /// The process-wide budget, read once from /proc.
    fn process() -> &'static LargeBudget {
        static BUDGET: OnceLock<LargeBudget> = OnceLock::new();
        BUDGET.get_or_init(|| {
            let soft = std::fs::read_to_string("/proc/sys/fs/pipe-user-pages-soft")
                .ok()
                .and_then(|s| s.trim().parse().ok());
            // SAFETY: sysconf with a valid name has no preconditions.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            LargeBudget::new(Self::limit_for(soft, usize::try_from(page).unwrap_or(4096)))
        })
    }

    fn has_room(&self) -> bool {
        self.alive.load(Ordering::Acquire) < self.limit
    }

    fn take(&self) -> bool {
        self.alive
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .is_ok()
    }

    fn give_back(&self) {
        self.alive.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A pipe's two ends, both non-blocking, and its capacity.
pub struct PipePair {
    read: OwnedFd,
    write: OwnedFd,
    cap: usize,
    /// Set for a large pipe: the budget it counts against until dropped.
    budget: Option<&'static LargeBudget>,
}

impl PipePair {
    fn new() -> io::Result<PipePair> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let mut p = PipePair {
            read,
            write,
            cap: PIPE_DEFAULT,
            budget: None,
        };
        p.cap = p.capacity();
        Ok(p)
    }

    /// A pipe of `PIPE_SIZE` when the budget and the kernel allow it, else a default one;
    /// with whether the kernel refused.
    fn large(budget: &'static LargeBudget) -> io::Result<(PipePair, bool)> {
        let mut p = PipePair::new()?;
        let mut refused = false;
        if budget.take() {
            // The kernel may still refuse (an unprivileged user past the soft limit, or a
            // lower fs.pipe-max-size): then the default pipe serves.
            // SAFETY: fcntl on an open descriptor with an integer argument.
            let r = unsafe {
                libc::fcntl(
                    p.write.as_raw_fd(),
                    libc::F_SETPIPE_SZ,
                    PIPE_SIZE as libc::c_int,
                )
            };
            if r >= 0 {
                p.budget = Some(budget);
                p.cap = p.capacity();
            } else {
                budget.give_back();
                refused = true;
            }
        }
        Ok((p, refused))
    }

    fn capacity(&self) -> usize {
        // SAFETY: fcntl on an open descriptor.
        let cap = unsafe { libc::fcntl(self.write.as_raw_fd(), libc::F_GETPIPE_SZ) };
        usize::try_from(cap)
            .ok()
            .filter(|&c| c > 0)
            .unwrap_or(PIPE_DEFAULT)
    }
}

impl Drop for PipePair {
    fn drop(&mut self) {
        if let Some(b) = self.budget {
            b.give_back();
        }
    }
}

/// A worker's idle pipes: large ones for bodies, default ones for tunnels. A tunnel holds
/// its two pipes for its whole life and mostly carries small messages, so it would spend
/// the large-pipe budget on nothing.
pub struct PipePool {
    large: RefCell<Vec<PipePair>>,
    small: RefCell<Vec<PipePair>>,
    budget: &'static LargeBudget,
    /// When the kernel last refused to enlarge a pipe: for a while after, bodies take
    /// default pipes without asking (and without making a new pipe for each body).
    refused: Cell<Option<Instant>>,
}

/// How long a refused enlargement stops the pool from asking again.
const REFUSED_FOR: Duration = Duration::from_secs(1);

impl Default for PipePool {
    fn default() -> PipePool {
        PipePool::with_budget(LargeBudget::process())
    }
}

impl PipePool {
    pub fn with_budget(budget: &'static LargeBudget) -> PipePool {
        PipePool {
            large: RefCell::new(Vec::new()),
            small: RefCell::new(Vec::new()),
            budget,
            refused: Cell::new(None),
        }
    }

    /// A pipe for one body: a large one where possible.
    pub fn get_for_body(&self) -> io::Result<PipePair> {
        if let Some(p) = self.large.borrow_mut().pop() {
            return Ok(p);
        }
        let refused_lately = self
            .refused
            .get()
            .is_some_and(|t| t.elapsed() < REFUSED_FOR);
        if self.budget.has_room() && !refused_lately {
            let (p, refused) = PipePair::large(self.budget)?;
            if refused {
                self.refused.set(Some(Instant::now()));
            }
            return Ok(p);
        }
        self.get_for_tunnel()
    }

    /// A pipe for one direction of a tunnel.
    pub fn get_for_tunnel(&self) -> io::Result<PipePair> {
        match self.small.borrow_mut().pop() {
            Some(p) => Ok(p),
            None => PipePair::new(),
        }
    }

    /// Only an empty pipe may go back: one that stopped mid-body may still hold bytes.
    pub fn put_empty(&self, p: PipePair) {
        let (free, keep) = if p.budget.is_some() {
            (&self.large, KEEP_LARGE)
        } else {
            (&self.small, KEEP)
        };
        let mut free = free.borrow_mut();
        if free.len() < keep {
            free.push(p);
        }
    }
}

#[derive(Debug)]
pub enum SpliceError {
    SrcTimeout,
    /// The source fell behind its RequestReadTimeout rate.
    SrcTooSlow,
    SrcEof,
    SrcIo(io::Error),
    DstTimeout,
    DstIo(io::Error),
}

/// Whether a body of `rest` bytes from `src` to `dst` goes through a pipe: both streams
/// must be bare sockets (no TLS layer), and the body at least `threshold` long
/// (SpliceThreshold; 0 turns splicing off). The one place that decides.
pub fn worth_splicing(
    src: &impl Transport,
    dst: &impl Transport,
    rest: u64,
    threshold: u64,
) -> bool {
    threshold > 0 && rest >= threshold && src.socket().is_some() && dst.socket().is_some()
}

/// One splice(2) between two descriptors, never blocking on the pipe side.
fn splice_once(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    loop {
        // SAFETY: both descriptors are open for the duration of the call; null offsets
        // are what splice takes for sockets and pipes.
        let n = unsafe {
            libc::splice(
                from,
                std::ptr::null_mut(),
                to,
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Makes a socket non-blocking for as long as this lives, and restores it after (sockets
/// of the io_uring driver are blocking, and its operations expect them so). A socket that
/// already was non-blocking (the epoll driver's) is left alone.
pub struct NonBlocking {
    fd: RawFd,
    restore: bool,
}

impl NonBlocking {
    pub fn set(fd: RawFd) -> io::Result<NonBlocking> {
        // SAFETY: fcntl on an open descriptor with integer arguments.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        if flags & libc::O_NONBLOCK != 0 {
            return Ok(NonBlocking { fd, restore: false });
        }
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(NonBlocking { fd, restore: true })
    }
}

impl Drop for NonBlocking {
    fn drop(&mut self) {
        if self.restore {
            // SAFETY: fcntl on the descriptor this guard was made for, still open (the
            // guard never outlives the body it was made for).
            unsafe {
                let flags = libc::fcntl(self.fd, libc::F_GETFL);
                if flags >= 0 {
                    libc::fcntl(self.fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
                }
            }
        }
    }
}

/// How long a wait for a batch of body bytes may take before the worker takes whatever
/// has come. Bulk transfers fill a batch in well under this; a sender that trickles is
/// forwarded at most this much later than without batching.
const BATCH_WAIT: Duration = Duration::from_millis(5);

/// The socket's receive low-water mark (`SO_RCVLOWAT`) while a body is spliced out of it,
/// back to 1 (the default) when dropped, since the socket goes on to carry more requests.
///
/// With the mark raised, the kernel neither reports the socket readable nor runs its
/// wake-up callback until that many bytes are queued (`tcp_data_ready`). On loopback that
/// callback runs on the sender's core, once per arriving segment, so batching takes work
/// off the sender (the load generator or a backend on another core) as well as waking the
/// worker and splicing fewer times per megabyte.
struct RcvLowat {
    fd: RawFd,
    /// The mark now set; 1 is the kernel's default.
    now: usize,
    /// The largest mark that changes nothing else. When the buffer cannot hold the mark's
    /// worth of segments (about twice the mark; more for small segments), the kernel grows
    /// the buffer and clamps the receive window to the mark, for the connection's life. A
    /// quarter of the buffer as it is stays clear of that.
    most: usize,
}

impl RcvLowat {
    fn new(fd: RawFd) -> RcvLowat {
        let most = sock_opt(fd, libc::SO_RCVBUF).map_or(0, |b| b / 4);
        RcvLowat { fd, now: 1, most }
    }

    /// Asks for `want` bytes before the next readiness (bounded by what is safe); returns
    /// whether the mark is now above 1.
    fn raise(&mut self, want: usize) -> bool {
        self.set(want.min(self.most).max(1));
        self.now > 1
    }

    fn set(&mut self, mark: usize) {
        if mark == self.now {
            return;
        }
        // A failure only costs the batching: the mark is an optimization.
        if set_sock_opt(self.fd, libc::SO_RCVLOWAT, mark).is_ok() {
            self.now = mark;
        }
    }
}

impl Drop for RcvLowat {
    fn drop(&mut self) {
        self.set(1);
    }
}

fn sock_opt(fd: RawFd, opt: libc::c_int) -> io::Result<usize> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid for the kernel to fill with one int.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(v.max(0) as usize)
}

fn set_sock_opt(fd: RawFd, opt: libc::c_int, v: usize) -> io::Result<()> {
    let v = libc::c_int::try_from(v).unwrap_or(libc::c_int::MAX);
    // SAFETY: `v` is a valid int for the kernel to read.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// Moves the `n` bytes in the pipe (read end `pr`) to `dst`, waiting at most `write_t` each
/// time `dst` has no room.
async fn drain_pipe(
    pr: RawFd,
    dst: &TcpStream,
    n: usize,
    write_t: Duration,
) -> Result<(), SpliceError> {
    let dst_fd = dst.as_raw_fd();
    let mut pending = n;
    while pending > 0 {
        match splice_once(pr, dst_fd, pending) {
            Ok(0) => return Err(SpliceError::DstIo(io::ErrorKind::WriteZero.into())),
            Ok(m) => pending -= m,
            Err(e) if would_block(&e) => {
                match crate::runtime::timer::timeout(write_t, dst.writable(false)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(SpliceError::DstIo(e)),
                    Err(_) => return Err(SpliceError::DstTimeout),
                }
            }
            Err(e) => return Err(SpliceError::DstIo(e)),
        }
    }
    Ok(())
}

/// Moves exactly `len` bytes from `src` to `dst` through `pipe`, counting them in `moved`.
/// On error the pipe may hold bytes and must not be reused.
pub async fn splice_exact(
    src: &mut impl Transport,
    dst: &mut impl Transport,
    pipe: &mut PipePair,
    mut len: u64,
    (read_t, write_t): (Duration, Duration),
    rate: &Cell<Option<RateDeadline>>,
    moved: &mut u64,
) -> Result<(), SpliceError> {
    let (Some(src), Some(dst)) = (src.socket(), dst.socket()) else {
        return Err(SpliceError::SrcIo(io::ErrorKind::Unsupported.into()));
    };
    let (src_fd, dst_fd) = (src.as_raw_fd(), dst.as_raw_fd());
    let _src_nb = NonBlocking::set(src_fd).map_err(SpliceError::SrcIo)?;
    let _dst_nb = NonBlocking::set(dst_fd).map_err(SpliceError::DstIo)?;
    let (pr, pw) = (pipe.read.as_raw_fd(), pipe.write.as_raw_fd());
    let mut lowat = RcvLowat::new(src_fd);
    // Off for one wait after a batch did not fill in time, so a sender that trickles has
    // its bytes taken as they come, and tried again after.
    let mut batch = true;
    while len > 0 {
        let want = len.min(pipe.cap as u64) as usize;
        let n = loop {
            match splice_once(src_fd, pw, want) {
                Ok(0) => return Err(SpliceError::SrcEof),
                Ok(n) => break n,
                Err(e) if would_block(&e) => {
                    // The source's RequestReadTimeout stage may leave less than read_t.
                    let (read_t, by_rate) =
                        match rate.get().map(|d| d.next_wait(read_t, coarse_now())) {
                            Some(Some(wait)) => wait,
                            Some(None) => return Err(SpliceError::SrcTooSlow),
                            None => (read_t, false),
                        };
                    // Never more than the rest of the body, which must end the wait.
                    let batching = lowat.raise(if batch { want } else { 1 });
                    batch = true;
                    let t = if batching {
                        BATCH_WAIT.min(read_t)
                    } else {
                        read_t
                    };
                    match crate::runtime::timer::timeout(t, src.readable(false)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return Err(SpliceError::SrcIo(e)),
                        // Fewer bytes than the batch came in time: take them, and wait for
                        // the next ones for the full read timeout.
                        Err(_) if batching => batch = false,
                        Err(_) if by_rate => return Err(SpliceError::SrcTooSlow),
                        Err(_) => return Err(SpliceError::SrcTimeout),
                    }
                }
                Err(e) => return Err(SpliceError::SrcIo(e)),
            }
        };
        if let Some(mut d) = rate.get() {
            d.received(n);
            rate.set(Some(d));
        }
        drain_pipe(pr, dst, n, write_t).await?;
        *moved += n as u64;
        len -= n as u64;
    }
    Ok(())
}

/// One direction of a tunnel: moves bytes from `src` to `dst` through `pipe` until `src`
/// ends (`Ok`), counting them in `moved`. The caller has made both sockets non-blocking
/// for the tunnel's life (a [`NonBlocking`] per socket, held across both directions, since
/// the two directions share the sockets' file status flags through their dups).
///
/// Tunnel traffic is mostly small messages, so after a splice that did not fill the pipe
/// the socket is taken as drained and the next step waits for readability instead of
/// trying a splice that would only report `EAGAIN`. `last` is shared with the other
/// direction: only a tunnel quiet both ways for `idle` times out.
pub async fn splice_to_eof(
    src: &mut impl Transport,
    dst: &mut impl Transport,
    pipe: &mut PipePair,
    idle: Duration,
    last: &Cell<Instant>,
    moved: &mut u64,
) -> Result<(), SpliceError> {
    let (Some(src), Some(dst)) = (src.socket(), dst.socket()) else {
        return Err(SpliceError::SrcIo(io::ErrorKind::Unsupported.into()));
    };
    let src_fd = src.as_raw_fd();
    let (pr, pw) = (pipe.read.as_raw_fd(), pipe.write.as_raw_fd());
    let mut wait_first = false;
    loop {
        if wait_first {
            match crate::runtime::timer::timeout(idle, src.readable(false)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(SpliceError::SrcIo(e)),
                Err(_) if last.get().elapsed() < idle => continue,
                Err(_) => return Err(SpliceError::SrcTimeout),
            }
        }
        let n = match splice_once(src_fd, pw, pipe.cap) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if would_block(&e) => {
                wait_first = true;
                continue;
            }
            Err(e) => return Err(SpliceError::SrcIo(e)),
        };
        last.set(Instant::now());
        drain_pipe(pr, dst, n, idle).await?;
        *moved += n as u64;
        wait_first = n < pipe.cap;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe_max_size() -> usize {
        std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    fn budget(limit: usize) -> &'static LargeBudget {
        Box::leak(Box::new(LargeBudget::new(limit)))
    }

    /// The capacity a large pipe has here: PIPE_SIZE unless the system caps pipes lower.
    fn large_cap() -> usize {
        if pipe_max_size() >= PIPE_SIZE {
            PIPE_SIZE
        } else {
            PIPE_DEFAULT
        }
    }

    #[test]
    fn budget_from_the_soft_limit() {
        let cases = [
            // (soft limit in pages, page size, large pipes allowed)
            (None, 4096, LARGE_UNKNOWN),
            (Some(0), 4096, LARGE_UNLIMITED),
            (Some(16384), 4096, 64),
            (Some(16384), 65536, 1024),
            (Some(100), 4096, 0),
        ];
        for (soft, page, want) in cases {
            assert_eq!(LargeBudget::limit_for(soft, page), want, "{soft:?} {page}");
        }
    }

    #[test]
    fn bodies_get_large_pipes_within_the_budget() {
        let bud = budget(2);
        let pool = PipePool::with_budget(bud);
        let idle = pool.get_for_tunnel().expect("pipe");
        let idle_fd = idle.read.as_raw_fd();
        pool.put_empty(idle);
        let a = pool.get_for_body().expect("pipe");
        let b = pool.get_for_body().expect("pipe");
        let c = pool.get_for_body().expect("pipe");
        assert_eq!((a.cap, b.cap), (large_cap(), large_cap()));
        // Past the budget: an idle default pipe, not a new one, and no refusal recorded.
        assert_eq!(c.cap, PIPE_DEFAULT);
        if large_cap() == PIPE_SIZE {
            assert_eq!(c.read.as_raw_fd(), idle_fd);
        }
        assert!(pool.refused.get().is_none());
        if large_cap() == PIPE_SIZE {
            assert_eq!(pool.budget.alive.load(Ordering::Acquire), 2);
        }
        // A dropped large pipe frees its place; a returned one is lent again.
        drop(a);
        let a_fd = {
            let a = pool.get_for_body().expect("pipe");
            assert_eq!(a.cap, large_cap());
            let fd = a.read.as_raw_fd();
            pool.put_empty(a);
            fd
        };
        let again = pool.get_for_body().expect("pipe");
        assert_eq!(again.read.as_raw_fd(), a_fd);
        pool.put_empty(again);
        drop((b, c));
        if large_cap() == PIPE_SIZE {
            assert_eq!(
                bud.alive.load(Ordering::Acquire),
                1,
                "the pooled pipe still counts"
            );
        }
        drop(pool);
        assert_eq!(bud.alive.load(Ordering::Acquire), 0);
    }

    #[test]
    fn tunnels_get_default_pipes() {
        let pool = PipePool::with_budget(budget(8));
        let t = pool.get_for_tunnel().expect("pipe");
        assert_eq!(t.cap, PIPE_DEFAULT);
        assert_eq!(pool.budget.alive.load(Ordering::Acquire), 0);
        // A default pipe goes back to the tunnels' list, not to the bodies'.
        pool.put_empty(t);
        assert_eq!(
            (pool.small.borrow().len(), pool.large.borrow().len()),
            (1, 0)
        );
    }

    #[test]
    fn receive_low_water_mark_is_bounded_and_restored() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        let fd = s.as_raw_fd();
        let rcvbuf = sock_opt(fd, libc::SO_RCVBUF).unwrap();
        let most = rcvbuf / 4;
        assert!(most > 1000, "receive buffer {rcvbuf}");
        let mark = || sock_opt(fd, libc::SO_RCVLOWAT).unwrap();
        let mut lowat = RcvLowat::new(fd);
        // (asked, raised above 1, mark set)
        let cases = [
            (1, false, 1),
            (0, false, 1),
            (1000, true, 1000),
            (most, true, most),
            // Never past a quarter of the buffer: more would grow it and clamp the window.
            (most + 1, true, most),
            (usize::MAX, true, most),
            (1, false, 1),
        ];
        for (asked, raised, want) in cases {
            assert_eq!(lowat.raise(asked), raised, "raise({asked})");
            assert_eq!(mark(), want, "raise({asked})");
        }
        // The buffer itself is left alone.
        assert_eq!(sock_opt(fd, libc::SO_RCVBUF).unwrap(), rcvbuf);
        lowat.raise(4096);
        assert_eq!(mark(), 4096);
        drop(lowat);
        assert_eq!(
            mark(),
            1,
            "the next request on this socket waits for any byte"
        );
    }
}
