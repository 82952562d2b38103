//! Enrichment of addresses with AS number/name and country from MaxMind-format `.mmdb` files
//! (GeoLite2, DB-IP, ip-location-db). Without configured files every field is `None`. The files
//! are read once at start-up into memory; lookups are lock-free.

use std::net::IpAddr;
use std::path::Path;

use anyhow::Context;
use maxminddb::{Reader, geoip2};
use serde::Deserialize;

use crate::store::Enrichment;

/// Open databases.
#[derive(Default)]
pub struct Enricher {
    asn: Option<Reader<Vec<u8>>>,
    country: Option<Reader<Vec<u8>>>,
}

/// ip-location-db's country files use a flat `country_code` instead of GeoLite2's nesting.
#[derive(Deserialize)]
struct FlatCountry<'a> {
    country_code: Option<&'a str>,
}

impl Enricher {
    /// Opens the configured files.
    pub fn open(asn: Option<&Path>, country: Option<&Path>) -> anyhow::Result<Self> {
        let read = |path: &Path| Reader::open_readfile(path).with_context(|| format!("cannot open mmdb file {}", path.display()));
        Ok(Enricher { asn: asn.map(read).transpose()?, country: country.map(read).transpose()? })
    }

    /// Whether an AS database is configured.
    pub fn has_asn(&self) -> bool {
        self.asn.is_some()
    }

    /// AS number of an address.
    pub fn asn(&self, ip: IpAddr) -> Option<u32> {
        let record: geoip2::Asn = self.asn.as_ref()?.lookup(ip).ok()??;
        record.autonomous_system_number
    }

    /// Everything known about an address.
    pub fn lookup(&self, ip: IpAddr) -> Enrichment {
        let mut out = Enrichment::default();
        if let Some(reader) = &self.asn
            && let Ok(Some(record)) = reader.lookup::<geoip2::Asn>(ip)
        {
            out.as_number = record.autonomous_system_number;
            out.as_name = record.autonomous_system_organization.map(str::to_string);
        }
        if let Some(reader) = &self.country {
            out.country = match reader.lookup::<geoip2::Country>(ip) {
                Ok(Some(record)) => record.country.and_then(|c| c.iso_code).map(str::to_string),
                _ => None,
            }
            .or_else(|| match reader.lookup::<FlatCountry>(ip) {
                Ok(Some(flat)) => flat.country_code.map(str::to_string),
                _ => None,
            });
        }
        out
    }

    /// The announced range containing an address, from the AS database.
    pub fn range(&self, ip: IpAddr) -> Option<ipnet::IpNet> {
        let (record, prefix) = self.asn.as_ref()?.lookup_prefix::<geoip2::Asn>(ip).ok()?;
        record?;
        ipnet::IpNet::new(ip, u8::try_from(prefix).ok()?).ok().map(|net| net.trunc())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::mmdb;

    #[test]
    fn without_databases_every_field_is_none() {
        let enricher = Enricher::default();
        assert_eq!(enricher.lookup("45.33.32.156".parse().unwrap()), Enrichment::default());
        assert_eq!(enricher.asn("45.33.32.156".parse().unwrap()), None);
    }

    #[test]
    fn reads_asn_and_country_from_mmdb_files() {
        let dir = tempfile::tempdir().unwrap();
        let asn = dir.path().join("asn.mmdb");
        let country = dir.path().join("country.mmdb");
        std::fs::write(
            &asn,
            mmdb::build(
                "GeoLite2-ASN",
                &[
                    ("45.33.32.0/24".parse().unwrap(), mmdb::asn_record(63949, "Akamai Connected Cloud")),
                    ("2a00:1450::/32".parse().unwrap(), mmdb::asn_record(15169, "Google LLC")),
                ],
            ),
        )
        .unwrap();
        std::fs::write(
            &country,
            mmdb::build("GeoLite2-Country", &[("45.33.0.0/16".parse().unwrap(), mmdb::country_record("US"))]),
        )
        .unwrap();
        let enricher = Enricher::open(Some(&asn), Some(&country)).unwrap();
        let found = enricher.lookup("45.33.32.156".parse().unwrap());
        assert_eq!(found.as_number, Some(63949));
        assert_eq!(found.as_name.as_deref(), Some("Akamai Connected Cloud"));
        assert_eq!(found.country.as_deref(), Some("US"));
        assert_eq!(enricher.asn("2a00:1450:4001::1".parse().unwrap()), Some(15169));
        assert_eq!(enricher.lookup("8.8.8.8".parse().unwrap()), Enrichment::default());
    }

    #[test]
    fn a_missing_or_corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.mmdb");
        assert!(Enricher::open(Some(&missing), None).err().unwrap().to_string().contains("nope.mmdb"));
        let corrupt = dir.path().join("corrupt.mmdb");
        std::fs::write(&corrupt, b"not a database").unwrap();
        assert!(Enricher::open(None, Some(&corrupt)).is_err());
    }
}
