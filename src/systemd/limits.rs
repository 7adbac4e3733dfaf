//! A unit's resource limits as systemd keeps them: read from the unit's type interface and set
//! with `SetUnitProperties(runtime)`, so systemd re-applies them when the unit restarts.

use serde::{Deserialize, Serialize};
use zbus::zvariant::{OwnedValue, Value};

use super::{call_error, load_unit, validate_unit_name, Systemd, SystemdError, UnitNameError};

/// A unit or value systemd would refuse for resource properties (checked before any call).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PropertyError {
    /// The unit name is not one systemd would accept.
    #[error("unit name \"{unit}\" {source}")]
    UnitName {
        unit: String,
        #[source]
        source: UnitNameError,
    },
    /// Only services, slices, scopes, sockets, mounts and swaps have a cgroup to limit.
    #[error("{unit} has no cgroup: resource limits apply to .service, .slice, .scope, .socket, .mount and .swap units")]
    NoResourceControl { unit: String },
    /// A value systemd refuses ("value out of range").
    #[error("systemd refuses {setting}: a limit must be above 0")]
    OutOfRange { setting: UnitSetting },
}

/// The unit types that own a cgroup, with the interface that carries their resource properties.
pub const RESOURCE_INTERFACES: [(&str, &str); 6] = [
    ("service", "org.freedesktop.systemd1.Service"),
    ("slice", "org.freedesktop.systemd1.Slice"),
    ("scope", "org.freedesktop.systemd1.Scope"),
    ("socket", "org.freedesktop.systemd1.Socket"),
    ("mount", "org.freedesktop.systemd1.Mount"),
    ("swap", "org.freedesktop.systemd1.Swap"),
];

/// systemd's `USEC_INFINITY` / `CGROUP_LIMIT_MAX`: "no limit" (or "the default" for a period).
const INFINITY: u64 = u64::MAX;

/// The resource properties chaos changes (each a D-Bus `t`, in systemd's own units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UnitProperty {
    /// CPU time per second of wall time, in µs (`CPUQuota=50%` is 500000).
    #[serde(rename = "CPUQuotaPerSecUSec")]
    CpuQuotaPerSecUSec,
    /// The period the quota is enforced over, in µs; infinity means systemd's default (100 ms).
    #[serde(rename = "CPUQuotaPeriodUSec")]
    CpuQuotaPeriodUSec,
    /// Hard memory limit in bytes (cgroup v2 `memory.max`).
    MemoryMax,
    /// Memory throttling limit in bytes (cgroup v2 `memory.high`).
    MemoryHigh,
}

impl UnitProperty {
    pub const ALL: [UnitProperty; 4] = [
        Self::CpuQuotaPerSecUSec,
        Self::CpuQuotaPeriodUSec,
        Self::MemoryMax,
        Self::MemoryHigh,
    ];

    /// The D-Bus property name.
    pub fn name(self) -> &'static str {
        match self {
            Self::CpuQuotaPerSecUSec => "CPUQuotaPerSecUSec",
            Self::CpuQuotaPeriodUSec => "CPUQuotaPeriodUSec",
            Self::MemoryMax => "MemoryMax",
            Self::MemoryHigh => "MemoryHigh",
        }
    }
}

/// A property's value: a number, or systemd's infinity (no limit; for a period, the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitValue {
    Set(u64),
    Infinity,
}

impl UnitValue {
    /// What goes on the wire: infinity is `u64::MAX`.
    pub fn to_wire(self) -> u64 {
        match self {
            Self::Set(value) => value,
            Self::Infinity => INFINITY,
        }
    }

    pub fn from_wire(value: u64) -> Self {
        match value {
            INFINITY => Self::Infinity,
            value => Self::Set(value),
        }
    }
}

impl std::fmt::Display for UnitValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Set(value) => write!(f, "{value}"),
            Self::Infinity => f.write_str("infinity"),
        }
    }
}

/// One property and its value, as `SetUnitProperties` takes it and as it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitSetting {
    pub property: UnitProperty,
    pub value: UnitValue,
}

impl UnitSetting {
    pub fn new(property: UnitProperty, value: UnitValue) -> Self {
        Self { property, value }
    }

    /// The `(sv)` element of `SetUnitProperties`' property array.
    pub fn encode(&self) -> (&'static str, Value<'static>) {
        (self.property.name(), Value::U64(self.value.to_wire()))
    }

    /// What systemd would refuse with "value out of range", refused before the call.
    pub fn check(&self) -> Result<(), PropertyError> {
        let refused = matches!(
            (self.property, self.value),
            (
                UnitProperty::CpuQuotaPerSecUSec
                    | UnitProperty::MemoryMax
                    | UnitProperty::MemoryHigh,
                UnitValue::Set(0)
            )
        );
        match refused {
            true => Err(PropertyError::OutOfRange { setting: *self }),
            false => Ok(()),
        }
    }
}

