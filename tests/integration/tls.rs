//! Built-in TLS: a real server with a test CA made here (rcgen), SDK clients over wss
//! and https, a wrong certificate refused with a message saying so, and certificate
//! reload on file change and on SIGHUP.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tincan_sdk::{Accounts, DeviceInfo, SdkError};
use tincan_server::{ServerConfig, TlsFiles, TransportConfig};
use tincan_tests::certs::TestCa;
use tincan_tests::*;

/// A fresh folder for one test's files.
fn folder(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tincan-tls-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    // Write then rename, so the server never reads half a file.
    let tmp = dir.join(format!("{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &p).unwrap();
    p
}

/// A TLS server with a leaf from `ca` for 127.0.0.1 and localhost; its https URL.
async fn tls_server(
    dir: &Path,
    ca: &TestCa,
    names: &[&str],
    poll: Duration,
) -> (TestServer, String) {
    let (chain, key) = ca.leaf(names);
    let files = TlsFiles {
        cert: write(dir, "cert.pem", &chain),
        key: write(dir, "key.pem", &key),
    };
    let s = TestServer::start_with(ServerConfig {
        transport: TransportConfig {
            tls: Some(files),
            tls_reload_poll: poll,
            ..TransportConfig::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let url = format!("https://127.0.0.1:{}", s.addr.port());
    (s, url)
}

fn trusting(ca_file: &Path) -> tincan_sdk::ConnectOptions {
    let mut o = no_reconnect();
    o.ca_file = Some(ca_file.to_owned());
    o
}

async fn connect(s: &TestServer, url: &str, user: &str, ca: &Path) -> Result<(), SdkError> {
    let dev = DeviceInfo::random_linux();
    tincan_sdk::connect_with(url, &s.token(user), dev, trusting(ca))
        .await
        .map(|_| ())
}

#[tokio::test]
async fn sdk_places_and_receives_a_call_over_wss_with_a_test_ca() {
    let dir = folder("call");
    let ca = TestCa::new("Tincan test CA");
    let ca_file = write(&dir, "ca.pem", &ca.pem);
    let (s, url) = tls_server(
        &dir,
        &ca,
        &["127.0.0.1", "localhost"],
        Duration::from_secs(3600),
    )
    .await;

    // Register and sign in over https.
    let accounts = Accounts::with_ca_file(&url, Some(&ca_file)).unwrap();
    let token = accounts.register("zed", "secret-pw", None).await.unwrap();
    assert_eq!(token.user_id, "zed");
    accounts.sign_in("zed", "secret-pw").await.unwrap();

    // A call over wss, both ways through the live URL the server hands out.
    let mut alice = s
        .peer_with(
            &url,
            "alice",
            "a1",
            tincan_protocol::PlatformId::LINUX,
            trusting(&ca_file),
        )
        .await;
    let mut bob = s
        .peer_with(
            &url.replace("https", "wss"),
            "bob",
            "b1",
            tincan_protocol::PlatformId::LINUX,
            trusting(&ca_file),
        )
        .await;
    let reply = alice.invite("bob").await.unwrap();
    assert!(reply.live_url.starts_with("wss://"), "{}", reply.live_url);
    let inv = bob.expect_info("onReceiveNewInvitation").await;
    let room = inv.invitation.room_id.to_string();
    bob.accept(&room).await.unwrap();
    alice.expect_info("onInviteeAccepted").await;
    bob.hang_up(&room).await.unwrap();
    alice.expect_info("onHangUp").await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_certificate_from_another_ca_or_for_another_host_is_refused_saying_so() {
    let dir = folder("wrong");
    let ca = TestCa::new("Tincan test CA");
    let other = TestCa::new("Someone else's CA");
    let other_file = write(&dir, "other.pem", &other.pem);
    let ca_file = write(&dir, "ca.pem", &ca.pem);
    let (s, url) = tls_server(&dir, &ca, &["localhost"], Duration::from_secs(3600)).await;

    // Signed by a CA we do not trust.
    let e = connect(&s, &url, "alice", &other_file).await.unwrap_err();
    let SdkError::Certificate { host, reason } = &e else {
        panic!("expected a certificate error, got {e:?}")
    };
    assert_eq!(host, "127.0.0.1");
    assert!(
        reason.contains("not signed by a trusted authority"),
        "{reason}"
    );
    assert!(
        e.to_string()
            .contains("TLS certificate of 127.0.0.1 was refused"),
        "{e}"
    );
    assert!(!e.is_retryable());

    // Trusted CA, but the certificate names localhost only.
    let e = connect(&s, &url, "alice", &ca_file).await.unwrap_err();
    let SdkError::Certificate { reason, .. } = &e else {
        panic!("expected a certificate error, got {e:?}")
    };
    assert!(reason.contains("not issued for this host name"), "{reason}");

    // The same over https.
    let e = Accounts::with_ca_file(&url, Some(&other_file))
        .unwrap()
        .sign_in("alice", "whatever")
        .await
        .unwrap_err();
    assert!(matches!(e, SdkError::Certificate { .. }), "{e:?}");

    // Plain ws to a TLS port fails, and no CA at all means the system's roots only.
    let e = connect(&s, &s.url.clone(), "alice", &ca_file)
        .await
        .unwrap_err();
    assert!(matches!(e, SdkError::Connect(_)), "{e:?}");
    let dev = DeviceInfo::random_linux();
    let e = tincan_sdk::connect_with(
        &url.replace("127.0.0.1", "localhost"),
        &s.token("alice"),
        dev,
        no_reconnect(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, SdkError::Certificate { .. }), "{e:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Connects with `ca_file` until it succeeds (the new certificate is served); bounded.
async fn until_served(s: &TestServer, url: &str, ca_file: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match connect(s, url, "alice", ca_file).await {
            Ok(()) => return,
            Err(SdkError::Certificate { .. }) if Instant::now() < deadline => {
                tokio::task::yield_now().await
            }
            Err(e) => panic!("the new certificate was not served: {e}"),
        }
    }
}

#[tokio::test]
async fn a_changed_certificate_file_is_served_after_reload() {
    let dir = folder("reload");
    let (ca1, ca2) = (TestCa::new("first CA"), TestCa::new("second CA"));
    let (f1, f2) = (
        write(&dir, "ca1.pem", &ca1.pem),
        write(&dir, "ca2.pem", &ca2.pem),
    );
    let (s, url) = tls_server(&dir, &ca1, &["127.0.0.1"], Duration::from_millis(50)).await;
    connect(&s, &url, "alice", &f1).await.unwrap();
    assert!(connect(&s, &url, "alice", &f2).await.is_err());

    // A broken file keeps the old certificate.
    write(&dir, "cert.pem", "not a certificate");
    let (chain, key) = ca2.leaf(&["127.0.0.1"]);
    // Still served until the pair is whole again.
    connect(&s, &url, "alice", &f1).await.unwrap();
    write(&dir, "key.pem", &key);
    write(&dir, "cert.pem", &chain);
    until_served(&s, &url, &f2).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads_the_certificate() {
    let dir = folder("sighup");
    let (ca1, ca2) = (TestCa::new("first CA"), TestCa::new("second CA"));
    let (f1, f2) = (
        write(&dir, "ca1.pem", &ca1.pem),
        write(&dir, "ca2.pem", &ca2.pem),
    );
    // File polling off (an hour), so only the signal can reload.
    let (s, url) = tls_server(&dir, &ca1, &["127.0.0.1"], Duration::from_secs(3600)).await;
    connect(&s, &url, "alice", &f1).await.unwrap();
    let (chain, key) = ca2.leaf(&["127.0.0.1"]);
    write(&dir, "key.pem", &key);
    write(&dir, "cert.pem", &chain);
    // Not reloaded yet: no signal, no polling.
    connect(&s, &url, "alice", &f1).await.unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    until_served(&s, &url, &f2).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The built `tincan` command-line client (`target/<profile>/tincan`, beside this test's
/// `deps/` folder; `cargo build -p tincan-cli`, as scripts/test does, makes it).
fn cli_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .join("tincan");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build -p tincan-cli)",
        bin.display()
    );
    bin
}

async fn run_cli(args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(cli_binary())
        .args(args)
        .env_remove("TINCAN_CA_FILE")
        .env_remove("TINCAN_SERVER")
        .output()
        .await
        .expect("run tincan");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn cli_connects_over_wss_with_ca_file_and_refuses_the_certificate_without_it() {
    let dir = folder("cli");
    let ca = TestCa::new("Tincan test CA");
    let ca_file = write(&dir, "ca.pem", &ca.pem);
    let ca_path = ca_file.to_str().unwrap();
    let (s, url) = tls_server(&dir, &ca, &["127.0.0.1"], Duration::from_secs(3600)).await;

    // Register over https.
    let (ok, out) = run_cli(&[
        "--server",
        &url,
        "--ca-file",
        ca_path,
        "--user",
        "yan",
        "--password",
        "secret-pw",
        "register",
    ])
    .await;
    assert!(ok && out.contains("\"token\""), "{out}");

    // Sign in over https and read the history over wss.
    let (ok, out) = run_cli(&[
        "--server",
        &url,
        "--ca-file",
        ca_path,
        "--user",
        "yan",
        "--password",
        "secret-pw",
        "history",
    ])
    .await;
    assert!(ok, "{out}");

    // Without the CA, the certificate is refused and the message says so.
    let token = s.token("alice");
    let (ok, out) = run_cli(&["--server", &url, "--token", &token, "history"]).await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("TLS certificate of 127.0.0.1 was refused")
            && out.contains("not signed by a trusted authority"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
