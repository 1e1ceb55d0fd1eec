//! HTTP/1.1 as the proxy speaks it to an upstream, without IO: the request head it writes,
//! the response head it parses (`httparse`), and the response body's framing (RFC 9112
//! section 6: a length, chunks, or the connection's end), decoded from a read buffer.
//!
//! Everything here works on bytes already read, so the connection code in the parent module
//! only moves bytes, and these rules are tested on their own.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use bytes::{Buf as _, Bytes, BytesMut};

/// The most header fields a response head may have (hyper's default is 100).
pub(super) const MAX_HEADERS: usize = 128;
/// The longest response head accepted: far above any provider's, but bounded.
pub(super) const MAX_HEAD_BYTES: usize = 256 * 1024;
/// The longest chunk-size line or trailer line accepted.
const MAX_LINE_BYTES: usize = 4096;
/// The most trailer bytes accepted after the last chunk.
const MAX_TRAILER_BYTES: usize = 64 * 1024;

/// Why an upstream's answer could not be read as HTTP/1.1. Never holds a header value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum WireError {
    /// The response head is not HTTP/1.x.
    #[error("the upstream's response head is malformed ({0})")]
    Head(&'static str),
    /// The response head is longer than [`MAX_HEAD_BYTES`] or has more than [`MAX_HEADERS`].
    #[error("the upstream's response head is too large")]
    HeadTooLarge,
    /// A `content-length` that is not one number.
    #[error("the upstream's content-length is invalid")]
    ContentLength,
    /// The upstream asked to switch protocols, which the proxy never requests.
    #[error("the upstream answered 101 Switching Protocols")]
    Upgrade,
    /// The chunked body's framing is broken.
    #[error("the upstream's chunked body is malformed ({0})")]
    Chunk(&'static str),
}

/// Writes a `POST` request head: the request line, `host`, `content-length`, then the headers
/// the caller adds, ended by [`RequestHead::finish`].
///
/// Only values that are already valid header values are written (`HeaderValue` refuses CR, LF
/// and NUL), and the target is made of a URI's path and query (which refuse them too), so no
/// byte from a client can start a header or a request of its own.
pub(crate) struct RequestHead {
    buf: Vec<u8>,
}

impl RequestHead {
    /// `POST {path}[?{query}] HTTP/1.1` to `authority` (the `host` header), announcing a body
    /// of `body_len` bytes.
    pub(crate) fn post(authority: &str, path: &str, query: Option<&str>, body_len: usize) -> Self {
        let mut buf = Vec::with_capacity(512);
        buf.extend_from_slice(b"POST ");
        buf.extend_from_slice(path.as_bytes());
        if let Some(q) = query {
            buf.push(b'?');
            buf.extend_from_slice(q.as_bytes());
        }
        buf.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        buf.extend_from_slice(authority.as_bytes());
        buf.extend_from_slice(b"\r\ncontent-length: ");
        buf.extend_from_slice(itoa::Buffer::new().format(body_len).as_bytes());
        buf.extend_from_slice(b"\r\n");
        Self { buf }
    }

    /// Adds one header field.
    pub(crate) fn header(&mut self, name: &HeaderName, value: &HeaderValue) {
        self.buf.extend_from_slice(name.as_str().as_bytes());
        self.buf.extend_from_slice(b": ");
        self.buf.extend_from_slice(value.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// The head's bytes, ended by the empty line.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(b"\r\n");
        self.buf
    }
}

/// A parsed response head, and how its body is framed.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    pub(crate) status: StatusCode,
    /// Every field, names lower-cased, values copied out of the read buffer (a value that
    /// referenced it would keep the connection's buffer alive with the head).
    pub(crate) headers: HeaderMap,
    pub(crate) framing: Framing,
    /// The connection may carry another request once this body is read.
    pub(crate) keep_alive: bool,
}

/// Parses a complete response head at the start of `buf` and removes it. `Ok(None)`: more
/// bytes are needed. An informational (1xx) head is removed and `Ok(None)` returned too, so
/// the caller reads on to the final head.
///
/// # Errors
/// [`WireError`] for a head that is malformed, too large, an upgrade, or has an invalid
/// `content-length`.
pub(crate) fn parse_response_head(buf: &mut BytesMut) -> Result<Option<ResponseHead>, WireError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut fields);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => return Err(WireError::HeadTooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(WireError::HeadTooLarge),
        Err(e) => return Err(WireError::Head(httparse_error(e))),
    };
    let code = response.code.unwrap_or_default();
    let status = StatusCode::from_u16(code).map_err(|_| WireError::Head("status code"))?;
    if code == 101 {
        return Err(WireError::Upgrade);
    }
    if status.is_informational() {
        buf.advance(len);
        return Ok(None);
    }
    let http11 = response.version == Some(1);
    let mut headers = HeaderMap::with_capacity(response.headers.len());
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_encoded = false;
    let mut close = !http11;
    for field in response.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes()).map_err(|_| WireError::Head("header name"))?;
        let value = HeaderValue::from_bytes(field.value).map_err(|_| WireError::Head("header value"))?;
        if name == axum::http::header::CONTENT_LENGTH {
            // `1, 1` (a repeated list) is one length; two different ones are none.
            for part in field.value.split(|&b| b == b',') {
                let n = parse_length(part.trim_ascii())?;
                if length.is_some_and(|l| l != n) {
                    return Err(WireError::ContentLength);
                }
                length = Some(n);
            }
        } else if name == axum::http::header::TRANSFER_ENCODING {
            transfer_encoded = true;
            // The final coding decides: chunked last means chunked framing.
            chunked = field
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name == axum::http::header::CONNECTION {
            close |= field.value.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
        headers.append(name, value);
    }
    buf.advance(len);
    let framing = if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        Framing::Length(0)
    } else if transfer_encoded {
        // Transfer-Encoding overrides Content-Length (RFC 9112 section 6.3); a coding other
        // than chunked last is read to the connection's end.
        if chunked { Framing::Chunked(Chunk::Size) } else { Framing::Close }
    } else {
        match length {
            Some(n) => Framing::Length(n),
            None => Framing::Close,
        }
    };
    // A message framed both ways may be an attempt at smuggling: its connection is not reused.
    let framed_twice = transfer_encoded && length.is_some();
    let keep_alive = !(close || framing == Framing::Close || framed_twice);
    Ok(Some(ResponseHead { status, headers, framing, keep_alive }))
}

