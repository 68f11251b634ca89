//! Command-line flags. Only parsing lives here; each command resolves its flags into
//! library options in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit status:
  0  success; for verify, the model matches a trusted signature
  1  verification refused (tampered, missing or unsigned files, untrusted signer,
     bad signature, wrong payload or predicate type, malformed bundle)
  2  usage error or unreadable input (missing files, bad key file, I/O error)";

/// `0.1.0 (commit 0123456789ab)`: the commit is the build's git HEAD (build.rs), or
/// `unknown` for a build from a packaged crate with no MODELSEAL_COMMIT given.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("MODELSEAL_COMMIT"),
    ")"
);

/// Sign machine-learning models and verify them before they are used.
#[derive(Debug, Parser)]
#[command(name = "modelseal", version = VERSION, about, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub verbosity: Verbosity,
}

/// `-q` and `-v`, accepted before or after any subcommand.
#[derive(Debug, Args)]
pub struct Verbosity {
    /// No progress bar and no notes on stderr; results, warnings and errors still print
    #[arg(long, short, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More on stderr: what hashing read and how fast; `serve` logs debug events (-vv:
    /// trace) unless RUST_LOG is set
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl Verbosity {
    /// -1 under `-q`, else the number of `-v`.
    pub fn level(&self) -> i8 {
        if self.quiet {
            -1
        } else {
            self.verbose.min(i8::MAX as u8) as i8
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a key pair: PATH (PKCS#8, mode 0600) and PATH.pub (SPKI)
    #[command(after_help = PASSPHRASE_HELP)]
    Keygen(KeygenArgs),
    /// Print (or write) the public key of a signing key: a PEM file, or a key in a device
    /// (`pkcs11:` URI), so verifiers can be given the key the device signs with
    PublicKey(PublicKeyArgs),
    /// Print a model's BLAKE3 Merkle root (and its manifest with --json)
    Hash(HashArgs),
    /// Sign a model directory or file, writing a Sigstore bundle
    #[command(after_help = PASSPHRASE_HELP)]
    Sign(SignArgs),
    /// Verify a model against its signature and a trusted public key
    #[command(after_help = EXIT_CODES)]
    Verify(VerifyArgs),
    /// Verify any Sigstore bundle (message signature or DSSE) for one artifact, offline
    #[command(name = "verify-bundle", after_help = EXIT_CODES)]
    VerifyBundle(VerifyBundleArgs),
    /// Show what a signature bundle (or a model in a registry) claims, without verifying it
    Inspect(InspectArgs),
    /// Write the BLAKE3 outboard trees that let loaders verify each range they read
    Outboard(OutboardArgs),
    /// Pull a model from a registry into a new directory, verified before it appears
    #[command(after_help = EXIT_CODES)]
    Pull(PullArgs),
    /// Run the admission server (Kubernetes webhook and registry endpoint), HTTPS only
    Serve(ServeArgs),
    /// Keep verifying a deployed model: re-check on every change and periodically, with
    /// /healthz, /readyz and /metrics for probes and Prometheus
    #[command(after_help = WATCH_HELP)]
    Watch(WatchArgs),
    /// Write an AI bill of materials (CycloneDX ML-BOM or SPDX 3) from a verified lineage
    #[command(after_help = EXIT_CODES)]
    Bom(BomArgs),
    /// Attest how a model was made (signed SLSA provenance)
    #[command(subcommand)]
    Attest(AttestCommand),
    /// Keep attestations indexed by subject digest, in a directory or a registry
    #[command(subcommand)]
    Store(StoreCommand),
    /// Sign and verify a generated sample model, then show a tampered copy refused
    Demo,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout
    #[command(after_help = COMPLETIONS_HELP)]
    Completions(CompletionsArgs),
    /// Write man pages for modelseal and each of its commands into a directory
    Man(ManArgs),
}

const COMPLETIONS_HELP: &str = "\
Install:
  bash  modelseal completions bash > ~/.local/share/bash-completion/completions/modelseal
  zsh   modelseal completions zsh > \"${fpath[1]}/_modelseal\"
  fish  modelseal completions fish > ~/.config/fish/completions/modelseal.fish";

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory to write modelseal.1 and modelseal-COMMAND.1 into (made if missing)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

impl Command {
    /// Whether the run must print one JSON object on stdout, success or not.
    pub fn json(&self) -> bool {
        match self {
            Self::Hash(a) => a.json,
            Self::Sign(a) => a.json,
            Self::Verify(a) => a.json,
            Self::VerifyBundle(a) => a.json,
            Self::Inspect(a) => a.json,
            Self::Pull(a) => a.json,
            Self::Bom(a) => a.json,
            Self::Attest(AttestCommand::Training(a)) => a.json,
            Self::Store(StoreCommand::Add { json, .. } | StoreCommand::List { json, .. }) => *json,
            Self::Keygen(_)
            | Self::PublicKey(_)
            | Self::Outboard(_)
            | Self::Serve(_)
            | Self::Watch(_)
            | Self::Demo
            | Self::Completions(_)
            | Self::Man(_) => false,
        }
    }

    /// Whether the command's report says `verified`.
    pub fn verifies(&self) -> bool {
        matches!(
            self,
            Self::Verify(_) | Self::VerifyBundle(_) | Self::Pull(_)
        )
    }
}

#[cfg(test)]
mod rate_tests {
    use super::parse_rate;

    #[test]
    fn rates_parse_with_units() {
        assert_eq!(parse_rate("64MiB"), Ok(64 << 20));
        assert_eq!(parse_rate("10M/s"), Ok(10_000_000));
        assert_eq!(parse_rate("0"), Ok(0));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("5 parsecs").is_err());
        assert!(parse_rate("99999999999999999999GiB").is_err());
    }
}

const PASSPHRASE_HELP: &str = "\
Passphrases:
  An encrypted private key's passphrase is read from the environment variable
  MODELSEAL_PASSPHRASE when it is set, otherwise asked for on the terminal.";

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the private key; the public key goes to PATH.pub
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
    /// Signature algorithm (ECDSA keys are for the OMS format)
    #[arg(long, value_enum, default_value = "ed25519")]
    pub algorithm: Algorithm,
    /// Encrypt the private key with a passphrase (scrypt + AES-256-CBC, PKCS#8 PBES2)
    #[arg(long)]
    pub encrypt: bool,
    /// Replace existing key files
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct PublicKeyArgs {
    /// The signing key: a private key PEM file, pkcs11:token=…;object=…?module-path=…,
    /// tpm:handle=0x81… or awskms://[ENDPOINT]/KEY
    #[arg(value_name = "KEY")]
    pub key: PathBuf,
    /// Write the public key (SPKI PEM) here instead of printing it
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Replace an existing --out file
    #[arg(long, requires = "out")]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Algorithm {
    Ed25519,
    EcdsaP256,
    EcdsaP384,
    EcdsaP521,
    /// ML-DSA-65 (FIPS 204), post-quantum; native signatures only
    #[value(name = "ml-dsa-65")]
    MlDsa65,
}

#[derive(Debug, Args, Clone)]
pub struct WalkArgs {
    /// Leave out this path (model-relative, or a path inside the model); repeatable
    #[arg(long = "ignore", value_name = "PATH")]
    pub ignore: Vec<PathBuf>,
    /// Follow symbolic links that resolve to files inside the model (never outside)
    #[arg(long)]
    pub allow_symlinks: bool,
}

#[derive(Debug, Args)]
pub struct HashArgs {
    /// Model directory or single file
    pub model: PathBuf,
    /// native: the BLAKE3 Merkle root; oms: the OpenSSF Model Signing subject digest
    /// (SHA-256 over the resource digests, model-signing's ignore rules), as a bundle
    /// signed in that format names it
    #[arg(long, value_enum, default_value = "native")]
    pub format: Format,
    /// OMS: per-resource hash
    #[arg(long, value_enum, default_value = "sha256")]
    pub hash: OmsHashArg,
    /// OMS: one resource per file, or per shard of each file
    #[arg(long, value_enum, default_value = "files")]
    pub method: OmsMethodArg,
    /// OMS: shard size in bytes, with --method shards [default: 1000000000]
    #[arg(long, value_name = "BYTES")]
    pub shard_size: Option<u64>,
    #[command(flatten)]
    pub walk: WalkArgs,
    /// Print the root and the whole manifest as JSON
    #[arg(long)]
    pub json: bool,
}

/// How to reach a registry, for commands given an `oci://` reference.
#[derive(Debug, Args, Clone)]
pub struct RegistryArgs {
    /// Trust this CA certificate (PEM) for registry TLS, beside the system's; repeatable
    #[arg(long = "registry-ca", value_name = "CA_PEM")]
    pub registry_ca: Vec<PathBuf>,
    /// Seconds a registry may take to connect, to answer, or between two reads
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub registry_timeout: u64,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// The model: oci://REGISTRY/REPOSITORY[:TAG|@sha256:HEX]
    pub reference: String,
    /// The directory to create; it must not exist
    pub out: PathBuf,
    /// Trust and lineage flags, as for verify (the signature is found attached to the
    /// model unless --signature names a file)
    #[command(flatten)]
    pub verify: PullVerifyArgs,
    /// Replace OUT (a directory is removed and written anew, only once the model verified) if it exists
    #[arg(long)]
    pub force: bool,
    /// Print the result as one JSON object on stdout, also on failure (spec/cli.md)
    #[arg(long)]
    pub json: bool,
}

/// The verify flags that make sense for a pull.
#[derive(Debug, Args)]
pub struct PullVerifyArgs {
    /// The bundle to check [default: the bundles attached to the model as referrers]
    #[arg(long, value_name = "PATH")]
    pub signature: Option<PathBuf>,
    /// Trusted public key (SPKI PEM); repeat to trust several
    #[arg(long = "key", value_name = "PUB", required_unless_present_any = ["identity", "identity_regex", "policy"])]
    pub keys: Vec<PathBuf>,
    /// Lineage policy (TOML): the model's signers come from it
    #[arg(long, value_name = "POLICY", conflicts_with_all = ["keys", "identity", "identity_regex", "issuer", "trusted_root"])]
    pub policy: Option<PathBuf>,
    #[command(flatten)]
    pub keyless: KeylessArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// Model (or dataset) directory, a single file, or oci://REGISTRY/REPOSITORY[:TAG|@sha256:HEX]
    pub model: PathBuf,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// OCI: do not attach the bundle to the model as a referrer (write --signature only)
    #[arg(long, requires = "signature")]
    pub no_attach: bool,
    #[command(flatten)]
    pub signer: SignerArgs,
    /// Where to write the bundle [default: MODEL.sig beside the model]
    #[arg(long, value_name = "PATH")]
    pub signature: Option<PathBuf>,
    /// Subject name recorded in the statement [default: the model's file name]
    #[arg(long)]
    pub name: Option<String>,
    /// What is signed (native format)
    #[arg(long, value_enum, default_value = "model")]
    pub kind: Kind,
    /// Signature format: modelseal's BLAKE3 manifest, or OpenSSF Model Signing v1.0
    #[arg(long, value_enum, default_value = "native")]
    pub format: Format,
    /// OMS: per-resource hash
    #[arg(long, value_enum, default_value = "sha256")]
    pub hash: OmsHashArg,
    /// OMS: one resource per file, or per shard of each file
    #[arg(long, value_enum, default_value = "files")]
    pub method: OmsMethodArg,
    /// OMS: shard size in bytes, with --method shards [default: 1000000000]
    #[arg(long, value_name = "BYTES")]
    pub shard_size: Option<u64>,
    /// OMS: sign with this X.509 certificate for the key, carried in the bundle: a PEM
    /// file, or a pkcs11: URI naming the certificate on the token (the key's own URI
    /// finds the certificate with the same label and id)
    #[arg(
        long,
        value_name = "LEAF",
        requires = "key",
        conflicts_with = "keyless"
    )]
    pub certificate: Option<PathBuf>,
    /// OMS: intermediate certificates (PEM) to carry after the leaf; repeatable
    #[arg(
        long = "certificate-chain",
        value_name = "CHAIN_PEM",
        requires = "certificate"
    )]
    pub certificate_chain: Vec<PathBuf>,
    #[command(flatten)]
    pub walk: WalkArgs,
    /// Native format: also write outboard trees to SIGNATURE.outboard/ (one more read
    /// of each file over 64 KiB) for verified range reads
    #[arg(long)]
    pub outboard: bool,
    /// Replace the signature (and its outboard trees) if it exists
    #[arg(long)]
    pub force: bool,
    /// Re-sign from OLD, this model's signature by the same key: a file whose stamp (kept
    /// in OLD.stamps) is unchanged keeps OLD's digest, every other file is hashed. The
    /// result is the signature a full `sign` makes [default --signature: OLD]
    #[arg(long, value_name = "OLD", conflicts_with = "keyless")]
    pub update: Option<PathBuf>,
    /// With --update: hash every file anyway (OLD is still checked)
    #[arg(long, requires = "update")]
    pub rehash: bool,
    /// Keep no SIGNATURE.stamps beside the signature (the next --update hashes everything)
    #[arg(long)]
    pub no_stamps: bool,
    /// OMS: sign the files a `sha256sum` list names with the digests it gives, reading
    /// no file: MODEL only names the model (and the default --signature). What the list
    /// says is signed as said; a later verify of the files checks it
    #[arg(long, value_name = "FILE", conflicts_with_all = ["update", "from_manifest"])]
    pub from_digests: Option<PathBuf>,
    /// OMS, oci:// with --signature: sign the files a ModelPack manifest's raw layers
    /// hold (named by org.cncf.model.filepath) with the layer digests, reading no layer
    #[arg(long, requires = "signature")]
    pub from_manifest: bool,
    /// Print the result as one JSON object on stdout, also on failure (spec/cli.md)
    #[arg(long)]
    pub json: bool,
}

