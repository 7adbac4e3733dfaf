//! sentinel-agent: parse flags, build the config (file and/or quick-start flags), set up
//! logging, run the agent until SIGTERM or SIGINT, then flush and save offsets.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use sentinel::agent::config::{self, AgentConfig, FileConfig};
use sentinel::cli::AgentCli;
use sentinel::logging;

fn main() -> ExitCode {
    sentinel::panic_policy::install("sentinel-agent");
    let cli = AgentCli::parse();
    let config = match build_config(&cli) {
        Ok(config) => config,
        Err(err) => {
            eprintln!(
                "sentinel-agent: {}",
                sentinel::logging::error_chain(err.as_ref())
            );
            return ExitCode::FAILURE;
        }
    };
    if cli.check_config {
        println!(
            "ok: {} file(s), {} datagram input(s), shipping to {}",
            config.files.len(),
            config.datagrams.len(),
            config.output.endpoint.get_ref()
        );
        return ExitCode::SUCCESS;
    }
    logging::init(cli.log_output, &cli.log_level, "sentinel-agent");
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{}", sentinel::logging::error_chain(err.as_ref()));
            eprintln!(
                "sentinel-agent: {}",
                sentinel::logging::error_chain(err.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}

/// The config file (required unless `--log` stands in for it) with the flags applied on top.
fn build_config(cli: &AgentCli) -> anyhow::Result<AgentConfig> {
    let default_path = std::path::Path::new(config::DEFAULT_CONFIG_PATH);
    // ConfigError's message already ends with its cause: no second copy from the chain.
    let load = |path: &std::path::Path| config::load(path).map_err(|e| anyhow::anyhow!("{e}"));
    let mut config = match &cli.config {
        Some(path) => load(path)?,
        None if default_path.exists() => load(default_path)?,
        None if cli.log.is_some() => AgentConfig::quick_start(None),
        None => anyhow::bail!(
            "no config at {}: pass --config FILE, or --log FILE for a quick start",
            default_path.display()
        ),
    };
    if let Some(log) = &cli.log {
        if !config.files.iter().any(|f| &f.path == log) {
            config.files.push(FileConfig::json(log.clone()));
        }
    }
    if let Some(endpoint) = &cli.endpoint {
        config.output.endpoint = toml::Spanned::new(0..0, endpoint.clone());
    }
    if let Some(dir) = &cli.state_dir {
        config.state_dir = Some(dir.clone());
    }
    config
        .validate()
        .map_err(|issue| anyhow::anyhow!("{issue}"))?;
    Ok(config)
}

fn run(config: AgentConfig) -> anyhow::Result<()> {
    // One thread for sockets and timers; each tailed file has its own reading thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let shutdown =
            sentinel::daemon::termination_signal().context("cannot install signal handlers")?;
        // AgentError messages already carry their cause: no second copy from the chain.
        sentinel::agent::run(config, shutdown)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    })
}
