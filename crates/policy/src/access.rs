//! Model access (DESIGN.md section 14): which platform models a workspace's token may call,
//! on which route. Decided here, once; the proxy only carries the decision out.

use crate::registry::{PlatformModel, Protocol, Registry, Upstream};

/// Why a request for a model on a route is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelRefusal {
    /// The platform does not serve the model on the route's protocol (the proxy answers 404).
    NotServed,
    /// The workspace's runtime speaks another protocol than the route (or the registry has no
    /// such runtime): its token buys only the platform models of its own protocol (403).
    WrongProtocol {
        /// The runtime's protocol, `None` when the registry does not know the runtime.
        runtime: Option<Protocol>,
    },
    /// The model is outside the workspace's `allowed_models` (403).
    NotAllowed,
}

impl Registry {
    /// Decides whether a workspace whose runtime is `runtime` and whose `allowed_models` is
    /// `allowed` (`None`: no narrowing) may call platform model `model` on a route speaking
    /// `route`. On admission, returns the platform model and its upstream.
    ///
    /// Admitted exactly when the model is a platform model served on `route`'s protocol, the
    /// runtime is known and speaks that same protocol, and `allowed` (if given) lists the model.
    /// Checked in that order, so a model the route does not serve is `NotServed` whoever asks.
    ///
    /// # Errors
    /// The first [`ModelRefusal`] that applies.
    pub fn model_access(
        &self,
        runtime: &str,
        allowed: Option<&[String]>,
        route: Protocol,
        model: &str,
    ) -> Result<(&PlatformModel, &Upstream), ModelRefusal> {
        let served = self.platform_model(model).filter(|(_, u)| u.protocol() == route);
        let Some(found) = served else {
            return Err(ModelRefusal::NotServed);
        };
        let runtime_protocol = self.runtime(runtime).map(crate::Runtime::protocol);
        if runtime_protocol != Some(route) {
            return Err(ModelRefusal::WrongProtocol { runtime: runtime_protocol });
        }
        if allowed.is_some_and(|list| !list.iter().any(|m| m == model)) {
            return Err(ModelRefusal::NotAllowed);
        }
        Ok(found)
    }

