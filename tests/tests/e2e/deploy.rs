//! The deploy kit is checked by the tools that will read it: `docker compose config` (or, without
//! Docker Compose, a YAML reading of the services, images, ports and shared settings), `nginx -t`
//! on the reverse-proxy example, `systemd-analyze verify` on the server unit, the Kubernetes
//! manifests parsed with the kinds, probes and a configuration the server accepts, and the
//! Dockerfile's stages (pinned Rust builder, slim runtime, non-root user, health check). The
//! container's start is checked without a Docker daemon: the image's `ENV`, `ENTRYPOINT` and
//! `CMD` (with compose's `environment` or the Deployment's Secret and `args` on top) are parsed
//! by the server's own command line and configuration loader, with exactly that environment and
//! the image's configuration file mapped to the file in this repository it is copied from.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail, ensure};
use palisade_tests::testing::in_ci;
use palisade_tests::{nginx, workspace_root};
use serde_norway::Value;

fn deploy(path: &str) -> PathBuf {
    workspace_root().join("deploy").join(path)
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn yaml(path: &Path) -> anyhow::Result<Value> {
    let mut value: Value = serde_norway::from_str(&read(path)?).with_context(|| format!("{} is not YAML", path.display()))?;
    value.apply_merge().context("YAML merge keys")?;
    Ok(value)
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(value, |v, key| v.get(*key))?.as_str()
}

fn tool_missing(what: &str) -> anyhow::Result<()> {
    ensure!(!in_ci(), "{what} is required in CI (.ci/run installs it)");
    eprintln!("notice: {what} is not installed; skipping that check");
    Ok(())
}

/// What the runtime stage of `deploy/Dockerfile` gives a container: its environment, the command
/// it runs, and the files copied in from the repository (image path → repository path).
struct Image {
    env: Vec<(String, String)>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    copies: Vec<(PathBuf, PathBuf)>,
}

impl Image {
    fn read() -> anyhow::Result<Image> {
        let text = read(&deploy("Dockerfile"))?;
        // Instructions of the last stage, continuation lines joined.
        let mut instructions: Vec<(String, String)> = Vec::new();
        let mut pending = String::new();
        for line in text.lines() {
            let line = line.trim();
            if pending.is_empty() && (line.is_empty() || line.starts_with('#')) {
                continue;
            }
            match line.strip_suffix('\\') {
                Some(head) => pending.push_str(head),
                None => {
                    pending.push_str(line);
                    let (instruction, args) = pending.split_once(char::is_whitespace).unwrap_or((&pending, ""));
                    if instruction.eq_ignore_ascii_case("FROM") {
                        instructions.clear();
                    }
                    instructions.push((instruction.to_ascii_uppercase(), args.trim().to_string()));
                    pending.clear();
                }
            }
        }
        let mut image = Image { env: Vec::new(), entrypoint: Vec::new(), cmd: Vec::new(), copies: Vec::new() };
        for (instruction, args) in instructions {
            match instruction.as_str() {
                "ENV" if args.contains('=') => {
                    for pair in args.split_whitespace() {
                        let (key, value) = pair.split_once('=').with_context(|| format!("ENV {pair}"))?;
                        image.env.push((key.to_string(), value.trim_matches('"').to_string()));
                    }
                }
                "ENV" => {
                    let (key, value) = args.split_once(char::is_whitespace).with_context(|| format!("ENV {args}"))?;
                    image.env.push((key.to_string(), value.trim().to_string()));
                }
                "ENTRYPOINT" => image.entrypoint = serde_json::from_str(&args).context("ENTRYPOINT in exec form")?,
                "CMD" => image.cmd = serde_json::from_str(&args).context("CMD in exec form")?,
                "COPY" if !args.starts_with("--") => {
                    let parts: Vec<&str> = args.split_whitespace().collect();
                    ensure!(parts.len() == 2, "COPY of one file: {args}");
                    image.copies.push((PathBuf::from(parts[1]), workspace_root().join(parts[0])));
                }
                _ => {}
            }
        }
        ensure!(!image.entrypoint.is_empty(), "the image has an ENTRYPOINT");
        Ok(image)
    }

    /// The repository file a path inside the image comes from.
    fn source_of(&self, path: &Path) -> anyhow::Result<PathBuf> {
        self.copies
            .iter()
            .find(|(inside, _)| inside == path)
            .map(|(_, source)| source.clone())
            .with_context(|| format!("{} is not copied into the image", path.display()))
    }
}

/// Environment `over` laid on `base`, as a container runtime does.
fn overlay(base: &[(String, String)], over: &[(String, String)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = base.iter().filter(|(k, _)| !over.iter().any(|(o, _)| o == k)).cloned().collect();
    env.extend(over.iter().cloned());
    env
}

/// The server's command line as the container runs it: parsed by the server's own definition.
fn parse_command_line(argv: &[String]) -> anyhow::Result<palisade_server::cli::Cli> {
    use clap::Parser;
    let cli = palisade_server::cli::Cli::try_parse_from(argv).with_context(|| format!("the server refuses {argv:?}"))?;
    ensure!(matches!(cli.command, palisade_server::cli::args::Command::Serve { .. }), "the container serves: {argv:?}");
    Ok(cli)
}

/// The configuration file the container reads: `--config`, else `PALISADE_CONFIG` (the flag's
/// variable, read by the command line before the configuration is loaded).
fn config_path(cli: &palisade_server::cli::Cli, env: &[(String, String)]) -> anyhow::Result<PathBuf> {
    use clap::CommandFactory;
    let command = palisade_server::cli::Cli::command();
    let flag = command.get_arguments().find(|a| a.get_id() == "config").context("a --config flag")?;
    let variable = flag.get_env().and_then(|v| v.to_str()).context("--config has an environment variable")?;
    match &cli.config {
        Some(path) => Ok(path.clone()),
        None => env.iter().find(|(k, _)| k == variable).map(|(_, v)| PathBuf::from(v)).context("a configuration file"),
    }
}

#[test]
fn the_image_starts_with_its_own_environment_command_and_config_file() -> anyhow::Result<()> {
    let image = Image::read()?;
    let argv: Vec<String> = image.entrypoint.iter().chain(&image.cmd).cloned().collect();
    let cli = parse_command_line(&argv)?;
    let inside = config_path(&cli, &image.env)?;
    ensure!(inside == Path::new("/etc/palisade/palisade.toml"), "the image reads its copied config: {}", inside.display());
    let file = image.source_of(&inside)?;
    let config = palisade_server::config::Config::load_with_env(Some(&file), Default::default(), image.env.clone())
        .context("the image's environment and config file load")?;
    ensure!(config.listen.ip().is_unspecified() && config.listen.port() == 8470, "listens on every interface: {config:?}");
    ensure!(config.log_format == palisade_server::config::LogFormat::Json, "JSON logs");
    ensure!(config.data_dir == Path::new("/var/lib/palisade"), "the data volume: {}", config.data_dir.display());
    // On every interface the server cannot guess its URL: the image refuses to start until it is
    // given one, as the Dockerfile's comment and docs/deploy.md say, and starts with it.
    let refused = config.public_url().expect_err("no public URL to guess").to_string();
    ensure!(refused.contains("PALISADE_PUBLIC_URL"), "the refusal names the variable: {refused}");
    let mut env = image.env.clone();
    env.push(("PALISADE_PUBLIC_URL".into(), "https://palisade.example.net/".into()));
    let config = palisade_server::config::Config::load_with_env(Some(&file), Default::default(), env)?;
    ensure!(config.public_url()? == "https://palisade.example.net/", "{config:?}");
    Ok(())
}

/// `${NAME:?message}` and `${NAME:-default}` as compose interpolates them, with `given` set.
fn interpolate(value: &str, given: &[(&str, &str)]) -> anyhow::Result<String> {
    let Some(inner) = value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) else { return Ok(value.to_string()) };
    let (name, fallback) = match inner.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (inner.split_once(":?").map_or(inner, |(name, _)| name), None),
    };
    match given.iter().find(|(k, _)| *k == name) {
        Some((_, v)) => Ok(v.to_string()),
        None => fallback.map(str::to_string).with_context(|| format!("{name} must be set")),
    }
}

