//! sentinel-agent: the sidecar that tails an application's access log and ships tenant events
//! to sentineld. Log shipping arrives with the tenant detector; today it only validates its flags.

use std::process::ExitCode;

use clap::Parser;
use sentinel::cli::AgentCli;

fn main() -> ExitCode {
    let cli = AgentCli::parse();
    eprintln!(
        "sentinel-agent {}: log shipping to {} is not available in this release yet (it arrives with the tenant detector); nothing to do",
        env!("CARGO_PKG_VERSION"),
        cli.endpoint
    );
    ExitCode::from(2)
}
