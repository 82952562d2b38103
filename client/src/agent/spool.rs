//! The on-disk spool: every signal is written here, synced, before the agent tries to send it,
//! and deleted only after the server answered 2xx for the batch that carried it. One file per
//! signal (named by the time it was spooled, so the oldest go first) holds the serialised
//! [`SignalItem`] with its uuid and times, so a retried batch is byte-identical and the server
//! recognises a redelivery. Files are written to a temporary name and renamed, so several
//! processes (`palisade watch`, `palisade report` from fail2ban) can share a spool safely.
//! Items the server can never accept are moved aside to `rejected/` rather than retried forever.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use palisade_api::capi::SignalItem;

/// The spool directory.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

/// A signal waiting in the spool.
#[derive(Debug, Clone)]
pub struct Spooled {
    /// Its file.
    pub path: PathBuf,
    /// The signal.
    pub item: SignalItem,
}

impl Spool {
    /// Opens (creating when missing) the spool in `dir`.
    pub fn open(dir: &Path) -> std::io::Result<Spool> {
        fs::create_dir_all(dir.join("rejected"))?;
        Ok(Spool { dir: dir.to_path_buf() })
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes one signal durably (file and directory synced) and returns its file.
    pub fn append(&self, item: &SignalItem) -> std::io::Result<PathBuf> {
        let body = serde_json::to_vec(item).map_err(std::io::Error::other)?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("{now:020}-{unique}.json");
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut file = fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(&body)?;
        file.sync_all()?;
        let path = self.dir.join(name);
        fs::rename(&tmp, &path)?;
        self.sync_dir()?;
        Ok(path)
    }

    /// The oldest `limit` signals. A file that is not a signal any more (damaged by hand) is moved
    /// to `rejected/` so it cannot block the others.
    pub fn oldest(&self, limit: usize) -> std::io::Result<Vec<Spooled>> {
        let mut names = self.names()?;
        names.sort();
        let mut out = Vec::new();
        for name in names {
            if out.len() == limit {
                break;
            }
            let path = self.dir.join(&name);
            let body = match fs::read(&path) {
                Ok(body) => body,
                // Another process delivered and removed it meanwhile.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            match serde_json::from_slice::<SignalItem>(&body) {
                Ok(item) => out.push(Spooled { path, item }),
                Err(_) => self.reject(&[path])?,
            }
        }
        Ok(out)
    }

    /// How many signals wait.
    pub fn len(&self) -> std::io::Result<usize> {
        Ok(self.names()?.len())
    }

    /// Whether no signal waits.
    pub fn is_empty(&self) -> std::io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// How many signals were set aside as unacceptable.
    pub fn rejected_len(&self) -> std::io::Result<usize> {
        Ok(fs::read_dir(self.dir.join("rejected"))?.filter_map(Result::ok).count())
    }

    /// Deletes delivered signals (already gone is fine) and syncs the directory.
    pub fn remove(&self, paths: &[PathBuf]) -> std::io::Result<()> {
        for path in paths {
            match fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        self.sync_dir()
    }

    /// Moves signals the server will never accept to `rejected/`, kept for a person to look at.
    pub fn reject(&self, paths: &[PathBuf]) -> std::io::Result<()> {
        for path in paths {
            if let Some(name) = path.file_name() {
                match fs::rename(path, self.dir.join("rejected").join(name)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        self.sync_dir()
    }

    fn names(&self) -> std::io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json") && !name.starts_with('.') {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn sync_dir(&self) -> std::io::Result<()> {
        fs::File::open(&self.dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::agent::signal::{Observation, signal_item};

    fn item(n: u8) -> SignalItem {
        let observation = Observation {
            ip: std::net::IpAddr::from([45, 33, 32, n]),
            scenario: "crowdsecurity/ssh-bf".into(),
            message: String::new(),
            first_seen: datetime!(2026-11-25 12:00 UTC),
            last_seen: datetime!(2026-11-25 12:00 UTC),
        };
        signal_item(&observation, "test", &format!("id-{n}"))
    }

    #[test]
    fn signals_come_back_oldest_first_byte_identical_until_removed() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let spool = Spool::open(dir.path())?;
        for n in 1..=3 {
            spool.append(&item(n))?;
        }
        let first = spool.oldest(2)?;
        assert_eq!(first.iter().map(|s| s.item.source.value.as_str()).collect::<Vec<_>>(), ["45.33.32.1", "45.33.32.2"]);
        let again = Spool::open(dir.path())?.oldest(2)?;
        let bytes = |s: &[Spooled]| s.iter().map(|s| serde_json::to_string(&s.item).unwrap_or_default()).collect::<Vec<_>>();
        assert_eq!(bytes(&first), bytes(&again), "a reopened spool yields the same content");
        spool.remove(&first.iter().map(|s| s.path.clone()).collect::<Vec<_>>())?;
        assert_eq!(spool.len()?, 1);
        Ok(())
    }

    #[test]
    fn damaged_files_are_set_aside() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let spool = Spool::open(dir.path())?;
        fs::write(dir.path().join("00000000000000000000-x.json"), b"not json")?;
        spool.append(&item(1))?;
        let items = spool.oldest(10)?;
        assert_eq!(items.len(), 1);
        assert_eq!((spool.len()?, spool.rejected_len()?), (1, 1));
        Ok(())
    }
}
