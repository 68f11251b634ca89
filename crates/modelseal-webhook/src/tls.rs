//! The serving certificate: loaded from PEM, swapped in place when its files change (each
//! handshake picks the one in force), and its validity period kept for `/readyz`.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use x509_cert::der::Decode as _;

/// A loaded certificate and key.
pub struct Loaded {
    key: Arc<CertifiedKey>,
    /// The leaf's validity period.
    pub not_before: SystemTime,
    /// The leaf's validity period.
    pub not_after: SystemTime,
}

/// Reads a PEM certificate chain and its private key, checking that they match.
pub fn load(cert: &Path, key: &Path) -> Result<Loaded, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("certificate {}: {e}", cert.display()))?;
    let Some(leaf) = chain.first() else {
        return Err(format!(
            "certificate {}: no certificate in it",
            cert.display()
        ));
    };
    let parsed = x509_cert::Certificate::from_der(leaf)
        .map_err(|e| format!("certificate {}: {e}", cert.display()))?;
    let validity = &parsed.tbs_certificate().validity();
    let (not_before, not_after) = (
        validity.not_before.to_system_time(),
        validity.not_after.to_system_time(),
    );
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("private key {}: {e}", key.display()))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let key = CertifiedKey::from_der(chain, private, &provider).map_err(|e| {
        format!(
            "certificate {} with key {}: {e}",
            cert.display(),
            key.display()
        )
    })?;
    Ok(Loaded {
        key: Arc::new(key),
        not_before,
        not_after,
    })
}

/// The certificate in force, for rustls to resolve at each handshake.
#[derive(Debug)]
pub struct ServingCert {
    current: RwLock<(Arc<CertifiedKey>, SystemTime, SystemTime)>,
}

impl ServingCert {
    /// Starts with `loaded`.
    pub fn new(loaded: Loaded) -> Self {
        Self {
            current: RwLock::new((loaded.key, loaded.not_before, loaded.not_after)),
        }
    }

    /// Puts `loaded` in force for the next handshakes.
    pub fn replace(&self, loaded: Loaded) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) =
            (loaded.key, loaded.not_before, loaded.not_after);
    }

    /// Whether the certificate in force is within its validity period at `now`.
    pub fn check(&self, now: SystemTime) -> Result<(), String> {
        let (_, not_before, not_after) = *self.current.read().unwrap_or_else(|p| p.into_inner());
        if now < not_before {
            return Err("the serving certificate is not valid yet".into());
        }
        if now > not_after {
            return Err("the serving certificate has expired".into());
        }
        Ok(())
    }

    /// A rustls server configuration that resolves to this certificate, offering
    /// HTTP/2 and HTTP/1.1.
    pub fn server_config(self: &Arc<Self>) -> Result<rustls::ServerConfig, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

impl ResolvesServerCert for ServingCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|p| p.into_inner()).0,
        ))
    }
}
