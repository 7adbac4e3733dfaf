//! What a path turned out to be when a regular file was expected: the secret files and the
//! evidence walk refuse the same kinds, in the same words.

use std::fs::FileType;
use std::os::unix::fs::FileTypeExt;

/// The kind of a file, told apart as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Regular,
    Directory,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
    Other,
}

impl FileKind {
    pub fn of(file_type: FileType) -> Self {
        match () {
            _ if file_type.is_file() => Self::Regular,
            _ if file_type.is_dir() => Self::Directory,
            _ if file_type.is_fifo() => Self::Fifo,
            _ if file_type.is_socket() => Self::Socket,
            _ if file_type.is_char_device() => Self::CharDevice,
            _ if file_type.is_block_device() => Self::BlockDevice,
            _ => Self::Other,
        }
    }
}

/// With its article, to follow "is": "is a FIFO, not a regular file".
impl std::fmt::Display for FileKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Regular => "a regular file",
            Self::Directory => "a directory",
            Self::Fifo => "a FIFO",
            Self::Socket => "a socket",
            Self::CharDevice => "a character device",
            Self::BlockDevice => "a block device",
            Self::Other => "a file of unknown type",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::FileKind;

    #[test]
    fn kinds_of_real_files_and_their_words() {
        let dir = std::env::temp_dir();
        let kind = |path: &str| FileKind::of(std::fs::metadata(path).unwrap().file_type());
        assert_eq!(
            FileKind::of(std::fs::metadata(&dir).unwrap().file_type()),
            FileKind::Directory
        );
        assert_eq!(kind("/dev/null"), FileKind::CharDevice);
        assert_eq!(kind("/proc/self/status"), FileKind::Regular);
        assert_eq!(FileKind::Fifo.to_string(), "a FIFO");
        assert_eq!(FileKind::Other.to_string(), "a file of unknown type");
    }
}
