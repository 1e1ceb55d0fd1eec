use serde_json::json;

use super::*;

const ANTHROPIC_REQUEST: &str = r#"{
  "model": "claude-sonnet",
  "max_tokens": 16000,
  "stream": true,
  "thinking": {"type": "enabled", "budget_tokens": 10000},
  "system": [{"type": "text", "text": "You are a coding agent.", "cache_control": {"type": "ephemeral"}}],
  "messages": [{"role": "user", "content": "Fix the failing test in src/lib.rs"}]
}"#;

const OPENAI_REQUEST: &str = r#"{
  "model": "fast",
  "stream": true,
  "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
  "max_completion_tokens": 2048,
  "temperature": 0.2
}"#;

#[test]
fn parse_and_serialise() {
    let body = parse_request(OPENAI_REQUEST.as_bytes()).unwrap();
    assert_eq!(requested_model(&body), Some("fast"));
    let again = parse_request(&to_body(&body)).unwrap();
    assert_eq!(again, body, "a round trip keeps the meaning");
    assert!(matches!(parse_request(b"[1,2]"), Err(RewriteError::NotAnObject)));
    assert!(matches!(parse_request(b"{\"model\":"), Err(RewriteError::NotJson(_))));
    assert!(matches!(parse_request(b""), Err(RewriteError::NotJson(_))));
    assert_eq!(RewriteError::NotAnObject.to_string(), "the request body must be a JSON object");
}

