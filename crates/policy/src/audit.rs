//! The audit of DESIGN.md section 16: which workspaces and orgs are in a state an operator
//! must act on. Every finding is decided here, from inputs the caller loads (each
//! workspace's resolution, the fingerprint recorded at its last provision, its suspension;
//! each org's credit, spend and suspension; which platform upstreams have a key; the clock
//! reading). Pure: the same inputs give the same findings, in the same order.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::ids::{OrgId, WorkspaceId};
use crate::money::Micros;
use crate::registry::Registry;
use crate::resolve::{BillingMode, EnvPlan, ModeSource, Resolution, Resolved};
use crate::secret::Origin;
use crate::suspension::Suspension;

/// How urgent a finding is. Ordered: `Info` < `Warning` < `Error`.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::Display,
    strum::VariantArray,
)]
#[strum(serialize_all = "snake_case")]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing; nothing is wrong.
    Info,
    /// Something to fix before it costs money.
    Warning,
    /// Broken now: provisioning or proxied calls fail.
    Error,
}

impl Severity {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The finding codes of DESIGN.md section 16; each has one fixed [`Severity`].
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::Display,
    strum::VariantArray,
)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FindingCode {
    /// The workspace does not resolve now: it cannot be provisioned.
    ResolutionError,
    /// What it was last provisioned with differs from what it resolves to now.
    PlanDrift,
    /// An org-scope LLM credential that some workspaces of the org drop.
    StrayOrgCredential,
    /// The mode came from `fallback`: nobody chose it.
    FallbackMode,
    /// Platform-managed, but the upstream it needs has no key on this server.
    PlatformKeyMissing,
    /// The org's credit will not last a day at its last 24 hours' spend.
    LowCredit,
    /// The org or workspace is suspended.
    Suspended,
    /// The workspace was never provisioned.
    NotProvisioned,
}

impl FindingCode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The severity DESIGN.md section 16 gives this code.
    pub fn severity(self) -> Severity {
        match self {
            Self::ResolutionError | Self::PlatformKeyMissing => Severity::Error,
            Self::PlanDrift | Self::StrayOrgCredential | Self::FallbackMode | Self::LowCredit | Self::Suspended => {
                Severity::Warning
            }
            Self::NotProvisioned => Severity::Info,
        }
    }
}

/// One finding. `workspace_id` is `None` for a finding about a whole org.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Finding {
    /// The code.
    pub code: FindingCode,
    /// Its severity (fixed per code).
    pub severity: Severity,
    /// The org concerned.
    pub org_id: String,
    /// The workspace concerned; `null` for an org-wide finding.
    #[cfg_attr(feature = "utoipa", schema(required = true))]
    pub workspace_id: Option<String>,
    /// What is wrong and what to do; names, never values.
    pub message: String,
}

/// What a provision records so that `PLAN_DRIFT` can be computed later: the plan's mode,
/// provider, credential names and routing names. Never a value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanFingerprint {
    /// The resolved mode.
    pub mode: BillingMode,
    /// The resolved provider.
    pub provider: Option<String>,
    /// The names of the credentials the plan holds (kept or injected), sorted.
    pub credentials: Vec<String>,
    /// The routing names the plan sets (runtimes' `base_url_env`), sorted.
    pub routing: Vec<String>,
}

impl PlanFingerprint {
    /// The fingerprint of a successful resolution and its plan. `None` when the resolution
    /// has no mode (a failed one, which is never provisioned).
    pub fn of(registry: &Registry, resolution: &Resolution, plan: &EnvPlan) -> Option<Self> {
        let mode = resolution.resolved_mode?;
        let credentials: BTreeSet<String> = resolution.credentials.iter().map(|c| c.name.clone()).collect();
        let routing: BTreeSet<String> =
            plan.iter().map(|(name, _)| name.as_str()).filter(|n| registry.is_routing(n)).map(str::to_owned).collect();
        Some(Self {
            mode,
            provider: resolution.provider.clone(),
            credentials: credentials.into_iter().collect(),
            routing: routing.into_iter().collect(),
        })
    }

    /// The stored text (JSON).
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a stored text; `None` when it is not a fingerprint (treated as unknown).
    pub fn decode(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }

    /// How `now` differs from `self` (the recorded one), one phrase per part; empty when
    /// they are the same.
    pub fn differences(&self, now: &Self) -> Vec<String> {
        let mut out = Vec::new();
        if self.mode != now.mode {
            out.push(format!("mode {} -> {}", self.mode, now.mode));
        }
        if self.provider != now.provider {
            let p = |p: &Option<String>| p.clone().unwrap_or_else(|| "none".to_owned());
            out.push(format!("provider {} -> {}", p(&self.provider), p(&now.provider)));
        }
        for (what, was, is) in
            [("credentials", &self.credentials, &now.credentials), ("routing", &self.routing, &now.routing)]
        {
            if was != is {
                out.push(format!("{what} [{}] -> [{}]", was.join(", "), is.join(", ")));
            }
        }
        out
    }
}

