//! Removing the usage chunk the client did not ask for from an OpenAI stream.
//!
//! When a streaming Chat Completions request did not set `stream_options.include_usage`, the
//! proxy sets it (to meter the response) and must then hide the extra chunk from the client:
//! an event whose JSON has `"choices": []` and a `usage` object. [`UsageChunkStripper`] passes
//! every other byte through untouched and in order.
//!
//! The stream is a sequence of *blocks*, each ending with a blank line (its last line ending
//! included, `\r\n` as a whole). A block is forwarded as soon as its blank line arrives, or
//! dropped whole when it dispatched the usage event. Only the bytes of the current, incomplete
//! block are held back, and never more than the SSE parser's event limit: a block that outgrows
//! it is forwarded as it comes (and could not be stripped; a usage chunk is a few hundred bytes).
//! At the end of the stream, [`UsageChunkStripper::finish`] returns the held bytes of an
//! unterminated last block, which no SSE client dispatches.
//!
//! When a usage event is dropped before any byte was forwarded, the next block starts the
//! stream the client sees; if that block starts with a UTF-8 byte order mark (part of a field
//! name upstream, so the line was ignored), a client would drop the mark as the stream's and
//! read the line as a field. A second byte order mark is forwarded before it in that case.

use bytes::{Bytes, BytesMut};

use crate::meter::{OpenAiPayload, is_done, may_carry_usage};
use crate::sse::{EventRef, SseParser};

/// Held-back buffers that grew beyond this for one block are released afterwards.
const KEEP_CAPACITY: usize = 64 * 1024;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Strips OpenAI's final usage chunk from a stream; see the module docs.
#[derive(Debug, Default)]
pub struct UsageChunkStripper {
    parser: SseParser,
    /// Bytes of the current block from earlier chunks.
    held: Vec<u8>,
    /// The current block outgrew the limit: forward it as it comes.
    passthrough: bool,
    /// The last chunk ended with a block whose final line ending was a `\r`: a `\n` starting
    /// the next chunk belongs to that block. `Some(true)` if that block was dropped.
    cr_pending: Option<bool>,
    /// Blank lines of the chunk being processed: (offset past it, whether to drop its block).
    blocks: Vec<(usize, bool)>,
    stripped: u64,
    /// Some byte has been forwarded: the stream has started for the client.
    forwarded: bool,
    /// A block was dropped before any byte was forwarded: the next block forwarded starts the
    /// client's stream, and needs a byte order mark before its own, if it has one.
    guard_bom: bool,
}

/// Whether an event is the usage chunk: `"choices": []` and a `usage` object.
fn is_usage_event(event: &EventRef<'_>) -> bool {
    !is_done(event.data)
        && may_carry_usage(event.data)
        && serde_json::from_slice::<OpenAiPayload>(event.data).is_ok_and(|p| p.is_usage_chunk())
}

impl UsageChunkStripper {
    /// A stripper at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes this stripper holds allocated: its parser's buffers, the held-back bytes of
    /// the current block and its list of block ends. Bounded like the parser's (see
    /// [`SseParser::retained_bytes`]), never a function of the stream's length.
    pub fn retained_bytes(&self) -> usize {
        self.parser.retained_bytes()
            + self.held.capacity()
            + self.blocks.capacity() * std::mem::size_of::<(usize, bool)>()
    }

    /// How many usage events were removed so far.
    pub fn stripped_events(&self) -> u64 {
        self.stripped
    }

