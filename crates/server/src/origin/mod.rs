//! Who may talk to this server over HTTP: the defence against cross-site requests and
//! DNS rebinding (docs/security.md), and the embedded server's per-launch secret.
//!
//! A web page the user visits can make the browser send requests to any server the
//! browser reaches, the user's own machine included. What only a browser adds gives it
//! away: an `Origin` header (every WebSocket upgrade and every POST from a page carries
//! one), a `Host` that names the attacker's domain (DNS rebinding points that domain at
//! 127.0.0.1), or a body that is not declared JSON (the only kind a page may POST to
//! another origin without asking first). Native clients (the SDK, the CLI) send no
//! `Origin`, their own `Host`, and `application/json`.
//!
//! [`Policy::check`] decides from the request's method, path and headers alone (no IO,
//! unit-tested here); [`guard`] is the axum middleware that reads them and turns a
//! [`Refusal`] into the usual `{errCode, errMsg, data}` reply.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use rand::RngCore;
use serde::Deserialize;
use tracing::debug;

use tincan_protocol::ErrCode;
pub use tincan_protocol::LOCAL_SECRET_HEADER;

/// Names of this machine that every loopback-bound server answers to, on any port.
pub const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// Most characters of a refused header value echoed in the error message.
const ECHO_LIMIT: usize = 100;

/// A secret the embedded server's own app holds: `POST /api/register` and
/// `POST /api/login` need it in [`LOCAL_SECRET_HEADER`]. Made at each launch, kept only
/// in memory, never logged (its `Debug` hides it) and never given to the page.
#[derive(Clone)]
pub struct LocalSecret(Arc<str>);

impl LocalSecret {
    /// 32 random bytes, base64url: fresh for each launch of the app.
    pub fn generate() -> LocalSecret {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        LocalSecret(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(bytes)
                .into(),
        )
    }

    /// A secret made elsewhere (another instance of the app published it).
    pub fn new(secret: &str) -> LocalSecret {
        LocalSecret(secret.into())
    }

    /// The value to send in [`LOCAL_SECRET_HEADER`]. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `given` is this secret, in time that does not depend on where they differ.
    fn matches(&self, given: &[u8]) -> bool {
        let want = self.0.as_bytes();
        // The length is not secret (every secret is 43 characters).
        want.len() == given.len() && want.iter().zip(given).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0
    }
}

impl fmt::Debug for LocalSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocalSecret(<hidden>)")
    }
}

/// A browser origin a server lets in: `scheme://host[:port]`, as browsers send it
/// (lowercase, no path, no trailing slash). `null` and `*` are refused: an opaque
/// origin (a sandboxed frame, a `file:` page) cannot be told apart from any other.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct AllowedOrigin(String);

impl FromStr for AllowedOrigin {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().trim_end_matches('/').to_ascii_lowercase();
        let bad = |why: &str| Err(format!("allowed origin {s:?}: {why}"));
        if s == "null" || s == "*" {
            return bad("only named origins can be allowed (scheme://host[:port])");
        }
        let Some((scheme, rest)) = s.split_once("://") else {
            return bad("write it as scheme://host[:port], e.g. https://app.example.org");
        };
        if scheme.is_empty() || rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
            return bad("write it as scheme://host[:port], without a path");
        }
        Ok(AllowedOrigin(s))
    }
}

impl TryFrom<String> for AllowedOrigin {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for AllowedOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A `Host` a server answers to: a name (any port), a `name:port`, or `*` (any host).
/// IPv6 addresses are written in brackets: `[::1]`, `[::1]:7070`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct HostPattern {
    /// Lowercase name; `*` for any.
    name: String,
    /// `None`: any port.
    port: Option<u16>,
}

impl HostPattern {
    /// `name` on any port.
    pub fn any_port(name: &str) -> HostPattern {
        HostPattern {
            name: name.to_ascii_lowercase(),
            port: None,
        }
    }

    /// `name` on `port` only.
    pub fn with_port(name: &str, port: u16) -> HostPattern {
        HostPattern {
            name: name.to_ascii_lowercase(),
            port: Some(port),
        }
    }

    fn is_any(&self) -> bool {
        self.name == "*"
    }

