//! The server's configuration file (TOML, unknown keys refused), documented in
//! `spec/admission.md` §1.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use modelseal_core::ArtifactDigest;
use modelseal_lineage::store::StoreLimits;

/// What to do with an object that names no model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoModel {
    /// Admit it (the webhook only guards what names a model).
    Allow,
    /// Refuse it (every object in scope must name a verified model).
    Deny,
}

/// What to do with a model named by tag (`oci_tags`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OciTags {
    /// Refuse: name the model by digest.
    #[default]
    Refuse,
    /// Decide for the manifest the tag names now.
    Resolve,
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
    /// Attestation store: a directory (`spec/lineage.md` §4) or a registry repository
    /// `oci://REGISTRY/REPOSITORY` (`spec/oci.md` §8), shared by every replica.
    pub store: PathBuf,
    /// For a registry store or OCI references: a CA certificate (PEM) trusted for the
    /// registry's TLS, beside the system's.
    #[serde(default)]
    pub registry_ca: Option<PathBuf>,
    /// For a registry store or OCI references: how long connecting, each read, and each
    /// small document may take, milliseconds. Decisions also end at their deadline.
    #[serde(default = "default_registry_timeout")]
    pub registry_timeout_ms: u64,
    /// Registries (`host[:port]`, as written in references) whose models may be admitted
    /// by OCI reference; a reference to any other is refused before any request, so an
    /// object's author cannot make the server reach hosts of their choosing. Empty (the
    /// default): OCI references are refused.
    #[serde(default)]
    pub oci_registries: Vec<String>,
    /// A reference by tag: `refuse` (the default: the kubelet pulls the tag itself, later,
    /// and a tag can move in between) or `resolve` (decide for what the tag names now,
    /// kept 30 s).
    #[serde(default)]
    pub oci_tags: OciTags,
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
    /// How often certificate, policy, key and token files are checked for changes (and
    /// the store's health probed), milliseconds.
    #[serde(default = "default_reload")]
    pub reload_interval_ms: u64,
    /// A file holding the bearer token `/v1/admit` requires (`Authorization: Bearer …`);
    /// reloaded when it changes. Without it `/v1/admit` is switched off (403).
    #[serde(default)]
    pub admit_token_file: Option<PathBuf>,
    /// Timeouts and caps (`spec/admission.md` §5).
    #[serde(default)]
    pub limits: Limits,
    /// Faults injected by tests; never read from a file.
    #[serde(skip)]
    #[doc(hidden)]
    pub hooks: Hooks,
}

/// Timeouts and caps. Every default is well under the 30 s an API server waits at most.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// A TLS handshake not finished in this time closes the connection, milliseconds.
    pub handshake_timeout_ms: u64,
    /// The first request's headers must arrive within this time of the handshake (and,
    /// for HTTP/1.1, every later request's head within this time of hyper starting to
    /// wait for it, which also closes idle HTTP/1.1 connections), milliseconds.
    pub header_timeout_ms: u64,
    /// A request body must arrive whole within this time of its headers, milliseconds.
    pub body_timeout_ms: u64,
    /// A connection with no request in service for this long is closed, milliseconds.
    pub idle_timeout_ms: u64,
    /// Open connections; one more is closed at once, before its TLS handshake.
    pub max_connections: usize,
    /// HTTP/2 streams per connection.
    pub max_streams_per_connection: u32,
    /// Request body bytes buffered at once over all requests; a request whose body
    /// (its Content-Length, or `max_body_bytes` when it has none) does not fit gets 503.
    pub body_bytes_in_flight: u64,
    /// Requests waiting for or making an uncached decision; one more gets a 503.
    pub max_in_flight: usize,
    /// Threads that read the store and check signatures; a stuck read holds one, and
    /// no more than this many are ever used.
    pub blocking_threads: usize,
    /// The largest store file read, bytes.
    pub store_file_bytes: u64,
    /// The most bytes read from the store for one digest, bytes.
    pub store_digest_bytes: u64,
    /// The most store files considered for one digest.
    pub store_files_per_digest: usize,
    /// How long a SIGTERM waits for requests in flight, milliseconds.
    pub shutdown_grace_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        let store = StoreLimits::default();
        Self {
            handshake_timeout_ms: 5_000,
            header_timeout_ms: 5_000,
            body_timeout_ms: 10_000,
            idle_timeout_ms: 15_000,
            max_connections: 512,
            max_streams_per_connection: 16,
            body_bytes_in_flight: 32 << 20,
            max_in_flight: 256,
            blocking_threads: 4,
            store_file_bytes: store.max_file_bytes,
            store_digest_bytes: 32 << 20,
            store_files_per_digest: store.max_files_per_digest,
            // Above the longest decision (27 s: 90% of the API server's 30 s at most).
            shutdown_grace_ms: 28_000,
        }
    }
}

impl Limits {
    /// The store's share of the limits.
    pub fn store(&self) -> StoreLimits {
        StoreLimits {
            max_file_bytes: self.store_file_bytes,
            max_bytes_per_digest: self.store_digest_bytes,
            max_files_per_digest: self.store_files_per_digest,
        }
    }

