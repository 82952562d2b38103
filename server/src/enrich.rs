//! Enrichment of addresses with AS number/name and country, from MaxMind-format `.mmdb` files
//! (GeoLite2, DB-IP, ip-location-db) or ip-location-db CSV range files ([`csv`]). Without
//! configured files every field is `None`. The files are read once at start-up into memory;
//! lookups are lock-free.

pub mod csv;

use std::net::IpAddr;
use std::path::Path;

use anyhow::{Context, bail};
use maxminddb::{Reader, geoip2};
use serde::Deserialize;

use crate::config::EnrichConfig;
use crate::store::Enrichment;
use csv::{AsRecord, RangeTable};

/// Open databases.
#[derive(Default)]
pub struct Enricher {
    asn: Option<Source<AsRecord>>,
    country: Option<Source<[u8; 2]>>,
}

/// Where one kind of data comes from.
enum Source<T> {
    Mmdb(Reader<Vec<u8>>),
    Csv(RangeTable<T>),
}

impl<T> Source<T> {
    fn open(
        mmdb: Option<&Path>,
        csv: Option<&Path>,
        kind: &str,
        read: fn(&Path) -> anyhow::Result<RangeTable<T>>,
    ) -> anyhow::Result<Option<Self>> {
        match (mmdb, csv) {
            (Some(_), Some(_)) => bail!("enrich: give either {kind}_mmdb or {kind}_csv, not both"),
            (Some(path), None) => {
                let reader = Reader::open_readfile(path).with_context(|| format!("cannot open mmdb file {}", path.display()))?;
                Ok(Some(Source::Mmdb(reader)))
            }
            (None, Some(path)) => Ok(Some(Source::Csv(read(path)?))),
            (None, None) => Ok(None),
        }
    }
}

/// ip-location-db's country files use a flat `country_code` instead of GeoLite2's nesting.
#[derive(Deserialize)]
struct FlatCountry<'a> {
    country_code: Option<&'a str>,
}

impl Enricher {
    /// Opens the configured files.
    pub fn open(files: &EnrichConfig) -> anyhow::Result<Self> {
        Ok(Enricher {
            asn: Source::open(files.asn_mmdb.as_deref(), files.asn_csv.as_deref(), "asn", csv::read_asn)?,
            country: Source::open(files.country_mmdb.as_deref(), files.country_csv.as_deref(), "country", csv::read_country)?,
        })
    }

    /// Whether an AS database is configured.
    pub fn has_asn(&self) -> bool {
        self.asn.is_some()
    }

    /// AS number of an address.
    pub fn asn(&self, ip: IpAddr) -> Option<u32> {
        match self.asn.as_ref()? {
            Source::Mmdb(reader) => reader.lookup(ip).ok()?.decode::<geoip2::Asn>().ok()??.autonomous_system_number,
            Source::Csv(table) => table.find(ip).map(|(_, _, record)| record.number),
        }
    }

    /// Everything known about an address.
    pub fn lookup(&self, ip: IpAddr) -> Enrichment {
        let mut out = Enrichment::default();
        match &self.asn {
            Some(Source::Mmdb(reader)) => {
                if let Ok(Some(record)) = reader.lookup(ip).and_then(|found| found.decode::<geoip2::Asn>()) {
                    out.as_number = record.autonomous_system_number;
                    out.as_name = record.autonomous_system_organization.map(str::to_string);
                }
            }
            Some(Source::Csv(table)) => {
                if let Some((_, _, record)) = table.find(ip) {
                    out.as_number = Some(record.number);
                    out.as_name = record.name.as_deref().map(str::to_string);
                }
            }
            None => {}
        }
        out.country = match &self.country {
            Some(Source::Mmdb(reader)) => match reader.lookup(ip).and_then(|found| found.decode::<geoip2::Country>()) {
                Ok(Some(record)) => record.country.iso_code.map(str::to_string),
                _ => None,
            }
            .or_else(|| match reader.lookup(ip).and_then(|found| found.decode::<FlatCountry>()) {
                Ok(Some(flat)) => flat.country_code.map(str::to_string),
                _ => None,
            }),
            Some(Source::Csv(table)) => table.find(ip).map(|(_, _, code)| String::from_utf8_lossy(code).into_owned()),
            None => None,
        };
        out
    }

    /// The announced range containing an address, from the AS database.
    pub fn range(&self, ip: IpAddr) -> Option<ipnet::IpNet> {
        match self.asn.as_ref()? {
            Source::Mmdb(reader) => {
                let found = reader.lookup(ip).ok()?;
                found.decode::<geoip2::Asn>().ok()??;
                let network = found.network().ok()?;
                ipnet::IpNet::new(network.ip(), network.prefix()).ok()
            }
            Source::Csv(table) => table.prefix(ip),
        }
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
        let enricher = Enricher::open(&files(Some(&asn), Some(&country))).unwrap();
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
        assert!(Enricher::open(&files(Some(&missing), None)).err().unwrap().to_string().contains("nope.mmdb"));
        let corrupt = dir.path().join("corrupt.mmdb");
        std::fs::write(&corrupt, b"not a database").unwrap();
        assert!(Enricher::open(&files(None, Some(&corrupt))).is_err());
        let both = EnrichConfig { asn_csv: Some(corrupt.clone()), ..files(Some(&corrupt), None) };
        assert!(Enricher::open(&both).err().unwrap().to_string().contains("not both"));
    }

    fn files(asn: Option<&Path>, country: Option<&Path>) -> EnrichConfig {
        EnrichConfig { asn_mmdb: asn.map(Path::to_path_buf), country_mmdb: country.map(Path::to_path_buf), ..Default::default() }
    }

    #[test]
    fn reads_asn_and_country_from_ip_location_db_csv_files() {
        let dir = tempfile::tempdir().unwrap();
        let asn = dir.path().join("asn.csv");
        let country = dir.path().join("country.csv");
        std::fs::write(&asn, "45.33.32.0,45.33.63.255,63949,Akamai Connected Cloud\n2a00:1450::,2a00:1450:ffff:ffff:ffff:ffff:ffff:ffff,15169,Google LLC\n").unwrap();
        std::fs::write(&country, "45.33.0.0,45.33.255.255,US\n").unwrap();
        let config = EnrichConfig { asn_csv: Some(asn), country_csv: Some(country), ..Default::default() };
        let enricher = Enricher::open(&config).unwrap();
        assert!(enricher.has_asn());
        let found = enricher.lookup("45.33.40.7".parse().unwrap());
        assert_eq!(found.as_number, Some(63949));
        assert_eq!(found.as_name.as_deref(), Some("Akamai Connected Cloud"));
        assert_eq!(found.country.as_deref(), Some("US"));
        assert_eq!(enricher.range("45.33.40.7".parse().unwrap()), Some("45.33.32.0/19".parse().unwrap()));
        assert_eq!(enricher.asn("2a00:1450:4001::1".parse().unwrap()), Some(15169));
        assert_eq!(enricher.lookup("8.8.8.8".parse().unwrap()), Enrichment::default());
    }
}
