//! Body framing state machines. No I/O: they are fed whatever bytes have arrived and say how
//! many belong to the body and whether it ended.
//!
//! A chunked body is normally forwarded *as received* (chunk framing and trailers included)
//! once the decoder has validated it, so no bytes are copied or re-encoded; the decoder also
//! reports the data spans for the one case that needs them (an HTTP/1.0 client, which cannot
//! receive chunked).

use std::ops::Range;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("invalid chunk size")]
    BadSize,
    #[error("chunk size overflow")]
    SizeOverflow,
    #[error("chunk extension too long")]
    ExtensionTooLong,
    #[error("missing CRLF in chunked framing")]
    MissingCrlf,
    #[error("trailer section too large")]
    TrailerTooLarge,
    #[error("invalid byte in chunked framing")]
    BadByte,
}

impl BodyError {
    /// A chunk larger than any length (more than 16 hex digits, or past 2^64) is too large
    /// to accept (413); every other framing error is a bad request (400).
    pub fn status(self) -> u16 {
        match self {
            BodyError::SizeOverflow => 413,
            _ => 400,
        }
    }
}

/// Longest chunk-size line extension we accept (hyper and nginx bound these too; the
/// extension carries nothing we use).
const MAX_EXTENSION_LINE: usize = 4096;
/// Largest trailer section.
const MAX_TRAILERS: usize = 16 * 1024;
/// 16 hex digits fill a u64.
const MAX_SIZE_DIGITS: u32 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Size,
    SizeWs,
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    Trailer,
    TrailerLf,
    EndLf,
    Done,
}

#[derive(Clone, Copy, Debug)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    digits: u32,
    line: usize,
    trailer: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

/// What one call to [`ChunkedDecoder::decode`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Bytes of the input that belong to this body (framing and data).
    pub consumed: usize,
    /// Chunk data within `input[..consumed]`, if this step crossed some.
    pub data: Option<Range<usize>>,
    /// The terminating chunk and trailers are complete.
    pub done: bool,
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        ChunkedDecoder {
            state: State::Size,
            size: 0,
            digits: 0,
            line: 0,
            trailer: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Advances over `input`, stopping after at most one data span so the caller can
    /// handle it. Call again with the rest while `consumed < input.len()` and not done.
    pub fn decode(&mut self, input: &[u8]) -> Result<Step, BodyError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Size => match (hex(b), b) {
                    (Some(d), _) => {
                        self.digits += 1;
                        if self.digits > MAX_SIZE_DIGITS {
                            return Err(BodyError::SizeOverflow);
                        }
                        self.size = self
                            .size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(u64::from(d)))
                            .ok_or(BodyError::SizeOverflow)?;
                    }
                    _ if self.digits == 0 => return Err(BodyError::BadSize),
                    (_, b' ' | b'\t') => self.state = State::SizeWs,
                    (_, b';') => {
                        self.state = State::Ext;
                        self.line = 0;
                    }
                    (_, b'\r') => self.state = State::SizeLf,
                    _ => return Err(BodyError::BadSize),
                },
                State::SizeWs => match b {
                    b' ' | b'\t' => {}
                    b';' => {
                        self.state = State::Ext;
                        self.line = 0;
                    }
                    b'\r' => self.state = State::SizeLf,
                    _ => return Err(BodyError::BadSize),
                },
                State::Ext => match b {
                    b'\r' => self.state = State::SizeLf,
                    b'\n' | 0 => return Err(BodyError::BadByte),
                    _ => {
                        self.line += 1;
                        if self.line > MAX_EXTENSION_LINE {
                            return Err(BodyError::ExtensionTooLong);
                        }
                    }
                },
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(BodyError::MissingCrlf);
                    }
                    self.state = if self.size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data
                    };
                }
                State::Data => {
                    let avail = (input.len() - i) as u64;
                    let take = avail.min(self.size) as usize;
                    self.size -= take as u64;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    return Ok(Step {
                        consumed: i + take,
                        data: Some(i..i + take),
                        done: false,
                    });
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(BodyError::MissingCrlf);
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(BodyError::MissingCrlf);
                    }
                    self.state = State::Size;
                    self.digits = 0;
                    self.size = 0;
                }
                State::TrailerStart => {
                    self.state = if b == b'\r' {
                        State::EndLf
                    } else {
                        self.count_trailer()?;
                        State::Trailer
                    };
                }
                State::Trailer => {
                    self.count_trailer()?;
                    match b {
                        b'\r' => self.state = State::TrailerLf,
                        b'\n' | 0 => return Err(BodyError::BadByte),
                        _ => {}
                    }
                }
                State::TrailerLf => {
                    if b != b'\n' {
                        return Err(BodyError::MissingCrlf);
                    }
                    self.count_trailer()?;
                    self.state = State::TrailerStart;
                }
                State::EndLf => {
                    if b != b'\n' {
                        return Err(BodyError::MissingCrlf);
                    }
                    self.state = State::Done;
                    return Ok(Step {
                        consumed: i + 1,
                        data: None,
                        done: true,
                    });
                }
                State::Done => {
                    return Ok(Step {
                        consumed: i,
                        data: None,
                        done: true,
                    })
                }
            }
            i += 1;
        }
        Ok(Step {
            consumed: i,
            data: None,
            done: self.state == State::Done,
        })
    }

    fn count_trailer(&mut self) -> Result<(), BodyError> {
        self.trailer += 1;
        if self.trailer > MAX_TRAILERS {
            return Err(BodyError::TrailerTooLarge);
        }
        Ok(())
    }
}

/// The value of one hex digit.
pub(crate) fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// How the bytes of one message body are delimited, with progress.
#[derive(Clone, Copy, Debug)]
pub enum Framing {
    /// `remaining` bytes left.
    Length(u64),
    Chunked(ChunkedDecoder),
    /// Until the peer closes.
    UntilClose,
}

