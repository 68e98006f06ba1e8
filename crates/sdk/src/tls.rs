//! TLS for `wss://` and `https://` servers: rustls (ring provider) trusting the system's
//! root certificates plus, optionally, the CAs in one extra PEM file (a self-signed
//! test deployment). Also recognises a refused certificate in an error chain, so it is
//! reported as [`SdkError::Certificate`] rather than a generic network failure.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tracing::{debug, warn};

use crate::error::SdkError;

/// The system's trust roots, read once per process.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            warn!(error = %e, "some system root certificates could not be read");
        }
        let mut roots = RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        debug!(added, ignored, "system root certificates");
        roots
    })
}

/// A client configuration trusting the system's roots and the CAs in `ca_file`.
pub(crate) fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, SdkError> {
    let mut roots = system_roots().clone();
    if let Some(path) = ca_file {
        let bad =
            |why: String| SdkError::InvalidArgument(format!("CA file {}: {why}", path.display()));
        let pem = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("not PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(bad("no CERTIFICATE block found".into()));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// If `e` (or anything it wraps) is rustls refusing the server's certificate, the
/// reason in words.
pub(crate) fn certificate_problem(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return describe(r);
        }
        // An io::Error's `source()` skips the error it wraps; step into it instead.
        cur = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

fn describe(e: &rustls::Error) -> Option<String> {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => Some(match c {
            C::UnknownIssuer => "it is not signed by a trusted authority (for a self-signed \
                                 server, pass its CA with --ca-file)"
                .to_owned(),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "it was not issued for this host name".to_owned()
            }
            C::Expired | C::ExpiredContext { .. } => "it has expired".to_owned(),
            C::NotValidYet | C::NotValidYetContext { .. } => "it is not valid yet".to_owned(),
            C::Revoked => "it has been revoked".to_owned(),
            C::BadSignature => "its signature is invalid".to_owned(),
            other => format!("{other:?}"),
        }),
        rustls::Error::NoCertificatesPresented => Some("the server sent none".to_owned()),
        _ => None,
    }
}

/// The error for `e`: [`SdkError::Certificate`] when it is a refused certificate,
/// otherwise `otherwise(e)`.
pub(crate) fn classify(
    host: &str,
    e: &(dyn std::error::Error + 'static),
    otherwise: impl FnOnce() -> SdkError,
) -> SdkError {
    match certificate_problem(e) {
        Some(reason) => SdkError::Certificate {
            host: host.to_owned(),
            reason,
        },
        None => otherwise(),
    }
}
