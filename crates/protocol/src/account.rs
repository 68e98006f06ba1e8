//! The HTTP account endpoints' request bodies: `POST /api/register` and `POST /api/login`.
//! Both answer `{"errCode","errMsg","data"}` with a [`crate::TokenInfo`] in `data`.
//!
//! They live here, with the rest of the wire contract, so that their parsing can be fuzzed
//! without building the server (fuzz/, docs/security.md).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{ErrCode, WireError};
use crate::ids::UserId;

/// `POST /api/register`: `{"userID", "password", "nickname"?}`.
// No Debug: it holds a password, and a derived Debug would print it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterBody {
    /// The new account's id.
    #[serde(rename = "userID")]
    pub user_id: UserId,
    /// Its password (the server checks the length).
    pub password: String,
    /// Display name; the user id when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
}

/// `POST /api/login`: `{"userID", "password"}`. The user id is a plain string: an
/// invalid one gets the same "wrong user ID or password" as a wrong password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginBody {
    /// Who signs in.
    #[serde(rename = "userID")]
    pub user_id: String,
    /// Their password.
    pub password: String,
}

/// Parses an HTTP request body: exactly one JSON object with named fields, in UTF-8. An
/// array (serde would fill the fields by position), anything after the object, and text
/// that is not JSON in a field the server ignores are refused.
/// The error is `Args` with the path of the bad field.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, WireError> {
    let body = std::str::from_utf8(body)
        .map_err(|e| WireError::new(ErrCode::Args, format!("request body is not UTF-8: {e}")))?;
    if body.trim_start().chars().next().is_some_and(|c| c != '{') {
        return Err(WireError::new(
            ErrCode::Args,
            "request body must be a JSON object with named fields",
        ));
    }
    // serde skips unknown fields without checking their escapes, so a body that is not
    // JSON at all could pass; check the whole of it first (bodies are small).
    if let Err(e) = serde_json::from_str::<serde_json::Value>(body) {
        return Err(WireError::new(
            ErrCode::Args,
            format!("request body is not valid JSON: {e}"),
        ));
    }
    let de = &mut serde_json::Deserializer::from_str(body);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let msg = if path == "." {
            format!("request body: {}", e.into_inner())
        } else {
            format!("{path}: {}", e.into_inner())
        };
        WireError::new(ErrCode::Args, msg)
    })?;
    de.end()
        .map_err(|e| WireError::new(ErrCode::Args, format!("request body: {e}")))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_body_with_and_without_nickname_parses() {
        let b: RegisterBody =
            parse_body(br#"{"userID":"alice","password":"secret-pw","nickname":"Alice"}"#).unwrap();
        assert_eq!(b.user_id.as_str(), "alice");
        assert_eq!(b.nickname.as_deref(), Some("Alice"));
        let b: RegisterBody = parse_body(br#" {"userID":"bob","password":"x"} "#).unwrap();
        assert_eq!(b.nickname, None);
    }

    #[test]
    fn body_with_trailing_text_after_the_object_is_refused() {
        // Found by the http_body fuzz target: the server's parser stopped after the
        // object and accepted whatever followed.
        let e = parse_body::<LoginBody>(br#"{"userID":"alice","password":"pw"}{""#)
            .err()
            .expect("trailing text is refused");
        assert_eq!(e.code, ErrCode::Args);
        assert!(e.message.contains("trailing"), "{}", e.message);
    }

    #[test]
    fn body_that_is_not_utf8_is_refused_even_in_an_unknown_field() {
        // Found by the http_body fuzz target: a login body whose ignored "nickname" held
        // a byte that is not UTF-8 was accepted, though it is not JSON.
        let e = parse_body::<LoginBody>(
            b"{\"userID\":\"alice\",\"password\":\"pw\",\"nickname\":\"Ali\x88ce\"}",
        )
        .err()
        .expect("a body that is not UTF-8 is refused");
        assert_eq!(e.code, ErrCode::Args);
        assert!(e.message.contains("UTF-8"), "{}", e.message);
    }

    #[test]
    fn bad_escape_in_an_unknown_field_is_refused() {
        // Found by the http_body fuzz target: `\ud800` followed by no low surrogate, in a
        // field the server does not read, was accepted.
        let e = parse_body::<LoginBody>(br#"{"userID":"alice","password":"pw","x":"c\ud800 h"}"#)
            .err()
            .expect("a body that is not JSON is refused");
        assert_eq!(e.code, ErrCode::Args);
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
    }

    #[test]
    fn positional_array_body_is_refused() {
        let e = parse_body::<LoginBody>(br#"["alice","pw"]"#)
            .err()
            .expect("an array is refused");
        assert_eq!(e.code, ErrCode::Args);
        assert!(e.message.contains("named fields"), "{}", e.message);
    }

    #[test]
    fn bad_field_is_named_in_the_error() {
        let e = parse_body::<RegisterBody>(br#"{"userID":"a b","password":"pw"}"#)
            .err()
            .expect("a bad user id is refused");
        assert_eq!(e.code, ErrCode::Args);
        assert!(e.message.starts_with("userID:"), "{}", e.message);
    }
}
