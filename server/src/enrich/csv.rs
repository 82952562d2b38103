//! ip-location-db CSV range files: `ip_range_start,ip_range_end,<value columns…>`, one range per
//! line (`asn`: number and organisation; `country`: ISO code). Files are read once into sorted
//! tables of non-overlapping ranges, one per address family, searched by binary search.
//! Format: <https://github.com/sapics/ip-location-db> (CC BY 4.0 data; Palisade ships none).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use ipnet::IpNet;

/// Ranges of one file, each with its value.
#[derive(Debug)]
pub struct RangeTable<T> {
    v4: Vec<(u128, u128, T)>,
    v6: Vec<(u128, u128, T)>,
}

/// An AS: number and organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsRecord {
    /// AS number.
    pub number: u32,
    /// Registered organisation, when the file has it.
    pub name: Option<Arc<str>>,
}

impl<T> RangeTable<T> {
    fn new(mut v4: Vec<(u128, u128, T)>, mut v6: Vec<(u128, u128, T)>) -> Self {
        v4.sort_unstable_by_key(|r| r.0);
        v6.sort_unstable_by_key(|r| r.0);
        RangeTable { v4, v6 }
    }

    /// The range containing `ip` and its value.
    pub fn find(&self, ip: IpAddr) -> Option<(u128, u128, &T)> {
        let (table, key) = family(ip);
        let table = if table { &self.v4 } else { &self.v6 };
        let at = table.partition_point(|r| r.0 <= key).checked_sub(1)?;
        let (start, end, value) = &table[at];
        (key <= *end).then_some((*start, *end, value))
    }

    /// The largest CIDR around `ip` that lies inside its range (ranges need not be CIDR-aligned).
    pub fn prefix(&self, ip: IpAddr) -> Option<IpNet> {
        let (start, end, _) = self.find(ip)?;
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        (0..=bits).find_map(|len| {
            let net = IpNet::new(ip, len).ok()?.trunc();
            let (lo, hi) = (family(net.network()).1, family(net.broadcast()).1);
            (lo >= start && hi <= end).then_some(net)
        })
    }

    /// Number of ranges.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Whether the file held no range.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// (is IPv4, address as an integer).
fn family(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(v4) => (true, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (false, u128::from(v6)),
    }
}

/// Reads an ip-location-db ASN file (`start,end,number,organisation`).
pub fn read_asn(path: &Path) -> anyhow::Result<RangeTable<AsRecord>> {
    let mut names: HashMap<String, Arc<str>> = HashMap::new();
    read(path, 3, |fields| {
        let number = fields[0].parse::<u32>().map_err(|_| format!("AS number {:?} is not a number", fields[0]))?;
        let name = fields
            .get(1)
            .filter(|n| !n.is_empty())
            .map(|n| names.entry(n.to_string()).or_insert_with(|| Arc::from(n.replace("\"\"", "\""))).clone());
        Ok(AsRecord { number, name })
    })
}

/// Reads an ip-location-db country file (`start,end,country_code`).
pub fn read_country(path: &Path) -> anyhow::Result<RangeTable<[u8; 2]>> {
    read(path, 3, |fields| match fields[0].as_bytes() {
        [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => Ok([a.to_ascii_uppercase(), b.to_ascii_uppercase()]),
        _ => Err(format!("country code {:?} is not two letters", fields[0])),
    })
}

/// Parses every line into (start, end, value); `min_fields` counts the two addresses. A header
/// line (first field not an address) is skipped; anything else malformed stops with its line number.
fn read<T>(path: &Path, min_fields: usize, mut value: impl FnMut(&[&str]) -> Result<T, String>) -> anyhow::Result<RangeTable<T>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read CSV file {}", path.display()))?;
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    let mut fields = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        split_csv(line, &mut fields);
        let at = || format!("{} line {}", path.display(), index + 1);
        let addresses = (fields[0].parse::<IpAddr>(), fields.get(1).map(|f| f.parse::<IpAddr>()));
        let (Ok(start), Some(Ok(end))) = addresses else {
            if index == 0 {
                continue; // header
            }
            bail!("{}: expected `start,end,…` with two IP addresses", at());
        };
        if fields.len() < min_fields {
            bail!("{}: expected at least {min_fields} fields, found {}", at(), fields.len());
        }
        let ((start_v4, start), (end_v4, end)) = (family(start), family(end));
        if start_v4 != end_v4 || start > end {
            bail!("{}: the range does not run from a lower to a higher address of one family", at());
        }
        let record = value(&fields[2..]).map_err(|why| anyhow::anyhow!("{}: {why}", at()))?;
        if start_v4 { &mut v4 } else { &mut v6 }.push((start, end, record));
    }
    let table = RangeTable::new(v4, v6);
    if table.is_empty() {
        bail!("{} holds no address range", path.display());
    }
    Ok(table)
}