    /// A duration in milliseconds as a [`Duration`].
    pub(crate) fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(format!("limits: {m}")));
        for (name, value, most) in [
            ("handshake_timeout_ms", self.handshake_timeout_ms, 30_000),
            ("header_timeout_ms", self.header_timeout_ms, 30_000),
            ("body_timeout_ms", self.body_timeout_ms, 30_000),
            ("idle_timeout_ms", self.idle_timeout_ms, 600_000),
            ("shutdown_grace_ms", self.shutdown_grace_ms, 600_000),
        ] {
            if value == 0 || value > most {
                return bad(format!("{name} must be between 1 and {most}, not {value}"));
            }
        }
        for (name, value, most) in [
            ("max_connections", self.max_connections, 1 << 20),
            ("max_in_flight", self.max_in_flight, 1 << 16),
            ("blocking_threads", self.blocking_threads, 256),
            (
                "store_files_per_digest",
                self.store_files_per_digest,
                1 << 20,
            ),
            (
                "max_streams_per_connection",
                self.max_streams_per_connection as usize,
                1024,
            ),
        ] {
            if value == 0 || value > most {
                return bad(format!("{name} must be between 1 and {most}, not {value}"));
            }
        }
        if !(1024..=1 << 40).contains(&self.body_bytes_in_flight) {
            return bad("body_bytes_in_flight must be between 1024 and 1 TiB".into());
        }
        if !(1024..=1 << 30).contains(&self.store_file_bytes)
            || !(self.store_file_bytes..=4 << 30).contains(&self.store_digest_bytes)
        {
            return bad(
                "store_file_bytes must be between 1024 and 1 GiB, and store_digest_bytes between store_file_bytes and 4 GiB"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Code a test runs inside every uncached decision, on the worker thread, before the
/// store is read: to make the store block, slow or panic. Not reachable from a
/// configuration file.
pub type DecisionHook = Arc<dyn Fn(&ArtifactDigest) + Send + Sync>;

/// Faults a test injects.
#[derive(Clone, Default)]
#[doc(hidden)]
pub struct Hooks {
    /// Runs before each uncached decision reads the store.
    pub before_decision: Option<DecisionHook>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("before_decision", &self.before_decision.is_some())
            .finish()
    }
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
fn default_registry_timeout() -> u64 {
    5_000
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
    /// The registry client settings this configuration names.
    pub fn registry_options(&self) -> Result<modelseal_oci::RegistryOptions, ConfigError> {
        let mut options = modelseal_oci::RegistryOptions::default();
        if let Some(ca) = &self.registry_ca {
            let pem = std::fs::read(ca).map_err(|source| ConfigError::Io {
                path: ca.clone(),
                source,
            })?;
            options.ca_pem.push(pem);
        }
        options.timeout = std::time::Duration::from_millis(self.registry_timeout_ms);
        options.document_deadline = options.timeout;
        Ok(options)
    }

    /// Opens the attestation store this configuration names, with its limits.
    pub fn open_store(
        &self,
    ) -> Result<modelseal_lineage::store::AttestationStore, Box<dyn std::error::Error + Send + Sync>>
    {
        let store = modelseal_lineage::store::AttestationStore::at(
            &self.store.display().to_string(),
            self.registry_options()?,
        )?;
        Ok(store.with_limits(self.limits.store()))
    }

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
        let store_is_registry = modelseal_oci::Reference::is_oci(&config.store.to_string_lossy());
        if store_is_registry {
            modelseal_oci::Reference::parse(&config.store.to_string_lossy())
                .map_err(|e| ConfigError::Invalid(format!("store: {e}")))?;
        }
        for p in [
            &mut config.tls_cert,
            &mut config.tls_key,
            &mut config.policy,
        ]
        .into_iter()
        .chain((!store_is_registry).then_some(&mut config.store))
        .chain(config.admit_token_file.as_mut())
        .chain(config.registry_ca.as_mut())
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        config.limits.check()?;
        if config.cache_entries == 0 && config.cache_ttl_seconds > 0 {
            return Err(ConfigError::Invalid(
                "cache_entries is 0 but cache_ttl_seconds is not".into(),
            ));
        }
        if !(1024..=64 << 20).contains(&config.max_body_bytes) {
            return Err(ConfigError::Invalid(
                "max_body_bytes must be between 1024 (an AdmissionReview) and 64 MiB".into(),
            ));
        }
        if config.max_body_bytes as u64 > config.limits.body_bytes_in_flight {
            return Err(ConfigError::Invalid(
                "max_body_bytes is larger than limits.body_bytes_in_flight: such a body could never be read".into(),
            ));
        }
        if !(100..=30_000).contains(&config.registry_timeout_ms) {
            return Err(ConfigError::Invalid(
                "registry_timeout_ms must be between 100 and 30000".into(),
            ));
        }
        if !(1..=30_000).contains(&config.default_timeout_ms) {
            return Err(ConfigError::Invalid(
                "default_timeout_ms must be between 1 and 30000 (an API server waits 30 s at most)"
                    .into(),
            ));
        }
        if !(100..=600_000).contains(&config.reload_interval_ms) {
            return Err(ConfigError::Invalid(
                "reload_interval_ms must be between 100 and 600000".into(),
            ));
        }
        for (what, p) in [
            ("tls_cert", &config.tls_cert),
            ("tls_key", &config.tls_key),
            ("policy", &config.policy),
        ]
        .into_iter()
        .chain(
            config
                .admit_token_file
                .as_ref()
                .map(|p| ("admit_token_file", p)),
        ) {
            if !p.is_file() {
                return Err(ConfigError::Invalid(format!(
                    "{what} {} is not a readable file",
                    p.display()
                )));
            }
        }
        if !store_is_registry && !config.store.is_dir() {
            return Err(ConfigError::Invalid(format!(
                "store {} is not a directory",
                config.store.display()
            )));
        }
        Ok(config)
    }
}
