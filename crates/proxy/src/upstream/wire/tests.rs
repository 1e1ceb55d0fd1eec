use super::*;

fn buf(bytes: &[u8]) -> BytesMut {
    BytesMut::from(bytes)
}

/// Decodes all of `wire` fed in pieces of `step` bytes: the body, and whether it ended.
fn decode_in_steps(mut framing: Framing, wire: &[u8], step: usize) -> Result<(Vec<u8>, bool), WireError> {
    let mut body = Vec::new();
    let mut b = BytesMut::new();
    let mut rest = wire;
    loop {
        match framing.decode(&mut b)? {
            Decoded::Data(d) => body.extend_from_slice(&d),
            Decoded::End => return Ok((body, true)),
            Decoded::NeedMore if rest.is_empty() => return Ok((body, false)),
            Decoded::NeedMore => {
                let n = step.min(rest.len());
                b.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
            }
        }
    }
}

#[test]
fn the_request_head_has_the_target_host_length_and_headers() {
    let mut head = RequestHead::post("api.example:8443", "/base/v1/messages", Some("beta=true"), 42);
    head.header(&HeaderName::from_static("anthropic-version"), &HeaderValue::from_static("2023-06-01"));
    assert_eq!(
        head.finish(),
        b"POST /base/v1/messages?beta=true HTTP/1.1\r\nhost: api.example:8443\r\ncontent-length: 42\r\nanthropic-version: 2023-06-01\r\n\r\n"
    );
    let head = RequestHead::post("h", "/v1/x", None, 0).finish();
    assert_eq!(head, b"POST /v1/x HTTP/1.1\r\nhost: h\r\ncontent-length: 0\r\n\r\n");
}

#[test]
fn a_head_is_parsed_removed_and_its_values_copied() {
    let mut b = buf(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nX-A: 2\r\n\r\nabc");
    let head = parse_response_head(&mut b).unwrap().unwrap();
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.headers["content-type"], "text/event-stream");
    assert_eq!(head.headers.get_all("x-a").iter().collect::<Vec<_>>(), ["1", "2"]);
    assert_eq!(head.framing, Framing::Chunked(Chunk::Size));
    assert!(head.keep_alive);
    assert_eq!(&b[..], b"abc", "only the head is removed");
}

#[test]
fn a_partial_head_asks_for_more_and_consumes_nothing() {
    let mut b = buf(b"HTTP/1.1 200 OK\r\ncontent-len");
    assert!(parse_response_head(&mut b).unwrap().is_none());
    assert_eq!(&b[..], b"HTTP/1.1 200 OK\r\ncontent-len");
}

