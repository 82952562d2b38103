//! Which address a request comes from when the server sits behind reverse proxies: pure, over
//! the TCP peer, the forwarding headers and the operator's `trusted_proxies`. A machine's origin
//! decides how its reports are clustered, so a client must never choose it: the headers are read
//! only when the peer is a trusted proxy, and then only the hops those proxies appended count.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

use crate::domain::net::{canonical_ip, parse_ip};

/// The client's address: the peer itself unless it is a trusted proxy; then the rightmost hop of
/// `X-Forwarded-For` (all such headers, in order) that is not a trusted proxy, or, without that
/// header, of `Forwarded: for=`. A malformed or obfuscated hop where the client should be, or a
/// header that is not text, gives the peer: never a guess, never an error.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical_ip(peer);
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let hops = if headers.contains_key("x-forwarded-for") {
        forwarded_for_hops(headers)
    } else if headers.contains_key("forwarded") {
        forwarded_hops(headers)
    } else {
        return peer;
    };
    let Some(hops) = hops else { return peer };
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) if is_trusted(*ip, trusted) => client = *ip,
            Some(ip) => return *ip,
            None => return peer,
        }
    }
    // Every hop is a trusted proxy: the leftmost one is the farthest known sender.
    client
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// `X-Forwarded-For` hops, left to right (`None` for an entry that is not an address).
fn forwarded_for_hops(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let text = value.to_str().ok()?;
        for entry in text.split(',') {
            hops.push(parse_hop(entry.trim()));
        }
    }
    Some(hops)
}

/// `Forwarded` (RFC 7239) `for=` hops, left to right.
fn forwarded_hops(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    for value in headers.get_all("forwarded") {
        let text = value.to_str().ok()?;
        for element in text.split(',') {
            let node = element.split(';').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                key.trim().eq_ignore_ascii_case("for").then(|| value.trim())
            });
            // An element without `for=` names no hop we can check: treat it as malformed.
            hops.push(node.and_then(|n| parse_hop(n.trim_matches('"'))));
        }
    }
    Some(hops)
}

