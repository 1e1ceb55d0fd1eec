//! Checks of user input, each answering one stable error code. Messages may quote what the
//! caller sent for names, ids and modes (truncated), never a secret value.

use tollgate_policy::secret::ValueError;
use tollgate_policy::{BillingMode, Micros, OrgId, Registry, SecretName, SecretValue, WorkspaceId, WorkspaceKind};

use crate::error::{ApiError, ApiErrorCode};

/// The longest org or workspace name, in characters.
pub(crate) const MAX_NAME_CHARS: usize = 200;
/// The longest model id, in characters.
pub(crate) const MAX_MODEL_CHARS: usize = 256;
/// The largest credit amount (initial or delta), in micro-USD: a billion dollars.
pub(crate) const MAX_CREDIT_MICROS: i64 = 1_000_000_000_000_000;
/// The longest credit reason, in characters.
pub(crate) const MAX_REASON_CHARS: usize = 1000;

/// `s` cut to 64 bytes, for quoting in a message.
pub(crate) fn quote(s: &str) -> String {
    tollgate_policy::text::truncate(s, 64)
}

/// An org or workspace name: non-blank, at most 200 characters, no control characters.
pub(crate) fn name(what: &str, s: String) -> Result<String, ApiError> {
    let bad = |why: &str| Err(ApiError::new(ApiErrorCode::InvalidName, format!("{what} name {why}")));
    if s.trim().is_empty() {
        return bad("cannot be empty");
    }
    let chars = s.chars().count();
    if chars > MAX_NAME_CHARS {
        return bad(&format!("is at most {MAX_NAME_CHARS} characters; this one has {chars}"));
    }
    if s.chars().any(char::is_control) {
        return bad("cannot contain control characters");
    }
    Ok(s)
}

