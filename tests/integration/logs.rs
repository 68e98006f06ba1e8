//! No secret reaches a log at any level: the server and the SDK run at `trace` with the
//! subscriber the binaries use, through sign-up, sign-in, a call with TURN credentials
//! and a media signal, and no password, token or credential appears in what was written.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tincan_protocol::MediaSignalParams;
use tincan_server::{IceConfig, ServerConfig};
use tincan_tests::*;
use tracing_subscriber::layer::SubscriberExt as _;

/// Everything written to the log, shared with the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

// One thread, so that every task of the server and the SDK logs into this test's
// subscriber (a thread-local default; other tests keep theirs).
#[tokio::test(flavor = "current_thread")]
async fn no_secret_reaches_the_log_at_trace_level() {
    // tungstenite logs through the `log` crate: route it into tracing, at every level.
    let _ = tracing_log::LogTracer::init();
    log::set_max_level(log::LevelFilter::Trace);
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish()
        .with(tincan_server::logging::frames_never_logged());
    let _guard = tracing::subscriber::set_default(subscriber);

    let turn_secret = "turn-static-auth-secret-4711";
    let mut config = ServerConfig::default();
    config.hub.ice = IceConfig {
        stun_urls: vec![],
        turn_urls: vec!["turn:127.0.0.1:3478".into()],
        turn_secret: Some(turn_secret.into()),
        turn_ttl_secs: 600,
    };
    let s = TestServer::start_with(config).await;

    let password = "correct-horse-battery";
    let registered = tincan_sdk::register(&s.url, "grace", password, Some("Grace"))
        .await
        .expect("register");
    let signed_in = tincan_sdk::sign_in(&s.url, "grace", password)
        .await
        .expect("sign in");
    let grace = s.peer("grace", "g1").await;
    let mut bob = s.peer("bob", "b1").await;
    let invited = grace.invite("bob").await.expect("invite");
    let room = invited.room_id.to_string();
    bob.expect("onReceiveNewInvitation").await;
    let accepted = bob.accept(&room).await.expect("accept");
    grace
        .client
        .signaling_send_media_signal(
            &op("media"),
            MediaSignalParams {
                room_id: invited.room_id.clone(),
                token: invited.token.clone(),
                to_user_id: uid("bob"),
                payload: serde_json::value::to_raw_value(
                    &serde_json::json!({"type": "offer", "sdp": "v=0"}),
                )
                .unwrap(),
            },
        )
        .await
        .expect("media signal");
    bob.expect("onReceiveMediaSignal").await;
    grace.hang_up(&room).await.expect("hang up");

    let log = captured.text();
    // The capture works: our own trace lines and tungstenite's debug lines are there.
    assert!(log.contains("signed in"), "nothing captured:\n{log}");
    let turn_credentials: Vec<String> = invited
        .ice_servers
        .iter()
        .chain(&accepted.ice_servers)
        .filter_map(|s| s.credential.clone())
        .collect();
    assert!(!turn_credentials.is_empty(), "TURN was configured");
    let mut secrets = vec![
        ("password", password.to_owned()),
        ("registration token", registered.token),
        ("login token", signed_in.token),
        ("SDK login token", s.token("grace")),
        ("room token", invited.token.clone()),
        ("room token", accepted.token.clone()),
        ("TURN secret", turn_secret.to_owned()),
        ("signing secret", SECRET.to_owned()),
    ];
    secrets.extend(turn_credentials.into_iter().map(|c| ("TURN credential", c)));
    for (what, secret) in secrets {
        assert!(
            !log.contains(&secret),
            "the {what} appears in the log:\n{}",
            log.lines()
                .filter(|l| l.contains(&secret))
                .take(3)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
