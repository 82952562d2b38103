//! The machine's credentials on disk: the server URL, the machine id and its password, as a small
//! JSON file readable by its owner only (mode 0600, written to a temporary file and renamed, so a
//! crash never leaves half a file). Also generates new random credentials for `palisade register`.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rand::RngExt;
use serde::{Deserialize, Serialize};

/// Why credentials could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// There is no credentials file yet.
    #[error("no machine credentials at {0}: run `palisade register --server URL` first")]
    Missing(String),
    /// The file exists but could not be read or written.
    #[error("cannot access the credentials file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a credentials file.
    #[error("the credentials file {path} is damaged: {message}")]
    Damaged {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// A machine's credentials.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Credentials {
    /// Server base URL.
    pub server: String,
    /// Machine id (login).
    pub machine_id: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("server", &self.server)
            .field("machine_id", &self.machine_id)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// New random credentials for `server`: a `palisade-` id with 96 random bits and a
    /// 48-character password.
    pub fn generate(server: &str) -> Credentials {
        let mut rng = rand::rng();
        let id: String = (0..24).map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)])).collect();
        let password: String = (0..48).map(|_| char::from(rng.sample(rand::distr::Alphanumeric))).collect();
        Credentials { server: server.to_string(), machine_id: format!("palisade-{id}"), password }
    }

    /// Reads the credentials file.
    pub fn load(path: &Path) -> Result<Credentials, CredentialsError> {
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(CredentialsError::Missing(shown)),
            Err(source) => return Err(CredentialsError::Io { path: shown, source }),
        };
        serde_json::from_str(&text).map_err(|e| CredentialsError::Damaged { path: shown, message: e.to_string() })
    }

    /// Writes the credentials file with mode 0600 (its directory is created with 0700 when
    /// missing), replacing any previous one atomically.
    pub fn save(&self, path: &Path) -> Result<(), CredentialsError> {
        let io = |source| CredentialsError::Io { path: path.display().to_string(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            std::fs::create_dir_all(dir).map_err(io)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
        let body = serde_json::to_vec_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
        write_private(path, &body).map_err(io)
    }
}

/// Writes `body` to `path` readable by its owner only: a temporary file beside it (created 0600),
/// synced, then renamed over `path`.
pub fn write_private(path: &Path, body: &[u8]) -> std::io::Result<()> {
    // Unique per process: `palisade report` and `palisade watch` may write the same file.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    // An existing temporary file keeps its old mode; make sure.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(body)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_credentials_are_random_and_long_enough_for_the_server() {
        let a = Credentials::generate("http://h/");
        let b = Credentials::generate("http://h/");
        assert_ne!(a.machine_id, b.machine_id);
        assert_ne!(a.password, b.password);
        assert!(a.password.len() >= 16 && a.machine_id.starts_with("palisade-"));
    }

    #[test]
    fn saved_credentials_are_private_and_read_back() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("etc/credentials.json");
        let credentials = Credentials::generate("http://h/");
        credentials.save(&path)?;
        assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
        assert_eq!(Credentials::load(&path)?, credentials);
        assert!(!format!("{credentials:?}").contains(&credentials.password));
        Ok(())
    }

    #[test]
    fn missing_credentials_say_how_to_register() {
        let error = Credentials::load(Path::new("/nonexistent/credentials.json")).err().map(|e| e.to_string());
        assert!(error.unwrap_or_default().contains("palisade register"));
    }
}
