//! `GET /admin/audit` (DESIGN.md section 16): the query and the report.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tollgate_policy::audit::{Finding, FindingCode};
use utoipa::{IntoParams, ToSchema};

/// `GET /admin/audit` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Only this org and its workspaces; all orgs when absent.
    pub org_id: Option<String>,
}

/// `GET /admin/audit` answer: every workspace resolved now, and what needs attention.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditReport {
    /// When the audit ran (RFC 3339, UTC).
    pub generated_at: String,
    /// How many workspaces were resolved.
    pub workspaces_checked: u64,
    /// The findings, most severe first, then by org and workspace.
    pub findings: Vec<Finding>,
    /// How many findings of each code (every code present, zero when none).
    #[schema(value_type = BTreeMap<String, u64>)]
    pub summary: BTreeMap<FindingCode, u64>,
}
