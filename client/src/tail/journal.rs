//! Following the systemd journal through `journalctl --follow --output=json`, for hosts where
//! sshd logs only to the journal. Each entry becomes one line in the syslog shape the detectors
//! expect, `IDENTIFIER[PID]: MESSAGE`, so the same patterns match both sources.

use std::process::Stdio;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// A running `journalctl` and its output. The child is killed when this is dropped.
#[derive(Debug)]
pub struct JournalFollower {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl JournalFollower {
    /// Follows new journal entries (`--lines=0`) of the given systemd units, or of every unit
    /// when `units` is empty. Fails if `journalctl` cannot be started.
    pub fn open(units: &[String]) -> std::io::Result<JournalFollower> {
        let mut command = Command::new("journalctl");
        command.args(["--follow", "--output=json", "--lines=0", "--quiet"]);
        for unit in units {
            command.arg("--unit").arg(unit);
        }
        JournalFollower::from_command(command)
    }

    /// Runs `command`, which must print journal entries as JSON, one per line (as
    /// `journalctl --output=json` does).
    pub fn from_command(mut command: Command) -> std::io::Result<JournalFollower> {
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true);
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| std::io::Error::other("journalctl has no stdout"))?;
        Ok(JournalFollower { child, lines: BufReader::new(stdout).lines() })
    }

    /// Waits for the next entry, as `IDENTIFIER[PID]: MESSAGE`. Entries that are not JSON or
    /// have no message are skipped. When `journalctl` exits, returns an error saying how.
    pub async fn next_line(&mut self) -> std::io::Result<String> {
        loop {
            match self.lines.next_line().await? {
                Some(raw) => {
                    if let Some(line) = format_entry(&raw) {
                        return Ok(line);
                    }
                }
                None => {
                    let status = self.child.wait().await?;
                    return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("journalctl stopped ({status})")));
                }
            }
        }
    }
}

/// One `journalctl --output=json` entry as a syslog-style line, or `None` if it has no message.
/// A message journald stored as bytes (an array of numbers) is decoded lossily.
pub fn format_entry(raw: &str) -> Option<String> {
    let entry: Value = serde_json::from_str(raw).ok()?;
    let message = match entry.get("MESSAGE")? {
        Value::String(text) => text.clone(),
        Value::Array(bytes) => {
            let bytes: Vec<u8> = bytes.iter().filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok())).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        _ => return None,
    };
    let text = |key: &str| entry.get(key).and_then(Value::as_str);
    let identifier = text("SYSLOG_IDENTIFIER").or_else(|| text("_COMM")).unwrap_or("journal");
    Some(match text("_PID").or_else(|| text("SYSLOG_PID")) {
        Some(pid) => format!("{identifier}[{pid}]: {message}"),
        None => format!("{identifier}: {message}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_becomes_a_syslog_style_line() {
        let raw = r#"{"__REALTIME_TIMESTAMP":"1764064800000000","SYSLOG_IDENTIFIER":"sshd-session","_PID":"4242","_COMM":"sshd-session","MESSAGE":"Failed password for root from 203.0.113.7 port 22 ssh2"}"#;
        assert_eq!(format_entry(raw).unwrap(), "sshd-session[4242]: Failed password for root from 203.0.113.7 port 22 ssh2");
    }

    #[test]
    fn byte_array_messages_and_missing_fields_are_handled() {
        assert_eq!(format_entry(r#"{"_COMM":"x","MESSAGE":[104,105,255]}"#).unwrap(), "x: hi\u{fffd}");
        assert_eq!(format_entry(r#"{"SYSLOG_IDENTIFIER":"kernel"}"#), None);
        assert_eq!(format_entry("not json"), None);
    }
}
