//! `modelseal serve`: the admission server, with structured JSON logs on stdout.

use anyhow::{Context, Result};
use modelseal_webhook::config::Config;

use crate::Outcome;
use crate::cli::ServeArgs;

pub fn run(args: &ServeArgs) -> Result<Outcome> {
    let config = Config::read(&args.config)
        .with_context(|| format!("configuration {}", args.config.display()))?;
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stdout)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let running = modelseal_webhook::start(config).await?;
        tracing::info!(event = "listening", addr = %running.addr);
        tokio::select! {
            result = running.wait() => result.context("server stopped"),
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })?;
    Ok(Outcome::Success)
}
