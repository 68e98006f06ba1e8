//! Built-in TLS: the certificate and key from PEM files, served through rustls (with the
//! `ring` provider), and reloaded when the files change or on SIGHUP. A reload that
//! fails keeps the certificate in use and logs why.
//!
//! The IO here is reading the two files; the accept loop (`serve`) does the handshakes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tracing::{info, warn};

/// How often the files' modification times are checked.
pub const RELOAD_POLL: Duration = Duration::from_secs(5);

/// Where the certificate and key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why a certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// Which file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no usable PEM of the expected kind.
    #[error("{path}: {why}")]
    Pem {
        /// Which file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// rustls refused the key or the certificate.
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

/// Reads and checks the certificate chain and key.
pub fn load(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let pem_err = |path: &Path, why: String| TlsError::Pem {
        path: path.to_owned(),
        why,
    };
    let cert_pem = read(&files.cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(&files.cert, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(pem_err(
            &files.cert,
            "no CERTIFICATE block found".to_owned(),
        ));
    }
    let key_pem = read(&files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| pem_err(&files.key, format!("no usable PEM private key: {e}")))?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider)?;
    Ok(certified)
}

/// The certificate in use; swapped whole on reload, so a handshake sees the old pair or
/// the new one, never a mix.
#[derive(Debug)]
pub struct CertStore {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
    stamps: RwLock<Option<(SystemTime, SystemTime)>>,
}

impl CertStore {
    /// Loads the files once; fails if they are unusable (the server does not start).
    pub fn open(files: TlsFiles) -> Result<Arc<CertStore>, TlsError> {
        let key = load(&files)?;
        let stamps = stamps(&files);
        Ok(Arc::new(CertStore {
            files,
            current: RwLock::new(Arc::new(key)),
            stamps: RwLock::new(stamps),
        }))
    }

    /// Loads the files again. On failure the certificate in use stays and the error
    /// is returned (and logged).
    pub fn reload(&self, why: &str) -> Result<(), TlsError> {
        let stamps = stamps(&self.files);
        match load(&self.files) {
            Ok(key) => {
                *self.current.write().expect("cert lock is never poisoned") = Arc::new(key);
                *self.stamps.write().expect("stamp lock is never poisoned") = stamps;
                info!(cert = %self.files.cert.display(), why, "TLS certificate reloaded");
                Ok(())
            }
            Err(e) => {
                // Remember the stamps anyway, so a broken file is reported once, not
                // every poll; the next change tries again.
                *self.stamps.write().expect("stamp lock is never poisoned") = stamps;
                warn!(error = %e, why, "TLS certificate reload failed; still serving the previous certificate");
                Err(e)
            }
        }
    }

    /// Whether either file's modification time changed since the last load.
    fn changed(&self) -> bool {
        let now = stamps(&self.files);
        now.is_some() && now != *self.stamps.read().expect("stamp lock is never poisoned")
    }

    /// The rustls configuration serving this store's certificate (HTTP/1.1 only).
    pub fn server_config(self: &Arc<Self>) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .expect("cert lock is never poisoned")
                .clone(),
        )
    }
}

fn stamps(files: &TlsFiles) -> Option<(SystemTime, SystemTime)> {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((m(&files.cert)?, m(&files.key)?))
}

/// Reloads `store` when its files change (checked every `poll`) or on SIGHUP, until the
/// returned future is dropped. The SIGHUP handler is installed before this returns (call
/// it inside the runtime), so a SIGHUP sent once the server listens never kills it.
pub fn watch(store: Arc<CertStore>, poll: Duration) -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(error = %e, "no SIGHUP handler; certificates reload on file change only");
            None
        }
    };
    async move {
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            #[cfg(unix)]
            let hangup = async {
                match hup.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hangup = std::future::pending::<()>();
            tokio::select! {
                _ = hangup => {
                    let s = store.clone();
                    let _ = tokio::task::spawn_blocking(move || s.reload("SIGHUP")).await;
                }
                _ = tick.tick() => {
                    if store.changed() {
                        let s = store.clone();
                        let _ = tokio::task::spawn_blocking(move || s.reload("the files changed")).await;
                    }
                }
            }
        }
    }
}
