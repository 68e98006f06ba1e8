//! The server on a real PostgreSQL 15 (a throwaway server on a free loopback port:
//! `tincan_server::store::test_postgres`): a whole call through the server process
//! started on a `postgres://` URL, and no secret of the store in the log at `trace`.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tincan_protocol::{EndReason, HistoryParams, InviteeOutcome};
use tincan_server::store::test_postgres::TestPostgres;
use tincan_server::store::{key::KEY_SETTING, Database};
use tincan_server::{ServerConfig, TokenSigner};
use tincan_tests::*;

use crate::server_process::ServerProcess;
use tracing_subscriber::layer::SubscriberExt as _;

#[tokio::test]
async fn a_call_on_a_postgres_database_runs_end_to_end_and_is_in_history() {
    let pg = TestPostgres::start();
    let url = pg.create_database("tincan");
    // The users and group every test server has, written as an operator would.
    seed(Database::parse(&url).open().expect("open").as_ref());
    let server = ServerProcess::start(&url, None).await;

    // Register and sign in over HTTP: the account is written to PostgreSQL.
    let registered = tincan_sdk::register(&server.url(), "grace", "correct-horse-7", Some("Grace"))
        .await
        .expect("register");
    let signed_in = tincan_sdk::sign_in(&server.url(), "grace", "correct-horse-7")
        .await
        .expect("sign in");
    assert!(!registered.token.is_empty());
    let grace = server
        .peer_with("grace", "g1", &signed_in.token, no_reconnect())
        .await;
    let bob_token = TokenSigner::new(SECRET.as_bytes()).login_token(&uid("bob"), i64::MAX);
    let mut bob = server
        .peer_with("bob", "b1", &bob_token, no_reconnect())
        .await;

    let room = grace
        .invite("bob")
        .await
        .expect("invite")
        .room_id
        .to_string();
    let invitation = bob.expect("onReceiveNewInvitation").await;
    assert_eq!(
        invitation["participant"]["userInfo"]["nickname"], "Grace",
        "the nickname registered a moment ago is read from the store: {invitation}"
    );
    bob.accept(&room).await.expect("accept");
    grace.hang_up(&room).await.expect("hang up");
    bob.expect("onHangUp").await;

    let history = bob
        .client
        .get_call_history(&op("history"), HistoryParams::default())
        .await
        .expect("history");
    assert_eq!(history.records.len(), 1, "{:?}", history.records);
    let rec = &history.records[0];
    assert_eq!(rec.room_id.as_str(), room);
    assert_eq!(rec.end_reason, EndReason::HungUp);
    assert_eq!(rec.invitees[0].outcome, InviteeOutcome::Accepted);

    // The record is in the database itself, for every other server on it.
    let store = Database::parse(&url).open().expect("open");
    assert_eq!(
        store.call_history(&uid("grace"), 10, None).unwrap(),
        vec![rec.clone()]
    );
    assert!(store.user(&uid("grace")).unwrap().is_some());
}

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

// One thread, so that the server's tasks log into this test's subscriber (a thread-local
// default; other tests keep theirs). tokio-postgres logs through `log`, bridged into it;
// its statements are logged where they are polled: here, on this thread, for the
// writes below.
#[tokio::test(flavor = "current_thread")]
async fn no_secret_of_the_postgres_store_reaches_the_log_at_trace_level() {
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

    let pg = TestPostgres::start();
    // The test server trusts every local connection, so any password is accepted; it
    // stands for the one an operator's URL would hold.
    let db_password = "db-password-0815";
    let url = pg
        .create_database("tincan")
        .replace("postgres@", &format!("postgres:{db_password}@"));
    let store = Database::parse(&url).open().expect("open");
    // No configured secret: the signing key is made and kept in the database.
    let config = ServerConfig::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tincan_server::run(listener, config, store.clone(), async {
        let _ = stopped.await;
    }));
    let password = "correct-horse-battery";
    // Written on this thread (HTTP registration would write on the blocking pool, whose
    // threads log elsewhere).
    store
        .add_user(
            &uid("grace"),
            "Grace",
            Some(&tincan_server::auth::hash_password(password)),
        )
        .expect("add a user");
    let signed_in = tincan_sdk::sign_in(&base, "grace", password)
        .await
        .expect("sign in");
    let _ = stop.send(());
    server.await.unwrap().expect("server runs");

    let key = store
        .setting(KEY_SETTING)
        .unwrap()
        .expect("the key was made");
    let hash = store
        .user(&uid("grace"))
        .unwrap()
        .and_then(|u| u.password_hash)
        .expect("a password hash");
    let log = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(
        log.contains("PostgreSQL store open"),
        "nothing captured:\n{log}"
    );
    for (what, secret) in [
        ("signing key", key.as_str()),
        ("password hash", hash.as_str()),
        ("password", password),
        ("login token", signed_in.token.as_str()),
        ("database password", db_password),
    ] {
        assert!(
            !log.contains(secret),
            "the {what} appears in the log:\n{}",
            log.lines()
                .filter(|l| l.contains(secret))
                .take(3)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
