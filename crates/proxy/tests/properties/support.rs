//! Generators shared by the properties: chunk splits, line endings, and realistic Anthropic
//! and OpenAI streams that know where each of their events is.

use proptest::prelude::*;
use proptest::sample::Index;

/// Up to 24 cut points, anywhere (duplicates make empty chunks, which must be harmless).
pub(crate) fn cuts() -> impl Strategy<Value = Vec<Index>> {
    prop::collection::vec(any::<Index>(), 0..24)
}

/// `data` cut at `cuts` (indices into `0..=len`), in order; the pieces concatenate to `data`.
pub(crate) fn split<'a>(data: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
    points.sort_unstable();
    let mut pieces = Vec::with_capacity(points.len() + 1);
    let mut start = 0;
    for p in points {
        pieces.push(&data[start..p]);
        start = p;
    }
    pieces.push(&data[start..]);
    pieces
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Ending {
    Lf,
    CrLf,
    Cr,
}

impl Ending {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Ending::Lf => "\n",
            Ending::CrLf => "\r\n",
            Ending::Cr => "\r",
        }
    }
}

pub(crate) fn ending() -> impl Strategy<Value = Ending> {
    prop_oneof![Just(Ending::Lf), Just(Ending::CrLf), Just(Ending::Cr)]
}

/// A stream built block by block, remembering each block's byte range.
#[derive(Clone, Debug, Default)]
pub(crate) struct Stream {
    pub bytes: Vec<u8>,
    /// Byte ranges of the blocks: (start, end), end just past the blank line.
    pub blocks: Vec<(usize, usize)>,
    /// Index in `blocks` of the block of interest (the usage chunk, the message_stop).
    pub marked: Option<usize>,
}

impl Stream {
    /// Appends one block: `lines` (each followed by `ending`) and a blank line.
    pub(crate) fn block(&mut self, lines: &[String], ending: Ending) {
        let start = self.bytes.len();
        for line in lines {
            self.bytes.extend_from_slice(line.as_bytes());
            self.bytes.extend_from_slice(ending.as_str().as_bytes());
        }
        self.bytes.extend_from_slice(ending.as_str().as_bytes());
        self.blocks.push((start, self.bytes.len()));
    }

    pub(crate) fn mark_last(&mut self) {
        self.marked = Some(self.blocks.len() - 1);
    }

    pub(crate) fn marked_range(&self) -> (usize, usize) {
        self.blocks[self.marked.unwrap()]
    }
}

/// Text as a model writes it: words, punctuation, quotes, newlines, non-ASCII, and the
/// strings a naive scanner would trip on.
pub(crate) fn content_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => "[a-zA-Z]{1,10} ",
        1 => "[ -~]{0,6}",
        1 => Just("\n\n".to_owned()),
        1 => Just("\"usage\":{\"prompt_tokens\":1} ".to_owned()),
        1 => Just("\"choices\":[], data: [DONE]\r\n\r\n".to_owned()),
        1 => Just("event: message_stop\n\n".to_owned()),
        1 => "[é東京🦀ß]{1,3}",
    ];
    prop::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

// ---- OpenAI ---------------------------------------------------------------------------------

/// An OpenAI stream with `include_usage`: content chunks, keep-alive comments, the usage chunk
/// (marked) and `[DONE]`, with one line ending throughout.
#[derive(Clone, Debug)]
pub(crate) struct OpenAiStream {
    pub stream: Stream,
    pub prompt: u64,
    pub cached: u64,
    pub completion: u64,
    /// The usage chunk's data, exactly.
    pub usage_data: String,
}

pub(crate) fn openai_stream() -> impl Strategy<Value = OpenAiStream> {
    let body = prop::collection::vec(prop_oneof![4 => content_text().prop_map(Some), 1 => Just(None)], 0..10);
    (body, 0u64..200_000, 0u64..200_000, 0u64..100_000, any::<Index>(), ending(), any::<bool>()).prop_map(
        |(body, a, b, completion, usage_at, ending, with_done)| {
            let (prompt, cached) = (a.max(b), a.min(b));
            let chunk = |delta: String, finish: &str| {
                format!(
                    "{{\"id\":\"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT\",\"object\":\"chat.completion.chunk\",\"created\":1741569952,\"model\":\"gpt-4.1-2025-04-14\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}],\"usage\":null}}"
                )
            };
            let usage_data = format!(
                "{{\"id\":\"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT\",\"object\":\"chat.completion.chunk\",\"created\":1741569952,\"model\":\"gpt-4.1-2025-04-14\",\"choices\":[],\"usage\":{{\"prompt_tokens\":{prompt},\"completion_tokens\":{completion},\"total_tokens\":{},\"prompt_tokens_details\":{{\"cached_tokens\":{cached},\"audio_tokens\":0}},\"completion_tokens_details\":{{\"reasoning_tokens\":0}}}}}}",
                prompt + completion
            );
            let mut blocks: Vec<Vec<String>> = vec![vec![format!("data: {}", chunk("{\"role\":\"assistant\",\"content\":\"\"}".into(), "null"))]];
            for item in body {
                blocks.push(match item {
                    Some(text) => vec![format!("data: {}", chunk(format!("{{\"content\":{}}}", json_string(&text)), "null"))],
                    None => vec![": keep-alive".to_owned()],
                });
            }
            blocks.push(vec![format!("data: {}", chunk("{}".into(), "\"stop\""))]);
            // Usually last (as OpenAI sends it), but anywhere must work.
            let at = if usage_at.index(4) == 0 { usage_at.index(blocks.len() + 1) } else { blocks.len() };
            blocks.insert(at, vec![format!("data: {usage_data}")]);
            if with_done {
                blocks.push(vec!["data: [DONE]".to_owned()]);
            }
            let mut stream = Stream::default();
            for (i, lines) in blocks.iter().enumerate() {
                stream.block(lines, ending);
                if i == at {
                    stream.mark_last();
                }
            }
            OpenAiStream { stream, prompt, cached, completion, usage_data }
        },
    )
}