/// Who signs: a private key, or Sigstore keyless (see README, "Keyless signing in CI").
#[derive(Debug, Args, Clone)]
pub struct SignerArgs {
    /// Private key: a PKCS#8 PEM file, a key in a PKCS#11 token
    /// (pkcs11:token=…;object=…?module-path=…; PIN from pin-source=file:… or
    /// MODELSEAL_PKCS11_PIN), a TPM key (tpm:handle=0x81…) or an AWS KMS key
    /// (awskms://[ENDPOINT]/KEY-ID|alias/NAME|ARN)
    #[arg(long, value_name = "KEY", required_unless_present = "keyless")]
    pub key: Option<PathBuf>,
    /// Sign keylessly with Sigstore: an ephemeral key, a Fulcio certificate for your OIDC
    /// identity, a Rekor log entry, and a timestamp where the signing config names a TSA.
    /// The token comes from --identity-token(-file), SIGSTORE_ID_TOKEN, ambient CI
    /// credentials (GitHub Actions, GitLab CI, Buildkite, CircleCI), in that order
    #[arg(long, conflicts_with = "key")]
    pub keyless: bool,
    /// Keyless: the OIDC identity token (a JWT). Visible to other local users in the
    /// process list: prefer --identity-token-file or SIGSTORE_ID_TOKEN
    #[arg(
        long,
        value_name = "JWT",
        requires = "keyless",
        conflicts_with = "identity_token_file"
    )]
    pub identity_token: Option<String>,
    /// Keyless: read the OIDC identity token from this file
    #[arg(long, value_name = "FILE", requires = "keyless")]
    pub identity_token_file: Option<PathBuf>,
    /// Keyless: Sigstore SigningConfig v0.2 JSON naming Fulcio, Rekor, TSA and OIDC
    /// services [default: the built-in public-good instance]
    #[arg(long, value_name = "FILE", requires = "keyless")]
    pub signing_config: Option<PathBuf>,
    /// Sigstore TrustedRoot JSON every new bundle (or timestamp) is checked against
    /// before it is written [default: the built-in public-good instance]
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,
    /// Key signing: have this RFC 3161 timestamp authority timestamp the signature, so
    /// certificates are checked at that time (for keyless, the signing config names it)
    #[arg(long, value_name = "URL", conflicts_with = "keyless")]
    pub timestamp_url: Option<String>,
}

