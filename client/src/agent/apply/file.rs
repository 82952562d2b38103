//! The file backend: the list as one CIDR per line, written to a temporary file beside the target
//! and renamed over it, so a reader sees the old file or the new one, never a part. The agent's own
//! bans go to `PATH.bans` (`address expiry-unix-seconds` per line, expired lines dropped at each
//! write), since a plain list has no notion of expiry.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use time::OffsetDateTime;

use super::tool::ApplyError;

/// The file backend.
#[derive(Debug, Clone)]
pub struct FileBackend {
    path: PathBuf,
}

impl FileBackend {
    /// The backend writing `path`.
    pub fn new(path: PathBuf) -> FileBackend {
        FileBackend { path }
    }

    /// The list file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bans file.
    pub fn bans_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".bans");
        PathBuf::from(name)
    }

    /// Replaces the file with `entries`.
    pub fn apply_full(&self, entries: &BTreeSet<IpNet>) -> Result<(), ApplyError> {
        let mut body = String::with_capacity(entries.len() * 20);
        for net in entries {
            let _ = writeln!(body, "{net}");
        }
        replace(&self.path, body.as_bytes())
    }

    /// Adds a ban until `now + duration`, dropping expired ones.
    pub fn ban(&self, ip: IpAddr, duration: Duration, now: OffsetDateTime) -> Result<(), ApplyError> {
        let path = self.bans_path();
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        let until = now.unix_timestamp() + i64::try_from(duration.as_secs()).unwrap_or(i64::MAX / 2);
        replace(&path, merge_bans(&old, ip, until, now.unix_timestamp()).as_bytes())
    }
}

/// The bans file after adding `ip` until `until`: unexpired lines kept, the address once.
pub fn merge_bans(old: &str, ip: IpAddr, until: i64, now: i64) -> String {
    let mut out = String::new();
    for line in old.lines() {
        let mut parts = line.split_whitespace();
        let (Some(addr), Some(expiry)) = (parts.next(), parts.next().and_then(|e| e.parse::<i64>().ok())) else { continue };
        if expiry > now && addr.parse::<IpAddr>().ok() != Some(ip) {
            let _ = writeln!(out, "{addr} {expiry}");
        }
    }
    let _ = writeln!(out, "{ip} {until}");
    out
}

fn replace(path: &Path, body: &[u8]) -> Result<(), ApplyError> {
    let io = |source| ApplyError::Io { path: path.to_path_buf(), source };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    tmp.write_all(body).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_file_is_replaced_whole() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let backend = FileBackend::new(dir.path().join("list.txt"));
        backend.apply_full(&["45.33.32.156/32".parse()?, "2600:3c00::/32".parse()?].into())?;
        assert_eq!(std::fs::read_to_string(backend.path())?, "45.33.32.156/32\n2600:3c00::/32\n");
        backend.apply_full(&BTreeSet::new())?;
        assert_eq!(std::fs::read_to_string(backend.path())?, "");
        Ok(())
    }

    #[test]
    fn bans_expire_and_are_not_repeated() {
        let ip = IpAddr::from([45, 33, 32, 1]);
        let old = "45.33.32.1 50\n45.33.32.2 200\n45.33.32.3 90\n";
        assert_eq!(merge_bans(old, ip, 500, 100), "45.33.32.2 200\n45.33.32.1 500\n");
    }
}
