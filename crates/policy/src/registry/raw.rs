//! The registry file as deserialised, before validation: every field as written, with the
//! spans that error messages point at. Only [`super::validate`] reads these types.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegistry {
    pub(super) runtimes: Spanned<BTreeMap<String, Spanned<RawRuntime>>>,
    #[serde(default)]
    pub(super) llm_env: Vec<Spanned<String>>,
    pub(super) providers: Spanned<Vec<Spanned<RawProvider>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRuntime {
    pub(super) protocol: Spanned<String>,
    pub(super) base_url_env: Spanned<String>,
    pub(super) token_env: Spanned<String>,
    pub(super) model_env: Option<Spanned<String>>,
    pub(super) context_window_env: Option<Spanned<String>>,
    pub(super) config: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    pub(super) id: Spanned<String>,
    #[serde(default)]
    pub(super) platform: bool,
    #[serde(default)]
    pub(super) runtimes: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) auth_env: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) models: Vec<Spanned<RawModel>>,
    #[serde(default)]
    pub(super) model_prefixes: Vec<Spanned<String>>,
    pub(super) base_url: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) upstreams: BTreeMap<String, Spanned<RawUpstream>>,
}

/// A model entry: a bare name, or a mapping with upstream and price.
pub(super) enum RawModel {
    Name(String),
    Full(RawPlatformModel),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlatformModel {
    pub(super) id: String,
    pub(super) upstream: Option<String>,
    pub(super) upstream_model: Option<String>,
    pub(super) price: Option<RawPrice>,
    pub(super) context_window: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrice {
    pub(super) input: f64,
    pub(super) output: f64,
    pub(super) cache_write: Option<f64>,
    pub(super) cache_write_1h: Option<f64>,
    pub(super) cache_read: Option<f64>,
    #[serde(default)]
    pub(super) tiers: Vec<Spanned<RawTier>>,
    #[serde(default)]
    pub(super) service_tiers: BTreeMap<String, Spanned<RawServicePrice>>,
}

/// An input-size tier of a price (DESIGN.md section 20).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTier {
    pub(super) above_input_tokens: u64,
    pub(super) input: f64,
    pub(super) output: f64,
    pub(super) cache_write: Option<f64>,
    pub(super) cache_write_1h: Option<f64>,
    pub(super) cache_read: Option<f64>,
}

/// A service tier's prices (OpenAI's `service_tier`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServicePrice {
    pub(super) input: f64,
    pub(super) output: f64,
    pub(super) cache_read: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    pub(super) url: Spanned<String>,
    pub(super) key_env: Spanned<String>,
    pub(super) protocol: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for RawModel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawModel;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a model name or {id, upstream, upstream_model, price}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawModel, E> {
                Ok(RawModel::Name(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawModel, A::Error> {
                RawPlatformModel::deserialize(de::value::MapAccessDeserializer::new(map)).map(RawModel::Full)
            }
        }
        d.deserialize_any(V)
    }
}
