//! Helpers shared by the fuzz targets: ways to cut one input into chunks, and a reference
//! Server-Sent Events parser written straight from the WHATWG algorithm to compare against.

/// The chunkings every streaming target is checked under: the whole input as one chunk, one
/// byte per chunk, and pseudo-random cuts (1 to 16 bytes) derived from the input itself, so a
/// crash reproduces from the input file alone.
pub fn chunkings(data: &[u8]) -> [Vec<&[u8]>; 3] {
    let whole = if data.is_empty() { Vec::new() } else { vec![data] };
    let bytes = data.chunks(1).collect();
    let mut state = fnv1a(data) | 1;
    let mut cuts = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        // xorshift64: cheap, deterministic, good enough to vary the cut sizes.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let n = usize::try_from(state % 16).unwrap_or(0) + 1;
        let (head, tail) = rest.split_at(n.min(rest.len()));
        cuts.push(head);
        rest = tail;
    }
    [whole, bytes, cuts]
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// One event of the reference parser: (`event` field, joined `data`).
pub type RefEvent = (Vec<u8>, Vec<u8>);

/// The event-stream interpretation of the WHATWG HTML standard (9.2.6), on a whole stream,
/// as plainly as it is written: one leading byte order mark dropped; lines end in CRLF, LF or
/// CR; an unterminated last line is discarded; a blank line dispatches when the data buffer is
/// not empty; `event` and `data` are the only fields kept.
pub fn reference_events(stream: &[u8]) -> Vec<RefEvent> {
    let stream = stream.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(stream);
    let mut events = Vec::new();
    let (mut event, mut data) = (Vec::new(), Vec::new());
    let mut has_data = false;
    let mut i = 0;
    let mut start = 0;
    while i < stream.len() {
        let b = stream[i];
        if b != b'\n' && b != b'\r' {
            i += 1;
            continue;
        }
        let line = &stream[start..i];
        i += if b == b'\r' && stream.get(i + 1) == Some(&b'\n') { 2 } else { 1 };
        start = i;
        if line.is_empty() {
            if has_data {
                events.push((std::mem::take(&mut event), std::mem::take(&mut data)));
            }
            event.clear();
            data.clear();
            has_data = false;
            continue;
        }
        if line[0] == b':' {
            continue;
        }
        let (name, value) = match line.iter().position(|&c| c == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match name {
            b"data" => {
                if has_data {
                    data.push(b'\n');
                }
                data.extend_from_slice(value);
                has_data = true;
            }
            b"event" => {
                event.clear();
                event.extend_from_slice(value);
            }
            _ => {}
        }
    }
    events
}