/// A model id: at most 256 characters, no control characters (it ends up in an environment).
pub(crate) fn model(s: String) -> Result<String, ApiError> {
    let chars = s.chars().count();
    if chars > MAX_MODEL_CHARS {
        return Err(ApiError::new(
            ApiErrorCode::InvalidModel,
            format!("a model id is at most {MAX_MODEL_CHARS} characters; this one has {chars}"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(ApiError::new(ApiErrorCode::InvalidModel, "a model id cannot contain control characters"));
    }
    Ok(s)
}

/// An optional model.
pub(crate) fn opt_model(s: Option<String>) -> Result<Option<String>, ApiError> {
    s.map(model).transpose()
}

/// `platform_managed`, `byok` or `disabled`, exactly.
pub(crate) fn billing_mode(s: &str) -> Result<BillingMode, ApiError> {
    BillingMode::parse(s).ok_or_else(|| {
        ApiError::new(
            ApiErrorCode::InvalidBillingMode,
            format!("`{}` is not a billing mode: use platform_managed, byok or disabled", quote(s)),
        )
    })
}

/// An optional billing mode.
pub(crate) fn opt_billing_mode(s: Option<&str>) -> Result<Option<BillingMode>, ApiError> {
    s.map(billing_mode).transpose()
}

/// `agent` or `concierge`, exactly.
pub(crate) fn kind(s: &str) -> Result<WorkspaceKind, ApiError> {
    WorkspaceKind::parse(s).ok_or_else(|| {
        ApiError::new(
            ApiErrorCode::InvalidKind,
            format!("`{}` is not a workspace kind: use agent or concierge", quote(s)),
        )
    })
}

/// A runtime the registry defines.
pub(crate) fn runtime(registry: &Registry, s: String) -> Result<String, ApiError> {
    if registry.runtime(&s).is_some() {
        return Ok(s);
    }
    let known: Vec<&str> = registry.runtimes().map(|r| r.id()).collect();
    Err(ApiError::new(
        ApiErrorCode::UnknownRuntime,
        format!("`{}` is not a runtime of the registry; known runtimes: {}", quote(&s), known.join(", ")),
    ))
}

/// A secret name: upper case already (never upper-cased here), outside `TOLLGATE_`.
pub(crate) fn secret_name(s: &str) -> Result<SecretName, ApiError> {
    // The policy's messages are bounded: names over 128 bytes are refused before they are
    // quoted, and invalid ones are truncated.
    SecretName::parse(s).map_err(|e| ApiError::new(ApiErrorCode::InvalidSecretName, e.to_string()))
}

/// A secret value: at most 64 KiB, no NUL. The message never contains the value.
pub(crate) fn secret_value(s: String) -> Result<SecretValue, ApiError> {
    SecretValue::parse(s).map_err(|e| match e {
        ValueError::TooLong(_) => ApiError::new(ApiErrorCode::SecretValueTooLarge, e.to_string()),
        ValueError::Nul => ApiError::new(ApiErrorCode::InvalidSecretValue, e.to_string()),
    })
}

/// An initial credit: 0 to 10^15 micro-USD.
pub(crate) fn initial_credit(micros: Option<i64>) -> Result<Micros, ApiError> {
    let micros = micros.unwrap_or(0);
    if !(0..=MAX_CREDIT_MICROS).contains(&micros) {
        return Err(ApiError::new(
            ApiErrorCode::InvalidCredit,
            format!("credit_micros must be between 0 and {MAX_CREDIT_MICROS}"),
        ));
    }
    Ok(Micros::new(micros))
}

/// An org's `alert_webhook_url` (DESIGN.md section 15); the message never quotes it.
pub(crate) fn webhook_url(s: &str) -> Result<tollgate_policy::WebhookUrl, ApiError> {
    tollgate_policy::WebhookUrl::parse(s)
        .map_err(|e| ApiError::new(ApiErrorCode::InvalidWebhookUrl, format!("alert_webhook_url: {e}")))
}

/// An org's `markup_percent`: an integer greater than -100 and at most 1000 (DESIGN.md
/// section 20). A JSON number with a fraction, or out of range, is `INVALID_MARKUP`.
pub(crate) fn markup(value: &serde_json::Number) -> Result<tollgate_policy::Markup, ApiError> {
    let invalid = || {
        ApiError::new(
            ApiErrorCode::InvalidMarkup,
            format!("markup_percent must be an integer greater than -100 and at most 1000, not {value}"),
        )
    };
    let percent = value.as_i64().ok_or_else(invalid)?;
    tollgate_policy::Markup::try_from(percent).map_err(|_| invalid())
}

/// A credit adjustment: |delta| at most 10^15 micro-USD, with a reason.
pub(crate) fn credit_delta(delta: i64, reason: &str) -> Result<Micros, ApiError> {
    if delta.unsigned_abs() > MAX_CREDIT_MICROS.unsigned_abs() {
        return Err(ApiError::new(
            ApiErrorCode::InvalidCredit,
            format!("delta_micros must be between -{MAX_CREDIT_MICROS} and {MAX_CREDIT_MICROS}"),
        ));
    }
    if reason.trim().is_empty() {
        return Err(ApiError::new(ApiErrorCode::InvalidCredit, "a credit adjustment needs a reason"));
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::new(
            ApiErrorCode::InvalidCredit,
            format!("a reason is at most {MAX_REASON_CHARS} characters"),
        ));
    }
    if reason.contains('\0') {
        return Err(ApiError::new(ApiErrorCode::InvalidCredit, "a reason cannot contain a NUL character"));
    }
    Ok(Micros::new(delta))
}

/// An org id from a path, body or query. Ids are UUIDs the store minted; a string that is not
/// an id is simply not found (404 `NOT_FOUND`), without asking the database.
pub(crate) fn org_id(s: &str) -> Result<OrgId, ApiError> {
    OrgId::parse(s).map_err(|_| ApiError::not_found("org"))
}

/// A workspace id from a path, body or query; not an id: 404 `NOT_FOUND`, as for [`org_id`].
pub(crate) fn workspace_id(s: &str) -> Result<WorkspaceId, ApiError> {
    WorkspaceId::parse(s).map_err(|_| ApiError::not_found("workspace"))
}

/// Parses `allowed_models` for a workspace of `runtime`: known platform models of its protocol,
/// each once; 400 `INVALID_MODEL` naming the first that is not.
pub(crate) fn allowed_models(registry: &Registry, runtime: &str, models: Vec<String>) -> Result<Vec<String>, ApiError> {
    registry
        .check_allowed_models(runtime, &models)
        .map_err(|why| ApiError::new(ApiErrorCode::InvalidModel, format!("limits.allowed_models: {why}")))?;
    Ok(models)
}

/// Parses a `limits` body's numbers (400 `INVALID_LIMITS` naming the field) and, when
/// `allowed_models` is set, checks it: for a workspace of `runtime`, platform models of its
/// protocol; for an org (`runtime` `None`), platform models of any protocol; each once
/// (400 `INVALID_MODEL`).
pub(crate) fn limits(
    registry: &Registry,
    runtime: Option<&str>,
    input: &tollgate_policy::limits::LimitsInput,
) -> Result<tollgate_policy::LimitsPatch, ApiError> {
    let mut patch = input.parse().map_err(|e| ApiError::new(ApiErrorCode::InvalidLimits, e.to_string()))?;
    if let Some(Some(models)) = patch.allowed_models.take() {
        let models = match runtime {
            Some(runtime) => allowed_models(registry, runtime, models)?,
            None => org_allowed_models(registry, models)?,
        };
        patch.allowed_models = Some(Some(models));
    } else {
        patch.allowed_models = input.allowed_models.clone();
    }
    Ok(patch)
}

/// An `alarms` list (400 `INVALID_ALARMS` naming the rule and field).
pub(crate) fn alarms(specs: &[tollgate_policy::AlarmRuleSpec]) -> Result<tollgate_policy::AlarmRules, ApiError> {
    tollgate_policy::AlarmRules::parse(specs).map_err(|e| ApiError::new(ApiErrorCode::InvalidAlarms, e.to_string()))
}

/// A change to `alarms`: `null` removes the rules.
pub(crate) fn alarms_patch(
    patch: Option<Option<Vec<tollgate_policy::AlarmRuleSpec>>>,
) -> Result<Option<Option<tollgate_policy::AlarmRules>>, ApiError> {
    patch.map(|p| p.as_deref().map(alarms).transpose()).transpose()
}

/// An org's `allowed_models`: platform model ids (of any protocol: the org's workspaces may
/// speak either), each once.
fn org_allowed_models(registry: &Registry, models: Vec<String>) -> Result<Vec<String>, ApiError> {
    for (i, id) in models.iter().enumerate() {
        if registry.platform_model(id).is_none() {
            return Err(ApiError::new(
                ApiErrorCode::InvalidModel,
                format!("limits.allowed_models: `{}` is not a platform model", tollgate_policy::text::truncate(id, 80)),
            ));
        }
        if models[..i].contains(id) {
            return Err(ApiError::new(
                ApiErrorCode::InvalidModel,
                format!("limits.allowed_models: `{id}` is listed twice"),
            ));
        }
    }
    Ok(models)
}
