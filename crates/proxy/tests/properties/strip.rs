//! (b) The stripper removes exactly the usage event, whatever the split, and holds back
//! nothing but the current block.

use bytes::Bytes;
use memchr::memmem;
use proptest::prelude::*;
use proptest::sample::Index;
use tollgate_proxy::UsageChunkStripper;

use crate::support::{cuts, openai_stream, split};

proptest! {
    #![proptest_config(crate::config())]

    /// Output = input minus the usage block, for any split; the usage chunk never reaches the
    /// client; after each push, every complete block has been forwarded.
    #[test]
    fn output_is_the_input_minus_the_usage_event(s in openai_stream(), cuts in cuts()) {
        let bytes = &s.stream.bytes;
        let (start, end) = s.stream.marked_range();
        let expected = [&bytes[..start], &bytes[end..]].concat();

        let mut stripper = UsageChunkStripper::new();
        let mut out = Vec::new();
        let mut fed = 0;
        for piece in split(bytes, &cuts) {
            out.extend_from_slice(&stripper.push(Bytes::copy_from_slice(piece)));
            fed += piece.len();
            prop_assert!(expected.starts_with(&out), "forwarded bytes are in order and unchanged");
            // Promptness: every block complete within what was fed is forwarded (or dropped).
            let complete: usize = s.stream.blocks.iter().enumerate()
                .filter(|&(i, &(_, e))| e <= fed && Some(i) != s.stream.marked)
                .map(|(_, &(b, e))| e - b)
                .sum();
            prop_assert!(out.len() >= complete, "after {} bytes: {} forwarded, {} complete", fed, out.len(), complete);
            // Nothing of the usage block is forwarded, even in part.
            let removed_so_far = fed.min(end).saturating_sub(start);
            prop_assert!(out.len() <= fed - removed_so_far);
        }
        out.extend_from_slice(&stripper.finish());
        prop_assert_eq!(&out, &expected);
        prop_assert!(memmem::find(&out, s.usage_data.as_bytes()).is_none());
        prop_assert_eq!(stripper.stripped_events(), 1);
    }

    /// A stream cut at any byte: the usage event is removed if it was complete (dispatched),
    /// and every other byte, including an unterminated last block, is forwarded.
    #[test]
    fn a_cut_stream_loses_nothing_else(s in openai_stream(), cut in any::<Index>(), cuts in cuts()) {
        let bytes = &s.stream.bytes;
        let cut = cut.index(bytes.len() + 1);
        let (start, end) = s.stream.marked_range();
        let dispatch = if bytes[..end].ends_with(b"\r\n") { end - 1 } else { end };
        let prefix = &bytes[..cut];
        let expected = if cut >= dispatch { [&prefix[..start], &prefix[end.min(cut)..]].concat() } else { prefix.to_vec() };

        let mut stripper = UsageChunkStripper::new();
        let mut out = Vec::new();
        for piece in split(prefix, &cuts) {
            out.extend_from_slice(&stripper.push(Bytes::copy_from_slice(piece)));
        }
        out.extend_from_slice(&stripper.finish());
        prop_assert_eq!(out, expected);
    }
}
