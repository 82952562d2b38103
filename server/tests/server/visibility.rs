//! Who may read an operator-managed list: `public` (every machine), `subscribers` (the machines
//! subscribed to it; the default) or `operator` (no machine). A list a machine may not read does
//! not exist for it: 404 as for an unknown name (never 403), absent from the listing, and not on
//! its streams.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::common::{apps, request};

fn names(listing: &serde_json::Value) -> Vec<String> {
    listing.as_array().expect("an array").iter().map(|l| l["name"].as_str().expect("a name").to_string()).collect()
}

#[tokio::test]
async fn a_list_is_read_only_by_the_machines_its_visibility_allows() {
    for app in apps().await {
        let label = app.label;
        let admin = app.admin_token().await;
        let created = app
            .post(
                "/v1/admin/blocklists",
                Some(&admin),
                &json!({"name": "partners", "kind": "allow", "description": "never block"}),
            )
            .await
            .expect_ok(StatusCode::CREATED);
        assert_eq!(created["visibility"], "subscribers", "{label}: safe by default");
        app.post("/v1/admin/blocklists/partners/entries", Some(&admin), &json!({"add": ["81.2.69.160"]}))
            .await
            .expect_ok(StatusCode::OK);
        let (subscriber, outsider) = (app.machine("subscriber-01").await, app.machine("outsider-01").await);
        let subscribe =
            request(Method::PUT, "/v1/admin/blocklists/partners/subscribers/subscriber-01", Some(&admin), &[], Body::empty());
        assert!(app.send(subscribe).await.status.is_success(), "{label}: subscribed");

        let unknown = app.get("/v1/blocklists/no-such-list", Some(&outsider.token)).await;
        let hidden = app.get("/v1/blocklists/partners", Some(&outsider.token)).await;
        let hidden_body = hidden.expect_error(StatusCode::NOT_FOUND, "not_found");
        let unknown_body = unknown.expect_error(StatusCode::NOT_FOUND, "not_found");
        assert_eq!(
            hidden_body["message"].as_str().map(|m| m.replace("partners", "<name>")),
            unknown_body["message"].as_str().map(|m| m.replace("no-such-list", "<name>")),
            "{label}: hidden and unknown lists answer alike"
        );
        let listing = app.get("/v1/blocklists", Some(&outsider.token)).await.expect_ok(StatusCode::OK);
        assert_eq!(names(&listing), ["community"], "{label}: absent from the listing");

        let read = app.get("/v1/blocklists/partners", Some(&subscriber.token)).await;
        assert_eq!(read.status, StatusCode::OK, "{label}: {}", read.text());
        assert!(read.text().contains("81.2.69.160"), "{label}");
        let listing = app.get("/v1/blocklists", Some(&subscriber.token)).await.expect_ok(StatusCode::OK);
        assert_eq!(names(&listing), ["community", "partners"], "{label}");

        let public = app.send(request(
            Method::PATCH,
            "/v1/admin/blocklists/partners",
            Some(&admin),
            &[],
            Body::from(json!({"visibility": "public"}).to_string()),
        ));
        assert_eq!(public.await.expect_ok(StatusCode::OK)["visibility"], "public", "{label}");
        assert_eq!(app.get("/v1/blocklists/partners", Some(&outsider.token)).await.status, StatusCode::OK, "{label}: public");

        let operator = app.send(request(
            Method::PATCH,
            "/v1/admin/blocklists/partners",
            Some(&admin),
            &[],
            Body::from(json!({"visibility": "operator"}).to_string()),
        ));
        assert_eq!(operator.await.expect_ok(StatusCode::OK)["visibility"], "operator", "{label}");
        let hidden = app.get("/v1/blocklists/partners", Some(&subscriber.token)).await;
        hidden.expect_error(StatusCode::NOT_FOUND, "not_found");
        let listing = app.get("/v1/blocklists", Some(&subscriber.token)).await.expect_ok(StatusCode::OK);
        assert_eq!(names(&listing), ["community"], "{label}: operator only");

        let wrong = app.send(request(
            Method::PATCH,
            "/v1/admin/blocklists/partners",
            Some(&admin),
            &[],
            Body::from(json!({"visibility": "everyone"}).to_string()),
        ));
        wrong.await.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
}

/// Whether a v3 stream answer links the list `private`.
fn linked(stream: &serde_json::Value) -> bool {
    stream["links"]["blocklists"].as_array().is_some_and(|links| links.iter().any(|l| l["name"] == "private"))
}

#[tokio::test]
async fn an_operator_only_block_list_leaves_the_streams_of_its_subscribers() {
    for app in apps().await {
        let label = app.label;
        let admin = app.admin_token().await;
        app.post("/v1/admin/blocklists", Some(&admin), &json!({"name": "private"})).await.expect_ok(StatusCode::CREATED);
        app.post("/v1/admin/blocklists/private/entries", Some(&admin), &json!({"add": ["45.33.32.156"]}))
            .await
            .expect_ok(StatusCode::OK);
        let machine = app.machine("subscriber-01").await;
        let subscribe =
            request(Method::PUT, "/v1/admin/blocklists/private/subscribers/subscriber-01", Some(&admin), &[], Body::empty());
        assert!(app.send(subscribe).await.status.is_success(), "{label}");
        let stream = app.get("/v3/decisions/stream?startup=true", Some(&machine.token)).await.expect_ok(StatusCode::OK);
        assert!(linked(&stream), "{label}: a subscriber receives it: {stream}");
        let operator = app.send(request(
            Method::PATCH,
            "/v1/admin/blocklists/private",
            Some(&admin),
            &[],
            Body::from(json!({"visibility": "operator"}).to_string()),
        ));
        operator.await.expect_ok(StatusCode::OK);
        let other = app.machine("subscriber-02").await;
        let subscribe =
            request(Method::PUT, "/v1/admin/blocklists/private/subscribers/subscriber-02", Some(&admin), &[], Body::empty());
        assert!(app.send(subscribe).await.status.is_success(), "{label}");
        for token in [&machine.token, &other.token] {
            let stream = app.get("/v3/decisions/stream?startup=true", Some(token)).await.expect_ok(StatusCode::OK);
            assert!(!linked(&stream), "{label}: operator only: {stream}");
            let v2 = app.get("/v2/decisions/stream?startup=true", Some(token)).await.expect_ok(StatusCode::OK);
            assert!(!v2.to_string().contains("45.33.32.156"), "{label}: operator only: {v2}");
        }
    }
}