const WATCH_HELP: &str = "\
Readiness:
  /readyz answers 200 while every signed file has verified since its last change,
  and 503 (with the failures as JSON) from the moment a change is seen until the
  model verifies again. One JSON line per change and verdict goes to stdout.
Exit status:
  0  stopped by SIGTERM or SIGINT
  2  bad arguments, unreadable keys or policy, or the address cannot be bound";

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The deployed model directory or file
    pub model: PathBuf,
    /// Its signature [default: MODEL.sig beside the model]
    #[arg(long, value_name = "PATH")]
    pub signature: Option<PathBuf>,
    /// Trusted public key (SPKI PEM); repeat to trust several
    #[arg(
        long = "key",
        value_name = "PUB",
        required_unless_present_any = ["certificate_roots", "identity", "identity_regex", "policy"]
    )]
    pub keys: Vec<PathBuf>,
    /// Lineage policy (TOML): the model's signers and deny rules come from it
    #[arg(
        long,
        value_name = "POLICY",
        conflicts_with_all = ["keys", "certificate_roots", "identity", "identity_regex", "issuer", "trusted_root"]
    )]
    pub policy: Option<PathBuf>,
    #[command(flatten)]
    pub keyless: KeylessArgs,
    /// Trusted root certificate (PEM) for certificate-signed bundles; repeatable
    #[arg(long = "certificate-root", value_name = "CA_PEM")]
    pub certificate_roots: Vec<PathBuf>,
    /// Require the signature to be about exactly this artifact (`blake3:HEX` or
    /// `sha256:HEX`) [default: the one the first successful check found]
    #[arg(long, value_name = "DIGEST")]
    pub expect: Option<modelseal_core::ArtifactDigest>,
    /// Check only the files the signature lists, ignoring others present
    #[arg(long)]
    pub ignore_unsigned_files: bool,
    /// OMS `shards` signatures only: accept empty files the signature does not list (as
    /// for verify)
    #[arg(long)]
    pub allow_unsigned_empty_files: bool,
    /// Leave out this path in addition to those the signer recorded; repeatable
    #[arg(long = "ignore", value_name = "PATH")]
    pub ignore: Vec<PathBuf>,
    /// Address for /healthz, /readyz and /metrics (plain HTTP)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9464")]
    pub listen: std::net::SocketAddr,
    /// Time between the end of one full re-verification and the start of the next
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub interval: std::time::Duration,
    /// Read-rate limit of the periodic full passes, bytes per second (suffixes K, M, G,
    /// KiB, MiB, GiB; 0 for none). The first pass and checks after events are not paced
    #[arg(long, value_name = "RATE", default_value = "64MiB", value_parser = parse_rate)]
    pub max_read_rate: u64,
    /// How long events gather before the changed files are re-checked
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub debounce: std::time::Duration,
    /// Do not listen for filesystem events (for filesystems that send none, such as
    /// network mounts): rely on the periodic passes alone
    #[arg(long)]
    pub no_events: bool,
    /// How often to compare each signed file's metadata (inode, size, times) with what
    /// it was checked with, catching writes no event reports (through a hard link, a
    /// shared mapping, a link's target); 0 turns it off
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    pub stat_interval: std::time::Duration,
    /// Do not hold file leases on the signed files. Leases let watch see a writer before
    /// its first write, and refuse a file while any process holds it open for writing or
    /// mapped writable; they need a local filesystem and the files' owner or CAP_LEASE.
    /// Without them, writes are seen through timestamps only (a weaker mode: writes
    /// through a held shared mapping can go unseen until the periodic pass)
    #[arg(long)]
    pub no_leases: bool,
}

