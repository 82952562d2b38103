//! Benchmark: throughput of the agent's log detection against `grep -cE` on the same file.
//!
//! Generates a realistic auth.log (sshd sessions and noise, CRON, systemd, sudo, and about 7 %
//! attack lines in bursts from many addresses) into a temporary directory, then, best of R runs:
//! 1. `LC_ALL=C grep -cE '<sshd pattern>' file`, the built-in sshd pattern in ERE syntax;
//! 2. Palisade: read the file, split it into lines, `Detectors::feed` every line (all built-in
//!    detectors, buckets and detections included);
//! 3. the same with `Detectors::is_match` only (pattern matching without buckets);
//! 4. Palisade in batches: read the file 1 MiB at a time and pass the complete lines of each read
//!    to `Detectors::feed_chunk_with` (same detectors, same time per line).
//!
//! Prints times, lines/s and the ratio ours/grep throughput (target ≥ 0.5 for the batch run, the
//! way a daemon tailing a busy file receives lines), and checks that grep, Palisade and the
//! generator agree on the number of attack lines, that `feed` and `feed_chunk_with` return the
//! same detections, and that only attackers are detected, each burst about once.
//!
//! `cargo run --release -p palisade-tests --bin bench_detect -- [--quick] [--lines N] [--repeat R]`
//! (`--quick`: 200,000 lines, best of 2, what `tests/bench-quick` runs; the batch ratio is also
//! printed as a `RATIO` line for it).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use palisade::detect::{Detectors, builtin_sshd_pattern};
use palisade_tests::bench::{Goal, ratio_line};
use time::OffsetDateTime;

struct Options {
    lines: usize,
    repeat: usize,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options { lines: 1_000_000, repeat: 3 };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--quick" {
            (options.lines, options.repeat) = (200_000, 2);
            continue;
        }
        let value = args.next().with_context(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--lines" => options.lines = value.parse()?,
            "--repeat" => options.repeat = value.parse::<usize>()?.max(1),
            other => bail!("unknown option {other}"),
        }
    }
    Ok(options)
}

/// xorshift64*: deterministic, so every run benchmarks the same file.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Seconds between two generated lines: 1M lines cover about a day.
const STEP_MS: u64 = 86;
const ATTACK_PERCENT: u64 = 7;
const CONCURRENT_BURSTS: usize = 3;

struct Burst {
    ip: IpAddr,
    left: u32,
    user: &'static str,
}

struct Generated {
    text: String,
    attack_lines: usize,
    attackers: HashSet<IpAddr>,
    bursts: usize,
}

const USERS: [&str; 8] = ["root", "admin", "ubuntu", "test", "oracle", "postgres", "git", "user"];
const LEGIT: [&str; 4] = ["alice", "bob", "deploy", "backup"];

fn attacker_ip(rng: &mut Rng, n: usize) -> IpAddr {
    if n % 10 == 9 {
        format!("2001:db8:{:x}::{:x}", rng.below(0xffff), n).parse().unwrap()
    } else {
        // Public-looking addresses, distinct per burst.
        let n = n as u32;
        IpAddr::V4(Ipv4Addr::new(45 + (n >> 16) as u8 % 100, (n >> 8) as u8, n as u8, 1 + rng.below(250) as u8))
    }
}

fn attack_line(rng: &mut Rng, burst: &Burst) -> String {
    let ip = burst.ip;
    let port = 1024 + rng.below(60000);
    let user = burst.user;
    match rng.below(10) {
        0..=3 => format!("Failed password for {user} from {ip} port {port} ssh2"),
        4 => format!("Failed password for invalid user {user} from {ip} port {port} ssh2"),
        5 => format!("Invalid user {user} from {ip} port {port}"),
        6 => format!("Connection closed by authenticating user {user} {ip} port {port} [preauth]"),
        7 => format!("Disconnected from authenticating user {user} {ip} port {port} [preauth]"),
        8 => format!("error: maximum authentication attempts exceeded for {user} from {ip} port {port} ssh2 [preauth]"),
        _ => format!("Did not receive identification string from {ip} port {port}"),
    }
}