/// One hop: an address, optionally with a port (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn parse_hop(text: &str) -> Option<IpAddr> {
    if let Some(ip) = parse_ip(text) {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (addr, port) = rest.split_once(']')?;
        if port.is_empty() || port.strip_prefix(':').is_some_and(|p| p.parse::<u16>().is_ok()) {
            return parse_ip(addr);
        }
        return None;
    }
    let (addr, port) = text.rsplit_once(':')?;
    if addr.contains(':') || port.parse::<u16>().is_err() {
        return None;
    }
    parse_ip(addr).filter(IpAddr::is_ipv4)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).expect("header value"));
        }
        map
    }

    fn lb() -> Vec<IpNet> {
        vec!["10.0.0.0/24".parse().expect("net"), "2001:db8:ffff::/48".parse().expect("net")]
    }

    #[test]
    fn without_trusted_proxies_the_headers_are_ignored() {
        let spoof = headers(&[("x-forwarded-for", "203.0.113.9"), ("forwarded", "for=203.0.113.9")]);
        assert_eq!(client_ip(ip("198.51.100.7"), &spoof, &[]), ip("198.51.100.7"));
    }

    #[test]
    fn an_untrusted_peer_sending_x_forwarded_for_is_taken_as_itself() {
        let spoof = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(client_ip(ip("198.51.100.7"), &spoof, &lb()), ip("198.51.100.7"));
    }

    #[test]
    fn behind_a_trusted_proxy_the_rightmost_untrusted_hop_is_the_client() {
        // The client sent a forged entry first; the proxy appended the real peer.
        let forged = headers(&[("x-forwarded-for", "203.0.113.9, 198.51.100.7")]);
        assert_eq!(client_ip(ip("10.0.0.5"), &forged, &lb()), ip("198.51.100.7"));
    }

    #[test]
    fn a_chain_of_trusted_proxies_is_skipped() {
        let chain = headers(&[("x-forwarded-for", "203.0.113.9, 198.51.100.7, 10.0.0.8"), ("x-forwarded-for", "10.0.0.9")]);
        assert_eq!(client_ip(ip("10.0.0.5"), &chain, &lb()), ip("198.51.100.7"));
        let all_trusted = headers(&[("x-forwarded-for", "10.0.0.7, 10.0.0.8")]);
        assert_eq!(client_ip(ip("10.0.0.5"), &all_trusted, &lb()), ip("10.0.0.7"));
    }

    #[test]
    fn forwarded_for_is_read_when_there_is_no_x_forwarded_for() {
        let forwarded = headers(&[("forwarded", r#"for=203.0.113.9;proto=http, for="[2001:db8::1]:4711";by=10.0.0.5"#)]);
        assert_eq!(client_ip(ip("10.0.0.5"), &forwarded, &lb()), ip("2001:db8::1"));
        let with_port = headers(&[("forwarded", "For=198.51.100.7:8080")]);
        assert_eq!(client_ip(ip("::ffff:10.0.0.5"), &with_port, &lb()), ip("198.51.100.7"));
    }

    #[test]
    fn malformed_headers_fall_back_to_the_peer() {
        for bad in ["", "garbage", "198.51.100.7, not-an-ip", "unknown", "1.2.3.4:99999", "[2001:db8::1", "1.2.3.4/24"] {
            let h = headers(&[("x-forwarded-for", bad)]);
            assert_eq!(client_ip(ip("10.0.0.5"), &h, &lb()), ip("10.0.0.5"), "{bad:?}");
        }
        for bad in ["for=unknown", "for=_hidden", "proto=https", "for="] {
            let h = headers(&[("forwarded", bad)]);
            assert_eq!(client_ip(ip("10.0.0.5"), &h, &lb()), ip("10.0.0.5"), "{bad:?}");
        }
        let mut binary = HeaderMap::new();
        binary.insert("x-forwarded-for", HeaderValue::from_bytes(b"\xff\xfe").expect("opaque bytes"));
        assert_eq!(client_ip(ip("10.0.0.5"), &binary, &lb()), ip("10.0.0.5"));
    }

    #[test]
    fn a_malformed_entry_left_of_the_client_does_not_matter() {
        let h = headers(&[("x-forwarded-for", "garbage, 198.51.100.7")]);
        assert_eq!(client_ip(ip("10.0.0.5"), &h, &lb()), ip("198.51.100.7"));
    }

    /// (signal value, peer, extra headers, origin the server must record)
    type Case = (&'static str, &'static str, &'static [(&'static str, &'static [u8])], &'static str);

    /// The whole application in-process, its peer fixed at `peer`, trusting 10.0.0.0/24.
    fn app(state: &crate::state::AppState, peer: &str) -> axum::Router {
        let peer: std::net::SocketAddr = format!("{peer}:40000").parse().expect("socket address");
        crate::http::router(state.clone()).layer(axum::extract::connect_info::MockConnectInfo(peer))
    }

    async fn call(app: axum::Router, request: axum::http::Request<axum::body::Body>) -> (u16, serde_json::Value) {
        use tower::ServiceExt;
        let response = app.oneshot(request).await.expect("infallible");
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
        (status, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
    }

    fn post(
        path: &str,
        token: Option<&str>,
        headers: &[(&'static str, &[u8])],
        body: serde_json::Value,
    ) -> axum::http::Request<axum::body::Body> {
        let mut request = axum::http::Request::post(path).header("content-type", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, HeaderValue::from_bytes(value).expect("header bytes"));
        }
        request.body(axum::body::Body::from(body.to_string())).expect("request")
    }

    #[tokio::test]
    async fn pushed_signals_record_the_client_only_a_trusted_proxy_names_and_bad_headers_never_fail() {
        let db = crate::testing::TestDb::sqlite();
        let store = crate::store::open(&db.url).await.expect("open");
        store.migrate().await.expect("migrate");
        let config = crate::config::Config { trusted_proxies: lb(), ..crate::config::Config::default() };
        let parts = crate::state::Parts {
            store: store.clone(),
            secret: b"forwarded-test-secret-0123456789abcdef".to_vec(),
            enricher: crate::enrich::Enricher::default(),
            metrics: crate::telemetry::metrics_handle(),
            limiter: crate::limits::Limiter::local(),
            bus: crate::bus::ChangeBus::disabled(),
            bench_static: None,
        };
        let state = crate::state::AppState::from_config(&config, parts);
        let credentials = serde_json::json!({"machine_id": "watcher-forwarded", "password": "a-password-of-some-length"});
        let (status, _) = call(app(&state, "198.51.100.7"), post("/v2/watchers", None, &[], credentials.clone())).await;
        assert_eq!(status, 200);
        let mut login = credentials;
        login["scenarios"] = serde_json::json!([]);
        let (status, body) = call(app(&state, "198.51.100.7"), post("/v2/watchers/login", None, &[], login)).await;
        assert_eq!(status, 200, "{body}");
        let token = body["token"].as_str().expect("token").to_string();

        let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).expect("formats");
        let cases: [Case; 6] = [
            ("45.33.40.1", "10.0.0.5", &[("x-forwarded-for", b"203.0.113.9, 198.51.100.20")], "198.51.100.20"),
            ("45.33.40.2", "198.51.100.7", &[("x-forwarded-for", b"203.0.113.9")], "198.51.100.7"),
            ("45.33.40.3", "10.0.0.5", &[("x-forwarded-for", b"203.0.113.9, 198.51.100.30, 10.0.0.8")], "198.51.100.30"),
            ("45.33.40.4", "10.0.0.5", &[("x-forwarded-for", b"garbage")], "10.0.0.5"),
            ("45.33.40.5", "10.0.0.5", &[("x-forwarded-for", b"\xff\xfe")], "10.0.0.5"),
            ("45.33.40.6", "10.0.0.5", &[("forwarded", b"for=\"[2001:db8::7]:443\";proto=https")], "2001:db8::7"),
        ];
        for (target, peer, headers, _) in &cases {
            let item = serde_json::json!([{"scenario": "crowdsecurity/ssh-bf", "scenario_trust": "certified",
                "source": {"scope": "Ip", "value": target}, "start_at": now, "stop_at": now}]);
            let (status, body) = call(app(&state, peer), post("/v2/signals", Some(&token), headers, item)).await;
            assert_eq!(status, 200, "{target}: {body}");
        }
        let stored = store.list_signals(&crate::store::SignalFilter { limit: 100, ..Default::default() }).await.expect("list");
        for (target, _, _, origin) in &cases {
            let signal = stored.iter().find(|s| s.value == *target).expect("stored");
            assert_eq!(signal.origin_ip.to_string(), *origin, "{target}");
        }
    }
}