/// A byte rate: a number with an optional decimal (K, M, G) or binary (KiB, MiB, GiB)
/// suffix, and an optional `/s`.
fn parse_rate(text: &str) -> Result<u64, String> {
    let text = text.trim().trim_end_matches("/s");
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a byte rate such as 64MiB"))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KB" => 1_000,
        "M" | "MB" => 1_000_000,
        "G" | "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "unknown unit {other:?} (use K, M, G, KiB, MiB or GiB)"
            ));
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BomFormat {
    /// CycloneDX 1.6 JSON (ML-BOM)
    Cyclonedx,
    /// SPDX 3.0.1 JSON-LD with the AI and Dataset profiles
    Spdx,
}

#[derive(Debug, Args)]
pub struct BomArgs {
    /// The model directory or file (verified first, byte for byte)
    pub model: PathBuf,
    /// Its signature [default: MODEL.sig beside the model]
    #[arg(long, value_name = "PATH")]
    pub signature: Option<PathBuf>,
    /// Lineage policy (TOML, see spec/policy.md): who may sign each hop
    #[arg(long, value_name = "POLICY")]
    pub policy: PathBuf,
    /// Attestation store holding the lineage's bundles: a directory or
    /// oci://REGISTRY/REPOSITORY
    #[arg(long, value_name = "STORE")]
    pub store: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Output format
    #[arg(long, value_enum)]
    pub format: BomFormat,
    /// Write the BOM here (atomically) instead of to stdout
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The model card, a signed file of the model [default: README.md when signed]
    #[arg(long, value_name = "PATH")]
    pub model_card: Option<String>,
    /// Write a BOM even when the lineage is refused (the refused hops are marked so);
    /// the exit status is still 1
    #[arg(long)]
    pub allow_refused: bool,
    /// Sign the BOM as an in-toto attestation about the model with this private key (a
    /// file, pkcs11:, tpm: or awskms:// key) and put it in the store
    #[arg(long, value_name = "KEY")]
    pub sign_key: Option<PathBuf>,
    /// Leave out this path in addition to those the signer recorded; repeatable
    #[arg(long = "ignore", value_name = "PATH")]
    pub ignore: Vec<PathBuf>,
    /// Replace the --out file if it exists
    #[arg(long)]
    pub force: bool,
    /// Print a JSON report on stdout (needs --out: the BOM itself then goes to the file)
    #[arg(long, requires = "out")]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML; see spec/admission.md)
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct OutboardArgs {
    /// The signed model directory or file
    pub model: PathBuf,
    /// Its signature [default: MODEL.sig beside the model]
    #[arg(long, value_name = "PATH")]
    pub signature: Option<PathBuf>,
    /// Replace existing outboard trees if it exists
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// BLAKE3 Merkle manifest (`https://modelseal.dev/manifest/v1`)
    Native,
    /// OpenSSF Model Signing v1.0 (`https://model_signing/signature/v1.0`)
    Oms,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OmsHashArg {
    Sha256,
    Blake2b,
    Blake3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OmsMethodArg {
    Files,
    Shards,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Kind {
    Model,
    Dataset,
}

impl From<Kind> for modelseal_core::ArtifactKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Model => Self::Model,
            Kind::Dataset => Self::Dataset,
        }
    }
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Model directory, single file, or oci://REGISTRY/REPOSITORY[:TAG|@sha256:HEX]
    pub model: PathBuf,
    /// A bundle to check; repeat for co-signatures (each a whole signature by one
    /// signer) [default: MODEL.sig and every MODEL.*.sig beside the model; for oci://,
    /// the bundles attached to the model as referrers]
    #[arg(long, value_name = "PATH")]
    pub signature: Vec<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Trusted public key (SPKI PEM); repeat to trust several
    #[arg(
        long = "key",
        value_name = "PUB",
        required_unless_present_any = ["certificate_roots", "identity", "identity_regex", "policy"]
    )]
    pub keys: Vec<PathBuf>,
    /// Lineage policy (TOML, see spec/policy.md): the model's signers come from it
    #[arg(
        long,
        value_name = "POLICY",
        conflicts_with_all = ["keys", "certificate_roots", "identity", "identity_regex", "issuer", "trusted_root"]
    )]
    pub policy: Option<PathBuf>,
    /// What the signature must be for: a dataset's signature is not a model's. Under
    /// --policy, also whose signers are trusted (model publishers or dataset curators)
    #[arg(long, value_enum, default_value = "model")]
    pub kind: Kind,
    /// Also check the model's training lineage, hop by hop, against the policy
    #[arg(long, requires = "policy", requires = "store")]
    pub lineage: bool,
    /// Attestation store holding the lineage's bundles: a directory or
    /// oci://REGISTRY/REPOSITORY
    #[arg(long, value_name = "STORE")]
    pub store: Option<String>,
    /// After a passed lineage check, write a signed SLSA verification summary here
    #[arg(long, value_name = "PATH", requires = "lineage")]
    pub emit_vsa: Option<PathBuf>,
    /// Private key that signs the verification summary (a file, pkcs11:, tpm: or
    /// awskms:// key)
    #[arg(long, value_name = "KEY", requires = "emit_vsa")]
    pub vsa_key: Option<PathBuf>,
    /// Replace the --emit-vsa file if it exists
    #[arg(long, requires = "emit_vsa")]
    pub force: bool,
    /// Sign the verification summary keylessly (Sigstore), on the policy's instance; the
    /// token as for `sign --keyless` (file, SIGSTORE_ID_TOKEN, ambient CI credentials)
    #[arg(long, requires = "emit_vsa", conflicts_with = "vsa_key")]
    pub vsa_keyless: bool,
    /// Keyless summary: read the OIDC identity token from this file
    #[arg(long, value_name = "FILE", requires = "vsa_keyless")]
    pub vsa_identity_token_file: Option<PathBuf>,
    /// Keyless summary: Sigstore SigningConfig JSON [default: public-good]
    #[arg(long, value_name = "FILE", requires = "vsa_keyless")]
    pub vsa_signing_config: Option<PathBuf>,
    /// Refuse unless the signature is about exactly this artifact: its BLAKE3 root
    /// (native) or SHA-256 subject (OMS), as `blake3:HEX` or `sha256:HEX`
    #[arg(long, value_name = "DIGEST")]
    pub expect: Option<modelseal_core::ArtifactDigest>,
    #[command(flatten)]
    pub keyless: KeylessArgs,
    /// Trusted root certificate (PEM) for certificate-signed bundles; repeatable. Chains
    /// are checked at the time a trusted RFC 3161 timestamp proves, else now (see
    /// README, "Certificates and trusted time")
    #[arg(long = "certificate-root", value_name = "CA_PEM")]
    pub certificate_roots: Vec<PathBuf>,
    /// For certificate-signed bundles without a trusted timestamp: check the chain as it
    /// stood when the leaf was issued (model-signing's rule), so an expired certificate
    /// still verifies
    #[arg(long)]
    pub lenient_certificate_time: bool,
    /// Check only the files the signature lists, ignoring others present (signed names
    /// that would leave the model are still refused)
    #[arg(long)]
    pub ignore_unsigned_files: bool,
    /// OMS `shards` signatures only: accept empty files the signature does not list
    /// (that method cannot list them; model-signing leaves them out). Without it such a
    /// file is unsigned and refused
    #[arg(long)]
    pub allow_unsigned_empty_files: bool,
    /// Leave out this path in addition to those the signer recorded; repeatable
    #[arg(long = "ignore", value_name = "PATH")]
    pub ignore: Vec<PathBuf>,
    /// Print the result as JSON on stdout (see README, "JSON output")
    #[arg(long)]
    pub json: bool,
}

