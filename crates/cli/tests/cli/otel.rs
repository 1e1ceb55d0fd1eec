//! OpenTelemetry export and structured request logs of `tollgate serve` (DESIGN.md section
//! 19), against an OTLP receiver started by the test: the spans and their attributes as the
//! receiver decoded them, the client's `traceparent` continued and not forwarded, one JSON
//! log line per request without a credential, and a receiver that hangs changing nothing for
//! clients.

use std::future::IntoFuture;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use prost::Message;
use serde_json::{Value, json};
use tollgate_testkit::cli_app::{ADMIN_TOKEN, ANTHROPIC_KEY, OPENAI_KEY, Stack};

/// One span as the receiver got it.
#[derive(Clone, Debug)]
struct Got {
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    attrs: Vec<(String, String)>,
    service: String,
}

impl Got {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn text(v: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(Any::StringValue(s)) => s.clone(),
        Some(Any::IntValue(i)) => i.to_string(),
        Some(Any::BoolValue(b)) => b.to_string(),
        Some(Any::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// Decodes an OTLP/HTTP protobuf export into spans.
fn decode(body: &[u8]) -> Vec<Got> {
    let req = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
    let mut out = Vec::new();
    for rs in req.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
            .map(|a| text(a.value.as_ref()))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                out.push(Got {
                    name: s.name,
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent: hex(&s.parent_span_id),
                    attrs: s.attributes.iter().map(|a| (a.key.clone(), text(a.value.as_ref()))).collect(),
                    service: service.clone(),
                });
            }
        }
    }
    out
}

/// An OTLP/HTTP receiver on 127.0.0.1 (`POST /v1/traces`) on its own runtime; with `hang`,
/// it reads each export and never answers.
struct Receiver {
    url: String,
    spans: Arc<Mutex<Vec<Got>>>,
    _rt: tokio::runtime::Runtime,
}

