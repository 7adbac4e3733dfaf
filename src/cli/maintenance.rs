//! `sentinelctl maintenance start|list|end`: open a run-time window (prints its id), list the
//! windows in force and each schedule's next start, end a window early.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use clap::Subcommand;

use super::render::table;
use crate::api::{ClientError, ControlClient, Route};
use crate::maintenance::{MaintenanceList, StartRequest, Window};

#[derive(Debug, Subcommand)]
pub enum MaintenanceCommand {
    /// Open a window now: the probes it covers are still checked and journaled, but neither
    /// healed nor alerted until it ends. Prints the window's id.
    Start {
        /// How long, e.g. 30m or 2h (at most 7 days).
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
        duration: std::time::Duration,
        /// A probe to cover (repeatable).
        #[arg(long = "probe", value_name = "PROBE")]
        probes: Vec<String>,
        /// Cover every probe with this label (repeatable; a probe needs all of them).
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// Why: journaled with the window and your uid.
        #[arg(long)]
        reason: String,
    },
    /// Windows in force (run-time and scheduled) and the next start of each schedule.
    List,
    /// End a window now; healing and alerts resume for its probes (a probe still Down is
    /// healed and alerted then).
    End {
        /// The window's id, as `start` printed it or `list` shows it.
        id: String,
    },
}

fn parse_duration(text: &str) -> Result<std::time::Duration, humantime::DurationError> {
    humantime::parse_duration(text)
}

/// `team=payments`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected KEY=VALUE, e.g. team=payments")]
pub struct LabelArgError;

fn parse_label(text: &str) -> Result<(String, String), LabelArgError> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() && !value.is_empty() => {
            Ok((key.to_string(), value.to_string()))
        }
        _ => Err(LabelArgError),
    }
}

pub async fn run(
    client: &ControlClient,
    command: MaintenanceCommand,
    json: bool,
) -> Result<(), ClientError> {
    match command {
        MaintenanceCommand::Start {
            duration,
            probes,
            labels,
            reason,
        } => {
            let request = StartRequest {
                duration_ms: duration.as_millis() as u64,
                probes,
                labels: labels.into_iter().collect::<BTreeMap<_, _>>(),
                reason,
            };
            let window: Window = client.call_json(Route::MaintenanceStart, &request).await?;
            match json {
                true => println!("{}", pretty(&window)),
                false => println!("{}", window.id),
            }
        }
        MaintenanceCommand::List => {
            let list: MaintenanceList = client.call(Route::MaintenanceList).await?;
            match json {
                true => println!("{}", pretty(&list)),
                false => print!("{}", render(&list)),
            }
        }
        MaintenanceCommand::End { id } => {
            let window: Window = client.call(Route::MaintenanceEnd { window: id }).await?;
            match json {
                true => println!("{}", pretty(&window)),
                false => println!("{}: ended", window.id),
            }
        }
    }
    Ok(())
}

fn pretty<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("API types serialize")
}

/// What `sentinelctl maintenance list` prints.
pub fn render(list: &MaintenanceList) -> String {
    let mut out = String::new();
    if list.active.is_empty() {
        out.push_str("no maintenance window in force\n");
    } else {
        let rows: Vec<Vec<String>> = list
            .active
            .iter()
            .map(|w| {
                vec![
                    w.id.clone(),
                    w.scope.to_string(),
                    w.from.to_rfc3339(),
                    w.until.to_rfc3339(),
                    w.opened_by.to_string(),
                    w.reason.clone(),
                ]
            })
            .collect();
        out.push_str(&table(
            &["WINDOW", "SCOPE", "FROM", "UNTIL", "OPENED BY", "REASON"],
            &rows,
        ));
    }
    if !list.schedules.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = list
            .schedules
            .iter()
            .map(|s| {
                let duration = std::time::Duration::from_millis(s.duration_ms);
                vec![
                    s.name.clone(),
                    format!("{} ({})", s.schedule, s.timezone),
                    humantime::format_duration(duration).to_string(),
                    s.scope.to_string(),
                    s.next_start
                        .map_or_else(|| "-".to_string(), |t| t.to_rfc3339()),
                    s.active.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        let _ = write!(
            out,
            "{}",
            table(
                &["SCHEDULE", "CRON", "FOR", "SCOPE", "NEXT START", "ACTIVE"],
                &rows
            )
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_as_key_value() {
        assert_eq!(
            parse_label("team=payments"),
            Ok(("team".into(), "payments".into()))
        );
        assert_eq!(parse_label("a=b=c"), Ok(("a".into(), "b=c".into())));
        for bad in ["team", "=x", "x=", ""] {
            assert_eq!(parse_label(bad), Err(LabelArgError), "{bad}");
        }
    }
}
