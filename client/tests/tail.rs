//! `palisade::tail::Follower` against real files in a temporary directory: appends, rotation by
//! rename, copytruncate, a file that appears later. Waits are generous timeouts for a line to
//! arrive, never assertions on how fast it arrives.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use palisade::tail::Follower;

/// Long enough never to fire on a loaded machine; only a broken follower reaches it.
const PATIENCE: Duration = Duration::from_secs(30);

async fn next(follower: &mut Follower) -> String {
    tokio::time::timeout(PATIENCE, follower.next_line()).await.expect("a line within the timeout").expect("no I/O error")
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

#[tokio::test]
async fn starts_at_the_end_and_returns_appended_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.log");
    append(&path, "old line 1\nold line 2\n");
    let mut follower = Follower::open(&path, false).await.unwrap();
    append(&path, "new line 1\r\nnew ");
    assert_eq!(next(&mut follower).await, "new line 1");
    append(&path, "line 2\n");
    assert_eq!(next(&mut follower).await, "new line 2");
}

#[tokio::test]
async fn from_start_reads_existing_lines_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.log");
    append(&path, "one\ntwo\n");
    let mut follower = Follower::open(&path, true).await.unwrap();
    assert_eq!(next(&mut follower).await, "one");
    assert_eq!(next(&mut follower).await, "two");
    append(&path, "three\n");
    assert_eq!(next(&mut follower).await, "three");
}

#[tokio::test]
async fn partial_line_is_held_until_its_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.log");
    append(&path, "");
    let mut follower = Follower::open(&path, false).await.unwrap();
    append(&path, "no newline yet");
    // Give the follower several polls to (wrongly) return the partial line, then complete it.
    let early = tokio::time::timeout(Duration::from_secs(1), follower.next_line()).await;
    assert!(early.is_err(), "partial line returned: {early:?}");
    append(&path, ", now complete\n");
    assert_eq!(next(&mut follower).await, "no newline yet, now complete");
}

#[tokio::test]
async fn rotation_by_rename_reads_the_old_file_to_its_end_then_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.log");
    append(&path, "before\n");
    let mut follower = Follower::open(&path, false).await.unwrap();
    append(&path, "old 1\n");
    assert_eq!(next(&mut follower).await, "old 1");
    // The daemon writes once more to the renamed file before it reopens the path.
    std::fs::rename(&path, dir.path().join("auth.log.1")).unwrap();
    append(&dir.path().join("auth.log.1"), "old 2 after rename\n");
    append(&path, "new 1\n");
    assert_eq!(next(&mut follower).await, "old 2 after rename");
    assert_eq!(next(&mut follower).await, "new 1");
    append(&path, "new 2\n");
    assert_eq!(next(&mut follower).await, "new 2");
}

#[tokio::test]
async fn rotation_with_a_gap_keeps_following_the_old_file_until_the_new_one_appears() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.log");
    append(&path, "");
    let mut follower = Follower::open(&path, false).await.unwrap();
    let rotated = dir.path().join("auth.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    append(&rotated, "written while the path is missing\n");
    assert_eq!(next(&mut follower).await, "written while the path is missing");
    append(&path, "in the new file\n");
    assert_eq!(next(&mut follower).await, "in the new file");
}

#[tokio::test]
async fn copytruncate_restarts_at_the_beginning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.log");
    append(&path, "a fairly long line that was there before the truncation\n");
    let mut follower = Follower::open(&path, false).await.unwrap();
    append(&path, "another long line before truncation\n");
    assert_eq!(next(&mut follower).await, "another long line before truncation");
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
    // Let the follower see the shorter file before it grows again.
    let quiet = tokio::time::timeout(Duration::from_secs(1), follower.next_line()).await;
    assert!(quiet.is_err(), "nothing to read after truncation: {quiet:?}");
    append(&path, "after\n");
    assert_eq!(next(&mut follower).await, "after");
}

#[tokio::test]
async fn a_missing_file_is_waited_for_and_read_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("later.log");
    let mut follower = Follower::open(&path, false).await.unwrap();
    let writer = {
        let path = path.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(600)).await;
            append(&path, "first\nsecond\n");
        })
    };
    assert_eq!(next(&mut follower).await, "first");
    assert_eq!(next(&mut follower).await, "second");
    writer.await.unwrap();
}

#[tokio::test]
async fn invalid_utf8_is_replaced_not_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.log");
    std::fs::write(&path, b"caf\xe9 line\n").unwrap();
    let mut follower = Follower::open(&path, true).await.unwrap();
    assert_eq!(next(&mut follower).await, "caf\u{fffd} line");
}

#[tokio::test]
async fn an_unreadable_path_is_an_error_at_open() {
    let dir = tempfile::tempdir().unwrap();
    // A directory opens but cannot be read as a file.
    let result = async { Follower::open(dir.path(), true).await?.next_line().await }.await;
    assert!(result.is_err());
}

#[tokio::test]
async fn journal_entries_from_a_json_producer_become_syslog_lines() {
    use palisade::tail::journal::JournalFollower;
    // Any process printing journalctl's JSON shape will do; `sh` stands in for journalctl here
    // because the test machine has no running journald.
    let mut command = tokio::process::Command::new("sh");
    command.arg("-c").arg(concat!(
        r#"echo '{"SYSLOG_IDENTIFIER":"sshd","_PID":"7","MESSAGE":"Invalid user x from 192.0.2.9 port 22"}';"#,
        r#"echo 'garbage';"#,
        r#"echo '{"_COMM":"cron","MESSAGE":"tick"}'"#
    ));
    let mut journal = JournalFollower::from_command(command).unwrap();
    let mut next = async || tokio::time::timeout(PATIENCE, journal.next_line()).await.expect("within the timeout");
    assert_eq!(next().await.unwrap(), "sshd[7]: Invalid user x from 192.0.2.9 port 22");
    assert_eq!(next().await.unwrap(), "cron: tick");
    let end = next().await.unwrap_err();
    assert_eq!(end.kind(), std::io::ErrorKind::UnexpectedEof);
}