// ---- Anthropic ------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub(crate) struct AnthropicStream {
    pub stream: Stream,
    /// The usage the complete stream must report.
    pub input: u64,
    pub cache_write: u64,
    /// Of `cache_write`, the 1-hour writes.
    pub cache_write_1h: u64,
    pub cache_read: u64,
    pub output: u64,
}

#[derive(Clone, Debug)]
enum Middle {
    Text(String),
    Ping,
    Comment,
    /// A cumulative message_delta; the output count is filled in later.
    Delta {
        with_input: bool,
    },
}

/// An Anthropic stream: message_start, then content deltas, pings, comments and at least one
/// cumulative message_delta (non-decreasing output counts, the last one after all content),
/// then message_stop (marked). Some deltas repeat the input and cache fields, larger or null;
/// message_start splits the cache writes by TTL, and those deltas repeat the split.
pub(crate) fn anthropic_stream() -> impl Strategy<Value = AnthropicStream> {
    let middle = prop_oneof![
        5 => content_text().prop_map(Middle::Text),
        1 => Just(Middle::Ping),
        1 => Just(Middle::Comment),
        1 => any::<bool>().prop_map(|with_input| Middle::Delta { with_input }),
    ];
    (
        prop::collection::vec(middle, 0..12),
        (0u64..100_000, 0u64..100_000, 0u64..100_000, 0u64..5),
        prop::collection::vec(0u64..50_000, 13),
        (0u64..1000, any::<bool>(), any::<prop::sample::Index>()),
        ending(),
    )
        .prop_map(|(mut middle, (input, cache_write, cache_read, initial), mut outputs, (grow, last_has_input, share), ending)| {
            let one_hour = share.index(usize::try_from(cache_write).unwrap() + 1) as u64;
            let split = format!(
                "\"cache_creation\":{{\"ephemeral_5m_input_tokens\":{},\"ephemeral_1h_input_tokens\":{one_hour}}},",
                cache_write - one_hour
            );
            middle.push(Middle::Delta { with_input: last_has_input });
            outputs.sort_unstable();
            let mut outputs = outputs.into_iter().map(|o| o + initial);
            let (mut max_input, mut max_write, mut max_read, mut output) = (input, cache_write, cache_read, initial);
            let event = |name: &str, data: String| vec![format!("event: {name}"), format!("data: {data}")];
            let mut blocks = vec![event(
                "message_start",
                format!(
                    "{{\"type\":\"message_start\",\"message\":{{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5-20250929\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{{{split}\"input_tokens\":{input},\"cache_creation_input_tokens\":{cache_write},\"cache_read_input_tokens\":{cache_read},\"output_tokens\":{initial}}}}}}}"
                ),
            )];
            blocks.push(event("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#.into()));
            for (i, item) in middle.into_iter().enumerate() {
                blocks.push(match item {
                    Middle::Text(text) => event(
                        "content_block_delta",
                        format!(r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":{}}}}}"#, json_string(&text)),
                    ),
                    Middle::Ping => event("ping", r#"{"type": "ping"}"#.into()),
                    Middle::Comment => vec![": keep-alive".to_owned()],
                    Middle::Delta { with_input } => {
                        output = outputs.next().unwrap_or(output).max(output);
                        let fields = if with_input {
                            // Newer API versions repeat the input side; here sometimes larger.
                            let bump = grow * (i as u64 % 2);
                            max_input = max_input.max(input + bump);
                            max_read = max_read.max(cache_read + bump);
                            format!(
                                "\"input_tokens\":{},\"cache_creation_input_tokens\":null,\"cache_read_input_tokens\":{},{split}",
                                input + bump,
                                cache_read + bump
                            )
                        } else {
                            String::new()
                        };
                        event(
                            "message_delta",
                            format!(
                                r#"{{"type":"message_delta","delta":{{"stop_reason":"end_turn","stop_sequence":null}},"usage":{{{fields}"output_tokens":{output}}}}}"#
                            ),
                        )
                    }
                });
            }
            blocks.push(event("message_stop", r#"{"type":"message_stop"}"#.into()));
            let mut stream = Stream::default();
            for lines in &blocks {
                stream.block(lines, ending);
            }
            stream.mark_last();
            max_write = max_write.max(cache_write);
            AnthropicStream {
                stream,
                input: max_input,
                cache_write: max_write,
                cache_write_1h: one_hour,
                cache_read: max_read,
                output,
            }
        })
}
