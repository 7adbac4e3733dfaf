//! `sentinelctl chaos ...`: the subcommand definitions, the requests they make, and what they print.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

use clap::Subcommand;

use super::render::table_or;
use crate::api::{
    ClientError, ControlClient, ExperimentsResponse, ProfilesResponse, Route, StopAllResponse,
};
use crate::chaos::experiment::ExperimentState;
use crate::chaos::{ExperimentView, StartRequest};

#[derive(Debug, Subcommand)]
pub enum ChaosCommand {
    /// The profiles in the config: faults, target, default duration.
    Profiles,
    /// Start a profile; it rolls back by itself at the deadline.
    Start {
        profile: String,
        /// How long, e.g. 30s or 5m [default: the profile's duration]
        #[arg(long)]
        duration: Option<String>,
        /// Stay and show the time left until rollback, then how it ended.
        #[arg(long)]
        wait: bool,
    },
    /// Running and recent experiments.
    List,
    /// One experiment: what was applied, what the kernel read back, how it ended.
    Show { id: String },
    /// Stop (roll back) one experiment now, or all of them with --all.
    Stop {
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
}

/// Run a chaos command; `Ok(false)` means it completed but reports a failure (exit 1).
pub async fn run(
    client: &ControlClient,
    command: &ChaosCommand,
    json: bool,
) -> Result<bool, ClientError> {
    let print = |text: String, value: &dyn erased::Json| {
        if json {
            println!("{}", value.to_json());
        } else {
            print!("{text}");
        }
    };
    match command {
        ChaosCommand::Profiles => {
            let response: ProfilesResponse = client.call(Route::ChaosProfiles).await?;
            print(profiles(&response), &response);
        }
        ChaosCommand::Start {
            profile,
            duration,
            wait,
        } => {
            let duration =
                match duration {
                    Some(text) => Some(text.parse().map_err(|err: crate::units::UnitError| {
                        ClientError::Api {
                            status: 400,
                            message: err.to_string(),
                        }
                    })?),
                    None => None,
                };
            let request = StartRequest {
                profile: Some(profile.clone()),
                spec: None,
                duration,
            };
            let view: ExperimentView = client.call_json(Route::ChaosStart, &request).await?;
            print(started(&view), &view);
            if *wait {
                let end = wait_for_end(client, &view.id, json).await?;
                print(experiment(&end), &end);
                return Ok(matches!(
                    end.state,
                    ExperimentState::RolledBack | ExperimentState::Drifted
                ));
            }
        }
        ChaosCommand::List => {
            let response: ExperimentsResponse = client.call(Route::ChaosList).await?;
            print(list(&response.experiments), &response);
        }
        ChaosCommand::Show { id } => {
            let view: ExperimentView = client
                .call(Route::ChaosShow {
                    experiment: id.clone(),
                })
                .await?;
            print(experiment(&view), &view);
        }
        ChaosCommand::Stop { id: Some(id), .. } => {
            let view: ExperimentView = client
                .call(Route::ChaosStop {
                    experiment: id.clone(),
                })
                .await?;
            print(experiment(&view), &view);
            return Ok(matches!(
                view.state,
                ExperimentState::RolledBack | ExperimentState::Drifted
            ));
        }
        ChaosCommand::Stop { id: None, .. } => {
            let response: StopAllResponse = client.call(Route::ChaosStopAll).await?;
            let text = match response.stopped.is_empty() {
                true => "no experiment was running\n".to_string(),
                false => format!("rolled back: {}\n", response.stopped.join(", ")),
            };
            print(text, &response);
        }
    }
    Ok(true)
}

/// Poll once a second, rewriting one progress line, until the experiment is no longer active.
async fn wait_for_end(
    client: &ControlClient,
    id: &str,
    json: bool,
) -> Result<ExperimentView, ClientError> {
    loop {
        let view: ExperimentView = client
            .call(Route::ChaosShow {
                experiment: id.to_string(),
            })
            .await?;
        if !matches!(
            view.state,
            ExperimentState::Active | ExperimentState::Pending | ExperimentState::RollingBack
        ) {
            if !json {
                eprintln!();
            }
            return Ok(view);
        }
        if !json {
            let left = humantime::format_duration(Duration::from_secs(view.seconds_left));
            eprint!(
                "\r{id}: {} — rollback in {left}   ",
                view.faults.join(" + ")
            );
            let _ = std::io::stderr().flush();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn profiles(response: &ProfilesResponse) -> String {
    table_or(
        "no chaos profiles configured ([[chaos.profile]] in the config)\n",
        &["PROFILE", "DURATION", "TARGET", "FAULTS"],
        &response.profiles,
        |p| {
            vec![
                p.name.clone(),
                p.duration.to_string(),
                p.spec.target.describe(),
                p.spec
                    .faults
                    .iter()
                    .map(|f| f.describe())
                    .collect::<Vec<_>>()
                    .join(" + "),
            ]
        },
    )
}

fn started(view: &ExperimentView) -> String {
    format!(
        "{}: started {} on {}; rolls back at {}\n",
        view.id,
        view.faults.join(" + "),
        view.target,
        view.deadline.to_rfc3339()
    )
}

fn list(experiments: &[ExperimentView]) -> String {
    table_or(
        "no experiments yet\n",
        &["ID", "PROFILE", "STATE", "TARGET", "FAULTS"],
        experiments,
        |e| {
            vec![
                e.id.clone(),
                e.profile.clone().unwrap_or_else(|| "-".into()),
                state(e),
                e.target.clone(),
                e.faults.join(" + "),
            ]
        },
    )
}

fn state(view: &ExperimentView) -> String {
    match view.state {
        ExperimentState::Active => format!("active ({}s left)", view.seconds_left),
        other => other.as_str().replace('_', " "),
    }
}

fn experiment(view: &ExperimentView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}  {}", view.id, state(view));
    let facts = [
        (
            "profile",
            view.profile.clone().unwrap_or_else(|| "-".into()),
        ),
        ("target", view.target.clone()),
        ("faults", view.faults.join(" + ")),
        ("started", view.created.to_rfc3339()),
        ("deadline", view.deadline.to_rfc3339()),
        ("halt on", view.halt_on.join(", ")),
        (
            "ended",
            view.ended.map_or_else(|| "-".into(), |t| t.to_rfc3339()),
        ),
        (
            "outcome",
            view.outcome.clone().unwrap_or_else(|| "-".into()),
        ),
    ];
    for (label, value) in facts {
        let _ = writeln!(out, "{label:<10}{value}");
    }
    for line in &view.log {
        let _ = writeln!(out, "  {line}");
    }
    out
}

/// JSON printing of the different answer types through one closure.
mod erased {
    pub trait Json {
        fn to_json(&self) -> String;
    }

    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> String {
            serde_json::to_string_pretty(self).expect("API types serialize")
        }
    }
}
