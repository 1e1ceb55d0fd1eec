//! The route table and the layers around it.

pub(crate) mod audit;
mod events;
mod keys;
mod ops;
mod orgs;
pub(crate) mod resolution;
mod secrets;
pub(crate) mod suspension;
mod usage;
mod workspaces;

use axum::extract::DefaultBodyLimit;
use axum::http::HeaderName;
use axum::http::header::AUTHORIZATION;
use axum::middleware;
use axum::{Extension, Router};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiErrorCode};
use crate::openapi::{self, OpenApiJson};
use crate::{AppState, auth, telemetry};

/// Every `/admin` route; the admin-token check is layered on in [`build`].
pub(crate) fn admin_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(orgs::create_org, orgs::list_orgs))
        .routes(routes!(orgs::get_org, orgs::patch_org))
        .routes(routes!(orgs::adjust_credit))
        .routes(routes!(secrets::put_org_secret, secrets::delete_org_secret))
        .routes(routes!(secrets::list_org_secrets))
        .routes(routes!(workspaces::create_workspace, workspaces::list_workspaces))
        .routes(routes!(workspaces::get_workspace, workspaces::patch_workspace, workspaces::delete_workspace))
        .routes(routes!(secrets::put_workspace_secret, secrets::delete_workspace_secret))
        .routes(routes!(secrets::list_workspace_secrets))
        .routes(routes!(resolution::billing_mode))
        .routes(routes!(resolution::provision))
        .routes(routes!(usage::usage))
        .routes(routes!(audit::audit))
        .routes(routes!(suspension::suspend_org))
        .routes(routes!(suspension::resume_org))
        .routes(routes!(suspension::suspend_workspace))
        .routes(routes!(suspension::resume_workspace))
        .routes(routes!(keys::reencrypt))
        .routes(routes!(events::list_events))
}

/// The routes without the admin token: the pull (workspace token) and operations.
pub(crate) fn public_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(resolution::pull))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::openapi))
}

async fn not_found() -> ApiError {
    ApiError::new(ApiErrorCode::NotFound, "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(ApiErrorCode::MethodNotAllowed, "this route does not accept that method")
}

/// The admin and public routers, and the OpenAPI document that describes them both.
fn assemble() -> (Router<AppState>, Router<AppState>, utoipa::openapi::OpenApi) {
    let (admin, admin_doc) = admin_routes().split_for_parts();
    let (public, public_doc) = public_routes().split_for_parts();
    let mut doc = openapi::frame();
    doc.merge(admin_doc);
    doc.merge(public_doc);
    (admin, public, doc)
}

/// The OpenAPI document of the API: every route, its parameters, bodies, responses and
/// security.
pub fn openapi() -> utoipa::openapi::OpenApi {
    assemble().2
}

/// The router with its layers, outermost last: metrics, body limit, panic catcher, request
/// tracing (the proxy's routes their own, see [`telemetry::proxy_trace_layer`]), and the
/// sensitive-header marking that keeps tokens out of every log. The OpenAPI
/// document is built here, once, from the same route table.
pub(crate) fn build(state: AppState) -> Router {
    telemetry::install_recorder();
    let (admin, public, mut doc) = assemble();
    crate::openapi::describe_runtimes(&mut doc, state.registry());
    crate::openapi::describe_models(&mut doc, state.registry());
    crate::openapi::optional_bodies_are_objects(&mut doc);
    let public = public.layer(Extension(OpenApiJson::of(&doc)));
    let admin = admin.route_layer(middleware::from_fn_with_state(state.clone(), auth::require_admin));
    // Each `Router::layer` wraps every route once more, and each wrapper is cloned (a boxed
    // allocation) on every request: the layers go on as one stack per router, outermost first.
    let sensitive = SetSensitiveRequestHeadersLayer::new([AUTHORIZATION, HeaderName::from_static(auth::X_API_KEY)]);
    // The proxy's routes carry agents' requests, which are far larger than admin bodies, and
    // log their own line per request: their trace layer makes a span only for trace export.
    let proxy = state.proxy().map_or_else(Router::new, |p| {
        p.routes().with_state(()).layer(
            ServiceBuilder::new()
                .layer(sensitive.clone())
                .layer(telemetry::proxy_trace_layer())
                .layer(CatchPanicLayer::custom(telemetry::panic_response))
                .layer(middleware::from_fn(telemetry::track))
                .layer(DefaultBodyLimit::max(tollgate_proxy::MAX_REQUEST_BYTES)),
        )
    });
    Router::new()
        .merge(admin)
        .merge(public)
        .merge(crate::ui::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(
            ServiceBuilder::new()
                .layer(sensitive)
                .layer(telemetry::trace_layer())
                .layer(CatchPanicLayer::custom(telemetry::panic_response))
                .layer(DefaultBodyLimit::max(crate::MAX_BODY_BYTES))
                .layer(middleware::from_fn(telemetry::track)),
        )
        .merge(proxy)
        .with_state(state)
}
