//! Following log files like `tail -F`, for the agent's detectors. Owns reading and reopening one
//! file; knows nothing of what the lines mean.
//!
//! [`Follower`] polls (every [`POLL_INTERVAL`]) rather than using inotify: polling works on every
//! filesystem, including bind mounts and NFS, and a log line a quarter of a second late does not
//! matter to a leaky bucket measured in seconds.
//!
//! - **Rotation by rename** (logrotate's default, `create`): when the path names another inode,
//!   the rest of the old file is read first, then the new file from its start. While the path is
//!   missing, the old file is still followed (the daemon writes to it until it reopens).
//! - **Truncation** (`copytruncate`): when the file becomes shorter than the position read so far,
//!   reading restarts at its start. A file truncated and refilled past the old position between
//!   two polls cannot be told apart from appends; `tail -F` has the same blind spot.
//! - **Missing file**: [`Follower::open`] succeeds and waits for it; a file that appears later is
//!   read from its start.
//! - Lines are split on `\n`; a trailing `\r` is removed; invalid UTF-8 is replaced, not refused.
//!   A partial last line is held back until its newline arrives, except when the file is rotated
//!   away (then it is returned as it is). A line longer than [`MAX_LINE`] is cut into pieces.
//!
//! [`journal::JournalFollower`] is the same kind of source for the systemd journal.

pub mod journal;

use std::collections::VecDeque;
use std::io::SeekFrom;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// How often a file at its end is checked for new data, rotation and truncation.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The longest line returned whole; longer ones come in pieces of this size.
pub const MAX_LINE: usize = 64 * 1024;

const CHUNK: usize = 64 * 1024;

/// The file being read: its handle, identity and how far it has been read.
#[derive(Debug)]
struct Open {
    file: File,
    dev: u64,
    ino: u64,
    pos: u64,
}

/// Follows one file like `tail -F`: starts at the end (or beginning), yields complete lines,
/// survives rotation (rename + new file with another inode) and truncation (copytruncate),
/// reads what remained in the old file before switching, waits for a file that does not exist yet.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    open: Option<Open>,
    partial: Vec<u8>,
    lines: VecDeque<String>,
    chunk: Vec<u8>,
}

impl Follower {
    /// Starts following `path`: from its end, or from its start when `from_start`. A missing file
    /// is not an error: it is waited for and read from its start when it appears. Errors are
    /// those of opening an existing file (e.g. permission denied).
    pub async fn open(path: impl Into<PathBuf>, from_start: bool) -> std::io::Result<Follower> {
        let path = path.into();
        let mut follower = Follower { path, open: None, partial: Vec::new(), lines: VecDeque::new(), chunk: vec![0; CHUNK] };
        match open_file(&follower.path).await {
            Ok(mut open) => {
                if !from_start {
                    open.pos = open.file.seek(SeekFrom::End(0)).await?;
                }
                follower.open = Some(open);
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        Ok(follower)
    }

    /// The path being followed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the next complete line (without its newline).
    pub async fn next_line(&mut self) -> std::io::Result<String> {
        loop {
            if let Some(line) = self.lines.pop_front() {
                return Ok(line);
            }
            if self.read_available().await? {
                continue;
            }
            if self.check_path().await? {
                continue;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Reads what the open file has beyond the position; true when something was read.
    async fn read_available(&mut self) -> std::io::Result<bool> {
        let Some(open) = self.open.as_mut() else {
            return Ok(false);
        };
        let read = open.file.read(&mut self.chunk).await?;
        if read == 0 {
            return Ok(false);
        }
        open.pos += read as u64;
        let mut rest = &self.chunk[..read];
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&rest[..newline]);
            push_line(&mut self.lines, &mut self.partial);
            rest = &rest[newline + 1..];
        }
        self.partial.extend_from_slice(rest);
        while self.partial.len() >= MAX_LINE {
            let tail = self.partial.split_off(MAX_LINE);
            push_line(&mut self.lines, &mut self.partial);
            self.partial = tail;
        }
        Ok(true)
    }

    /// At the end of the open file: looks for rotation, truncation or a file that appeared.
    /// True when the follower switched or rewound and should read again at once.
    async fn check_path(&mut self) -> std::io::Result<bool> {
        let metadata = match tokio::fs::metadata(&self.path).await {
            Ok(metadata) => metadata,
            // Rotated away and not recreated yet: keep following the old file.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(error) => return Err(error),
        };
        match self.open.as_mut() {
            Some(open) if open.dev == metadata.dev() && open.ino == metadata.ino() => {
                if metadata.len() < open.pos {
                    open.pos = open.file.seek(SeekFrom::Start(0)).await?;
                    self.partial.clear();
                    return Ok(true);
                }
                Ok(false)
            }
            _ => {
                // A new file: the old one was read to its end just before this check.
                let new = match open_file(&self.path).await {
                    Ok(new) => new,
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                    Err(error) => return Err(error),
                };
                if self.open.is_some() {
                    // Drain anything written to the old file between the last read and now.
                    while self.read_available().await? {}
                    if !self.partial.is_empty() {
                        push_line(&mut self.lines, &mut self.partial);
                    }
                }
                self.open = Some(new);
                Ok(true)
            }
        }
    }
}

async fn open_file(path: &Path) -> std::io::Result<Open> {
    let file = File::open(path).await?;
    let metadata = file.metadata().await?;
    Ok(Open { file, dev: metadata.dev(), ino: metadata.ino(), pos: 0 })
}

fn push_line(lines: &mut VecDeque<String>, bytes: &mut Vec<u8>) {
    if bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    let line = match String::from_utf8(std::mem::take(bytes)) {
        Ok(line) => line,
        Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
    };
    lines.push_back(line);
}