impl std::fmt::Display for UnitSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.property.name(), self.value)
    }
}

/// The interface that carries `unit`'s resource properties, or why it has none.
pub fn resource_interface(unit: &str) -> Result<&'static str, PropertyError> {
    validate_unit_name(unit).map_err(|source| PropertyError::UnitName {
        unit: unit.to_string(),
        source,
    })?;
    let suffix = unit.rsplit_once('.').map_or("", |(_, suffix)| suffix);
    RESOURCE_INTERFACES
        .iter()
        .find(|(kind, _)| *kind == suffix)
        .map(|(_, interface)| *interface)
        .ok_or_else(|| PropertyError::NoResourceControl {
            unit: unit.to_string(),
        })
}

#[zbus::proxy(
    interface = "org.freedesktop.DBus.Properties",
    default_service = "org.freedesktop.systemd1",
    gen_blocking = false
)]
trait UnitProperties {
    fn get(&self, interface: &str, name: &str) -> zbus::Result<OwnedValue>;
}

impl Systemd {
    /// The current values of `properties` on `unit` (a loaded unit with a cgroup).
    pub async fn unit_settings(
        &self,
        unit: &str,
        properties: &[UnitProperty],
    ) -> Result<Vec<UnitSetting>, SystemdError> {
        let result = self.read_settings(unit, properties).await;
        if matches!(result, Err(SystemdError::Call { .. })) {
            self.reset().await;
        }
        result
    }

    async fn read_settings(
        &self,
        unit: &str,
        properties: &[UnitProperty],
    ) -> Result<Vec<UnitSetting>, SystemdError> {
        let interface = resource_interface(unit)?;
        let (connection, _) = self.connection().await?;
        let (_, proxy) = load_unit(&connection, unit).await?;
        let call = |name| call_error(name, unit);
        let load = proxy.load_state().await.map_err(call("LoadState"))?;
        if load != "loaded" {
            return Err(SystemdError::NoSuchUnit {
                unit: unit.to_string(),
            });
        }
        let reader = UnitPropertiesProxy::builder(&connection)
            .path(proxy.inner().path().to_owned())
            .map_err(call("Properties"))?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .map_err(call("Properties"))?;
        let mut settings = Vec::with_capacity(properties.len());
        for property in properties {
            let value = reader
                .get(interface, property.name())
                .await
                .map_err(call(property.name()))?;
            let value = u64::try_from(value).map_err(|err| SystemdError::Call {
                call: property.name(),
                unit: unit.to_string(),
                source: zbus::Error::Variant(err),
            })?;
            settings.push(UnitSetting::new(*property, UnitValue::from_wire(value)));
        }
        Ok(settings)
    }

