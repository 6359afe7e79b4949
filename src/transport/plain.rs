//! Plain TCP: the bare socket is the stream.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd};

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, CancelHandle, CancelableAsyncReadRent};
use monoio::net::TcpStream;
use monoio::BufResult;

use super::{TlsFacts, Transport};

impl Transport for TcpStream {
    fn read<T: IoBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        AsyncReadRent::read(self, buf)
    }

    fn read_cancelable<T: IoBufMut>(
        &mut self,
        buf: T,
        handle: CancelHandle,
    ) -> impl Future<Output = BufResult<usize, T>> {
        self.cancelable_read(buf, handle)
    }

    fn write_all<T: IoBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        AsyncWriteRentExt::write_all(self, buf)
    }

    /// One non-blocking `recv(2)` on the worker's own thread. For a socket already known
    /// to be readable this replaces an io_uring receive, which would cost a submission, a
    /// completion and another wake-up of the connection's task.
    fn read_now(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
        let spare = buf.spare_capacity_mut();
        if spare.is_empty() {
            return Ok(None);
        }
        // SAFETY: the pointer and length describe `buf`'s spare capacity, which recv(2)
        // may write; the descriptor is borrowed from a live stream for the call.
        let n = unsafe {
            libc::recv(
                self.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                spare.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        let n = n as usize;
        // SAFETY: recv(2) initialised the first `n` bytes of the spare capacity.
        unsafe { buf.set_len(buf.len() + n) };
        Ok(Some(n))
    }

    fn readable(&mut self) -> impl Future<Output = io::Result<()>> {
        TcpStream::readable(self, false)
    }

    fn shutdown_write(&mut self) -> impl Future<Output = ()> {
        // SAFETY: shutdown(2) on the descriptor this stream owns; only sending ends.
        unsafe {
            libc::shutdown(self.as_raw_fd(), libc::SHUT_WR);
        }
        std::future::ready(())
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        TcpStream::peer_addr(self)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        TcpStream::local_addr(self)
    }

    fn tls(&self) -> Option<&TlsFacts> {
        None
    }

    fn socket(&self) -> Option<&TcpStream> {
        Some(self)
    }

    /// A dup(2) of the socket as a second monoio stream.
    fn duplicate(&self) -> Option<io::Result<TcpStream>> {
        // SAFETY: dup(2) of a descriptor we own; the new descriptor is owned below.
        let fd = unsafe { libc::fcntl(self.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        if fd < 0 {
            return Some(Err(io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a fresh descriptor nothing else owns.
        let std_stream = unsafe { std::net::TcpStream::from_raw_fd(fd) };
        Some(TcpStream::from_std(std_stream))
    }
}
