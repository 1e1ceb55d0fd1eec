//! An incremental Server-Sent Events parser that observes a stream without changing it.
//!
//! The proxy forwards every upstream chunk to the client as it arrives; a copy of the same
//! chunk is fed to an [`SseParser`], which reassembles events across arbitrary chunk
//! boundaries. It follows the event-stream interpretation of the WHATWG HTML standard
//! ("Server-sent events", section 9.2.6) for the fields the proxy needs:
//!
//! - lines end in `\n`, `\r\n` or `\r`, and a `\r\n` split between two chunks is one ending;
//! - a blank line dispatches the event; an event with no `data:` line is not dispatched;
//! - `data:` lines are joined with `\n`; `event:` sets the type; one space after the colon is
//!   dropped; a line starting with `:` is a comment; `id:`, `retry:` and unknown fields are
//!   ignored; a line with no colon is a field name with an empty value;
//! - one UTF-8 byte order mark at the very start of the stream is ignored;
//! - an event still incomplete when the stream ends is never dispatched.
//!
//! Memory is bounded: an event whose buffered fields would exceed the limit (default
//! [`DEFAULT_MAX_EVENT_BYTES`]) is dropped, counted in [`SseParser::dropped_events`], and the
//! parser skips to the next blank line without buffering. Comment lines are never buffered.
//! Buffers are reused between events, so a steady stream allocates nothing per event.

use memchr::{memchr, memchr2};

/// The default limit on one event's buffered fields: 1 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// A buffer that grew beyond this for one large event is released afterwards rather than kept.
const KEEP_CAPACITY: usize = 64 * 1024;

/// One dispatched event, borrowed from the parser's buffers for the duration of a callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventRef<'a> {
    /// The value of the last `event:` field; empty when there was none (the standard's default
    /// type, `message`).
    pub event: &'a [u8],
    /// The values of the `data:` lines, joined with `\n` (no trailing newline).
    pub data: &'a [u8],
}

impl EventRef<'_> {
    /// An owned copy; invalid UTF-8 is replaced with U+FFFD, as a browser would.
    pub fn to_owned_event(&self) -> SseEvent {
        SseEvent {
            event: String::from_utf8_lossy(self.event).into_owned(),
            data: String::from_utf8_lossy(self.data).into_owned(),
        }
    }
}

/// One dispatched event, owned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, empty when there was none.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// The incremental parser. Feed it every chunk of a stream, in order; see the module docs.
#[derive(Debug)]
pub struct SseParser {
    max_event_bytes: usize,
    /// The current line, without its ending (not kept for comments or while skipping).
    line: Vec<u8>,
    /// The current line has at least one byte, kept or not: it is not blank.
    line_started: bool,
    /// The current line is a comment: its bytes are not kept.
    in_comment: bool,
    /// The last byte seen was a `\r` ending a line: a `\n` right after it is part of that ending.
    after_cr: bool,
    /// No line has ended yet: the next line may start with a byte order mark.
    first_line: bool,
    event: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    /// The current event outgrew the limit: skip to the next blank line, keeping nothing.
    skipping: bool,
    dropped: u64,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl SseParser {
    /// A parser with the default event size limit of 1 MiB.
    pub fn new() -> Self {
        Self::with_max_event_bytes(DEFAULT_MAX_EVENT_BYTES)
    }

    /// A parser that drops any event whose buffered fields exceed `max_event_bytes`.
    pub fn with_max_event_bytes(max_event_bytes: usize) -> Self {
        Self {
            max_event_bytes,
            line: Vec::new(),
            line_started: false,
            in_comment: false,
            after_cr: false,
            first_line: true,
            event: Vec::new(),
            data: Vec::new(),
            has_data: false,
            skipping: false,
            dropped: 0,
        }
    }

    /// The event size limit.
    pub fn max_event_bytes(&self) -> usize {
        self.max_event_bytes
    }

    /// How many events were dropped for exceeding the size limit.
    pub fn dropped_events(&self) -> u64 {
        self.dropped
    }

    /// The bytes this parser's buffers hold allocated (their capacity): at most a few times the
    /// largest event since the last one over 64 KiB, never a function of the stream's length.
    pub fn retained_bytes(&self) -> usize {
        self.line.capacity() + self.event.capacity() + self.data.capacity()
    }

    /// Feeds one chunk and returns the events it completed, owned.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        self.feed_with(chunk, |event| events.push(event.to_owned_event()));
        events
    }

