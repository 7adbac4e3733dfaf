//! Drives one `FileTail` on its own thread: woken by notify on the file's directory, and by a
//! timer in any case (notify can miss events, or be unavailable); parses and forwards lines.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::tail::{FilePos, FileTail, Line};
use crate::agent::batch::Record;
use crate::agent::config::FileConfig;
use crate::agent::parse::{excerpt, now_ms, LineParser, Parsed};
use crate::agent::stats::{Stats, Throttle};

/// A running file input; `stop` ends its thread at the next wake-up.
pub struct FileInput {
    thread: JoinHandle<()>,
    wake: SyncSender<()>,
}

impl FileInput {
    pub fn start(
        config: &FileConfig,
        parser: LineParser,
        resume: Option<FilePos>,
        records: mpsc::Sender<Record>,
        stop: Arc<AtomicBool>,
        stats: Arc<Stats>,
    ) -> std::io::Result<Self> {
        let (wake, woken) = sync_channel(1);
        let tail = FileTail::new(
            config.path.clone(),
            resume,
            config.start_at,
            config.rotate_wait.get(),
            config.max_line_bytes.0 as usize,
        );
        let mut follower = Follower {
            tail,
            forwarder: Forwarder {
                source: Arc::from(config.path.display().to_string()),
                parser,
                records,
                stats,
                warn: Throttle::new(Throttle::DEFAULT_INTERVAL),
            },
            too_long_seen: 0,
        };
        let watcher = watch_directory(&config.path, wake.clone());
        let poll_interval = config.poll_interval.get();
        let thread = std::thread::Builder::new()
            .name("sentinel-tail".into())
            .spawn(move || {
                let _watcher = watcher;
                follower.run(&woken, poll_interval, &stop);
            })?;
        Ok(Self { thread, wake })
    }

    /// Wake the thread so it sees the stop flag; the caller joins it.
    pub fn wake(&self) {
        let _ = self.wake.try_send(());
    }

    pub fn join(self) {
        let _ = self.thread.join();
    }
}

/// Watch the directory (not the file: rotation replaces the file) for changes to our name or
/// names that start with it (`access.log.1` getting late writes).
fn watch_directory(path: &Path, wake: SyncSender<()>) -> Option<RecommendedWatcher> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty())?;
    let name = path.file_name()?.to_owned();
    let on_event = move |event: notify::Result<notify::Event>| {
        let relevant = event.map_or(true, |event| {
            event.paths.iter().any(|p| {
                p.file_name()
                    .is_some_and(|n| n.as_encoded_bytes().starts_with(name.as_encoded_bytes()))
            })
        });
        if relevant {
            let _ = wake.try_send(());
        }
    };
    let watched = notify::recommended_watcher(on_event).and_then(|mut watcher| {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
        Ok(watcher)
    });
    match watched {
        Ok(watcher) => Some(watcher),
        Err(err) => {
            tracing::warn!(path = %path.display(), "cannot watch for changes ({err}); polling only");
            None
        }
    }
}

struct Follower {
    tail: FileTail,
    forwarder: Forwarder,
    too_long_seen: u64,
}

/// Parses lines and sends their events on.
struct Forwarder {
    /// The configured path: the key of this file's saved offset.
    source: Arc<str>,
    parser: LineParser,
    records: mpsc::Sender<Record>,
    stats: Arc<Stats>,
    warn: Throttle,
}

impl Follower {
    fn run(&mut self, woken: &Receiver<()>, poll_interval: Duration, stop: &AtomicBool) {
        let mut closed = false;
        while !stop.load(Ordering::Relaxed) && !closed {
            let forwarder = &mut self.forwarder;
            let polled = self.tail.poll(Instant::now(), &mut |line| {
                if !closed && !forwarder.forward(line) {
                    closed = true;
                }
            });
            let progress = match polled {
                Ok(progress) => progress,
                Err(err) => {
                    if let Some(suppressed) = self.forwarder.warn.allow(Instant::now()) {
                        tracing::warn!(path = %self.tail.path().display(), suppressed, "cannot read the log file: {err}");
                    }
                    false
                }
            };
            self.count_too_long();
            if !progress {
                let _ = woken.recv_timeout(poll_interval);
            }
        }
    }

    fn count_too_long(&mut self) {
        let new = self.tail.too_long - self.too_long_seen;
        if new > 0 {
            self.too_long_seen = self.tail.too_long;
            let total = Stats::add(&self.forwarder.stats.too_long, new);
            tracing::warn!(path = %self.tail.path().display(), too_long_total = total, "dropped {new} lines longer than max_line_bytes");
        }
    }
}

impl Forwarder {
    /// Parse one line and send its event (or, for a skipped line, its position); false once
    /// the pipeline is gone.
    fn forward(&mut self, line: Line) -> bool {
        let event = match self.parser.parse(&line.text, now_ms()) {
            Parsed::Event(event) => Some(serde_json::to_string(&event).expect("events serialize")),
            Parsed::NoTenant => {
                Stats::add(&self.stats.no_tenant, 1);
                None
            }
            Parsed::Malformed(reason) => {
                let total = Stats::add(&self.stats.unparsable, 1);
                if let Some(suppressed) = self.warn.allow(Instant::now()) {
                    tracing::warn!(
                        path = %self.source,
                        unparsable_total = total,
                        suppressed,
                        "dropped a line that does not parse ({reason}): {}",
                        excerpt(&line.text)
                    );
                }
                None
            }
        };
        let record = Record {
            event,
            position: Some((Arc::clone(&self.source), line.end)),
        };
        self.records.blocking_send(record).is_ok()
    }
}
