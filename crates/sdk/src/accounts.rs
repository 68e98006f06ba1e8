//! Accounts over HTTP: register and sign in, each returning the token that
//! [`crate::connect`] needs.
//!
//! `POST /api/register` `{"userID","password","nickname"?}` and `POST /api/login`
//! `{"userID","password"}` both answer `{"errCode":0,"errMsg":"","data":{"userID",
//! "token","expiresAt"}}`. The JSON body is read whatever the HTTP status.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tincan_protocol::{ErrCode, WireError, LOCAL_SECRET_HEADER};

use crate::endpoint::Endpoint;
use crate::error::SdkError;

/// How long one HTTP request may take. Sign-in hashes a password on the server, which
/// is deliberately slow; this leaves plenty of room.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

pub use tincan_protocol::TokenInfo;

/// A server's account endpoints. Cheap to clone; reuses its HTTP connections.
#[derive(Debug, Clone)]
pub struct Accounts {
    http: reqwest::Client,
    endpoint: Endpoint,
    /// Sent in [`LOCAL_SECRET_HEADER`]; marked sensitive, so `Debug` does not show it.
    local_secret: Option<reqwest::header::HeaderValue>,
}

impl Accounts {
    /// Accounts on the server at `base_url` (`http://host:port`; see [`Endpoint::parse`]).
    pub fn new(base_url: &str) -> Result<Accounts, SdkError> {
        Self::with_ca_file(base_url, None)
    }

    /// Like [`Accounts::new`]; for an `https://` server, also trusts the CA
    /// certificates in the PEM file `ca_file` (a self-signed test deployment).
    pub fn with_ca_file(
        base_url: &str,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Accounts, SdkError> {
        let endpoint = Endpoint::parse(base_url)?;
        // Direct connections only, like the WebSocket: a system proxy setting must not
        // send loopback or LAN sign-ins through a proxy that cannot reach them.
        let mut builder = reqwest::Client::builder().no_proxy();
        if endpoint.is_tls() {
            let mut tls = (*crate::tls::client_config(ca_file)?).clone();
            tls.alpn_protocols = vec![b"http/1.1".to_vec()];
            builder = builder.use_preconfigured_tls(tls).https_only(true);
        }
        let http = builder
            .build()
            .map_err(|e| SdkError::Http(format!("cannot build the HTTP client: {e}")))?;
        Ok(Accounts {
            http,
            endpoint,
            local_secret: None,
        })
    }

    /// Sends `secret` with every request, in [`LOCAL_SECRET_HEADER`]: an embedded
    /// server creates accounts and signs in only for the app that started it, which
    /// holds this per-launch secret. Give it to that server only.
    pub fn with_local_secret(mut self, secret: &str) -> Result<Accounts, SdkError> {
        let mut value = reqwest::header::HeaderValue::from_str(secret).map_err(|_| {
            SdkError::InvalidArgument("the local server secret is not a valid header value".into())
        })?;
        value.set_sensitive(true);
        self.local_secret = Some(value);
        Ok(self)
    }

    /// Creates an account and signs it in.
    pub async fn register(
        &self,
        user_id: &str,
        password: &str,
        nickname: Option<&str>,
    ) -> Result<TokenInfo, SdkError> {
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(rename = "userID")]
            user_id: &'a str,
            password: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            nickname: Option<&'a str>,
        }
        self.post(
            "/api/register",
            &Body {
                user_id,
                password,
                nickname,
            },
        )
        .await
    }

    /// Signs in to an existing account.
    pub async fn sign_in(&self, user_id: &str, password: &str) -> Result<TokenInfo, SdkError> {
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(rename = "userID")]
            user_id: &'a str,
            password: &'a str,
        }
        self.post("/api/login", &Body { user_id, password }).await
    }

    async fn post<B: Serialize>(&self, path: &str, body: &B) -> Result<TokenInfo, SdkError> {
        let url = self.endpoint.http_url(path);
        let exchange = async {
            let mut request = self.http.post(&url).json(body);
            if let Some(secret) = &self.local_secret {
                request = request.header(LOCAL_SECRET_HEADER, secret.clone());
            }
            let resp = request.send().await.map_err(|e| {
                crate::tls::classify(self.endpoint.host(), &e, || {
                    SdkError::Http(format!("POST {url}: {e}"))
                })
            })?;
            let status = resp.status().as_u16();
            let text = resp
                .text()
                .await
                .map_err(|e| SdkError::Http(format!("POST {url}: reading the reply: {e}")))?;
            Ok::<_, SdkError>((status, text))
        };
        let (status, text) = tokio::time::timeout(HTTP_TIMEOUT, exchange)
            .await
            .map_err(|_| SdkError::Timeout)??;
        parse_reply(status, &text)
    }
}