    /// Feeds one chunk and calls `on_event` for each event it completes, without copying.
    pub fn feed_with(&mut self, chunk: &[u8], mut on_event: impl FnMut(EventRef<'_>)) {
        self.feed_with_offsets(chunk, |_, event| {
            if let Some(event) = event {
                on_event(event);
            }
        });
    }

    /// Feeds one chunk and calls `on_blank_line(end, event)` at every blank line, which ends a
    /// block of the stream: `end` is the offset in `chunk` just past the blank line's ending
    /// (past the `\n` of a `\r\n` when both are in this chunk), and `event` is the event that
    /// the blank line dispatched, if any (none for a block of comments, of fields without
    /// `data:`, of nothing, or for an event dropped for its size).
    ///
    /// A blank line ending in `\r` at the very end of `chunk` is reported there; a `\n` at the
    /// start of the next chunk completes that ending and belongs to no new line.
    pub fn feed_with_offsets(&mut self, chunk: &[u8], mut on_blank_line: impl FnMut(usize, Option<EventRef<'_>>)) {
        let mut i = 0;
        if self.after_cr && !chunk.is_empty() {
            self.after_cr = false;
            if chunk.first() == Some(&b'\n') {
                i = 1;
            }
        }
        while let Some(rest) = chunk.get(i..).filter(|rest| !rest.is_empty()) {
            let Some(k) = memchr2(b'\n', b'\r', rest) else {
                self.append(rest);
                break;
            };
            self.append(&rest[..k]);
            let mut next = i + k + 1;
            if rest[k] == b'\r' {
                match chunk.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            self.end_line(next, &mut on_blank_line);
            i = next;
        }
    }

    /// Appends bytes of the current line (never a line ending).
    fn append(&mut self, bytes: &[u8]) {
        let Some(&first) = bytes.first() else { return };
        if !self.line_started {
            self.line_started = true;
            self.in_comment = first == b':';
        }
        if self.in_comment || self.skipping {
            return;
        }
        let buffered = self.data.len() + self.event.len() + self.line.len();
        if buffered.saturating_add(bytes.len()) > self.max_event_bytes {
            self.skipping = true;
            self.line.clear();
            self.clear_event();
            return;
        }
        self.line.extend_from_slice(bytes);
    }

    fn end_line(&mut self, end: usize, on_blank_line: &mut impl FnMut(usize, Option<EventRef<'_>>)) {
        let first_line = std::mem::replace(&mut self.first_line, false);
        let started = std::mem::replace(&mut self.line_started, false);
        if std::mem::take(&mut self.in_comment) {
            return;
        }
        let mut line = std::mem::take(&mut self.line);
        let mut content = line.as_slice();
        if first_line && !self.skipping {
            content = content.strip_prefix(UTF8_BOM).unwrap_or(content);
        }
        if !started || (first_line && !self.skipping && content.is_empty()) {
            self.dispatch(end, on_blank_line);
        } else if !self.skipping {
            self.field(content);
        }
        line.clear();
        if line.capacity() > KEEP_CAPACITY {
            line = Vec::new();
        }
        self.line = line;
    }

    fn field(&mut self, line: &[u8]) {
        if line.first() == Some(&b':') {
            return; // a comment that started after a byte order mark
        }
        let (name, value) = match memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match name {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => {
                self.event.clear();
                self.event.extend_from_slice(value);
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, end: usize, on_blank_line: &mut impl FnMut(usize, Option<EventRef<'_>>)) {
        if self.skipping {
            self.skipping = false;
            self.dropped += 1;
            on_blank_line(end, None);
        } else if self.has_data {
            on_blank_line(end, Some(EventRef { event: &self.event, data: &self.data }));
        } else {
            on_blank_line(end, None);
        }
        self.clear_event();
    }

    fn clear_event(&mut self) {
        self.has_data = false;
        for buffer in [&mut self.data, &mut self.event] {
            buffer.clear();
            if buffer.capacity() > KEEP_CAPACITY {
                *buffer = Vec::new();
            }
        }
    }
}

#[cfg(test)]
mod tests;
