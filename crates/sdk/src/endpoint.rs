//! Where a server is: one base URL gives both the WebSocket URL and the HTTP base.
//!
//! Apps store one address per server (`http://host:7070`, `ws://host:7070`, or the
//! WebSocket URL itself, `ws://host:7070/ws`); this module derives the rest. No IO.

use std::fmt;

use tincan_protocol::WS_PATH;

use crate::error::SdkError;

/// A server's addresses, derived from one base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port`.
    authority: String,
    /// Path prefix under which the server is mounted (`""`, or `/tincan` behind a proxy).
    prefix: String,
}

impl Endpoint {
    /// Parses a base URL.
    ///
    /// Accepts `http://`, `ws://` or no scheme (taken as plain http), an optional path
    /// prefix, and an optional trailing [`WS_PATH`] (so the WebSocket URL itself works).
    /// TLS (`https://`, `wss://`) is refused: this build has no TLS stack.
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
        let rest = match trimmed.split_once("://") {
            Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
                "http" | "ws" => rest,
                "https" | "wss" => {
                    return Err(bad(
                        "TLS is not supported by this build; use http:// or ws://",
                    ))
                }
                _ => return Err(bad("the scheme must be http:// or ws://")),
            },
            None => trimmed,
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
            authority: authority.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// The WebSocket URL: `ws://host:port[/prefix]/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}{}{}", self.authority, self.prefix, WS_PATH)
    }

    /// The HTTP base: `http://host:port[/prefix]`.
    pub fn http_base(&self) -> String {
        format!("http://{}{}", self.authority, self.prefix)
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
    fn tls_odd_schemes_and_missing_hosts_are_refused() {
        for url in [
            "https://h:1",
            "wss://h:1",
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
