//! The sharded service: shard counts, parallel ingest from several threads, reload.

use std::num::NonZeroUsize;
use std::time::Duration;

use super::*;
use crate::tenants::TenantEvent;

fn config(max_tenants: usize) -> TenantsConfig {
    TenantsConfig {
        max_tenants,
        ..TenantsConfig::default()
    }
}

#[test]
fn shard_count_follows_cores_and_keeps_small_caps_whole() {
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let cases = [
        (10, 1),
        (MIN_TENANTS_PER_SHARD * 2 - 1, 1),
        (MIN_TENANTS_PER_SHARD * 2, cores.min(2)),
        (1_000_000, cores),
    ];
    for (max_tenants, shards) in cases {
        let service = TenantService::default();
        service
            .configure(Some(config(max_tenants)), Vec::new())
            .unwrap();
        assert_eq!(service.shards(), shards, "max_tenants {max_tenants}");
        let stats = service.stats().unwrap();
        assert!(stats.max_tenants >= max_tenants, "{stats:?}");
        assert!(stats.max_bytes <= config(1).max_bytes);
    }
}

/// `[tenants] shards` decides when set; 0 and absurd counts are config errors.
#[test]
fn configured_shards_are_used_and_bounded() {
    let service = TenantService::default();
    let three = TenantsConfig {
        shards: Some(3),
        ..config(10)
    };
    service.configure(Some(three), Vec::new()).unwrap();
    assert_eq!(service.shards(), 3);
    for shards in [0, super::super::MAX_SHARDS + 1] {
        let bad = TenantsConfig {
            shards: Some(shards),
            ..config(10)
        };
        let err = service.configure(Some(bad), Vec::new()).unwrap_err();
        assert!(
            matches!(&err, TenantsError::InvalidConfig { field: "shards", message } if message.contains("shards must be 1-256")),
            "{err}"
        );
        assert_eq!(service.shards(), 3, "a refused config changes nothing");
    }
}

/// Four threads record disjoint tenants at once into four shards; nothing is lost.
#[test]
fn threads_record_in_parallel_and_lose_nothing() {
    let service = TenantService::with_shards(NonZeroUsize::new(4).unwrap());
    service
        .configure(Some(config(100_000)), Vec::new())
        .unwrap();
    let now = 1_000_000;
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let service = service.clone();
            scope.spawn(move || {
                for round in 0..200 {
                    let batch: Vec<TenantEvent> = (0..100)
                        .map(|i| TenantEvent {
                            tenant_id: format!("t{thread}-{}", (round + i) % 50),
                            endpoint: "/x".into(),
                            status_code: if i % 10 == 0 { 500 } else { 200 },
                            latency_ms: 10.0,
                            timestamp_ms: now,
                        })
                        .collect();
                    let recorded = service.record_batch(batch.iter().map(TenantEvent::as_ref), now);
                    assert_eq!(recorded, Some(100));
                }
            });
        }
    });
    let top = service
        .top(RankBy::Errors, Duration::ZERO, 1000, now)
        .unwrap();
    assert_eq!((top.total_requests, top.total_errors), (80_000, 8_000));
    assert_eq!(top.tenants.len(), 200);
    assert_eq!(top.tenants.iter().map(|t| t.errors).sum::<u64>(), 8_000);
    assert_eq!(service.stats().unwrap().tracked, 200);
    // A reload with the same config keeps the windows; a new one starts empty shards.
    assert_eq!(
        service.configure(Some(config(100_000)), Vec::new()),
        Ok(Reconfigured::Unchanged)
    );
    assert_eq!(
        service.configure(Some(config(50_000)), Vec::new()),
        Ok(Reconfigured::WindowsReset)
    );
    assert_eq!(service.stats().unwrap().tracked, 0);
}
