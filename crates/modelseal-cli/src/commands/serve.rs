//! `modelseal serve`: the admission server, with structured JSON logs on stdout.

use anyhow::{Context, Result};
use modelseal_webhook::config::Config;
use tokio::signal::unix::SignalKind;

use crate::Outcome;
use crate::cli::ServeArgs;

pub fn run(args: &ServeArgs) -> Result<Outcome> {
    let config = Config::read(&args.config)
        .with_context(|| format!("configuration {}", args.config.display()))?;
    // RUST_LOG wins; otherwise -q logs warnings only, -v debug events, -vv trace.
    let level = match (crate::output::quiet(), crate::output::verbose()) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    // try_init: the Python console script may run more than one command in a process.
    let _ = tracing_subscriber::fmt()
        .event_format(crate::logline::JsonLines)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into()),
        )
        .with_writer(std::io::stdout)
        .try_init();
    // Every connection is a descriptor: a soft limit of 1024 (common outside Kubernetes)
    // would refuse connections long before `max_connections`.
    let wanted = config.limits.max_connections as u64 + 64;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < wanted => tracing::warn!(
            event = "descriptor-limit",
            limit,
            max_connections = config.limits.max_connections,
            "the open-file limit is below max_connections + 64; connections past it are refused by the kernel"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(event = "descriptor-limit", error = %e),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Kubernetes stops a pod with SIGTERM; a terminal with ctrl-c (SIGINT). Both
        // drain: the listener closes, requests in flight are answered, then exit 0.
        let mut terminate = tokio::signal::unix::signal(SignalKind::terminate())
            .context("cannot listen for SIGTERM")?;
        let running = modelseal_webhook::start(config).await?;
        tracing::info!(event = "listening", addr = %running.addr);
        let signal = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        };
        tracing::info!(event = "signal", signal);
        running.shutdown().await;
        anyhow::Ok(())
    })?;
    // A worker stuck in a read on a hung store would keep the runtime (and the process)
    // from ending; the requests are answered, so it is left behind.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(Outcome::Success)
}