#[test]
fn compose_replicas_start_with_the_image_and_their_environment() -> anyhow::Result<()> {
    let image = Image::read()?;
    let compose = yaml(&deploy("compose.yaml"))?;
    let secret = "s".repeat(40);
    let given = [("PALISADE_JWT_SECRET", secret.as_str())];
    for replica in ["palisade-1", "palisade-2"] {
        let service = &compose["services"][replica];
        let mapping = service["environment"].as_mapping().with_context(|| format!("{replica} environment"))?;
        let mut own = Vec::new();
        for (key, value) in mapping {
            let key = key.as_str().context("variable name")?.to_string();
            let value = match value {
                Value::String(s) => interpolate(s, &given)?,
                other => serde_norway::to_string(other)?.trim().to_string(),
            };
            own.push((key, value));
        }
        let env = overlay(&image.env, &own);
        let cmd = match service.get("command") {
            Some(cmd) => serde_norway::from_value::<Vec<String>>(cmd.clone())?,
            None => image.cmd.clone(),
        };
        ensure!(service.get("entrypoint").is_none(), "{replica} keeps the image's entrypoint");
        let argv: Vec<String> = image.entrypoint.iter().chain(&cmd).cloned().collect();
        let cli = parse_command_line(&argv)?;
        let file = image.source_of(&config_path(&cli, &env)?)?;
        let config = palisade_server::config::Config::load_with_env(Some(&file), Default::default(), env)
            .with_context(|| format!("{replica} configuration"))?;
        ensure!(config.backend() == palisade_server::config::Backend::Postgres && config.redis_url.is_some(), "{replica}");
        ensure!(config.auth.jwt_secret.as_ref().map(|s| s.expose()) == Some(secret.as_str()), "{replica} shares the secret");
        ensure!(config.public_url().is_ok(), "{replica} is told its public URL: {config:?}");
    }
    Ok(())
}