fn parse_length(digits: &[u8]) -> Result<u64, WireError> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(WireError::ContentLength);
    }
    std::str::from_utf8(digits).ok().and_then(|s| s.parse().ok()).ok_or(WireError::ContentLength)
}

fn httparse_error(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "header name",
        httparse::Error::HeaderValue => "header value",
        httparse::Error::NewLine => "line ending",
        httparse::Error::Status => "status",
        httparse::Error::Token => "token",
        httparse::Error::Version => "version",
        httparse::Error::TooManyHeaders => "too many headers",
    }
}

/// How a response body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// This many bytes are left.
    Length(u64),
    /// Chunked, at this point of a chunk.
    Chunked(Chunk),
    /// Read to the connection's end.
    Close,
    /// All read.
    Done,
}

/// Where a chunked body's decoder is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last chunk: trailer lines, up to the empty line.
    Trailers {
        /// Trailer bytes seen so far.
        seen: usize,
    },
}

/// What [`Framing::decode`] found in the buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// Body bytes.
    Data(Bytes),
    /// More bytes must be read first. With [`Framing::Close`], reading nothing more (the
    /// connection's end) is the body's end; otherwise it is a broken body.
    NeedMore,
    /// The body is complete.
    End,
}

impl Framing {
    /// Takes the next body bytes (or framing) from `buf`: data is split off without copying.
    ///
    /// # Errors
    /// [`WireError::Chunk`] for broken chunked framing or over-long chunk and trailer lines.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, WireError> {
        loop {
            match *self {
                Self::Done | Self::Length(0) => {
                    *self = Self::Done;
                    return Ok(Decoded::End);
                }
                Self::Length(left) | Self::Chunked(Chunk::Data(left)) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let take = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
                    let left = left - take as u64;
                    *self = match *self {
                        Self::Chunked(_) if left == 0 => Self::Chunked(Chunk::DataEnd),
                        Self::Chunked(_) => Self::Chunked(Chunk::Data(left)),
                        _ => Self::Length(left),
                    };
                    return Ok(Decoded::Data(buf.split_to(take).freeze()));
                }
                Self::Close => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    return Ok(Decoded::Data(buf.split().freeze()));
                }
                Self::Chunked(Chunk::Size) => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((used, 0))) => {
                        buf.advance(used);
                        *self = Self::Chunked(Chunk::Trailers { seen: 0 });
                    }
                    Ok(httparse::Status::Complete((used, size))) => {
                        buf.advance(used);
                        *self = Self::Chunked(Chunk::Data(size));
                    }
                    Ok(httparse::Status::Partial) if buf.len() > MAX_LINE_BYTES => {
                        return Err(WireError::Chunk("chunk-size line too long"));
                    }
                    Ok(httparse::Status::Partial) => return Ok(Decoded::NeedMore),
                    Err(httparse::InvalidChunkSize) => return Err(WireError::Chunk("chunk size")),
                },
                Self::Chunked(Chunk::DataEnd) => {
                    if buf.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(WireError::Chunk("no CRLF after a chunk's data"));
                    }
                    buf.advance(2);
                    *self = Self::Chunked(Chunk::Size);
                }
                Self::Chunked(Chunk::Trailers { seen }) => {
                    let Some(eol) = memchr::memchr(b'\n', buf) else {
                        if buf.len() > MAX_LINE_BYTES {
                            return Err(WireError::Chunk("trailer line too long"));
                        }
                        return Ok(Decoded::NeedMore);
                    };
                    let line = &buf[..eol];
                    let empty = line.is_empty() || line == b"\r";
                    let seen = seen + eol + 1;
                    if seen > MAX_TRAILER_BYTES {
                        return Err(WireError::Chunk("trailers too large"));
                    }
                    buf.advance(eol + 1);
                    *self = if empty { Self::Done } else { Self::Chunked(Chunk::Trailers { seen }) };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
