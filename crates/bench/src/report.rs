//! The run's results and the table they print as: each peer's rows beside the direct figures of
//! the same case, with its throughput as a ratio to direct (and to nginx, the floor any proxy
//! faces) and the latency it adds at p50 and p99.

use std::fmt::{self, Write as _};

use crate::load::Summary;

/// A path the load takes to the stand-in upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    /// Straight to the upstream: the baseline.
    Direct,
    /// nginx as a plain reverse proxy (keep-alive pool to the upstream).
    Nginx,
    /// `tollgate serve`: auth, reservation, metering and settlement on.
    Tollgate,
    /// LiteLLM's proxy, the reference peer.
    Litellm,
}

/// The paths compared with direct, in table order.
pub(crate) const PEERS: [Path; 3] = [Path::Nginx, Path::Tollgate, Path::Litellm];

impl Path {
    /// The row label's first word.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Nginx => "nginx",
            Self::Tollgate => "tollgate",
            Self::Litellm => "litellm",
        }
    }

    /// The name in messages ("LiteLLM: skipped (...)").
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Nginx => "nginx",
            Self::Tollgate => "Tollgate",
            Self::Litellm => "LiteLLM",
        }
    }
}

/// One load shape: streaming or not, and how many connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Case {
    /// Whether the request asks for an SSE stream.
    pub(crate) stream: bool,
    /// Concurrent connections, one request in flight on each.
    pub(crate) connections: usize,
}

/// The cases of a run, in order.
pub(crate) const CASES: [Case; 4] = [
    Case { stream: false, connections: 1 },
    Case { stream: false, connections: 16 },
    Case { stream: true, connections: 1 },
    Case { stream: true, connections: 16 },
];

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stream={} c={}", self.stream, self.connections)
    }
}

/// Everything a run measured, and why a peer has no (or not all) rows.
#[derive(Debug, Default)]
pub(crate) struct Results {
    measurements: Vec<(Path, Case, Summary)>,
    skipped: Vec<(Path, String)>,
}

impl Results {
    /// Records `path`'s figures for `case`.
    pub(crate) fn record(&mut self, path: Path, case: Case, summary: Summary) {
        self.measurements.push((path, case, summary));
    }

    /// `path`'s figures for `case`, if it was measured.
    pub(crate) fn get(&self, path: Path, case: Case) -> Option<&Summary> {
        self.measurements.iter().find(|(p, c, _)| *p == path && *c == case).map(|(_, _, summary)| summary)
    }

    /// Notes that `path` is left out from here on, and why; the first reason is kept.
    pub(crate) fn skip(&mut self, path: Path, reason: String) {
        if self.skipped(path).is_none() {
            self.skipped.push((path, reason));
        }
    }

    /// Why `path` is left out, if it is.
    pub(crate) fn skipped(&self, path: Path) -> Option<&str> {
        self.skipped.iter().find(|(p, _)| *p == path).map(|(_, reason)| reason.as_str())
    }

    /// The table: a header, then per peer (nginx, Tollgate, LiteLLM) a row per measured case,
    /// then a `NAME: skipped (reason)` line per peer left out.
    pub(crate) fn table(&self) -> String {
        let mut out = format!(
            "{:<27}{:>11}{:>10}{:>7}{:>9}{:>12}{:>11}{:>12}{:>12}{:>8}\n",
            "case",
            "direct rps",
            "peer rps",
            "ratio",
            "vs nginx",
            "direct p50",
            "peer p50",
            "added p50",
            "added p99",
            "errors"
        );
        for peer in PEERS {
            for case in CASES {
                let (Some(direct), Some(figures)) = (self.get(Path::Direct, case), self.get(peer, case)) else {
                    continue;
                };
                let vs_nginx = match self.get(Path::Nginx, case) {
                    Some(nginx) if peer != Path::Nginx => format!("{:.3}", ratio(figures.rps, nginx.rps)),
                    _ => "-".to_owned(),
                };
                let _ = writeln!(
                    out,
                    "{:<27}{:>11.0}{:>10.0}{:>7.3}{:>9}{:>10.0}us{:>9.0}us{:>10.0}us{:>10.0}us{:>8}",
                    format!("{} {case}", peer.label()),
                    direct.rps,
                    figures.rps,
                    ratio(figures.rps, direct.rps),
                    vs_nginx,
                    direct.p50_us,
                    figures.p50_us,
                    figures.p50_us - direct.p50_us,
                    figures.p99_us - direct.p99_us,
                    figures.errors,
                );
            }
        }
        for peer in PEERS {
            if let Some(reason) = self.skipped(peer) {
                let _ = writeln!(out, "{}: skipped ({reason})", peer.name());
            }
        }
        out
    }
}