#[test]
fn compose_file_runs_two_replicas_behind_nginx_on_postgres_and_redis() -> anyhow::Result<()> {
    let path = deploy("compose.yaml");
    let compose = yaml(&path)?;
    let services = compose.get("services").and_then(Value::as_mapping).context("services")?;
    let names: BTreeSet<&str> = services.keys().filter_map(Value::as_str).collect();
    ensure!(names == BTreeSet::from(["postgres", "redis", "palisade-1", "palisade-2", "nginx"]), "{names:?}");
    ensure!(str_at(&compose, &["services", "postgres", "image"]).is_some_and(|i| i.starts_with("postgres:")), "postgres image");
    ensure!(str_at(&compose, &["services", "redis", "image"]).is_some_and(|i| i.starts_with("redis:")), "redis image");
    ensure!(str_at(&compose, &["services", "nginx", "image"]).is_some_and(|i| i.starts_with("nginx:")), "nginx image");
    let ports = compose["services"]["nginx"]["ports"].as_sequence().context("nginx publishes a port")?;
    ensure!(ports.iter().any(|p| p.as_str() == Some("8470:80")), "{ports:?}");
    let lb_addr = str_at(&compose, &["services", "nginx", "networks", "palisade", "ipv4_address"]).context("balancer address")?;

    let proxy_conf = read(&deploy("nginx/palisade.conf"))?;
    let env_of = |name: &str| compose["services"][name]["environment"].clone();
    let first = env_of("palisade-1");
    ensure!(first == env_of("palisade-2"), "both replicas share one configuration");
    for key in ["DATABASE_URL", "REDIS_URL", "PALISADE_AUTH__JWT_SECRET"] {
        ensure!(first.get(key).and_then(Value::as_str).is_some(), "replicas set {key}");
    }
    ensure!(str_at(&first, &["DATABASE_URL"]).is_some_and(|u| u.starts_with("postgres://")), "PostgreSQL");
    let trusted = str_at(&first, &["PALISADE_TRUSTED_PROXIES"]).context("trusted proxies")?;
    ensure!(trusted == format!("[{lb_addr}/32]"), "the balancer, and only it, is trusted: {trusted}");
    for replica in ["palisade-1", "palisade-2"] {
        ensure!(compose["services"][replica]["image"].as_str() == Some("palisade-server:latest"), "{replica} image");
        ensure!(str_at(&compose, &["services", replica, "build", "dockerfile"]) == Some("deploy/Dockerfile"), "{replica} build");
        let addr = str_at(&compose, &["services", replica, "networks", "palisade", "ipv4_address"]).context("replica address")?;
        ensure!(proxy_conf.contains(&format!("server {addr}:8470")), "nginx balances over {replica} at {addr}");
    }
    let mount = compose["services"]["nginx"]["volumes"][0].as_str().context("nginx config mount")?;
    ensure!(mount.starts_with("./nginx/palisade.conf:"), "{mount}");

    let available = Command::new("docker").args(["compose", "version"]).output().is_ok_and(|o| o.status.success());
    if available {
        let output = Command::new("docker")
            .args(["compose", "-f"])
            .arg(&path)
            .args(["config", "--quiet"])
            .env("PALISADE_JWT_SECRET", "x".repeat(40))
            .output()?;
        ensure!(output.status.success(), "docker compose config: {}", String::from_utf8_lossy(&output.stderr));
    } else {
        eprintln!("notice: docker compose is not available; the compose file was checked as YAML only");
    }
    Ok(())
}

