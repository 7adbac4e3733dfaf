//! The disk buffer: batches that could not be delivered, one segment file per batch, replayed
//! oldest first. Bounded in bytes; when full, the oldest segments go (and are counted).

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};

use super::offsets::write_atomically;

/// Segment files are `SEQ-EVENTS.ndjson`: order and event count without reading them.
const SUFFIX: &str = ".ndjson";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    seq: u64,
    events: u64,
    bytes: u64,
}

impl Segment {
    fn name(&self) -> String {
        format!("{:020}-{}{SUFFIX}", self.seq, self.events)
    }

    fn parse(name: &str) -> Option<(u64, u64)> {
        let (seq, events) = name.strip_suffix(SUFFIX)?.split_once('-')?;
        Some((seq.parse().ok()?, events.parse().ok()?))
    }
}

/// What a push had to throw away to stay under the cap.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Evicted {
    pub segments: u64,
    pub events: u64,
}

pub struct DiskBuffer {
    dir: PathBuf,
    max_bytes: u64,
    segments: VecDeque<Segment>,
    bytes: u64,
    next_seq: u64,
}

impl DiskBuffer {
    /// Open (creating) the buffer in `dir`, picking up the segments a previous run left.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut segments = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                // a push interrupted before its rename: its batch was never acknowledged
                std::fs::remove_file(entry.path())?;
            } else if let Some((seq, events)) = Segment::parse(&name) {
                let bytes = entry.metadata()?.len();
                segments.push(Segment { seq, events, bytes });
            }
        }
        segments.sort_by_key(|s| s.seq);
        let next_seq = segments.last().map_or(0, |s| s.seq + 1);
        Ok(Self {
            dir: dir.to_path_buf(),
            max_bytes,
            bytes: segments.iter().map(|s| s.bytes).sum(),
            segments: segments.into(),
            next_seq,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn events(&self) -> u64 {
        self.segments.iter().map(|s| s.events).sum()
    }

    /// Append a batch durably (fsynced before this returns). Evicts the oldest segments to
    /// stay under the cap; a batch bigger than the whole cap is itself what gets evicted.
    pub fn push(&mut self, body: &[u8], events: u64) -> io::Result<Evicted> {
        let bytes = body.len() as u64;
        let mut evicted = Evicted::default();
        if bytes > self.max_bytes {
            evicted.segments = 1;
            evicted.events = events;
            return Ok(evicted);
        }
        while self.bytes + bytes > self.max_bytes {
            let Some(oldest) = self.segments.front().copied() else {
                break;
            };
            self.remove_oldest()?;
            evicted.segments += 1;
            evicted.events += oldest.events;
        }
        let segment = Segment {
            seq: self.next_seq,
            events,
            bytes,
        };
        write_atomically(&self.dir.join(segment.name()), body)?;
        self.next_seq += 1;
        self.bytes += bytes;
        self.segments.push_back(segment);
        Ok(evicted)
    }

    /// The oldest batch: its body and event count.
    pub fn oldest(&self) -> io::Result<Option<(Vec<u8>, u64)>> {
        let Some(segment) = self.segments.front() else {
            return Ok(None);
        };
        let body = std::fs::read(self.dir.join(segment.name()))?;
        Ok(Some((body, segment.events)))
    }

    /// Forget the oldest batch (delivered, refused, or evicted).
    pub fn remove_oldest(&mut self) -> io::Result<()> {
        if let Some(segment) = self.segments.pop_front() {
            self.bytes -= segment.bytes;
            match std::fs::remove_file(self.dir.join(segment.name())) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(buffer: &mut DiskBuffer) -> Vec<String> {
        let mut out = Vec::new();
        while let Some((body, _)) = buffer.oldest().unwrap() {
            out.push(String::from_utf8(body).unwrap());
            buffer.remove_oldest().unwrap();
        }
        out
    }

    #[test]
    fn replays_in_order_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut buffer = DiskBuffer::open(dir.path(), 1000).unwrap();
        assert!(buffer.is_empty());
        buffer.push(b"a\n", 1).unwrap();
        buffer.push(b"b\nc\n", 2).unwrap();
        drop(buffer);
        // an interrupted push leaves a temp file that must not be replayed
        std::fs::write(dir.path().join("00000000000000000009-1.ndjson.tmp"), b"x\n").unwrap();
        let mut buffer = DiskBuffer::open(dir.path(), 1000).unwrap();
        assert_eq!((buffer.events(), buffer.bytes()), (3, 6));
        buffer.push(b"d\n", 1).unwrap();
        assert_eq!(drain(&mut buffer), ["a\n", "b\nc\n", "d\n"]);
        assert_eq!(buffer.bytes(), 0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // sequence numbers keep growing after everything was delivered and reopened
        buffer.push(b"e\n", 1).unwrap();
        let reopened = DiskBuffer::open(dir.path(), 1000).unwrap();
        assert_eq!(reopened.next_seq, 4);
    }

    #[test]
    fn the_cap_evicts_oldest_first_and_counts_events() {
        let dir = tempfile::tempdir().unwrap();
        let mut buffer = DiskBuffer::open(dir.path(), 10).unwrap();
        assert_eq!(buffer.push(b"1\n2\n3\n", 3).unwrap(), Evicted::default());
        assert_eq!(buffer.push(b"4\n", 1).unwrap(), Evicted::default());
        let evicted = buffer.push(b"5\n6\n", 2).unwrap();
        assert_eq!(
            evicted,
            Evicted {
                segments: 1,
                events: 3
            }
        );
        assert!(buffer.bytes() <= 10);
        // bigger than the whole cap: that batch is the one dropped
        let evicted = buffer.push(&[b'x'; 11], 5).unwrap();
        assert_eq!(
            evicted,
            Evicted {
                segments: 1,
                events: 5
            }
        );
        assert_eq!(drain(&mut buffer), ["4\n", "5\n6\n"]);
    }
}
