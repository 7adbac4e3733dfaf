use std::io::Write;

use super::*;

struct Fixture {
    dir: tempfile::TempDir,
    now: Instant,
}

impl Fixture {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            now: Instant::now(),
        }
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("access.log")
    }

    fn append(&self, text: &str) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        file.write_all(text.as_bytes()).unwrap();
    }

    fn tail(&self, resume: Option<FilePos>, start_at: StartAt) -> FileTail {
        FileTail::new(self.log(), resume, start_at, Duration::from_secs(2), 16)
    }

    /// Poll at `self.now + after`, returning the line texts.
    fn poll(&self, tail: &mut FileTail, after: Duration) -> Vec<String> {
        self.poll_lines(tail, after)
            .into_iter()
            .map(|l| l.text)
            .collect()
    }

    fn poll_lines(&self, tail: &mut FileTail, after: Duration) -> Vec<Line> {
        let mut lines = Vec::new();
        tail.poll(self.now + after, &mut |line| lines.push(line))
            .unwrap();
        lines
    }
}

const NOW: Duration = Duration::ZERO;

#[test]
fn reads_complete_lines_and_holds_a_partial_one() {
    let fx = Fixture::new();
    let mut tail = fx.tail(None, StartAt::Beginning);
    assert!(fx.poll(&mut tail, NOW).is_empty(), "no file yet");
    fx.append("one\ntwo\nthr");
    assert_eq!(fx.poll(&mut tail, NOW), ["one", "two"]);
    fx.append("ee\n\n");
    let lines = fx.poll_lines(&mut tail, NOW);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].text, "three");
    assert_eq!(lines[0].end.offset, "one\ntwo\nthree\n".len() as u64);
}

#[test]
fn start_at_end_skips_only_the_first_files_old_content() {
    let fx = Fixture::new();
    fx.append("old\n");
    let mut tail = fx.tail(None, StartAt::End);
    assert!(fx.poll(&mut tail, NOW).is_empty());
    fx.append("new\n");
    assert_eq!(fx.poll(&mut tail, NOW), ["new"]);
    // the file that replaces it after a rotation is read from its start
    std::fs::rename(fx.log(), fx.dir.path().join("access.log.1")).unwrap();
    fx.append("new file line\n");
    fx.poll(&mut tail, NOW);
    assert_eq!(
        fx.poll(&mut tail, Duration::from_secs(3)),
        ["new file line"]
    );
}

#[test]
fn rename_rotation_drains_the_old_file_until_quiet_then_follows_the_new_one() {
    let fx = Fixture::new();
    let mut tail = fx.tail(None, StartAt::Beginning);
    fx.append("a1\n");
    assert_eq!(fx.poll(&mut tail, NOW), ["a1"]);
    let rotated = fx.dir.path().join("access.log.1");
    std::fs::rename(fx.log(), &rotated).unwrap();
    fx.append("b1\n");
    // the writer has not reopened yet: it still appends to the rotated file
    let mut late = std::fs::OpenOptions::new()
        .append(true)
        .open(&rotated)
        .unwrap();
    late.write_all(b"a2\n").unwrap();
    assert_eq!(fx.poll(&mut tail, Duration::from_secs(1)), ["a2"]);
    late.write_all(b"a3 no newline").unwrap();
    assert_eq!(
        fx.poll(&mut tail, Duration::from_secs(2)),
        Vec::<String>::new()
    );
    // quiet for rotate_wait since the last progress: switch, the partial line counts
    let lines = fx.poll_lines(&mut tail, Duration::from_secs(4));
    let texts: Vec<_> = lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["a3 no newline", "b1"]);
    let new_id = FileId::of(&std::fs::metadata(fx.log()).unwrap());
    assert_eq!(
        lines[1].end,
        FilePos {
            file: new_id,
            offset: 3
        }
    );
}

#[test]
fn copytruncate_is_read_again_from_the_start() {
    let fx = Fixture::new();
    let mut tail = fx.tail(None, StartAt::Beginning);
    fx.append("line 1\nline 2\nline 3\n");
    assert_eq!(fx.poll(&mut tail, NOW).len(), 3);
    std::fs::copy(fx.log(), fx.dir.path().join("access.log.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(fx.log())
        .unwrap()
        .set_len(0)
        .unwrap();
    fx.append("line 4\n");
    let lines = fx.poll_lines(&mut tail, NOW);
    assert_eq!(lines.len(), 1);
    assert_eq!((lines[0].text.as_str(), lines[0].end.offset), ("line 4", 7));
}

#[test]
fn resumes_at_the_saved_offset_of_the_same_file() {
    let fx = Fixture::new();
    fx.append("a\nb\nc\n");
    let id = FileId::of(&std::fs::metadata(fx.log()).unwrap());
    let mut tail = fx.tail(
        Some(FilePos {
            file: id,
            offset: 2,
        }),
        StartAt::End,
    );
    assert_eq!(fx.poll(&mut tail, NOW), ["b", "c"]);
    // a saved offset past the end (file truncated while we were down) reads from 0
    let mut tail = fx.tail(
        Some(FilePos {
            file: id,
            offset: 999,
        }),
        StartAt::End,
    );
    assert_eq!(fx.poll(&mut tail, NOW), ["a", "b", "c"]);
}

#[test]
fn resumes_in_the_rotated_file_found_by_inode_then_the_new_one() {
    let fx = Fixture::new();
    fx.append("a\nb\n");
    let id = FileId::of(&std::fs::metadata(fx.log()).unwrap());
    std::fs::rename(fx.log(), fx.dir.path().join("access.log.1")).unwrap();
    fx.append("c\n");
    let mut tail = fx.tail(
        Some(FilePos {
            file: id,
            offset: 2,
        }),
        StartAt::End,
    );
    assert_eq!(fx.poll(&mut tail, NOW), ["b"]);
    assert_eq!(fx.poll(&mut tail, Duration::from_secs(3)), ["c"]);
    // the rotated file gone too: the current file from its start
    std::fs::remove_file(fx.dir.path().join("access.log.1")).unwrap();
    let mut tail = fx.tail(
        Some(FilePos {
            file: id,
            offset: 2,
        }),
        StartAt::End,
    );
    assert_eq!(fx.poll(&mut tail, NOW), ["c"]);
}

#[test]
fn overlong_lines_are_dropped_and_counted_even_across_reads() {
    let fx = Fixture::new();
    let mut tail = fx.tail(None, StartAt::Beginning);
    fx.append("short\nthis line is longer than sixteen bytes\nok\n");
    assert_eq!(fx.poll(&mut tail, NOW), ["short", "ok"]);
    fx.append("another very long line, ");
    assert!(fx.poll(&mut tail, NOW).is_empty());
    fx.append("still going\nafter\n");
    let lines = fx.poll_lines(&mut tail, NOW);
    assert_eq!(lines.iter().map(|l| &l.text).collect::<Vec<_>>(), ["after"]);
    assert_eq!(tail.too_long, 2);
    let size = std::fs::metadata(fx.log()).unwrap().len();
    assert_eq!(lines[0].end.offset, size);
}
