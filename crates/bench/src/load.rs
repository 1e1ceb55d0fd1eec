//! The load generator (formerly `crates/cli/examples/http-load.rs`): POSTs one JSON body over N
//! keep-alive connections for a while and reports throughput and latency percentiles (time to
//! the last byte of the response, and to its first byte).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::StreamExt as _;

/// What to send: the URL, the extra headers and the JSON body of every request.
///
/// No `Debug`: the headers carry the credentials of the path under test.
pub(crate) struct Target {
    /// Where to POST.
    pub(crate) url: String,
    /// Headers besides `content-type: application/json`.
    pub(crate) headers: Vec<(&'static str, String)>,
    /// The request body.
    pub(crate) body: String,
}

/// One path's figures for one case; latencies in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Summary {
    /// Successful requests per second over the measured time.
    pub(crate) rps: f64,
    /// Median time to the last byte.
    pub(crate) p50_us: f64,
    /// 90th percentile time to the last byte.
    pub(crate) p90_us: f64,
    /// 99th percentile time to the last byte.
    pub(crate) p99_us: f64,
    /// Median time to the first byte of the body.
    pub(crate) ttfb_p50_us: f64,
    /// Successful requests in the measured time (the warm-up not included).
    pub(crate) requests: u64,
    /// Requests that failed or did not answer 2xx.
    pub(crate) errors: u64,
}

/// How many requests the warm-up sends before a case is measured (they open the connection and
/// the server's caches; they are answered but not counted).
pub(crate) fn warmup_requests(connections: usize) -> usize {
    connections.max(20)
}

/// Warms up, then keeps `connections` requests in flight against `target` for `duration`.
///
/// Errors when a warm-up request fails or does not answer 2xx: the path is not working, and its
/// figures would mean nothing. Failures during the measured time are counted in `errors`.
pub(crate) async fn run(target: Arc<Target>, connections: usize, duration: Duration) -> anyhow::Result<Summary> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(connections)
        .tcp_nodelay(true)
        .build()
        .context("cannot build the HTTP client")?;
    for _ in 0..warmup_requests(connections) {
        let response = request(&client, &target).send().await.context("warm-up request failed")?;
        let status = response.status();
        let body = response.bytes().await.context("warm-up response failed")?;
        if !status.is_success() {
            bail!("the warm-up request answered {status}: {}", snippet(&body));
        }
    }
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> =
        (0..connections).map(|_| tokio::spawn(connection(client.clone(), Arc::clone(&target), deadline))).collect();
    let mut sample = Sample::default();
    for task in tasks {
        sample.merge(task.await.context("a load task panicked")?);
    }
    Ok(sample.summarise(started.elapsed()))
}

/// The request for `target`.
fn request(client: &reqwest::Client, target: &Target) -> reqwest::RequestBuilder {
    let mut builder = client.post(&target.url).body(target.body.clone()).header("content-type", "application/json");
    for (name, value) in &target.headers {
        builder = builder.header(*name, value);
    }
    builder
}

/// The first 300 characters of a response body, for an error message.
pub(crate) fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(300).collect()
}

/// One connection's loop: a request at a time until the deadline.
async fn connection(client: reqwest::Client, target: Arc<Target>, deadline: Instant) -> Sample {
    let mut sample = Sample::default();
    while Instant::now() < deadline {
        let start = Instant::now();
        match request(&client, &target).send().await {
            Ok(response) if response.status().is_success() => {
                let mut body = response.bytes_stream();
                let mut first = None;
                let mut failed = false;
                while let Some(chunk) = body.next().await {
                    if chunk.is_err() {
                        failed = true;
                        break;
                    }
                    first.get_or_insert_with(|| start.elapsed());
                }
                if failed {
                    sample.errors += 1;
                } else {
                    sample.total.push(start.elapsed());
                    sample.first.extend(first);
                }
            }
            _ => sample.errors += 1,
        }
    }
    sample
}

/// Latencies of answered requests and the count of failed ones.
#[derive(Debug, Default)]
struct Sample {
    total: Vec<Duration>,
    first: Vec<Duration>,
    errors: u64,
}

impl Sample {
    fn merge(&mut self, other: Self) {
        self.total.extend(other.total);
        self.first.extend(other.first);
        self.errors += other.errors;
    }

    fn summarise(mut self, elapsed: Duration) -> Summary {
        self.total.sort_unstable();
        self.first.sort_unstable();
        let requests = u64::try_from(self.total.len()).unwrap_or(u64::MAX);
        #[expect(clippy::cast_precision_loss, reason = "a rate")]
        let rps = if elapsed.is_zero() { 0.0 } else { requests as f64 / elapsed.as_secs_f64() };
        Summary {
            rps,
            p50_us: percentile_us(&self.total, 0.5),
            p90_us: percentile_us(&self.total, 0.9),
            p99_us: percentile_us(&self.total, 0.99),
            ttfb_p50_us: percentile_us(&self.first, 0.5),
            requests,
            errors: self.errors,
        }
    }
}

/// The `p` quantile (0 to 1) of an ascending sample, in microseconds: the element at index
/// `floor(len * p)`, clamped to the last; 0 for an empty sample.
pub(crate) fn percentile_us(sorted: &[Duration], p: f64) -> f64 {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a sample, floored and clamped"
    )]
    let index = ((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(index).map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| Duration::from_micros(v)).collect()
    }

    #[test]
    fn percentile_takes_the_floored_index_and_clamps_to_the_last() {
        let sample = micros(&(1..=100).collect::<Vec<_>>());
        assert!((percentile_us(&sample, 0.5) - 51.0).abs() < 1e-6);
        assert!((percentile_us(&sample, 0.99) - 100.0).abs() < 1e-6);
        assert!((percentile_us(&sample, 0.0) - 1.0).abs() < 1e-6);
        assert!((percentile_us(&sample, 1.0) - 100.0).abs() < 1e-6);
        let three = micros(&[10, 20, 30]);
        assert!((percentile_us(&three, 0.5) - 20.0).abs() < 1e-6);
        assert!((percentile_us(&three, 0.9) - 30.0).abs() < 1e-6);
    }

    #[test]
    fn percentile_of_an_empty_sample_is_zero() {
        assert!(percentile_us(&[], 0.5).abs() < f64::EPSILON);
    }

    #[test]
    fn summary_sorts_merged_samples_and_rates_over_the_elapsed_time() {
        let mut sample = Sample { total: micros(&[300, 100]), first: micros(&[30, 10]), errors: 1 };
        sample.merge(Sample { total: micros(&[200, 400]), first: micros(&[20]), errors: 2 });
        let summary = sample.summarise(Duration::from_secs(2));
        assert_eq!(summary.requests, 4);
        assert_eq!(summary.errors, 3);
        assert!((summary.rps - 2.0).abs() < 1e-9);
        assert!((summary.p50_us - 300.0).abs() < 1e-6);
        assert!((summary.p99_us - 400.0).abs() < 1e-6);
        assert!((summary.ttfb_p50_us - 20.0).abs() < 1e-6);
    }

    #[test]
    fn warmup_sends_at_least_twenty_and_one_per_connection() {
        assert_eq!(warmup_requests(1), 20);
        assert_eq!(warmup_requests(16), 20);
        assert_eq!(warmup_requests(64), 64);
    }
}
