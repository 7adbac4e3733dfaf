//! Applies `[tenants]` to the running detector and ingest: at start and on every reload that
//! changes the section. Alert rules and ingest limits change live; new window geometry resets.

use crate::config::TenantsSection;
use crate::event::Timestamp;
use crate::ingest::{Ingest, IngestSettings};
use crate::journal::{EventQuery, Journal};
use crate::tenants::service::Reconfigured;
use crate::tenants::{Mutes, TenantService, TenantsError};

/// The tenant mutes still in force, from the last `tenant_muted` of each tenant: a mute outlives
/// a restart, like a probe's silence.
pub async fn mutes_from_journal(journal: &Journal) -> Mutes {
    let query = EventQuery {
        kinds: vec!["tenant_muted".into()],
        limit: EventQuery::MAX_LIMIT,
        ..Default::default()
    };
    match journal.query(query).await {
        Ok(events) => Mutes::from_journal(&events, Timestamp::now()),
        Err(err) => {
            tracing::warn!(error = %err, "cannot read past tenant mutes; none restored");
            Mutes::default()
        }
    }
}

/// Configures both halves; the returned notes say what happened to the windows, if anything.
pub fn apply(
    section: &TenantsSection,
    tenants: &TenantService,
    ingest: &Ingest,
) -> Result<Vec<String>, TenantsError> {
    let tokens = section.ingest.all_tokens();
    let detector = section.enabled.then(|| section.detector_config());
    let outcome = tenants.configure(detector, section.alert_rules())?;
    let explain = section.enabled.then(|| section.explain_config());
    tenants.explain().configure(explain)?;
    ingest.configure(IngestSettings {
        tokens,
        max_body: section.ingest.max_body.as_usize(),
        max_concurrent_requests: *section.ingest.max_concurrent_requests.get_ref(),
        max_event_age: section.max_event_age(),
        max_clock_skew: section.max_clock_skew.get(),
        otlp_tenant_attributes: section.otlp.tenant_attributes.get_ref().clone(),
        dimensions: section.dimensions.get_ref().clone(),
    });
    let note = match outcome {
        Reconfigured::Unchanged => None,
        Reconfigured::Enabled => Some("tenant detector enabled"),
        Reconfigured::Disabled => Some("tenant detector disabled"),
        Reconfigured::WindowsReset => Some("tenant windows reset (new window settings)"),
    };
    Ok(note.map(String::from).into_iter().collect())
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use toml::Spanned;

    use super::*;
    use crate::daemon::DaemonError;
    use crate::units::HumanDuration;

    /// A detector config the tenant area refuses reaches the daemon's error as its source,
    /// with the message a reload report shows.
    #[test]
    fn a_refused_detector_config_stays_the_source() {
        let mut section = TenantsSection {
            enabled: true,
            ..TenantsSection::default()
        };
        section.window = Spanned::new(0..0, HumanDuration::from_secs(7));
        let refused = apply(&section, &TenantService::default(), &Ingest::default())
            .expect_err("a 7 s window of 10 s buckets is refused");
        let words = refused.to_string();
        assert!(words.starts_with("tenant detector config: "), "{words}");
        let err = DaemonError::from(refused);
        assert_eq!(err.to_string(), format!("[tenants]: {words}"));
        let kept = err.source().and_then(|s| s.downcast_ref::<TenantsError>());
        assert!(
            matches!(kept, Some(TenantsError::InvalidConfig { .. })),
            "{kept:?}"
        );
    }
}
