//! Sentinel: one daemon (`sentineld`) that keeps a Linux host's services alive, breaks them on
//! purpose to prove they survive, and says which tenant is hurting.
//!
//! # Layout
//! - [`units`]: leaf of the values config is written in (durations, sizes, rates, secret files)
//!   and the key-path `Issue` each area's section validates into; imports nothing of the crate.
//! - [`config`]: loads the file into the areas' own sections (`probe::config`, ...), places
//!   their issues at file:line:col, diff, file watching, default paths.
//! - [`board`]: the latest state of each probe and healer, shared with the API and metrics.
//! - [`event`]: the typed `Event` every area emits, the closed word sets it carries, and the
//!   broadcast `Bus` that carries it (the record; consumers may lag).
//! - [`journal`]: every event stored in SQLite, with retention; history and live feed for the API.
//! - [`daemon`]: the one owner of start, reload and stop: each area a `Component` (prepare,
//!   apply, stop) under the `Supervisor`; crash rollback, the state lock, sd_notify.
//! - [`probe`]: health checks, the threshold machine that turns results into Up/Down, and each
//!   probe's lossless status channel that healers, the cascade and drills follow.
//! - [`tenants`]: the tenant incident detector: bounded per-tenant windows, rankings, alerts.
//! - [`ingest`]: `POST /v1/events` — bounded bodies, each event validated alone.
//! - [`api`]: the control socket (server, client, shared types, peer authorization).
//! - [`http`]: the public TCP listener, and the one outbound HTTP client stack (`http::client`).
//! - [`checkin`]: `[heartbeat]`, sentineld checking in with an external URL while it is healthy.
//! - [`status_page`]: the read-only HTML status page on the public listener (`GET /`).
//! - [`uptime`]: availability per probe over days, from rollups the journal keeps.
//! - [`metrics`]: `/metrics` in the Prometheus text format, one series per probe.
//! - [`backoff`]: the one retry schedule (doubling waits up to a cap) every retrying area uses.
//! - [`process`]: child processes of exec probes and heals: bounded output, killed as a group.
//! - [`heal`]: heal actions on Down, restart budget and backoff, verified recovery, incident times.
//! - [`remedy`]: graded PostgreSQL remedy before a restart: dead or stuck, lock-chain heads,
//!   runaway queries, idle transactions; the healer runs its steps, each evidenced first.
//! - [`docker`]: the Docker engine edge — one negotiated client, the event stream on the bus.
//! - [`report`]: one chaos experiment's timeline, per-probe times and hypothesis verdict.
//! - [`ai`]: the optional, off-by-default AI summary of a report (OpenAI-compatible or Ollama).
//! - [`analyze`]: failure patterns over the journal: deterministic findings with their evidence.
//! - [`agent`]: `sentinel-agent`, the sidecar: tails logs, ships events, disk buffer, offsets.
//! - [`cli`]: command-line definitions of the binaries and the renderers of `sentinelctl`.
//! - [`logging`]: journald / text / JSON log output.
//! - [`paths`]: default locations and the fallbacks of an unprivileged run (a leaf).
//! - [`panic_policy`]: a panic aborts the process in every build; blocking work without panic handlers.
//! - [`archive`]: evidence bundles spooled before a restart, uploaded to S3 or a directory.
//! - [`notify`]: the durable outbox to Slack, Discord, webhooks and Alertmanager.
//! - [`drill`]: game days — chaos experiments in sequence with expectations, pass/fail, abort.
//! - [`maintenance`]: maintenance windows (scheduled by cron in a time zone, or opened at run
//!   time): probes in one are checked and journaled but neither healed nor alerted.
//! - `fuzzing` (hidden): the entry points of the fuzz targets in `fuzz/`; see docs/reliability.md.
//!
//! Data flows one way: sources → each probe's status channel (lossless, for what heals) and the
//! bus (the record) → consumers. Areas share types from `event` and `units`, never each other's
//! internals; `config` imports areas, never the reverse. docs/architecture.md draws it.

pub mod agent;
pub mod ai;
pub mod analyze;
pub mod api;
pub mod archive;
pub mod backoff;
pub mod board;
pub mod chaos;
pub mod checkin;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod docker;
pub mod drill;
pub mod event;
#[doc(hidden)]
pub mod fuzzing;
pub mod heal;
pub mod http;
pub mod ingest;
pub mod journal;
pub mod logging;
pub mod maintenance;
pub mod metrics;
pub mod notify;
pub mod panic_policy;
pub mod paths;
pub mod probe;
pub mod process;
pub mod remedy;
pub mod report;
pub mod status_page;
pub mod systemd;
pub mod tenants;
pub mod units;
pub mod uptime;