/// `part / whole`, 0 when `whole` is 0.
fn ratio(part: f64, whole: f64) -> f64 {
    if whole > 0.0 { part / whole } else { 0.0 }
}

/// Tollgate's own histogram of the latency it adds inside the process (everything but the wait
/// for the upstream's response headers; the extra loopback hop is not in it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct AddedLatency {
    /// Mean, in microseconds.
    pub(crate) mean_us: f64,
    /// Requests observed.
    pub(crate) count: f64,
    /// The upper bound of the bucket holding the median, in microseconds.
    pub(crate) p50_bound_us: f64,
}

/// The name of the histogram in Tollgate's `/metrics`.
const ADDED_LATENCY: &str = "tollgate_proxy_added_latency_seconds";

/// Reads [`AddedLatency`] from a Prometheus text exposition; `None` when the histogram is absent
/// or has no observations.
pub(crate) fn added_latency(metrics: &str) -> Option<AddedLatency> {
    let mut buckets = Vec::new();
    let (mut sum, mut count) = (0.0, 0.0);
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix(ADDED_LATENCY) else { continue };
        let value = || line.split_whitespace().last().and_then(|v| v.parse::<f64>().ok());
        if let Some(labels) = rest.strip_prefix("_bucket{le=\"") {
            let bound = labels.split('"').next()?;
            let bound = if bound == "+Inf" { f64::INFINITY } else { bound.parse().ok()? };
            buckets.push((bound, value()?));
        } else if rest.starts_with("_sum ") {
            sum = value()?;
        } else if rest.starts_with("_count ") {
            count = value()?;
        }
    }
    if count <= 0.0 {
        return None;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let p50 = buckets.iter().find(|(_, n)| *n >= count / 2.0)?.0;
    Some(AddedLatency { mean_us: sum / count * 1e6, count, p50_bound_us: p50 * 1e6 })
}

impl fmt::Display for AddedLatency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tollgate's own added-latency histogram: mean {:.0}us over {:.0} requests, p50 <= {:.0}us (bucket bound)",
            self.mean_us, self.count, self.p50_bound_us
        )
    }
}

