//! CPU and memory limits on a systemd unit through D-Bus runtime properties (`SetUnitProperties`),
//! so a restart of the unit keeps them; rollback sets back the values read before. No cgroupfs.

use serde::{Deserialize, Serialize};

use super::spec::Fault;
use super::ChaosError;
use crate::systemd::{Systemd, SystemdError, UnitProperty, UnitSetting, UnitValue};

/// Properties to set on a unit, and the values they had (read over D-Bus when planned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitChange {
    pub unit: String,
    pub apply: Vec<UnitSetting>,
    pub restore: Vec<UnitSetting>,
}

impl UnitChange {
    pub fn describe(&self) -> String {
        let settings: Vec<String> = self.apply.iter().map(|s| s.to_string()).collect();
        format!("systemd unit {} {}", self.unit, settings.join(" "))
    }
}

/// The runtime properties a resource fault sets (None for other faults). CPU: `cpus` CPUs'
/// worth per second and the fault's period; memory: `high` and `max` in bytes.
pub fn settings_for(fault: &Fault) -> Option<Vec<UnitSetting>> {
    match fault {
        Fault::CpuQuota(cpu) => Some(vec![
            UnitSetting::new(
                UnitProperty::CpuQuotaPeriodUSec,
                UnitValue::Set(cpu.period_us()),
            ),
            UnitSetting::new(
                UnitProperty::CpuQuotaPerSecUSec,
                UnitValue::Set((cpu.cpus * 1_000_000.0).round() as u64),
            ),
        ]),
        Fault::MemoryLimit(memory) => Some(
            [
                (UnitProperty::MemoryHigh, memory.high),
                (UnitProperty::MemoryMax, memory.max),
            ]
            .into_iter()
            .filter_map(|(property, bytes)| {
                bytes.map(|bytes| UnitSetting::new(property, UnitValue::Set(bytes.0)))
            })
            .collect(),
        ),
        _ => None,
    }
}

fn systemd_error(err: SystemdError) -> ChaosError {
    match err {
        SystemdError::NoSuchUnit { unit } => {
            ChaosError::TargetGone(format!("systemd has no unit {unit}"))
        }
        other => ChaosError::Systemd(Box::new(other)),
    }
}

/// Read the values `fault` will replace: the pre-image the journal keeps.
pub async fn plan(systemd: &Systemd, unit: &str, fault: &Fault) -> Result<UnitChange, ChaosError> {
    let apply = settings_for(fault)
        .ok_or_else(|| ChaosError::Target(format!("{} cannot target a unit", fault.name())))?;
    for setting in &apply {
        setting
            .check()
            .map_err(|err| ChaosError::Systemd(Box::new(err.into())))?;
    }
    let properties: Vec<UnitProperty> = apply.iter().map(|s| s.property).collect();
    let restore = systemd
        .unit_settings(unit, &properties)
        .await
        .map_err(|err| match err {
            SystemdError::NoSuchUnit { unit } => {
                ChaosError::Target(format!("systemd has no loaded unit {unit}"))
            }
            other => ChaosError::Systemd(Box::new(other)),
        })?;
    Ok(UnitChange {
        unit: unit.to_string(),
        apply,
        restore,
    })
}

/// Set `settings` and read them back: each must read as written.
async fn set_and_read_back(
    systemd: &Systemd,
    unit: &str,
    settings: &[UnitSetting],
) -> Result<String, ChaosError> {
    systemd
        .set_unit_settings(unit, settings)
        .await
        .map_err(systemd_error)?;
    let properties: Vec<UnitProperty> = settings.iter().map(|s| s.property).collect();
    let seen = systemd
        .unit_settings(unit, &properties)
        .await
        .map_err(systemd_error)?;
    for (wanted, got) in settings.iter().zip(&seen) {
        if wanted != got {
            return Err(ChaosError::Kernel {
                what: format!("systemd unit {unit}"),
                detail: format!("{} reads back as {got} after setting it", wanted),
            });
        }
    }
    let seen: Vec<String> = seen.iter().map(|s| s.to_string()).collect();
    Ok(format!("{unit}: {} (runtime)", seen.join(" ")))
}

pub async fn apply(systemd: &Systemd, change: &UnitChange) -> Result<String, ChaosError> {
    set_and_read_back(systemd, &change.unit, &change.apply).await
}

pub async fn revert(systemd: &Systemd, change: &UnitChange) -> Result<String, ChaosError> {
    set_and_read_back(systemd, &change.unit, &change.restore)
        .await
        .map(|line| format!("restored {line}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(json: &str) -> Fault {
        serde_json::from_str(json).unwrap()
    }

    /// Each resource fault becomes the runtime properties systemd reads, in its own units.
    #[test]
    fn faults_become_unit_properties() {
        let cases: &[(&str, &[&str])] = &[
            (
                r#"{"kind":"cpu_quota","cpus":0.5}"#,
                &["CPUQuotaPeriodUSec=100000", "CPUQuotaPerSecUSec=500000"],
            ),
            (
                r#"{"kind":"cpu_quota","cpus":2.25,"period":"20ms"}"#,
                &["CPUQuotaPeriodUSec=20000", "CPUQuotaPerSecUSec=2250000"],
            ),
            (
                r#"{"kind":"memory_limit","max":"64MiB"}"#,
                &["MemoryMax=67108864"],
            ),
            (
                r#"{"kind":"memory_limit","max":"64MiB","high":"48MB"}"#,
                &["MemoryHigh=48000000", "MemoryMax=67108864"],
            ),
            (
                r#"{"kind":"memory_limit","high":"1GiB"}"#,
                &["MemoryHigh=1073741824"],
            ),
        ];
        for (json, want) in cases {
            let got: Vec<String> = settings_for(&fault(json))
                .unwrap()
                .iter()
                .map(|s| s.to_string())
                .collect();
            assert_eq!(got, *want, "{json}");
        }
        assert_eq!(settings_for(&fault(r#"{"kind":"pause"}"#)), None);
    }

    /// A unit change journaled as JSON reads back the same (rollback after kill -9 needs it).
    #[test]
    fn a_unit_action_round_trips_through_the_journal() {
        let action = super::super::Action::Unit(UnitChange {
            unit: "worker.service".into(),
            apply: vec![UnitSetting::new(
                UnitProperty::MemoryMax,
                UnitValue::Set(64 << 20),
            )],
            restore: vec![UnitSetting::new(
                UnitProperty::MemoryMax,
                UnitValue::Infinity,
            )],
        });
        let json = serde_json::to_string(&action).unwrap();
        assert!(
            json.starts_with(r#"{"kind":"unit","unit":"worker.service""#),
            "{json}"
        );
        assert_eq!(
            serde_json::from_str::<super::super::Action>(&json).unwrap(),
            action
        );
        assert_eq!(
            action.describe(),
            "systemd unit worker.service MemoryMax=67108864"
        );
        assert!(action.is_reversible());
    }
}