fn noise_line(rng: &mut Rng) -> (&'static str, String) {
    let legit_ip = format!("198.51.100.{}", 1 + rng.below(200));
    let user = rng.pick(&LEGIT);
    let port = 1024 + rng.below(60000);
    let session = rng.below(100_000);
    match rng.below(20) {
        0..=1 => (
            "sshd",
            format!(
                "Accepted publickey for {user} from {legit_ip} port {port} ssh2: ED25519 SHA256:Zx3kq8Yh2n5VwQp7Lc0aR4tUe6iOs9dFgHjK1mNbBvC"
            ),
        ),
        2 => ("sshd", format!("Accepted password for {user} from {legit_ip} port {port} ssh2")),
        3..=4 => ("sshd", format!("pam_unix(sshd:session): session opened for user {user}(uid=1000) by (uid=0)")),
        5..=6 => ("sshd", format!("pam_unix(sshd:session): session closed for user {user}")),
        7 => ("sshd", format!("Received disconnect from {legit_ip} port {port}:11: disconnected by user")),
        8 => ("sshd", format!("Disconnected from user {user} {legit_ip} port {port}")),
        9 => ("sshd", format!("Connection closed by {legit_ip} port {port} [preauth]")),
        10..=12 => ("CRON", "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)".to_string()),
        13..=14 => ("CRON", "pam_unix(cron:session): session closed for user root".to_string()),
        15 => ("CRON", "(root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)".to_string()),
        16 => ("systemd-logind", format!("New session {session} of user {user}.")),
        17 => ("systemd-logind", format!("Session {session} logged out. Waiting for processes to exit.")),
        18 => ("systemd", format!("Started session-{session}.scope - Session {session} of User {user}.")),
        _ => ("sudo", format!("{user} : TTY=pts/0 ; PWD=/home/{user} ; USER=root ; COMMAND=/usr/bin/systemctl status nginx")),
    }
}

fn generate(lines: usize) -> Generated {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut text = String::with_capacity(lines * 110);
    let mut attack_lines = 0;
    let mut attackers = HashSet::new();
    let mut bursts: Vec<Burst> = Vec::new();
    let mut started = 0;
    let months = ["Nov"];
    for i in 0..lines {
        let ms = i as u64 * STEP_MS;
        let (h, m, s) = (ms / 3_600_000 % 24, ms / 60_000 % 60, ms / 1000 % 60);
        let day = 1 + ms / 86_400_000;
        let pid = 1000 + rng.below(30000);
        let _ = write!(text, "{} {day:>2} {h:02}:{m:02}:{s:02} web1 ", months[0]);
        if rng.below(100) < ATTACK_PERCENT {
            while bursts.len() < CONCURRENT_BURSTS {
                let ip = attacker_ip(&mut rng, started);
                started += 1;
                attackers.insert(ip);
                bursts.push(Burst { ip, left: 12 + rng.below(19) as u32, user: USERS[rng.below(8) as usize] });
            }
            let slot = rng.below(bursts.len() as u64) as usize;
            let line = attack_line(&mut rng, &bursts[slot]);
            let _ = writeln!(text, "sshd[{pid}]: {line}");
            attack_lines += 1;
            bursts[slot].left -= 1;
            if bursts[slot].left == 0 {
                bursts.swap_remove(slot);
            }
        } else {
            let (program, line) = noise_line(&mut rng);
            let _ = writeln!(text, "{program}[{pid}]: {line}");
        }
    }
    // Bursts still running at the end are counted only if they were long enough to overflow.
    let unfinished = bursts.iter().filter(|b| b.left > 0).count();
    Generated { text, attack_lines, attackers, bursts: started - unfinished }
}

fn grep_count(pattern: &str, file: &std::path::Path) -> anyhow::Result<(usize, Duration)> {
    let start = Instant::now();
    let output = Command::new("grep").env("LC_ALL", "C").arg("-cE").arg(pattern).arg(file).output().context("cannot run grep")?;
    let elapsed = start.elapsed();
    ensure!(output.status.code() == Some(0), "grep failed: {}", String::from_utf8_lossy(&output.stderr));
    Ok((String::from_utf8(output.stdout)?.trim().parse()?, elapsed))
}