/// Splits one CSV line into fields, honouring double quotes (`"Example, Inc."`); a doubled quote
/// inside a quoted field is left doubled for the caller to unescape.
fn split_csv<'a>(line: &'a str, out: &mut Vec<&'a str>) {
    out.clear();
    let mut rest = line;
    loop {
        let field;
        if let Some(quoted) = rest.strip_prefix('"') {
            // Find the closing quote that is not doubled.
            let mut end = 0;
            let bytes = quoted.as_bytes();
            while end < bytes.len() {
                if bytes[end] == b'"' {
                    if bytes.get(end + 1) == Some(&b'"') {
                        end += 2;
                        continue;
                    }
                    break;
                }
                end += 1;
            }
            field = &quoted[..end.min(quoted.len())];
            rest = quoted.get(end + 1..).unwrap_or("");
            rest = rest.find(',').map_or("", |comma| &rest[comma..]);
        } else {
            let comma = rest.find(',').unwrap_or(rest.len());
            field = &rest[..comma];
            rest = &rest[comma..];
        }
        out.push(field.trim());
        match rest.strip_prefix(',') {
            Some(next) => rest = next,
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.csv");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn asn_ranges_are_found_by_address_in_both_families() {
        let (_dir, path) = write(
            "1.0.0.0,1.0.0.255,13335,\"Cloudflare, Inc.\"\n\
             45.33.32.0,45.33.63.255,63949,Akamai Connected Cloud\n\
             2a00:1450::,2a00:1450:ffff:ffff:ffff:ffff:ffff:ffff,15169,Google LLC\n",
        );
        let table = read_asn(&path).unwrap();
        assert_eq!(table.len(), 3);
        let found = |ip: &str| table.find(ip.parse().unwrap()).map(|(_, _, r)| r.clone());
        assert_eq!(found("1.0.0.1").unwrap().name.as_deref(), Some("Cloudflare, Inc."));
        assert_eq!(found("45.33.40.1").unwrap().number, 63949);
        assert_eq!(found("2a00:1450:4001::1").unwrap().number, 15169);
        assert_eq!(found("1.0.1.0"), None);
        assert_eq!(found("0.255.255.255"), None);
        assert_eq!(found("2a01::1"), None);
    }

    #[test]
    fn prefix_is_the_largest_cidr_inside_an_unaligned_range() {
        let (_dir, path) = write("45.33.32.0,45.33.63.255,63949,Akamai\n10.0.0.0,10.0.0.5,1,x\n");
        let table = read_asn(&path).unwrap();
        assert_eq!(table.prefix("45.33.40.1".parse().unwrap()), Some("45.33.32.0/19".parse().unwrap()));
        assert_eq!(table.prefix("10.0.0.5".parse().unwrap()), Some("10.0.0.4/31".parse().unwrap()));
    }

    #[test]
    fn country_files_with_a_header_are_read_and_codes_uppercased() {
        let (_dir, path) = write("ip_range_start,ip_range_end,country_code\n45.33.0.0,45.33.255.255,us\n");
        let table = read_country(&path).unwrap();
        assert_eq!(table.find("45.33.1.1".parse().unwrap()).map(|r| *r.2), Some(*b"US"));
    }

    #[test]
    fn malformed_files_are_refused_with_the_line() {
        for (text, says) in [
            ("1.0.0.0,1.0.0.255,13335\nnot,an,address\n", "line 2"),
            ("1.0.0.255,1.0.0.0,13335\n", "lower to a higher"),
            ("1.0.0.0,::1,13335\n", "one family"),
            ("1.0.0.0,1.0.0.255,AS13335\n", "not a number"),
            ("1.0.0.0,1.0.0.255\n", "at least 3 fields"),
            ("# nothing\n\n", "no address range"),
        ] {
            let (_dir, path) = write(text);
            let error = format!("{:#}", read_asn(&path).unwrap_err());
            assert!(error.contains(says), "{text:?}: {error}");
        }
        let (_dir, path) = write("1.0.0.0,1.0.0.255,USA\n");
        assert!(format!("{:#}", read_country(&path).unwrap_err()).contains("two letters"));
    }

    #[test]
    fn quoted_fields_split_like_csv() {
        let mut out = Vec::new();
        split_csv(r#"a,"b, c",d,"e ""q""",,"#, &mut out);
        assert_eq!(out, ["a", "b, c", "d", r#"e ""q"""#, "", ""]);
    }
}
