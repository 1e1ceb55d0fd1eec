//! A small HTTP load generator for scripts/bench-proxy: POSTs one JSON body over N
//! connections for S seconds and reports throughput and latency percentiles (time to the
//! last byte of the response, and to its first byte).
//!
//! http-load --url URL --body JSON [--header 'k: v']... [--connections N] [--seconds S] [--label L]
#![expect(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used, reason = "a benchmark tool")]

use std::time::{Duration, Instant};

use futures_util::StreamExt;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let url = get("--url").expect("--url");
    let body = get("--body").expect("--body");
    let connections: usize = get("--connections").map_or(1, |v| v.parse().expect("--connections"));
    let seconds: u64 = get("--seconds").map_or(10, |v| v.parse().expect("--seconds"));
    let label = get("--label").unwrap_or_else(|| url.clone());
    let headers: Vec<(String, String)> = args
        .windows(2)
        .filter(|w| w[0] == "--header")
        .map(|w| {
            let (k, v) = w[1].split_once(':').expect("--header 'name: value'");
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(async move {
        let client = reqwest::Client::builder().pool_max_idle_per_host(connections).tcp_nodelay(true).build().unwrap();
        // Warm-up: open the connections and the server's caches.
        for _ in 0..connections.max(20) {
            let mut r = client.post(&url).body(body.clone()).header("content-type", "application/json");
            for (k, v) in &headers {
                r = r.header(k, v);
            }
            let _ = r.send().await.unwrap().bytes().await;
        }
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let (client, url, body, headers) = (client.clone(), url.clone(), body.clone(), headers.clone());
            tasks.push(tokio::spawn(async move {
                let (mut total, mut first, mut errors) = (Vec::new(), Vec::new(), 0u64);
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let mut r = client.post(&url).body(body.clone()).header("content-type", "application/json");
                    for (k, v) in &headers {
                        r = r.header(k, v);
                    }
                    match r.send().await {
                        Ok(resp) if resp.status().is_success() => {
                            let mut stream = resp.bytes_stream();
                            let mut got_first = false;
                            while let Some(chunk) = stream.next().await {
                                if chunk.is_err() {
                                    errors += 1;
                                    break;
                                }
                                if !got_first {
                                    first.push(t.elapsed());
                                    got_first = true;
                                }
                            }
                            total.push(t.elapsed());
                        }
                        _ => errors += 1,
                    }
                }
                (total, first, errors)
            }));
        }
        let (mut total, mut first, mut errors) = (Vec::new(), Vec::new(), 0);
        for t in tasks {
            let (a, b, e) = t.await.unwrap();
            total.extend(a);
            first.extend(b);
            errors += e;
        }
        let elapsed = started.elapsed().as_secs_f64();
        total.sort();
        first.sort();
        let pct = |v: &[Duration], p: f64| {
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss,
                reason = "an index into a sorted sample"
            )]
            let i = ((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1));
            v.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e6)
        };
        #[expect(clippy::cast_precision_loss, reason = "a rate")]
        let rps = total.len() as f64 / elapsed;
        // One machine-readable line: label rps p50 p90 p99 ttfb_p50 errors (latencies in µs).
        println!(
            "{label} rps={rps:.0} p50_us={:.0} p90_us={:.0} p99_us={:.0} ttfb_p50_us={:.0} requests={} errors={errors}",
            pct(&total, 0.5),
            pct(&total, 0.9),
            pct(&total, 0.99),
            pct(&first, 0.5),
            total.len()
        );
    });
}
