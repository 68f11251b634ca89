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

/// Sign machine-learning models and verify them before they are used.
#[derive(Debug, Parser)]
#[command(name = "modelseal", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a key pair: PATH (PKCS#8, mode 0600) and PATH.pub (SPKI)
    #[command(after_help = PASSPHRASE_HELP)]
    Keygen(KeygenArgs),
    /// Print a model's BLAKE3 Merkle root (and its manifest with --json)
    Hash(HashArgs),
    /// Sign a model directory or file, writing a Sigstore bundle
    #[command(after_help = PASSPHRASE_HELP)]
    Sign(SignArgs),
    /// Verify a model against its signature and a trusted public key
    #[command(after_help = EXIT_CODES)]
    Verify(VerifyArgs),
    /// Show what a signature bundle claims, without verifying it
    Inspect(InspectArgs),
    /// Sign and verify a generated sample model, then show a tampered copy refused
    Demo,
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

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Algorithm {
    Ed25519,
    EcdsaP256,
    EcdsaP384,
    EcdsaP521,
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
    #[command(flatten)]
    pub walk: WalkArgs,
    /// Print the root and the whole manifest as JSON
    #[arg(long)]
    pub json: bool,
    /// No progress bar
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// Model (or dataset) directory, or a single file
    pub model: PathBuf,
    /// Private key (PKCS#8 PEM)
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// Where to write the bundle [default: MODEL.sig beside the model]
    #[arg(long, value_name = "PATH")]
    pub signature: Option<PathBuf>,
    /// Subject name recorded in the statement [default: the model's file name]
    #[arg(long)]
    pub name: Option<String>,
    /// What is signed
    #[arg(long, value_enum, default_value = "model")]
    pub kind: Kind,
    #[command(flatten)]
    pub walk: WalkArgs,
    /// No progress bar
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Kind {
    Model,
    Dataset,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Model directory or single file
    pub model: PathBuf,
    /// The bundle to check [default: MODEL.sig beside the model]
    #[arg(long, value_name = "PATH")]
    pub signature: Option<PathBuf>,
    /// Trusted public key (SPKI PEM); repeat to trust several
    #[arg(long = "key", value_name = "PUB", required = true)]
    pub keys: Vec<PathBuf>,
    /// Leave out this path in addition to those the signer recorded; repeatable
    #[arg(long = "ignore", value_name = "PATH")]
    pub ignore: Vec<PathBuf>,
    /// Print the result as JSON on stdout (see README, "JSON output")
    #[arg(long)]
    pub json: bool,
    /// No progress bar
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The bundle to show
    pub signature: PathBuf,
    /// Print as JSON
    #[arg(long)]
    pub json: bool,
}