    fn matches(&self, name: &str, port: Option<u16>) -> bool {
        self.name == name && (self.port.is_none() || self.port == port)
    }
}

impl FromStr for HostPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "*" {
            return Ok(HostPattern::any_port("*"));
        }
        split_host(s)
            .map(|(name, port)| HostPattern { name, port })
            .ok_or_else(|| format!("allowed host {s:?}: write it as name or name:port"))
    }
}

impl TryFrom<String> for HostPattern {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// Splits a `Host` value into a lowercase name and an optional port; `None` when it is
/// not one (empty, bad port, characters no host name has).
fn split_host(host: &str) -> Option<(String, Option<u16>)> {
    let host = host.trim();
    let (name, port) = if host.starts_with('[') {
        let end = host.find(']')?;
        let (name, rest) = host.split_at(end + 1);
        match rest {
            "" => (name, None),
            _ => (name, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    if name.is_empty() || name.contains(['/', '@', ' ', '?', '#', '\\']) {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    Some((name.to_ascii_lowercase(), port))
}

/// The `Host` values a server answers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRule {
    /// Any host: a server on the network is reached by many names (addresses, DNS
    /// names, proxies), and the `Origin` check already stops pages.
    Any,
    /// Only these.
    Only(Vec<HostPattern>),
}

/// Why a request was refused before it reached its handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The `Host` is not one of this server's names (DNS rebinding).
    ForeignHost(String),
    /// The request comes from a web page whose origin is not allowed.
    ForeignOrigin(String),
    /// A POST whose body is not declared `application/json` (what a page may send to
    /// another origin without a CORS preflight); `None` when no type was given.
    NotJson(Option<String>),
    /// An account request without this embedded server's secret.
    NoLocalSecret,
}

impl Refusal {
    /// The HTTP status of the reply.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::NotJson(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::FORBIDDEN,
        }
    }

    /// The `errCode` of the reply.
    pub fn code(&self) -> ErrCode {
        match self {
            Refusal::ForeignHost(_) | Refusal::ForeignOrigin(_) => ErrCode::OriginRefused,
            Refusal::NotJson(_) => ErrCode::Args,
            Refusal::NoLocalSecret => ErrCode::NoPermission,
        }
    }

    /// The `errMsg`: what was wrong and what to do.
    pub fn message(&self) -> String {
        match self {
            Refusal::ForeignHost(h) => format!(
                "this server does not answer to Host {:?} (a defence against DNS rebinding); \
                 reach it by one of its own names, or ask its operator to add this one to \
                 --allowed-hosts",
                echo(h)
            ),
            Refusal::ForeignOrigin(o) => format!(
                "requests from web pages are refused: Origin {:?} is not allowed on this \
                 server (its operator may list it in --allowed-origins)",
                echo(o)
            ),
            Refusal::NotJson(Some(t)) => format!(
                "the body must be JSON sent with Content-Type: application/json (got {:?})",
                echo(t)
            ),
            Refusal::NotJson(None) => {
                "the body must be JSON sent with Content-Type: application/json (none given)".into()
            }
            Refusal::NoLocalSecret => "this local server only accepts sign-ins and new \
                                       accounts from the app that started it"
                .into(),
        }
    }
}

/// A header value as it may appear in a message: at most [`ECHO_LIMIT`] characters.
fn echo(value: &str) -> String {
    value.chars().take(ECHO_LIMIT).collect()
}

/// What [`Policy::check`] looks at in a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestFacts<'a> {
    /// `GET`, `POST`, …
    pub method: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// The `Host` header (or the request's authority); `None` when absent.
    pub host: Option<&'a str>,
    /// The `Origin` header; `None` when absent.
    pub origin: Option<&'a str>,
    /// The `Content-Type` header.
    pub content_type: Option<&'a str>,
    /// The [`LOCAL_SECRET_HEADER`] header.
    pub local_secret: Option<&'a [u8]>,
}

/// The paths that hand out login tokens, which the local secret guards.
const ACCOUNT_PATHS: [&str; 2] = ["/api/register", "/api/login"];

/// Who may talk to a server over HTTP.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Browser origins let in; a request with any other `Origin` is refused.
    pub origins: Vec<AllowedOrigin>,
    /// The `Host` values answered.
    pub hosts: HostRule,
    /// When set, account requests must carry it.
    pub local_secret: Option<LocalSecret>,
}

