//! Who signs: a local private key (optionally with an RFC 3161 timestamp), or Sigstore
//! keyless (an ephemeral key, a Fulcio certificate for the caller's OIDC identity, a
//! Rekor entry, a timestamp where the signing configuration names a TSA). Every bundle
//! made here is checked against its trust root before the caller writes it, so a
//! misconfigured instance fails at signing time, not at the first verifier.

use std::io::IsTerminal as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use modelseal_core::statement::{Statement, keyless_binding};
use modelseal_core::{Blake3Digest, Bundle, KeySigner};
use modelseal_verify::keyless;
use sigstore_sign::oidc::IdentityToken;
use sigstore_sign::{SigningContext, SigningServices, SigstoreInstance};

use crate::cli::SignerArgs;

/// Each call to a Sigstore service must answer within this.
const SERVICE_TIMEOUT: Duration = Duration::from_secs(60);
/// Connecting to a Sigstore service must succeed within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// An identity token file larger than this is not a token.
const MAX_TOKEN_BYTES: u64 = 64 * 1024;

/// The signer the flags name.
pub enum StatementSigner {
    /// A private key; `timestamp_url` asks a TSA to timestamp each signature.
    Key {
        key: Box<dyn KeySigner>,
        timestamps: Option<Timestamper>,
    },
    /// Sigstore keyless.
    Keyless(Box<KeylessSession>),
}

/// What the signer reports about a bundle it made.
pub struct Issued {
    pub bundle: Bundle,
    /// One line or more for the human summary: key, or identity and log entry.
    pub signer_text: String,
    /// The same, for `--json` (the `signer` object of spec/cli.md).
    pub signer_json: serde_json::Value,
}

impl StatementSigner {
    /// Loads the key, or obtains an identity token and prepares the Sigstore clients.
    pub fn from_args(args: &SignerArgs) -> Result<Self> {
        if args.keyless {
            return Ok(Self::Keyless(Box::new(KeylessSession::start(args)?)));
        }
        let path = args
            .key
            .as_deref()
            .context("--key or --keyless is required")?;
        let key = crate::commands::load_signer(path)?;
        let timestamps = match &args.timestamp_url {
            Some(url) => Some(Timestamper::new(url, args.trusted_root.as_deref())?),
            None => None,
        };
        Ok(Self::Key { key, timestamps })
    }

    /// The private key, for formats that sign with one directly (OMS key bundles).
    pub fn key(&self) -> Option<&dyn KeySigner> {
        match self {
            Self::Key { key, .. } => Some(key.as_ref()),
            Self::Keyless(_) => None,
        }
    }

    /// Signs a native statement (its subjects named by BLAKE3 roots). Keylessly, each
    /// subject first gets its keyless binding digest (`spec/sigstore.md` §4).
    pub fn sign_native<P: serde::Serialize>(
        &self,
        mut statement: Statement<P>,
        root: &Blake3Digest,
    ) -> Result<Issued> {
        match self {
            Self::Key { key, .. } => self.finish_key_bundle(modelseal_core::sign_statement_keyed(
                &statement,
                key.as_ref(),
            )?),
            Self::Keyless(session) => {
                statement.bind_for_keyless();
                session.sign(&statement.to_json(), keyless_binding(root))
            }
        }
    }

    /// Signs an OMS statement keylessly; with a key, timestamps a bundle signed already.
    pub fn sign_oms(&self, statement: &Statement, root: [u8; 32]) -> Result<Issued> {
        match self {
            Self::Keyless(session) => session.sign(&statement.to_json(), root),
            Self::Key { .. } => bail!("OMS key bundles are signed by sign_model_oms"),
        }
    }

    /// Adds the timestamp (if asked for) to a bundle signed with the key: the native
    /// path above, and OMS key bundles, which `sign_model_oms` signs.
    pub fn finish_key_bundle(&self, mut bundle: Bundle) -> Result<Issued> {
        let Self::Key { key, timestamps } = self else {
            bail!("keyless bundles are finished by the session");
        };
        let public = key.verifying_key();
        let fingerprint = public.fingerprint();
        let mut signer_text = format!("{} {fingerprint}", public.algorithm());
        if key.location() != "file" {
            signer_text.push_str(&format!(" ({})", key.location()));
        }
        let mut timestamped_at = None;
        if let Some(tsa) = timestamps {
            let at = tsa.stamp(&mut bundle)?;
            signer_text.push_str(&format!("\n  timestamp Unix time {at} from {}", tsa.url));
            timestamped_at = Some(at);
        }
        Ok(Issued {
            bundle,
            signer_text,
            signer_json: serde_json::json!({
                "algorithm": public.algorithm().to_string(),
                "fingerprint": fingerprint.to_string(),
                "keyLocation": key.location(),
                "timestampedAt": timestamped_at,
            }),
        })
    }
}

