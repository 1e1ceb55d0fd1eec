//! Workspace tokens: `tg_ws_` followed by 43 base62 characters (at least 256 bits).
//!
//! Minting takes its randomness as an argument so that this crate stays free of any
//! source of randomness; the control plane passes the operating system's CSPRNG.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// The prefix of every workspace token.
pub const WORKSPACE_TOKEN_PREFIX: &str = "tg_ws_";
/// The number of base62 characters after the prefix: 62^43 > 2^256.
pub const TOKEN_BODY_LEN: usize = 43;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a string is not a workspace token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Does not have the `tg_ws_` + 43 base62 shape. The message never repeats the input.
    #[error("not a workspace token: expected `tg_ws_` followed by 43 letters and digits")]
    Malformed,
}

/// A workspace token. Redacted in `Debug`; only its hash is ever stored.
#[derive(Clone)]
pub struct WorkspaceToken(SecretString);

impl WorkspaceToken {
    /// Accepts exactly `tg_ws_` followed by 43 ASCII letters or digits.
    pub fn parse(s: &str) -> Result<Self, TokenError> {
        if has_token_shape(s, WORKSPACE_TOKEN_PREFIX) {
            Ok(Self(SecretString::from(s)))
        } else {
            Err(TokenError::Malformed)
        }
    }

    /// Mints a token from `fill`, which must fill its buffer with uniformly random bytes
    /// (the caller passes a CSPRNG). Uses rejection sampling, so every character is uniform.
    pub fn mint(fill: impl FnMut(&mut [u8])) -> Self {
        Self(SecretString::from(mint_body(WORKSPACE_TOKEN_PREFIX, fill)))
    }

    /// The token text, for the one place that needs it: the env plan sent to its workspace.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for WorkspaceToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WorkspaceToken(<redacted>)")
    }
}

/// Whether `s` looks like a Claude subscription OAuth token (`sk-ant-oat...`), the credential
/// seeds 000 and 004 found where a workspace token belonged.
pub fn is_oauth_shaped(s: &str) -> bool {
    s.trim_start().starts_with("sk-ant-oat")
}

/// Whether `s` is `prefix` followed by exactly 43 base62 characters.
pub fn has_token_shape(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix)
        .is_some_and(|body| body.len() == TOKEN_BODY_LEN && body.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// `prefix` followed by 43 uniformly random base62 characters drawn from `fill`.
pub fn mint_body(prefix: &str, mut fill: impl FnMut(&mut [u8])) -> String {
    let mut out = String::with_capacity(prefix.len() + TOKEN_BODY_LEN);
    out.push_str(prefix);
    let mut buf = [0u8; 64];
    let mut produced = 0;
    while produced < TOKEN_BODY_LEN {
        fill(&mut buf);
        for &b in &buf {
            // 248 = 4 * 62: bytes at or above it would bias the distribution.
            if b < 248 && produced < TOKEN_BODY_LEN {
                out.push(char::from(BASE62[usize::from(b % 62)]));
                produced += 1;
            }
        }
    }
    zeroize::Zeroize::zeroize(&mut buf);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes from 248 up would bias base62 (248 = 4 * 62): they are skipped, not mapped.
    #[test]
    fn biased_bytes_are_skipped() {
        let body = mint_body("p_", |buf| {
            for (i, b) in buf.iter_mut().enumerate() {
                // 248..=255 first, then 1, 2, 3, ...
                *b = if i < 8 { 248 + u8::try_from(i).unwrap() } else { u8::try_from(i - 7).unwrap() };
            }
        });
        let expected: String = (1..=43).map(|i: usize| char::from(BASE62[i % 62])).collect();
        assert_eq!(body, format!("p_{expected}"));
    }

    #[test]
    fn parse_accepts_only_the_exact_shape() {
        let good = format!("tg_ws_{}", "a1B2".repeat(11).get(..43).unwrap_or_default());
        assert!(WorkspaceToken::parse(&good).is_ok());
        assert_eq!(WorkspaceToken::parse("tg_ws_short").err(), Some(TokenError::Malformed));
        assert!(WorkspaceToken::parse(&format!("{good}x")).is_err());
        assert!(WorkspaceToken::parse(&good.replace("tg_ws_", "tg_xx_")).is_err());
        assert!(WorkspaceToken::parse(&format!("tg_ws_{}-", &good[6..48])).is_err());
        assert!(WorkspaceToken::parse("sk-ant-oat01-abcdef").is_err());
    }

    #[test]
    fn minted_tokens_parse_and_differ() {
        let mut counter = 0u8;
        let a = WorkspaceToken::mint(|buf| {
            for b in buf.iter_mut() {
                *b = counter;
                counter = counter.wrapping_add(7);
            }
        });
        assert!(WorkspaceToken::parse(a.expose()).is_ok(), "{}", a.expose().len());
        let b = WorkspaceToken::mint(|buf| buf.fill(3));
        assert_eq!(b.expose(), format!("tg_ws_{}", "3".repeat(43)));
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn minting_rejects_biased_bytes() {
        // Alternate a rejected byte (255) with byte 61 ('z'): only the 'z's are used.
        let mut flip = false;
        let t = WorkspaceToken::mint(|buf| {
            for b in buf.iter_mut() {
                flip = !flip;
                *b = if flip { 255 } else { 61 };
            }
        });
        assert_eq!(t.expose(), format!("tg_ws_{}", "z".repeat(43)));
        // Exactly 248 is rejected, 247 is accepted (247 % 62 = 61).
        let t = WorkspaceToken::mint(|buf| {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = if i % 2 == 0 { 248 } else { 247 };
            }
        });
        assert_eq!(t.expose(), format!("tg_ws_{}", "z".repeat(43)));
    }

    #[test]
    fn oauth_shape() {
        assert!(is_oauth_shaped("sk-ant-oat01-abc") && is_oauth_shaped(" sk-ant-oat01-x"));
        assert!(!is_oauth_shaped("sk-ant-api03-abc") && !is_oauth_shaped("tg_ws_x"));
    }

    #[test]
    fn debug_is_redacted() {
        let t = WorkspaceToken::mint(|buf| buf.fill(1));
        assert_eq!(format!("{t:?}"), "WorkspaceToken(<redacted>)");
    }
}