/// What the store remembers of a workspace's last provision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LastProvision {
    /// Never provisioned.
    Never,
    /// Provisioned before fingerprints were recorded (or the record does not parse): drift
    /// cannot be told.
    Unknown,
    /// Provisioned with this fingerprint.
    Recorded(PlanFingerprint),
}

/// The deployment-wide inputs of an audit.
#[derive(Clone, Copy, Debug)]
pub struct AuditContext<'a> {
    /// The registry in force.
    pub registry: &'a Registry,
    /// The platform upstreams (registry names) that have a key on this server.
    pub keyed_upstreams: &'a BTreeSet<String>,
    /// The clock reading, milliseconds since the Unix epoch (how long suspensions have lasted).
    pub now_ms: i64,
}

/// One workspace as the audit sees it.
#[derive(Clone, Copy, Debug)]
pub struct WorkspaceFacts<'a> {
    /// Its org.
    pub org_id: &'a OrgId,
    /// The workspace.
    pub workspace_id: &'a WorkspaceId,
    /// Its runtime id.
    pub runtime: &'a str,
    /// What it resolves to now (no request model).
    pub resolved: &'a Resolved,
    /// Its last provision.
    pub last_provision: &'a LastProvision,
    /// Its own suspension (the org's is reported once, on the org).
    pub suspension: Option<&'a Suspension>,
}

/// One org as the audit sees it.
#[derive(Clone, Copy, Debug)]
pub struct OrgFacts<'a> {
    /// The org.
    pub org_id: &'a OrgId,
    /// Its balance (leased credit included).
    pub credit: Micros,
    /// What it was charged in the last 24 hours.
    pub spend_24h: Micros,
    /// Its suspension.
    pub suspension: Option<&'a Suspension>,
}

/// Collects findings one workspace and one org at a time, so that an audit of many
/// workspaces holds only their findings, not their resolutions.
#[derive(Debug)]
pub struct Auditor<'a> {
    ctx: AuditContext<'a>,
    findings: Vec<Finding>,
    /// (org, credential name) -> how many workspaces drop it.
    stray: BTreeMap<(String, String), u64>,
    workspaces_checked: u64,
}

impl<'a> Auditor<'a> {
    /// An audit with no workspace checked yet.
    pub fn new(ctx: AuditContext<'a>) -> Self {
        Self { ctx, findings: Vec::new(), stray: BTreeMap::new(), workspaces_checked: 0 }
    }

    fn push(&mut self, code: FindingCode, org: &OrgId, ws: Option<&WorkspaceId>, message: String) {
        self.findings.push(Finding {
            code,
            severity: code.severity(),
            org_id: org.as_str().to_owned(),
            workspace_id: ws.map(|w| w.as_str().to_owned()),
            message,
        });
    }

    /// Checks one workspace: `RESOLUTION_ERROR`, `PLAN_DRIFT`, `FALLBACK_MODE`,
    /// `PLATFORM_KEY_MISSING`, `SUSPENDED`, `NOT_PROVISIONED`, and counts the org credentials
    /// it drops towards `STRAY_ORG_CREDENTIAL`.
    pub fn workspace(&mut self, w: &WorkspaceFacts<'_>) {
        self.workspaces_checked += 1;
        let (org, ws) = (w.org_id, Some(w.workspace_id));
        let resolution = w.resolved.resolution();
        for d in &resolution.dropped {
            if d.origin == Origin::Org && self.ctx.registry.is_llm_credential(&d.name) {
                *self.stray.entry((org.as_str().to_owned(), d.name.clone())).or_default() += 1;
            }
        }
        if let Some(s) = w.suspension {
            let message = self.suspended_message("workspace", s);
            self.push(FindingCode::Suspended, org, ws, message);
        }
        if *w.last_provision == LastProvision::Never {
            self.push(FindingCode::NotProvisioned, org, ws, "never provisioned".to_owned());
        }
        let (resolution, plan) = match w.resolved {
            Resolved::Failed { resolution } => {
                if let Some(e) = &resolution.error {
                    let message = format!("{}: {} (it cannot be provisioned)", e.code, e.message);
                    self.push(FindingCode::ResolutionError, org, ws, message);
                }
                return;
            }
            Resolved::Planned { resolution, plan } => (resolution, plan),
        };
        if resolution.source == Some(ModeSource::Fallback) {
            let message = "the mode platform_managed came from the fallback: nobody chose it (set the workspace's \
                           billing_mode or model, or the org's default_billing_mode)"
                .to_owned();
            self.push(FindingCode::FallbackMode, org, ws, message);
        }
        if resolution.resolved_mode == Some(BillingMode::PlatformManaged)
            && let Some(message) = self.missing_key(w.runtime, resolution)
        {
            self.push(FindingCode::PlatformKeyMissing, org, ws, message);
        }
        if let LastProvision::Recorded(recorded) = w.last_provision
            && let Some(now) = PlanFingerprint::of(self.ctx.registry, resolution, plan)
        {
            let diff = recorded.differences(&now);
            if !diff.is_empty() {
                let message =
                    format!("the plan it was provisioned with differs from now: {}; re-provision it", diff.join("; "));
                self.push(FindingCode::PlanDrift, org, ws, message);
            }
        }
    }

