//! The public URL of this Tollgate, and whether a URL points at it (invariant I4).

use std::net::IpAddr;

/// The URL workspaces use to reach this Tollgate: `http(s)://host[:port][/path]`, no
/// trailing slash, no query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicUrl(String);

/// Why a string is not a usable public URL.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the public URL must be http:// or https:// with a host and no query or fragment")]
pub struct PublicUrlError;

impl PublicUrl {
    /// Parses an absolute http(s) URL; strips trailing slashes.
    pub fn parse(s: &str) -> Result<Self, PublicUrlError> {
        let trimmed = s.trim_end_matches('/');
        let rest =
            trimmed.strip_prefix("http://").or_else(|| trimmed.strip_prefix("https://")).ok_or(PublicUrlError)?;
        if rest.is_empty() || rest.starts_with('/') || rest.contains(['?', '#', ' ', '\t', '\n']) {
            return Err(PublicUrlError);
        }
        if Origin::of(trimmed).is_none() {
            return Err(PublicUrlError);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The URL as a string, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The proxy's base URL for a runtime speaking `protocol`.
    pub fn proxy_url(&self, protocol: crate::registry::Protocol) -> String {
        format!("{}{}", self.0, protocol.proxy_path())
    }

    /// Whether `url` points at this Tollgate: the same origin and a path at or under the
    /// public URL's path. Both are parsed as URLs (WHATWG), so every spelling of one address
    /// is the same address: case, `127.1`, `[::1]` in any form, an explicit default port, a
    /// trailing dot, a percent-encoded host or path, `..` segments, user info. Paths compare
    /// without regard to case, and all loopback hosts (`localhost`, `127.0.0.0/8`, `[::1]`)
    /// are one host: a near-miss is treated as ours, which fails closed (the BYOK routing
    /// value is dropped). A string that is not an http(s) URL is not ours.
    pub fn is_ours(&self, url: &str) -> bool {
        let (Some(ours), Some(theirs)) = (Origin::of(&self.0), Origin::of(url.trim())) else {
            return false;
        };
        if ours.scheme != theirs.scheme || ours.port != theirs.port || !ours.host.same_as(&theirs.host) {
            return false;
        }
        // Paths compare without regard to case too: a front proxy may route them so.
        let path = theirs.path.trim_end_matches('/');
        let base = ours.path.trim_end_matches('/');
        path.strip_prefix(base).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// The parts of an absolute http(s) URL that decide where it points, normalised.
struct Origin {
    scheme: String,
    host: Host,
    port: u16,
    /// Percent-decoded and lower-cased.
    path: String,
}

/// A host, with a trailing dot of a domain removed.
#[derive(PartialEq, Eq)]
enum Host {
    Domain(String),
    Ip(IpAddr),
}

impl Host {
    /// Whether this host reaches the machine itself (RFC 6761 `localhost`, loopback IPs).
    fn is_loopback(&self) -> bool {
        match self {
            Self::Domain(d) => d == "localhost" || d.ends_with(".localhost"),
            Self::Ip(IpAddr::V4(ip)) => ip.is_loopback(),
            Self::Ip(IpAddr::V6(ip)) => ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        }
    }

    fn same_as(&self, other: &Self) -> bool {
        self == other || (self.is_loopback() && other.is_loopback())
    }
}

impl Origin {
    fn of(url: &str) -> Option<Self> {
        let parsed = url::Url::parse(url).ok()?;
        let scheme = parsed.scheme().to_owned();
        if scheme != "http" && scheme != "https" {
            return None;
        }
        let host = match parsed.host()? {
            url::Host::Domain(d) => Host::Domain(d.trim_end_matches('.').to_ascii_lowercase()),
            url::Host::Ipv4(ip) => Host::Ip(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => Host::Ip(IpAddr::V6(ip)),
        };
        if host == Host::Domain(String::new()) {
            return None;
        }
        let port = parsed.port_or_known_default()?;
        let path = percent_encoding::percent_decode_str(parsed.path()).decode_utf8_lossy().to_lowercase();
        Some(Self { scheme, host, port, path })
    }
}

#[cfg(test)]
mod tests;
