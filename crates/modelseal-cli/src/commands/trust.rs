//! Whom a verifying command trusts: the signers its flags name, or a policy's signers
//! for one role. Resolved once per command, before anything is read.

use anyhow::{Context, Result};
use modelseal_lineage::policy::{LineagePolicy, Role};
use modelseal_verify::{CertificateTime, TrustPolicy, Verifier, VerifyOptions};

use crate::cli::VerifyArgs;

/// The signers `verify` trusts: the policy's model publishers, or those the flags name.
pub(super) fn trust(args: &VerifyArgs) -> Result<(TrustPolicy, Option<LineagePolicy>)> {
    let role = role_of(args.kind);
    trust_from(
        role,
        &args.keys,
        &args.certificate_roots,
        args.policy.as_deref(),
        &args.keyless,
        args.lenient_certificate_time,
    )
}

/// The policy role whose signers vouch for an artifact of `kind`.
pub(super) fn role_of(kind: crate::cli::Kind) -> Role {
    match kind {
        crate::cli::Kind::Model => Role::ModelPublisher,
        crate::cli::Kind::Dataset => Role::DatasetCurator,
    }
}

/// [`trust`] from its parts, for commands that take fewer flags.
pub(super) fn trust_from(
    role: Role,
    keys: &[std::path::PathBuf],
    certificate_roots: &[std::path::PathBuf],
    policy_path: Option<&std::path::Path>,
    keyless: &crate::cli::KeylessArgs,
    lenient_certificate_time: bool,
) -> Result<(TrustPolicy, Option<LineagePolicy>)> {
    let keys = keys
        .iter()
        .map(|path| super::load_public_key(path))
        .collect::<Result<Vec<_>>>()?;
    let mut roots = Vec::new();
    for path in certificate_roots {
        let pem = super::read_text(path, "root certificate")?;
        roots.extend(
            modelseal_core::certificates_from_pem(&pem)
                .with_context(|| format!("root certificate {}", path.display()))?,
        );
    }
    let lineage_policy = match policy_path {
        Some(path) => {
            Some(LineagePolicy::read(path).with_context(|| format!("policy {}", path.display()))?)
        }
        None => None,
    };
    // A policy names every signer (keys and keyless identities, and its Sigstore root);
    // otherwise the flags do.
    let mut policy = match &lineage_policy {
        Some(p) => p.trust_for(role),
        None => {
            let mut policy = TrustPolicy::from_keys(keys)
                .with_certificate_roots(roots)
                .with_timestamp_authorities(super::timestamp_authorities(keyless)?);
            if let Some(trust) = super::keyless_trust(keyless)? {
                policy = policy.with_keyless(trust);
            }
            policy
        }
    };
    if lenient_certificate_time {
        policy = policy.with_certificate_time(CertificateTime::LeafIssuance);
    }
    Ok((policy, lineage_policy))
}

/// The verifier a command says yes through: whom it trusts (from [`trust_from`]), its
/// options, and the policy's rules about the artifact when a policy is given.
pub(super) fn verifier(
    trust: TrustPolicy,
    policy: Option<&LineagePolicy>,
    options: VerifyOptions,
) -> Verifier {
    let verifier = Verifier::new(trust).with_options(options);
    match policy {
        Some(policy) => verifier.with_rules(std::sync::Arc::new(policy.clone())),
        None => verifier,
    }
}