/// KiB as MiB with one decimal, as the footer prints memory.
pub(crate) fn mib(kib: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "a figure to print")]
    let mib = kib as f64 / 1024.0;
    format!("{mib:.1} MiB")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(rps: f64, p50_us: f64, p99_us: f64, errors: u64) -> Summary {
        Summary { rps, p50_us, p90_us: p50_us, p99_us, ttfb_p50_us: p50_us, requests: 1, errors }
    }

    fn row<'a>(table: &'a str, label: &str) -> Option<Vec<&'a str>> {
        table.lines().find(|line| line.starts_with(&format!("{label} "))).map(|line| line.split_whitespace().collect())
    }

    #[test]
    fn a_row_gives_ratios_to_direct_and_nginx_and_the_added_latency() {
        let case = CASES[1];
        let mut results = Results::default();
        results.record(Path::Direct, case, summary(10_000.0, 100.0, 400.0, 0));
        results.record(Path::Nginx, case, summary(8_000.0, 120.0, 450.0, 0));
        results.record(Path::Tollgate, case, summary(2_000.0, 350.0, 1_900.0, 3));
        let table = results.table();
        let tollgate = row(&table, "tollgate").expect("a tollgate row");
        assert_eq!(
            tollgate,
            [
                "tollgate",
                "stream=false",
                "c=16",
                "10000",
                "2000",
                "0.200",
                "0.250",
                "100us",
                "350us",
                "250us",
                "1500us",
                "3"
            ]
        );
        let nginx = row(&table, "nginx").expect("an nginx row");
        assert_eq!(nginx[5..8], ["0.800", "-", "100us"]);
        assert!(row(&table, "litellm").is_none(), "LiteLLM was not measured");
    }

    #[test]
    fn the_header_names_every_column_over_its_figures() {
        let mut results = Results::default();
        results.record(Path::Direct, CASES[0], summary(1.0, 1.0, 1.0, 0));
        results.record(Path::Tollgate, CASES[0], summary(1.0, 1.0, 1.0, 0));
        let table = results.table();
        let mut lines = table.lines();
        let (header, first) = (lines.next().expect("a header"), lines.next().expect("a row"));
        assert_eq!(header.len(), first.len(), "columns line up");
        for name in ["case", "direct rps", "peer rps", "ratio", "vs nginx", "added p50", "added p99", "errors"] {
            assert!(header.contains(name), "{name} in {header}");
        }
    }

    #[test]
    fn peers_come_in_order_and_skipped_ones_say_why() {
        let mut results = Results::default();
        for case in CASES {
            results.record(Path::Direct, case, summary(100.0, 10.0, 20.0, 0));
            results.record(Path::Litellm, case, summary(10.0, 100.0, 200.0, 0));
            results.record(Path::Tollgate, case, summary(50.0, 20.0, 40.0, 0));
        }
        results.skip(Path::Nginx, "nginx is not installed".to_owned());
        results.skip(Path::Nginx, "a later reason".to_owned());
        let table = results.table();
        let labels: Vec<_> = table.lines().skip(1).filter_map(|l| l.split(' ').next()).collect();
        assert_eq!(labels[..4], ["tollgate"; 4]);
        assert_eq!(labels[4..8], ["litellm"; 4]);
        assert!(table.ends_with("nginx: skipped (nginx is not installed)\n"), "{table}");
        assert_eq!(row(&table, "tollgate").expect("a row")[6], "-", "no nginx figures to compare with");
    }

    #[test]
    fn a_zero_baseline_gives_a_zero_ratio() {
        assert!(ratio(5.0, 0.0).abs() < f64::EPSILON);
        assert!((ratio(5.0, 10.0) - 0.5).abs() < f64::EPSILON);
    }

    #[test]
    fn added_latency_reads_the_histogram() {
        let metrics = "\
# TYPE tollgate_proxy_added_latency_seconds histogram
tollgate_proxy_added_latency_seconds_bucket{le=\"0.00001\"} 10
tollgate_proxy_added_latency_seconds_bucket{le=\"0.00005\"} 70
tollgate_proxy_added_latency_seconds_bucket{le=\"0.0001\"} 90
tollgate_proxy_added_latency_seconds_bucket{le=\"+Inf\"} 100
tollgate_proxy_added_latency_seconds_sum 0.004
tollgate_proxy_added_latency_seconds_count 100
tollgate_proxy_requests_total 100
";
        let latency = added_latency(metrics).expect("a histogram");
        assert!((latency.mean_us - 40.0).abs() < 1e-9);
        assert!((latency.count - 100.0).abs() < f64::EPSILON);
        assert!((latency.p50_bound_us - 50.0).abs() < 1e-9);
        assert_eq!(
            latency.to_string(),
            "tollgate's own added-latency histogram: mean 40us over 100 requests, p50 <= 50us (bucket bound)"
        );
    }

    #[test]
    fn no_histogram_no_line() {
        assert_eq!(added_latency("tollgate_proxy_requests_total 3\n"), None);
        assert_eq!(added_latency("tollgate_proxy_added_latency_seconds_count 0\n"), None);
    }

    #[test]
    fn mib_has_one_decimal() {
        assert_eq!(mib(1536), "1.5 MiB");
        assert_eq!(mib(0), "0.0 MiB");
    }
}
