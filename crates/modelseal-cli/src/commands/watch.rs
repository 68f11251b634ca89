//! `modelseal watch`: keep verifying a deployed model, and answer probes about it.

use anyhow::{Context, Result};
use modelseal_core::walk::WalkOptions;
use modelseal_verify::VerifyOptions;
use modelseal_watch::{Config, TrustSource, Watch};
use tokio::signal::unix::SignalKind;

use crate::Outcome;
use crate::cli::WatchArgs;

pub fn run(args: &WatchArgs) -> Result<Outcome> {
    super::refuse_key_with_identity(&args.keys, &args.keyless)?;
    let (trust, policy) = super::trust::trust_from(
        modelseal_lineage::policy::Role::ModelPublisher,
        &args.keys,
        &args.certificate_roots,
        args.policy.as_deref(),
        &args.keyless,
        false,
    )?;
    let signature = args
        .signature
        .clone()
        .unwrap_or_else(|| super::default_signature_path(&args.model));
    let ignore = args
        .ignore
        .iter()
        .map(|arg| super::resolve_ignore(&args.model, arg))
        .collect::<Result<_>>()?;
    let mut options = VerifyOptions::default();
    options.walk = WalkOptions {
        ignore,
        exclude_files: vec![signature.clone()],
        ..WalkOptions::default()
    };
    options.ignore_unsigned_files = args.ignore_unsigned_files;
    options.allow_unlisted_empty_files = args.allow_unsigned_empty_files;
    options.expected = args.expect;
    let verifier = super::trust::verifier(trust, policy.as_ref(), options.clone());
    let mut config = Config::new(args.model.clone(), signature, verifier);
    // A policy is followed: edited, or a key file it names replaced or removed, it is
    // loaded again (and while it cannot be, the model is unready), as `serve` does.
    if let Some(path) = args.policy.clone() {
        let keyless = args.keyless.clone();
        config.trust_source = Some(TrustSource {
            load: Box::new(move || {
                let (trust, policy) = super::trust::trust_from(
                    modelseal_lineage::policy::Role::ModelPublisher,
                    &[],
                    &[],
                    Some(path.as_path()),
                    &keyless,
                    false,
                )
                .map_err(|e| modelseal_verify::error_chain(e.as_ref()))?;
                let mut files = vec![path.clone()];
                files.extend(policy.iter().flat_map(|p| p.key_files.iter().cloned()));
                let verifier = super::trust::verifier(trust, policy.as_ref(), options.clone());
                Ok((verifier, files))
            }),
        });
    }
    config.interval = args.interval;
    config.max_read_rate = Some(args.max_read_rate).filter(|r| *r > 0);
    config.debounce = args.debounce;
    config.events = !args.no_events;
    config.leases = !args.no_leases;
    if crate::output::quiet() {
        // -q: only the lines at level warn (refused, unready, error).
        config.log = Box::new(|line| {
            if line["level"] != "info" {
                println!("{line}");
            }
        });
    }
    config.stat_interval = Some(args.stat_interval).filter(|d| !d.is_zero());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr().context("listening address")?;
        let mut terminate = tokio::signal::unix::signal(SignalKind::terminate())
            .context("cannot listen for SIGTERM")?;
        let watch = Watch::start(config).context("cannot start watching")?;
        watch.log(serde_json::json!({"event": "listening", "addr": addr.to_string()}));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(modelseal_watch::server::serve(watch, listener, async {
            let _ = stopped.await;
        }));
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        let _ = stop.send(());
        // Probes in flight get a moment to be answered; a client that holds its
        // connection open does not keep the process from ending.
        match tokio::time::timeout(std::time::Duration::from_secs(2), server).await {
            Ok(Ok(result)) => result.context("serving probes"),
            Ok(Err(_)) | Err(_) => Ok(()),
        }
    })?;
    Ok(Outcome::Success)
}
