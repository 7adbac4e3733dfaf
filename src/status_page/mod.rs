//! The read-only status page on the public listener (`GET /`): probe states with a latency
//! sparkline and a 90-day availability bar, running chaos experiments, drills (last run, result,
//! recovery trend), recent incidents and top tenants, as one HTML page.
//!
//! Server-rendered with inline CSS and inline SVG, no JavaScript; it refreshes itself with a
//! meta tag. Gathering (`StatusPage::gather`) is separate from rendering (`render::page`), which
//! is a pure function of [`PageData`] and is what the unit tests exercise. What comes from the
//! journal is kept between requests and updated from new rows only ([`history`]), so a GET stays
//! cheap however big the journal is.

mod drills;
mod experiments;
mod history;
mod render;
mod sparkline;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::analyze::Outage;
use crate::event::Timestamp;
use crate::journal::Journal;
use crate::metrics::{Kind, MetricsSource, MetricsText};
use crate::probe::{ProbeBoard, ProbeSnapshot};
use crate::tenants::{RankBy, TenantService, TopTenants};
use crate::uptime::DayCell;
pub use drills::{DrillView, RunView};
pub use experiments::running_experiments;
pub use render::{escape, page};

/// How far back "recent incidents" reaches.
pub const INCIDENT_HORIZON: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most incidents listed.
pub const MAX_INCIDENTS: usize = 10;
/// Most tenants listed.
pub const TOP_TENANTS: usize = 5;
/// Days in each probe's availability bar.
pub const BAR_DAYS: i64 = 90;
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
    /// Per probe name, the last [`BAR_DAYS`] UTC days up to today's, oldest first. A probe
    /// missing here (it never changed state) shows every day as "no data".
    pub uptime: HashMap<String, Vec<DayCell>>,
    /// Drills that finished a run, by name, each with its recent runs.
    pub drills: Vec<DrillView>,
}

/// What the page reads from; cheap to clone per connection.
#[derive(Clone)]
pub struct StatusPage {
    probes: ProbeBoard,
    journal: Journal,
    tenants: TenantService,
    /// Maintenance windows: their time is left out of the 90-day bars.
    maintenance: crate::maintenance::Windows,
    history: Arc<tokio::sync::Mutex<history::History>>,
    /// Journal rows read for the page since start (shown on `/metrics`).
    rows_read: Arc<AtomicU64>,
    /// The bars' past days, kept while nothing that shapes them changes.
    bars: Arc<std::sync::Mutex<crate::uptime::BarCache>>,
}

impl StatusPage {
    pub fn new(
        probes: ProbeBoard,
        journal: Journal,
        tenants: TenantService,
        maintenance: crate::maintenance::Windows,
    ) -> Self {
        Self {
            probes,
            journal,
            tenants,
            maintenance,
            history: Arc::default(),
            rows_read: Arc::default(),
            bars: Arc::default(),
        }
    }

    /// The page as HTML, rendered now.
    pub async fn html(&self) -> String {
        page(&self.gather().await)
    }

    pub async fn gather(&self) -> PageData {
        let now = Timestamp::now();
        let (incidents, experiments, drills, mut journal_error) = {
            let mut history = self.history.lock().await;
            let error = history
                .refresh(&self.journal, now, &self.rows_read)
                .await
                .err()
                .map(|err| err.to_string());
            (
                history.incidents(now),
                history.experiments(now),
                history.drills(),
                error,
            )
        };
        let uptime = match crate::uptime::bars(
            &self.journal,
            now,
            BAR_DAYS,
            &self.maintenance.probe_labels(),
            Arc::clone(&self.bars),
        )
        .await
        {
            Ok(bars) => bars.into_iter().collect(),
            Err(err) => {
                journal_error.get_or_insert_with(|| crate::logging::error_chain(&err));
                HashMap::new()
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
            uptime,
            drills,
        }
    }
}

impl MetricsSource for StatusPage {
    fn render_metrics(&self, out: &mut MetricsText) {
        out.single(
            "sentinel_status_page_journal_rows_read_total",
            Kind::Counter,
            "Journal rows read to render the status page (a first full read, then only new rows).",
            self.rows_read.load(Ordering::Relaxed),
        );
    }
}
