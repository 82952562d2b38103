//! A real nginx (Debian's package) as the load balancer of end-to-end tests: a child process with
//! a generated configuration, pid file, logs and temp paths in its own temporary directory,
//! listening on a free loopback port, stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::{free_port, wait_until};

/// The nginx binary, when installed.
pub fn binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"].iter().map(PathBuf::from).find(|p| p.exists())
}

/// A running nginx.
pub struct Nginx {
    child: Child,
    /// Base URL of the balancer, ending in `/`.
    pub url: String,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx balancing round robin over `upstreams` (`host:port`), connecting to them from
    /// `proxy_bind` (a loopback address of its own, so servers can tell the balancer from clients)
    /// and appending the client to `X-Forwarded-For`.
    pub fn start(binary: &Path, upstreams: &[String], proxy_bind: &str) -> anyhow::Result<Nginx> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let servers: String = upstreams.iter().map(|u| format!("        server {u} max_fails=1 fail_timeout=30s;\n")).collect();
        let d = dir.path().display();
        // `user root` only matters when the master runs as root: its workers then keep the
        // rights to the temp directory (owned by whoever runs the test).
        let user = if nix::unistd::Uid::effective().is_root() { "user root root;" } else { "" };
        let config = format!(
            "{user}
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream palisade {{
{servers}    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://palisade;
            proxy_bind {proxy_bind};
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_next_upstream error timeout http_502 http_503;
            proxy_connect_timeout 2s;
        }}
    }}
}}
"
        );
        let config_path = dir.path().join("nginx.conf");
        std::fs::write(&config_path, config)?;
        let check = Command::new(binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&config_path)
            .arg("-t")
            .output()?;
        if !check.status.success() {
            bail!("nginx -t refused the generated config: {}", String::from_utf8_lossy(&check.stderr));
        }
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&config_path)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start nginx")?;
        let mut nginx = Nginx { child, url: format!("http://127.0.0.1:{port}/"), dir };
        wait_until(Duration::from_secs(10), "nginx to listen", || {
            if let Some(status) = nginx.child.try_wait()? {
                bail!("nginx exited with {status}: {}", nginx.error_log());
            }
            Ok(std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ()))
        })?;
        Ok(nginx)
    }

    /// The error log so far (for failure messages).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT: graceful stop of master and workers; then make sure.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGQUIT).is_ok() {
            for _ in 0..40 {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        drop(self.child.kill());
        drop(self.child.wait());
    }
}
