//! The contact list: presence from the server, search, recent calls first, and calling back
//! from the history and from a missed-call notice.

use std::time::{Duration, Instant};

use crate::harness::{self, with_password, within, App};

/// The test ids of the contact list's rows, top to bottom (visible ones only).
const ROWS_JS: &str = r#"return [...document.querySelectorAll('[data-testid="contact-list"] > li')]
  .filter((li) => li.offsetParent !== null)
  .map((li) => li.dataset.testid || '');"#;

async fn rows(app: &App) -> Vec<String> {
    let v = app
        .client()
        .execute(ROWS_JS, vec![])
        .await
        .expect("read the contact list");
    serde_json::from_value(v).expect("a list of test ids")
}

/// Waits until the contact list's rows satisfy `ok`; returns them.
async fn wait_rows(app: &App, ok: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = rows(app).await;
        if ok(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "contact rows still {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Empties the search box the way a person does, with Backspace (each key an `input`
/// event; WebDriver's clear sends none).
async fn clear_search(app: &App) {
    let e = app.wait_testid("contact-search").await;
    let n = e
        .prop("value")
        .await
        .expect("search value")
        .unwrap_or_default()
        .chars()
        .count();
    e.send_keys(&"\u{e003}".repeat(n))
        .await
        .expect("type Backspace");
}

#[test]
fn a_contacts_presence_follows_them_signing_in_a_call_and_out() {
    harness::run_with("presence", with_password("alice"), |s| async move {
        s.sign_in("alice").await;
        // Bob has not signed in.
        s.app
            .wait_attr("contact-bob", "data-presence", "offline")
            .await;
        assert_eq!(s.app.text_of("presence-bob").await, "Offline");

        let bob = s.server.peer("bob", "bob-sdk").await;
        s.app
            .wait_attr("contact-bob", "data-presence", "online")
            .await;
        assert_eq!(s.app.text_of("presence-bob").await, "Online");

        // Bob calls carol: he is in a call from the moment he places it.
        let mut carol = s.server.peer("carol", "carol-sdk").await;
        s.app
            .wait_attr("contact-carol", "data-presence", "online")
            .await;
        let room = bob.invite("carol").await.expect("bob calls carol");
        s.app
            .wait_attr("contact-bob", "data-presence", "inCall")
            .await;
        assert_eq!(s.app.text_of("presence-bob").await, "In a call");
        within(carol.expect("onReceiveNewInvitation")).await;
        carol
            .accept(room.room_id.as_str())
            .await
            .expect("carol answers");
        s.app
            .wait_attr("contact-carol", "data-presence", "inCall")
            .await;
        s.app.screenshot("presence").await;

        // The call ends: both are back online. Then bob signs out.
        bob.hang_up(room.room_id.as_str())
            .await
            .expect("bob hangs up");
        s.app
            .wait_attr("contact-bob", "data-presence", "online")
            .await;
        s.app
            .wait_attr("contact-carol", "data-presence", "online")
            .await;
        bob.client.close().await;
        s.app
            .wait_attr("contact-bob", "data-presence", "offline")
            .await;
        assert_eq!(s.app.text_of("presence-bob").await, "Offline");
    });
}

#[test]
fn typing_in_search_filters_the_list_and_recent_calls_come_first() {
    harness::run_with("contact-search", with_password("alice"), |s| async move {
        s.sign_in("alice").await;
        // Nobody called yet: by name.
        let all = wait_rows(&s.app, |r| r.len() == 5).await;
        assert_eq!(
            all,
            [
                "contact-bob",
                "contact-carol",
                "contact-dave",
                "contact-erin",
                "contact-frank"
            ]
        );

        s.app.type_into("contact-search", "CAR").await;
        wait_rows(&s.app, |r| r == ["contact-carol"]).await;
        s.app.wait_gone("contact-bob").await;
        s.app.type_into("contact-search", "nobody-like-this").await;
        s.app.wait_testid("contacts-no-match").await;
        s.app.screenshot("contact-search-no-match").await;
        clear_search(&s.app).await;
        wait_rows(&s.app, |r| r.len() == 5).await;

        // Erin calls and gives up: a missed call. Erin then comes first, then the rest
        // by name.
        let erin = s.server.peer("erin", "erin-sdk").await;
        let room = erin.invite("alice").await.expect("erin calls").room_id;
        s.app.wait_state("incoming").await;
        erin.cancel(room.as_str()).await.expect("erin gives up");
        s.app.wait_state("contacts").await;
        let order = wait_rows(&s.app, |r| {
            r.first().map(String::as_str) == Some("contact-erin")
        })
        .await;
        assert_eq!(
            order,
            [
                "contact-erin",
                "contact-bob",
                "contact-carol",
                "contact-dave",
                "contact-frank"
            ]
        );
        s.app.wait_attr("contact-erin", "data-recent", "true").await;
        s.app.screenshot("contacts-recent-first").await;
    });
}

#[test]
fn a_missed_call_and_a_history_entry_call_back() {
    harness::run_with("call-back", with_password("alice"), |s| async move {
        let mut erin = s.server.peer("erin", "erin-sdk").await;
        s.sign_in("alice").await;

        // A missed audio call from erin: the notice offers to call back.
        let mut params = tincan_tests::invite_params(&["alice"], "", 1);
        params.invitation.media_type = tincan_protocol::MediaType::Audio;
        let inv = erin.client.signaling_invite("e2e-audio", params).await;
        let room = inv.expect("erin calls").room_id;
        s.app.wait_state("incoming").await;
        erin.cancel(room.as_str()).await.expect("erin gives up");
        s.app.wait_state("contacts").await;
        let said = s.app.text_of("call-ended-reason").await;
        assert!(said.contains("Missed call from erin"), "{said:?}");
        s.app.screenshot("missed-call-notice").await;

        s.app.click("notice-call-back").await;
        s.app.wait_state("outgoing").await;
        let back = within(erin.expect_info("onReceiveNewInvitation")).await;
        assert_eq!(back.invitation.inviter_user_id, "alice");
        assert_eq!(
            back.invitation.media_type,
            tincan_protocol::MediaType::Audio
        );
        s.app.click("outgoing-cancel").await;
        within(erin.expect("onInvitationCancelled")).await;
        s.app.wait_state("contacts").await;

        // From the history: the missed call's row calls erin again.
        s.app.click("tab-history").await;
        s.app.click(&format!("call-back-{room}")).await;
        s.app.wait_state("outgoing").await;
        let again = within(erin.expect_info("onReceiveNewInvitation")).await;
        assert_eq!(again.invitation.inviter_user_id, "alice");
        assert_eq!(again.invitation.invitee_user_id_list[0].as_str(), "erin");
        assert_eq!(
            again.invitation.media_type,
            tincan_protocol::MediaType::Audio,
            "the same media as the missed call"
        );
        s.app.click("outgoing-cancel").await;
        within(erin.expect("onInvitationCancelled")).await;
    });
}
