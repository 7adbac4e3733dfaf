//! Child processes sentineld runs (exec probes, exec heals): their output captured within a
//! bound while both pipes are read to the end, and their whole process group killed on demand.
//!
//! Reading both pipes at once, and dropping what is over the bound instead of stopping, is what
//! keeps a chatty program from blocking on a full pipe and turning a check or heal into a timeout.

use tokio::io::{AsyncRead, AsyncReadExt};

/// The first `limit` bytes of a stream, and how many bytes after them were dropped.
#[derive(Debug)]
pub struct Capture {
    kept: Vec<u8>,
    cut: u64,
    limit: usize,
}

impl Capture {
    /// Keeps the first `limit` bytes.
    pub fn up_to(limit: usize) -> Self {
        Self {
            kept: Vec::new(),
            cut: 0,
            limit,
        }
    }

    /// Keeps nothing: counts what it is given.
    pub fn discarding() -> Self {
        Self::up_to(0)
    }

    pub fn push(&mut self, bytes: &[u8]) {
        let keep = (self.limit - self.kept.len()).min(bytes.len());
        self.kept.extend_from_slice(&bytes[..keep]);
        self.cut += (bytes.len() - keep) as u64;
    }

    pub fn kept(&self) -> &[u8] {
        &self.kept
    }

    /// Bytes dropped after the bound.
    pub fn cut(&self) -> u64 {
        self.cut
    }

    /// The kept text, trimmed, marked when bytes were cut.
    pub fn text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.kept).trim().to_string();
        if self.cut > 0 {
            text.push_str(&format!(" [output truncated: {} more bytes]", self.cut));
        }
        text
    }
}

/// Read `reader` to its end, keeping what fits in `into`.
pub async fn drain(
    reader: Option<impl AsyncRead + Unpin>,
    into: &mut Capture,
) -> std::io::Result<()> {
    let Some(mut reader) = reader else {
        return Ok(());
    };
    let mut buffer = [0u8; 8192];
    loop {
        match reader.read(&mut buffer).await? {
            0 => return Ok(()),
            read => into.push(&buffer[..read]),
        }
    }
}

/// Read both streams to their ends (every writer gone), keeping nothing.
pub async fn discard_until_closed(
    stdout: Option<impl AsyncRead + Unpin>,
    stderr: Option<impl AsyncRead + Unpin>,
) {
    let (mut out, mut err) = (Capture::discarding(), Capture::discarding());
    let _ = tokio::join!(drain(stdout, &mut out), drain(stderr, &mut err));
}

/// Kills a child's whole process group (the child was spawned with `process_group(0)`) when
/// dropped, unless disarmed after the child was reaped.
#[derive(Debug)]
pub struct ProcessGroup(Option<u32>);

impl ProcessGroup {
    /// The group led by the child with this pid (`Child::id()`; `None` once it was reaped).
    pub fn led_by(leader: Option<u32>) -> Self {
        Self(leader)
    }

    /// Leave the group alone from now on: what the child started on purpose keeps running.
    pub fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if let Some(leader) = self.0 {
            let group = nix::unistd::Pid::from_raw(leader as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Capture;

    #[test]
    fn a_capture_keeps_its_bound_and_counts_the_rest() {
        let mut capture = Capture::up_to(4);
        capture.push(b"ab");
        capture.push(b"cdef");
        capture.push(b"gh");
        assert_eq!(capture.kept(), b"abcd");
        assert_eq!(capture.cut(), 4);
        assert_eq!(capture.text(), "abcd [output truncated: 4 more bytes]");
        let mut none = Capture::discarding();
        none.push(b"xyz");
        assert_eq!((none.kept().len(), none.cut()), (0, 3));
    }
}
