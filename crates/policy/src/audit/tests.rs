//! Each finding from the state that causes it, and its absence from the state that does not.

use super::*;
use crate::names::SecretName;
use crate::resolve::{Context, OrgSpec, PublicUrl, WorkspaceKind, WorkspaceSpec, resolve};
use crate::secret::{MergedSecrets, Scope, SecretState, SecretValue};

fn registry() -> Registry {
    Registry::embedded().unwrap()
}

fn org() -> OrgId {
    OrgId::parse("org-1").unwrap()
}

fn ws_id(n: u32) -> WorkspaceId {
    WorkspaceId::parse(&format!("ws-{n}")).unwrap()
}

fn secrets(org: &[&str], ws: &[&str]) -> MergedSecrets {
    let conv = |names: &[&str]| -> Vec<(SecretName, SecretState)> {
        names
            .iter()
            .map(|n| (SecretName::parse(n).unwrap(), SecretState::Value(SecretValue::parse("v").unwrap())))
            .collect()
    };
    let mut merged = MergedSecrets::default();
    merged.extend(Scope::Org, conv(org));
    merged.extend(Scope::Workspace, conv(ws));
    merged
}

fn resolved(registry: &Registry, runtime: &str, model: Option<&str>, secrets: &MergedSecrets) -> Resolved {
    let url = PublicUrl::parse("https://tollgate.example.com").unwrap();
    let ws = WorkspaceSpec {
        id: "ws-1".into(),
        runtime: runtime.into(),
        kind: WorkspaceKind::Agent,
        model: model.map(str::to_owned),
        billing_mode: None,
    };
    resolve(&Context { registry, public_url: &url }, &ws, &OrgSpec::default(), secrets, None)
}

fn fingerprint(registry: &Registry, r: &Resolved) -> PlanFingerprint {
    PlanFingerprint::of(registry, r.resolution(), r.plan().unwrap()).unwrap()
}

struct Run {
    registry: Registry,
    keyed: BTreeSet<String>,
}

impl Run {
    fn new() -> Self {
        Self { registry: registry(), keyed: ["anthropic", "openai"].iter().map(|s| (*s).to_owned()).collect() }
    }

