//! Invariant I4's address check: every spelling of the proxy's own address is recognised,
//! and other addresses are not.

use proptest::prelude::*;

use super::PublicUrl;

/// Spellings of the IPv4 loopback address 127.0.0.1 and of the other loopback names.
const LOOPBACK_SPELLINGS: &[&str] = &[
    "127.0.0.1",
    "127.1",
    "127.0.1",
    "2130706433",
    "0x7f.0.0.1",
    "0x7f000001",
    "0177.0.0.1",
    "127.0.0.01",
    "127.255.255.254",
    "localhost",
    "LOCALHOST",
    "LocalHost.",
    "%6c%6f%63%61%6c%68%6f%73%74",
    "tollgate.localhost",
    "[::1]",
    "[0:0:0:0:0:0:0:1]",
    "[0000::0001]",
    "[::ffff:127.0.0.1]",
    "[::FFFF:7f00:1]",
];

/// Upper-cases the letters `mask` selects: the same text in another case.
fn recase(s: &str, mask: u64) -> String {
    s.chars().enumerate().map(|(i, c)| if mask >> (i % 64) & 1 == 1 { c.to_ascii_uppercase() } else { c }).collect()
}

/// Percent-encodes the unreserved characters `mask` selects: the same path, spelt otherwise.
fn encode_some(path: &str, mask: u64) -> String {
    path.chars()
        .enumerate()
        .map(|(i, c)| {
            if c.is_ascii_alphanumeric() && mask >> (i % 64) & 1 == 1 {
                format!("%{:02X}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn suffix() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", "/", "/anthropic", "/openai/v1/", "/v1/messages?beta=true", "#frag", "/x/../y"])
}

proptest! {
    /// The proxy at 127.0.0.1:8080 is recognised in any spelling of its host, scheme case,
    /// path case, percent-encoding, user info and trailing parts.
    #[test]
    fn loopback_proxy_in_any_spelling_is_ours(
        host in prop::sample::select(LOOPBACK_SPELLINGS),
        scheme_mask in any::<u64>(),
        path_mask in any::<u64>(),
        encode_mask in any::<u64>(),
        userinfo in prop::sample::select(vec!["", "user@", "user:pw@"]),
        rest in suffix(),
    ) {
        let ours = PublicUrl::parse("http://127.0.0.1:8080/base").map_err(|e| TestCaseError::fail(e.to_string()))?;
        let path = encode_some(&recase("/base", path_mask), encode_mask);
        let url = format!("{}://{userinfo}{host}:8080{path}{rest}", recase("http", scheme_mask));
        prop_assert!(ours.is_ours(&url), "{url} not recognised as {}", ours.as_str());
    }

    /// A named public URL is recognised with its default port explicit or not, a trailing dot,
    /// any case, and a percent-encoded host.
    #[test]
    fn named_proxy_in_any_spelling_is_ours(
        host_mask in any::<u64>(),
        encode_mask in any::<u64>(),
        port in prop::sample::select(vec!["", ":443"]),
        dot in prop::sample::select(vec!["", "."]),
        rest in suffix(),
    ) {
        let ours = PublicUrl::parse("https://tollgate.example.com").map_err(|e| TestCaseError::fail(e.to_string()))?;
        let host = encode_some(&recase("tollgate.example.com", host_mask), encode_mask);
        let url = format!("https://{host}{dot}{port}{rest}");
        prop_assert!(ours.is_ours(&url), "{url} not recognised as {}", ours.as_str());
    }

    /// Another host, port, scheme or a path outside the public URL's is not ours.
    #[test]
    fn other_addresses_are_not_ours(
        host in "[a-z][a-z0-9-]{0,20}(\\.[a-z][a-z0-9-]{0,10}){0,3}",
        octets in prop::array::uniform4(any::<u8>()),
        port in 1u16..,
        rest in suffix(),
    ) {
        let named = PublicUrl::parse("https://tollgate.example.com/base").map_err(|e| TestCaseError::fail(e.to_string()))?;
        let loopback = PublicUrl::parse("http://127.0.0.1:8080").map_err(|e| TestCaseError::fail(e.to_string()))?;
        let [a, b, c, d] = octets;
        let mut not_ours = vec![
            (&named, format!("http://tollgate.example.com/base{rest}")),
            (&named, format!("https://tollgate.example.com/basement{rest}")),
        ];
        if host != "tollgate.example.com" {
            not_ours.push((&named, format!("https://{host}/base{rest}")));
        }
        if port != 443 {
            not_ours.push((&named, format!("https://tollgate.example.com:{port}/base{rest}")));
        }
        if a != 127 && [a, b, c, d] != [0, 0, 0, 0] {
            not_ours.push((&loopback, format!("http://{a}.{b}.{c}.{d}:8080{rest}")));
        }
        if port != 8080 {
            not_ours.push((&loopback, format!("http://127.0.0.1:{port}{rest}")));
            not_ours.push((&loopback, format!("http://localhost:{port}{rest}")));
        }
        for (ours, url) in not_ours {
            prop_assert!(!ours.is_ours(&url), "{} recognised as {}", url, ours.as_str());
        }
    }
}

#[test]
fn public_url_keeps_its_spelling_and_refuses_what_url_parsing_refuses() {
    let u = PublicUrl::parse("http://127.1:8080/").map_err(|e| e.to_string());
    assert_eq!(u.as_ref().map(PublicUrl::as_str), Ok("http://127.1:8080"), "as_str is what was configured");
    for bad in ["http://h:99999", "http://[::1", "http://exa mple.com"] {
        assert!(PublicUrl::parse(bad).is_err(), "{bad}");
    }
}
