//! Large bodies move socket -> pipe -> socket with splice(2): the bytes never enter user
//! space (no copy in, no copy out), which is what makes a proxy cheap per megabyte.
//!
//! A pipe carries one body at a time, so each worker keeps a small pool of pipes and lends
//! one to a connection for the length of a body.

use std::cell::RefCell;
use std::io;
use std::time::Duration;

use monoio::io::splice::{SpliceDestination, SpliceSource};
use monoio::net::unix::new_pipe;
use monoio::net::{Pipe, TcpStream};

/// Bytes asked of one splice: the default pipe capacity (16 pages).
const PIPE_CHUNK: u32 = 64 * 1024;
/// Idle pipes kept per worker.
const KEEP: usize = 64;

/// (read end, write end)
pub type PipePair = (Pipe, Pipe);

#[derive(Default)]
pub struct PipePool {
    free: RefCell<Vec<PipePair>>,
}

impl PipePool {
    pub fn get(&self) -> io::Result<PipePair> {
        match self.free.borrow_mut().pop() {
            Some(p) => Ok(p),
            None => new_pipe(),
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
    let (r, w) = pipe;
    while len > 0 {
        let want = len.min(u64::from(PIPE_CHUNK)) as u32;
        let n = match monoio::time::timeout(read_t, src.splice_to_pipe(w, want)).await {
            Ok(Ok(0)) => return Err(SpliceError::SrcEof),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(SpliceError::SrcIo(e)),
            Err(_) => return Err(SpliceError::SrcTimeout),
        };
        let mut pending = n;
        while pending > 0 {
            match monoio::time::timeout(write_t, dst.splice_from_pipe(r, pending)).await {
                Ok(Ok(0)) => {
                    return Err(SpliceError::DstIo(io::ErrorKind::WriteZero.into()));
                }
                Ok(Ok(m)) => pending -= m,
                Ok(Err(e)) => return Err(SpliceError::DstIo(e)),
                Err(_) => return Err(SpliceError::DstTimeout),
            }
        }
        *moved += u64::from(n);
        len -= u64::from(n);
    }
    Ok(())
}
