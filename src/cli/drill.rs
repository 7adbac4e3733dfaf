//! `sentinelctl drill ...`: list, run (progress from the event stream, then the verdict table),
//! show and stop. A run that does not pass exits non-zero.

use std::io::Write as _;

use clap::Subcommand;

use super::render::{table, table_or};
use crate::api::{ClientError, ControlClient, DrillRunResponse, DrillsResponse, Route};
use crate::drill::trend::Trend;
use crate::drill::{DrillRun, RunState};
use crate::event::{EventKind, JournaledEvent, Timestamp};

#[derive(Debug, Subcommand)]
pub enum DrillCommand {
    /// The drills in the config and the recent runs.
    List,
    /// Run a drill: progress lines as it happens, then pass/fail per expectation.
    Run { name: String },
    /// One run's verdicts.
    Show { id: String },
    /// Abort a running drill; its experiment is rolled back.
    Stop { id: String },
    /// A drill's last runs with their time to detect / act / recover, p50 and the trend.
    Trend {
        name: String,
        /// How many of the latest finished runs (1-200).
        #[arg(long, default_value_t = crate::drill::trend::DEFAULT_RUNS)]
        last: usize,
    },
}

/// The events that tell a drill's story, asked from the stream.
const PROGRESS_KINDS: &str = "drill_started,drill_step_started,drill_expectation_checked,drill_finished,chaos_started,chaos_rolled_back,chaos_aborted,probe_transition,heal_started,heal_finished,tenant_alert_fired,container_event";

/// Run a drill command; `Ok(false)` means it completed but the drill did not pass (exit 1).
pub async fn run(
    client: &ControlClient,
    command: &DrillCommand,
    json: bool,
) -> Result<bool, ClientError> {
    let print_run = |run: &DrillRun| match json {
        true => println!(
            "{}",
            serde_json::to_string_pretty(&DrillRunResponse { run: run.clone() })
                .expect("API types serialize")
        ),
        false => print!("{}", verdicts(run)),
    };
    match command {
        DrillCommand::List => {
            let response: DrillsResponse = client.call(Route::DrillList).await?;
            match json {
                true => println!(
                    "{}",
                    serde_json::to_string_pretty(&response).expect("API types serialize")
                ),
                false => print!("{}", list(&response)),
            }
        }
        DrillCommand::Run { name } => {
            let started: DrillRunResponse = client
                .call(Route::DrillRun {
                    drill: name.clone(),
                })
                .await?;
            let id = started.run.id.clone();
            if !json {
                println!("drill {name}: run {id} (stop it with sentinelctl drill stop {id})");
            }
            follow(client, &started.run, json).await?;
            let finished: DrillRunResponse = client.call(Route::DrillShow { run: id }).await?;
            print_run(&finished.run);
            return Ok(finished.run.state == RunState::Passed);
        }
        DrillCommand::Show { id } => {
            let response: DrillRunResponse =
                client.call(Route::DrillShow { run: id.clone() }).await?;
            print_run(&response.run);
            return Ok(
                response.run.state != RunState::Failed && response.run.state != RunState::Aborted
            );
        }
        DrillCommand::Stop { id } => {
            let response: DrillRunResponse =
                client.call(Route::DrillStop { run: id.clone() }).await?;
            print_run(&response.run);
        }
        DrillCommand::Trend { name, last } => {
            let target = Route::DrillTrend {
                drill: name.clone(),
            }
            .with_query([("last", last.to_string())]);
            let response: Trend = client.call(target).await?;
            match json {
                true => println!(
                    "{}",
                    serde_json::to_string_pretty(&response).expect("API types serialize")
                ),
                false => print!("{}", trend(&response)),
            }
        }
    }
    Ok(true)
}

/// Print the drill's events as they happen until its `drill_finished`.
async fn follow(client: &ControlClient, run: &DrillRun, json: bool) -> Result<(), ClientError> {
    let target = Route::Events.with_query([
        ("follow", "1".to_string()),
        ("since", run.started.as_millis().to_string()),
        ("kind", PROGRESS_KINDS.to_string()),
    ]);
    let stdout = std::io::stdout();
    let mut ours = false;
    client
        .stream_lines_until(target, |line| {
            let Ok(event) = serde_json::from_slice::<JournaledEvent>(line) else {
                return true;
            };
            let (mine, last) = match &event.event.kind {
                EventKind::DrillStarted { drill, .. } => (drill == &run.id, false),
                EventKind::DrillFinished { drill, .. } => (drill == &run.id, drill == &run.id),
                _ => (ours, false),
            };
            if matches!(event.event.kind, EventKind::DrillStarted { .. }) && mine {
                ours = true;
            }
            if mine && !json {
                let mut out = stdout.lock();
                let _ = writeln!(out, "{}", progress_line(run.started, &event));
                let _ = out.flush();
            }
            !last
        })
        .await
}

/// "+  4.2s  sql: down -> up".
pub fn progress_line(started: Timestamp, event: &JournaledEvent) -> String {
    let offset = (event.event.at.as_millis() - started.as_millis()) as f64 / 1000.0;
    let text = match &event.event.kind {
        EventKind::DrillStepStarted {
            step,
            experiment,
            faults,
            ..
        } => format!(
            "step {step}: fault applied: {} (experiment {experiment})",
            faults.join(" + ")
        ),
        EventKind::DrillExpectationChecked {
            step,
            expectation,
            verdict,
            detail,
            ..
        } => format!("step {step}: {expectation}: {verdict} ({detail})"),
        other => other.summary(),
    };
    format!("+{offset:>7.1}s  {text}")
}

