//! Incremental framing (spec section 1): `[len: u16 BE][body]`. Fed whatever the socket read,
//! the decoder answers "need more" or yields whole bodies; a length prefix outside
//! [`FRAME_LEN_MIN`]..=[`FRAME_LEN_MAX`] is an error as soon as the prefix is read.
//!
//! Timers (30 s per frame, 120 s idle) are the caller's: [`FrameDecoder::is_mid_frame`] tells
//! whether a frame has started and not finished.

use thiserror::Error;

/// Smallest length prefix accepted: TPDU + header + MTI + bitmap.
pub const FRAME_LEN_MIN: usize = 21;
/// Largest length prefix accepted.
pub const FRAME_LEN_MAX: usize = 1024;

/// The connection must be closed: nothing after this can be framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("length prefix {len} is outside {min}..={max}")]
    LengthOutOfRange { len: usize, min: usize, max: usize },
}

/// Length limits for [`FrameDecoder`]; the default is the spec's 21..=1024.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    pub len_min: usize,
    pub len_max: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        FrameLimits {
            len_min: FRAME_LEN_MIN,
            len_max: FRAME_LEN_MAX,
        }
    }
}

/// What [`FrameDecoder::next_frame`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameStatus {
    /// A whole body (length prefix removed).
    Frame(Vec<u8>),
    /// Not a whole frame yet; `needed` more bytes complete the current frame (2 while the
    /// prefix itself is incomplete counts what the prefix still lacks).
    NeedMore { needed: usize },
}

/// Sans-I/O frame splitter. Buffers at most one partial frame plus whatever was pushed after
/// it (the caller bounds its reads).
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    start: usize,
    limits: FrameLimits,
    failed: Option<FrameError>,
}

impl FrameDecoder {
    pub fn new() -> FrameDecoder {
        FrameDecoder::default()
    }

    pub fn with_limits(limits: FrameLimits) -> FrameDecoder {
        FrameDecoder {
            limits,
            ..FrameDecoder::default()
        }
    }

    /// Appends bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered and not yet returned.
    pub fn buffered_len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// True when part of a frame has been received (the 30 s frame timer runs).
    pub fn is_mid_frame(&self) -> bool {
        self.buffered_len() > 0
    }

    /// The next whole frame, or how much is still needed. Once a bad prefix was seen, every
    /// call returns that error.
    pub fn next_frame(&mut self) -> Result<FrameStatus, FrameError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let pending = &self.buf[self.start..];
        let [hi, lo, rest @ ..] = pending else {
            return Ok(FrameStatus::NeedMore {
                needed: 2 - pending.len(),
            });
        };
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        if len < self.limits.len_min || len > self.limits.len_max {
            let e = FrameError::LengthOutOfRange {
                len,
                min: self.limits.len_min,
                max: self.limits.len_max,
            };
            self.failed = Some(e);
            return Err(e);
        }
        if rest.len() < len {
            return Ok(FrameStatus::NeedMore {
                needed: len - rest.len(),
            });
        }
        let body = rest[..len].to_vec();
        self.start += 2 + len;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 4 * self.limits.len_max {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        Ok(FrameStatus::Frame(body))
    }
}

/// Prepends the 2-byte length prefix to a body.
pub fn frame_body(body: &[u8]) -> Result<Vec<u8>, crate::EncodeError> {
    if body.len() > FRAME_LEN_MAX {
        return Err(crate::EncodeError::TooLong {
            len: body.len(),
            max: FRAME_LEN_MAX,
        });
    }
    let mut out = Vec::with_capacity(body.len() + 2);
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
    Ok(out)
}
