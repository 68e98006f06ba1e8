//! The app connects to a wss server: a TLS server with a test CA made here (rcgen), the app
//! started with `--ca-file`; the sign-in screen notes when an address would not be
//! encrypted, and Settings says the connection is.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tincan_server::store::Store;
use tincan_server::{ServerConfig, TlsFiles, TransportConfig};
use tincan_tests::{uid, TestServer};

use crate::harness::{self, default_launch, PASSWORD};

/// A test CA's PEM and a leaf for 127.0.0.1 signed by it, written into `dir`.
fn make_certificates(dir: &Path) -> (PathBuf, TlsFiles) {
    std::fs::create_dir_all(dir).unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Tincan e2e CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let write = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let ca_file = write("ca.pem", ca_cert.pem());
    let files = TlsFiles {
        cert: write("cert.pem", leaf.pem()),
        key: write("key.pem", leaf_key.serialize_pem()),
    };
    (ca_file, files)
}

fn cert_dir() -> PathBuf {
    std::env::temp_dir().join(format!("tincan-e2e-tls-{}", std::process::id()))
}

#[test]
fn app_signs_in_over_wss_with_a_ca_file_and_says_when_a_connection_is_not_encrypted() {
    harness::run_with(
        "tls",
        |server, profile| {
            let (ca_file, _) = make_certificates(&cert_dir());
            let mut launch = default_launch(server, profile);
            launch
                .args
                .extend(["--ca-file".to_owned(), ca_file.display().to_string()]);
            launch
        },
        |s| async move {
            // Made by the setup above, with the CA the app was given.
            let files = TlsFiles {
                cert: cert_dir().join("cert.pem"),
                key: cert_dir().join("key.pem"),
            };
            let tls = TestServer::start_with(ServerConfig {
                transport: TransportConfig {
                    tls: Some(files),
                    ..TransportConfig::default()
                },
                ..ServerConfig::default()
            })
            .await;
            let hash = tincan_server::auth::hash_password(PASSWORD);
            tls.store.set_password(&uid("alice"), &hash).unwrap();

            s.app.wait_state("signin").await;
            // A plain address of another computer: the note says it is not encrypted.
            s.app
                .type_into("login-server", "http://10.9.8.7:7070")
                .await;
            let note = s.app.wait_testid("login-unencrypted").await;
            assert!(note.text().await.unwrap().contains("Not encrypted"));
            // Loopback and TLS addresses: no note.
            s.app
                .type_into("login-server", "http://127.0.0.1:7070")
                .await;
            s.app.wait_gone("login-unencrypted").await;
            let url = format!("wss://127.0.0.1:{}", tls.addr.port());
            s.app.type_into("login-server", &url).await;
            s.app.wait_gone("login-unencrypted").await;

            s.app.type_into("login-user", "alice").await;
            s.app.type_into("login-password", PASSWORD).await;
            s.app.click("login-submit").await;
            s.app.wait_state("contacts").await;
            s.app.click("tab-settings").await;
            s.app
                .wait_text("settings-encryption", |t| t == "Encrypted (TLS)")
                .await;
            s.app
                .wait_attr("settings-encryption", "data-transport", "tls")
                .await;
            s.app.screenshot("tls-settings").await;
            let _ = std::fs::remove_dir_all(cert_dir());
        },
    );
}
