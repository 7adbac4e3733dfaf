//! The background half of the archive: uploads pending bundles with backoff (also those left
//! by a previous run) and keeps the spool within its quota.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{plan_quota, ArchiveRecord, Archiver, Upload, UploadState};
use crate::backoff::Backoff;
use crate::event::{ArchiveStage, EventKind, Timestamp};

impl Archiver {
    /// Upload pending bundles (now and after every restart) with backoff, and keep the spool
    /// within its quota, until `cancel`.
    pub async fn run_uploads(self, cancel: CancellationToken) {
        let mut over_quota_alerted = false;
        loop {
            if !self.upload_due(&cancel).await {
                return;
            }
            self.enforce_quota(&mut over_quota_alerted).await;
            let next = self.ledger(|ledger| ledger.next_due()).await.ok().flatten();
            let idle = Duration::from_secs(60);
            let wait = next.map_or(idle, |at| at.duration_from_now().min(idle));
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Upload the bundles that are due, oldest first. Once one lands, the sink is back: the
    /// rest go now rather than each waiting out its backoff, so a backlog is shipped (and then
    /// pruned) oldest first, not in retry order. False when cancelled.
    async fn upload_due(&self, cancel: &CancellationToken) -> bool {
        let mut horizon = Timestamp::now();
        loop {
            let due = match self.ledger(move |ledger| ledger.due(horizon)).await {
                Ok(due) => due,
                Err(err) => {
                    tracing::error!("cannot read pending uploads: {err}");
                    return true;
                }
            };
            let mut delivered = false;
            for record in due {
                if cancel.is_cancelled() {
                    return false;
                }
                delivered |= self.upload_one(record).await;
            }
            if !delivered {
                return true;
            }
            horizon = Timestamp(i64::MAX);
        }
    }

    /// Whether the bundle was delivered (and recorded as such).
    async fn upload_one(&self, record: ArchiveRecord) -> bool {
        let settings = self.settings();
        let upload = Upload::from(&record);
        let result = settings.sink.upload(&upload).await;
        let name = record.name.clone();
        match result {
            Ok(location) => {
                tracing::info!(bundle = %name, "evidence uploaded to {location}");
                let stored = location.clone();
                let (n, at) = (name.clone(), Timestamp::now());
                // Only a recorded upload counts as delivered: one left pending is tried again.
                let recorded = match self.ledger(move |l| l.mark_uploaded(&n, &stored, at)).await {
                    Ok(()) => true,
                    Err(err) => {
                        tracing::error!("cannot record upload of {name}: {err}");
                        false
                    }
                };
                self.inner.bus.publish(EventKind::ArchiveUploaded {
                    probe: record.probe,
                    bundle: name,
                    location,
                    bytes: record.bytes,
                });
                recorded
            }
            Err(err) => {
                let delay = retry_delay(record.attempts + 1, settings.max_retry_delay);
                let next = Timestamp(Timestamp::now().as_millis() + delay.as_millis() as i64);
                tracing::warn!(bundle = %name, attempt = record.attempts + 1, "{err}; retrying in {}", humantime::format_duration(delay));
                let (n, text) = (name.clone(), err.to_string());
                if let Err(err) = self.ledger(move |l| l.mark_failed(&n, &text, next)).await {
                    tracing::error!("cannot record failed upload of {name}: {err}");
                }
                self.inner.bus.publish(EventKind::ArchiveFailed {
                    probe: record.probe,
                    bundle: name,
                    stage: ArchiveStage::Upload,
                    error: err.to_string(),
                    will_retry: true,
                });
                false
            }
        }
    }

    async fn enforce_quota(&self, alerted: &mut bool) {
        let quota = self.settings().quota;
        let Ok(records) = self.ledger(|ledger| ledger.list(usize::MAX)).await else {
            return;
        };
        let plan = plan_quota(&records, quota);
        for name in &plan.prune {
            let Some(record) = records.iter().find(|r| &r.name == name) else {
                continue;
            };
            let _ = std::fs::remove_file(&record.path);
            let _ = std::fs::remove_file(&record.manifest_path);
            let n = name.clone();
            match self.ledger(move |l| l.mark_pruned(&n)).await {
                Ok(()) => {
                    tracing::info!(bundle = %name, "pruned uploaded bundle from the spool (quota)")
                }
                Err(err) => tracing::warn!(bundle = %name, "cannot record pruning: {err}"),
            }
        }
        if plan.still_over == 0 {
            *alerted = false;
            return;
        }
        if !*alerted {
            *alerted = true;
            let oldest = records
                .iter()
                .filter(|r| r.state == UploadState::Pending)
                .min_by_key(|r| r.created_at);
            self.inner.bus.publish(EventKind::ArchiveFailed {
                probe: oldest.map(|r| r.probe.clone()).unwrap_or_default(),
                bundle: oldest.map(|r| r.name.clone()).unwrap_or_default(),
                stage: ArchiveStage::Quota,
                error: format!(
                    "spool over its quota by {} bytes and only un-uploaded bundles are left; they are kept until uploaded",
                    plan.still_over
                ),
                will_retry: true,
            });
        }
    }
}

/// 1 s, 2 s, 4 s, ... up to `max` (the archive and notify outboxes' schedule).
pub fn retry_delay(attempt: u32, max: Duration) -> Duration {
    let initial = Duration::from_secs(1).min(max);
    Backoff::new(initial, max).wait(attempt.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_up_to_the_max() {
        let max = Duration::from_secs(60);
        let cases = [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (100, 60)];
        for (attempt, secs) in cases {
            assert_eq!(
                retry_delay(attempt, max),
                Duration::from_secs(secs),
                "attempt {attempt}"
            );
        }
    }
}
