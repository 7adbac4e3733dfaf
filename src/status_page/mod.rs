//! The read-only status page on the public listener (`GET /`): probe states with a latency
//! sparkline, running chaos experiments, recent incidents and top tenants, as one HTML page.
//!
//! Server-rendered with inline CSS and inline SVG, no JavaScript; it refreshes itself with a
//! meta tag. Gathering (`StatusPage::gather`) is separate from rendering (`render::page`), which
//! is a pure function of [`PageData`] and is what the unit tests exercise.

mod experiments;
mod render;
mod sparkline;

use std::time::Duration;

use crate::analyze::{outages, Outage};
use crate::event::Timestamp;
use crate::journal::{EventQuery, Journal};
use crate::probe::{ProbeBoard, ProbeSnapshot};
use crate::tenants::{RankBy, TenantService, TopTenants};
pub use experiments::running_experiments;
pub use render::{escape, page};

/// How far back "recent incidents" reaches.
pub const INCIDENT_HORIZON: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most incidents listed.
pub const MAX_INCIDENTS: usize = 10;
/// Most tenants listed.
pub const TOP_TENANTS: usize = 5;
/// Transitions read to find recent incidents: plenty for ten outages even among flapping probes.
const TRANSITIONS_READ: usize = 5000;

/// A chaos experiment that is running now, as the page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveExperiment {
    pub id: String,
    pub name: String,
    pub target: String,
    pub ends_at: Timestamp,
}

/// Tenant rankings as the page shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantsView {
    /// "5xx" for the default error statuses.
    pub error_label: String,
    pub top: TopTenants,
}

/// Everything one rendering of the page needs.
#[derive(Debug, Clone, PartialEq)]
pub struct PageData {
    pub now: Timestamp,
    pub probes: Vec<ProbeSnapshot>,
    /// Newest first.
    pub incidents: Vec<Outage>,
    /// `None` when the tenant detector is disabled.
    pub tenants: Option<TenantsView>,
    pub experiments: Vec<ActiveExperiment>,
    /// Set when the journal could not be read: the page still renders, and says so.
    pub journal_error: Option<String>,
}

/// What the page reads from; cheap to clone per connection.
#[derive(Clone)]
pub struct StatusPage {
    pub probes: ProbeBoard,
    pub journal: Journal,
    pub tenants: TenantService,
}

impl StatusPage {
    /// The page as HTML, rendered now.
    pub async fn html(&self) -> String {
        page(&self.gather().await)
    }

    pub async fn gather(&self) -> PageData {
        let now = Timestamp::now();
        let query = EventQuery {
            since: Some(now.saturating_sub(INCIDENT_HORIZON)),
            after_id: None,
            until: None,
            kinds: vec!["probe_transition".into()],
            limit: TRANSITIONS_READ,
        };
        let (incidents, mut journal_error) = match self.journal.query(query).await {
            Ok(events) => {
                let mut found = outages(&events);
                found.reverse();
                found.truncate(MAX_INCIDENTS);
                (found, None)
            }
            Err(err) => (Vec::new(), Some(err.to_string())),
        };
        let query = EventQuery {
            since: Some(now.saturating_sub(experiments::EXPERIMENT_HORIZON)),
            until: None,
            after_id: None,
            kinds: experiments::EXPERIMENT_KINDS.map(String::from).to_vec(),
            limit: EventQuery::MAX_LIMIT,
        };
        let experiments = match self.journal.query(query).await {
            Ok(events) => running_experiments(&events),
            Err(err) => {
                journal_error.get_or_insert(err.to_string());
                Vec::new()
            }
        };
        let tenants = self
            .tenants
            .top(RankBy::Errors, Duration::ZERO, TOP_TENANTS, now.as_millis())
            .map(|top| TenantsView {
                error_label: self.tenants.error_label(),
                top,
            });
        PageData {
            now,
            probes: self.probes.snapshot(),
            incidents,
            tenants,
            experiments,
            journal_error,
        }
    }
}
