//! Owned-buffer I/O helpers over monoio with timeouts.
//!
//! monoio (like io_uring itself) takes ownership of a buffer while an operation is in
//! flight. These helpers hand the buffer back with the result. When a timeout fires, the
//! operation is cancelled and its buffer stays with the driver until the kernel lets go of
//! it, so the caller gets an empty `Vec` back and must treat the connection as finished.

use std::io;
use std::ops::Range;
use std::time::Duration;

use monoio::buf::{IoBuf, IoBufMut};

use super::Transport;

#[derive(Debug, thiserror::Error)]
pub enum IoFail {
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Reads more bytes after `buf.len()`, growing capacity so at least `spare` bytes fit.
/// `Ok(0)` means the peer closed.
pub async fn read_more(
    stream: &mut impl Transport,
    mut buf: Vec<u8>,
    spare: usize,
    t: Duration,
) -> (Result<usize, IoFail>, Vec<u8>) {
    if buf.capacity() - buf.len() < spare {
        buf.reserve(spare);
    }
    let len = buf.len();
    match crate::runtime::timer::timeout(t, Transport::read(stream, buf.slice_mut(len..))).await {
        Ok((res, slice)) => (res.map_err(IoFail::Io), slice.into_inner()),
        Err(_) => (Err(IoFail::Timeout), Vec::new()),
    }
}

/// Writes `buf[range]` completely.
pub async fn write_range(
    stream: &mut impl Transport,
    buf: Vec<u8>,
    range: Range<usize>,
    t: Duration,
) -> (Result<(), IoFail>, Vec<u8>) {
    if range.is_empty() {
        return (Ok(()), buf);
    }
    match crate::runtime::timer::timeout(t, Transport::write_all(stream, buf.slice(range))).await {
        Ok((res, slice)) => (res.map(|_| ()).map_err(IoFail::Io), slice.into_inner()),
        Err(_) => (Err(IoFail::Timeout), Vec::new()),
    }
}

/// Writes all of `buf`.
pub async fn write_all(
    stream: &mut impl Transport,
    buf: Vec<u8>,
    t: Duration,
) -> (Result<(), IoFail>, Vec<u8>) {
    let n = buf.bytes_init();
    write_range(stream, buf, 0..n, t).await
}

/// True for errors that mean "the peer closed or reset", which on a pooled backend
/// connection means it went stale while idle.
pub fn is_disconnect(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::NotConnected
    )
}
