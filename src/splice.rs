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
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

/// Bytes asked of one splice: the default pipe capacity (16 pages).
const PIPE_CHUNK: usize = 64 * 1024;
/// Idle pipes kept per worker.
const KEEP: usize = 64;

/// A pipe's two ends, both non-blocking.
pub struct PipePair {
    read: OwnedFd,
    write: OwnedFd,
}

impl PipePair {
    fn new() -> io::Result<PipePair> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
        unsafe {
            Ok(PipePair {
                read: OwnedFd::from_raw_fd(fds[0]),
                write: OwnedFd::from_raw_fd(fds[1]),
            })
        }
    }
}

#[derive(Default)]
pub struct PipePool {
    free: RefCell<Vec<PipePair>>,
}

impl PipePool {
    pub fn get(&self) -> io::Result<PipePair> {
        match self.free.borrow_mut().pop() {
            Some(p) => Ok(p),
            None => PipePair::new(),
        }
    }

    /// Only an empty pipe may go back: one that stopped mid-body may still hold bytes.
    pub fn put_empty(&self, p: PipePair) {
        let mut free = self.free.borrow_mut();
        if free.len() < KEEP {
            free.push(p);
        }
    }
}

#[derive(Debug)]
pub enum SpliceError {
    SrcTimeout,
    SrcEof,
    SrcIo(io::Error),
    DstTimeout,
    DstIo(io::Error),
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
                match crate::timer::timeout(write_t, dst.writable(false)).await {
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
    src: &mut TcpStream,
    dst: &mut TcpStream,
    pipe: &mut PipePair,
    mut len: u64,
    (read_t, write_t): (Duration, Duration),
    moved: &mut u64,
) -> Result<(), SpliceError> {
    let (src_fd, dst_fd) = (src.as_raw_fd(), dst.as_raw_fd());
    let _src_nb = NonBlocking::set(src_fd).map_err(SpliceError::SrcIo)?;
    let _dst_nb = NonBlocking::set(dst_fd).map_err(SpliceError::DstIo)?;
    let (pr, pw) = (pipe.read.as_raw_fd(), pipe.write.as_raw_fd());
    while len > 0 {
        let want = len.min(PIPE_CHUNK as u64) as usize;
        let n = loop {
            match splice_once(src_fd, pw, want) {
                Ok(0) => return Err(SpliceError::SrcEof),
                Ok(n) => break n,
                Err(e) if would_block(&e) => {
                    match crate::timer::timeout(read_t, src.readable(false)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return Err(SpliceError::SrcIo(e)),
                        Err(_) => return Err(SpliceError::SrcTimeout),
                    }
                }
                Err(e) => return Err(SpliceError::SrcIo(e)),
            }
        };
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
    src: &mut TcpStream,
    dst: &mut TcpStream,
    pipe: &mut PipePair,
    idle: Duration,
    last: &Cell<Instant>,
    moved: &mut u64,
) -> Result<(), SpliceError> {
    let src_fd = src.as_raw_fd();
    let (pr, pw) = (pipe.read.as_raw_fd(), pipe.write.as_raw_fd());
    let mut wait_first = false;
    loop {
        if wait_first {
            match crate::timer::timeout(idle, src.readable(false)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(SpliceError::SrcIo(e)),
                Err(_) if last.get().elapsed() < idle => continue,
                Err(_) => return Err(SpliceError::SrcTimeout),
            }
        }
        let n = match splice_once(src_fd, pw, PIPE_CHUNK) {
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
        wait_first = n < PIPE_CHUNK;
    }
}
