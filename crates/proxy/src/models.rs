//! The model lists (`GET /openai/v1/models`, `GET /anthropic/v1/models`): the platform models
//! that a protocol's route serves, in that provider's list shape, for agents that discover
//! models before their first request.

use serde_json::{Value, json};
use tollgate_policy::{Protocol, Registry};

/// The `created_at` (Anthropic) and `created` (OpenAI) of every listed model. The registry
/// states no dates, and clients only sort or display them.
const CREATED_AT: &str = "1970-01-01T00:00:00Z";

/// The ids of the platform models served on `protocol`'s route, in registry order: the models
/// of the platform provider whose upstream speaks `protocol`.
pub fn served_models(registry: &Registry, protocol: Protocol) -> Vec<&str> {
    registry.platform_models_for(protocol).map(|m| m.id()).collect()
}

/// `models` as `protocol`'s list: OpenAI `{"object": "list", "data": [{"id", "object":
/// "model", "created", "owned_by"}]}`; Anthropic `{"data": [{"type": "model", "id",
/// "display_name", "created_at"}], "has_more": false, "first_id", "last_id"}` (ids `null` for
/// an empty list).
pub fn list_body(protocol: Protocol, models: &[&str]) -> Value {
    match protocol {
        Protocol::Openai => {
            let data: Vec<Value> = models
                .iter()
                .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "tollgate"}))
                .collect();
            json!({"object": "list", "data": data})
        }
        Protocol::Anthropic => {
            let data: Vec<Value> = models
                .iter()
                .map(|id| json!({"type": "model", "id": id, "display_name": id, "created_at": CREATED_AT}))
                .collect();
            json!({"data": data, "has_more": false, "first_id": models.first(), "last_id": models.last()})
        }
    }
}

/// One model as `protocol`'s model object (`GET .../models/{id}`).
pub fn model_body(protocol: Protocol, id: &str) -> Value {
    match protocol {
        Protocol::Openai => json!({"id": id, "object": "model", "created": 0, "owned_by": "tollgate"}),
        Protocol::Anthropic => json!({"type": "model", "id": id, "display_name": id, "created_at": CREATED_AT}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_have_each_providers_shape() {
        let openai = list_body(Protocol::Openai, &["a", "b"]);
        assert_eq!(openai["object"], "list");
        assert_eq!(openai["data"][1], json!({"id": "b", "object": "model", "created": 0, "owned_by": "tollgate"}));
        let anthropic = list_body(Protocol::Anthropic, &["a", "b"]);
        assert_eq!(anthropic["data"][0]["type"], "model");
        assert_eq!(anthropic["data"][0]["display_name"], "a");
        assert_eq!(
            (&anthropic["first_id"], &anthropic["last_id"], &anthropic["has_more"]),
            (&json!("a"), &json!("b"), &json!(false))
        );
        let empty = list_body(Protocol::Anthropic, &[]);
        assert_eq!((&empty["first_id"], &empty["data"]), (&Value::Null, &json!([])));
    }
}