/// One step over newly arrived bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advance {
    /// Bytes of the input that belong to this body.
    pub consumed: usize,
    pub done: bool,
}

/// A request's declared framing as the state that follows it.
impl From<crate::http::head::RequestBody> for Framing {
    fn from(b: crate::http::head::RequestBody) -> Self {
        use crate::http::head::RequestBody;
        match b {
            RequestBody::None => Framing::Length(0),
            RequestBody::Length(n) => Framing::Length(n),
            RequestBody::Chunked => Framing::Chunked(ChunkedDecoder::new()),
        }
    }
}

/// A response's declared framing as the state that follows it.
impl From<crate::http::head::ResponseBody> for Framing {
    fn from(b: crate::http::head::ResponseBody) -> Self {
        use crate::http::head::ResponseBody;
        match b {
            ResponseBody::None => Framing::Length(0),
            ResponseBody::Length(n) => Framing::Length(n),
            ResponseBody::Chunked => Framing::Chunked(ChunkedDecoder::new()),
            ResponseBody::UntilClose => Framing::UntilClose,
        }
    }
}

impl Framing {
    pub fn is_done(&self) -> bool {
        match self {
            Framing::Length(n) => *n == 0,
            Framing::Chunked(d) => d.is_done(),
            Framing::UntilClose => false,
        }
    }

    /// Consumes as much of `input` as belongs to the body (raw, framing included).
    pub fn advance(&mut self, input: &[u8]) -> Result<Advance, BodyError> {
        match self {
            Framing::Length(n) => {
                let take = (*n).min(input.len() as u64);
                *n -= take;
                Ok(Advance {
                    consumed: take as usize,
                    done: *n == 0,
                })
            }
            Framing::Chunked(d) => {
                let mut pos = 0;
                loop {
                    let step = d.decode(&input[pos..])?;
                    pos += step.consumed;
                    if step.done || pos == input.len() {
                        return Ok(Advance {
                            consumed: pos,
                            done: step.done,
                        });
                    }
                }
            }
            Framing::UntilClose => Ok(Advance {
                consumed: input.len(),
                done: false,
            }),
        }
    }
}

/// Decodes a whole chunked body fed in pieces of `step` bytes, as reads would deliver it;
/// returns (data, bytes consumed, done). For tests and the fuzz target: the answer must not
/// depend on how the input was split.
pub fn decode_in_pieces(input: &[u8], step: usize) -> Result<(Vec<u8>, usize, bool), BodyError> {
    let mut d = ChunkedDecoder::new();
    let mut data = Vec::new();
    let mut total = 0;
    let mut pos = 0;
    while pos < input.len() {
        let end = (pos + step.max(1)).min(input.len());
        let piece = &input[pos..end];
        let mut off = 0;
        loop {
            let s = d.decode(&piece[off..])?;
            if let Some(r) = s.data {
                data.extend_from_slice(&piece[off + r.start..off + r.end]);
            }
            off += s.consumed;
            if s.done {
                return Ok((data, total + off, true));
            }
            if off == piece.len() {
                break;
            }
        }
        total += piece.len();
        pos = end;
    }
    Ok((data, total, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8], step: usize) -> Result<(Vec<u8>, usize, bool), BodyError> {
        decode_in_pieces(input, step)
    }

    #[test]
    fn valid_chunked_table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"0\r\n\r\n", b""),
            (b"1\r\na\r\n0\r\n\r\n", b"a"),
            (b"5;ext=1\r\nhello\r\n0\r\n\r\n", b"hello"),
            (
                b"5 ;ext\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n",
                b"hello world",
            ),
            (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
        ];
        for (input, want) in cases {
            for step in [1, 2, 3, 7, input.len()] {
                let (data, consumed, done) = run(input, step).unwrap();
                assert!(done, "{}", String::from_utf8_lossy(input));
                assert_eq!(data, *want);
                assert_eq!(consumed, input.len());
            }
        }
    }

    #[test]
    fn stops_at_end_of_message() {
        let input = b"1\r\na\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
        let (_, consumed, done) = run(input, input.len()).unwrap();
        assert!(done);
        assert_eq!(consumed, 11);
    }

    #[test]
    fn invalid_chunked_table() {
        let cases: &[(&[u8], BodyError)] = &[
            (b"g\r\n", BodyError::BadSize),
            (b"\r\n", BodyError::BadSize),
            (b"-1\r\n", BodyError::BadSize),
            (b"1\na\r\n", BodyError::BadSize),
            (b"11111111111111111\r\n", BodyError::SizeOverflow),
            (b"1\r\nab\r\n", BodyError::MissingCrlf),
            (b"1\r\na\n0\r\n\r\n", BodyError::MissingCrlf),
            (b"1\rxa", BodyError::MissingCrlf),
            (b"0\r\nX: 1\nY", BodyError::BadByte),
        ];
        for (input, want) in cases {
            assert_eq!(
                run(input, 1).unwrap_err(),
                *want,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
        let long_ext = format!("1;{}\r\n", "x".repeat(MAX_EXTENSION_LINE + 1));
        assert_eq!(
            run(long_ext.as_bytes(), 100).unwrap_err(),
            BodyError::ExtensionTooLong
        );
    }

    #[test]
    fn length_framing() {
        let mut f = Framing::Length(5);
        assert_eq!(
            f.advance(b"abc").unwrap(),
            Advance {
                consumed: 3,
                done: false
            }
        );
        assert_eq!(
            f.advance(b"defgh").unwrap(),
            Advance {
                consumed: 2,
                done: true
            }
        );
        assert!(f.is_done());
    }
}
