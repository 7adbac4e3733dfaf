//! The control socket: HTTP/1.1 + JSON over a Unix socket. `routes` is the one table both sides
//! share, `server` answers, `client` is what `sentinelctl` uses, `types` are the bodies both
//! share, `peer` decides who may change things.

mod analyze;
mod archives;
mod chaos;
mod client;
mod drills;
mod events;
mod explain;
mod maintenance;
mod outbox;
mod peer;
mod query;
mod report;
mod routes;
mod server;
mod tenants;
mod types;
mod uptime;

pub use archives::ArchivesResponse;
pub use chaos::{ExperimentsResponse, ProfilesResponse, StopAllResponse};
pub use client::{ClientError, ControlClient};
pub use drills::{DrillRunResponse, DrillsResponse};
pub use outbox::OutboxResponse;
pub use peer::{authorize, Accounts, Denied, Peer, SystemAccounts};
pub use query::{parse_events_params, parse_since, EventsParams, QueryError};
pub use routes::{Guard, Miss, Route, RouteId, Target};
pub use server::{serve, ApiState, CommandRefused, ControlCommand};
pub use tenants::{top_answer, TopRefused};
pub use types::{
    DaemonInfo, ErrorResponse, EventsResponse, HealResponse, ReloadOutcome, ReloadReport,
    SilenceResponse, StatusResponse, TenantMuteResponse, TenantMutesResponse, TenantResponse,
    TenantsTopResponse,
};
