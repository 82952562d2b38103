//! The command backend: a program of the operator's choosing receives the changes. It is called
//! as `PROGRAM… full` with every entry on standard input (one CIDR per line), `PROGRAM… delta`
//! with `+CIDR` and `-CIDR` lines, or `PROGRAM… ban ADDRESS SECONDS` for the agent's own bans. A
//! non-zero exit is a failure (a failed delta is retried as `full`).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use super::tool::{ApplyError, run_tool};

/// The command backend.
#[derive(Debug, Clone)]
pub struct CommandHook {
    program: Vec<String>,
}

impl CommandHook {
    /// The backend running `program` (executable and leading arguments).
    pub fn new(program: Vec<String>) -> CommandHook {
        CommandHook { program }
    }

    /// Standard input of a `full` call.
    pub fn render_full(entries: &BTreeSet<IpNet>) -> String {
        let mut out = String::with_capacity(entries.len() * 20);
        for net in entries {
            let _ = writeln!(out, "{net}");
        }
        out
    }

    /// Standard input of a `delta` call.
    pub fn render_delta(add: &[IpNet], remove: &[IpNet]) -> String {
        let mut out = String::new();
        for net in remove {
            let _ = writeln!(out, "-{net}");
        }
        for net in add {
            let _ = writeln!(out, "+{net}");
        }
        out
    }

    /// For `--dry-run`.
    pub fn describe(&self, action: &str, lines: usize) -> String {
        format!("run {} {action} with {lines} lines on standard input\n", self.program.join(" "))
    }

    /// Calls `PROGRAM full`.
    pub async fn apply_full(&self, entries: &BTreeSet<IpNet>) -> Result<(), ApplyError> {
        run_tool("the apply command", &self.program, &["full"], Some(Self::render_full(entries).into_bytes())).await
    }

    /// Calls `PROGRAM delta`.
    pub async fn apply_delta(&self, add: &[IpNet], remove: &[IpNet]) -> Result<(), ApplyError> {
        run_tool("the apply command", &self.program, &["delta"], Some(Self::render_delta(add, remove).into_bytes())).await
    }

    /// Calls `PROGRAM ban ADDRESS SECONDS`.
    pub async fn ban(&self, ip: IpAddr, duration: Duration) -> Result<(), ApplyError> {
        let ip = ip.to_string();
        let secs = duration.as_secs().max(1).to_string();
        run_tool("the apply command", &self.program, &["ban", &ip, &secs], None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delta_is_minus_then_plus_lines() {
        let add: Vec<IpNet> = ["45.33.32.1/32"].iter().filter_map(|s| s.parse().ok()).collect();
        let remove: Vec<IpNet> = ["45.33.32.2/32"].iter().filter_map(|s| s.parse().ok()).collect();
        assert_eq!(CommandHook::render_delta(&add, &remove), "-45.33.32.2/32\n+45.33.32.1/32\n");
    }

    #[tokio::test]
    async fn the_hook_receives_the_entries_and_a_failure_is_reported() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let out = dir.path().join("got");
        let script = format!("cat > {}; echo \"$0\" >> {}", out.display(), out.display());
        let hook = CommandHook::new(vec!["sh".into(), "-c".into(), script]);
        hook.apply_full(&["45.33.32.156/32".parse()?].into()).await?;
        assert_eq!(std::fs::read_to_string(&out)?, "45.33.32.156/32\nfull\n");
        let failing = CommandHook::new(vec!["sh".into(), "-c".into(), "echo broken >&2; exit 3".into()]);
        let error = failing.apply_full(&BTreeSet::new()).await.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("broken"), "{error}");
        Ok(())
    }
}
