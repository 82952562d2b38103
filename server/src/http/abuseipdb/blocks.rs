//! `GET /api/v2/check-block`: the reported addresses of a small IPv4 network (/24 or smaller),
//! each with its report count, latest report and score. The addresses are enumerated (at most
//! 256) and looked up by the signal store's value index, so a check never scans the table.

use std::net::{IpAddr, Ipv4Addr};

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use ipnet::{IpNet, Ipv4Net};
use palisade_api::abuseipdb::{AbuseErrors, BlockAddress, CheckBlockData, CheckBlockResponse};
use time::Duration;
use tracing::instrument;

use super::dialect::{Failure, Params, admit, answer, confidence_score, invalid, now};
use crate::domain::abuseipdb::truncate;
use crate::domain::special::special_purpose;
use crate::domain::time::rfc3339;
use crate::http::extract::ClientAddr;
use crate::state::AppState;

/// Shortest IPv4 prefix accepted (AbuseIPDB's own limit for its free plans).
pub const MIN_PREFIX: u8 = 24;

/// The reported addresses of `network` (IPv4, /24 to /32) within `maxAgeInDays` (1–365,
/// default 30). IPv6 networks are refused (422): they cannot be enumerated. Costs one lookup.
#[utoipa::path(get, path = "/check-block", tag = "abuseipdb", security(("abuseipdb_key" = [])),
    params(("network" = String, Query, description = "IPv4 CIDR, /24 to /32"),
           ("maxAgeInDays" = Option<u16>, Query, description = "1 to 365, default 30"),
           ("key" = Option<String>, Query, description = "the API key, when not sent in the `Key` header")),
    responses((status = 200, body = CheckBlockResponse),
        (status = 401, description = "missing, unknown or revoked key", body = AbuseErrors),
        (status = 422, description = "an invalid parameter", body = AbuseErrors),
        (status = 429, description = "over the tier's quota; see `Retry-After`", body = AbuseErrors)))]
#[instrument(skip_all)]
pub async fn check_block(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    params: Params,
) -> Response {
    let (_, (network, max_age), decision) = match admit(&state, client, &headers, &params, |params, _| parse_block(params)).await
    {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    answer(block(&state, network, max_age).await.map(|data| Json(CheckBlockResponse { data }).into_response()), &decision)
}

fn parse_block(params: &Params) -> Result<(Ipv4Net, i64), Failure> {
    let text = params.get("network").ok_or_else(|| invalid("network", "The network field is required."))?;
    let network = text
        .parse::<IpNet>()
        .map_err(|_| invalid("network", format!("The network {:?} must be a CIDR such as 192.0.2.0/24.", truncate(text, 64))))?;
    let IpNet::V4(network) = network.trunc() else {
        return Err(invalid("network", "IPv6 networks are not supported; check addresses one by one."));
    };
    if network.prefix_len() < MIN_PREFIX {
        return Err(invalid("network", format!("The network must be a /{MIN_PREFIX} or smaller.")));
    }
    let max_age = params.int("maxAgeInDays", 1..=365, Some(30))?.unwrap_or(30);
    Ok((network, max_age))
}

/// First and last host address and the number of hosts, as AbuseIPDB counts them (a /31 and a
/// /32 have no network or broadcast address to leave out).
fn hosts(network: Ipv4Net) -> (Ipv4Addr, Ipv4Addr, u64) {
    let (first, last) = (u32::from(network.network()), u32::from(network.broadcast()));
    if network.prefix_len() >= 31 {
        (Ipv4Addr::from(first), Ipv4Addr::from(last), u64::from(last - first) + 1)
    } else {
        (Ipv4Addr::from(first + 1), Ipv4Addr::from(last - 1), u64::from(last - first) - 1)
    }
}

async fn block(state: &AppState, network: Ipv4Net, max_age: i64) -> Result<CheckBlockData, Failure> {
    let now = now(state);
    let values: Vec<String> = network
        .hosts()
        .map(|ip| ip.to_string())
        .chain(
            // `hosts()` leaves the network and broadcast addresses out; reports of them count too.
            [network.network(), network.broadcast()].into_iter().filter(|_| network.prefix_len() < 31).map(|ip| ip.to_string()),
        )
        .collect();
    let mut counts = state.store.report_counts(&values, now - Duration::days(max_age)).await?;
    counts.sort_by_key(|c| c.value.parse::<Ipv4Addr>().map(u32::from).unwrap_or(u32::MAX));
    let mut reported = Vec::with_capacity(counts.len());
    for count in counts {
        let Ok(ip) = count.value.parse::<IpAddr>() else { continue };
        let found = state.lookup.find(ip, now.unix_timestamp()).await?;
        reported.push(BlockAddress {
            ip_address: count.value,
            num_reports: count.reports,
            most_recent_report: rfc3339(count.last_reported_at),
            abuse_confidence_score: confidence_score(&found.reputation),
            country_code: found.enrichment.country,
        });
    }
    let (min, max, possible) = hosts(network);
    Ok(CheckBlockData {
        network_address: network.network().to_string(),
        netmask: network.netmask().to_string(),
        min_address: min.to_string(),
        max_address: max.to_string(),
        num_possible_hosts: possible,
        address_space_desc: special_purpose(IpAddr::V4(network.network())).unwrap_or("Internet").to_string(),
        reported_address: reported,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ranges_are_counted_as_abuseipdb_counts_them() {
        let net = |text: &str| text.parse::<Ipv4Net>().expect("a network");
        assert_eq!(hosts(net("45.33.32.0/24")), ("45.33.32.1".parse().unwrap(), "45.33.32.254".parse().unwrap(), 254));
        assert_eq!(hosts(net("45.33.32.8/30")), ("45.33.32.9".parse().unwrap(), "45.33.32.10".parse().unwrap(), 2));
        assert_eq!(hosts(net("45.33.32.8/31")), ("45.33.32.8".parse().unwrap(), "45.33.32.9".parse().unwrap(), 2));
        assert_eq!(hosts(net("45.33.32.9/32")), ("45.33.32.9".parse().unwrap(), "45.33.32.9".parse().unwrap(), 1));
    }
}
