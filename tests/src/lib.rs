//! Harness for end-to-end tests and benchmarks: runs the real `palisade-server` binary on
//! 127.0.0.1 with port 0 against a fresh database, learns its address from its first output
//! line, and runs its admin CLI against the same database. Processes are killed when dropped.
//! Also home of the poisoning simulator ([`sim`]) behind the `palisade-sim` binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use palisade_server::testing::TestDb;

pub use palisade_server::testing;
pub use palisade_server::testing::free_port;

pub mod bench;
pub mod http;
pub mod netns;
pub mod nginx;
pub mod signals;
pub mod sim;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// Path of a workspace binary built with the same profile as the running test, building it
/// (once per process) so it is never stale.
pub fn workspace_binary(package: &str, name: &str) -> PathBuf {
    static BUILT: OnceLock<std::sync::Mutex<Vec<String>>> = OnceLock::new();
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> or target/<profile>/<bench>
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let release = dir.file_name().is_some_and(|n| n == "release");
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == name) {
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(workspace_root()).args(["build", "--quiet", "-p", package, "--bin", name]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cannot run cargo build");
        assert!(status.success(), "cargo build -p {package} --bin {name} failed");
        built.push(name.to_string());
    }
    dir.join(name)
}

/// The first line `child` prints on its (piped) stdout, waiting at most `timeout`; the rest of
/// its output is drained in the background so it never blocks on a full pipe.
pub fn first_stdout_line(child: &mut Child, timeout: Duration) -> anyhow::Result<String> {
    Ok(first_stdout_lines(child, 1, timeout)?.remove(0))
}

/// The first `count` lines a child prints on its piped standard output (then the rest is read
/// and dropped so the child never blocks on a full pipe).
pub fn first_stdout_lines(child: &mut Child, count: usize, timeout: Duration) -> anyhow::Result<Vec<String>> {
    let stdout = child.stdout.take().context("stdout is not piped")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first: Vec<String> = lines.by_ref().take(count).map_while(Result::ok).collect();
        drop(tx.send(first));
        for _ in lines {}
    });
    let lines = rx.recv_timeout(timeout).with_context(|| format!("nothing printed within {} s", timeout.as_secs()))?;
    ensure!(lines.len() == count, "printed {} lines, not {count}: {lines:?}", lines.len());
    Ok(lines)
}

/// Polls `probe` every 250 ms until it yields a value, failing after `timeout` with `what`.
/// A probe error ends the wait at once (e.g. a child process that exited).
pub fn wait_until<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> anyhow::Result<Option<T>>) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe()? {
            return Ok(value);
        }
        if Instant::now() > deadline {
            bail!("timed out after {} s waiting for {what}", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// How to start a server.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Extra environment variables (e.g. `PALISADE_REGISTRATION__POLICY=closed`).
    pub env: Vec<(String, String)>,
    /// Extra TOML appended to the generated config file.
    pub config_toml: String,
}

/// A running `palisade-server`.
pub struct ServerProcess {
    child: Option<Child>,
    /// Base URL, ending in `/`.
    pub url: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    config_path: PathBuf,
    database_url: String,
    options: ServerOptions,
    _dir: tempfile::TempDir,
}

impl ServerProcess {
    /// Starts a server on a database.
    pub fn start(db: &TestDb, options: ServerOptions) -> anyhow::Result<ServerProcess> {
        let dir = tempfile::tempdir()?;
        let data_dir = dir.path().join("data");
        let config_path = dir.path().join("palisade.toml");
        std::fs::write(&config_path, &options.config_toml)?;
        let mut server = ServerProcess {
            child: None,
            url: String::new(),
            data_dir,
            config_path,
            database_url: db.url.expose().to_string(),
            options,
            _dir: dir,
        };
        server.spawn("127.0.0.1:0")?;
        Ok(server)
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(workspace_binary("palisade-server", "palisade-server"));
        cmd.arg("--config")
            .arg(&self.config_path)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env("DATABASE_URL", &self.database_url)
            .env_remove("REDIS_URL")
            .env("RUST_LOG", std::env::var("PALISADE_TEST_LOG").unwrap_or_else(|_| "warn".into()))
            .envs(self.options.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd
    }

    fn spawn(&mut self, listen: &str) -> anyhow::Result<()> {
        let mut child = self.command().args(["serve", "--listen", listen]).stdout(Stdio::piped()).spawn()?;
        let line = match first_stdout_line(&mut child, Duration::from_secs(60)) {
            Ok(line) => line,
            Err(error) => {
                drop(child.kill());
                return Err(error.context("palisade-server did not report its address"));
            }
        };
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .with_context(|| format!("unexpected first line: {line}"))?
            .to_string();
        self.url = url;
        self.child = Some(child);
        Ok(())
    }

    /// The process id of the running server.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `host:port` the server listens on.
    pub fn addr(&self) -> String {
        self.url.trim_start_matches("http://").trim_end_matches('/').to_string()
    }

    /// Runs `palisade-server admin ARGS…` against this server's database; returns stdout.
    pub fn admin(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = self.command().arg("admin").args(args).output()?;
        if !output.status.success() {
            bail!("admin {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(String::from_utf8(output.stdout)?)
    }

    /// A new admin token.
    pub fn admin_token(&self) -> anyhow::Result<String> {
        Ok(self.admin(&["token", "create"])?.trim().to_string())
    }

    /// Kills the process with SIGKILL (no shutdown at all).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.kill());
            drop(child.wait());
        }
    }

    /// Sends SIGTERM and waits for a clean exit; returns whether it exited successfully.
    pub fn terminate(&mut self) -> anyhow::Result<bool> {
        let Some(mut child) = self.child.take() else { return Ok(true) };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status.success());
            }
            if Instant::now() > deadline {
                drop(child.kill());
                bail!("server did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the server again on the same address, data dir and database.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        let addr = self.addr();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn(&addr) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() < deadline => {
                    eprintln!("restart: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