/// Registers on the server at `base_url`. See [`Accounts::register`].
pub async fn register(
    base_url: &str,
    user_id: &str,
    password: &str,
    nickname: Option<&str>,
) -> Result<TokenInfo, SdkError> {
    Accounts::new(base_url)?
        .register(user_id, password, nickname)
        .await
}

/// Signs in on the server at `base_url`. See [`Accounts::sign_in`].
pub async fn sign_in(base_url: &str, user_id: &str, password: &str) -> Result<TokenInfo, SdkError> {
    Accounts::new(base_url)?.sign_in(user_id, password).await
}

/// Reads an account reply: the JSON envelope decides, the HTTP status only explains a
/// body that is not one.
fn parse_reply(status: u16, body: &str) -> Result<TokenInfo, SdkError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Envelope {
        err_code: u32,
        #[serde(default)]
        err_msg: String,
        #[serde(default)]
        data: Option<Box<RawValue>>,
    }
    let env: Envelope = serde_json::from_str(body).map_err(|e| {
        let snippet: String = body.chars().take(200).collect();
        SdkError::Http(format!(
            "HTTP {status}: the reply is not Tincan's JSON ({e}): {snippet:?}"
        ))
    })?;
    if env.err_code != 0 {
        let error = match ErrCode::from_code(env.err_code) {
            Some(code) => WireError::new(code, env.err_msg),
            // A code this SDK does not know: keep the number in the message.
            None => WireError::new(
                ErrCode::Internal,
                format!("errCode {}: {}", env.err_code, env.err_msg),
            ),
        };
        return Err(SdkError::Server(error));
    }
    let data = env.data.as_deref().map(RawValue::get).unwrap_or("null");
    serde_json::from_str(data)
        .map_err(|e| SdkError::Protocol(format!("account reply data: {e}: {data}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_success_reply_gives_the_token() {
        let t = parse_reply(
            200,
            r#"{"errCode":0,"errMsg":"","data":{"userID":"alice","token":"t.k","expiresAt":42}}"#,
        )
        .unwrap();
        assert_eq!(t.user_id, "alice");
        assert_eq!(t.token, "t.k");
        assert_eq!(t.expires_at, 42);
    }

    #[test]
    fn an_error_reply_is_a_server_error_whatever_the_status() {
        let e = parse_reply(401, r#"{"errCode":1002,"errMsg":"wrong password"}"#).unwrap_err();
        assert_eq!(
            e,
            SdkError::Server(WireError::new(ErrCode::NoPermission, "wrong password"))
        );
    }

    #[test]
    fn an_unknown_code_keeps_its_number_in_the_message() {
        let e = parse_reply(400, r#"{"errCode":4242,"errMsg":"odd"}"#).unwrap_err();
        let SdkError::Server(w) = e else {
            panic!("{e:?}")
        };
        assert_eq!(w.code, ErrCode::Internal);
        assert_eq!(w.message, "errCode 4242: odd");
    }

    #[test]
    fn a_non_json_body_is_an_http_error_naming_the_status() {
        let e = parse_reply(502, "<html>Bad Gateway</html>").unwrap_err();
        let SdkError::Http(msg) = e else {
            panic!("{e:?}")
        };
        assert!(
            msg.contains("HTTP 502") && msg.contains("Bad Gateway"),
            "{msg}"
        );
    }

    #[test]
    fn success_without_token_data_is_a_protocol_error() {
        let e = parse_reply(200, r#"{"errCode":0,"errMsg":""}"#).unwrap_err();
        assert!(matches!(e, SdkError::Protocol(_)), "{e:?}");
    }

    #[test]
    fn the_local_secret_is_not_shown_by_debug() {
        let a = Accounts::new("http://127.0.0.1:7070")
            .unwrap()
            .with_local_secret("s3cr3t-value")
            .unwrap();
        assert!(!format!("{a:?}").contains("s3cr3t-value"));
        assert!(Accounts::new("http://h:1")
            .unwrap()
            .with_local_secret("bad\nvalue")
            .is_err());
    }

    #[test]
    fn token_info_round_trips_with_openim_names() {
        let t = TokenInfo {
            user_id: tincan_protocol::UserId::new("bob").unwrap(),
            token: "x".into(),
            expires_at: 7,
        };
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"userID":"bob","token":"x","expiresAt":7}"#
        );
    }
}
