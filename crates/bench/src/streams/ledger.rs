//! The streams benchmark's accounting check: every stream the proxy admitted has exactly one
//! ledger row, with the status and the charge its end calls for (DESIGN.md sections 8 and 13).

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context as _;

/// How a stream the proxy answered 200 ended, as the client saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// Read to its terminating event: the row is the upstream's usage, status 200.
    Completed,
    /// The client dropped it mid-way: status 499 and an estimated charge.
    Abandoned,
    /// The body broke or ended without its terminating event: no status, estimated.
    Broken,
}

/// One stream the client got a 200 for: the proxy's request id and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sent {
    /// `x-request-id`, the ledger's `request_id`.
    pub(crate) request_id: String,
    /// How it ended.
    pub(crate) end: End,
}

/// One ledger row, the columns the check reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Row {
    /// `request_id`.
    pub(crate) request_id: String,
    /// `http_status`.
    pub(crate) http_status: Option<i64>,
    /// `estimated`.
    pub(crate) estimated: bool,
    /// `cost_micros`.
    pub(crate) cost_micros: i64,
}

/// What the check found; [`Check::passed`] when nothing is wrong.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Check {
    /// Streams checked.
    pub(crate) streams: usize,
    /// Streams without a row.
    pub(crate) missing: Vec<String>,
    /// Streams with more than one row.
    pub(crate) duplicated: Vec<String>,
    /// Rows of no stream the client saw.
    pub(crate) unexpected: usize,
    /// Rows whose status or `estimated` flag does not match how the stream ended.
    pub(crate) mismatched: Vec<String>,
    /// Rows that charged nothing (every stream here relayed content, so each costs something).
    pub(crate) free: Vec<String>,
    /// The sum of the rows' cost.
    pub(crate) charged_micros: i64,
}

impl Check {
    /// Whether every stream has exactly one fitting, charged row and there is no other row.
    pub(crate) fn passed(&self) -> bool {
        self.missing.is_empty()
            && self.duplicated.is_empty()
            && self.unexpected == 0
            && self.mismatched.is_empty()
            && self.free.is_empty()
    }

    /// One line for the report.
    pub(crate) fn summary(&self) -> String {
        let first = |ids: &[String]| ids.first().map_or(String::new(), |id| format!(" (e.g. {id})"));
        if self.passed() {
            return format!(
                "ledger: {} streams, one row each, each charged, {} micro-USD in all",
                self.streams, self.charged_micros
            );
        }
        format!(
            "ledger: FAILED over {} streams: {} without a row{}, {} with several{}, {} rows of no stream, {} with the wrong status or estimate flag{}, {} charged nothing{}",
            self.streams,
            self.missing.len(),
            first(&self.missing),
            self.duplicated.len(),
            first(&self.duplicated),
            self.unexpected,
            self.mismatched.len(),
            first(&self.mismatched),
            self.free.len(),
            first(&self.free),
        )
    }
}

/// Checks `rows` (the whole ledger) against the streams the client saw.
pub(crate) fn check(sent: &[Sent], rows: &[Row]) -> Check {
    let mut by_id: HashMap<&str, Vec<&Row>> = HashMap::new();
    for row in rows {
        by_id.entry(row.request_id.as_str()).or_default().push(row);
    }
    let mut result = Check { streams: sent.len(), ..Check::default() };
    let mut seen = 0;
    for stream in sent {
        let id = &stream.request_id;
        let Some(found) = by_id.get(id.as_str()) else {
            result.missing.push(id.clone());
            continue;
        };
        seen += found.len();
        if found.len() > 1 {
            result.duplicated.push(id.clone());
        }
        let Some(row) = found.first() else { continue };
        let fits = match stream.end {
            End::Completed => row.http_status == Some(200) && !row.estimated,
            End::Abandoned => row.http_status == Some(499) && row.estimated,
            End::Broken => row.http_status.is_none() && row.estimated,
        };
        if !fits {
            result.mismatched.push(id.clone());
        }
        if row.cost_micros <= 0 {
            result.free.push(id.clone());
        }
    }
    result.unexpected = rows.len().saturating_sub(seen);
    result.charged_micros = rows.iter().map(|row| row.cost_micros).sum();
    result
}

