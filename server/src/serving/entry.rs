//! One served entry, held compactly: a list of a million entries is a million of these, so
//! the texts entries share (scope, scenario, remediation, rule) are held once and pointed to, and
//! the value text is written from the prefix rather than stored. Pure.

use std::sync::Arc;

use ipnet::IpNet;
use time::OffsetDateTime;

/// The texts an entry shares with many others (scope, scenario, remediation, rule): held once
/// per distinct combination, so an entry carries only a pointer to them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Meta {
    /// `ip` or `range`.
    pub scope: Box<str>,
    /// Scenario shown.
    pub scenario: Box<str>,
    /// `ban` or `captcha`.
    pub remediation: Box<str>,
    /// Rule that listed it.
    pub rule: Box<str>,
}

/// One served entry, compact (48 bytes): the prefix, the shared texts by pointer, the times in
/// whole seconds since 1970 in 32 bits (until 2106; a later time is held as the last second
/// 32 bits reach, an earlier one as 1970). Its value text is not stored: values are canonical (a
/// bare address for a host prefix, else the network), so [`Entry::value`] writes it from the
/// prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The value parsed (a single address is a host prefix).
    pub net: IpNet,
    /// Seq of the change that last wrote it.
    pub seq: i64,
    listed_at: u32,
    expires_at: u32,
    meta: Arc<Meta>,
}

/// An entry shared by a list's members, its change log and the views made of them: a counted
/// pointer without `std::sync::Arc`'s weak count. Those 8 bytes decide the allocator's size
/// class: an entry with this header is a 64-byte block, with `std`'s an 80-byte one, 16 MB
/// on a million-entry list.
pub type SharedEntry = triomphe::Arc<Entry>;

/// Seconds since 1970 in 32 bits, saturating at both ends.
fn seconds(at: OffsetDateTime) -> u32 {
    u32::try_from(at.unix_timestamp().max(0)).unwrap_or(u32::MAX)
}

impl Entry {
    /// An entry for `net`; the times are kept to the second.
    pub fn new(net: IpNet, meta: Arc<Meta>, listed_at: OffsetDateTime, expires_at: OffsetDateTime, seq: i64) -> Self {
        Entry { net, seq, listed_at: seconds(listed_at), expires_at: seconds(expires_at), meta }
    }

    /// The value as stored and served: `192.0.2.1`, `2001:db8::/32`.
    pub fn value(&self) -> Value {
        Value(self.net)
    }

    /// `ip` or `range`.
    pub fn scope(&self) -> &str {
        &self.meta.scope
    }

    /// Scenario shown.
    pub fn scenario(&self) -> &str {
        &self.meta.scenario
    }

    /// `ban` or `captcha`.
    pub fn remediation(&self) -> &str {
        &self.meta.remediation
    }

    /// Rule that listed it.
    pub fn rule(&self) -> &str {
        &self.meta.rule
    }

    /// First listed.
    pub fn listed_at(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(i64::from(self.listed_at)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// Expiry.
    pub fn expires_at(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(i64::from(self.expires_at)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// Whether it is still in force at `now`.
    pub fn live_at(&self, now: OffsetDateTime) -> bool {
        i64::from(self.expires_at) > now.unix_timestamp()
    }
}

/// The canonical text of a value: a bare address for a host prefix, else the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Value(pub IpNet);

impl Value {
    /// Appends the text to `line`: the same bytes as `Display`, written directly for an IPv4
    /// address (most entries), which keeps rendering a million-entry list fast.
    pub fn append_to(&self, line: &mut Vec<u8>) {
        match self.0 {
            IpNet::V4(net) if net.prefix_len() == 32 => {
                for (i, octet) in net.addr().octets().into_iter().enumerate() {
                    if i > 0 {
                        line.push(b'.');
                    }
                    if octet >= 100 {
                        line.push(b'0' + octet / 100);
                    }
                    if octet >= 10 {
                        line.push(b'0' + octet / 10 % 10);
                    }
                    line.push(b'0' + octet % 10);
                }
            }
            _ => {
                use std::io::Write as _;
                // Writing to a Vec cannot fail.
                drop(write!(line, "{self}"));
            }
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.prefix_len() == self.0.max_prefix_len() { self.0.addr().fmt(f) } else { self.0.fmt(f) }
    }
}