    /// Checks a workspace's `allowed_models` for runtime `runtime`: each id must be a platform
    /// model served on the runtime's protocol, listed once.
    ///
    /// # Errors
    /// The first id that is not (with why), for the API's 400.
    pub fn check_allowed_models(&self, runtime: &str, allowed: &[String]) -> Result<(), String> {
        let Some(protocol) = self.runtime(runtime).map(crate::Runtime::protocol) else {
            return Err(format!("the runtime `{runtime}` is not known"));
        };
        for (i, id) in allowed.iter().enumerate() {
            if !self.platform_models_for(protocol).any(|m| m.id() == id) {
                return Err(format!(
                    "`{}` is not a platform model of the {} protocol that a `{runtime}` workspace speaks",
                    crate::text::truncate(id, 80),
                    protocol.as_str()
                ));
            }
            if allowed[..i].contains(id) {
                return Err(format!("`{id}` is listed twice"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn registry() -> Registry {
        match Registry::embedded() {
            Ok(r) => r,
            Err(e) => panic!("embedded registry: {e}"),
        }
    }

    fn ok(r: &Registry, runtime: &str, allowed: Option<&[String]>, route: Protocol, model: &str) -> bool {
        r.model_access(runtime, allowed, route, model).is_ok()
    }

    #[test]
    fn a_runtime_may_use_the_platform_models_of_its_protocol_on_its_route() {
        let r = registry();
        assert!(ok(&r, "claude-code", None, Protocol::Anthropic, "platform/sonnet"));
        assert!(ok(&r, "codex", None, Protocol::Openai, "platform/gpt"));
        assert!(ok(&r, "openai-compatible", None, Protocol::Openai, "platform/gpt-mini"));
    }

    #[test]
    fn a_claude_code_token_does_not_buy_gpt_on_the_openai_route() {
        let r = registry();
        assert_eq!(
            r.model_access("claude-code", None, Protocol::Openai, "platform/gpt").err(),
            Some(ModelRefusal::WrongProtocol { runtime: Some(Protocol::Anthropic) })
        );
        assert_eq!(
            r.model_access("codex", None, Protocol::Anthropic, "platform/sonnet").err(),
            Some(ModelRefusal::WrongProtocol { runtime: Some(Protocol::Openai) })
        );
    }

    #[test]
    fn an_unknown_runtime_is_refused_not_let_through() {
        let r = registry();
        assert_eq!(
            r.model_access("gemini-cli", None, Protocol::Anthropic, "platform/sonnet").err(),
            Some(ModelRefusal::WrongProtocol { runtime: None })
        );
    }

    #[test]
    fn a_model_not_served_on_the_route_is_not_served_whoever_asks() {
        let r = registry();
        for runtime in ["claude-code", "codex"] {
            assert_eq!(
                r.model_access(runtime, None, Protocol::Anthropic, "platform/gpt").err(),
                Some(ModelRefusal::NotServed)
            );
            assert_eq!(
                r.model_access(runtime, None, Protocol::Anthropic, "sonnet").err(),
                Some(ModelRefusal::NotServed)
            );
        }
    }

    #[test]
    fn allowed_models_narrows_the_default() {
        let r = registry();
        let allowed = vec!["platform/haiku".to_owned()];
        assert!(ok(&r, "claude-code", Some(&allowed), Protocol::Anthropic, "platform/haiku"));
        assert_eq!(
            r.model_access("claude-code", Some(&allowed), Protocol::Anthropic, "platform/opus").err(),
            Some(ModelRefusal::NotAllowed)
        );
        // Listing a model of another protocol does not widen the default.
        let wider = vec!["platform/gpt".to_owned(), "platform/haiku".to_owned()];
        assert!(!ok(&r, "claude-code", Some(&wider), Protocol::Openai, "platform/gpt"));
        // An empty list allows nothing.
        assert!(!ok(&r, "claude-code", Some(&[]), Protocol::Anthropic, "platform/haiku"));
    }

    #[test]
    fn allowed_models_must_be_platform_models_of_the_runtimes_protocol() {
        let r = registry();
        let list = |ids: &[&str]| ids.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(r.check_allowed_models("claude-code", &list(&["platform/sonnet", "platform/haiku"])), Ok(()));
        assert_eq!(r.check_allowed_models("codex", &list(&[])), Ok(()));
        assert!(r.check_allowed_models("claude-code", &list(&["platform/gpt"])).is_err());
        assert!(r.check_allowed_models("codex", &list(&["platform/sonnet"])).is_err());
        assert!(r.check_allowed_models("claude-code", &list(&["sonnet"])).is_err());
        assert!(r.check_allowed_models("claude-code", &list(&["platform/haiku", "platform/haiku"])).is_err());
        assert!(r.check_allowed_models("unknown", &list(&[])).is_err());
    }

    const MODELS: &[&str] = &[
        "platform/opus",
        "platform/sonnet",
        "platform/haiku",
        "platform/gpt",
        "platform/gpt-mini",
        "sonnet",
        "gpt-5",
        "",
    ];
    const RUNTIMES: &[&str] = &["claude-code", "codex", "openai-compatible", "unknown"];

    proptest! {
        /// No workspace is ever admitted to a model outside its runtime's protocol, outside the
        /// route's protocol, or outside its `allowed_models`; and within all three it is admitted.
        #[test]
        fn admitted_exactly_within_protocol_and_allowed_models(
            runtime in proptest::sample::select(RUNTIMES),
            route in proptest::sample::select(&[Protocol::Anthropic, Protocol::Openai][..]),
            model in proptest::sample::select(MODELS),
            allowed in proptest::option::of(proptest::sample::subsequence(MODELS, 0..=MODELS.len())),
        ) {
            let r = registry();
            let allowed: Option<Vec<String>> = allowed.map(|l| l.into_iter().map(str::to_owned).collect());
            let decision = r.model_access(runtime, allowed.as_deref(), route, model);
            let upstream_protocol = r.platform_model(model).map(|(_, u)| u.protocol());
            let runtime_protocol = r.runtime(runtime).map(crate::Runtime::protocol);
            let listed = allowed.as_ref().is_none_or(|l| l.iter().any(|m| m == model));
            let expected = upstream_protocol == Some(route) && runtime_protocol == Some(route) && listed;
            prop_assert_eq!(decision.is_ok(), expected);
            if let Ok((served, upstream)) = decision {
                prop_assert_eq!(upstream.protocol(), route);
                prop_assert_eq!(Some(route), runtime_protocol);
                prop_assert!(r.platform_models_for(route).any(|m| m.id() == model));
                prop_assert_eq!(served.upstream(), upstream.name());
            }
        }
    }
}
