//! Alert webhook URLs (DESIGN.md section 15): `TOLLGATE_ALERT_WEBHOOK_URL` and an org's
//! `alert_webhook_url`.
//!
//! A webhook URL is a bearer credential (a Slack incoming-webhook URL grants posting to a
//! channel), so it is held like one: its `Debug` output and [`WebhookUrl::redacted`] show the
//! scheme and host only, and only [`WebhookUrl::expose`] gives the whole text, for the request.

use std::fmt;

/// The longest webhook URL accepted, in bytes.
pub const MAX_WEBHOOK_URL_BYTES: usize = 2048;

/// The grammar of an accepted URL, as the API's OpenAPI document states it (a test ties the
/// two): `http` or `https`; a host that is a dotted IPv4 address or a DNS name whose last
/// label starts with a letter (so it is never read as a number) and whose labels have no
/// `--` (no punycode to decode); an optional port up to 65535; an optional path (query
/// included) of printable ASCII. What matches it, the `url` crate parses.
pub const WEBHOOK_URL_PATTERN: &str = r"^https?://(((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])|([A-Za-z0-9]+(-[A-Za-z0-9]+)*\.)*[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*)(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|0))?(/[!-~]*)?$";

/// [`WEBHOOK_URL_PATTERN`], compiled once.
static GRAMMAR: std::sync::LazyLock<Option<regex::Regex>> =
    std::sync::LazyLock::new(|| regex::Regex::new(WEBHOOK_URL_PATTERN).ok());

/// An absolute `http` or `https` URL with a host, at most [`MAX_WEBHOOK_URL_BYTES`] bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    text: String,
    /// `scheme://host[:port]`, what may be logged and shown.
    origin: String,
}

/// Why a string is not a usable webhook URL (the message never quotes it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookUrlError {
    /// Longer than [`MAX_WEBHOOK_URL_BYTES`].
    #[error("a webhook URL is at most {MAX_WEBHOOK_URL_BYTES} bytes; this one has {0}")]
    TooLong(usize),
    /// Not an absolute http(s) URL with a host.
    #[error("a webhook URL must be an absolute http:// or https:// URL with a host")]
    Invalid,
}

impl WebhookUrl {
    /// Parses `s` exactly as given (no trimming): at most [`MAX_WEBHOOK_URL_BYTES`] bytes
    /// matching [`WEBHOOK_URL_PATTERN`] (an absolute `http`/`https` URL with a host, printable
    /// ASCII, no user or password).
    pub fn parse(s: &str) -> Result<Self, WebhookUrlError> {
        if s.len() > MAX_WEBHOOK_URL_BYTES {
            return Err(WebhookUrlError::TooLong(s.len()));
        }
        if !GRAMMAR.as_ref().is_some_and(|g| g.is_match(s)) {
            return Err(WebhookUrlError::Invalid);
        }
        let url = url::Url::parse(s).map_err(|_| WebhookUrlError::Invalid)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(WebhookUrlError::Invalid);
        }
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or(WebhookUrlError::Invalid)?;
        let origin = match url.port() {
            Some(port) => format!("{}://{host}:{port}", url.scheme()),
            None => format!("{}://{host}", url.scheme()),
        };
        Ok(Self { text: s.to_owned(), origin })
    }

    /// The whole URL, path and query included: for sending the request and storing it only,
    /// never for a log, an error or an event.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// `scheme://host[:port]`: the part that may be logged, shown and recorded.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// What the API returns and the dashboard shows: the origin, and `/…` when the URL has
    /// more (the secret part of a Slack URL is its path).
    pub fn redacted(&self) -> String {
        if self.text.len() > self.origin.len() + 1 || !self.text.starts_with(&self.origin) {
            format!("{}/…", self.origin)
        } else {
            self.origin.clone()
        }
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("WebhookUrl").field(&self.redacted()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLACK: &str = "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX";

    #[test]
    fn accepts_http_and_https_urls_with_a_host() {
        let u = WebhookUrl::parse(SLACK).unwrap();
        assert_eq!(u.expose(), SLACK);
        assert_eq!(u.origin(), "https://hooks.slack.com");
        assert_eq!(u.redacted(), "https://hooks.slack.com/…");
        let local = WebhookUrl::parse("http://127.0.0.1:9000/hook?token=abc").unwrap();
        assert_eq!(local.origin(), "http://127.0.0.1:9000");
        assert_eq!(WebhookUrl::parse("https://example.com/").unwrap().redacted(), "https://example.com");
        assert_eq!(WebhookUrl::parse("https://example.com").unwrap().redacted(), "https://example.com");
        for ok in [
            "http://localhost:0",
            "https://a-b.c1.example:65535/x?y=1#z",
            "http://255.255.255.255/",
            "https://h/\\%zz{}<>\"|",
        ] {
            assert!(WebhookUrl::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_what_is_not_an_absolute_http_url() {
        for bad in [
            "",
            "hooks.slack.com/x",
            "/relative",
            "ftp://example.com/x",
            "file:///etc/passwd",
            "https://",
            "http:///path",
            "https://exa mple.com",
            "https://example.com/\n",
            " https://example.com",
            "mailto:a@example.com",
        ] {
            assert_eq!(WebhookUrl::parse(bad), Err(WebhookUrlError::Invalid), "{bad:?}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_WEBHOOK_URL_BYTES));
        assert!(matches!(WebhookUrl::parse(&long), Err(WebhookUrlError::TooLong(_))));
    }

    /// The path and query of a Slack URL are the credential: neither `Debug` nor an error
    /// shows them, and credentials in the authority are not in the origin.
    #[test]
    fn never_shows_the_secret_part() {
        let u = WebhookUrl::parse(SLACK).unwrap();
        assert!(!format!("{u:?}").contains("XXXX"), "{u:?}");
        assert_eq!(WebhookUrl::parse("https://user:pass@example.com/x"), Err(WebhookUrlError::Invalid));
        let err = WebhookUrl::parse("ftp://secret-path.example/abc").unwrap_err();
        assert!(!err.to_string().contains("secret-path"));
    }
}
