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
    /// Unsigned 32-bit integer.
    U32(u32),
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
    let mut meta = Vec::new();
    let pairs: Vec<(&str, Box<dyn Fn(&mut Vec<u8>)>)> = vec![
        ("binary_format_major_version", Box::new(|o| uint(5, 2, o))),
        ("binary_format_minor_version", Box::new(|o| uint(5, 0, o))),
        ("build_epoch", Box::new(|o| uint(9, 1_700_000_000, o))),
        ("database_type", Box::new(move |o| encode(&Value::Str(database_type.into()), o))),
        ("description", Box::new(|o| encode(&Value::Map(vec![("en".into(), Value::Str("Palisade test data".into()))]), o))),
        ("ip_version", Box::new(|o| uint(5, 6, o))),
        (
            "languages",
            Box::new(|o| {
                control(11, 1, o);
                encode(&Value::Str("en".into()), o);
            }),
        ),
        ("node_count", Box::new(move |o| uint(6, node_count as u64, o))),
        ("record_size", Box::new(|o| uint(5, 24, o))),
    ];
    control(7, pairs.len(), &mut meta);
    for (key, write) in &pairs {
        encode(&Value::Str((*key).into()), &mut meta);
        write(&mut meta);
    }
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
        Value::U32(n) => uint(6, u64::from(*n), out),
        Value::Map(pairs) => {
            control(7, pairs.len(), out);
            for (key, value) in pairs {
                encode(&Value::Str(key.clone()), out);
                encode(value, out);
            }
        }
    }
}
