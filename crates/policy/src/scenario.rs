//! Scenario files (DESIGN.md section 10): a workspace, its org and secrets, and optional
//! expectations, resolved with no server and no database by `tollgate explain`.
//!
//! Parsing and checking are pure; reading the file (and a registry path) is the caller's.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;

use crate::names::SecretName;
use crate::resolve::{
    BillingMode, ErrorCode, ModeSource, ModelSource, OrgSpec, Resolved, WorkspaceKind, WorkspaceSpec,
};
use crate::secret::{MergedSecrets, SecretState, SecretValue};

/// Which registry a scenario uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistryRef {
    /// The registry embedded in the binary.
    Default,
    /// A `providers.yaml`, relative to the scenario file.
    Path(String),
}

/// A parsed scenario.
#[derive(Debug)]
pub struct Scenario {
    /// The registry to resolve against.
    pub registry: RegistryRef,
    /// The public URL to plan with, if the scenario sets one.
    pub public_url: Option<String>,
    /// The org.
    pub org: OrgSpec,
    /// The workspace.
    pub workspace: WorkspaceSpec,
    /// The merged org and workspace secrets.
    pub secrets: MergedSecrets,
    /// The provision request's model.
    pub request_model: Option<String>,
    /// What the resolution must look like, if anything.
    pub expect: Option<Expect>,
}

/// A scenario that cannot be used, with its location.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ScenarioError {
    /// The file name.
    pub file: String,
    /// 1-based line, 0 if unknown.
    pub line: u32,
    /// 1-based column, 0 if unknown.
    pub column: u32,
    /// What is wrong (never a secret value).
    pub message: String,
}

/// The `expect:` block. A field left out is not checked; `null` means "must be null".
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The resolved mode.
    #[serde(default, deserialize_with = "present")]
    pub resolved_mode: Option<Option<BillingMode>>,
    /// The mode's source.
    #[serde(default, deserialize_with = "present")]
    pub source: Option<Option<ModeSource>>,
    /// The provider id.
    #[serde(default, deserialize_with = "present")]
    pub provider: Option<Option<String>>,
    /// The error code.
    #[serde(default, deserialize_with = "present")]
    pub error: Option<Option<ErrorCode>>,
    /// The effective model.
    #[serde(default, deserialize_with = "present")]
    pub effective_model: Option<Option<String>>,
    /// Where the effective model came from.
    #[serde(default, deserialize_with = "present")]
    pub model_source: Option<Option<ModelSource>>,
    /// Names the env plan must set.
    #[serde(default)]
    pub env_has: Vec<String>,
    /// Names the env plan must not set.
    #[serde(default)]
    pub env_lacks: Vec<String>,
    /// Names that must be in `credentials`.
    #[serde(default)]
    pub credentials_has: Vec<String>,
    /// Names that must be in `dropped`.
    #[serde(default)]
    pub dropped_has: Vec<String>,
    /// Substrings that some trace line must contain.
    #[serde(default)]
    pub trace_has: Vec<String>,
    /// Substrings no trace line may contain.
    #[serde(default)]
    pub trace_lacks: Vec<String>,
    /// Substrings the error message must contain.
    #[serde(default)]
    pub message_has: Vec<String>,
}

fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    #[serde(default)]
    registry: Option<String>,
    #[serde(default)]
    public_url: Option<String>,
    #[serde(default)]
    org: RawOrg,
    workspace: RawWorkspace,
    #[serde(default)]
    request: RawRequest,
    #[serde(default)]
    expect: Option<Expect>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrg {
    #[serde(default)]
    default_billing_mode: Option<BillingMode>,
    #[serde(default)]
    secrets: BTreeMap<String, Spanned<RawSecret>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkspace {
    #[serde(default)]
    id: Option<String>,
    runtime: String,
    #[serde(default)]
    kind: Option<WorkspaceKind>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    billing_mode: Option<BillingMode>,
    #[serde(default)]
    secrets: BTreeMap<String, Spanned<RawSecret>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    #[serde(default)]
    model: Option<String>,
}

/// A secret in a scenario: a value, or `{unreadable: true}` for a ciphertext that does not decrypt.
enum RawSecret {
    Value(String),
    Unreadable,
}

impl<'de> Deserialize<'de> for RawSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawSecret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret value (string) or {unreadable: true}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawSecret, E> {
                Ok(RawSecret::Value(v.to_owned()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<RawSecret, E> {
                Ok(RawSecret::Value(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawSecret, E> {
                Ok(RawSecret::Value(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawSecret, E> {
                Ok(RawSecret::Value(v.to_string()))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<RawSecret, E> {
                Ok(RawSecret::Value(String::new()))
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<RawSecret, E> {
                Ok(RawSecret::Value(String::new()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RawSecret, A::Error> {
                let mut unreadable = false;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "unreadable" {
                        unreadable = map.next_value::<bool>()?;
                    } else {
                        return Err(serde::de::Error::unknown_field(&key, &["unreadable"]));
                    }
                }
                if unreadable {
                    Ok(RawSecret::Unreadable)
                } else {
                    Err(serde::de::Error::custom("a secret mapping must be {unreadable: true}"))
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl Scenario {
    /// Parses a scenario. `source` names the file in errors; `default_id` is the workspace id
    /// used when the scenario gives none (the CLI passes the file stem).
    pub fn parse(source: &str, yaml: &str, default_id: &str) -> Result<Self, ScenarioError> {
        let raw: RawScenario = serde_saphyr::from_str(yaml).map_err(|e| {
            let loc = e.location();
            ScenarioError {
                file: source.to_owned(),
                line: loc.map_or(0, |l| u32::try_from(l.line()).unwrap_or(0)),
                column: loc.map_or(0, |l| u32::try_from(l.column()).unwrap_or(0)),
                message: e.without_snippet().to_string(),
            }
        })?;
        let secrets_of =
            |map: BTreeMap<String, Spanned<RawSecret>>| -> Result<Vec<(SecretName, SecretState)>, ScenarioError> {
                map.into_iter()
                    .map(|(name, v)| {
                        let at = |message: String| ScenarioError {
                            file: source.to_owned(),
                            line: u32::try_from(v.referenced.line()).unwrap_or(0),
                            column: u32::try_from(v.referenced.column()).unwrap_or(0),
                            message,
                        };
                        let n = SecretName::parse(&name).map_err(|e| at(format!("secret name: {e}")))?;
                        let state = match v.value {
                            RawSecret::Unreadable => SecretState::Unreadable,
                            RawSecret::Value(s) => SecretState::Value(
                                SecretValue::parse(s).map_err(|e| at(format!("secret {name}: {e}")))?,
                            ),
                        };
                        Ok((n, state))
                    })
                    .collect()
            };
        let org_secrets = secrets_of(raw.org.secrets)?;
        let ws_secrets = secrets_of(raw.workspace.secrets)?;
        Ok(Scenario {
            registry: match raw.registry.as_deref() {
                None | Some("default") => RegistryRef::Default,
                Some(path) => RegistryRef::Path(path.to_owned()),
            },
            public_url: raw.public_url,
            org: OrgSpec { default_billing_mode: raw.org.default_billing_mode },
            workspace: WorkspaceSpec {
                id: raw.workspace.id.unwrap_or_else(|| default_id.to_owned()),
                runtime: raw.workspace.runtime,
                kind: raw.workspace.kind.unwrap_or_default(),
                model: raw.workspace.model,
                billing_mode: raw.workspace.billing_mode,
            },
            secrets: MergedSecrets::merge(org_secrets, ws_secrets),
            request_model: raw.request.model,
            expect: raw.expect,
        })
    }
}

fn show<T: serde::Serialize>(v: &Option<T>) -> String {
    match v {
        None => "null".to_owned(),
        Some(v) => serde_json::to_value(v)
            .map_or_else(|_| "?".to_owned(), |j| j.as_str().map_or_else(|| j.to_string(), str::to_owned)),
    }
}

fn field<T: PartialEq + serde::Serialize>(
    out: &mut Vec<String>,
    name: &str,
    want: &Option<Option<T>>,
    got: &Option<T>,
) {
    if let Some(want) = want
        && want != got
    {
        out.push(format!("{name}: expected {}, got {}", show(want), show(got)));
    }
}

impl Expect {
    /// Compares `resolved` with the expectations; returns one line per difference.
    pub fn check(&self, resolved: &Resolved) -> Vec<String> {
        let r = resolved.resolution();
        let mut out = Vec::new();
        field(&mut out, "resolved_mode", &self.resolved_mode, &r.resolved_mode);
        field(&mut out, "source", &self.source, &r.source);
        field(&mut out, "provider", &self.provider, &r.provider);
        field(&mut out, "error", &self.error, &r.error.as_ref().map(|e| e.code));
        field(&mut out, "effective_model", &self.effective_model, &r.effective_model);
        field(&mut out, "model_source", &self.model_source, &r.model_source);
        let has = |name: &str| resolved.plan().is_some_and(|p| p.contains(name));
        for name in &self.env_has {
            if !has(name) {
                out.push(format!("env_has: {name} is not in the env plan"));
            }
        }
        for name in &self.env_lacks {
            if has(name) {
                out.push(format!("env_lacks: {name} is in the env plan"));
            }
        }
        for name in &self.credentials_has {
            if !r.credentials.iter().any(|c| &c.name == name) {
                out.push(format!("credentials_has: {name} is not among the credentials"));
            }
        }
        for name in &self.dropped_has {
            if !r.dropped.iter().any(|d| &d.name == name) {
                out.push(format!("dropped_has: {name} was not dropped"));
            }
        }
        for needle in &self.trace_has {
            if !r.trace.iter().any(|t| t.contains(needle.as_str())) {
                out.push(format!("trace_has: no trace line contains `{needle}`"));
            }
        }
        for needle in &self.trace_lacks {
            if let Some(line) = r.trace.iter().find(|t| t.contains(needle.as_str())) {
                out.push(format!("trace_lacks: a trace line contains `{needle}`: {line}"));
            }
        }
        for needle in &self.message_has {
            if !r.error.as_ref().is_some_and(|e| e.message.contains(needle.as_str())) {
                out.push(format!("message_has: the error message does not contain `{needle}`"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use crate::resolve::{Context, PublicUrl, resolve};

    fn run(yaml: &str) -> Vec<String> {
        let s = Scenario::parse("t.yaml", yaml, "ws").unwrap();
        let registry = Registry::embedded().unwrap();
        let url = PublicUrl::parse("http://tg.example").unwrap();
        let r = resolve(
            &Context { registry: &registry, public_url: &url },
            &s.workspace,
            &s.org,
            &s.secrets,
            s.request_model.as_deref(),
        );
        s.expect.unwrap_or_default().check(&r)
    }

    const WS: &str = "org: {secrets: {CLAUDE_CODE_OAUTH_TOKEN: t}}\nworkspace: {runtime: claude-code, model: MiniMax-M2.7, secrets: {MINIMAX_API_KEY: k}}\n";

    #[test]
    fn every_expect_field_passes_when_it_holds() {
        let yaml = format!(
            "{WS}expect:\n  resolved_mode: byok\n  source: derived_provider\n  provider: minimax\n  error: null\n  effective_model: MiniMax-M2.7\n  model_source: workspace\n  env_has: [MINIMAX_API_KEY]\n  env_lacks: [CLAUDE_CODE_OAUTH_TOKEN]\n  credentials_has: [MINIMAX_API_KEY]\n  dropped_has: [CLAUDE_CODE_OAUTH_TOKEN]\n  trace_has: [derived provider minimax]\n"
        );
        assert_eq!(run(&yaml), Vec::<String>::new());
    }

    #[test]
    fn every_expect_field_reports_when_it_does_not_hold() {
        let yaml = format!(
            "{WS}expect:\n  resolved_mode: disabled\n  source: explicit\n  provider: null\n  error: NO_PROVIDER\n  effective_model: opus\n  model_source: request\n  env_has: [CLAUDE_CODE_OAUTH_TOKEN]\n  env_lacks: [MINIMAX_API_KEY]\n  credentials_has: [CLAUDE_CODE_OAUTH_TOKEN]\n  dropped_has: [MINIMAX_API_KEY]\n  trace_has: [nowhere]\n  trace_lacks: [derived provider]\n  message_has: [anything]\n"
        );
        let diffs = run(&yaml);
        assert_eq!(diffs.len(), 13, "{diffs:#?}");
        assert!(
            diffs.iter().any(|d| d.starts_with("trace_lacks: a trace line contains `derived provider`")),
            "{diffs:#?}"
        );
        assert!(diffs.contains(&"resolved_mode: expected disabled, got byok".to_owned()), "{diffs:#?}");
        assert!(diffs.contains(&"provider: expected null, got minimax".to_owned()), "{diffs:#?}");
        assert!(diffs.contains(&"error: expected NO_PROVIDER, got null".to_owned()), "{diffs:#?}");
        assert!(diffs.contains(&"message_has: the error message does not contain `anything`".to_owned()));
    }

    #[test]
    fn message_has_matches_the_error_message() {
        let yaml = "workspace: {runtime: claude-code, model: MiniMax-M2.7}\nexpect: {error: MISSING_BYOK_CREDENTIAL, message_has: [minimax, MINIMAX_API_KEY]}\n";
        assert_eq!(run(yaml), Vec::<String>::new());
    }

    #[test]
    fn unreadable_and_scalar_secret_values() {
        let s = Scenario::parse(
            "t.yaml",
            "workspace: {runtime: codex, secrets: {A: {unreadable: true}, B: 12, C: true, D: null}}\n",
            "ws",
        )
        .unwrap();
        assert!(matches!(s.secrets.get("A").map(|m| &m.state), Some(SecretState::Unreadable)));
        assert_eq!(s.secrets.get("B").and_then(|m| m.value()).map(SecretValue::expose), Some("12"));
        assert_eq!(s.secrets.get("C").and_then(|m| m.value()).map(SecretValue::expose), Some("true"));
        assert_eq!(s.secrets.get("D").and_then(|m| m.value()).map(SecretValue::expose), Some(""));
        assert!(
            Scenario::parse("t.yaml", "workspace: {runtime: codex, secrets: {A: {unreadable: false}}}\n", "ws")
                .is_err()
        );
        assert!(Scenario::parse("t.yaml", "workspace: {runtime: codex, secrets: {A: {other: 1}}}\n", "ws").is_err());
        let wrong = Scenario::parse("t.yaml", "workspace: {runtime: codex, secrets: {A: [1]}}\n", "ws");
        let message = wrong.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("a secret value (string) or {unreadable: true}"), "{message}");
        assert_eq!(s.workspace.id, "ws");
        assert_eq!(s.registry, RegistryRef::Default);
    }
}
