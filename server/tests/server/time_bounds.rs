//! Durations and time bounds taken from input are checked at the edge: a lifetime that would
//! carry an entry's expiry past the end of the calendar is a 4xx with a sentence over HTTP, a
//! refused line in an import, and a one-line error with the CLI's usual exit code from
//! `palisade-server admin blocklist add`; never a panic, a 500 or a backtrace.

use crate::common;

use std::process::Command;

use axum::http::StatusCode;
use common::apps;
use serde_json::json;

#[tokio::test]
async fn huge_duration_secs_on_list_entries_is_a_422_with_a_sentence() {
    for app in apps().await {
        let admin = app.admin_token().await;
        app.post("/v1/admin/blocklists", Some(&admin), &json!({"name": "partners"})).await.expect_ok(StatusCode::CREATED);
        for secs in [i64::MAX, 9_000_000_000_000, 10 * 366 * 24 * 3600 + 1, 0, -1] {
            let body = json!({"add": ["45.33.32.156"], "duration_secs": secs});
            let reply = app.post("/v1/admin/blocklists/partners/entries", Some(&admin), &body).await;
            let error = reply.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
            let said = error.to_string();
            assert!(said.contains("duration_secs"), "{}: {secs}: {said}", app.label);
        }
        let longest = json!({"add": ["45.33.32.156"], "duration_secs": 10 * 366 * 24 * 3600});
        let added = app.post("/v1/admin/blocklists/partners/entries", Some(&admin), &longest).await.expect_ok(StatusCode::OK);
        assert_eq!(added["added"], 1, "{}: {added}", app.label);

        let import = "value,remediation,duration_secs\n81.2.69.160,ban,9223372036854775807\n81.2.69.161,ban,3600\n";
        let imported = app
            .post_raw("/v1/admin/blocklists/partners/import", Some(&admin), &[("content-type", "text/csv")], import.into())
            .await
            .expect_ok(StatusCode::OK);
        assert_eq!((imported["added"].as_u64(), imported["rejected"][0]["field"].as_str()), (Some(1), Some("line 2")));
        assert!(imported["rejected"][0]["message"].as_str().is_some_and(|m| m.contains("at most")), "{imported}");
    }
}

#[test]
fn cli_refuses_a_lifetime_past_the_calendar_with_a_sentence_and_no_backtrace() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_palisade-server"))
            .arg("--data-dir")
            .arg(data.path())
            .arg("admin")
            .arg("blocklist")
            .args(args)
            // The embedded database in the temporary directory, whatever the test environment says.
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .env_remove("PALISADE_CONFIG")
            .env("RUST_BACKTRACE", "1")
            .output()
    };
    // Admin commands act on an existing database only: make it as the server would.
    let migrated = Command::new(env!("CARGO_BIN_EXE_palisade-server"))
        .arg("--data-dir")
        .arg(data.path())
        .arg("migrate")
        .env_remove("DATABASE_URL")
        .env_remove("PALISADE_CONFIG")
        .output()?;
    anyhow::ensure!(migrated.status.success(), "migrate: {}", String::from_utf8_lossy(&migrated.stderr));
    let created = run(&["create", "partners"])?;
    anyhow::ensure!(created.status.success(), "create: {}", String::from_utf8_lossy(&created.stderr));
    for expires in ["99999999999999d", "9223372036854775807", "3661d"] {
        let refused = run(&["add", "partners", "45.33.32.156", "--expires", expires])?;
        let stderr = String::from_utf8_lossy(&refused.stderr);
        anyhow::ensure!(refused.status.code() == Some(1), "{expires}: exit {:?}: {stderr}", refused.status);
        anyhow::ensure!(stderr.contains("longer than ten years"), "{expires}: {stderr}");
        anyhow::ensure!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{expires}: {stderr}");
    }
    let file = data.path().join("import.csv");
    std::fs::write(&file, "81.2.69.160,ban,9223372036854775807\n81.2.69.161\n")?;
    let imported = run(&["import", "partners", &file.display().to_string()])?;
    let stderr = String::from_utf8_lossy(&imported.stderr);
    anyhow::ensure!(!stderr.contains("panicked"), "{stderr}");
    anyhow::ensure!(String::from_utf8_lossy(&imported.stdout).contains("1 added"), "{stderr}");
    anyhow::ensure!(stderr.contains("rejected line 1") && stderr.contains("at most"), "{stderr}");
    Ok(())
}
