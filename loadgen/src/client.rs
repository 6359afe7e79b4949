//! One client connection: send, read the response (with ringproxy's own response parser and
//! body framing), record, repeat; reconnect when the server closes or an error happens.

use std::rc::Rc;
use std::time::{Duration, Instant};

use ringproxy::http::body::Framing;
use ringproxy::http::head::{parse_response, ResponseBody, ResponseHead};
use ringproxy::transport::io::{read_more, write_all, IoFail};
use ringproxy::transport::{BackendStream, Transport};

use crate::engine::{ErrorKind, ThreadState, SCHEDULING_TOLERANCE};

const READ_BUF: usize = 64 * 1024;

/// After a failed connect, wait this long before trying again, so a refused port does not
/// turn the generator into a busy loop.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(10);

/// Counts the connection as open for as long as it lives.
struct OpenGuard<'a>(&'a ThreadState);

impl<'a> OpenGuard<'a> {
    fn new(st: &'a ThreadState) -> Self {
        st.open_connections.set(st.open_connections.get() + 1);
        OpenGuard(st)
    }
}

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0
            .open_connections
            .set(self.0.open_connections.get().saturating_sub(1));
    }
}

/// Drives one connection until the run ends. `slot` picks its target.
pub async fn connection(st: Rc<ThreadState>, slot: usize) {
    let _open = OpenGuard::new(&st);
    let spec = st.spec.clone();
    let target = &spec.targets[slot % spec.targets.len()];
    // Targets on the same address rotate on this connection (round robin over URLs).
    let same_addr: Vec<usize> = (0..spec.targets.len())
        .filter(|&i| spec.targets[i].addr == target.addr)
        .collect();
    let mut rr = slot / spec.targets.len();
    let mut out: Vec<u8> = Vec::new();
    let mut buf: Vec<u8> = Vec::with_capacity(READ_BUF);
    let mut head = ResponseHead::default();
    // Closed loop: the first request of a connection is claimed before connecting, so two
    // connections racing for the last request never open one that then has nothing to send.
    let mut claimed = false;
    'connect: loop {
        if st.sched.is_none() {
            if !claimed && !st.take_budget() {
                return;
            }
            claimed = true;
        } else if !st.work_left() {
            return;
        }
        let began = Instant::now();
        let connected = match &target.tls {
            None => BackendStream::connect(target.addr, spec.timeout, false).await,
            Some(tls) => {
                BackendStream::connect_tls(
                    target.addr,
                    spec.timeout,
                    false,
                    tls.config.clone(),
                    tls.name.clone(),
                )
                .await
            }
        };
        let mut stream = match connected {
            Ok(s) => s,
            Err(_) => {
                st.count_error(ErrorKind::Connect);
                monoio::time::sleep(RECONNECT_BACKOFF).await;
                continue;
            }
        };
        if target.tls.is_some() {
            st.record_handshake(began.elapsed());
        }
        st.connection_opened();
        buf.clear();
        loop {
            // When may the next request go, and where does its latency count from?
            let (start, depth) = match &st.sched {
                Some(s) => {
                    let Some(intended) = s.take() else { return };
                    let slept = st.wait_for_slot(intended).await;
                    let sent = Instant::now();
                    let start = if sent <= intended || slept {
                        // Early (within the tolerance), or late only because our own timer
                        // woke late: latency counts from the real send.
                        sent
                    } else {
                        // This connection was still busy when the slot came due: the
                        // server's delay, so latency counts from the intended time
                        // (coordinated-omission correction).
                        intended
                    };
                    if !slept && sent > intended + SCHEDULING_TOLERANCE {
                        st.note_late(sent - intended);
                        grow(&st);
                    }
                    (start, 1)
                }
                None => {
                    if !std::mem::take(&mut claimed) && !st.take_budget() {
                        return;
                    }
                    let mut depth = 1;
                    while depth < spec.pipeline.max(1) && st.take_budget() {
                        depth += 1;
                    }
                    (Instant::now(), depth)
                }
            };
            let t = &spec.targets[same_addr[rr % same_addr.len()]];
            rr += 1;
            out.clear();
            for _ in 0..depth {
                out.extend_from_slice(&t.request);
            }
            let sent = Instant::now();
            let (r, o) = write_all(&mut stream, std::mem::take(&mut out), spec.timeout).await;
            out = o;
            if let Err(e) = r {
                st.count_error(match e {
                    IoFail::Timeout => ErrorKind::Timeout,
                    IoFail::Io(_) => ErrorKind::Write,
                });
                continue 'connect;
            }
            for _ in 0..depth {
                match read_response(&mut stream, &mut buf, &mut head, t.is_head, spec.timeout).await
                {
                    Ok((status, bytes, close)) => {
                        st.record(start, sent.max(start), Instant::now(), status, bytes);
                        if close {
                            continue 'connect;
                        }
                    }
                    Err(kind) => {
                        st.count_error(kind);
                        continue 'connect;
                    }
                }
            }
        }
    }
}

