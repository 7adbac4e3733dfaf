//! Alerts a restart left open: fired by an earlier sentineld whose incident closed while no
//! one was watching. When their probe is seen Up again, they are resolved instead of left firing.

use super::compose::{Notification, Status};
use super::outbox::OpenAlert;
use crate::event::Timestamp;

/// Resolutions (channel, notification) for the alerts in `open` about `probe` that fired before
/// `watching_since` (this notifier's start); alerts fired since then are closed by the composer,
/// which saw their incident from the start ("✅ postgres recovered in 4.2 s").
pub fn resolve_orphans(
    open: &[OpenAlert],
    probe: &str,
    up_at: Timestamp,
    watching_since: Timestamp,
) -> Vec<(String, Notification)> {
    let subject = format!("probe:{probe}");
    open.iter()
        .filter_map(|alert| {
            let firing: Notification = serde_json::from_str(&alert.notification).ok()?;
            if firing.subject != subject || firing.at >= watching_since {
                return None;
            }
            let resolved = Notification {
                status: Status::Resolved,
                text: format!(
                    "✅ {probe} is up again (down since {}; its incident ended across a sentineld restart)",
                    firing.started_at.to_rfc3339()
                ),
                at: up_at,
                ..firing
            };
            Some((alert.channel.clone(), resolved))
        })
        .collect()
}

/// Whether `open` holds alerts an earlier sentineld fired about probes other than `probe`:
/// once none do, none can appear again (this daemon's alerts are never orphans), so the
/// notifier stops looking on each Up.
pub fn others_left(open: &[OpenAlert], probe: &str, watching_since: Timestamp) -> bool {
    let subject = format!("probe:{probe}");
    open.iter().any(|alert| {
        serde_json::from_str::<Notification>(&alert.notification).is_ok_and(|firing| {
            firing.subject.starts_with("probe:")
                && firing.subject != subject
                && firing.at < watching_since
        })
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::notify::config::Severity;

    fn open(channel: &str, subject: &str, at: i64) -> OpenAlert {
        let firing = Notification {
            kind: "probe_transition".into(),
            subject: subject.into(),
            probe: subject.trim_start_matches("probe:").into(),
            status: Status::Firing,
            severity: Severity::Critical,
            text: "🚨 db: down".into(),
            at: Timestamp(at),
            started_at: Timestamp(at - 500),
            labels: BTreeMap::from([("alertname".to_string(), "SentinelProbeDown".to_string())]),
        };
        OpenAlert {
            channel: channel.into(),
            notification: serde_json::to_string(&firing).unwrap(),
            last_told: Timestamp(at),
        }
    }

    #[test]
    fn only_alerts_about_this_probe_fired_before_this_start_are_resolved() {
        let since = Timestamp(10_000);
        let cases: Vec<(&str, Vec<OpenAlert>, Vec<&str>)> = vec![
            ("nothing open", vec![], vec![]),
            (
                "fired before the start",
                vec![open("hook", "probe:db", 5_000)],
                vec!["hook"],
            ),
            (
                "fired since the start: the composer closes it",
                vec![open("hook", "probe:db", 12_000)],
                vec![],
            ),
            (
                "another probe",
                vec![open("hook", "probe:api", 5_000)],
                vec![],
            ),
            (
                "a tenant alert",
                vec![open("hook", "tenant:p95:db", 5_000)],
                vec![],
            ),
            (
                "each channel that heard of it",
                vec![
                    open("hook", "probe:db", 5_000),
                    open("slack", "probe:db", 5_000),
                ],
                vec!["hook", "slack"],
            ),
        ];
        for (name, alerts, expected) in cases {
            let channels: Vec<String> = resolve_orphans(&alerts, "db", Timestamp(20_000), since)
                .into_iter()
                .map(|(channel, _)| channel)
                .collect();
            assert_eq!(channels, expected, "{name}");
        }
    }

    #[test]
    fn others_left_counts_earlier_alerts_about_other_probes_only() {
        let since = Timestamp(10_000);
        let cases = [
            ("nothing open", vec![], false),
            (
                "only this probe's",
                vec![open("hook", "probe:db", 5_000)],
                false,
            ),
            (
                "another probe's, earlier",
                vec![open("hook", "probe:api", 5_000)],
                true,
            ),
            (
                "another probe's, since the start",
                vec![open("hook", "probe:api", 12_000)],
                false,
            ),
            (
                "a tenant alert",
                vec![open("hook", "tenant:p95:db", 5_000)],
                false,
            ),
        ];
        for (name, alerts, expected) in cases {
            assert_eq!(others_left(&alerts, "db", since), expected, "{name}");
        }
    }

    #[test]
    fn a_resolution_keeps_the_alert_identity_and_says_what_happened() {
        let resolved = resolve_orphans(
            &[open("hook", "probe:db", 5_000)],
            "db",
            Timestamp(20_000),
            Timestamp(10_000),
        );
        let (_, resolved) = &resolved[0];
        assert_eq!(resolved.status, Status::Resolved);
        assert_eq!(resolved.subject, "probe:db");
        assert_eq!(resolved.labels["alertname"], "SentinelProbeDown");
        assert_eq!(resolved.started_at, Timestamp(4_500));
        assert_eq!(resolved.at, Timestamp(20_000));
        assert!(
            resolved
                .text
                .starts_with("✅ db is up again (down since 1970-01-01T00:00:04.500Z"),
            "{}",
            resolved.text
        );
    }
}
