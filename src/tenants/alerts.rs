//! Tenant alert rules and their state: each (rule, tenant) fires once, resolves when it clears,
//! and then stays quiet for a cooldown. Pure: rankings and time come in, changes go out.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::rank::{RankBy, TenantEvidence, TopTenants};
use super::window_phrase;

/// What a rule compares against its threshold; one of the event words, since
/// `tenant_alert_fired` carries it.
pub use crate::event::AlertCondition;

impl AlertCondition {
    /// The ranking whose head holds every tenant this rule can match.
    pub fn rank_by(self) -> RankBy {
        match self {
            Self::ErrorShare | Self::Errors => RankBy::Errors,
            Self::ErrorRate => RankBy::ErrorRate,
            Self::P95 => RankBy::Latency,
            Self::Deviation => RankBy::Deviation,
        }
    }

    pub fn threshold_unit(self) -> &'static str {
        match self {
            Self::ErrorShare | Self::ErrorRate => "a percentage above 0, at most 100",
            Self::Errors => "an error count above 0",
            Self::P95 => "milliseconds above 0",
            Self::Deviation => "a factor above 1",
        }
    }

    /// The tenant's measured value, when it has enough evidence to be judged at all.
    fn value(self, tenant: &TenantEvidence, min_errors: u64, min_requests: u64) -> Option<f64> {
        let enough_errors = tenant.errors >= min_errors.max(1);
        let enough_requests = tenant.requests >= min_requests;
        match self {
            Self::ErrorShare => enough_errors.then_some(tenant.error_share * 100.0),
            Self::ErrorRate => {
                (enough_errors && enough_requests).then_some(tenant.error_rate * 100.0)
            }
            Self::Errors => Some(tenant.errors as f64),
            Self::P95 => tenant.p95_ms.filter(|_| enough_requests),
            Self::Deviation => tenant.deviation.filter(|_| enough_requests),
        }
    }
}

/// One `[[tenants.alert]]` rule, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    pub name: String,
    pub condition: AlertCondition,
    pub threshold: f64,
    pub min_errors: u64,
    pub window: Duration,
    pub cooldown: Duration,
}

/// How many tenants of a ranking a rule looks at: more than can plausibly be on fire at once.
pub const ALERT_CANDIDATES: usize = 50;