impl Policy {
    /// The policy for a server listening on `addr`. `hosts` `None` means the default:
    /// a loopback listener answers only to [`LOOPBACK_HOSTS`] (plus the host of
    /// `public_url`, for a proxy on the same machine that forwards its own name); any
    /// other listener answers to any host. A `*` in `hosts` means any host.
    pub fn new(
        origins: Vec<AllowedOrigin>,
        hosts: Option<Vec<HostPattern>>,
        local_secret: Option<LocalSecret>,
        addr: SocketAddr,
        public_url: Option<&str>,
    ) -> Policy {
        let hosts = match hosts {
            Some(list) if list.iter().any(HostPattern::is_any) => HostRule::Any,
            Some(list) => HostRule::Only(list),
            None if addr.ip().is_loopback() => {
                let mut list: Vec<HostPattern> = LOOPBACK_HOSTS
                    .iter()
                    .map(|h| HostPattern::any_port(h))
                    .collect();
                if let Some((name, _)) = public_url.and_then(url_host).and_then(split_host) {
                    list.push(HostPattern { name, port: None });
                }
                HostRule::Only(list)
            }
            None => HostRule::Any,
        };
        Policy {
            origins,
            hosts,
            local_secret,
        }
    }

    /// Whether a request may go on to its handler: its `Host`, then its `Origin`, then,
    /// for a POST, its declared body type, then, on an embedded server, its secret.
    pub fn check(&self, req: &RequestFacts<'_>) -> Result<(), Refusal> {
        // No Host at all is not a browser (every browser request has one).
        if let (HostRule::Only(list), Some(host)) = (&self.hosts, req.host) {
            let known = split_host(host)
                .is_some_and(|(name, port)| list.iter().any(|p| p.matches(&name, port)));
            if !known {
                return Err(Refusal::ForeignHost(host.to_owned()));
            }
        }
        if let Some(origin) = req.origin {
            let o = origin.trim().trim_end_matches('/').to_ascii_lowercase();
            if !self.origins.iter().any(|a| a.0 == o) {
                return Err(Refusal::ForeignOrigin(origin.to_owned()));
            }
        }
        if req.method.eq_ignore_ascii_case("POST") && !is_json(req.content_type) {
            return Err(Refusal::NotJson(req.content_type.map(str::to_owned)));
        }
        if let Some(secret) = &self.local_secret {
            if ACCOUNT_PATHS.contains(&req.path)
                && !req.local_secret.is_some_and(|given| secret.matches(given))
            {
                return Err(Refusal::NoLocalSecret);
            }
        }
        Ok(())
    }
}

/// Whether a `Content-Type` is JSON: `application/json`, parameters allowed.
fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|t| {
        t.split(';')
            .next()
            .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
    })
}

/// The `host[:port]` of a URL such as `wss://calls.example.org:7443/tincan`.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    (!authority.is_empty()).then_some(authority)
}

/// The axum middleware: refuses what [`Policy::check`] refuses, before any handler runs
/// (the WebSocket upgrade included).
pub async fn guard(State(policy): State<Arc<Policy>>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let text = |name: header::HeaderName| header_text(headers, name);
    let host = text(header::HOST).or_else(|| req.uri().authority().map(|a| a.as_str()));
    let facts = RequestFacts {
        method: req.method().as_str(),
        path: req.uri().path(),
        host,
        origin: text(header::ORIGIN),
        content_type: text(header::CONTENT_TYPE),
        local_secret: headers.get(LOCAL_SECRET_HEADER).map(|v| v.as_bytes()),
    };
    match policy.check(&facts) {
        Ok(()) => next.run(req).await,
        Err(refusal) => {
            // Debug, not info: a page can send these as fast as it likes.
            debug!(
                path = facts.path,
                reason = ?refusal,
                "request refused before its handler"
            );
            crate::http::fail(refusal.status(), refusal.code(), refusal.message())
        }
    }
}

/// A header as text; one that is not text reads as a value nothing allows.
fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap_or("<not text>"))
}

#[cfg(test)]
mod tests;
