//! sentinelctl: a thin client. It asks sentineld over the control socket and renders the answer.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use sentinel::analyze::Analysis;
use sentinel::api::{
    ControlClient, EventsResponse, HealResponse, ReloadOutcome, ReloadReport, SilenceResponse,
    StatusResponse, TenantResponse, TenantsTopResponse,
};
use sentinel::cli::{
    encode, render, CtlCli, CtlCommand, EventsArgs, HealCommandArgs, TenantsCommand,
};
use sentinel::config::paths;
use sentinel::event::JournaledEvent;

fn main() -> ExitCode {
    sentinel::panic_policy::install("sentinelctl");
    let cli = CtlCli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("sentinelctl: cannot start: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!(
                "sentinelctl: {}",
                sentinel::logging::error_chain(err.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: CtlCli) -> anyhow::Result<ExitCode> {
    let client = ControlClient::new(cli.socket.clone().unwrap_or_else(paths::discover_socket));
    match cli.command {
        CtlCommand::Status => {
            let status: StatusResponse = client.get("/v1/status").await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", render::status(&status));
            }
        }
        CtlCommand::Probes => {
            let status: StatusResponse = client.get("/v1/status").await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&status.probes)?);
            } else {
                print!("{}", render::probes(&status));
            }
        }
        CtlCommand::Reload => {
            let (_, report): (u16, ReloadReport) = client.post_report("/v1/reload").await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else if report.outcome == ReloadOutcome::Rejected {
                eprint!("{}", render::reload(&report));
            } else {
                print!("{}", render::reload(&report));
            }
            if report.outcome == ReloadOutcome::Rejected {
                return Ok(ExitCode::FAILURE);
            }
        }
        CtlCommand::Events(args) => events(&client, &args, cli.json).await?,
        CtlCommand::Silence { probe, duration } => {
            let path = format!(
                "/v1/probes/{}/silence?for={}",
                encode(&probe),
                encode(&duration)
            );
            let response: SilenceResponse = client.post(&path).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&response)?);
            } else if duration.trim() == "0" {
                println!("{}: silence lifted", response.probe);
            } else {
                println!(
                    "{}: silenced until {}",
                    response.probe,
                    response.until.to_rfc3339()
                );
            }
        }
        CtlCommand::Heal(command) => {
            let (verb, probe) = match &command {
                HealCommandArgs::Now { probe } => ("now", probe),
                HealCommandArgs::Reset { probe } => ("reset", probe),
            };
            let path = format!("/v1/heal/{}/{verb}", encode(probe));
            let response: HealResponse = client.post(&path).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&response)?);
            } else {
                println!("{}: heal {} accepted", response.probe, response.accepted);
            }
        }
        CtlCommand::Tenants(command) => tenants(&client, command, cli.json).await?,
        CtlCommand::Chaos(command) => {
            if !sentinel::cli::chaos::run(&client, &command, cli.json).await? {
                return Ok(ExitCode::FAILURE);
            }
        }
        CtlCommand::Drill(command) => {
            if !sentinel::cli::drill::run(&client, &command, cli.json).await? {
                return Ok(ExitCode::FAILURE);
            }
        }
        CtlCommand::Archives { limit } => {
            let response: sentinel::api::ArchivesResponse =
                client.get(&format!("/v1/archives?limit={limit}")).await?;
            match cli.json {
                true => println!("{}", serde_json::to_string_pretty(&response)?),
                false => print!("{}", sentinel::cli::archives::archives(&response)),
            }
        }
        CtlCommand::Outbox { limit } => {
            let response: sentinel::api::OutboxResponse =
                client.get(&format!("/v1/outbox?limit={limit}")).await?;
            match cli.json {
                true => println!("{}", serde_json::to_string_pretty(&response)?),
                false => print!("{}", sentinel::cli::outbox::outbox(&response)),
            }
        }
        CtlCommand::Analyze { since, summary } => {
            let query = since.map_or_else(String::new, |s| format!("?since={}", encode(&s)));
            let analysis: Analysis = client.get(&format!("/v1/analyze{query}")).await?;
            let text = sentinel::cli::analyze::report(&analysis);
            let path = format!("/v1/analyze/summary{query}");
            print_findings(
                &client,
                cli.json,
                "analysis",
                &analysis,
                &text,
                summary.then_some(path),
            )
            .await?;
        }
        CtlCommand::Report {
            experiment,
            format,
            summary,
        } => {
            let id = encode(&experiment);
            let report: sentinel::report::ExperimentReport =
                client.get(&format!("/v1/chaos/{id}/report")).await?;
            let text = sentinel::cli::report::render(&report, format);
            let path = format!("/v1/chaos/{id}/summary");
            print_findings(
                &client,
                cli.json,
                "report",
                &report,
                &text,
                summary.then_some(path),
            )
            .await?;
        }
        CtlCommand::Version => {
            println!("sentinelctl {}", env!("CARGO_PKG_VERSION"));
            match client.get::<StatusResponse>("/v1/status").await {
                Ok(status) => println!("sentineld   {}", status.daemon.version),
                Err(err) => println!("sentineld   unknown ({err})"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Print deterministic findings (`text`, or JSON under `key`), then, when `summary_path` is
/// given, the AI summary from that route: labeled, and one line when it cannot be had.
async fn print_findings(
    client: &ControlClient,
    json: bool,
    key: &str,
    findings: &impl serde::Serialize,
    text: &str,
    summary_path: Option<String>,
) -> anyhow::Result<()> {
    let Some(path) = summary_path else {
        match json {
            true => println!("{}", serde_json::to_string_pretty(findings)?),
            false => print!("{text}"),
        }
        return Ok(());
    };
    if !json {
        // The findings first, before waiting on the endpoint.
        print!("{text}");
    }
    let summary = client.get::<sentinel::ai::AiSummary>(&path).await;
    match json {
        true => {
            let value = sentinel::cli::summary::json(key, findings, &summary);
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        false => print!("{}", sentinel::cli::summary::section(&summary)),
    }
    Ok(())
}

async fn tenants(
    client: &ControlClient,
    command: TenantsCommand,
    json: bool,
) -> anyhow::Result<()> {
    let window = |window: &Option<String>| {
        window
            .as_ref()
            .map(|w| format!("window={}", encode(w)))
            .unwrap_or_default()
    };
    match command {
        TenantsCommand::Top {
            by,
            window: w,
            limit,
        } => {
            let path = format!(
                "/v1/tenants/top?by={}&limit={limit}&{}",
                encode(&by),
                window(&w)
            );
            let response: TenantsTopResponse = client.get(&path).await?;
            match json {
                true => println!("{}", serde_json::to_string_pretty(&response)?),
                false => print!("{}", sentinel::cli::tenants::top(&response)),
            }
        }
        TenantsCommand::Show { tenant, window: w } => {
            let path = format!("/v1/tenants/{}?{}", encode(&tenant), window(&w));
            let response: TenantResponse = client.get(&path).await?;
            match json {
                true => println!("{}", serde_json::to_string_pretty(&response)?),
                false => print!("{}", sentinel::cli::tenants::tenant(&response)),
            }
        }
    }
    Ok(())
}

async fn events(client: &ControlClient, args: &EventsArgs, json: bool) -> anyhow::Result<()> {
    let mut query = vec![format!("limit={}", args.limit)];
    if let Some(since) = &args.since {
        query.push(format!("since={}", encode(since)));
    }
    if !args.kind.is_empty() {
        query.push(format!("kind={}", encode(&args.kind.join(","))));
    }
    if !args.follow {
        let response: EventsResponse = client
            .get(&format!("/v1/events?{}", query.join("&")))
            .await?;
        if json {
            for event in &response.events {
                println!("{}", serde_json::to_string(event)?);
            }
        } else {
            print!("{}", render::events(&response.events));
        }
        return Ok(());
    }
    query.push("follow=1".into());
    if !json {
        println!("{}", render::EVENT_HEADER.join("  "));
    }
    let stdout = std::io::stdout();
    client
        .stream_lines(&format!("/v1/events?{}", query.join("&")), |line| {
            let mut out = stdout.lock();
            if json {
                let _ = out.write_all(line);
                let _ = out.write_all(b"\n");
            } else {
                match serde_json::from_slice::<JournaledEvent>(line) {
                    Ok(event) => {
                        let _ = writeln!(out, "{}", render::event_row(&event).join("  "));
                    }
                    Err(_) => {
                        let _ = writeln!(out, "{}", String::from_utf8_lossy(line));
                    }
                }
            }
            let _ = out.flush();
        })
        .await?;
    Ok(())
}
