//! The server's configuration file (TOML, unknown keys refused), documented in
//! `spec/admission.md` §1.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// What to do with an object that names no model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoModel {
    /// Admit it (the webhook only guards what names a model).
    Allow,
    /// Refuse it (every object in scope must name a verified model).
    Deny,
}

/// Parsed configuration.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on, e.g. `0.0.0.0:8443`.
    pub listen: SocketAddr,
    /// Serving certificate chain (PEM); reloaded when the file changes.
    pub tls_cert: PathBuf,
    /// Serving private key (PEM); reloaded with the certificate.
    pub tls_key: PathBuf,
    /// Lineage policy (`spec/policy.md`); reloaded when the file changes.
    pub policy: PathBuf,
    /// Attestation store directory (`spec/lineage.md` §4).
    pub store: PathBuf,
    /// Objects without a model annotation.
    #[serde(default = "default_no_model")]
    pub no_model: NoModel,
    /// Admit when no decision could be made in time (store slow or broken). Off by
    /// default: the webhook fails closed.
    #[serde(default)]
    pub fail_open: bool,
    /// Positive decisions kept (entries).
    #[serde(default = "default_cache_entries")]
    pub cache_entries: usize,
    /// How long a positive decision is kept, seconds.
    #[serde(default = "default_cache_ttl")]
    pub cache_ttl_seconds: u64,
    /// Largest request body accepted, bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Deadline when the API server gives none (`?timeout=`), milliseconds.
    #[serde(default = "default_timeout")]
    pub default_timeout_ms: u64,
    /// How often certificate and policy files are checked for changes, milliseconds.
    #[serde(default = "default_reload")]
    pub reload_interval_ms: u64,
}

fn default_no_model() -> NoModel {
    NoModel::Allow
}
fn default_cache_entries() -> usize {
    10_000
}
fn default_cache_ttl() -> u64 {
    300
}
fn default_max_body() -> usize {
    3 << 20
}
fn default_timeout() -> u64 {
    10_000
}
fn default_reload() -> u64 {
    2_000
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, an unknown key, or a wrong type.
    #[error("invalid configuration")]
    Toml(#[source] toml::de::Error),
    /// A value that parses but cannot work.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads and checks a configuration file; relative paths are taken from its folder.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.into(),
            source,
        })?;
        Self::from_toml(&text, path.parent().unwrap_or(Path::new(".")))
    }

    /// Parses and checks configuration text; relative paths are taken from `base`.
    pub fn from_toml(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(ConfigError::Toml)?;
        for p in [
            &mut config.tls_cert,
            &mut config.tls_key,
            &mut config.policy,
            &mut config.store,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if config.cache_entries == 0 && config.cache_ttl_seconds > 0 {
            return Err(ConfigError::Invalid(
                "cache_entries is 0 but cache_ttl_seconds is not".into(),
            ));
        }
        if config.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "max_body_bytes below 1024 cannot hold an AdmissionReview".into(),
            ));
        }
        for (what, p) in [
            ("tls_cert", &config.tls_cert),
            ("tls_key", &config.tls_key),
            ("policy", &config.policy),
        ] {
            if !p.is_file() {
                return Err(ConfigError::Invalid(format!(
                    "{what} {} is not a readable file",
                    p.display()
                )));
            }
        }
        if !config.store.is_dir() {
            return Err(ConfigError::Invalid(format!(
                "store {} is not a directory",
                config.store.display()
            )));
        }
        Ok(config)
    }
}