#[test]
fn nginx_accepts_the_reverse_proxy_example() -> anyhow::Result<()> {
    let Some(binary) = nginx::binary() else { return tool_missing("nginx") };
    let dir = tempfile::tempdir()?;
    let d = dir.path().display();
    let example = deploy("nginx/palisade.conf");
    let main = format!(
        "pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n    access_log off;\n    client_body_temp_path {d}/body;\n    \
         proxy_temp_path {d}/proxy;\n    include {};\n}}\n",
        example.display()
    );
    let config = dir.path().join("nginx.conf");
    std::fs::write(&config, main)?;
    let output = Command::new(binary)
        .arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-t")
        .arg("-c")
        .arg(&config)
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(output.status.success() && stderr.contains("test is successful"), "nginx -t: {stderr}");
    let text = read(&example)?;
    ensure!(text.contains("X-Forwarded-For $proxy_add_x_forwarded_for"), "the example appends the client to X-Forwarded-For");
    Ok(())
}

#[test]
fn systemd_accepts_the_hardened_server_unit() -> anyhow::Result<()> {
    let path = deploy("systemd/palisade-server.service");
    let unit = read(&path)?;
    for setting in
        ["NoNewPrivileges=yes", "ProtectSystem=strict", "DynamicUser=yes", "StateDirectory=palisade", "CapabilityBoundingSet="]
    {
        ensure!(unit.lines().any(|l| l.trim() == setting), "hardening: {setting}");
    }
    let available = Command::new("systemd-analyze").arg("--version").output().is_ok_and(|o| o.status.success());
    if !available {
        return tool_missing("systemd-analyze");
    }
    // verify wants the ExecStart binary to exist: point it at one that does.
    let dir = tempfile::tempdir()?;
    let copy = dir.path().join("palisade-server.service");
    std::fs::write(&copy, unit.replace("/usr/local/bin/palisade-server", "/bin/true"))?;
    let output = Command::new("systemd-analyze").arg("verify").arg(&copy).output()?;
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    // verify exits 0 on unknown keys and only prints them: any remark about the unit is a failure.
    let remarks: Vec<&str> = said.lines().filter(|l| l.contains("palisade-server.service")).collect();
    ensure!(output.status.success() && remarks.is_empty(), "systemd-analyze verify: {said}");
    Ok(())
}