/// An HTTP client for Sigstore services, every request bounded in time.
fn http_client() -> Result<sigstore_sign::reqwest::Client> {
    sigstore_sign::reqwest::Client::builder()
        .timeout(SERVICE_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .context("cannot set up an HTTP client")
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Reads at most [`MAX_TOKEN_BYTES`] (a FIFO or a device has no size to check first).
fn read_small(path: &Path, what: &str) -> Result<String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_TOKEN_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {what} {} as UTF-8 text", path.display()))?;
    if text.len() as u64 > MAX_TOKEN_BYTES {
        bail!(
            "{what} {} is more than {MAX_TOKEN_BYTES} bytes",
            path.display()
        );
    }
    Ok(text)
}

/// RFC 3161 timestamps for key-signed bundles, from one TSA, checked against the trust
/// root's timestamp authorities before they are kept.
pub struct Timestamper {
    url: String,
    authorities: Vec<modelseal_verify::sigstore_verify::types::TsaAuthority>,
}

impl Timestamper {
    fn new(url: &str, trusted_root: Option<&Path>) -> Result<Self> {
        let json = trusted_root
            .map(|p| crate::commands::read_text(p, "trusted root"))
            .transpose()?;
        let authorities = keyless::timestamp_authorities(json.as_deref())
            .context("cannot read the timestamp authorities of the trusted root")?;
        if authorities.is_empty() {
            bail!("the trusted root names no timestamp authority to check the timestamp against");
        }
        Ok(Self {
            url: url.to_owned(),
            authorities,
        })
    }

    /// Asks the TSA to timestamp the bundle's signature, checks the answer, and records
    /// it in `timestampVerificationData`. Returns the time it vouches for.
    fn stamp(&self, bundle: &mut Bundle) -> Result<u64> {
        let signature = bundle
            .dsse_envelope
            .signatures
            .first()
            .map(|s| s.sig.clone())
            .context("bundle has no signature to timestamp")?;
        let client = sigstore_sign::tsa::TimestampClient::builder(&self.url)
            .with_http_client(http_client()?)
            .build()
            .with_context(|| format!("timestamp authority {}", self.url))?;
        let bytes = sigstore_sign::types::SignatureBytes::new(signature.clone());
        let token = runtime()?
            .block_on(client.timestamp_signature(&bytes))
            .with_context(|| format!("timestamp authority {} refused or failed", self.url))?;
        let der = token.as_bytes().to_vec();
        bundle.verification_material.timestamp_verification_data = Some(serde_json::json!({
            "rfc3161Timestamps": [
                {"signedTimestamp": base64::engine::general_purpose::STANDARD.encode(&der)}
            ]
        }));
        modelseal_verify::timestamps::signing_time(bundle, &signature, &self.authorities)
            .with_context(|| {
                format!(
                    "the timestamp from {} does not verify against the trusted root",
                    self.url
                )
            })?
            .context("the timestamp was not kept")
    }
}

/// A keyless signing session: the identity token, the services, and the root the
/// bundles must verify against.
pub struct KeylessSession {
    runtime: tokio::runtime::Runtime,
    signer: sigstore_sign::Signer,
    trusted_root: Option<String>,
    services: String,
}

impl KeylessSession {
    fn start(args: &SignerArgs) -> Result<Self> {
        let services = match &args.signing_config {
            Some(path) => {
                let json = crate::commands::read_text(path, "signing config")?;
                let config = sigstore_sign::trust_root::SigningConfig::from_json(&json)
                    .with_context(|| format!("signing config {}", path.display()))?;
                SigningServices::from_signing_config(&config)
                    .with_context(|| format!("signing config {}", path.display()))?
            }
            None => SigningServices::from_embedded(SigstoreInstance::PublicGood)
                .context("the built-in public-good signing config")?,
        };
        services
            .validate()
            .context("the signing config cannot produce a verifiable bundle")?;
        let trusted_root = args
            .trusted_root
            .as_deref()
            .map(|p| crate::commands::read_text(p, "trusted root"))
            .transpose()?;
        // One instance for both: the services of one and the root of another would put
        // the signer's identity in a log before the check that then fails.
        match (&trusted_root, &args.signing_config) {
            (None, Some(_)) => bail!(
                "the signing config names a private Sigstore instance: give its trusted root too (--trusted-root, or the policy's [sigstore] trusted_root), so the bundle can be checked before it is written"
            ),
            (Some(_), None) => bail!(
                "a trusted root names a private Sigstore instance: give its signing config too, or the signature would go to the public-good services"
            ),
            _ => {}
        }
        let described = format!(
            "Fulcio {}, Rekor {}{}",
            services.fulcio_url(),
            services.rekor_url(),
            services
                .tsa_url()
                .map(|t| format!(", TSA {t}"))
                .unwrap_or_default()
        );
        let context = SigningContext::new(services).with_http_client(http_client()?);
        let runtime = runtime()?;
        let signer = match runtime.block_on(identity_token(args))? {
            Some(token) => {
                if token.is_expired() {
                    bail!(
                        "the identity token for {} expired at {}; get a fresh one",
                        token.identity(),
                        token.expiration()
                    );
                }
                context.signer(token)
            }
            None if std::io::stdin().is_terminal() && context.services().oidc_url().is_some() => {
                runtime
                    .block_on(context.authenticate())
                    .context("interactive sign-in failed")?
            }
            None => bail!(
                "no identity token: pass --identity-token-file, set SIGSTORE_ID_TOKEN, run in CI with OIDC credentials (GitHub Actions: `permissions: id-token: write`), or run on a terminal to sign in"
            ),
        };
        Ok(Self {
            signer,
            runtime,
            trusted_root,
            services: described,
        })
    }

    /// Signs an in-toto statement (DSSE), whose subjects include `digest` (SHA-256),
    /// and checks the bundle against the trusted root.
    fn sign(&self, statement: &[u8], digest: [u8; 32]) -> Result<Issued> {
        let issued = self
            .runtime
            .block_on(self.signer.sign_raw_statement(statement))
            .with_context(|| format!("keyless signing failed ({})", self.services))?;
        let json = issued
            .to_json()
            .context("the Sigstore bundle does not serialize")?;
        let checked = keyless::check_issued(&json, digest, self.trusted_root.as_deref())
            .map_err(anyhow::Error::new)
            .context(
                "the new keyless bundle does not verify against the trusted root; nothing written",
            )?;
        let bundle = Bundle::from_json(json.as_bytes())
            .context("the Sigstore bundle is not one modelseal reads")?;
        Ok(Issued {
            bundle,
            signer_json: serde_json::json!({
                "algorithm": "keyless",
                "identity": checked.identity,
                "issuer": checked.issuer,
                "logIndex": checked.log_index,
                "signedAt": checked.signed_at,
            }),
            signer_text: format!(
                "keyless {} from {}\n  logged  index {} at Unix time {}",
                checked.identity,
                checked.issuer,
                checked
                    .log_index
                    .map_or_else(|| "?".to_owned(), |i| i.to_string()),
                checked
                    .signed_at
                    .map_or_else(|| "?".to_owned(), |t| t.to_string()),
            ),
        })
    }
}

/// The identity token, from the first source that has one: the flag or file, the
/// `SIGSTORE_ID_TOKEN` variable, or ambient CI credentials (GitHub Actions, GitLab CI,
/// Buildkite, CircleCI). `None`: the caller may sign in interactively.
async fn identity_token(args: &SignerArgs) -> Result<Option<IdentityToken>> {
    let parse = |raw: &str, source: &str| {
        IdentityToken::from_jwt(raw.trim())
            .map(Some)
            .with_context(|| format!("the identity token from {source} is not a JWT"))
    };
    if let Some(raw) = &args.identity_token {
        return parse(raw, "--identity-token");
    }
    if let Some(path) = &args.identity_token_file {
        let raw = read_small(path, "identity token")?;
        return parse(&raw, &path.display().to_string());
    }
    if let Ok(raw) = std::env::var("SIGSTORE_ID_TOKEN") {
        if !raw.trim().is_empty() {
            return parse(&raw, "SIGSTORE_ID_TOKEN");
        }
    }
    // The detector's HTTP client has no time limit of its own.
    tokio::time::timeout(SERVICE_TIMEOUT, IdentityToken::detect_ambient())
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "ambient CI credentials did not answer within {} s",
                SERVICE_TIMEOUT.as_secs()
            )
        })?
        .context("ambient CI credentials were found but failed")
}
