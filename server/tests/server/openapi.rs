//! The committed `openapi/openapi.json` is the wire contract: this test fails when the code and
//! the file drift apart. Regenerate with `cargo run -p palisade-server -- openapi > openapi/openapi.json`.

#[test]
fn committed_openapi_document_matches_the_code() {
    let generated = palisade_server::http::openapi().to_pretty_json().expect("the document serialises");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json");
    let committed = std::fs::read_to_string(path).expect("openapi/openapi.json exists");
    assert!(
        committed.trim_end() == generated.trim_end(),
        "openapi/openapi.json is out of date: run `cargo run -p palisade-server -- openapi > openapi/openapi.json`"
    );
}

#[test]
fn every_crowdsec_path_is_served_under_v2_and_v3() {
    let doc = palisade_server::http::openapi();
    for path in ["/watchers", "/watchers/login", "/watchers/enroll", "/signals", "/metrics", "/decisions/stream"] {
        for version in ["/v2", "/v3"] {
            let full = format!("{version}{path}");
            assert!(doc.paths.paths.contains_key(&full), "{full} missing from the OpenAPI document");
        }
    }
}