#[test]
fn an_informational_head_is_skipped() {
    let mut b = buf(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok");
    assert!(parse_response_head(&mut b).unwrap().is_none(), "the 100 is consumed");
    let head = parse_response_head(&mut b).unwrap().unwrap();
    assert_eq!(head.status, StatusCode::CREATED);
    assert_eq!(head.framing, Framing::Length(2));
}

#[test]
fn framing_follows_rfc_9112() {
    let framing =
        |head: &str| parse_response_head(&mut buf(head.as_bytes())).map(|h| h.map(|h| (h.framing, h.keep_alive)));
    assert_eq!(framing("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"), Ok(Some((Framing::Length(5), true))));
    assert_eq!(framing("HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\n"), Ok(Some((Framing::Length(5), true))));
    assert_eq!(
        framing("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n"),
        Err(WireError::ContentLength)
    );
    assert_eq!(framing("HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n"), Err(WireError::ContentLength));
    assert_eq!(framing("HTTP/1.1 200 OK\r\ncontent-length: +1\r\n\r\n"), Err(WireError::ContentLength));
    assert_eq!(framing("HTTP/1.1 200 OK\r\n\r\n"), Ok(Some((Framing::Close, false))));
    assert_eq!(framing("HTTP/1.1 204 No Content\r\n\r\n"), Ok(Some((Framing::Length(0), true))));
    assert_eq!(framing("HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n"), Ok(Some((Framing::Length(0), true))));
    assert_eq!(
        framing("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, Chunked\r\n\r\n"),
        Ok(Some((Framing::Chunked(Chunk::Size), true)))
    );
    assert_eq!(
        framing("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n"),
        Ok(Some((Framing::Close, false)))
    );
    // Both: chunked wins, and the connection is not reused.
    assert_eq!(
        framing("HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n"),
        Ok(Some((Framing::Chunked(Chunk::Size), false)))
    );
    assert_eq!(
        framing("HTTP/1.1 200 OK\r\nconnection: keep-alive, Close\r\ncontent-length: 1\r\n\r\n"),
        Ok(Some((Framing::Length(1), false)))
    );
    assert_eq!(framing("HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n"), Ok(Some((Framing::Length(1), false))));
    assert_eq!(framing("HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n"), Err(WireError::Upgrade));
    assert_eq!(framing("HTTP/1.1 2x0 OK\r\n\r\n"), Err(WireError::Head("status")));
    assert!(framing("HTTP/1.1 200 OK\r\nbad header\r\n\r\n").is_err());
}

#[test]
fn a_head_too_long_or_with_too_many_fields_is_refused() {
    let mut long = b"HTTP/1.1 200 OK\r\nx: ".to_vec();
    long.resize(MAX_HEAD_BYTES, b'a');
    assert_eq!(parse_response_head(&mut buf(&long)).map(|_| ()), Err(WireError::HeadTooLarge));
    let mut many = String::from("HTTP/1.1 200 OK\r\n");
    for i in 0..=MAX_HEADERS {
        many.push_str(&format!("x-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(parse_response_head(&mut buf(many.as_bytes())).map(|_| ()), Err(WireError::HeadTooLarge));
    // Long, but within the limit: accepted whole.
    let mut fine = String::from("HTTP/1.1 200 OK\r\n");
    for i in 0..MAX_HEADERS - 1 {
        fine.push_str(&format!("x-ratelimit-{i}: {}\r\n", "v".repeat(100)));
    }
    fine.push_str("content-length: 0\r\n\r\n");
    let head = parse_response_head(&mut buf(fine.as_bytes())).unwrap().unwrap();
    assert_eq!(head.headers.len(), MAX_HEADERS);
}

#[test]
fn a_length_body_ends_at_its_length_whatever_the_pieces() {
    for step in [1, 2, 3, 7, 100] {
        let (body, ended) = decode_in_steps(Framing::Length(11), b"hello worldEXTRA", step).unwrap();
        assert_eq!(body, b"hello world");
        assert!(ended);
    }
    let (body, ended) = decode_in_steps(Framing::Length(11), b"hello", 3).unwrap();
    assert_eq!((body.as_slice(), ended), (&b"hello"[..], false), "short: not ended");
}

#[test]
fn a_chunked_body_is_decoded_whatever_the_pieces() {
    let wire = b"5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\ntrailer: x\r\n\r\nNEXT";
    for step in [1, 2, 3, 5, 8, 13, 200] {
        let mut f = Framing::Chunked(Chunk::Size);
        let (body, ended) = decode_in_steps(f, wire, step).unwrap();
        assert_eq!(body, b"hello 0123456789", "step {step}");
        assert!(ended);
        // What follows the body stays in the buffer.
        let mut b = buf(wire);
        while f.decode(&mut b).unwrap() != Decoded::End {}
        assert_eq!(&b[..], b"NEXT");
    }
}

#[test]
fn a_chunked_body_cut_short_has_not_ended() {
    let (body, ended) = decode_in_steps(Framing::Chunked(Chunk::Size), b"5\r\nhello\r\n3\r\nab", 4).unwrap();
    assert_eq!(body, b"helloab");
    assert!(!ended);
    let (_, ended) = decode_in_steps(Framing::Chunked(Chunk::Size), b"0\r\n", 4).unwrap();
    assert!(!ended, "no empty line after the last chunk yet");
}

#[test]
fn broken_chunked_framing_is_an_error() {
    let err = |wire: &[u8]| decode_in_steps(Framing::Chunked(Chunk::Size), wire, 64).err();
    assert_eq!(err(b"zz\r\n"), Some(WireError::Chunk("chunk size")));
    assert_eq!(err(b"3\r\nabcX\r\n"), Some(WireError::Chunk("no CRLF after a chunk's data")));
    let long_size = vec![b'1'; MAX_LINE_BYTES + 10];
    assert!(err(&long_size).is_some());
    let mut long_trailer = b"0\r\nx: ".to_vec();
    long_trailer.resize(MAX_LINE_BYTES + 10, b'a');
    assert_eq!(err(&long_trailer), Some(WireError::Chunk("trailer line too long")));
    let mut many_trailers = b"0\r\n".to_vec();
    while many_trailers.len() <= MAX_TRAILER_BYTES + 100 {
        many_trailers.extend_from_slice(b"x-trailer: 0123456789\r\n");
    }
    assert_eq!(err(&many_trailers), Some(WireError::Chunk("trailers too large")));
}

#[test]
fn a_close_delimited_body_is_everything_until_the_end() {
    let (body, ended) = decode_in_steps(Framing::Close, b"all of it", 4).unwrap();
    assert_eq!(body, b"all of it");
    assert!(!ended, "only the connection's end ends it: the caller's to see");
}

#[test]
fn data_is_split_off_without_copying() {
    let mut b = buf(b"0123456789");
    let start = b.as_ptr();
    let Decoded::Data(d) = Framing::Length(4).decode(&mut b).unwrap() else { panic!("data") };
    assert_eq!(d.as_ptr(), start);
    assert_eq!(&b[..], b"456789");
}

#[test]
fn line_limits_hold_at_their_bounds() {
    // A chunk-size line (with an extension) still without its end: more is awaited up to the
    // limit, refused past it.
    let mut at_limit = b"5;".to_vec();
    at_limit.resize(MAX_LINE_BYTES, b'a');
    assert_eq!(Framing::Chunked(Chunk::Size).decode(&mut buf(&at_limit)), Ok(Decoded::NeedMore));
    at_limit.push(b'a');
    assert_eq!(
        Framing::Chunked(Chunk::Size).decode(&mut buf(&at_limit)),
        Err(WireError::Chunk("chunk-size line too long"))
    );
    // The same for a trailer line.
    let trailers = || Framing::Chunked(Chunk::Trailers { seen: 0 });
    let mut trailer = b"x: ".to_vec();
    trailer.resize(MAX_LINE_BYTES, b'a');
    assert_eq!(trailers().decode(&mut buf(&trailer)), Ok(Decoded::NeedMore));
    trailer.push(b'a');
    assert_eq!(trailers().decode(&mut buf(&trailer)), Err(WireError::Chunk("trailer line too long")));
    // Many trailers, exactly the total allowed with the empty line: read to the end.
    let mut many = Vec::new();
    while many.len() + 2 * 23 + 2 < MAX_TRAILER_BYTES {
        many.extend_from_slice(b"x-trailer: 0123456789\r\n");
    }
    let mut last = b"x-last: ".to_vec();
    last.resize(MAX_TRAILER_BYTES - 2 - many.len() - 2, b'a');
    many.extend_from_slice(&last);
    many.extend_from_slice(b"\r\n\r\n");
    assert_eq!(many.len(), MAX_TRAILER_BYTES);
    let mut f = trailers();
    assert_eq!(f.decode(&mut buf(&many)), Ok(Decoded::End));
}

#[test]
fn a_chunks_crlf_is_taken_as_soon_as_both_bytes_are_there() {
    let mut f = Framing::Chunked(Chunk::DataEnd);
    let mut b = buf(b"\r");
    assert_eq!(f.decode(&mut b), Ok(Decoded::NeedMore));
    b.extend_from_slice(b"\n");
    assert_eq!(f.decode(&mut b), Ok(Decoded::NeedMore), "now waiting for the next size line");
    assert!(b.is_empty());
    assert_eq!(f, Framing::Chunked(Chunk::Size));
}
