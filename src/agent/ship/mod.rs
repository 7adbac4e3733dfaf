//! The shipping pipeline: records become batches; a batch goes to sentineld, or to the disk
//! buffer when sentineld cannot take it (and everything after it, so order holds). Offsets are
//! saved only once a batch is safe: accepted, refused for good, or fsynced in the buffer.

pub mod http;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::batch::{Batch, BatchBuilder, Record};
use super::buffer::DiskBuffer;
use super::offsets::OffsetStore;
use super::stats::{Stats, Throttle};
use crate::backoff::Backoff;

/// How sentineld took a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// 200: these events are in; the listed ones (index, reason) were invalid and are dropped.
    Accepted {
        accepted: u64,
        rejected: Vec<(u64, String)>,
    },
    /// 400/401/413...: resending the same bytes cannot help; dropped.
    Refused { status: u16, message: String },
    /// Connection error, timeout, 429, 5xx: try again later (not before `after`).
    Retry {
        reason: String,
        after: Option<Duration>,
    },
}

/// Sends one batch body. The edge to sentineld; tests of the pipeline use a scripted one.
pub trait Transport {
    fn post(&mut self, body: Bytes) -> impl Future<Output = Delivery> + Send;
}

pub struct Pipeline<T> {
    transport: T,
    buffer: DiskBuffer,
    buffer_cap: u64,
    offsets: OffsetStore,
    builder: BatchBuilder,
    backoff: Backoff,
    /// When the oldest buffered batch may be tried again.
    retry_at: Option<Instant>,
    stats: Arc<Stats>,
    warn_throttle: Throttle,
}

impl<T: Transport> Pipeline<T> {
    pub fn new(
        transport: T,
        buffer: DiskBuffer,
        buffer_cap: u64,
        offsets: OffsetStore,
        builder: BatchBuilder,
        backoff: Backoff,
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            transport,
            buffer,
            buffer_cap,
            offsets,
            builder,
            backoff,
            retry_at: None,
            stats,
            warn_throttle: Throttle::new(Throttle::DEFAULT_INTERVAL),
        }
    }

    /// Ship until every input has closed, then flush what is left (to sentineld, else to disk).
    pub async fn run(mut self, mut records: mpsc::Receiver<Record>) {
        if !self.buffer.is_empty() {
            tracing::info!(
                events = self.buffer.events(),
                bytes = self.buffer.bytes(),
                "disk buffer holds batches from before; delivering them first"
            );
        }
        loop {
            let flush_at = self.builder.deadline().map(Instant::from_std);
            let replay_at =
                (!self.buffer.is_empty()).then(|| self.retry_at.unwrap_or_else(Instant::now));
            tokio::select! {
                record = records.recv() => match record {
                    Some(record) => {
                        if self.builder.push(record, std::time::Instant::now()) {
                            self.flush().await;
                        }
                    }
                    None => break,
                },
                () = sleep_until(flush_at) => self.flush().await,
                () = sleep_until(replay_at) => self.replay_oldest().await,
            }
        }
        self.flush().await;
        tracing::info!(
            buffered_events = self.buffer.events(),
            "shipping stopped: {}",
            self.stats.summary()
        );
    }

    /// Send the batch being built (or buffer it behind older ones).
    pub async fn flush(&mut self) {
        let Some(batch) = self.builder.take() else {
            return;
        };
        if batch.events == 0 {
            // Only skipped lines: every earlier batch is already safe.
            return self.commit(&batch);
        }
        if !self.buffer.is_empty() {
            return self.spill(batch);
        }
        match self.transport.post(batch.body.clone()).await {
            Delivery::Retry { reason, after } => {
                tracing::warn!("sentineld cannot take events now ({reason}); buffering them on disk and retrying");
                self.schedule_retry(after);
                self.spill(batch);
            }
            delivery => {
                self.settle(delivery, batch.events);
                self.commit(&batch);
            }
        }
    }

    /// Try the oldest buffered batch again.
    pub async fn replay_oldest(&mut self) {
        let (body, events) = match self.buffer.oldest() {
            Ok(Some(oldest)) => oldest,
            Ok(None) => return,
            Err(err) => {
                tracing::error!("cannot read the oldest disk buffer segment ({err}); skipping it");
                self.drop_oldest_segment();
                return;
            }
        };
        match self.transport.post(Bytes::from(body)).await {
            Delivery::Retry { reason, after } => {
                if let Some(suppressed) = self.warn_throttle.allow(std::time::Instant::now()) {
                    tracing::warn!(
                        buffered_events = self.buffer.events(),
                        suppressed,
                        "sentineld still cannot take events ({reason}); retrying"
                    );
                }
                self.schedule_retry(after);
            }
            delivery => {
                self.settle(delivery, events);
                self.drop_oldest_segment();
                self.backoff.succeeded();
                self.retry_at = None;
                if self.buffer.is_empty() {
                    tracing::info!("disk buffer delivered; shipping directly again");
                }
            }
        }
    }

    fn drop_oldest_segment(&mut self) {
        if let Err(err) = self.buffer.remove_oldest() {
            tracing::error!("cannot remove a delivered disk buffer segment: {err}");
        }
    }

    fn schedule_retry(&mut self, after: Option<Duration>) {
        let wait = self.backoff.next_wait().max(after.unwrap_or_default());
        self.retry_at = Some(Instant::now() + wait);
    }

    /// Count what sentineld did with a delivered (or refused) batch.
    fn settle(&mut self, delivery: Delivery, events: u64) {
        match delivery {
            Delivery::Accepted { accepted, rejected } => {
                Stats::add(&self.stats.accepted, accepted);
                if let Some((index, error)) = rejected.first() {
                    let total = Stats::add(&self.stats.rejected, rejected.len() as u64);
                    if let Some(suppressed) = self.warn_throttle.allow(std::time::Instant::now()) {
                        tracing::warn!(
                            rejected_total = total,
                            suppressed,
                            "sentineld rejected {} of {events} events, e.g. #{index}: {error}",
                            rejected.len()
                        );
                    }
                }
            }
            Delivery::Refused { status, message } => {
                let total = Stats::add(&self.stats.rejected, events);
                tracing::error!(
                    rejected_total = total,
                    "sentineld refused a batch of {events} events ({status}: {message}); dropped, not retried"
                );
            }
            Delivery::Retry { .. } => {}
        }
    }

    /// Put a batch in the disk buffer; once it is there, its lines are safe.
    fn spill(&mut self, batch: Batch) {
        match self.buffer.push(&batch.body, batch.events) {
            Ok(evicted) => {
                if evicted.events > 0 {
                    let total = Stats::add(&self.stats.lost, evicted.events);
                    tracing::error!(
                        lost_total = total,
                        "DISK BUFFER FULL ({} bytes cap): dropped the oldest {} events ({} batches); {total} events lost so far",
                        self.buffer_cap,
                        evicted.events,
                        evicted.segments
                    );
                }
                self.commit(&batch);
            }
            Err(err) => {
                let total = Stats::add(&self.stats.lost, batch.events);
                // Offsets stay behind: after a restart these lines are read again.
                tracing::error!(
                    lost_total = total,
                    "cannot write the disk buffer ({err}); {} events lost",
                    batch.events
                );
            }
        }
    }

    fn commit(&mut self, batch: &Batch) {
        if let Err(err) = self.offsets.commit(&batch.positions) {
            tracing::error!(
                "cannot save file offsets ({err}); after a restart some lines may be sent twice"
            );
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
