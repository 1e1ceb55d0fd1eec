//! `POST /admin/secrets/reencrypt`: moves stored secrets to the newest master key, one batch
//! per call (DESIGN.md section 18). Only the server holds the keys, so the work is done here;
//! `tollgate admin reencrypt` calls it until the walk is over.

use axum::Json;
use axum::extract::State;
use tollgate_policy::Scope;

use crate::AppState;
use crate::api::doc::ErrorResponse;
use crate::api::{Reencrypt, Reencrypted, SecretCursor};
use crate::error::{ApiError, ApiErrorCode};
use crate::extract::ApiJson;

/// The batch size when the request names none.
const DEFAULT_LIMIT: u32 = 100;
/// The largest batch: each secret is one decryption, one encryption and one `UPDATE`.
const MAX_LIMIT: u32 = 1000;

/// Re-encrypts one batch of secrets with the newest master key.
#[utoipa::path(
    post, path = "/admin/secrets/reencrypt", tag = "secrets",
    request_body = Reencrypt,
    responses(
        (status = 200, description = "The batch's counts and where the next one starts", body = Reencrypted),
        (status = 400, description = "INVALID_JSON: a malformed body, a limit outside 1 to 1000 or a bad cursor", body = ErrorResponse),
        (status = 401, description = "UNAUTHORIZED", body = ErrorResponse),
        (status = 429, description = "RATE_LIMITED: too many failed admin-token attempts from this address", body = ErrorResponse,
            headers(("retry-after" = u64, description = "Seconds until the next attempt is heard"))),
        (status = 413, description = "PAYLOAD_TOO_LARGE", body = ErrorResponse),
        (status = 503, description = "UNAVAILABLE: the database does not answer", body = ErrorResponse),
    ),
    security(("admin_token" = [])),
)]
pub(super) async fn reencrypt(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Reencrypt>,
) -> Result<Json<Reencrypted>, ApiError> {
    let limit = match body.limit.map(u32::try_from) {
        None => DEFAULT_LIMIT,
        Some(Ok(limit)) if (1..=MAX_LIMIT).contains(&limit) => limit,
        Some(_) => return Err(ApiError::new(ApiErrorCode::InvalidJson, format!("limit must be 1 to {MAX_LIMIT}"))),
    };
    let after = body.after.map(cursor).transpose()?;
    let batch = state.store().reencrypt_secrets(after.as_ref(), limit).await?;
    let key_id = batch.key_id.map(|k| k.to_string()).unwrap_or_default();
    tracing::info!(
        key_id = %key_id,
        moved = batch.moved,
        changed = batch.changed,
        unreadable = batch.unreadable,
        pending = batch.pending,
        "secrets re-encrypted"
    );
    Ok(Json(Reencrypted {
        key_id,
        moved: batch.moved,
        changed: batch.changed,
        unreadable: batch.unreadable,
        pending: batch.pending,
        next: batch.next.map(|c| SecretCursor {
            scope: c.scope.as_str().to_owned(),
            owner_id: c.owner_id,
            name: c.name,
        }),
    }))
}

fn cursor(c: SecretCursor) -> Result<tollgate_store::SecretCursor, ApiError> {
    let scope = match c.scope.as_str() {
        "org" => Scope::Org,
        "workspace" => Scope::Workspace,
        _ => return Err(ApiError::new(ApiErrorCode::InvalidJson, "after.scope must be `org` or `workspace`")),
    };
    Ok(tollgate_store::SecretCursor { scope, owner_id: c.owner_id, name: c.name })
}
