//! The registry client the flags describe, shared by the commands that reach a registry.

use anyhow::{Context, Result, bail};
use modelseal_oci::{Registry, RegistryOptions};

use crate::cli::RegistryArgs;

/// A registry client from the flags.
pub fn registry(args: &RegistryArgs) -> Result<Registry> {
    Ok(Registry::new(registry_options(args)?)?)
}

/// The registry settings the flags give.
pub fn registry_options(args: &RegistryArgs) -> Result<RegistryOptions> {
    let mut options = RegistryOptions::default();
    for path in &args.registry_ca {
        options.ca_pem.push(
            modelseal_core::open::read_regular(path)
                .with_context(|| format!("cannot read registry CA {}", path.display()))?,
        );
    }
    if args.registry_timeout == 0 {
        bail!("--registry-timeout must be at least 1 second");
    }
    options.timeout = std::time::Duration::from_secs(args.registry_timeout);
    options.document_deadline = options.timeout;
    Ok(options)
}
