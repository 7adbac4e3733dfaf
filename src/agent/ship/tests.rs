use std::collections::VecDeque;

use super::*;
use crate::agent::sources::tail::{FileId, FilePos};

/// Answers from a script and records every body it was given.
#[derive(Default)]
struct Scripted {
    answers: VecDeque<Delivery>,
    posted: Vec<String>,
}

impl Transport for Scripted {
    async fn post(&mut self, body: Bytes) -> Delivery {
        self.posted.push(String::from_utf8(body.to_vec()).unwrap());
        self.answers
            .pop_front()
            .expect("an answer scripted for every post")
    }
}

fn accepted(n: u64) -> Delivery {
    Delivery::Accepted {
        accepted: n,
        rejected: Vec::new(),
    }
}

fn retry() -> Delivery {
    Delivery::Retry {
        reason: "connection refused".into(),
        after: None,
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    pipeline: Pipeline<Scripted>,
    stats: Arc<Stats>,
}

impl Fixture {
    fn new(answers: Vec<Delivery>, cap: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let stats = Arc::new(Stats::default());
        let pipeline = Pipeline::new(
            Scripted {
                answers: answers.into(),
                posted: Vec::new(),
            },
            DiskBuffer::open(&dir.path().join("buffer"), cap).unwrap(),
            cap,
            OffsetStore::open(dir.path()).unwrap(),
            BatchBuilder::new(2, Duration::from_secs(1)),
            Backoff::new(Duration::from_millis(10), Duration::from_millis(40)),
            Arc::clone(&stats),
        );
        Self {
            dir,
            pipeline,
            stats,
        }
    }

    /// Queue one file line as a record (offset = its number).
    fn line(&mut self, n: u64) {
        let position = FilePos {
            file: FileId { dev: 1, ino: 1 },
            offset: n,
        };
        let record = Record {
            event: Some(format!("{{\"n\":{n}}}")),
            position: Some((Arc::from("/log"), position)),
        };
        self.pipeline
            .builder
            .push(record, std::time::Instant::now());
    }

    async fn batch(&mut self, lines: [u64; 2]) {
        self.line(lines[0]);
        self.line(lines[1]);
        self.pipeline.flush().await;
    }

    /// The offset saved on disk, as a restart would see it.
    fn saved_offset(&self) -> Option<u64> {
        let store = OffsetStore::open(self.dir.path()).unwrap();
        store.get("/log").map(|p| p.offset)
    }
}

#[tokio::test]
async fn accepted_batches_move_the_saved_offset() {
    let mut fx = Fixture::new(vec![accepted(2)], 1 << 20);
    fx.batch([1, 2]).await;
    assert_eq!(fx.pipeline.transport.posted, ["{\"n\":1}\n{\"n\":2}\n"]);
    assert_eq!(fx.saved_offset(), Some(2));
    assert!(fx.pipeline.buffer.is_empty());
    assert_eq!(Stats::get(&fx.stats.accepted), 2);
}

#[tokio::test]
async fn a_failed_batch_and_all_later_ones_wait_on_disk_and_replay_in_order() {
    let mut fx = Fixture::new(
        vec![retry(), retry(), accepted(2), accepted(2), accepted(2)],
        1 << 20,
    );
    fx.batch([1, 2]).await;
    // safe on disk, so the offset moves even though sentineld has not seen it
    assert_eq!(fx.saved_offset(), Some(2));
    assert_eq!(fx.pipeline.buffer.events(), 2);
    assert!(fx.pipeline.retry_at.is_some());
    // later batches queue behind it without a send of their own
    fx.batch([3, 4]).await;
    assert_eq!(fx.pipeline.transport.posted.len(), 1);
    assert_eq!(fx.saved_offset(), Some(4));
    fx.pipeline.replay_oldest().await; // still down
    assert_eq!(fx.pipeline.buffer.events(), 4);
    fx.pipeline.replay_oldest().await;
    fx.pipeline.replay_oldest().await;
    assert!(fx.pipeline.buffer.is_empty());
    assert_eq!(fx.pipeline.retry_at, None);
    fx.batch([5, 6]).await;
    let posted = &fx.pipeline.transport.posted;
    assert_eq!(
        posted[2..],
        [
            "{\"n\":1}\n{\"n\":2}\n",
            "{\"n\":3}\n{\"n\":4}\n",
            "{\"n\":5}\n{\"n\":6}\n"
        ]
    );
    assert_eq!(Stats::get(&fx.stats.accepted), 6);
}

#[tokio::test]
async fn refused_and_partly_rejected_batches_are_counted_not_retried() {
    let refused = Delivery::Refused {
        status: 413,
        message: "too large".into(),
    };
    let partial = Delivery::Accepted {
        accepted: 1,
        rejected: vec![(0, "status_code 999 out of range".into())],
    };
    let mut fx = Fixture::new(vec![refused, partial], 1 << 20);
    fx.batch([1, 2]).await;
    fx.batch([3, 4]).await;
    assert!(fx.pipeline.buffer.is_empty());
    assert_eq!(fx.saved_offset(), Some(4));
    assert_eq!(Stats::get(&fx.stats.rejected), 3);
    assert_eq!(Stats::get(&fx.stats.accepted), 1);
}

#[tokio::test]
async fn a_full_buffer_drops_the_oldest_and_counts_them() {
    // each two-line batch is 16 bytes: the cap holds two of them
    let mut fx = Fixture::new(vec![retry(), accepted(2), accepted(2)], 32);
    fx.batch([1, 2]).await;
    fx.batch([3, 4]).await;
    fx.batch([5, 6]).await;
    assert_eq!(Stats::get(&fx.stats.lost), 2);
    assert!(fx.pipeline.buffer.bytes() <= 32);
    fx.pipeline.replay_oldest().await;
    fx.pipeline.replay_oldest().await;
    assert_eq!(
        fx.pipeline.transport.posted[1..],
        ["{\"n\":3}\n{\"n\":4}\n", "{\"n\":5}\n{\"n\":6}\n"]
    );
}
