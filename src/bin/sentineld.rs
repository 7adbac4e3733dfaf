//! sentineld: parse flags, set up logging, run the daemon until SIGTERM or SIGINT (or one of
//! its one-shot commands: check-config, print-default-config, rollback).

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use sentinel::cli::{DaemonCli, DaemonCommand};
use sentinel::{config, daemon, logging};

fn main() -> ExitCode {
    // The hidden burner mode (chaos cpu_stress / memory_stress): no flags, no logging.
    let mut raw = std::env::args_os();
    if raw.nth(1).as_deref() == Some(std::ffi::OsStr::new(sentinel::chaos::burner::MODE)) {
        let rest: Vec<String> = raw.map(|a| a.to_string_lossy().into_owned()).collect();
        return ExitCode::from(sentinel::chaos::burner::main(&rest));
    }
    sentinel::panic_policy::install("sentineld");
    let cli = DaemonCli::parse();
    match cli.command {
        Some(DaemonCommand::CheckConfig { ref file }) => {
            let path = file.clone().unwrap_or_else(|| cli.config.clone());
            match config::load(&path) {
                Ok(loaded) => {
                    println!(
                        "{}: ok ({} probe{})",
                        path.display(),
                        loaded.config.probes.len(),
                        if loaded.config.probes.len() == 1 {
                            ""
                        } else {
                            "s"
                        }
                    );
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("{err}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(DaemonCommand::PrintDefaultConfig) => {
            print!("{}", config::EXAMPLE_CONFIG);
            ExitCode::SUCCESS
        }
        Some(DaemonCommand::Rollback { ref state_dir }) => {
            logging::init(cli.log_format, &cli.log_level, "sentineld");
            match rollback(&cli.config, state_dir.clone()) {
                Ok(outcome) => {
                    for line in outcome.lines() {
                        println!("{line}");
                    }
                    if outcome.is_clean() {
                        ExitCode::SUCCESS
                    } else {
                        eprintln!("sentineld rollback: something could not be undone (see above); an operator must look");
                        ExitCode::FAILURE
                    }
                }
                Err(err) => {
                    eprintln!(
                        "sentineld rollback: {}",
                        sentinel::logging::error_chain(err.as_ref())
                    );
                    ExitCode::FAILURE
                }
            }
        }
        Some(DaemonCommand::Run) | None => {
            logging::init(cli.log_format, &cli.log_level, "sentineld");
            match run(cli) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!("{}", sentinel::logging::error_chain(err.as_ref()));
                    eprintln!(
                        "sentineld: {}",
                        sentinel::logging::error_chain(err.as_ref())
                    );
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn rollback(
    config: &std::path::Path,
    state_dir: Option<std::path::PathBuf>,
) -> anyhow::Result<daemon::RollbackOutcome> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(daemon::rollback(config, state_dir))?)
}

fn run(cli: DaemonCli) -> anyhow::Result<()> {
    // Two workers: the daemon is I/O-bound, and a small fixed pool keeps idle memory low.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let shutdown = daemon::termination_signal().context("cannot install signal handlers")?;
        daemon::run(cli.config, shutdown)
            .await
            .map_err(anyhow::Error::from)
    })
}