/// Reads one response; leaves bytes of a following (pipelined) response in `buf`.
/// Returns (status, bytes received, server will close).
async fn read_response(
    stream: &mut impl Transport,
    buf: &mut Vec<u8>,
    head: &mut ResponseHead,
    is_head: bool,
    timeout: Duration,
) -> Result<(u16, u64, bool), ErrorKind> {
    // Interim 1xx responses are skipped.
    loop {
        if !buf.is_empty() {
            match parse_response(buf, is_head, head) {
                Ok(Some(())) if (100..200).contains(&head.status) && head.status != 101 => {
                    buf.drain(..head.len);
                    continue;
                }
                Ok(Some(())) => break,
                Ok(None) => {}
                Err(_) => return Err(ErrorKind::Parse),
            }
        }
        let (r, b) = read_more(stream, std::mem::take(buf), READ_BUF, timeout).await;
        *buf = b;
        match r {
            Ok(0) => return Err(ErrorKind::Read),
            Ok(_) => {}
            Err(IoFail::Timeout) => return Err(ErrorKind::Timeout),
            Err(IoFail::Io(_)) => return Err(ErrorKind::Read),
        }
    }
    let mut framing = match head.body() {
        ResponseBody::None => Framing::Length(0),
        ResponseBody::Length(n) => Framing::Length(n),
        ResponseBody::Chunked => Framing::Chunked(Default::default()),
        ResponseBody::UntilClose => Framing::UntilClose,
    };
    let status = head.status;
    let close = head.close;
    let mut bytes = head.len as u64;
    let mut pos = head.len;
    loop {
        if pos < buf.len() {
            let adv = framing.advance(&buf[pos..]).map_err(|_| ErrorKind::Parse)?;
            pos += adv.consumed;
            bytes += adv.consumed as u64;
        }
        if framing.is_done() {
            buf.drain(..pos);
            return Ok((status, bytes, close));
        }
        // The body so far is counted and not needed: reuse the buffer.
        buf.clear();
        pos = 0;
        let (r, b) = read_more(stream, std::mem::take(buf), READ_BUF, timeout).await;
        *buf = b;
        match r {
            Ok(0) if matches!(framing, Framing::UntilClose) => {
                return Ok((status, bytes, true));
            }
            Ok(0) => return Err(ErrorKind::Read),
            Ok(_) => {}
            Err(IoFail::Timeout) => return Err(ErrorKind::Timeout),
            Err(IoFail::Io(_)) => return Err(ErrorKind::Read),
        }
    }
}

/// Open loop with `--max-connections`: a slot sent late because its connection was busy
/// adds a connection (up to the limit), so later slots find one free.
fn grow(st: &Rc<ThreadState>) {
    if st.open_connections.get() < st.max_connections {
        let slot = st.next_slot.get();
        st.next_slot.set(slot + st.spec.threads.max(1));
        monoio::spawn(connection(st.clone(), slot));
    }
}