    /// Why a platform-managed workspace cannot be served by this server's proxy, if it cannot:
    /// the upstream of its model has no key, or (with no model) no upstream of its runtime's
    /// protocol has one.
    fn missing_key(&self, runtime: &str, resolution: &Resolution) -> Option<String> {
        let registry = self.ctx.registry;
        let keyed = |u: &str| self.ctx.keyed_upstreams.contains(u);
        let key_env = |u: &str| {
            registry
                .platform()
                .and_then(|p| p.upstream(u))
                .map_or_else(String::new, |u| u.key_env().as_str().to_owned())
        };
        if let Some((_, upstream)) = resolution.effective_model.as_deref().and_then(|m| registry.platform_model(m)) {
            let name = upstream.name();
            return (!keyed(name)).then(|| {
                format!(
                    "platform-managed on {}, whose upstream {name} has no key on this server ({} is not set): every call fails",
                    resolution.effective_model.as_deref().unwrap_or_default(),
                    key_env(name)
                )
            });
        }
        let protocol = registry.runtime(runtime)?.protocol();
        let upstreams: BTreeSet<&str> = registry
            .platform_models_for(protocol)
            .filter_map(|m| registry.platform_model(m.id()).map(|(_, u)| u.name()))
            .collect();
        if upstreams.iter().any(|u| keyed(u)) {
            return None;
        }
        let mut message = format!(
            "platform-managed ({} protocol), but no upstream serving it has a key on this server",
            protocol.as_str()
        );
        if !upstreams.is_empty() {
            let names: Vec<String> = upstreams.iter().map(|u| key_env(u)).collect();
            let _ = write!(message, " (set {})", names.join(" or "));
        }
        Some(message)
    }

    fn suspended_message(&self, what: &str, s: &Suspension) -> String {
        let hours = self.ctx.now_ms.saturating_sub(s.since_ms).max(0) / 3_600_000;
        format!(
            "{what} suspended by {} for {hours} h: {}",
            s.by.as_str(),
            crate::text::truncate(s.reason.as_str(), 200)
        )
    }

    /// Checks one org: `LOW_CREDIT` and `SUSPENDED`.
    pub fn org(&mut self, o: &OrgFacts<'_>) {
        if let Some(s) = o.suspension {
            let message = self.suspended_message("org", s);
            self.push(FindingCode::Suspended, o.org_id, None, message);
        }
        if o.spend_24h > Micros::ZERO && o.credit < o.spend_24h {
            let message = format!(
                "credit {} will not last a day at the last 24 hours' spend of {}; add credit",
                o.credit, o.spend_24h
            );
            self.push(FindingCode::LowCredit, o.org_id, None, message);
        }
    }

    /// The findings (`STRAY_ORG_CREDENTIAL` added from the counts), most severe first, then
    /// by org, workspace (org-wide first) and code; and how many workspaces were checked.
    pub fn finish(mut self) -> (Vec<Finding>, u64) {
        for ((org, name), count) in std::mem::take(&mut self.stray) {
            let s = if count == 1 { "" } else { "s" };
            self.findings.push(Finding {
                code: FindingCode::StrayOrgCredential,
                severity: FindingCode::StrayOrgCredential.severity(),
                org_id: org,
                workspace_id: None,
                message: format!(
                    "the org-scope credential {name} is dropped by {count} workspace{s}: a tenant-wide credential \
                     inherited where it does not belong; move it to the workspaces that use it"
                ),
            });
        }
        self.findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.org_id.cmp(&b.org_id))
                .then_with(|| a.workspace_id.cmp(&b.workspace_id))
                .then_with(|| a.code.cmp(&b.code))
                .then_with(|| a.message.cmp(&b.message))
        });
        (self.findings, self.workspaces_checked)
    }
}

/// Counts findings per code; every code is present (zero when none).
pub fn summary(findings: &[Finding]) -> BTreeMap<FindingCode, u64> {
    let mut out: BTreeMap<FindingCode, u64> =
        <FindingCode as strum::VariantArray>::VARIANTS.iter().map(|c| (*c, 0)).collect();
    for f in findings {
        *out.entry(f.code).or_default() += 1;
    }
    out
}

#[cfg(test)]
mod tests;
