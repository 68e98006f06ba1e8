//! Where a server is: one base URL gives both the WebSocket URL and the HTTP base.
//!
//! Apps store one address per server (`http://host:7070`, `ws://host:7070`, or the
//! WebSocket URL itself, `ws://host:7070/ws`; `https://`/`wss://` for TLS); this module
//! derives the rest. No IO.

use std::fmt;

use tincan_protocol::WS_PATH;

use crate::error::SdkError;

/// A server's addresses, derived from one base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Whether the server speaks TLS (`https://`, `wss://`).
    tls: bool,
    /// `host:port`.
    authority: String,
    /// Path prefix under which the server is mounted (`""`, or `/tincan` behind a proxy).
    prefix: String,
}

impl Endpoint {
    /// Parses a base URL.
    ///
    /// Accepts `http://`, `ws://`, `https://`, `wss://` or no scheme (taken as plain
    /// http), an optional path prefix, and an optional trailing [`WS_PATH`] (so the
    /// WebSocket URL itself works). `https`/`wss` mean TLS for both.
    ///
    /// ```
    /// use tincan_sdk::Endpoint;
    /// let e = Endpoint::parse("http://127.0.0.1:7070").unwrap();
    /// assert_eq!(e.ws_url(), "ws://127.0.0.1:7070/ws");
    /// assert_eq!(e.http_url("/api/login"), "http://127.0.0.1:7070/api/login");
    /// ```
    pub fn parse(url: &str) -> Result<Endpoint, SdkError> {
        let bad = |why: &str| SdkError::InvalidArgument(format!("server URL {url:?}: {why}"));
        let trimmed = url.trim();
        let (tls, rest) = match trimmed.split_once("://") {
            Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
                "http" | "ws" => (false, rest),
                "https" | "wss" => (true, rest),
                _ => return Err(bad("the scheme must be http://, ws://, https:// or wss://")),
            },
            None => (false, trimmed),
        };
        if rest.contains(['?', '#']) {
            return Err(bad("query strings and fragments are not allowed"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(bad("the host is missing"));
        }
        if authority.contains(['@', ' ']) {
            return Err(bad("the host may not hold '@' or spaces"));
        }
        let mut prefix = path.trim_end_matches('/');
        if let Some(p) = prefix.strip_suffix(WS_PATH) {
            prefix = p.trim_end_matches('/');
        }
        Ok(Endpoint {
            tls,
            authority: authority.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// The WebSocket URL: `ws://host:port[/prefix]/ws` (`wss://` with TLS).
    pub fn ws_url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}{}{}", self.authority, self.prefix, WS_PATH)
    }

    /// The HTTP base: `http://host:port[/prefix]` (`https://` with TLS).
    pub fn http_base(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{}", self.authority, self.prefix)
    }

    /// Whether the server is reached over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The host name or address, without port or brackets (what a certificate names).
    pub fn host(&self) -> &str {
        let a = self.authority.as_str();
        if let Some(rest) = a.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest);
        }
        a.rsplit_once(':').map_or(a, |(h, _)| h)
    }

    /// Whether the host is a loopback name or address (traffic never leaves the machine,
    /// so plain ws is not a risk there).
    pub fn is_loopback(&self) -> bool {
        let h = self.host();
        h.eq_ignore_ascii_case("localhost")
            || h.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// An HTTP URL under the base; `path` starts with `/`.
    pub fn http_url(&self, path: &str) -> String {
        format!("{}{}", self.http_base(), path)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.http_base())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(url: &str) -> (String, String) {
        let e = Endpoint::parse(url).unwrap();
        (e.ws_url(), e.http_base())
    }

    #[test]
    fn http_and_ws_bases_derive_the_same_endpoint() {
        let want = (
            "ws://127.0.0.1:1234/ws".to_owned(),
            "http://127.0.0.1:1234".to_owned(),
        );
        assert_eq!(both("http://127.0.0.1:1234"), want);
        assert_eq!(both("ws://127.0.0.1:1234"), want);
        assert_eq!(both("ws://127.0.0.1:1234/"), want);
        assert_eq!(both("ws://127.0.0.1:1234/ws"), want);
        assert_eq!(both("HTTP://127.0.0.1:1234/ws/"), want);
        assert_eq!(both("127.0.0.1:1234"), want);
        assert_eq!(both("  http://127.0.0.1:1234  "), want);
    }

    #[test]
    fn a_path_prefix_is_kept_for_both() {
        assert_eq!(
            both("http://example.org/tincan/"),
            (
                "ws://example.org/tincan/ws".to_owned(),
                "http://example.org/tincan".to_owned()
            )
        );
        assert_eq!(
            both("ws://example.org/tincan/ws").1,
            "http://example.org/tincan"
        );
    }

    #[test]
    fn http_url_joins_paths() {
        let e = Endpoint::parse("http://h:1").unwrap();
        assert_eq!(e.http_url("/api/register"), "http://h:1/api/register");
    }

    #[test]
    fn tls_schemes_give_wss_and_https() {
        for url in [
            "https://h.example:1",
            "wss://h.example:1/ws",
            "WSS://h.example:1",
        ] {
            let e = Endpoint::parse(url).unwrap();
            assert!(e.is_tls(), "{url}");
            assert_eq!(e.ws_url(), "wss://h.example:1/ws");
            assert_eq!(e.http_base(), "https://h.example:1");
            assert_eq!(e.host(), "h.example");
        }
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for (url, lo) in [
            ("http://127.0.0.1:1", true),
            ("http://localhost:1", true),
            ("http://[::1]:7070", true),
            ("http://10.0.0.2:1", false),
            ("https://calls.example.org", false),
        ] {
            assert_eq!(Endpoint::parse(url).unwrap().is_loopback(), lo, "{url}");
        }
    }

    #[test]
    fn odd_schemes_and_missing_hosts_are_refused() {
        for url in [
            "ftp://h:1",
            "http://",
            "http:///ws",
            "http://h:1/?x=1",
            "http://user@h:1",
        ] {
            let e = Endpoint::parse(url).unwrap_err();
            assert!(matches!(e, SdkError::InvalidArgument(_)), "{url}: {e:?}");
        }
    }
}