impl Receiver {
    fn start(hang: bool) -> Receiver {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let store = spans.clone();
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: Bytes| {
                let store = store.clone();
                async move {
                    store.lock().unwrap().extend(decode(&body));
                    if hang {
                        std::future::pending::<()>().await;
                    }
                    // An empty ExportTraceServiceResponse.
                    ([("content-type", "application/x-protobuf")], Vec::<u8>::new())
                }
            }),
        );
        rt.spawn(axum::serve(listener, app).into_future());
        Receiver { url, spans, _rt: rt }
    }

    /// Waits (at most 30 s) until a span satisfies `pred`; every span received by then.
    fn wait_for(&self, what: &str, pred: impl Fn(&Got) -> bool) -> Vec<Got> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let spans = self.spans.lock().unwrap().clone();
            if spans.iter().any(&pred) {
                return spans;
            }
            assert!(Instant::now() < deadline, "no {what} span arrived; got {spans:#?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn messages(model: &str) -> Value {
    json!({"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "hello, traced proxy"}]})
}

#[test]
fn spans_reach_an_otlp_receiver_with_genai_attributes_and_logs_are_json() {
    let receiver = Receiver::start(false);
    let log = std::env::temp_dir().join(format!("tollgate-otel-{}.log", std::process::id()));
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("TOLLGATE_LOG_FORMAT", "json"),
        ("RUST_LOG", "info"),
    ];
    let mut stack = Stack::start_observed(crate::bin(), "otel", |_| None, &env, Some(&log));
    let (token, _) = stack.workspace("traced", "claude-code", "platform/sonnet");
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let (status, request_id) = stack.block_on(async {
        let r = reqwest::Client::new()
            .post(format!("{}/anthropic/v1/messages", stack.url()))
            .header("x-api-key", &token)
            .header("anthropic-version", "2023-06-01")
            .header("traceparent", format!("00-{trace_id}-{client_span}-01"))
            .header("x-claude-code-session-id", "sess-otel-1")
            .json(&messages("platform/sonnet"))
            .send()
            .await
            .unwrap();
        let id = r.headers().get("x-request-id").unwrap().to_str().unwrap().to_owned();
        let status = r.status().as_u16();
        let _ = r.text().await.unwrap();
        (status, id)
    });
    assert_eq!(status, 200);

    let spans = receiver.wait_for("proxy", |s| s.attr("tollgate.request_id") == Some(request_id.as_str()));
    let proxy = spans.iter().find(|s| s.attr("tollgate.request_id") == Some(request_id.as_str())).unwrap();
    eprintln!("the proxy span as the receiver got it: {proxy:#?}");
    assert_eq!(proxy.name, "chat platform/sonnet");
    assert_eq!(proxy.service, "tollgate");
    assert_eq!(proxy.attr("gen_ai.system"), Some("anthropic"));
    assert_eq!(proxy.attr("gen_ai.request.model"), Some("platform/sonnet"));
    let tokens = |k: &str| proxy.attr(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    assert!(tokens("gen_ai.usage.input_tokens") > 0 && tokens("gen_ai.usage.output_tokens") > 0, "{proxy:?}");
    assert!(tokens("tollgate.cost_micros") > 0, "{proxy:?}");
    assert_eq!(proxy.attr("tollgate.org_id"), Some(stack.org.as_str()));
    assert!(proxy.attr("tollgate.workspace_id").is_some_and(|w| !w.is_empty()));
    assert_eq!(proxy.attr("tollgate.billing_mode"), Some("platform_managed"));
    assert_eq!(proxy.attr("tollgate.session_id"), Some("sess-otel-1"));
    assert_eq!(proxy.attr("http.response.status_code"), Some("200"));
    // The client's trace continues: same trace id, the server's request span a child of the
    // client's span, the proxy span a child of that.
    assert_eq!(proxy.trace_id, trace_id, "the client's traceparent is continued");
    let request = spans.iter().find(|s| s.span_id == proxy.parent).expect("the proxy span's parent was exported");
    assert_eq!(request.name, "POST /anthropic/v1/messages");
    assert_eq!(request.parent, client_span);
    // Admin calls and provisioning have spans of their own.
    let spans = receiver.wait_for("provision", |s| s.name == "provision");
    assert!(spans.iter().any(|s| s.name == "POST /admin/workspaces/{ws}/provision"), "{spans:#?}");
    assert!(spans.iter().any(|s| s.name == "POST /admin/orgs"));
    // Never forwarded upstream.
    for req in stack.upstream.requests() {
        assert_eq!(req.header("traceparent"), None);
        assert!(req.headers.iter().all(|(_, v)| !v.contains(trace_id)), "the trace id reached the upstream");
    }

    assert_eq!(stack.terminate(), Some(0));
    let logs = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let lines: Vec<Value> = logs.lines().map(|l| serde_json::from_str(l).expect("every log line is JSON")).collect();
    let line = lines
        .iter()
        .find(|l| l["target"] == "tollgate::request" && l["request_id"] == request_id.as_str())
        .unwrap_or_else(|| panic!("no request line for {request_id}:\n{logs}"));
    for field in ["workspace_id", "org_id", "model", "upstream_ms", "added_ms", "session_id"] {
        assert!(line.get(field).is_some(), "{field} missing from {line}");
    }
    assert_eq!(line["status"], 200);
    assert_eq!(line["model"], "platform/sonnet");
    assert_eq!(line["org_id"], stack.org.as_str());
    assert_eq!(line["billing_mode"], "platform_managed");
    assert!(line["input_tokens"].as_u64().unwrap() > 0 && line["output_tokens"].as_u64().unwrap() > 0);
    assert_eq!(line["cost_micros"].as_i64(), tokens("tollgate.cost_micros").into());
    for secret in [token.as_str(), &token[token.len() - 20..], ADMIN_TOKEN, ANTHROPIC_KEY, OPENAI_KEY] {
        assert!(!logs.contains(secret), "a credential reached the logs");
    }
}

#[test]
fn a_receiver_that_hangs_changes_nothing_for_clients_and_drops_are_counted() {
    let receiver = Receiver::start(true);
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "20"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "8"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "300"),
    ];
    let stack = Stack::start_observed(crate::bin(), "otel-hang", |_| None, &env, None);
    let (token, _) = stack.workspace("hang", "claude-code", "platform/sonnet");
    let client = reqwest::Client::new();
    for _ in 0..40 {
        let status = stack.block_on(async {
            let r = client
                .post(format!("{}/anthropic/v1/messages", stack.url()))
                .header("x-api-key", &token)
                .json(&messages("platform/sonnet"))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let _ = r.text().await.unwrap();
            status
        });
        assert_eq!(status, 200, "a hanging receiver does not fail requests");
    }
    receiver.wait_for("any", |_| true);
    // The receiver never answers: each batch times out and its spans are counted as dropped.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = stack.get_text("/metrics");
        let dropped = metrics
            .lines()
            .find(|l| l.starts_with("tollgate_otel_spans_dropped_total"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        if dropped > 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "no dropped span counted:\n{metrics}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let usage = stack.get("/admin/usage?group_by=model");
        let requests: i64 = usage["rows"].as_array().unwrap().iter().map(|r| r["requests"].as_i64().unwrap()).sum();
        if requests == 40 {
            break;
        }
        assert!(Instant::now() < deadline, "every request is metered: {usage}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
