//! gzip costs ten times identity or zstd: a full list downloaded by gzip-only clients is
//! compressed once per rendering and kept, not once per download; what the client reads after
//! decoding is the identity rendering, byte for byte.

use std::io::Read;

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use palisade_server::engine::Rule;
use palisade_server::serving::RenderKey;
use palisade_server::serving::render::{Family, Format, Options, Rules};

use crate::common::{apps, commit_lists, listing, request};

#[tokio::test]
async fn a_gzip_download_of_a_full_list_is_compressed_once_and_kept() {
    for app in apps().await {
        let label = app.label;
        let machine = app.machine("firewall-01").await;
        let entries = ["45.33.32.156", "81.2.69.160", "2a01:4f8:c17:b8f::/64"];
        commit_lists(&app, entries.iter().map(|v| listing(v, "crowdsecurity/ssh-bf", Rule::Sensor)).collect()).await;
        let path = "/v1/blocklists/community";
        let identity = app.get(path, Some(&machine.token)).await;
        assert_eq!(identity.status, StatusCode::OK, "{label}: {}", identity.text());
        assert!(!identity.headers.contains_key(header::CONTENT_ENCODING), "{label}");
        let gzip = || app.send(request(Method::GET, path, Some(&machine.token), &[("accept-encoding", "gzip")], Body::empty()));
        let (first, second) = (gzip().await, gzip().await);
        for reply in [&first, &second] {
            assert_eq!(reply.status, StatusCode::OK, "{label}");
            assert_eq!(reply.headers[header::CONTENT_ENCODING], "gzip", "{label}");
            assert_eq!(reply.headers[header::VARY], "accept-encoding", "{label}");
            assert_eq!(reply.headers[header::ETAG], identity.headers[header::ETAG], "{label}: the same rendering");
            let mut decoded = Vec::new();
            flate2::read::GzDecoder::new(&reply.body[..]).read_to_end(&mut decoded).expect("gzip");
            assert_eq!(decoded, identity.body, "{label}: decoded, the identity rendering");
        }
        let served = app.state.distribution.lists.served("community").await.expect("served");
        let options = Options { format: Format::Plain, aggregate: false, family: Family::All, rules: Rules::Drop };
        let key =
            RenderKey { list: "community".into(), seq: served.seq, policy: served.policy, options, cap: usize::MAX, gzip: true };
        let kept = app.state.distribution.lists.cached(&key).expect("the gzip rendering is kept");
        assert_eq!(kept.concat(), first.body, "{label}: served as kept, not encoded again by the layer");
        assert_eq!(second.body, first.body, "{label}: the second download reuses it");
        // zstd stays with the compression layer, which is cheap for it.
        let zstd =
            app.send(request(Method::GET, path, Some(&machine.token), &[("accept-encoding", "zstd, gzip")], Body::empty())).await;
        assert_eq!(zstd.headers[header::CONTENT_ENCODING], "zstd", "{label}");
        assert_eq!(zstd::stream::decode_all(&zstd.body[..]).expect("zstd"), identity.body, "{label}");
    }
}