struct Ours {
    elapsed: Duration,
    lines: u64,
    events: u64,
    detections: Vec<(IpAddr, String)>,
}

fn run_feed(file: &std::path::Path) -> anyhow::Result<Ours> {
    let start = Instant::now();
    let bytes = std::fs::read(file)?;
    let text = std::str::from_utf8(&bytes)?;
    let mut detectors = Detectors::builtin();
    let base = OffsetDateTime::UNIX_EPOCH;
    let mut detections = Vec::new();
    for (i, line) in text.split_terminator('\n').enumerate() {
        let now = base + Duration::from_millis(i as u64 * STEP_MS);
        for detection in detectors.feed(line, now) {
            detections.push((detection.ip, detection.scenario));
        }
    }
    let elapsed = start.elapsed();
    Ok(Ours { elapsed, lines: detectors.stats().lines, events: detectors.stats().events, detections })
}

/// Size of one read in the batch run, as a daemon tailing a busy file might use.
const CHUNK: usize = 1 << 20;

/// Reads the file in `CHUNK`-byte reads and passes the complete lines of each read to
/// `Detectors::feed_chunk_with`, keeping a partial last line for the next read.
fn run_feed_chunk(file: &std::path::Path) -> anyhow::Result<Ours> {
    use std::io::Read as _;
    let start = Instant::now();
    let mut reader = std::fs::File::open(file)?;
    let mut detectors = Detectors::builtin();
    let base = OffsetDateTime::UNIX_EPOCH;
    let mut buffer = vec![0u8; CHUNK];
    let mut filled = 0;
    let mut out = Vec::new();
    loop {
        let read = reader.read(&mut buffer[filled..])?;
        filled += read;
        // At the end of the file, the rest is the last line even without a newline.
        let complete = if read == 0 { filled } else { buffer[..filled].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) };
        if complete > 0 || read == 0 {
            let first = detectors.stats().lines;
            let text = std::str::from_utf8(&buffer[..complete])?;
            detectors.feed_chunk_with(text, |n| base + Duration::from_millis((first + n as u64) * STEP_MS), &mut out);
            buffer.copy_within(complete..filled, 0);
            filled -= complete;
        }
        if read == 0 {
            break;
        }
        if filled == buffer.len() {
            // A line longer than the buffer: grow it.
            buffer.resize(buffer.len() * 2, 0);
        }
    }
    let elapsed = start.elapsed();
    let detections = out.into_iter().map(|d| (d.ip, d.scenario)).collect();
    Ok(Ours { elapsed, lines: detectors.stats().lines, events: detectors.stats().events, detections })
}

fn run_is_match(file: &std::path::Path) -> anyhow::Result<(usize, Duration)> {
    let start = Instant::now();
    let bytes = std::fs::read(file)?;
    let text = std::str::from_utf8(&bytes)?;
    let detectors = Detectors::builtin();
    let count = text.split_terminator('\n').filter(|line| detectors.is_match(line)).count();
    Ok((count, start.elapsed()))
}

