//! Applies `[tenants]` to the running detector and ingest: at start and on every reload that
//! changes the section. Alert rules and ingest limits change live; new window geometry resets.

use crate::config::TenantsSection;
use crate::ingest::{Ingest, IngestSettings};
use crate::tenants::service::Reconfigured;
use crate::tenants::TenantService;

/// Configures both halves; the returned notes say what happened to the windows, if anything.
pub fn apply(
    section: &TenantsSection,
    tenants: &TenantService,
    ingest: &Ingest,
) -> Result<Vec<String>, String> {
    let tokens = section.ingest.all_tokens();
    let detector = section.enabled.then(|| section.detector_config());
    let outcome = tenants
        .configure(detector, section.alert_rules())
        .map_err(|e| e.to_string())?;
    ingest.configure(IngestSettings {
        tokens,
        max_body: section.ingest.max_body.as_usize(),
        max_concurrent_requests: *section.ingest.max_concurrent_requests.get_ref(),
        max_event_age: section.max_event_age(),
        max_clock_skew: section.max_clock_skew.get(),
    });
    let note = match outcome {
        Reconfigured::Unchanged => None,
        Reconfigured::Enabled => Some("tenant detector enabled"),
        Reconfigured::Disabled => Some("tenant detector disabled"),
        Reconfigured::WindowsReset => Some("tenant windows reset (new window settings)"),
    };
    Ok(note.map(String::from).into_iter().collect())
}
