//! Records (one event, and for file lines the position just after it) gathered into NDJSON
//! batches: full at N events (or a byte cap), or due when the oldest has waited long enough.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::sources::tail::FilePos;

/// One event on its way, as a JSON object without a newline.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// None for a file line that yields no event (no tenant, unparsable): it only moves the
    /// position, so skipped lines at the end of a file are not read again after a restart.
    pub event: Option<String>,
    /// For a file line: the file (its configured path) and where the next line starts. Once
    /// the batch holding this record is safe, reading resumes there after a restart.
    pub position: Option<(Arc<str>, FilePos)>,
}

/// What one request carries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    pub body: Bytes,
    pub events: u64,
    /// The last position per file in this batch: what to persist once it is safe.
    pub positions: BTreeMap<String, FilePos>,
}

/// A request body well under sentineld's default 8 MiB limit, whatever the event count.
pub const MAX_BATCH_BYTES: usize = 1 << 20;

pub struct BatchBuilder {
    body: Vec<u8>,
    events: u64,
    positions: BTreeMap<String, FilePos>,
    max_events: u64,
    flush_interval: Duration,
    started: Option<Instant>,
}

impl BatchBuilder {
    pub fn new(max_events: usize, flush_interval: Duration) -> Self {
        Self {
            body: Vec::new(),
            events: 0,
            positions: BTreeMap::new(),
            max_events: max_events.max(1) as u64,
            flush_interval,
            started: None,
        }
    }

    /// Add one record; true when the batch is now full and should go.
    pub fn push(&mut self, record: Record, now: Instant) -> bool {
        self.started.get_or_insert(now);
        if let Some(event) = record.event {
            self.body.extend_from_slice(event.as_bytes());
            self.body.push(b'\n');
            self.events += 1;
        }
        if let Some((source, position)) = record.position {
            self.positions.insert(source.to_string(), position);
        }
        self.events >= self.max_events || self.body.len() >= MAX_BATCH_BYTES
    }

    /// When the current batch is due, if it holds anything.
    pub fn deadline(&self) -> Option<Instant> {
        self.started.map(|started| started + self.flush_interval)
    }

    pub fn take(&mut self) -> Option<Batch> {
        self.started = None;
        if self.events == 0 && self.positions.is_empty() {
            return None;
        }
        Some(Batch {
            body: Bytes::from(std::mem::take(&mut self.body)),
            events: std::mem::take(&mut self.events),
            positions: std::mem::take(&mut self.positions),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::sources::tail::FileId;

    fn record(event: &str, offset: Option<u64>) -> Record {
        Record {
            event: Some(event.into()),
            position: offset.map(|offset| {
                let file = FileId { dev: 1, ino: 2 };
                (Arc::from("/log"), FilePos { file, offset })
            }),
        }
    }

    #[test]
    fn full_at_max_events_with_the_last_position_per_file() {
        let start = Instant::now();
        let mut builder = BatchBuilder::new(3, Duration::from_secs(1));
        assert_eq!(builder.deadline(), None);
        assert!(!builder.push(record("{\"a\":1}", Some(10)), start));
        assert_eq!(builder.deadline(), Some(start + Duration::from_secs(1)));
        assert!(!builder.push(
            record("{\"b\":2}", None),
            start + Duration::from_millis(500)
        ));
        assert!(builder.push(record("{\"c\":3}", Some(30)), start));
        let batch = builder.take().unwrap();
        assert_eq!(&batch.body[..], b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n");
        assert_eq!(batch.events, 3);
        assert_eq!(batch.positions["/log"].offset, 30);
        assert_eq!(builder.take(), None);
        assert_eq!(builder.deadline(), None);
        // a skipped line moves the position without an event
        let skipped = Record {
            event: None,
            ..record("", Some(40))
        };
        assert!(!builder.push(skipped, start));
        let batch = builder.take().unwrap();
        assert_eq!((batch.events, batch.body.len()), (0, 0));
        assert_eq!(batch.positions["/log"].offset, 40);
    }

    #[test]
    fn full_at_the_byte_cap() {
        let mut builder = BatchBuilder::new(1_000_000, Duration::from_secs(1));
        let big = format!("\"{}\"", "x".repeat(MAX_BATCH_BYTES / 2));
        assert!(!builder.push(record(&big, None), Instant::now()));
        assert!(builder.push(record(&big, None), Instant::now()));
    }
}