/// The final table and the outcome line.
pub fn verdicts(run: &DrillRun) -> String {
    let seconds =
        |ms: Option<u64>| ms.map_or_else(|| "-".into(), |ms| format!("{:.1}s", ms as f64 / 1000.0));
    let mut out = table_or(
        "no expectation was decided\n",
        &[
            "STEP",
            "EXPECTATION",
            "RESULT",
            "MEASURED",
            "LIMIT",
            "DETAIL",
        ],
        &run.results,
        |r| {
            vec![
                r.step.to_string(),
                r.expectation.clone(),
                if r.met { "PASS" } else { "FAIL" }.into(),
                seconds(r.measured_ms),
                seconds(r.limit_ms),
                r.detail.clone(),
            ]
        },
    );
    let met = run.results.iter().filter(|r| r.met).count();
    let outcome = match (&run.state, &run.reason) {
        (RunState::Aborted, Some(reason)) => format!("aborted: {reason}"),
        (state, _) => state.as_str().to_string(),
    };
    out.push_str(&format!(
        "drill {} ({}): {outcome} — {met} of {} expectations met; experiments {}\n",
        run.name,
        run.id,
        run.results.len(),
        match run.experiments.is_empty() {
            true => "-".into(),
            false => run.experiments.join(", "),
        }
    ));
    out
}

/// The runs of `drill trend`, oldest first, then p50 and the direction of recovery.
pub fn trend(trend: &Trend) -> String {
    let seconds =
        |ms: Option<u64>| ms.map_or_else(|| "-".into(), |ms| format!("{:.1}s", ms as f64 / 1000.0));
    let mut out = table_or(
        &format!("drill {}: no finished runs yet\n", trend.name),
        &[
            "RUN", "STARTED", "TARGET", "RESULT", "DETECT", "ACT", "RECOVER",
        ],
        &trend.runs,
        |r| {
            vec![
                r.id.clone(),
                r.started.to_rfc3339(),
                r.target.clone().unwrap_or_else(|| "-".into()),
                r.state.as_str().into(),
                seconds(r.timings.detect_ms),
                seconds(r.timings.act_ms),
                seconds(r.timings.recover_ms),
            ]
        },
    );
    if trend.runs.is_empty() {
        return out;
    }
    out.push_str(&format!(
        "p50 over {} runs: detect {}, act {}, recover {}; recovery trend: {}\n",
        trend.runs.len(),
        seconds(trend.p50.detect_ms),
        seconds(trend.p50.act_ms),
        seconds(trend.p50.recover_ms),
        trend.direction.as_str(),
    ));
    if let Some(objective) = &trend.objective {
        out.push_str(&format!("objective: {}\n", objective.describe()));
    }
    out
}

fn list(response: &DrillsResponse) -> String {
    let mut out = table_or(
        "no drills configured ([[drill]] in the config)\n",
        &["DRILL", "STEPS"],
        &response.drills,
        |d| {
            let steps: Vec<String> = d
                .steps
                .iter()
                .map(|s| {
                    let experiment = s.experiment.profile.clone().unwrap_or_else(|| {
                        s.experiment
                            .spec
                            .as_ref()
                            .map(|spec| spec.target.describe())
                            .unwrap_or_default()
                    });
                    let expect: Vec<String> = s.expect.iter().map(|e| e.describe()).collect();
                    format!("{experiment}: {}", expect.join(", "))
                })
                .collect();
            vec![d.name.clone(), steps.join("; ")]
        },
    );
    if !response.runs.is_empty() {
        let rows: Vec<Vec<String>> = response
            .runs
            .iter()
            .map(|r| {
                let met = r.results.iter().filter(|c| c.met).count();
                vec![
                    r.id.clone(),
                    r.name.clone(),
                    r.state.as_str().into(),
                    r.started.to_rfc3339(),
                    format!("{met}/{}", r.results.len()),
                    r.reason.clone().unwrap_or_default(),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&table(
            &["RUN", "DRILL", "STATE", "STARTED", "MET", "REASON"],
            &rows,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::runner::CheckResult;

    #[test]
    fn verdict_table_shows_measured_against_limit() {
        let run = DrillRun {
            id: "d1".into(),
            name: "gameday".into(),
            state: RunState::Failed,
            started: Timestamp(0),
            ended: Some(Timestamp(9_000)),
            step: 2,
            steps: 2,
            experiments: vec!["x1".into(), "x2".into()],
            results: vec![
                CheckResult {
                    step: 1,
                    expectation: "probe sql up within 30s".into(),
                    met: true,
                    measured_ms: Some(4_200),
                    limit_ms: Some(30_000),
                    detail: "up again after 4.2 s".into(),
                },
                CheckResult {
                    step: 2,
                    expectation: "tenant alert p95 fires within 3s".into(),
                    met: false,
                    measured_ms: None,
                    limit_ms: Some(3_000),
                    detail: "did not fire within 3.0 s".into(),
                },
            ],
            reason: None,
            target: None,
            timings: Default::default(),
        };
        let text = verdicts(&run);
        assert!(text.contains("PASS    4.2s      30.0s"), "{text}");
        assert!(text.contains("FAIL    -         3.0s"), "{text}");
        assert!(
            text.ends_with(
                "drill gameday (d1): failed — 1 of 2 expectations met; experiments x1, x2\n"
            ),
            "{text}"
        );
    }
}
