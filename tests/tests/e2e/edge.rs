//! Connection limits against a real listener: idle connections over the per-address cap are
//! closed at once, slowloris request heads and stalled bodies are cut off, and meanwhile
//! `/healthz` answers another client (bound to 127.0.0.2, a distinct loopback source on Linux)
//! within a second. A clean shutdown still follows with connections open.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use palisade_tests::testing::TestDb;
use palisade_tests::{ServerOptions, ServerProcess, wait_until};

/// Per-address cap of the test server.
const PER_ADDRESS: usize = 20;

fn server(edge: &str) -> anyhow::Result<(TestDb, ServerProcess)> {
    let db = TestDb::sqlite();
    let options = ServerOptions { config_toml: format!("[edge]\n{edge}\n"), ..ServerOptions::default() };
    let server = ServerProcess::start(&db, options)?;
    Ok((db, server))
}

/// Whether the server has closed `stream` (end of stream or reset), without blocking.
fn closed(stream: &TcpStream) -> anyhow::Result<bool> {
    stream.set_nonblocking(true)?;
    let mut byte = [0u8; 1];
    Ok(match stream.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe) => true,
        Err(e) => return Err(e.into()),
    })
}

/// `GET /healthz` from 127.0.0.2, which must answer 200 within a second.
fn healthz_from_another_address(addr: &str) -> anyhow::Result<()> {
    let target: SocketAddr = addr.parse()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let answer = tokio::time::timeout(Duration::from_secs(1), async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind("127.0.0.2:0".parse()?)?;
            let mut stream = socket.connect(target).await?;
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            stream.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await?;
            anyhow::Ok(answer)
        })
        .await
        .context("/healthz did not answer within 1 s")??;
        ensure!(answer.starts_with("HTTP/1.1 200"), "/healthz answered {answer:?}");
        Ok(())
    })
}

#[test]
fn idle_connections_over_the_per_address_cap_are_closed_and_healthz_still_answers() -> anyhow::Result<()> {
    let (_db, server) =
        server(&format!("max_connections_per_address = {PER_ADDRESS}\nheader_read_timeout_secs = 600\nidle_timeout_secs = 600"))?;
    let addr = server.addr();
    let idle: Vec<TcpStream> = (0..2 * PER_ADDRESS).map(|_| TcpStream::connect(&addr)).collect::<Result<_, _>>()?;
    // The server takes each from the backlog in turn: the first PER_ADDRESS are kept, the rest
    // closed as soon as they are accepted.
    let closed_count = wait_until(Duration::from_secs(30), "the connections over the cap to be closed", || {
        let count = idle.iter().map(closed).collect::<anyhow::Result<Vec<_>>>()?.into_iter().filter(|c| *c).count();
        Ok((count >= PER_ADDRESS).then_some(count))
    })?;
    assert_eq!(closed_count, PER_ADDRESS, "{closed_count} of {} idle connections were closed", idle.len());
    healthz_from_another_address(&addr)?;
    // The kept ones are still served.
    let mut kept = idle.into_iter().find(|s| !closed(s).unwrap_or(true)).context("no connection was kept")?;
    kept.set_nonblocking(false)?;
    kept.set_read_timeout(Some(Duration::from_secs(10)))?;
    kept.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut answer = String::new();
    kept.read_to_string(&mut answer)?;
    assert!(answer.starts_with("HTTP/1.1 200"), "a kept connection answered {answer:?}");
    Ok(())
}

#[test]
fn slowloris_heads_and_stalled_bodies_are_cut_off_while_healthz_answers() -> anyhow::Result<()> {
    let (_db, mut server) = server("header_read_timeout_secs = 1\nidle_timeout_secs = 2")?;
    let addr = server.addr();
    let mut slow: Vec<TcpStream> = Vec::new();
    for _ in 0..PER_ADDRESS / 2 {
        let mut stream = TcpStream::connect(&addr)?;
        stream.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n").as_bytes())?;
        slow.push(stream);
    }
    let mut stalled = TcpStream::connect(&addr)?;
    stalled.write_all(
        format!("POST /v2/watchers/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"machine_id\"")
            .as_bytes(),
    )?;
    // A header line every 200 ms keeps each head incomplete, as slowloris does; the server must
    // close them all however long the client keeps this up (the test gives up after 30 s).
    let started = Instant::now();
    let mut line = 0u64;
    loop {
        line += 1;
        let mut open = 0;
        for stream in &mut slow {
            if !closed(stream)? && stream.write_all(format!("X-Slow-{line}: a\r\n").as_bytes()).is_ok() {
                open += 1;
            }
        }
        if open == 0 {
            break;
        }
        healthz_from_another_address(&addr)?;
        if started.elapsed() > Duration::from_secs(30) {
            bail!("{open} slowloris connections still open after 30 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_until(Duration::from_secs(30), "the stalled body to be cut off", || closed(&stalled).map(|c| c.then_some(())))?;
    healthz_from_another_address(&addr)?;
    // Shutdown with a connection open is still clean.
    let _open = TcpStream::connect(&addr)?;
    ensure!(server.terminate()?, "the server did not exit cleanly");
    Ok(())
}