#[test]
fn kubernetes_manifests_have_the_expected_kinds_probes_and_a_valid_config() -> anyhow::Result<()> {
    let mut kinds = BTreeSet::new();
    let mut deployment = None;
    let mut config_toml = None;
    let mut files: Vec<_> = std::fs::read_dir(deploy("k8s"))?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    files.sort();
    for path in files {
        let doc = yaml(&path)?;
        let kind = str_at(&doc, &["kind"]).with_context(|| format!("{} has a kind", path.display()))?.to_string();
        ensure!(str_at(&doc, &["apiVersion"]).is_some(), "{} has an apiVersion", path.display());
        match kind.as_str() {
            "Deployment" => deployment = Some(doc.clone()),
            "ConfigMap" => config_toml = str_at(&doc, &["data", "palisade.toml"]).map(str::to_string),
            "Service" | "Secret" => {}
            other => bail!("unexpected kind {other} in {}", path.display()),
        }
        kinds.insert(kind);
    }
    ensure!(kinds == BTreeSet::from(["ConfigMap", "Deployment", "Secret", "Service"].map(String::from)), "{kinds:?}");
    let deployment = deployment.context("a Deployment")?;
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    ensure!(str_at(container, &["readinessProbe", "httpGet", "path"]) == Some("/readyz"), "readiness on /readyz");
    ensure!(str_at(container, &["livenessProbe", "httpGet", "path"]) == Some("/healthz"), "liveness on /healthz");
    ensure!(deployment["spec"]["replicas"].as_u64().is_some_and(|n| n >= 2), "several replicas");
    ensure!(container["envFrom"][0]["secretRef"]["name"].as_str() == Some("palisade-secrets"), "secrets from the Secret");

    // The container as the kubelet starts it: the image's entrypoint with the Deployment's args,
    // the image's environment with the Secret's (and any `env`) on top, the ConfigMap mounted.
    let image = Image::read()?;
    ensure!(container.get("command").is_none(), "the Deployment keeps the image's entrypoint");
    let args = match container.get("args") {
        Some(args) => serde_norway::from_value::<Vec<String>>(args.clone())?,
        None => image.cmd.clone(),
    };
    let argv: Vec<String> = image.entrypoint.iter().chain(&args).cloned().collect();
    let mut own: Vec<(String, String)> = Vec::new();
    let secret_doc = yaml(&deploy("k8s/secret.yaml"))?;
    for (key, value) in secret_doc["stringData"].as_mapping().context("the Secret's stringData")? {
        own.push((key.as_str().context("name")?.to_string(), value.as_str().context("value")?.to_string()));
    }
    for var in container.get("env").and_then(Value::as_sequence).into_iter().flatten() {
        let name = str_at(var, &["name"]).context("env name")?;
        own.push((name.to_string(), str_at(var, &["value"]).context("env value")?.to_string()));
    }
    let env = overlay(&image.env, &own);
    let cli = parse_command_line(&argv)?;
    let inside = config_path(&cli, &env)?;
    let mount = container["volumeMounts"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|m| str_at(m, &["name"]) == Some("config"))
        .and_then(|m| str_at(m, &["mountPath"]))
        .context("the ConfigMap is mounted")?;
    let key = inside.strip_prefix(mount).with_context(|| format!("{} is not under {mount}", inside.display()))?;
    ensure!(key == Path::new("palisade.toml"), "the container reads the ConfigMap's palisade.toml: {}", inside.display());

    let dir = tempfile::tempdir()?;
    let file = dir.path().join("palisade.toml");
    std::fs::write(&file, config_toml.context("the ConfigMap carries palisade.toml")?)?;
    let config = palisade_server::config::Config::load_with_env(Some(&file), Default::default(), env)
        .context("the container's environment and the ConfigMap load")?;
    ensure!(!config.trusted_proxies.is_empty() && config.listen.port() == 8470, "{config:?}");
    ensure!(config.backend() == palisade_server::config::Backend::Postgres, "the Secret's DATABASE_URL is used");
    ensure!(config.public_url().is_ok(), "the ConfigMap names the public URL: {config:?}");
    Ok(())
}

