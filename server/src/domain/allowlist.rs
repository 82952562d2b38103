//! Parsing published provider range files into never-block ranges: JSON (Google's and Bing's
//! crawler files, Google's `goog.json`, AWS `ip-ranges.json`, Cloudflare's API answer — any JSON:
//! every string that is an address or CIDR counts), CSV (every field that is one), and plain
//! lists (one per line, `#` comments). Formats are told apart by content, not by file name.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

use super::net::canonical_ip;

/// Why a file could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AllowlistError {
    /// Nothing in the file is a range.
    #[error("no IP address or CIDR range found in the file")]
    Empty,
    /// The file looks like JSON but is not valid JSON.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// A range so broad it would disable listing for a large part of the Internet.
    #[error("{0} is too broad for an allowlist (at most /8 for IPv4, /16 for IPv6)")]
    TooBroad(IpNet),
}

/// Extracts the ranges of a provider file (deduplicated, in file order).
pub fn parse_ranges(text: &str) -> Result<Vec<IpNet>, AllowlistError> {
    let mut found = Vec::new();
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let value: Value = serde_json::from_str(text).map_err(|e| AllowlistError::Json(e.to_string()))?;
        collect_json(&value, &mut found);
    } else {
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            for field in line.split([',', ';', ' ', '\t']) {
                if let Some(net) = parse_one(field) {
                    found.push(net);
                }
            }
        }
    }
    let mut unique = Vec::with_capacity(found.len());
    for net in found {
        let min = if net.addr().is_ipv4() { 8 } else { 16 };
        if net.prefix_len() < min {
            return Err(AllowlistError::TooBroad(net));
        }
        if !unique.contains(&net) {
            unique.push(net);
        }
    }
    if unique.is_empty() { Err(AllowlistError::Empty) } else { Ok(unique) }
}

fn collect_json(value: &Value, out: &mut Vec<IpNet>) {
    match value {
        Value::String(s) => out.extend(parse_one(s)),
        Value::Array(items) => items.iter().for_each(|v| collect_json(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_json(v, out)),
        _ => {}
    }
}

fn parse_one(field: &str) -> Option<IpNet> {
    let field = field.trim().trim_matches('"');
    if field.is_empty() {
        return None;
    }
    if let Ok(net) = field.parse::<IpNet>() {
        return Some(match (net.addr(), canonical_ip(net.addr())) {
            (IpAddr::V6(_), v4 @ IpAddr::V4(_)) if net.prefix_len() >= 96 => IpNet::new(v4, net.prefix_len() - 96).ok()?,
            _ => net,
        })
        .map(|n| n.trunc());
    }
    field.parse::<IpAddr>().ok().map(|ip| IpNet::from(canonical_ip(ip)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_crawler_json() {
        let text = r#"{"creationTime":"2026-11-01T00:00:00","prefixes":[{"ipv6Prefix":"2001:4860:4801:10::/64"},{"ipv4Prefix":"66.249.64.0/27"}]}"#;
        assert_eq!(
            parse_ranges(text).unwrap(),
            vec!["2001:4860:4801:10::/64".parse::<IpNet>().unwrap(), "66.249.64.0/27".parse().unwrap()]
        );
    }

    #[test]
    fn aws_style_json_ignores_non_address_strings() {
        let text = r#"{"syncToken":"1","prefixes":[{"ip_prefix":"3.5.140.0/22","region":"ap-northeast-2","service":"AMAZON"}],
                      "ipv6_prefixes":[{"ipv6_prefix":"2600:1f14::/35","region":"us-west-2"}]}"#;
        assert_eq!(parse_ranges(text).unwrap().len(), 2);
    }

    #[test]
    fn csv_and_plain_lists() {
        let csv = "network,provider\n1.1.1.0/24,cloudflare\n1.0.0.0/24,cloudflare\n";
        assert_eq!(parse_ranges(csv).unwrap().len(), 2);
        let plain = "# public resolvers\n8.8.8.8\n8.8.4.4  # google\n2001:4860:4860::8888\n\n9.9.9.9/32\n";
        let ranges = parse_ranges(plain).unwrap();
        assert_eq!(ranges.len(), 4);
        assert_eq!(ranges[0], "8.8.8.8/32".parse::<IpNet>().unwrap());
    }

    #[test]
    fn empty_broken_and_too_broad_files_are_refused() {
        assert_eq!(parse_ranges("hello\nworld\n"), Err(AllowlistError::Empty));
        assert!(matches!(parse_ranges("{ nope"), Err(AllowlistError::Json(_))));
        assert!(matches!(parse_ranges("0.0.0.0/0"), Err(AllowlistError::TooBroad(_))));
    }
}
