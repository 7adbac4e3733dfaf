//! Command-line definitions of the three binaries (here, not in `src/bin/`, so man pages and
//! completions are generated from the same source) and the renderers `sentinelctl` prints with.

pub mod analyze;
pub mod archives;
pub mod chaos;
pub mod drill;
pub mod maintenance;
pub mod outbox;
pub mod render;
pub mod report;
pub mod summary;
pub mod tenants;
pub mod uptime;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::logging::LogFormat;
use crate::paths;

/// sentineld — keeps a host's services alive, breaks them on purpose, names the tenant that hurts.
#[derive(Debug, Parser)]
#[command(name = "sentineld", version, about, long_about = None)]
pub struct DaemonCli {
    /// Configuration file (TOML).
    #[arg(long, short = 'c', global = true, env = "SENTINEL_CONFIG", default_value = paths::DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// Log output: journald under systemd, text on a terminal, or json.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
    /// Default log filter (RUST_LOG overrides it), e.g. info or sentinel=debug.
    #[arg(long, global = true, default_value = "info")]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Option<DaemonCommand>,
}

#[derive(Debug, Subcommand)]
pub enum DaemonCommand {
    /// Run the daemon (the default when no command is given).
    Run,
    /// Validate a config file and exit 0 (valid) or 1 (invalid, with file:line:col).
    CheckConfig {
        /// File to check; defaults to --config.
        file: Option<PathBuf>,
    },
    /// Print the built-in example configuration, a starting point for /etc/sentinel/sentineld.toml.
    PrintDefaultConfig,
    /// Roll back what a stopped or crashed sentineld's chaos left, even with an invalid config.
    ///
    /// Prints what it undid; exits 0 also when nothing was left, 1 when something could not be
    /// undone or while a sentineld runs on the state directory. The systemd unit runs it as
    /// ExecStopPost=.
    Rollback {
        /// State directory to roll back in [default: --config's [daemon] state_dir, read even
        /// from an invalid file, else /var/lib/sentinel].
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
}

/// sentinelctl — talks to sentineld over its control socket.
#[derive(Debug, Parser)]
#[command(name = "sentinelctl", version, about, long_about = None)]
pub struct CtlCli {
    /// Control socket of sentineld [default: /run/sentinel/sentinel.sock, else this user's fallback]
    #[arg(long, short = 's', global = true, env = "SENTINEL_SOCKET")]
    pub socket: Option<PathBuf>,
    /// Print the daemon's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Daemon version, uptime, config, last reload, probes.
    Status,
    /// Every probe: what it checks, how often, its thresholds and heal budget.
    Probes,
    /// Re-read the config; prints what changed, or the validation error (exit 1).
    Reload,
    /// Events from the journal.
    Events(EventsArgs),
    /// Versions of sentinelctl and of the running daemon.
    Version,
    /// Keep checking a probe but neither heal nor alert for a while.
    Silence {
        probe: String,
        /// How long, e.g. 30m or 2h; 0 lifts the silence.
        #[arg(long = "for", value_name = "DURATION")]
        duration: String,
    },
    /// Operate a probe's healing.
    #[command(subcommand)]
    Heal(HealCommandArgs),
    /// Failure patterns from the journal: who fails most, recurring and flapping outages,
    /// failure reasons, heal outcomes, exhausted budgets, tenant alerts. Each with its events.
    Analyze {
        /// How far back: a duration (24h, 7d) or an RFC 3339 time [default: 24h].
        #[arg(long)]
        since: Option<String>,
        /// Also ask the configured AI endpoint ([ai]) for a plain-language summary, printed
        /// after the findings and labeled as generated.
        #[arg(long)]
        summary: bool,
    },
    /// One chaos experiment's report: timeline, time to detect/act/recover per probe, the
    /// verdict on its hypothesis, tenants before vs during.
    Report {
        /// Experiment id, as `sentinelctl chaos list` shows it.
        experiment: String,
        /// text for a terminal, markdown for a post-mortem (--json for machines).
        #[arg(long, value_enum, default_value_t = report::ReportFormat::Text)]
        format: report::ReportFormat,
        /// Also ask the configured AI endpoint ([ai]) for a plain-language summary, printed
        /// after the report and labeled as generated.
        #[arg(long)]
        summary: bool,
    },
    /// Which tenant is hurting: rankings and one tenant's numbers.
    #[command(subcommand)]
    Tenants(TenantsCommand),
    /// Chaos experiments: profiles, start, list, show, stop.
    #[command(subcommand)]
    Chaos(chaos::ChaosCommand),
    /// Drills (game days): chaos experiments in sequence with expectations; pass/fail each.
    #[command(subcommand)]
    Drill(drill::DrillCommand),
    /// Evidence bundles archived before restarts: upload state and location.
    Archives {
        /// At most this many, the newest.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Notification outbox: each message's channel, delivery state, attempts, next try, error.
    Outbox {
        /// At most this many, the newest.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Notification channels: send a test message.
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Maintenance windows: probes still checked and journaled, but neither healed nor
    /// alerted; start, list, end.
    #[command(subcommand)]
    Maintenance(maintenance::MaintenanceCommand),
    /// Availability per probe over 24h / 7d / 30d / 90d (or --since), with incidents and
    /// median / p95 time to recover, from the journal; maintenance windows left out.
    Uptime {
        /// One window instead of the four: a duration (30d) or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Only this probe.
        #[arg(long)]
        probe: Option<String>,
        /// table, csv (header line, raw milliseconds), markdown or json (--json is the same).
        #[arg(long, value_enum, default_value_t = uptime::UptimeFormat::Table)]
        format: uptime::UptimeFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Send a labelled test message to CHANNEL now (not through the outbox queue) and print
    /// what the receiver answered; exits 1 when it was not accepted.
    Test {
        /// The channel's `name` in [[notify.channel]].
        channel: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// The tenants that hurt most, by share of errors (default), error rate, p95 or deviation.
    Top {
        /// errors, error_rate, latency or deviation.
        #[arg(long, default_value = "errors")]
        by: String,
        /// How far back, e.g. 5m (default and maximum: the configured window).
        #[arg(long)]
        window: Option<String>,
        /// How many tenants.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Also ask this sentineld (repeatable): a control socket path, or the public listener
        /// of one on another host (http://HOST:9137, its [http] tenants route on). Each daemon
        /// owns a disjoint set of tenants (docs/scaling.md); the answers are merged exactly.
        #[arg(long, value_name = "SOCKET_OR_URL")]
        peer: Vec<crate::cli::tenants::PeerAddr>,
        /// With --peer: ask only the peers, not the local daemon.
        #[arg(long, requires = "peer")]
        no_local: bool,
        /// A file holding the read token sent to URL peers ([http] read_tokens); the token
        /// itself may come in $SENTINEL_PEER_TOKEN instead.
        #[arg(long, value_name = "FILE", requires = "peer")]
        peer_token_file: Option<std::path::PathBuf>,
    },
    /// One tenant's requests, errors, latency, baseline and top failing endpoint.
    Show {
        tenant: String,
        /// How far back, e.g. 5m (default and maximum: the configured window).
        #[arg(long)]
        window: Option<String>,
    },
    /// Hold a tenant's alerts for a while (a demo or load-test tenant); it still ranks, marked
    /// muted. Journaled with who asked; survives a daemon restart.
    Mute {
        tenant: String,
        /// How long, e.g. 1h or 30m.
        #[arg(long = "for", value_name = "DURATION")]
        duration: String,
        /// Why, for whoever reads the ranking or the journal.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Lift a tenant's mute: its alerts fire again.
    Unmute { tenant: String },
    /// The tenant mutes in force.
    Mutes,
    /// What failing (or slow) requests have in common: the values of `[tenants] dimensions`
    /// over-represented among them against the rest of the traffic (lift, Wilson bound).
    Explain {
        /// Only this tenant's requests (it must be among those with most errors or slow
        /// requests); default: all traffic.
        #[arg(long)]
        tenant: Option<String>,
        /// Explain errors (the default).
        #[arg(long, conflicts_with = "latency")]
        errors: bool,
        /// Explain slow requests (`[tenants.explain] slow`) instead of errors.
        #[arg(long)]
        latency: bool,
        /// How far back, e.g. 5m (default and maximum: the configured window).
        #[arg(long)]
        window: Option<String>,
        /// How many values.
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum HealCommandArgs {
    /// Run the probe's heal action now (within its restart budget).
    Now { probe: String },
    /// Refill the probe's restart budget; a probe that gave up is healed again.
    Reset { probe: String },
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only events since then: a duration (10m, 2h) or an RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// Keep printing new events as they happen.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only events of this kind (repeatable), e.g. probe_transition.
    #[arg(long)]
    pub kind: Vec<String>,
    /// At most this many past events (the newest).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}

/// sentinel-agent — the sidecar that ships an application's tenant events to sentineld.
#[derive(Debug, Parser)]
#[command(name = "sentinel-agent", version, about, long_about = None)]
pub struct AgentCli {
    /// Configuration file (TOML) [default: /etc/sentinel/agent.toml; optional with --log]
    #[arg(long, short = 'c', env = "SENTINEL_AGENT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Access log to tail as JSON lines with the ingest field names (quick start without a
    /// config file; with one, an extra [[file]]).
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// sentineld's ingest URL, overriding output.endpoint [default: http://127.0.0.1:9137/v1/events]
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Where saved offsets and the disk buffer live, overriding state_dir.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Validate the configuration and exit 0 (valid) or 1 (invalid, with file:line:col).
    #[arg(long)]
    pub check_config: bool,
    /// The agent's own log output: journald under systemd, text on a terminal, or json.
    #[arg(long, value_enum, default_value_t = LogFormat::Auto)]
    pub log_output: LogFormat,
    /// Default log filter (RUST_LOG overrides it), e.g. info or sentinel=debug.
    #[arg(long, default_value = "info")]
    pub log_level: String,
}
