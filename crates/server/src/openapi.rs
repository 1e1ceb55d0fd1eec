//! The OpenAPI document's frame: title, tags and security schemes. The route table fills in
//! the paths and schemas from the handlers' annotations when the router is built
//! (`routes::build`), so the document is built once, with the router it describes.

use std::sync::Arc;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tollgate",
        description = "Who pays for each agent workspace's LLM calls, and which credentials it may hold.",
    ),
    modifiers(&SecuritySchemes),
    // Not a route's: the body Tollgate POSTs to alert webhooks (DESIGN.md section 15).
    components(schemas(crate::api::Notification)),
    tags(
        (name = "orgs", description = "Tenants and their credit"),
        (name = "workspaces", description = "Agent workspaces"),
        (name = "secrets", description = "Org and workspace secrets (values go in, never come out)"),
        (name = "resolution", description = "Billing mode resolution and provisioning"),
        (name = "workspace", description = "Routes for the workspace itself, with its workspace token"),
        (name = "events", description = "The append-only event log of admin changes and system actions"),
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

/// The document's frame, without paths: the routes merge theirs into it.
pub(crate) fn frame() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// States the registry's runtimes as the `enum` of every `runtime` field of the request bodies
/// (the registry is loaded at start, `--providers`, so the derive cannot know them). `null`
/// stays allowed where the field is nullable (a PATCH leaves it as it is).
pub(crate) fn describe_runtimes(doc: &mut utoipa::openapi::OpenApi, registry: &tollgate_policy::Registry) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{Schema, SchemaType, Type};
    let runtimes: Vec<serde_json::Value> = registry.runtimes().map(|r| serde_json::Value::from(r.id())).collect();
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    for body in ["CreateWorkspace", "PatchWorkspace"] {
        let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(body) else {
            continue;
        };
        let Some(RefOr::T(Schema::Object(runtime))) = object.properties.get_mut("runtime") else {
            continue;
        };
        let mut values = runtimes.clone();
        if matches!(&runtime.schema_type, SchemaType::Array(types) if types.contains(&Type::Null)) {
            values.push(serde_json::Value::Null);
        }
        runtime.enum_values = Some(values);
    }
}

/// States the registry's platform model ids as the `enum` of the items of `limits.allowed_models`
/// (each at most once), as [`describe_runtimes`] does for runtimes. A workspace's list is
/// narrowed further to its runtime's protocol, which OpenAPI cannot state.
pub(crate) fn describe_models(doc: &mut utoipa::openapi::OpenApi, registry: &tollgate_policy::Registry) {
    use tollgate_policy::registry::Protocol;
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{ArrayItems, Schema};
    let models: Vec<serde_json::Value> = [Protocol::Anthropic, Protocol::Openai]
        .into_iter()
        .flat_map(|p| registry.platform_models_for(p))
        .map(|m| serde_json::Value::from(m.id()))
        .collect();
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut("LimitsInput") else {
        return;
    };
    let Some(RefOr::T(Schema::Array(list))) = object.properties.get_mut("allowed_models") else {
        return;
    };
    list.unique_items = true;
    if let ArrayItems::RefOrSchema(item) = &mut list.items
        && let RefOr::T(Schema::Object(item)) = item.as_mut()
    {
        item.enum_values = Some(models);
    }
}

/// An optional request body (`Option<T>` in a route's annotation, e.g. provision's `{model?}`)
/// is derived as `oneOf: [T, null]`; the server takes no body for an absent one, but a body
/// of `null` is refused like any non-object (400 `INVALID_JSON`). This keeps the body optional
/// and states it as `T` alone.
pub(crate) fn optional_bodies_are_objects(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::{Schema, SchemaType, Type};
    use utoipa::openapi::{RefOr, Required};
    for item in doc.paths.paths.values_mut() {
        let operations = [&mut item.post, &mut item.put, &mut item.patch, &mut item.delete, &mut item.get];
        for op in operations.into_iter().flatten() {
            let Some(RefOr::T(body)) = op.request_body.as_mut() else {
                continue;
            };
            if body.required == Some(Required::True) {
                continue;
            }
            for content in body.content.values_mut() {
                let RefOr::T(content) = content else {
                    continue;
                };
                let Some(RefOr::T(Schema::OneOf(one))) = content.schema.as_ref() else {
                    continue;
                };
                let is_null = |s: &RefOr<Schema>| matches!(s, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null));
                let rest: Vec<RefOr<Schema>> = one.items.iter().filter(|s| !is_null(s)).cloned().collect();
                if let [only] = rest.as_slice() {
                    content.schema = Some(only.clone());
                }
            }
        }
    }
}

/// The document as JSON, serialised once when the router is built and served by
/// `GET /openapi.json`.
#[derive(Clone, Debug)]
pub(crate) struct OpenApiJson(pub(crate) Arc<str>);

impl OpenApiJson {
    /// Serialises `doc`; a document that cannot be serialised is served as `{}` (and logged).
    pub(crate) fn of(doc: &utoipa::openapi::OpenApi) -> Self {
        let json = doc.to_json().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot serialise the OpenAPI document");
            "{}".to_owned()
        });
        Self(Arc::from(json))
    }
}
