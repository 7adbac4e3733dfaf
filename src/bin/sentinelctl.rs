//! sentinelctl: a thin client. It asks sentineld over the control socket and renders the answer.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use sentinel::analyze::Analysis;
use sentinel::api::{
    ControlClient, EventsResponse, HealResponse, ReloadOutcome, ReloadReport, Route,
    SilenceResponse, StatusResponse, Target, TenantMuteResponse, TenantMutesResponse,
    TenantResponse,
};
use sentinel::cli::tenants::PeerAddr;
use sentinel::cli::{render, CtlCli, CtlCommand, EventsArgs, HealCommandArgs, TenantsCommand};
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
            let status: StatusResponse = client.call(Route::Status).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", render::status(&status));
            }
        }
        CtlCommand::Probes => {
            let status: StatusResponse = client.call(Route::Status).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&status.probes)?);
            } else {
                print!("{}", render::probes(&status));
            }
        }
        CtlCommand::Reload => {
            let (_, report): (u16, ReloadReport) = client.call_report(Route::Reload).await?;
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
            let target = Route::Silence { probe }.with_query([("for", duration.as_str())]);
            let response: SilenceResponse = client.call(target).await?;
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
            let route = match command {
                HealCommandArgs::Now { probe } => Route::HealNow { probe },
                HealCommandArgs::Reset { probe } => Route::HealReset { probe },
            };
            let response: HealResponse = client.call(route).await?;
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
            let target = Route::Archives.with_query([("limit", limit.to_string())]);
            let response: sentinel::api::ArchivesResponse = client.call(target).await?;
            match cli.json {
                true => println!("{}", serde_json::to_string_pretty(&response)?),
                false => print!("{}", sentinel::cli::archives::archives(&response)),
            }
        }
        CtlCommand::Outbox { limit } => {
            let target = Route::Outbox.with_query([("limit", limit.to_string())]);
            let response: sentinel::api::OutboxResponse = client.call(target).await?;
            match cli.json {
                true => println!("{}", serde_json::to_string_pretty(&response)?),
                false => print!("{}", sentinel::cli::outbox::outbox(&response)),
            }
        }
        CtlCommand::Maintenance(command) => {
            sentinel::cli::maintenance::run(&client, command, cli.json).await?
        }
        CtlCommand::Notify(sentinel::cli::NotifyCommand::Test { channel }) => {
            let outcome: sentinel::notify::TestOutcome =
                client.call(Route::NotifyTest { channel }).await?;
            match cli.json {
                true => println!("{}", serde_json::to_string_pretty(&outcome)?),
                false => print!("{}", sentinel::cli::outbox::test_outcome(&outcome)),
            }
            if !outcome.delivered {
                return Ok(ExitCode::FAILURE);
            }
        }
        CtlCommand::Uptime {
            since,
            probe,
            format,
        } => {
            let query: Vec<(&str, String)> = since
                .map(|s| ("since", s))
                .into_iter()
                .chain(probe.map(|p| ("probe", p)))
                .collect();
            let report: sentinel::uptime::UptimeReport =
                client.call(Route::Uptime.with_query(query)).await?;
            let format = match cli.json {
                true => sentinel::cli::uptime::UptimeFormat::Json,
                false => format,
            };
            print!("{}", sentinel::cli::uptime::render(&report, format));
        }
        CtlCommand::Analyze { since, summary } => {
            let query: Vec<(&str, String)> = since.map(|s| ("since", s)).into_iter().collect();
            let analysis: Analysis = client
                .call(Route::Analyze.with_query(query.clone()))
                .await?;
            let text = sentinel::cli::analyze::report(&analysis);
            let path = Route::AnalyzeSummary.with_query(query);
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
            let report: sentinel::report::ExperimentReport = client
                .call(Route::ChaosReport {
                    experiment: experiment.clone(),
                })
                .await?;
            let text = sentinel::cli::report::render(&report, format);
            let path = Target::from(Route::ChaosSummary { experiment });
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
            match client.call::<StatusResponse>(Route::Status).await {
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
    summary_path: Option<Target>,
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
    let summary = client.call::<sentinel::ai::AiSummary>(path).await;
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
    match command {
        TenantsCommand::Top {
            by,
            window: w,
            limit,
            peer,
            no_local,
            peer_token_file,
        } => {
            let mut query = vec![("by", by), ("limit", limit.to_string())];
            query.extend(w.map(|w| ("window", w)));
            let token = match peer_token_file {
                Some(path) => Some(
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?,
                ),
                None => std::env::var("SENTINEL_PEER_TOKEN").ok(),
            };
            let mut peers = Vec::new();
            if !no_local {
                peers.push(PeerAddr::Socket(client.socket().to_path_buf()));
            }
            peers.extend(peer);
            let mut answers = Vec::with_capacity(peers.len());
            for peer in &peers {
                let answer = sentinel::cli::tenants::ask_peer(peer, &query, token.as_deref())
                    .await
                    .with_context(|| format!("asking {peer}"))?;
                answers.push(answer);
            }
            let response = match answers.len() {
                1 => answers.remove(0),
                _ => sentinel::cli::tenants::merge_answers(answers, limit)?,
            };
            match json {
                true => println!("{}", serde_json::to_string_pretty(&response)?),
                false => print!("{}", sentinel::cli::tenants::top(&response)),
            }
        }
        TenantsCommand::Show { tenant, window: w } => {
            let query: Vec<(&str, String)> = w.map(|w| ("window", w)).into_iter().collect();
            let response: TenantResponse = client
                .call(Route::Tenant { tenant }.with_query(query))
                .await?;
            match json {
                true => println!("{}", serde_json::to_string_pretty(&response)?),
                false => print!("{}", sentinel::cli::tenants::tenant(&response)),
            }
        }
        TenantsCommand::Mute {
            tenant,
            duration,
            reason,
        } => {
            let target = Route::TenantMute { tenant }
                .with_query([("for", duration.as_str()), ("reason", reason.as_str())]);
            let response: TenantMuteResponse = client.call(target).await?;
            match json {
                true => println!("{}", serde_json::to_string_pretty(&response)?),
                false => print!("{}", sentinel::cli::tenants::muted(&response)),
            }
        }
        TenantsCommand::Explain {
            tenant,
            errors: _,
            latency,
            window: w,
            limit,
        } => {
            let signal = if latency { "latency" } else { "errors" };
            let mut query = vec![("signal", signal.to_string()), ("limit", limit.to_string())];
            query.extend(tenant.map(|t| ("tenant", t)));
            query.extend(w.map(|w| ("window", w)));
            let response: sentinel::tenants::Explanation =
                client.call(Route::TenantsExplain.with_query(query)).await?;
            match json {
                true => println!("{}", serde_json::to_string_pretty(&response)?),
                false => print!("{}", sentinel::cli::tenants::explain(&response)),
            }
        }
        TenantsCommand::Unmute { tenant } => {
            let target = Route::TenantMute { tenant }.with_query([("for", "0")]);
            let response: TenantMuteResponse = client.call(target).await?;
            match json {
                true => println!("{}", serde_json::to_string_pretty(&response)?),
                false => print!("{}", sentinel::cli::tenants::muted(&response)),
            }
        }
        TenantsCommand::Mutes => {
            let response: TenantMutesResponse = client.call(Route::TenantMutes).await?;
            match json {
                true => println!("{}", serde_json::to_string_pretty(&response)?),
                false => print!("{}", sentinel::cli::tenants::mutes(&response)),
            }
        }
    }
    Ok(())
}

async fn events(client: &ControlClient, args: &EventsArgs, json: bool) -> anyhow::Result<()> {
    let mut query = vec![("limit", args.limit.to_string())];
    if let Some(since) = &args.since {
        query.push(("since", since.clone()));
    }
    if !args.kind.is_empty() {
        query.push(("kind", args.kind.join(",")));
    }
    if !args.follow {
        let response: EventsResponse = client.call(Route::Events.with_query(query)).await?;
        if json {
            for event in &response.events {
                println!("{}", serde_json::to_string(event)?);
            }
        } else {
            print!("{}", render::events(&response.events));
        }
        return Ok(());
    }
    query.push(("follow", "1".into()));
    if !json {
        println!("{}", render::EVENT_HEADER.join("  "));
    }
    let stdout = std::io::stdout();
    client
        .stream_lines(Route::Events.with_query(query), |line| {
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