    fn audit(&self, ws: &[(&Resolved, LastProvision, Option<Suspension>)], orgs: &[OrgFacts<'_>]) -> Vec<Finding> {
        let ctx = AuditContext { registry: &self.registry, keyed_upstreams: &self.keyed, now_ms: 7_200_000 };
        let mut auditor = Auditor::new(ctx);
        let (org, ids) = (org(), (0..ws.len()).map(|i| ws_id(u32::try_from(i).unwrap())).collect::<Vec<_>>());
        for (i, (r, last, s)) in ws.iter().enumerate() {
            auditor.workspace(&WorkspaceFacts {
                org_id: &org,
                workspace_id: &ids[i],
                runtime: "claude-code",
                resolved: r,
                last_provision: last,
                suspension: s.as_ref(),
            });
        }
        for o in orgs {
            auditor.org(o);
        }
        let (findings, checked) = auditor.finish();
        assert_eq!(checked, ws.len() as u64);
        findings
    }
}

fn codes(findings: &[Finding]) -> Vec<FindingCode> {
    findings.iter().map(|f| f.code).collect()
}

#[test]
fn a_clean_provisioned_workspace_has_no_finding() {
    let run = Run::new();
    let r = resolved(&run.registry, "claude-code", Some("platform/sonnet"), &secrets(&[], &[]));
    let last = LastProvision::Recorded(fingerprint(&run.registry, &r));
    assert_eq!(run.audit(&[(&r, last, None)], &[]), []);
}

#[test]
fn never_provisioned_is_info() {
    let run = Run::new();
    let r = resolved(&run.registry, "claude-code", Some("platform/sonnet"), &secrets(&[], &[]));
    let f = run.audit(&[(&r, LastProvision::Never, None)], &[]);
    assert_eq!(codes(&f), [FindingCode::NotProvisioned]);
    assert_eq!(f[0].severity, Severity::Info);
    assert_eq!(f[0].workspace_id.as_deref(), Some("ws-0"));
    // Provisioned before fingerprints existed: neither "never" nor drift.
    assert_eq!(run.audit(&[(&r, LastProvision::Unknown, None)], &[]), []);
}

#[test]
fn a_failed_resolution_is_an_error_with_its_code() {
    let run = Run::new();
    let r = resolved(&run.registry, "claude-code", Some("MiniMax-M2"), &secrets(&[], &[]));
    let f = run.audit(&[(&r, LastProvision::Unknown, None)], &[]);
    assert_eq!(codes(&f), [FindingCode::ResolutionError]);
    assert_eq!(f[0].severity, Severity::Error);
    assert!(f[0].message.starts_with("MISSING_BYOK_CREDENTIAL"), "{}", f[0].message);
}

#[test]
fn drift_names_what_changed() {
    let run = Run::new();
    let before = resolved(&run.registry, "claude-code", Some("platform/sonnet"), &secrets(&[], &[]));
    let now = resolved(&run.registry, "claude-code", Some("MiniMax-M2"), &secrets(&[], &["MINIMAX_API_KEY"]));
    let f = run.audit(&[(&now, LastProvision::Recorded(fingerprint(&run.registry, &before)), None)], &[]);
    assert_eq!(codes(&f), [FindingCode::PlanDrift]);
    let m = &f[0].message;
    assert!(m.contains("mode platform_managed -> byok") && m.contains("provider platform -> minimax"), "{m}");
    assert!(m.contains("credentials [ANTHROPIC_AUTH_TOKEN] -> [MINIMAX_API_KEY]"), "{m}");
    assert!(!m.contains("routing"), "both route through ANTHROPIC_BASE_URL: {m}");
    assert!(!m.contains("\"v\""), "no value: {m}");
}

#[test]
fn fingerprints_round_trip_and_hold_no_value() {
    let run = Run::new();
    let r = resolved(&run.registry, "claude-code", Some("MiniMax-M2"), &secrets(&[], &["MINIMAX_API_KEY"]));
    let fp = fingerprint(&run.registry, &r);
    assert_eq!(fp.mode, BillingMode::Byok);
    assert_eq!(fp.credentials, ["MINIMAX_API_KEY"]);
    assert_eq!(fp.routing, ["ANTHROPIC_BASE_URL"]);
    assert_eq!(PlanFingerprint::decode(&fp.encode()), Some(fp.clone()));
    assert_eq!(PlanFingerprint::decode("not json"), None);
    assert!(fp.differences(&fp).is_empty());
}

#[test]
fn fallback_mode_is_reported() {
    let run = Run::new();
    let r = resolved(&run.registry, "claude-code", None, &secrets(&[], &[]));
    let last = LastProvision::Recorded(fingerprint(&run.registry, &r));
    assert_eq!(codes(&run.audit(&[(&r, last, None)], &[])), [FindingCode::FallbackMode]);
}

#[test]
fn stray_org_credentials_are_counted_per_org_and_name() {
    let run = Run::new();
    let s = secrets(&["CLAUDE_CODE_OAUTH_TOKEN"], &["MINIMAX_API_KEY"]);
    let a = resolved(&run.registry, "claude-code", Some("MiniMax-M2"), &s);
    let b = resolved(&run.registry, "claude-code", Some("MiniMax-M2"), &s);
    let keeps = resolved(&run.registry, "claude-code", Some("opus"), &secrets(&["CLAUDE_CODE_OAUTH_TOKEN"], &[]));
    let la = LastProvision::Recorded(fingerprint(&run.registry, &a));
    let lk = LastProvision::Recorded(fingerprint(&run.registry, &keeps));
    let f = run.audit(&[(&a, la.clone(), None), (&b, la, None), (&keeps, lk, None)], &[]);
    assert_eq!(codes(&f), [FindingCode::StrayOrgCredential]);
    assert_eq!(f[0].workspace_id, None);
    assert!(f[0].message.contains("CLAUDE_CODE_OAUTH_TOKEN is dropped by 2 workspaces"), "{}", f[0].message);
}

#[test]
fn a_platform_model_whose_upstream_has_no_key_is_an_error() {
    let mut run = Run::new();
    let r = resolved(&run.registry, "claude-code", Some("platform/sonnet"), &secrets(&[], &[]));
    let last = LastProvision::Recorded(fingerprint(&run.registry, &r));
    run.keyed.remove("anthropic");
    let f = run.audit(&[(&r, last.clone(), None)], &[]);
    assert_eq!(codes(&f), [FindingCode::PlatformKeyMissing]);
    assert!(f[0].message.contains("TOLLGATE_UPSTREAM_ANTHROPIC_KEY"), "{}", f[0].message);
    // Only the openai upstream keyed: a claude-code workspace still has nothing to call.
    let fallback = resolved(&run.registry, "claude-code", None, &secrets(&[], &[]));
    let lf = LastProvision::Recorded(fingerprint(&run.registry, &fallback));
    let f = run.audit(&[(&fallback, lf.clone(), None)], &[]);
    assert_eq!(codes(&f), [FindingCode::PlatformKeyMissing, FindingCode::FallbackMode]);
    run.keyed.insert("anthropic".to_owned());
    assert_eq!(codes(&run.audit(&[(&fallback, lf, None)], &[])), [FindingCode::FallbackMode]);
}

#[test]
fn suspensions_name_the_reason() {
    let run = Run::new();
    let r = resolved(&run.registry, "claude-code", Some("platform/sonnet"), &secrets(&[], &[]));
    let last = LastProvision::Recorded(fingerprint(&run.registry, &r));
    let s = Suspension {
        reason: crate::suspension::SuspensionReason::parse("drain on 2026-11-30").unwrap(),
        since_ms: 0,
        by: crate::suspension::SuspendedBy::Admin,
    };
    let o = org();
    let orgs = [OrgFacts { org_id: &o, credit: Micros::new(10), spend_24h: Micros::ZERO, suspension: Some(&s) }];
    let f = run.audit(&[(&r, last, Some(s.clone()))], &orgs);
    assert_eq!(codes(&f), [FindingCode::Suspended, FindingCode::Suspended]);
    assert_eq!(f[0].workspace_id, None, "org-wide first");
    assert_eq!(f[0].message, "org suspended by admin for 2 h: drain on 2026-11-30");
    assert_eq!(f[1].workspace_id.as_deref(), Some("ws-0"));
}

#[test]
fn low_credit_is_credit_below_a_days_spend() {
    let run = Run::new();
    let o = org();
    let at = |credit: i64, spend: i64| OrgFacts {
        org_id: &o,
        credit: Micros::new(credit),
        spend_24h: Micros::new(spend),
        suspension: None,
    };
    assert_eq!(codes(&run.audit(&[], &[at(999_999, 1_000_000)])), [FindingCode::LowCredit]);
    assert_eq!(run.audit(&[], &[at(1_000_000, 1_000_000)]), []);
    assert_eq!(run.audit(&[], &[at(0, 0)]), [], "no spend: nothing to run out at");
    assert_eq!(codes(&run.audit(&[], &[at(-5, 1)])), [FindingCode::LowCredit]);
}

#[test]
fn summary_counts_every_code() {
    let f = vec![Finding {
        code: FindingCode::LowCredit,
        severity: Severity::Warning,
        org_id: "o".into(),
        workspace_id: None,
        message: String::new(),
    }];
    let s = summary(&f);
    assert_eq!(s.len(), 8);
    assert_eq!(s[&FindingCode::LowCredit], 1);
    assert_eq!(s[&FindingCode::Suspended], 0);
    assert!(Severity::Error > Severity::Warning && Severity::Warning > Severity::Info);
    for code in <FindingCode as strum::VariantArray>::VARIANTS {
        assert_eq!(serde_json::to_value(code).unwrap(), serde_json::Value::from(code.as_str()));
    }
}
