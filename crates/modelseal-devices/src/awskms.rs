//! A signing key in AWS KMS, through the AWS SDK for Rust. modelseal hashes the message;
//! KMS signs the digest (`MessageType=DIGEST`, ECDSA over the curve's hash) and returns a
//! DER signature. The public key comes from `GetPublicKey` and is checked against the key
//! spec, usage and signing algorithms KMS reports before anything is hashed.
//!
//! Credentials, region and the endpoint come from the SDK's usual configuration
//! (environment, profiles, SSO, instance roles, `AWS_ENDPOINT_URL_KMS`), except that a
//! key ARN's region and an endpoint in the name win. Every call has a deadline
//! ([`TIMEOUT_ENV`], default 30 s) so a KMS that does not answer cannot hang a release.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_kms::config::ProvideCredentials;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec};
use modelseal_core::{KeyAlgorithm, KeyError, KeySigner, VerifyingKey};
use sha2::Digest as _;

use crate::awskms_name::AwsKmsKeyName;

/// Seconds one KMS operation may take, retries included (default 30).
pub const TIMEOUT_ENV: &str = "MODELSEAL_KMS_TIMEOUT";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// An asymmetric ECC_NIST_* signing key in AWS KMS.
pub struct AwsKmsSigner {
    runtime: tokio::runtime::Runtime,
    client: aws_sdk_kms::Client,
    key_id: String,
    public: VerifyingKey,
    algorithm: SigningAlgorithmSpec,
    described: String,
}

impl AwsKmsSigner {
    /// Configures the SDK, reads the key's public part and checks it can sign.
    pub fn open(name: &AwsKmsKeyName) -> Result<Self, KeyError> {
        let described = match &name.endpoint {
            Some(endpoint) => format!("AWS KMS key {} at {endpoint}", name.key_id),
            None => format!("AWS KMS key {}", name.key_id),
        };
        let timeout = deadline(&described)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| KeyError::Device(format!("{described}: cannot start the SDK: {e}")))?;
        let client = on_own_thread(&runtime, configure(name, timeout))?;
        let client = client.map_err(|why| KeyError::Device(format!("{described}: {why}")))?;
        let answer = on_own_thread(
            &runtime,
            client.get_public_key().key_id(&name.key_id).send(),
        )?
        .map_err(|e| {
            KeyError::Device(format!(
                "{described}: cannot read the public key: {}",
                explain(&e)
            ))
        })?;
        let (public, algorithm) = check_public_key(&answer, &described)?;
        Ok(Self {
            runtime,
            client,
            key_id: name.key_id.clone(),
            public,
            algorithm,
            described,
        })
    }
}

fn deadline(described: &str) -> Result<Duration, KeyError> {
    match std::env::var(TIMEOUT_ENV) {
        Err(_) => Ok(DEFAULT_TIMEOUT),
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(seconds) if (1..=3600).contains(&seconds) => Ok(Duration::from_secs(seconds)),
            _ => Err(KeyError::Device(format!(
                "{described}: {TIMEOUT_ENV}={text:?} is not a number of seconds from 1 to 3600"
            ))),
        },
    }
}

async fn configure(name: &AwsKmsKeyName, timeout: Duration) -> Result<aws_sdk_kms::Client, String> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(timeout.min(Duration::from_secs(5)))
                .operation_attempt_timeout(timeout.min(Duration::from_secs(10)))
                .operation_timeout(timeout)
                .build(),
        );
    if let Some(region) = &name.region {
        loader = loader.region(Region::new(region.clone()));
    }
    let shared = loader.load().await;
    if shared.region().is_none() {
        return Err(
            "no AWS region: set AWS_REGION (or a profile's region), or name the key by its ARN"
                .into(),
        );
    }
    // Credentials are looked for once here so that their absence gets its own words; the
    // client keeps the SDK's provider, which refreshes them during a long hash.
    let provider = shared
        .credentials_provider()
        .ok_or("no AWS credentials provider is configured")?;
    if let Err(e) = provider.provide_credentials().await {
        return Err(match e {
            CredentialsError::CredentialsNotLoaded(_) => "no AWS credentials found (looked in the environment, profiles, SSO, web identity, the container and the instance)".to_owned(),
            other => format!("cannot load AWS credentials: {}", causes(&other)),
        });
    }
    let mut config = aws_sdk_kms::config::Builder::from(&shared);
    if let Some(endpoint) = &name.endpoint {
        config = config.endpoint_url(format!("https://{endpoint}"));
    }
    Ok(aws_sdk_kms::Client::from_conf(config.build()))
}

/// Runs `future` to completion on a thread of its own, so that signing works the same
/// whether or not the caller is itself inside an async runtime.
fn on_own_thread<F>(runtime: &tokio::runtime::Runtime, future: F) -> Result<F::Output, KeyError>
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| runtime.block_on(future))
            .join()
            .map_err(|_| KeyError::Device("the AWS SDK thread stopped unexpectedly".into()))
    })
}