    /// Takes the next upstream chunk and returns the bytes to forward now: the held bytes of
    /// the block it completes and every complete block it contains, minus the usage event.
    /// When no byte is held or dropped this is `chunk` itself (a cheap reference-counted slice).
    pub fn push(&mut self, chunk: Bytes) -> Bytes {
        if chunk.is_empty() {
            return chunk;
        }
        let Self { parser, blocks, .. } = self;
        blocks.clear();
        parser.feed_with_offsets(&chunk, |end, event| blocks.push((end, event.is_some_and(|e| is_usage_event(&e)))));

        let mut out = Out::Empty;
        let mut pos = 0;
        if let Some(dropped) = self.cr_pending.take()
            && chunk.first() == Some(&b'\n')
        {
            if !dropped {
                out.push_range(&chunk, 0, 1);
            }
            pos = 1;
        }
        for &(end, usage) in &self.blocks {
            let drop = usage && !self.passthrough;
            if drop {
                self.stripped += 1;
                self.guard_bom |= !self.forwarded && out.is_empty();
            } else {
                guard_start(&mut self.guard_bom, &self.held, &mut out, &chunk, &chunk[pos..end]);
                out.push_bytes(&chunk, &self.held);
                out.push_range(&chunk, pos, end);
            }
            clear(&mut self.held);
            self.passthrough = false;
            if end == chunk.len() && chunk.last() == Some(&b'\r') {
                self.cr_pending = Some(drop);
            }
            pos = end;
        }
        let tail = chunk.len() - pos;
        if self.passthrough {
            out.push_range(&chunk, pos, chunk.len());
        } else if self.held.len() + tail > self.parser.max_event_bytes() {
            guard_start(&mut self.guard_bom, &self.held, &mut out, &chunk, &chunk[pos..]);
            out.push_bytes(&chunk, &self.held);
            clear(&mut self.held);
            out.push_range(&chunk, pos, chunk.len());
            self.passthrough = true;
        } else {
            self.held.extend_from_slice(&chunk[pos..]);
        }
        self.forwarded |= !out.is_empty();
        out.into_bytes(&chunk)
    }

    /// Ends the stream: returns the held bytes of an unterminated last block, if any.
    pub fn finish(&mut self) -> Bytes {
        self.passthrough = false;
        self.cr_pending = None;
        Bytes::from(std::mem::take(&mut self.held))
    }
}

/// Called before forwarding a block whose bytes are `held` then `rest`: when `guard` is set,
/// clears it and adds a byte order mark first if the block starts with one (module docs).
fn guard_start(guard: &mut bool, held: &[u8], out: &mut Out, chunk: &Bytes, rest: &[u8]) {
    if std::mem::take(guard) && held.iter().chain(rest).take(3).eq(UTF8_BOM) {
        out.push_bytes(chunk, UTF8_BOM);
    }
}

fn clear(buffer: &mut Vec<u8>) {
    buffer.clear();
    if buffer.capacity() > KEEP_CAPACITY {
        *buffer = Vec::new();
    }
}

/// The output of one `push`: nothing, one range of the input chunk (no copy), or a copy.
enum Out {
    Empty,
    Slice(usize, usize),
    Owned(BytesMut),
}

impl Out {
    fn is_empty(&self) -> bool {
        matches!(self, Out::Empty)
    }

    fn push_range(&mut self, chunk: &Bytes, start: usize, end: usize) {
        if start == end {
            return;
        }
        match self {
            Out::Empty => *self = Out::Slice(start, end),
            Out::Slice(_, last) if *last == start => *last = end,
            Out::Slice(s, e) => {
                let mut owned = BytesMut::with_capacity(*e - *s + end - start);
                owned.extend_from_slice(&chunk[*s..*e]);
                owned.extend_from_slice(&chunk[start..end]);
                *self = Out::Owned(owned);
            }
            Out::Owned(owned) => owned.extend_from_slice(&chunk[start..end]),
        }
    }

    /// Appends bytes that are not part of the chunk (held from earlier chunks).
    fn push_bytes(&mut self, chunk: &Bytes, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match self {
            Out::Empty => *self = Out::Owned(BytesMut::from(bytes)),
            Out::Slice(s, e) => {
                let mut owned = BytesMut::with_capacity(*e - *s + bytes.len());
                owned.extend_from_slice(&chunk[*s..*e]);
                owned.extend_from_slice(bytes);
                *self = Out::Owned(owned);
            }
            Out::Owned(owned) => owned.extend_from_slice(bytes),
        }
    }

    fn into_bytes(self, chunk: &Bytes) -> Bytes {
        match self {
            Out::Empty => Bytes::new(),
            Out::Slice(start, end) => chunk.slice(start..end),
            Out::Owned(owned) => owned.freeze(),
        }
    }
}

#[cfg(test)]
mod tests;
