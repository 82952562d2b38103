//! Running a firewall tool (nft, ipset, the operator's command) and explaining its failure to a
//! person: missing, refused for lack of privileges, or failed with what it said.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

/// Why applying failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The firewall tool is not installed.
    #[error("`{program}` was not found: install {tool} or choose another apply.backend in the configuration")]
    Missing {
        /// The tool (nft, ipset, the hook).
        tool: String,
        /// The program that was run.
        program: String,
    },
    /// The kernel refused for lack of privileges.
    #[error(
        "{tool} was refused permission to change the firewall: run palisade as root or give it CAP_NET_ADMIN (the systemd unit in deploy/ does). {tool} said: {detail}"
    )]
    Permission {
        /// The tool.
        tool: String,
        /// What it said.
        detail: String,
    },
    /// The tool ran and failed.
    #[error("{tool} failed: {detail}")]
    Failed {
        /// The tool.
        tool: String,
        /// What it said.
        detail: String,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl ApplyError {
    /// Whether retrying the same change as a full replacement may help (not for a missing tool
    /// or missing privileges).
    pub(super) fn worth_a_full_retry(&self) -> bool {
        matches!(self, ApplyError::Failed { .. })
    }
}

/// Runs `program` (the first element is the executable, the rest leading arguments) with
/// `args`, feeding it `input`; classifies a failure for a person.
pub async fn run_tool(tool: &str, program: &[String], args: &[&str], input: Option<Vec<u8>>) -> Result<(), ApplyError> {
    let Some((executable, leading)) = program.split_first() else {
        return Err(ApplyError::Missing { tool: tool.into(), program: String::new() });
    };
    let mut command = tokio::process::Command::new(executable);
    command.args(leading).args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    command.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = command.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ApplyError::Missing { tool: tool.into(), program: executable.clone() },
        std::io::ErrorKind::PermissionDenied => ApplyError::Permission { tool: tool.into(), detail: e.to_string() },
        _ => ApplyError::Failed { tool: tool.into(), detail: format!("cannot start {executable}: {e}") },
    })?;
    let writer = match (input, child.stdin.take()) {
        (Some(input), Some(mut stdin)) => Some(tokio::spawn(async move {
            // A tool that exits early closes the pipe; its exit status tells the story.
            drop(stdin.write_all(&input).await);
            drop(stdin.shutdown().await);
        })),
        _ => None,
    };
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| ApplyError::Failed { tool: tool.into(), detail: format!("waiting for {executable}: {e}") })?;
    if let Some(writer) = writer {
        drop(writer.await);
    }
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let detail = first_lines(&stderr, 6);
    let detail = if detail.is_empty() { format!("exited with {}", output.status) } else { detail };
    if stderr.contains("Operation not permitted") || stderr.contains("Permission denied") || stderr.contains("must be root") {
        return Err(ApplyError::Permission { tool: tool.into(), detail });
    }
    Err(ApplyError::Failed { tool: tool.into(), detail })
}

fn first_lines(text: &str, n: usize) -> String {
    text.lines().map(str::trim_end).filter(|l| !l.is_empty()).take(n).collect::<Vec<_>>().join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_tool_is_named_and_a_refusal_is_explained() {
        let missing = run_tool("nft", &["/nonexistent/nft".into()], &["-f", "-"], None).await;
        assert!(matches!(missing, Err(ApplyError::Missing { .. })), "{missing:?}");
        let script = "echo 'Error: Could not process rule: Operation not permitted' >&2; exit 1";
        let refused = run_tool("nft", &["sh".into(), "-c".into(), script.into()], &[], None).await;
        let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("run palisade as root or give it CAP_NET_ADMIN"), "{message}");
    }
}