/// Who may sign keylessly with Sigstore (Fulcio certificate for an OIDC identity).
#[derive(Debug, Args, Clone)]
pub struct KeylessArgs {
    /// Sigstore keyless: the signer's identity (certificate SAN, an email or URI), exactly
    #[arg(
        long,
        value_name = "ID",
        conflicts_with = "identity_regex",
        requires = "issuer"
    )]
    pub identity: Option<String>,
    /// Sigstore keyless: the signer's identity as a regular expression over the whole SAN
    #[arg(long, value_name = "REGEX", requires = "issuer")]
    pub identity_regex: Option<String>,
    /// Sigstore keyless: the OIDC issuer recorded in the certificate, exactly
    #[arg(long, value_name = "URL")]
    pub issuer: Option<String>,
    /// Sigstore TrustedRoot JSON: its Fulcio, Rekor and CT keys for keyless bundles, its
    /// timestamp authorities for the signing time of any bundle [default: the built-in
    /// public-good instance; never fetched]
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyBundleArgs {
    /// The artifact: a file, or its digest as sha256:HEX
    #[arg(value_name = "ARTIFACT_OR_DIGEST")]
    pub artifact: String,
    /// The Sigstore bundle
    #[arg(long, value_name = "FILE")]
    pub bundle: PathBuf,
    /// The signer's public key (SPKI PEM); the bundle must carry its log entry
    #[arg(
        long,
        value_name = "PUB",
        conflicts_with_all = ["identity", "identity_regex"],
        required_unless_present_any = ["identity", "identity_regex"]
    )]
    pub key: Option<PathBuf>,
    #[command(flatten)]
    pub keyless: KeylessArgs,
    /// Require a DSSE bundle whose in-toto statement has this predicate type (as
    /// `cosign verify-blob-attestation --type` does); without it any statement about the
    /// artifact passes, and its type is reported
    #[arg(long = "type", value_name = "PREDICATE_TYPE")]
    pub predicate_type: Option<String>,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The bundle to show, or oci://REGISTRY/REPOSITORY[:TAG|@sha256:HEX] to show a model in
    /// a registry: its manifest, layers and attached signatures
    pub signature: PathBuf,
    /// Print as JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Subcommand)]
