//! Which servers the engine believes over https and wss: the certificate authorities the
//! platform trusts, and a school's own authority from `INVIGIL_CA_FILE` (PEM). One rustls config
//! (the *ring* provider) serves the HTTP client and the live socket alike, so both trust the same
//! servers; a refused certificate becomes [`Error::UntrustedCertificate`], which says what to do.

use crate::error::{Error, Result};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use rustls::{ClientConfig, RootCertStore};
use std::path::Path;
use std::sync::Arc;

/// The TLS client config: the platform's roots, plus the certificates of `ca_file` when given.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    let platform = rustls_native_certs::load_native_certs();
    for error in &platform.errors {
        tracing::warn!(%error, "a certificate of the platform's store could not be read");
    }
    let (added, ignored) = roots.add_parsable_certificates(platform.certs);
    tracing::debug!(added, ignored, "the platform's certificate authorities");
    if let Some(path) = ca_file {
        let unusable = |detail: String| Error::CaFile {
            path: path.to_owned(),
            detail,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| unusable(e.to_string()))?;
        if certs.is_empty() {
            return Err(unusable(
                "it holds no certificate (a PEM file with `BEGIN CERTIFICATE` blocks)".into(),
            ));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| unusable(e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Protocol(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The certificate problem behind a transport error, if that is what it is: rustls's error
/// somewhere in its chain of sources (an I/O error carries it as its payload, which `source()`
/// skips).
pub(crate) fn certificate_problem(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(detail) = rustls_certificate_error(e) {
            return Some(detail);
        }
        // An I/O error's `source()` skips its payload, which may be another I/O error.
        next = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

fn rustls_certificate_error(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    match error.downcast_ref::<rustls::Error>()? {
        rustls::Error::InvalidCertificate(e) => Some(e.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_that_is_not_a_certificate_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("school-ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let error = client_config(Some(&path)).unwrap_err();
        assert_eq!(error.kind(), "ca_file");
        let message = error.to_string();
        assert!(message.contains("school-ca.pem"), "{message}");
        assert!(message.contains("INVIGIL_CA_FILE"), "{message}");

        let missing = client_config(Some(&dir.path().join("missing.pem"))).unwrap_err();
        assert_eq!(missing.kind(), "ca_file");
    }

    #[test]
    fn a_certificate_error_is_found_inside_an_io_error() {
        let rustls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls);
        assert!(certificate_problem(&io).is_some());
        let other = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(certificate_problem(&other).is_none());
    }
}
