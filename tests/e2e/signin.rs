//! Signing in through the window: success lands on the contacts, failures are said in
//! words on the sign-in screen.

use crate::harness::{self, with_password};

#[test]
fn sign_in_shows_contacts_and_groups() {
    harness::run_with("contacts", with_password("alice"), |s| async move {
        s.sign_in("alice").await;
        assert_eq!(s.app.text_of("signed-in-user").await, "alice");
        for id in [
            "contact-bob",
            "contact-carol",
            "call-audio-bob",
            "group-team",
        ] {
            s.app.wait_testid(id).await;
        }
        s.app.screenshot("contacts").await;

        s.app.click("tab-settings").await;
        s.app.wait_text("settings-user", |t| t == "alice").await;
        s.app.screenshot("settings").await;
    });
}

#[test]
fn wrong_password_is_explained() {
    harness::run_with("wrong-password", with_password("alice"), |s| async move {
        s.app.wait_state("signin").await;
        s.app.type_into("login-user", "alice").await;
        s.app.type_into("login-password", "not the password").await;
        s.app.click("login-submit").await;
        let error = s.app.wait_text("login-error", |t| !t.is_empty()).await;
        assert!(
            error.to_lowercase().contains("password"),
            "error shown: {error:?}"
        );
        assert_eq!(s.app.state().await.unwrap().as_deref(), Some("signin"));
    });
}

#[test]
fn unreachable_server_is_explained() {
    harness::run_with("wrong-server", with_password("alice"), |s| async move {
        s.app.wait_state("signin").await;
        // A port nothing listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        s.app
            .type_into("login-server", &format!("http://127.0.0.1:{port}"))
            .await;
        s.app.type_into("login-user", "alice").await;
        s.app.type_into("login-password", harness::PASSWORD).await;
        s.app.click("login-submit").await;
        let error = s.app.wait_text("login-error", |t| !t.is_empty()).await;
        s.app.screenshot("signin-error").await;
        assert_eq!(s.app.state().await.unwrap().as_deref(), Some("signin"));
        let lower = error.to_lowercase();
        assert!(
            lower.contains("server") || lower.contains("reach") || lower.contains("connect"),
            "error shown: {error:?}"
        );
    });
}

#[test]
fn malformed_server_address_is_explained() {
    harness::run_with("bad-address", with_password("alice"), |s| async move {
        s.app.wait_state("signin").await;
        s.app
            .type_into("login-server", "not a server address")
            .await;
        s.app.type_into("login-user", "alice").await;
        s.app.type_into("login-password", harness::PASSWORD).await;
        s.app.click("login-submit").await;
        let error = s.app.wait_text("login-error", |t| !t.is_empty()).await;
        assert!(
            error.to_lowercase().contains("address"),
            "error shown: {error:?}"
        );
        assert_eq!(s.app.state().await.unwrap().as_deref(), Some("signin"));
    });
}

#[test]
fn a_throttled_sign_in_says_how_long_to_wait() {
    harness::run_with("throttled", with_password("alice"), |s| async move {
        // Someone guesses alice's password until the server locks the account for a
        // while; then alice signs in with the right one from the window.
        for _ in 0..8 {
            let guess = tincan_sdk::sign_in(&s.server.url, "alice", "a guess").await;
            if matches!(&guess, Err(tincan_sdk::SdkError::Server(e))
                if e.code == tincan_protocol::ErrCode::SignInThrottled)
            {
                break;
            }
        }
        s.app.wait_state("signin").await;
        s.app.type_into("login-user", "alice").await;
        s.app.type_into("login-password", harness::PASSWORD).await;
        s.app.click("login-submit").await;
        let error = s.app.wait_text("login-error", |t| !t.is_empty()).await;
        s.app.screenshot("signin-throttled").await;
        assert!(
            error.starts_with("Too many failed sign-ins for this account. Try again in "),
            "error shown: {error:?}"
        );
        assert_eq!(s.app.state().await.unwrap().as_deref(), Some("signin"));
    });
}
