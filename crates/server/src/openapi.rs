//! The OpenAPI document, generated from the route table and the handlers' annotations.

use std::sync::OnceLock;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tollgate",
        description = "Who pays for each agent workspace's LLM calls, and which credentials it may hold.",
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "orgs", description = "Tenants and their credit"),
        (name = "workspaces", description = "Agent workspaces"),
        (name = "secrets", description = "Org and workspace secrets (values go in, never come out)"),
        (name = "resolution", description = "Billing mode resolution and provisioning"),
        (name = "workspace", description = "Routes for the workspace itself, with its workspace token"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    ),
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("tg_admin_...").build(),
            ),
        );
        components.add_security_scheme(
            "workspace_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("tg_ws_...").build()),
        );
        components.add_security_scheme(
            "workspace_api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(crate::auth::X_API_KEY))),
        );
    }
}

/// The OpenAPI document of the API: every route, its parameters, bodies, responses and
/// security.
pub fn openapi() -> utoipa::openapi::OpenApi {
    OpenApiRouter::<AppState>::with_openapi(ApiDoc::openapi())
        .merge(crate::routes::admin_routes())
        .merge(crate::routes::public_routes())
        .into_openapi()
}

/// The document as JSON, built once per process.
pub(crate) fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        openapi().to_json().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot serialise the OpenAPI document");
            "{}".to_owned()
        })
    })
}