fn main() -> anyhow::Result<()> {
    let options = options()?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("auth.log");
    let generated = generate(options.lines);
    std::fs::write(&file, &generated.text)?;
    let pattern = builtin_sshd_pattern().replace("(?P<ip>", "(");
    println!(
        "auth.log: {} lines, {:.1} MB, {} attack lines from {} addresses in {} bursts",
        options.lines,
        generated.text.len() as f64 / 1e6,
        generated.attack_lines,
        generated.attackers.len(),
        generated.bursts
    );
    println!("grep pattern (ERE, LC_ALL=C): {pattern}");
    drop(generated.text);

    let mut grep_best = Duration::MAX;
    let mut feed_best = Duration::MAX;
    let mut match_best = Duration::MAX;
    let mut chunk_best = Duration::MAX;
    let mut last_feed = None;
    for run in 1..=options.repeat {
        let (grep_lines, grep_time) = grep_count(&pattern, &file)?;
        let ours = run_feed(&file)?;
        let (match_lines, match_time) = run_is_match(&file)?;
        let chunked = run_feed_chunk(&file)?;
        println!(
            "run {run}: grep {:.3} s ({grep_lines} lines), feed {:.3} s ({} event lines), is_match {:.3} s ({match_lines} lines), feed_chunk {:.3} s ({} event lines)",
            grep_time.as_secs_f64(),
            ours.elapsed.as_secs_f64(),
            ours.events,
            match_time.as_secs_f64(),
            chunked.elapsed.as_secs_f64(),
            chunked.events
        );
        ensure!(
            ours.lines == options.lines as u64 && chunked.lines == options.lines as u64,
            "lines counted: feed {}, feed_chunk {}, generated {}",
            ours.lines,
            chunked.lines,
            options.lines
        );
        ensure!(chunked.events == ours.events, "feed_chunk poured {} events, feed {}", chunked.events, ours.events);
        ensure!(chunked.detections == ours.detections, "feed_chunk and feed returned different detections");
        ensure!(grep_lines == generated.attack_lines, "grep counted {grep_lines}, generated {}", generated.attack_lines);
        ensure!(match_lines == generated.attack_lines, "is_match counted {match_lines}, generated {}", generated.attack_lines);
        ensure!(
            ours.events as usize == generated.attack_lines,
            "feed poured {} events, generated {}",
            ours.events,
            generated.attack_lines
        );
        grep_best = grep_best.min(grep_time);
        feed_best = feed_best.min(ours.elapsed);
        match_best = match_best.min(match_time);
        chunk_best = chunk_best.min(chunked.elapsed);
        last_feed = Some(ours);
    }

    let ours = last_feed.context("no run")?;
    let strangers: Vec<_> = ours.detections.iter().filter(|(ip, _)| !generated.attackers.contains(ip)).collect();
    ensure!(strangers.is_empty(), "detected addresses that never attacked: {strangers:?}");
    let fast = ours.detections.iter().filter(|(_, s)| s == "crowdsecurity/ssh-bf").count();
    let slow = ours.detections.iter().filter(|(_, s)| s == "crowdsecurity/ssh-slow-bf").count();
    let fast_ips: HashSet<_> = ours.detections.iter().filter(|(_, s)| s == "crowdsecurity/ssh-bf").map(|(ip, _)| *ip).collect();
    println!("detections: {fast} ssh-bf ({} addresses), {slow} ssh-slow-bf, for {} bursts", fast_ips.len(), generated.bursts);
    // Each burst is 12 to 30 attempts a few seconds apart: enough to overflow ssh-bf about once.
    ensure!(
        fast_ips.len() * 10 >= generated.bursts * 9 && fast <= generated.bursts + generated.bursts / 10,
        "ssh-bf detections ({fast}, {} addresses) do not match the {} bursts",
        fast_ips.len(),
        generated.bursts
    );

    let lines = options.lines as f64;
    let per_sec = |d: Duration| lines / d.as_secs_f64();
    println!("best of {}:", options.repeat);
    println!("  grep -cE        {:.3} s  {:>12.0} lines/s", grep_best.as_secs_f64(), per_sec(grep_best));
    println!("  Detectors::feed {:.3} s  {:>12.0} lines/s", feed_best.as_secs_f64(), per_sec(feed_best));
    println!("  is_match only   {:.3} s  {:>12.0} lines/s", match_best.as_secs_f64(), per_sec(match_best));
    println!("  feed_chunk      {:.3} s  {:>12.0} lines/s", chunk_best.as_secs_f64(), per_sec(chunk_best));
    println!("ratio feed/grep throughput: {:.2}", grep_best.as_secs_f64() / feed_best.as_secs_f64());
    println!("ratio is_match/grep throughput: {:.2}", grep_best.as_secs_f64() / match_best.as_secs_f64());
    let ratio = grep_best.as_secs_f64() / chunk_best.as_secs_f64();
    println!("ratio feed_chunk/grep throughput: {ratio:.2} (target >= 0.5) {}", if ratio >= 0.5 { "PASS" } else { "FAIL" });
    println!("{}", ratio_line("detect.feed_chunk_vs_grep", ratio, Goal::AtLeast, 0.5));
    Ok(())
}