fn check_public_key(
    answer: &aws_sdk_kms::operation::get_public_key::GetPublicKeyOutput,
    described: &str,
) -> Result<(VerifyingKey, SigningAlgorithmSpec), KeyError> {
    let fail = |why: String| KeyError::Device(format!("{described}: {why}"));
    if answer.key_usage() != Some(&KeyUsageType::SignVerify) {
        let usage = answer.key_usage().map_or("none", KeyUsageType::as_str);
        return Err(fail(format!("the key's usage is {usage}, not SIGN_VERIFY")));
    }
    // KeySpec, or its deprecated twin CustomerMasterKeySpec (same values), which is all
    // some KMS-compatible services (moto among them) return.
    #[allow(deprecated)]
    let spec = answer
        .key_spec()
        .map(KeySpec::as_str)
        .or(answer.customer_master_key_spec().map(|s| s.as_str()))
        .unwrap_or("none");
    let (expected, algorithm) = match spec {
        "ECC_NIST_P256" => (KeyAlgorithm::EcdsaP256, SigningAlgorithmSpec::EcdsaSha256),
        "ECC_NIST_P384" => (KeyAlgorithm::EcdsaP384, SigningAlgorithmSpec::EcdsaSha384),
        "ECC_NIST_P521" => (KeyAlgorithm::EcdsaP521, SigningAlgorithmSpec::EcdsaSha512),
        other => {
            return Err(fail(format!(
                "the key spec is {}; modelseal signs with ECC_NIST_P256, ECC_NIST_P384 or ECC_NIST_P521 keys in AWS KMS",
                printable(other)
            )));
        }
    };
    if !answer.signing_algorithms().contains(&algorithm) {
        return Err(fail(format!(
            "the key does not offer {}",
            algorithm.as_str()
        )));
    }
    let der = answer
        .public_key()
        .ok_or_else(|| fail("KMS returned no public key".into()))?;
    let public = VerifyingKey::from_spki_der(der.as_ref())
        .map_err(|e| fail(format!("the public key KMS returned does not parse ({e})")))?;
    if public.algorithm() != expected {
        return Err(fail(format!(
            "the public key is {} but KMS calls the key {}",
            public.algorithm(),
            printable(spec)
        )));
    }
    Ok((public, algorithm))
}

impl KeySigner for AwsKmsSigner {
    fn verifying_key(&self) -> VerifyingKey {
        self.public.clone()
    }

    fn sign_message(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let digest = match self.public.algorithm() {
            KeyAlgorithm::EcdsaP256 => sha2::Sha256::digest(message).to_vec(),
            KeyAlgorithm::EcdsaP384 => sha2::Sha384::digest(message).to_vec(),
            KeyAlgorithm::EcdsaP521 => sha2::Sha512::digest(message).to_vec(),
            other => return Err(KeyError::UnsupportedAlgorithm { found: other }),
        };
        let request = self
            .client
            .sign()
            .key_id(&self.key_id)
            .message(Blob::new(digest))
            .message_type(MessageType::Digest)
            .signing_algorithm(self.algorithm.clone())
            .send();
        let answer = on_own_thread(&self.runtime, request)?.map_err(|e| {
            KeyError::Device(format!("{}: cannot sign: {}", self.described, explain(&e)))
        })?;
        let signature = answer.signature().ok_or_else(|| {
            KeyError::Device(format!("{}: KMS returned no signature", self.described))
        })?;
        Ok(signature.as_ref().to_vec())
    }

    fn location(&self) -> &'static str {
        "awskms"
    }
}

/// What went wrong, in words: the service's error code and message, or which part of
/// reaching it failed. Never the request, so never a credential.
fn explain<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match error {
        SdkError::ServiceError(service) => {
            let inner = service.err();
            let code = inner.code().unwrap_or("an unnamed error");
            let meaning = match code {
                "NotFoundException" => " (no such key or alias)",
                "AccessDeniedException" | "UnrecognizedClientException" => {
                    " (the credentials may not use this key)"
                }
                "DisabledException" => " (the key is disabled)",
                "KMSInvalidStateException" => " (the key is pending deletion or import)",
                "InvalidKeyUsageException" => " (the key cannot sign)",
                _ => "",
            };
            match inner.message() {
                Some(message) => format!(
                    "KMS refused with {}{meaning}: {}",
                    printable(code),
                    printable(message)
                ),
                None => format!("KMS refused with {}{meaning}", printable(code)),
            }
        }
        SdkError::TimeoutError(_) => {
            format!("KMS did not answer in time (the deadline is set by {TIMEOUT_ENV}, in seconds)")
        }
        SdkError::DispatchFailure(failure) if failure.is_timeout() => {
            format!("KMS did not answer in time (the deadline is set by {TIMEOUT_ENV}, in seconds)")
        }
        SdkError::DispatchFailure(failure) if failure.is_io() => {
            format!("cannot reach KMS: {}", innermost(error))
        }
        SdkError::ResponseError(_) => {
            "the endpoint's answer is not a KMS response (is it a KMS endpoint?)".into()
        }
        _ => causes(error),
    }
}

/// The error's chain of causes, each once, shown as text only.
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut seen: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(current) = next {
        let text = printable(&current.to_string());
        if !text.is_empty() && !seen.iter().any(|s| s.contains(&text)) {
            seen.push(text);
        }
        next = current.source();
    }
    seen.join(": ")
}

/// The error's deepest cause: for a failed connection, the reason without the layers.
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    printable(&current.to_string())
}

/// Text from a remote party, made safe to print: control characters dropped, length
/// bounded.
fn printable(text: &str) -> String {
    let mut out: String = text.chars().filter(|c| !c.is_control()).take(300).collect();
    if text.chars().count() > 300 {
        out.push('…');
    }
    out
}
