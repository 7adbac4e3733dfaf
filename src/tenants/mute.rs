//! Operator mutes of tenants (`sentinelctl tenants mute`): a muted tenant still ranks, marked
//! muted, but its alerts are held until the mute ends. Pure: time is passed in; the journal keeps them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::{EventKind, JournaledEvent, Timestamp};

/// One mute in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantMute {
    pub tenant_id: String,
    /// Epoch ms when the mute ends.
    pub until_ms: i64,
    pub reason: String,
    /// Who muted it (the control socket peer) and the uid's name, if known.
    pub uid: u32,
    pub user: Option<String>,
}

/// What a ranking shows of a mute on a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MuteMark {
    pub until_ms: i64,
    pub reason: String,
}

/// The mutes in force, by tenant; an expired one is dropped when next looked at.
#[derive(Debug, Clone, Default)]
pub struct Mutes {
    by_tenant: BTreeMap<String, TenantMute>,
}

impl Mutes {
    /// Sets (or, with an end at or before `now_ms`, lifts) the mute of `mute.tenant_id`.
    pub fn set(&mut self, mute: TenantMute, now_ms: i64) {
        match mute.until_ms > now_ms {
            true => {
                self.by_tenant.insert(mute.tenant_id.clone(), mute);
            }
            false => {
                self.by_tenant.remove(&mute.tenant_id);
            }
        }
    }

    pub fn is_muted(&self, tenant: &str, now_ms: i64) -> bool {
        self.by_tenant
            .get(tenant)
            .is_some_and(|m| m.until_ms > now_ms)
    }

    pub fn mark(&self, tenant: &str, now_ms: i64) -> Option<MuteMark> {
        self.by_tenant
            .get(tenant)
            .filter(|m| m.until_ms > now_ms)
            .map(|m| MuteMark {
                until_ms: m.until_ms,
                reason: m.reason.clone(),
            })
    }

    /// Every mute still in force at `now_ms`, by tenant.
    pub fn active(&mut self, now_ms: i64) -> Vec<TenantMute> {
        self.by_tenant.retain(|_, m| m.until_ms > now_ms);
        self.by_tenant.values().cloned().collect()
    }

    /// The mutes `events` (journaled `tenant_muted`, oldest first) leave in force at `now`: each
    /// tenant's last one, if it lasts beyond `now`. How a mute survives a restart.
    pub fn from_journal(events: &[JournaledEvent], now: Timestamp) -> Self {
        let mut mutes = Self::default();
        for journaled in events {
            if let EventKind::TenantMuted {
                tenant,
                until,
                reason,
                uid,
                user,
            } = &journaled.event.kind
            {
                let mute = TenantMute {
                    tenant_id: tenant.clone(),
                    until_ms: until.as_millis(),
                    reason: reason.clone(),
                    uid: *uid,
                    user: user.clone(),
                };
                mutes.set(mute, journaled.event.at.as_millis());
            }
        }
        mutes.by_tenant.retain(|_, m| m.until_ms > now.as_millis());
        mutes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    fn muted(id: i64, tenant: &str, until: i64) -> JournaledEvent {
        JournaledEvent {
            id,
            event: Event {
                at: Timestamp(id * 100),
                kind: EventKind::TenantMuted {
                    tenant: tenant.into(),
                    until: Timestamp(until),
                    reason: "load test".into(),
                    uid: 1000,
                    user: Some("alice".into()),
                },
            },
        }
    }

    #[test]
    fn the_last_mute_of_each_tenant_counts_while_it_lasts() {
        let now = Timestamp(1_000);
        type Case = (&'static str, Vec<JournaledEvent>, Vec<(&'static str, i64)>);
        let cases: Vec<Case> = vec![
            ("none journaled", vec![], vec![]),
            (
                "in force",
                vec![muted(1, "acme", 5_000)],
                vec![("acme", 5_000)],
            ),
            ("expired", vec![muted(1, "acme", 900)], vec![]),
            (
                "lifted (an end at the event's own time)",
                vec![muted(1, "acme", 5_000), muted(2, "acme", 200)],
                vec![],
            ),
            (
                "muted again after a lift",
                vec![
                    muted(1, "acme", 5_000),
                    muted(2, "acme", 200),
                    muted(3, "acme", 7_000),
                ],
                vec![("acme", 7_000)],
            ),
            (
                "per tenant",
                vec![muted(1, "acme", 2_000), muted(2, "beta", 800)],
                vec![("acme", 2_000)],
            ),
        ];
        for (name, events, expected) in cases {
            let found: Vec<(String, i64)> = Mutes::from_journal(&events, now)
                .active(now.as_millis())
                .into_iter()
                .map(|m| (m.tenant_id, m.until_ms))
                .collect();
            let expected: Vec<(String, i64)> = expected
                .into_iter()
                .map(|(t, u)| (t.to_string(), u))
                .collect();
            assert_eq!(found, expected, "{name}");
        }
    }

    #[test]
    fn a_mute_ends_by_itself() {
        let mut mutes = Mutes::default();
        let mute = TenantMute {
            tenant_id: "acme".into(),
            until_ms: 2_000,
            reason: "demo".into(),
            uid: 0,
            user: Some("root".into()),
        };
        mutes.set(mute.clone(), 1_000);
        assert!(mutes.is_muted("acme", 1_999));
        assert_eq!(
            mutes.mark("acme", 1_500),
            Some(MuteMark {
                until_ms: 2_000,
                reason: "demo".into()
            })
        );
        assert!(!mutes.is_muted("acme", 2_000));
        assert_eq!(mutes.mark("acme", 2_000), None);
        assert!(mutes.active(2_000).is_empty());
        mutes.set(mute.clone(), 1_000);
        // Unmute: an end at the moment it is asked.
        mutes.set(
            TenantMute {
                until_ms: 1_200,
                ..mute
            },
            1_200,
        );
        assert!(!mutes.is_muted("acme", 1_300));
        assert!(mutes.active(1_300).is_empty());
    }
}