/// A rule that fired or resolved for one tenant, with the sentence people will read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertNotice {
    pub rule: String,
    pub tenant_id: String,
    pub condition: AlertCondition,
    pub value: f64,
    pub threshold: f64,
    pub window_ms: i64,
    pub endpoint: Option<String>,
    pub message: String,
    /// How long it was firing (resolves only).
    pub firing_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AlertChange {
    Fired(AlertNotice),
    Resolved(AlertNotice),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum AlertState {
    Firing { since_ms: i64, value: f64 },
    CoolingDown { until_ms: i64 },
}

/// Every (rule, tenant) that is firing or cooling down.
#[derive(Debug, Default)]
pub struct AlertBook {
    states: HashMap<(String, String), AlertState>,
}

impl AlertBook {
    /// Applies one rule to a ranking made with `rule.condition.rank_by()` over `rule.window`.
    /// A tenant for which `held` is true (muted) neither fires nor resolves: its state waits.
    pub fn evaluate(
        &mut self,
        rule: &AlertRule,
        top: &TopTenants,
        error_label: &str,
        min_requests: u64,
        now_ms: i64,
        held: &dyn Fn(&str) -> bool,
    ) -> Vec<AlertChange> {
        let mut changes = Vec::new();
        let mut matched = Vec::new();
        for tenant in &top.tenants {
            if held(&tenant.tenant_id) {
                matched.push(tenant.tenant_id.as_str());
                continue;
            }
            let Some(value) = rule.condition.value(tenant, rule.min_errors, min_requests) else {
                continue;
            };
            if value < rule.threshold {
                continue;
            }
            matched.push(tenant.tenant_id.as_str());
            let key = (rule.name.clone(), tenant.tenant_id.clone());
            match self.states.get(&key) {
                Some(AlertState::Firing { .. }) => continue,
                Some(AlertState::CoolingDown { until_ms }) if *until_ms > now_ms => continue,
                _ => {}
            }
            self.states.insert(
                key,
                AlertState::Firing {
                    since_ms: now_ms,
                    value,
                },
            );
            let notice = notice(rule, tenant, value, top.window_ms, error_label, None);
            changes.push(AlertChange::Fired(notice));
        }
        let cleared: Vec<(String, String)> = self
            .states
            .iter()
            .filter(|((name, tenant), state)| {
                name == &rule.name
                    && matches!(state, AlertState::Firing { .. })
                    && !matched.contains(&tenant.as_str())
                    && !held(tenant)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in cleared {
            let Some(AlertState::Firing { since_ms, value }) = self.states.get(&key).copied()
            else {
                continue;
            };
            let until_ms = now_ms + rule.cooldown.as_millis() as i64;
            self.states
                .insert(key.clone(), AlertState::CoolingDown { until_ms });
            let current = top.tenants.iter().find(|t| t.tenant_id == key.1);
            changes.push(AlertChange::Resolved(resolved(
                rule,
                &key.1,
                current.map_or(value, |t| rule.condition.value(t, 0, 0).unwrap_or(0.0)),
                top.window_ms,
                now_ms - since_ms,
            )));
        }
        self.states.retain(|_, state| match state {
            AlertState::CoolingDown { until_ms } => *until_ms > now_ms,
            AlertState::Firing { .. } => true,
        });
        changes
    }

    /// Forgets rules that no longer exist (after a reload); their firing alerts resolve silently.
    pub fn retain_rules(&mut self, rules: &[AlertRule]) {
        self.states
            .retain(|(name, _), _| rules.iter().any(|rule| &rule.name == name));
    }

    pub fn firing(&self) -> usize {
        self.states
            .values()
            .filter(|s| matches!(s, AlertState::Firing { .. }))
            .count()
    }
}

fn notice(
    rule: &AlertRule,
    tenant: &TenantEvidence,
    value: f64,
    window_ms: i64,
    error_label: &str,
    firing_ms: Option<i64>,
) -> AlertNotice {
    let id = &tenant.tenant_id;
    let window = window_phrase(window_ms);
    let endpoint = tenant.top_endpoint.as_ref().map(|e| e.endpoint.clone());
    let at_endpoint = endpoint
        .as_ref()
        .map(|e| format!(" (endpoint {e})"))
        .unwrap_or_default();
    let what = match rule.condition {
        AlertCondition::ErrorShare => {
            format!("responsible for {value:.0}% of {error_label} in the {window}{at_endpoint}")
        }
        AlertCondition::ErrorRate => format!(
            "failing {value:.0}% of requests ({} of {}) in the {window}{at_endpoint}",
            tenant.errors, tenant.requests
        ),
        AlertCondition::Errors => {
            format!("had {value:.0} {error_label} in the {window}{at_endpoint}")
        }
        AlertCondition::P95 => format!(
            "p95 latency {value:.0} ms in the {window} (threshold {:.0} ms)",
            rule.threshold
        ),
        AlertCondition::Deviation => format!(
            "p95 latency {value:.1}× its own baseline ({:.0} ms vs {:.0} ms) in the {window}",
            tenant.p95_ms.unwrap_or(0.0),
            tenant.baseline_p95_ms.unwrap_or(0.0)
        ),
    };
    AlertNotice {
        rule: rule.name.clone(),
        tenant_id: id.clone(),
        condition: rule.condition,
        value,
        threshold: rule.threshold,
        window_ms,
        endpoint,
        message: format!("🚨 Sentinel: tenant {id} {what}"),
        firing_ms,
    }
}

fn resolved(
    rule: &AlertRule,
    tenant_id: &str,
    value: f64,
    window_ms: i64,
    firing_ms: i64,
) -> AlertNotice {
    let lasted = humantime::format_duration(Duration::from_secs((firing_ms / 1000).max(0) as u64));
    AlertNotice {
        rule: rule.name.clone(),
        tenant_id: tenant_id.to_string(),
        condition: rule.condition,
        value,
        threshold: rule.threshold,
        window_ms,
        endpoint: None,
        message: format!(
            "✅ Sentinel: tenant {tenant_id} back under the \"{}\" threshold after {lasted}",
            rule.name
        ),
        firing_ms: Some(firing_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenants::rank::EndpointEvidence;

    fn tenant(id: &str, requests: u64, errors: u64, total_errors: u64) -> TenantEvidence {
        TenantEvidence {
            tenant_id: id.into(),
            requests,
            errors,
            error_share: errors as f64 / total_errors.max(1) as f64,
            error_rate: errors as f64 / requests.max(1) as f64,
            error_rate_lower_bound: 0.0,
            lift: None,
            rest_requests: 0,
            rest_errors: 0,
            p50_ms: None,
            p95_ms: Some(100.0),
            p99_ms: None,
            baseline_p95_ms: Some(50.0),
            deviation: Some(2.0),
            top_endpoint: Some(EndpointEvidence {
                endpoint: "/v1/process".into(),
                errors,
            }),
            tracked_since_ms: Some(0),
            muted: None,
        }
    }

    fn top(tenants: Vec<TenantEvidence>) -> TopTenants {
        TopTenants {
            by: RankBy::Errors,
            window_ms: 600_000,
            now_ms: 0,
            total_requests: 0,
            total_errors: 0,
            other: tenant("__other__", 0, 0, 1),
            tenants,
            min_requests: 20,
        }
    }

    fn share_rule() -> AlertRule {
        AlertRule {
            name: "share".into(),
            condition: AlertCondition::ErrorShare,
            threshold: 50.0,
            min_errors: 10,
            window: Duration::from_secs(600),
            cooldown: Duration::from_secs(60),
        }
    }

    fn kinds(changes: &[AlertChange]) -> Vec<String> {
        changes
            .iter()
            .map(|c| match c {
                AlertChange::Fired(n) => format!("fired {}", n.tenant_id),
                AlertChange::Resolved(n) => format!("resolved {}", n.tenant_id),
            })
            .collect()
    }

    #[test]
    fn fires_once_resolves_and_respects_cooldown() {
        let rule = share_rule();
        let mut book = AlertBook::default();
        let hot = || {
            top(vec![
                tenant("acme", 1000, 64, 100),
                tenant("beta", 100, 30, 100),
            ])
        };
        let calm = || {
            top(vec![
                tenant("acme", 1000, 20, 100),
                tenant("beta", 100, 30, 100),
            ])
        };
        // (ranking, now_ms, expected changes)
        let steps: Vec<(TopTenants, i64, Vec<&str>)> = vec![
            (hot(), 0, vec!["fired acme"]),
            (hot(), 10_000, vec![]),
            (hot(), 20_000, vec![]),
            (calm(), 30_000, vec!["resolved acme"]),
            // Back over the threshold inside the cooldown: quiet.
            (hot(), 40_000, vec![]),
            (calm(), 50_000, vec![]),
            // After the cooldown it may fire again.
            (hot(), 100_000, vec!["fired acme"]),
        ];
        for (index, (ranking, now, want)) in steps.into_iter().enumerate() {
            let changes = book.evaluate(&rule, &ranking, "5xx", 20, now, &|_| false);
            assert_eq!(kinds(&changes), want, "step {index}");
        }
        assert_eq!(book.firing(), 1);
    }

    #[test]
    fn message_reads_like_the_original() {
        let mut book = AlertBook::default();
        let changes = book.evaluate(
            &share_rule(),
            &top(vec![tenant("acme", 1000, 64, 100)]),
            "5xx",
            20,
            0,
            &|_| false,
        );
        let AlertChange::Fired(notice) = &changes[0] else {
            panic!("expected a fire: {changes:?}");
        };
        assert_eq!(
            notice.message,
            "🚨 Sentinel: tenant acme responsible for 64% of 5xx in the last 10 minutes (endpoint /v1/process)"
        );
    }

    #[test]
    fn evidence_floors_keep_small_samples_quiet() {
        // (condition, threshold, tenant, fires)
        let cases = [
            (
                AlertCondition::ErrorShare,
                50.0,
                tenant("few", 10, 3, 4),
                false,
            ),
            (
                AlertCondition::ErrorShare,
                50.0,
                tenant("many", 100, 30, 40),
                true,
            ),
            (
                AlertCondition::ErrorRate,
                50.0,
                tenant("tiny", 12, 11, 11),
                false,
            ),
            (
                AlertCondition::ErrorRate,
                50.0,
                tenant("big", 40, 30, 30),
                true,
            ),
            (
                AlertCondition::Errors,
                25.0,
                tenant("count", 40, 30, 30),
                true,
            ),
            (AlertCondition::P95, 150.0, tenant("fast", 40, 0, 1), false),
            (AlertCondition::P95, 80.0, tenant("slow", 40, 0, 1), true),
            (
                AlertCondition::Deviation,
                3.0,
                tenant("steady", 40, 0, 1),
                false,
            ),
            (
                AlertCondition::Deviation,
                1.5,
                tenant("drifting", 40, 0, 1),
                true,
            ),
        ];
        for (condition, threshold, evidence, fires) in cases {
            let rule = AlertRule {
                condition,
                threshold,
                ..share_rule()
            };
            let id = evidence.tenant_id.clone();
            let changes =
                AlertBook::default()
                    .evaluate(&rule, &top(vec![evidence]), "5xx", 20, 0, &|_| false);
            assert_eq!(!changes.is_empty(), fires, "{condition:?} {threshold} {id}");
        }
    }

    #[test]
    fn removed_rules_are_forgotten() {
        let mut book = AlertBook::default();
        book.evaluate(
            &share_rule(),
            &top(vec![tenant("acme", 1000, 64, 100)]),
            "5xx",
            20,
            0,
            &|_| false,
        );
        assert_eq!(book.firing(), 1);
        book.retain_rules(&[]);
        assert_eq!(book.firing(), 0);
    }

    /// A muted (held) tenant ranks but neither fires nor resolves; once the hold ends it fires,
    /// and an alert already firing when the mute began waits instead of resolving.
    #[test]
    fn held_tenants_neither_fire_nor_resolve() {
        let rule = share_rule();
        let hot = || top(vec![tenant("acme", 1000, 64, 100)]);
        let calm = || top(vec![tenant("acme", 1000, 0, 0)]);
        let mut book = AlertBook::default();
        let held = |t: &str| t == "acme";
        let free = |_: &str| false;
        assert_eq!(
            kinds(&book.evaluate(&rule, &hot(), "5xx", 20, 0, &held)),
            Vec::<String>::new()
        );
        assert_eq!(book.firing(), 0);
        assert_eq!(
            kinds(&book.evaluate(&rule, &hot(), "5xx", 20, 10_000, &free)),
            vec!["fired acme"]
        );
        // Muted while firing: no resolve while held, even when it clears or drops out of the ranking.
        assert!(book
            .evaluate(&rule, &calm(), "5xx", 20, 20_000, &held)
            .is_empty());
        assert!(book
            .evaluate(&rule, &top(vec![]), "5xx", 20, 30_000, &held)
            .is_empty());
        assert_eq!(book.firing(), 1);
        assert_eq!(
            kinds(&book.evaluate(&rule, &calm(), "5xx", 20, 40_000, &free)),
            vec!["resolved acme"]
        );
    }
}
