//! Moving one HTTP/1.1-framed body from one stream to another (a request body from the
//! client to a member, a response body back), in the framing it came with or de-chunked
//! for an HTTP/1.0 client. A body of known length past SpliceThreshold goes through a pipe
//! when both streams allow it ([`worth_splicing`]); everything else through the buffer.

use std::time::Duration;

use crate::http::body::{BodyError, Framing};
use crate::http::reqtimeout::RateDeadline;
use crate::runtime::timer::coarse_now;
use crate::transport::io::{read_more, write_range, IoFail};
use crate::transport::splice::{splice_exact, worth_splicing, PipePool, SpliceError};
use crate::transport::Transport;

/// Why streaming a body stopped early.
pub enum StreamError {
    SrcTimeout,
    /// The client fell behind its RequestReadTimeout body rate.
    SrcTooSlow,
    SrcIo(std::io::Error),
    SrcEof,
    DstTimeout,
    DstIo(std::io::Error),
    Framing(BodyError),
}

/// How one body is moved: timeouts, read size, and when to splice.
pub struct Streaming<'a> {
    read_t: Duration,
    write_t: Duration,
    /// Read size (ProxyIOBufferSize).
    chunk: usize,
    /// The worker's pipes and SpliceThreshold.
    splice: (&'a PipePool, u64),
    /// The source's RequestReadTimeout stage (a request body from the client).
    rate: std::cell::Cell<Option<RateDeadline>>,
}

impl<'a> Streaming<'a> {
    /// `chunk`: the read size (ProxyIOBufferSize); `splice`: the core's pipes and
    /// SpliceThreshold.
    pub fn new(
        read_t: Duration,
        write_t: Duration,
        chunk: usize,
        splice: (&'a PipePool, u64),
    ) -> Self {
        Streaming {
            read_t,
            write_t,
            chunk,
            splice,
            rate: std::cell::Cell::new(None),
        }
    }

    /// The source must also keep up with this rate (mod_reqtimeout's body stage).
    pub fn with_rate(self, rate: Option<RateDeadline>) -> Self {
        self.rate.set(rate);
        self
    }

    /// How long the next read may wait, and whether the rate (not `read_t`) set that.
    fn next_read(&self) -> Result<(Duration, bool), StreamError> {
        match self
            .rate
            .get()
            .map(|d| d.next_wait(self.read_t, coarse_now()))
        {
            Some(Some(wait)) => Ok(wait),
            Some(None) => Err(StreamError::SrcTooSlow),
            None => Ok((self.read_t, false)),
        }
    }

    fn received(&self, n: usize) {
        if let Some(mut d) = self.rate.get() {
            d.received(n);
            self.rate.set(Some(d));
        }
    }
}

/// Moves one body from `src` to `dst`. `buf[pos..]` holds bytes already read from `src`.
/// Returns the position in the returned buffer where bytes after the body start (pipelined
/// requests on the client side); `moved` counts the bytes written.
#[allow(clippy::too_many_arguments)]
pub async fn stream_body(
    src: &mut impl Transport,
    mut buf: Vec<u8>,
    mut pos: usize,
    dst: &mut impl Transport,
    framing: &mut Framing,
    dechunk: bool,
    how: &Streaming<'_>,
    moved: &mut u64,
) -> (Result<usize, StreamError>, Vec<u8>) {
    let (write_t, chunk) = (how.write_t, how.chunk);
    loop {
        if framing.is_done() {
            return (Ok(pos), buf);
        }
        while pos < buf.len() {
            // One framing step, then write what it covered.
            let (write, consumed, done) = match step(framing, dechunk, &buf, pos) {
                Ok(step) => step,
                Err(e) => return (Err(StreamError::Framing(e)), buf),
            };
            if let Some(range) = write {
                *moved += range.len() as u64;
                let (res, b) = write_range(dst, buf, range, write_t).await;
                buf = b;
                match res {
                    Ok(()) => {}
                    Err(IoFail::Timeout) => return (Err(StreamError::DstTimeout), buf),
                    Err(IoFail::Io(e)) => return (Err(StreamError::DstIo(e)), buf),
                }
            }
            pos += consumed;
            if done {
                return (Ok(pos), buf);
            }
            if consumed == 0 {
                break;
            }
        }
        // Everything read so far was body and has been forwarded: reuse the buffer.
        buf.clear();
        pos = 0;
        // A large rest of a known length goes through a pipe, never through user space.
        let (pipes, threshold) = how.splice;
        if let (Framing::Length(rest), false) = (*framing, dechunk) {
            if worth_splicing(src, dst, rest, threshold) {
                let res = splice_rest(src, dst, pipes, rest, how, moved).await;
                if res.is_ok() {
                    *framing = Framing::Length(0);
                }
                return (res.map(|()| 0), buf);
            }
        }
        let (t, by_rate) = match how.next_read() {
            Ok(wait) => wait,
            Err(e) => return (Err(e), buf),
        };
        let (res, b) = read_more(src, buf, chunk, t).await;
        buf = b;
        match res {
            Ok(0) => {
                if matches!(framing, Framing::UntilClose) {
                    return (Ok(0), buf);
                }
                return (Err(StreamError::SrcEof), buf);
            }
            Ok(n) => how.received(n),
            Err(IoFail::Timeout) if by_rate => return (Err(StreamError::SrcTooSlow), buf),
            Err(IoFail::Timeout) => return (Err(StreamError::SrcTimeout), buf),
            Err(IoFail::Io(e)) => return (Err(StreamError::SrcIo(e)), buf),
        }
    }
}

/// One framing step over `buf[pos..]`: the bytes to write (de-chunked: the data only),
/// how many were consumed, and whether the body ended.
type Step = (Option<std::ops::Range<usize>>, usize, bool);

fn step(framing: &mut Framing, dechunk: bool, buf: &[u8], pos: usize) -> Result<Step, BodyError> {
    if dechunk {
        let Framing::Chunked(dec) = framing else {
            unreachable!("dechunk is only chosen for chunked bodies")
        };
        let step = dec.decode(&buf[pos..])?;
        let data = step.data.map(|d| pos + d.start..pos + d.end);
        return Ok((data, step.consumed, step.done));
    }
    let adv = framing.advance(&buf[pos..])?;
    Ok((Some(pos..pos + adv.consumed), adv.consumed, adv.done))
}

/// The last `rest` bytes of a body of known length, through a pipe of the core's.
async fn splice_rest(
    src: &mut impl Transport,
    dst: &mut impl Transport,
    pipes: &PipePool,
    rest: u64,
    how: &Streaming<'_>,
    moved: &mut u64,
) -> Result<(), StreamError> {
    let mut pipe = pipes.get_for_body().map_err(StreamError::SrcIo)?;
    let times = (how.read_t, how.write_t);
    splice_exact(src, dst, &mut pipe, rest, times, &how.rate, moved).await?;
    // On error the pipe may hold bytes: it is dropped, not returned.
    pipes.put_empty(pipe);
    Ok(())
}

impl From<SpliceError> for StreamError {
    fn from(e: SpliceError) -> Self {
        match e {
            SpliceError::SrcTimeout => StreamError::SrcTimeout,
            SpliceError::SrcTooSlow => StreamError::SrcTooSlow,
            SpliceError::SrcEof => StreamError::SrcEof,
            SpliceError::SrcIo(e) => StreamError::SrcIo(e),
            SpliceError::DstTimeout => StreamError::DstTimeout,
            SpliceError::DstIo(e) => StreamError::DstIo(e),
        }
    }
}