    /// `SetUnitProperties(unit, runtime = true, settings)`: systemd applies them to the unit's
    /// cgroup now and keeps them (in /run, until reboot) for every later start of the unit.
    pub async fn set_unit_settings(
        &self,
        unit: &str,
        settings: &[UnitSetting],
    ) -> Result<(), SystemdError> {
        resource_interface(unit)?;
        for setting in settings {
            setting.check()?;
        }
        let result = async {
            let (connection, _) = self.connection().await?;
            let manager = super::ManagerProxy::new(&connection)
                .await
                .map_err(call_error("Manager", unit))?;
            let encoded: Vec<(&str, Value<'_>)> = settings.iter().map(|s| s.encode()).collect();
            manager
                .set_unit_properties(unit, true, &encoded)
                .await
                .map_err(call_error("SetUnitProperties", unit))
        }
        .await;
        if matches!(result, Err(SystemdError::Call { .. })) {
            self.reset().await;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::zvariant::{serialized::Context, to_bytes, DynamicType, LE};

    /// Each setting goes out as the name systemd reads and a `t`, infinity as u64::MAX.
    #[test]
    fn settings_encode_as_systemd_reads_them() {
        use UnitProperty::*;
        let cases: &[(UnitProperty, UnitValue, &str, u64)] = &[
            (
                CpuQuotaPerSecUSec,
                UnitValue::Set(500_000),
                "CPUQuotaPerSecUSec",
                500_000,
            ),
            (
                CpuQuotaPerSecUSec,
                UnitValue::Infinity,
                "CPUQuotaPerSecUSec",
                u64::MAX,
            ),
            (
                CpuQuotaPeriodUSec,
                UnitValue::Set(100_000),
                "CPUQuotaPeriodUSec",
                100_000,
            ),
            (
                CpuQuotaPeriodUSec,
                UnitValue::Infinity,
                "CPUQuotaPeriodUSec",
                u64::MAX,
            ),
            (MemoryMax, UnitValue::Set(64 << 20), "MemoryMax", 67_108_864),
            (MemoryMax, UnitValue::Infinity, "MemoryMax", u64::MAX),
            (MemoryHigh, UnitValue::Set(1), "MemoryHigh", 1),
            (MemoryHigh, UnitValue::Infinity, "MemoryHigh", u64::MAX),
        ];
        for (property, value, name, wire) in cases {
            let setting = UnitSetting::new(*property, *value);
            let (got_name, got_value) = setting.encode();
            assert_eq!(got_name, *name, "{setting}");
            assert_eq!(got_value.value_signature().to_string(), "t", "{setting}");
            assert_eq!(got_value, Value::U64(*wire), "{setting}");
            // what is read back decodes to the same value
            assert_eq!(UnitValue::from_wire(*wire), *value, "{setting}");
        }
        // the property array is an a(sv), as SetUnitProperties' signature "sba(sv)" wants
        let settings = [
            UnitSetting::new(MemoryMax, UnitValue::Set(64 << 20)),
            UnitSetting::new(CpuQuotaPerSecUSec, UnitValue::Infinity),
        ];
        let encoded: Vec<(&str, Value<'_>)> = settings.iter().map(|s| s.encode()).collect();
        assert_eq!(encoded.signature().to_string(), "a(sv)");
        let bytes = to_bytes(Context::new_dbus(LE, 0), &("x.service", true, &encoded)).unwrap();
        let (_, _, back): (String, bool, Vec<(String, OwnedValue)>) =
            bytes.deserialize().unwrap().0;
        let back: Vec<(String, u64)> = back
            .into_iter()
            .map(|(name, value)| (name, u64::try_from(value).unwrap()))
            .collect();
        assert_eq!(
            back,
            [
                ("MemoryMax".to_string(), 64u64 << 20),
                ("CPUQuotaPerSecUSec".to_string(), u64::MAX)
            ]
        );
    }

    #[test]
    fn values_systemd_refuses_are_refused_first() {
        use UnitProperty::*;
        let cases: &[(UnitProperty, UnitValue, bool)] = &[
            (CpuQuotaPerSecUSec, UnitValue::Set(0), false),
            (CpuQuotaPerSecUSec, UnitValue::Set(1), true),
            (MemoryMax, UnitValue::Set(0), false),
            (MemoryHigh, UnitValue::Set(0), false),
            (MemoryMax, UnitValue::Infinity, true),
            (CpuQuotaPeriodUSec, UnitValue::Infinity, true),
        ];
        for (property, value, ok) in cases {
            let setting = UnitSetting::new(*property, *value);
            assert_eq!(setting.check().is_ok(), *ok, "{setting}");
        }
        let err = UnitSetting::new(MemoryMax, UnitValue::Set(0))
            .check()
            .unwrap_err()
            .to_string();
        assert!(err.contains("MemoryMax=0"), "{err}");
    }

    #[test]
    fn only_unit_types_with_a_cgroup_have_resource_properties() {
        let cases: &[(&str, Option<&str>)] = &[
            ("nginx.service", Some("org.freedesktop.systemd1.Service")),
            (
                "getty@tty1.service",
                Some("org.freedesktop.systemd1.Service"),
            ),
            ("user.slice", Some("org.freedesktop.systemd1.Slice")),
            ("session-1.scope", Some("org.freedesktop.systemd1.Scope")),
            ("ssh.socket", Some("org.freedesktop.systemd1.Socket")),
            ("-.mount", Some("org.freedesktop.systemd1.Mount")),
            ("dev-sda2.swap", Some("org.freedesktop.systemd1.Swap")),
            ("backup.timer", None),
            ("multi-user.target", None),
            ("nginx", None),
        ];
        for (unit, want) in cases {
            assert_eq!(resource_interface(unit).ok(), *want, "{unit}");
        }
        let err = resource_interface("backup.timer").unwrap_err().to_string();
        assert!(err.contains("has no cgroup"), "{err}");
        let err = resource_interface("../x.service").unwrap_err();
        assert!(matches!(err, PropertyError::UnitName { .. }), "{err}");
    }

    /// The journal keeps settings by systemd's property names, and reads them back.
    #[test]
    fn settings_round_trip_through_json() {
        let settings = vec![
            UnitSetting::new(UnitProperty::MemoryMax, UnitValue::Set(1 << 20)),
            UnitSetting::new(UnitProperty::CpuQuotaPeriodUSec, UnitValue::Infinity),
        ];
        let json = serde_json::to_string(&settings).unwrap();
        assert_eq!(
            json,
            r#"[{"property":"MemoryMax","value":{"set":1048576}},{"property":"CPUQuotaPeriodUSec","value":"infinity"}]"#
        );
        assert_eq!(
            serde_json::from_str::<Vec<UnitSetting>>(&json).unwrap(),
            settings
        );
    }
}