pub enum AttestCommand {
    /// Sign a SLSA Provenance v1 statement for a training (or fine-tuning) run
    #[command(after_help = PASSPHRASE_HELP)]
    Training(TrainingArgs),
}

#[derive(Debug, Args)]
pub struct TrainingArgs {
    /// The trained model (hashed: its manifest root is the subject): a directory, or
    /// oci://REGISTRY/REPOSITORY[:TAG|@sha256:HEX] (its layers streamed and hashed; then
    /// --out is required)
    #[arg(long, value_name = "MODEL")]
    pub model: PathBuf,
    /// The builder's signer: a private key, or --keyless
    #[command(flatten)]
    pub signer: SignerArgs,
    /// A base model: a signed model directory, oci://…, or [NAME=]blake3:HEX; repeatable
    #[arg(long = "base-model", value_name = "DIR|oci://…|blake3:HEX")]
    pub base_models: Vec<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// A dataset: a directory, or [NAME=]blake3:HEX; repeatable
    #[arg(long = "dataset", value_name = "DIR|blake3:HEX")]
    pub datasets: Vec<String>,
    /// Training code as GIT_URL@COMMIT [default: from GITHUB_* or the current git checkout]
    #[arg(long, value_name = "GIT_URL@COMMIT")]
    pub code: Option<String>,
    /// Container image as REF@sha256:HEX
    #[arg(long, value_name = "REF@sha256:HEX")]
    pub image: Option<String>,
    /// A hyperparameter KEY=VALUE; repeatable
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// A configuration file, recorded by SHA-256; repeatable
    #[arg(long = "config", value_name = "FILE")]
    pub configs: Vec<PathBuf>,
    /// The command or script that ran the training
    #[arg(long, value_name = "CMD")]
    pub entry_point: Option<String>,
    /// URI of the builder (CI system, cluster) that ran it
    #[arg(
        long,
        value_name = "URI",
        default_value = "https://modelseal.dev/builders/local"
    )]
    pub builder_id: String,
    /// Start time, RFC 3339
    #[arg(long, value_name = "TIME")]
    pub started_on: Option<String>,
    /// End time, RFC 3339 [default: now]
    #[arg(long, value_name = "TIME")]
    pub finished_on: Option<String>,
    /// Subject name [default: the model's file name]
    #[arg(long)]
    pub name: Option<String>,
    /// Where to write the bundle [default: MODEL.provenance.sig beside the model]
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Replace the bundle if it exists
    #[arg(long)]
    pub force: bool,
    /// Print the result as one JSON object on stdout, also on failure (spec/cli.md)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Add bundles, each under every subject digest it names
    Add {
        /// The store: a directory (created if absent) or oci://REGISTRY/REPOSITORY
        store: String,
        /// Bundle files
        #[arg(required = true)]
        bundles: Vec<PathBuf>,
        #[command(flatten)]
        registry: RegistryArgs,
        /// Print the result as one JSON object on stdout, also on failure (spec/cli.md)
        #[arg(long)]
        json: bool,
    },
    /// List the digests in a store, or the bundles for one digest
    List {
        /// The store: a directory or oci://REGISTRY/REPOSITORY
        store: String,
        /// A digest, as blake3:HEX or sha256:HEX
        digest: Option<String>,
        #[command(flatten)]
        registry: RegistryArgs,
        /// Print the result as one JSON object on stdout, also on failure (spec/cli.md)
        #[arg(long)]
        json: bool,
    },
}
