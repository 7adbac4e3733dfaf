//! `systemd_unit` probe: the unit's LoadState/ActiveState/SubState read over D-Bus, judged
//! against the states that count as Up (default `active` and `reloading`).

use std::time::Instant;

use super::{CheckResult, Failure, FailureReason};
use crate::systemd::{ActiveState, Systemd, SystemdError, UnitState};

/// ActiveStates that count as Up when the probe names none: a unit reloading its
/// configuration still serves.
pub const DEFAULT_UP_STATES: [ActiveState; 2] = [ActiveState::Active, ActiveState::Reloading];

#[derive(Debug, Clone)]
pub struct SystemdUnitProbe {
    pub unit: String,
    /// ActiveStates that count as Up.
    pub up_states: Vec<ActiveState>,
    pub systemd: Systemd,
}

impl SystemdUnitProbe {
    pub fn new(unit: String, up_states: Option<Vec<ActiveState>>) -> Self {
        Self {
            unit,
            up_states: up_states.unwrap_or_else(|| DEFAULT_UP_STATES.to_vec()),
            systemd: Systemd::new(),
        }
    }

    pub async fn check(&self) -> CheckResult {
        let started = Instant::now();
        let outcome = match self.systemd.unit_state(&self.unit).await {
            Ok(state) => judge(&self.unit, &state, &self.up_states),
            Err(err) => Err(failure_of(&err)),
        };
        CheckResult::timed(started, outcome)
    }
}

/// Up or the typed reason, from the unit's states. `activating` (starting, or `auto-restart`
/// waiting to start again) is a failed check of its own reason: `fail_after` absorbs a normal
/// start, and a unit stuck starting or restarting in a loop goes Down.
pub fn judge(unit: &str, state: &UnitState, up_states: &[ActiveState]) -> Result<(), Failure> {
    if state.load == "not-found" {
        return Err(Failure::new(
            FailureReason::UnitNotFound,
            format!("systemd has no unit {unit}"),
        ));
    }
    let Some(active) = ActiveState::parse(&state.active) else {
        return Err(Failure::new(
            FailureReason::Protocol,
            format!(
                "{unit}: systemd reported an unknown ActiveState {:?}",
                state.active
            ),
        ));
    };
    if up_states.contains(&active) {
        return Ok(());
    }
    let detail = format!("{unit} is {active} ({})", state.sub);
    if state.load != "loaded" {
        return Err(Failure::new(
            FailureReason::UnitNotLoaded,
            format!("{detail}, load state {}", state.load),
        ));
    }
    let reason = match active {
        ActiveState::Failed => FailureReason::UnitFailed,
        ActiveState::Activating => FailureReason::UnitActivating,
        ActiveState::Inactive | ActiveState::Deactivating => FailureReason::UnitInactive,
        // Up states a probe left out of its `active_states` on purpose.
        ActiveState::Active
        | ActiveState::Reloading
        | ActiveState::Maintenance
        | ActiveState::Refreshing => FailureReason::Assertion,
    };
    Err(Failure::new(reason, detail))
}

fn failure_of(err: &SystemdError) -> Failure {
    let reason = match err {
        SystemdError::NoSuchUnit { .. } => FailureReason::UnitNotFound,
        _ => FailureReason::SystemdUnavailable,
    };
    Failure::new(reason, crate::logging::error_chain(err))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(load: &str, active: &str, sub: &str) -> UnitState {
        UnitState {
            load: load.into(),
            active: active.into(),
            sub: sub.into(),
        }
    }

    #[test]
    fn unit_states_map_to_up_or_a_typed_reason() {
        use ActiveState::*;
        let default = DEFAULT_UP_STATES.to_vec();
        let oneshot = vec![Active, Inactive];
        let cases: Vec<(UnitState, &Vec<ActiveState>, Option<FailureReason>)> = vec![
            (state("loaded", "active", "running"), &default, None),
            (state("loaded", "reloading", "reload"), &default, None),
            (
                state("loaded", "inactive", "dead"),
                &default,
                Some(FailureReason::UnitInactive),
            ),
            (
                state("loaded", "deactivating", "stop-sigterm"),
                &default,
                Some(FailureReason::UnitInactive),
            ),
            (
                state("loaded", "failed", "failed"),
                &default,
                Some(FailureReason::UnitFailed),
            ),
            (
                state("loaded", "activating", "start"),
                &default,
                Some(FailureReason::UnitActivating),
            ),
            (
                state("loaded", "activating", "auto-restart"),
                &default,
                Some(FailureReason::UnitActivating),
            ),
            (
                state("not-found", "inactive", "dead"),
                &oneshot,
                Some(FailureReason::UnitNotFound),
            ),
            (
                state("masked", "inactive", "dead"),
                &default,
                Some(FailureReason::UnitNotLoaded),
            ),
            (
                state("bad-setting", "inactive", "dead"),
                &default,
                Some(FailureReason::UnitNotLoaded),
            ),
            (
                state("loaded", "busy", "x"),
                &default,
                Some(FailureReason::Protocol),
            ),
            // a oneshot that ran and exited is Up when its probe says so
            (state("loaded", "inactive", "dead"), &oneshot, None),
            (
                state("loaded", "failed", "failed"),
                &oneshot,
                Some(FailureReason::UnitFailed),
            ),
            (
                state("loaded", "reloading", "reload"),
                &oneshot,
                Some(FailureReason::Assertion),
            ),
        ];
        for (unit_state, up, want) in cases {
            let got = judge("demo.service", &unit_state, up)
                .err()
                .map(|f| f.reason);
            assert_eq!(got, want, "{unit_state:?} with {up:?}");
        }
        let failure = judge(
            "demo.service",
            &state("loaded", "failed", "failed"),
            &default,
        )
        .unwrap_err();
        assert_eq!(failure.detail, "demo.service is failed (failed)");
    }

    #[test]
    fn systemd_errors_map_to_typed_reasons() {
        let missing = SystemdError::NoSuchUnit {
            unit: "x.service".into(),
        };
        assert_eq!(failure_of(&missing).reason, FailureReason::UnitNotFound);
        let timeout = SystemdError::JobTimeout {
            unit: "x.service".into(),
            timeout: std::time::Duration::from_secs(1),
        };
        assert_eq!(
            failure_of(&timeout).reason,
            FailureReason::SystemdUnavailable
        );
    }
}
