//! Text rendering for people: resolutions and tables.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use tollgate_policy::Resolution;

/// A resolution as text: mode, provider, model, a table of kept and dropped credentials with
/// reasons, the env plan (values as given: callers pass them redacted) and the trace.
pub(crate) fn resolution(r: &Resolution, env: Option<BTreeMap<String, String>>) -> String {
    let mut out = String::new();
    match (&r.error, r.resolved_mode, r.source) {
        (Some(e), _, _) => {
            let _ = writeln!(out, "error      {}: {}", e.code, e.message);
        }
        (None, Some(mode), Some(source)) => {
            let _ = writeln!(out, "mode       {mode} (source {})", source.as_str());
        }
        _ => {}
    }
    let _ = writeln!(out, "provider   {}", r.provider.as_deref().unwrap_or("-"));
    match (&r.effective_model, r.model_source) {
        (Some(m), Some(s)) => {
            let _ = writeln!(out, "model      {m} (from {})", s.as_str());
        }
        _ => {
            let _ = writeln!(out, "model      -");
        }
    }
    let mut rows = vec![["CREDENTIAL", "ORIGIN", "DECISION", "REASON"].map(str::to_owned).to_vec()];
    let or_dash = |s: &str| if s.is_empty() { "-".to_owned() } else { s.to_owned() };
    rows.extend(
        r.credentials.iter().map(|c| vec![c.name.clone(), c.origin.to_string(), "kept".into(), or_dash(&c.reason)]),
    );
    rows.extend(
        r.dropped.iter().map(|d| vec![d.name.clone(), d.origin.to_string(), "dropped".into(), d.reason.clone()]),
    );
    out.push('\n');
    if rows.len() == 1 {
        out.push_str("no LLM credential or routing name kept or dropped\n");
    } else {
        out.push_str(&table(&rows));
    }
    if let Some(env) = env {
        out.push_str("\nenv plan (secret values redacted)\n");
        for (name, value) in env {
            let _ = writeln!(out, "  {name}={value}");
        }
    }
    out.push_str("\ntrace\n");
    for (i, line) in r.trace.iter().enumerate() {
        let _ = writeln!(out, "  {:>2}. {line}", i + 1);
    }
    out
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
pub(crate) fn table<S: AsRef<str>>(rows: &[Vec<S>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| rows.iter().filter_map(|r| r.get(i)).map(|c| c.as_ref().chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let last = row.len().saturating_sub(1);
        for (i, cell) in row.iter().enumerate() {
            let cell = cell.as_ref();
            if i == last {
                out.push_str(cell);
            } else {
                let _ = write!(out, "{cell:width$}  ", width = widths[i]);
            }
        }
        out.push('\n');
    }
    out
}
