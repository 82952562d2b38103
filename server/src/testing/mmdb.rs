//! A minimal MaxMind DB (`.mmdb`) writer, so tests build their own small AS and country files
//! instead of shipping third-party data. Writes an IPv6 tree (IPv4 networks live under `::/96`,
//! as in GeoLite2) with 24-bit records and the data types the GeoIP2 records use.
//! Format: <https://maxmind.github.io/MaxMind-DB/>.

use ipnet::IpNet;

/// A value in the data section.
#[derive(Debug, Clone)]
pub enum Value {
    /// UTF-8 string.
    Str(String),
    /// Unsigned 16-bit integer.
    U16(u16),
    /// Unsigned 32-bit integer.
    U32(u32),
    /// Unsigned 64-bit integer.
    U64(u64),
    /// Array.
    Array(Vec<Value>),
    /// Map of string keys.
    Map(Vec<(String, Value)>),
}

/// An `autonomous_system_number` / `autonomous_system_organization` record (GeoLite2-ASN shape).
pub fn asn_record(number: u32, organization: &str) -> Value {
    Value::Map(vec![
        ("autonomous_system_number".into(), Value::U32(number)),
        ("autonomous_system_organization".into(), Value::Str(organization.into())),
    ])
}

/// A `country.iso_code` record (GeoLite2-Country shape).
pub fn country_record(iso_code: &str) -> Value {
    Value::Map(vec![("country".into(), Value::Map(vec![("iso_code".into(), Value::Str(iso_code.into()))]))])
}

#[derive(Clone, Copy)]
enum Record {
    Empty,
    Node(usize),
    Data(usize),
}

/// Builds an `.mmdb` file from non-overlapping networks.
pub fn build(database_type: &str, entries: &[(IpNet, Value)]) -> Vec<u8> {
    let mut nodes: Vec<[Record; 2]> = vec![[Record::Empty; 2]];
    let mut data = Vec::new();
    for (net, value) in entries {
        let offset = data.len();
        encode(value, &mut data);
        let (bits, len) = match net.trunc() {
            IpNet::V4(v4) => ((u128::from(u32::from(v4.network()))), 96 + usize::from(v4.prefix_len())),
            IpNet::V6(v6) => (u128::from(v6.network()), usize::from(v6.prefix_len())),
        };
        let mut node = 0;
        for depth in 0..len {
            let bit = ((bits >> (127 - depth)) & 1) as usize;
            if depth + 1 == len {
                nodes[node][bit] = Record::Data(offset);
            } else {
                node = match nodes[node][bit] {
                    Record::Node(next) => next,
                    _ => {
                        nodes.push([Record::Empty; 2]);
                        let next = nodes.len() - 1;
                        nodes[node][bit] = Record::Node(next);
                        next
                    }
                };
            }
        }
    }
    let node_count = nodes.len();
    let mut out = Vec::with_capacity(node_count * 6 + 16 + data.len() + 256);
    for node in &nodes {
        for record in node {
            let value = match *record {
                Record::Empty => node_count,
                Record::Node(next) => next,
                Record::Data(offset) => node_count + 16 + offset,
            } as u32;
            out.extend_from_slice(&value.to_be_bytes()[1..]);
        }
    }
    out.extend_from_slice(&[0; 16]);
    out.extend_from_slice(&data);
    out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    let str = |s: &str| Value::Str(s.into());
    let metadata = Value::Map(vec![
        ("binary_format_major_version".into(), Value::U16(2)),
        ("binary_format_minor_version".into(), Value::U16(0)),
        ("build_epoch".into(), Value::U64(1_700_000_000)),
        ("database_type".into(), str(database_type)),
        ("description".into(), Value::Map(vec![("en".into(), str("Palisade test data"))])),
        ("ip_version".into(), Value::U16(6)),
        ("languages".into(), Value::Array(vec![str("en")])),
        ("node_count".into(), Value::U32(node_count as u32)),
        ("record_size".into(), Value::U16(24)),
    ]);
    let mut meta = Vec::new();
    encode(&metadata, &mut meta);
    out.extend_from_slice(&meta);
    out
}

fn control(kind: u8, size: usize, out: &mut Vec<u8>) {
    let (first, extended) = if kind <= 7 { (kind << 5, None) } else { (0, Some(kind - 7)) };
    let (size_bits, extra): (u8, Vec<u8>) = match size {
        0..=28 => (size as u8, vec![]),
        29..=284 => (29, vec![(size - 29) as u8]),
        285..=65820 => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
        _ => (31, ((size - 65821) as u32).to_be_bytes()[1..].to_vec()),
    };
    out.push(first | size_bits);
    out.extend(extended);
    out.extend(extra);
}

fn uint(kind: u8, value: u64, out: &mut Vec<u8>) {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(kind, 8 - skip, out);
    out.extend_from_slice(&bytes[skip..]);
}

fn encode(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Str(s) => {
            control(2, s.len(), out);
            out.extend_from_slice(s.as_bytes());
        }
        Value::U16(n) => uint(5, u64::from(*n), out),
        Value::U32(n) => uint(6, u64::from(*n), out),
        Value::U64(n) => uint(9, *n, out),
        Value::Array(items) => {
            control(11, items.len(), out);
            for item in items {
                encode(item, out);
            }
        }
        Value::Map(pairs) => {
            control(7, pairs.len(), out);
            for (key, value) in pairs {
                encode(&Value::Str(key.clone()), out);
                encode(value, out);
            }
        }
    }
}