#[test]
fn dockerfile_builds_on_the_pinned_rust_and_runs_slim_unprivileged_and_checked() -> anyhow::Result<()> {
    let dockerfile = read(&deploy("Dockerfile"))?;
    let toolchain = read(&workspace_root().join("rust-toolchain.toml"))?;
    let channel = toolchain
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel = "))
        .map(|v| v.trim_matches('"').to_string())
        .context("pinned channel")?;
    let froms: Vec<&str> = dockerfile.lines().filter(|l| l.starts_with("FROM ")).collect();
    ensure!(froms.len() == 2, "two stages: {froms:?}");
    ensure!(froms[0].starts_with(&format!("FROM rust:{channel}")) && froms[0].ends_with(" AS builder"), "{froms:?}");
    ensure!(froms[1].starts_with("FROM debian:") && froms[1].contains("-slim"), "{froms:?}");
    ensure!(dockerfile.contains("COPY --from=builder"), "the runtime takes the built binary");
    let user = dockerfile.lines().rev().find_map(|l| l.strip_prefix("USER ")).context("a USER")?;
    ensure!(user.trim() != "root" && user.trim() != "0", "non-root: {user}");
    ensure!(dockerfile.lines().any(|l| l.starts_with("HEALTHCHECK")) && dockerfile.contains("/healthz"), "health check");
    Ok(())
}

/// Every package of a `cargo tree` selection with its resolved features.
fn resolved_features(selection: &[&str]) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .current_dir(workspace_root())
        .args(["tree", "--locked", "--offline", "-e", "normal,build", "-f", "{p} {f}", "--prefix", "none"])
        .args(selection)
        .output()?;
    ensure!(output.status.success(), "cargo tree {selection:?}: {}", String::from_utf8_lossy(&output.stderr));
    let mut packages = std::collections::BTreeMap::new();
    for line in String::from_utf8(output.stdout)?.lines() {
        let words: Vec<&str> = line.trim_end_matches(" (*)").split_whitespace().collect();
        let [name, version, rest @ ..] = words.as_slice() else { continue };
        let features = rest.iter().filter(|w| !w.starts_with('(')).copied().collect::<Vec<_>>().join("");
        packages.insert(format!("{name} {version}"), features);
    }
    Ok(packages)
}

#[test]
fn one_release_build_serves_every_documented_command() -> anyhow::Result<()> {
    // `cargo build --release` builds the default members, the server and the agent, with one
    // feature resolution; the server alone (`-p palisade-server`, as the README runs it and the
    // image builds it) must resolve every crate it uses with exactly those features, or its
    // first `cargo run` after a full build compiles them all again.
    let both = resolved_features(&[])?;
    ensure!(both.keys().any(|k| k.starts_with("palisade ")), "the agent is a default member");
    let server = resolved_features(&["-p", "palisade-server"])?;
    let differing: Vec<String> = server
        .iter()
        .filter(|(package, features)| both.get(*package) != Some(features))
        .map(|(package, features)| format!("{package}: [{features}] alone, [{}] in the full build", both[package]))
        .collect();
    ensure!(differing.is_empty(), "features differ between the full build and the server's:\n{}", differing.join("\n"));

    // The documented release commands build the server, the default members, or the developers'
    // programs (palisade-tests): never the agent alone, whose own resolution is a second build.
    let readme = read(&workspace_root().join("README.md"))?;
    for line in readme.lines().filter(|l| l.contains("cargo build --release") || l.contains("cargo run --release")) {
        ensure!(!line.contains("--workspace"), "the README builds the test programs into the release build: {line}");
        ensure!(!line.contains("-p palisade ") && !line.contains("-p palisade`"), "the agent alone is a second build: {line}");
    }

    // The image's build context leaves out build output and data directories (a JWT key).
    let ignored = read(&workspace_root().join(".dockerignore"))?;
    for pattern in ["target/", "palisade-data/", "jwt.key", "*.db"] {
        ensure!(ignored.lines().any(|l| l.trim() == pattern), ".dockerignore lacks {pattern}");
    }
    Ok(())
}
