//! Integration tests against the real binaries: one test binary, one module per concern.

mod harness;

mod agent;
mod ai;
mod analyze;
mod archive;
mod bounds;
mod channels;
mod chaos;
mod check_config;
mod checkin;
mod control;
mod crash;
mod docker;
mod drill;
mod hardening;
mod heartbeat;
mod host_probes;
mod journald;
mod metrics;
mod net_probes;
mod notify;
mod pg_container;
mod pg_remedy;
mod postgres;
mod probes;
mod public_access;
mod reload;
mod remedy;
mod report;
mod secrets;
mod status_page;
mod systemd_notify;
mod tenants;
mod tls;
mod uptime;