#[test]
fn duplicate_keys_leave_one_value_which_is_the_one_read() {
    let mut body = parse_request(br#"{"model":"a","max_tokens":1,"max_tokens":99999,"model":"b"}"#).unwrap();
    assert_eq!(max_output_tokens(&body, Protocol::Anthropic), Some(99999));
    assert_eq!(requested_model(&body), Some("b"));
    set_model(&mut body, "claude-sonnet-4-5-20250929").unwrap();
    let forwarded = String::from_utf8(to_body(&body)).unwrap();
    assert_eq!(forwarded, r#"{"max_tokens":99999,"model":"claude-sonnet-4-5-20250929"}"#);
}

#[test]
fn set_model_replaces_or_adds() {
    let mut body = parse_request(ANTHROPIC_REQUEST.as_bytes()).unwrap();
    set_model(&mut body, "claude-sonnet-4-5-20250929").unwrap();
    assert_eq!(body["model"], "claude-sonnet-4-5-20250929");
    assert_eq!(body["thinking"]["budget_tokens"], 10000, "the rest is untouched");
    let mut body = json!({"messages": []});
    set_model(&mut body, "gpt-4.1").unwrap();
    assert_eq!(requested_model(&body), Some("gpt-4.1"));
    assert!(matches!(set_model(&mut json!("x"), "m"), Err(RewriteError::NotAnObject)));
    assert_eq!(requested_model(&json!({"model": 3})), None);
}

#[test]
fn include_usage_is_added_when_the_client_did_not_ask() {
    let mut body = parse_request(OPENAI_REQUEST.as_bytes()).unwrap();
    assert!(ensure_include_usage(&mut body));
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    assert!(!ensure_include_usage(&mut body), "now it is set: idempotent");

    for options in [json!(null), json!({"include_usage": false}), json!("yes"), json!({"include_obfuscation": false})] {
        let mut body = json!({"stream": true, "stream_options": options.clone()});
        assert!(ensure_include_usage(&mut body), "{options}");
        assert_eq!(body["stream_options"]["include_usage"], true);
    }
    let mut body = json!({"stream": true, "stream_options": {"include_obfuscation": false}});
    ensure_include_usage(&mut body);
    assert_eq!(body["stream_options"]["include_obfuscation"], false, "other options are kept");
}

#[test]
fn include_usage_is_left_alone_when_asked_or_not_streaming() {
    let mut asked = json!({"stream": true, "stream_options": {"include_usage": true}});
    let before = asked.clone();
    assert!(!ensure_include_usage(&mut asked));
    assert_eq!(asked, before);
    for body in [json!({}), json!({"stream": false}), json!({"stream": "true"}), json!({"stream": 1}), json!([true])] {
        let mut after = body.clone();
        assert!(!ensure_include_usage(&mut after), "{body}");
        assert_eq!(after, body);
        assert!(!wants_stream(&body));
    }
    assert!(wants_stream(&json!({"stream": true})));
}

#[test]
fn max_output_tokens_per_protocol() {
    let anthropic = parse_request(ANTHROPIC_REQUEST.as_bytes()).unwrap();
    assert_eq!(max_output_tokens(&anthropic, Protocol::Anthropic), Some(16000));
    let openai = parse_request(OPENAI_REQUEST.as_bytes()).unwrap();
    assert_eq!(max_output_tokens(&openai, Protocol::Openai), Some(2048));

    let cases = [
        (json!({"max_tokens": 100}), Some(100)),
        (json!({"max_completion_tokens": 300}), Some(300)),
        (json!({"max_completion_tokens": 300, "max_tokens": 100}), Some(300)),
        (json!({"max_completion_tokens": 100, "max_tokens": 300}), Some(300) /* the larger */),
        (json!({"max_tokens": 100, "n": 3}), Some(300)),
        (json!({"max_tokens": 100, "n": 0}), Some(100)),
        (json!({"max_tokens": u64::MAX, "n": 2}), Some(u64::MAX)),
        (json!({"max_completion_tokens": null, "max_tokens": 50}), Some(50)),
        (json!({"max_output_tokens": 700}), Some(700) /* the Responses API */),
        (json!({"max_output_tokens": 700, "max_tokens": 900}), Some(900)),
        (json!({"max_output_tokens": "700"}), None),
        (json!({"n": 4}), None),
        (json!({}), None),
        (json!({"max_tokens": -1}), None),
        (json!({"max_tokens": 1.5}), None),
        (json!({"max_tokens": "100"}), None),
    ];
    for (body, expected) in cases {
        assert_eq!(max_output_tokens(&body, Protocol::Openai), expected, "{body}");
    }
    assert_eq!(max_output_tokens(&json!({"max_completion_tokens": 5}), Protocol::Anthropic), None);
    assert_eq!(max_output_tokens(&json!({"max_tokens": 5, "n": 3}), Protocol::Anthropic), Some(5));
}

#[test]
fn estimate_is_half_the_bytes_plus_the_overhead() {
    assert_eq!(estimate_input_tokens(0), ESTIMATE_OVERHEAD_TOKENS);
    assert_eq!(estimate_input_tokens(1), ESTIMATE_OVERHEAD_TOKENS + 1);
    assert_eq!(estimate_input_tokens(1000), ESTIMATE_OVERHEAD_TOKENS + 500);
    assert_eq!(estimate_input_tokens(1001), ESTIMATE_OVERHEAD_TOKENS + 501);
    assert_eq!(estimate_input_tokens(usize::MAX), u64::MAX.div_ceil(2) + ESTIMATE_OVERHEAD_TOKENS);
    // A typical request: prose at ~4 bytes per token is overestimated, not underestimated.
    let body = parse_request(ANTHROPIC_REQUEST.as_bytes()).unwrap();
    assert!(estimate_input_tokens(to_body(&body).len()) > 512 + 100);
}

#[test]
fn fields_of_the_wrong_type_are_named() {
    let ok = json!({"model": "m", "stream": true, "max_tokens": 10, "stream_options": {"include_usage": true}});
    assert_eq!(check_field_types(&ok), Ok(()));
    let nulls = json!({"model": "m", "stream": null, "max_tokens": null, "stream_options": null});
    assert_eq!(check_field_types(&nulls), Ok(()), "null is `not set`");
    let cases = [
        (json!({"model": "m", "stream": "true"}), "`stream` must be a boolean"),
        (json!({"model": "m", "max_tokens": "10"}), "`max_tokens` must be a non-negative integer"),
        (json!({"model": "m", "max_tokens": 1.5}), "`max_tokens` must be a non-negative integer"),
        (json!({"model": "m", "max_tokens": -1}), "`max_tokens` must be a non-negative integer"),
        (
            json!({"model": "m", "max_completion_tokens": true}),
            "`max_completion_tokens` must be a non-negative integer",
        ),
        (json!({"model": "m", "n": "2"}), "`n` must be a non-negative integer"),
        (json!({"model": 7}), "`model` must be a string"),
        (json!({"stream": true}), "`model` must be a string"),
        (json!({"model": "m", "stream_options": "include_usage"}), "`stream_options` must be an object"),
        (
            json!({"model": "m", "stream_options": {"include_usage": "yes"}}),
            "`stream_options.include_usage` must be a boolean",
        ),
        (json!({"model": "m", "messages": {}}), "`messages` must be an array"),
    ];
    for (body, message) in cases {
        assert_eq!(check_field_types(&body), Err(message.to_owned()), "{body}");
    }
}