/// Every row of the ledger of the SQLite database at `path`, read while `tollgate serve` runs
/// (WAL: a reader does not block the writer).
pub(crate) async fn read(path: &Path) -> anyhow::Result<Vec<Row>> {
    use sqlx::Row as _;
    let url = format!("sqlite://{}?mode=ro", path.display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    let rows = sqlx::query("SELECT request_id, http_status, estimated, cost_micros FROM ledger")
        .fetch_all(&mut conn)
        .await
        .context("cannot read the ledger")?;
    rows.iter()
        .map(|row| {
            Ok(Row {
                request_id: row.try_get("request_id")?,
                http_status: row.try_get("http_status")?,
                estimated: row.try_get("estimated")?,
                cost_micros: row.try_get("cost_micros")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .context("a ledger row of an unexpected shape")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(id: &str, end: End) -> Sent {
        Sent { request_id: id.to_owned(), end }
    }

    fn row(id: &str, status: Option<i64>, estimated: bool, cost: i64) -> Row {
        Row { request_id: id.to_owned(), http_status: status, estimated, cost_micros: cost }
    }

    #[test]
    fn one_fitting_charged_row_per_stream_passes() {
        let streams = [sent("a", End::Completed), sent("b", End::Abandoned), sent("c", End::Broken)];
        let rows = [row("c", None, true, 5), row("a", Some(200), false, 30), row("b", Some(499), true, 12)];
        let check = check(&streams, &rows);
        assert!(check.passed(), "{check:?}");
        assert_eq!(check.charged_micros, 47);
        assert_eq!(check.streams, 3);
        assert!(check.summary().starts_with("ledger: 3 streams, one row each"));
    }

    #[test]
    fn a_missing_row_fails() {
        let check = check(&[sent("a", End::Completed), sent("b", End::Completed)], &[row("a", Some(200), false, 1)]);
        assert!(!check.passed());
        assert_eq!(check.missing, ["b"]);
        assert!(check.summary().contains("1 without a row (e.g. b)"), "{}", check.summary());
    }

    #[test]
    fn a_second_row_for_one_request_fails() {
        let rows = [row("a", Some(200), false, 1), row("a", Some(200), false, 1)];
        let check = check(&[sent("a", End::Completed)], &rows);
        assert!(!check.passed());
        assert_eq!(check.duplicated, ["a"]);
        assert_eq!(check.unexpected, 0, "both rows are the stream's");
    }

    #[test]
    fn a_row_of_no_stream_fails() {
        let rows = [row("a", Some(200), false, 1), row("z", Some(200), false, 1)];
        let check = check(&[sent("a", End::Completed)], &rows);
        assert!(!check.passed());
        assert_eq!(check.unexpected, 1);
    }

    #[test]
    fn an_abandoned_stream_must_be_estimated_with_499_and_charged() {
        let streams = [sent("a", End::Abandoned)];
        assert!(check(&streams, &[row("a", Some(499), true, 3)]).passed());
        assert_eq!(check(&streams, &[row("a", Some(200), true, 3)]).mismatched, ["a"]);
        assert_eq!(check(&streams, &[row("a", Some(499), false, 3)]).mismatched, ["a"]);
        assert_eq!(check(&streams, &[row("a", Some(499), true, 0)]).free, ["a"]);
    }

    #[test]
    fn a_completed_stream_must_not_be_estimated_and_a_broken_one_has_no_status() {
        assert_eq!(check(&[sent("a", End::Completed)], &[row("a", Some(200), true, 3)]).mismatched, ["a"]);
        assert_eq!(check(&[sent("a", End::Broken)], &[row("a", Some(200), true, 3)]).mismatched, ["a"]);
        assert!(check(&[sent("a", End::Broken)], &[row("a", None, true, 3)]).passed());
    }
}
