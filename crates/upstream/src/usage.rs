//! Counting a request's text while it is parsed, without building a JSON tree.
//!
//! The formulas are documented in the crate docs ("Token counts").

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The text of a JSON value: its UTF-8 byte count, how much of it is under `cache_control`,
/// and how much of that under a `cache_control` with `"ttl": "1h"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Text {
    pub(crate) bytes: u64,
    pub(crate) cached: u64,
    pub(crate) cached_1h: u64,
}

/// `b / 4`: four bytes of text make a token.
pub(crate) fn tokens(bytes: u64) -> u64 {
    bytes / 4
}

impl Text {
    fn add(&mut self, other: Text) {
        self.bytes += other.bytes;
        self.cached += other.cached;
        self.cached_1h += other.cached_1h;
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Text, D::Error> {
        deserializer.deserialize_any(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Text, E> {
        Ok(Text { bytes: text.len() as u64, ..Text::default() })
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Text, E> {
        Ok(Text::default())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Text, E> {
        Ok(Text::default())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Text, E> {
        Ok(Text::default())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Text, E> {
        Ok(Text::default())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Text, E> {
        Ok(Text::default())
    }

    fn visit_none<E: de::Error>(self) -> Result<Text, E> {
        Ok(Text::default())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Text, A::Error> {
        let mut text = Text::default();
        while let Some(element) = seq.next_element::<Text>()? {
            text.add(element);
        }
        Ok(text)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Text, A::Error> {
        let mut text = Text::default();
        let mut cache_control = false;
        let mut one_hour = false;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Text => text.add(map.next_value::<Text>()?),
                Key::CacheControl => {
                    let value = map.next_value::<Option<serde_json::Value>>()?;
                    one_hour |= value.as_ref().is_some_and(|v| v["ttl"] == "1h");
                    cache_control |= value.is_some();
                }
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if cache_control {
            text.cached = text.bytes;
        }
        if one_hour {
            text.cached_1h = text.bytes;
        }
        Ok(text)
    }
}

/// The `input` of a Responses request: a string, or items whose text counts as for [`Text`];
/// the text of `developer` and `system` messages (where Codex puts its system prompt) is
/// `cached`, a stateless stand-in for a prompt-cache hit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ResponsesInput(pub(crate) Text);

impl<'de> Deserialize<'de> for ResponsesInput {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ResponsesInput, D::Error> {
        struct InputVisitor;
        impl<'de> Visitor<'de> for InputVisitor {
            type Value = ResponsesInput;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of input items")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<ResponsesInput, E> {
                Ok(ResponsesInput(Text { bytes: text.len() as u64, ..Text::default() }))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ResponsesInput, A::Error> {
                let mut text = Text::default();
                while let Some(InputItem { text: item, system }) = seq.next_element::<InputItem>()? {
                    text.add(Text { bytes: item.bytes, cached: if system { item.bytes } else { 0 }, cached_1h: 0 });
                }
                Ok(ResponsesInput(text))
            }
        }
        deserializer.deserialize_any(InputVisitor)
    }
}

/// One input item: its text, and whether it is a `developer` or `system` message.
struct InputItem {
    text: Text,
    system: bool,
}

impl<'de> Deserialize<'de> for InputItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<InputItem, D::Error> {
        struct ItemVisitor;
        impl<'de> Visitor<'de> for ItemVisitor {
            type Value = InputItem;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an input item")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<InputItem, A::Error> {
                let mut item = InputItem { text: Text::default(), system: false };
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        "text" | "content" => item.text.add(map.next_value::<Text>()?),
                        "role" => {
                            let role = map.next_value::<Option<std::borrow::Cow<'de, str>>>()?;
                            item.system = matches!(role.as_deref(), Some("developer" | "system"));
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(item)
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<InputItem, E> {
                Ok(InputItem { text: Text { bytes: text.len() as u64, ..Text::default() }, system: false })
            }
        }
        deserializer.deserialize_any(ItemVisitor)
    }
}

/// An object key, recognised without allocating.
enum Key {
    /// `text` or `content`.
    Text,
    CacheControl,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }

            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "text" | "content" => Key::Text,
                    "cache_control" => Key::CacheControl,
                    _ => Key::Other,
                })
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(json: &str) -> Text {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn strings_arrays_and_the_text_of_objects_count() {
        assert_eq!(text(r#""héllo""#), Text { bytes: 6, ..Text::default() });
        assert_eq!(text("null"), Text::default());
        assert_eq!(text("[1, true, 2.5]"), Text::default());
        let messages = r#"[
            {"role": "user", "content": "abcd"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "efgh"},
                {"type": "tool_use", "id": "t", "name": "n", "input": {"text": "ignored"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "ij"}]},
                {"type": "image", "source": {"type": "base64", "data": "AAAA"}}
            ]}
        ]"#;
        assert_eq!(text(messages), Text { bytes: 10, ..Text::default() });
    }

    #[test]
    fn cache_control_marks_the_text_of_its_object() {
        let system = r#"[
            {"type": "text", "text": "12345678", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "1234", "cache_control": null},
            {"cache_control": {"type": "ephemeral", "ttl": "1h"}, "type": "text", "text": "ab"},
            {"type": "text", "text": "xyz", "cache_control": {"type": "ephemeral", "ttl": "5m"}}
        ]"#;
        assert_eq!(text(system), Text { bytes: 17, cached: 13, cached_1h: 2 });
    }

    #[test]
    fn developer_and_system_messages_of_responses_input_are_cached() {
        let input = |json: &str| serde_json::from_str::<ResponsesInput>(json).unwrap().0;
        assert_eq!(input(r#""abcd""#), Text { bytes: 4, ..Text::default() });
        let items = r#"[
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "12345678"}]},
            {"role": "system", "content": "ab"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "xyz"}]},
            {"type": "function_call_output", "call_id": "c", "output": "ignored"},
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "not counted"}]}
        ]"#;
        assert_eq!(input(items), Text { bytes: 13, cached: 10, cached_1h: 0 });
    }

    #[test]
    fn escaped_keys_and_strings_are_read() {
        assert_eq!(text(r#"{"te\u0078t": "a\nb"}"#), Text { bytes: 3, ..Text::default() });
    }
}
