//! The pure renderers of the blocklist formats (plain, JSON, CSV, nftables, ipset, iptables,
//! MikroTik): [`render_full`] writes a whole list and [`render_delta`] the changes since a
//! cursor, each with one arm per format, to any `io::Write` (a buffer in tests, a chunked
//! channel when serving); [`aggregate`] merges prefixes beforehand when asked. No I/O of its own,
//! no clock: the caller chooses the entries, their order and `now`.
//!
//! A firewall format must block once loaded the way the README says, and reloading it must
//! converge on one copy of its rules ([`Rules::Drop`], the default): the nftables script carries
//! its own base chain, the MikroTik script its own raw rule; an `iptables-restore` or
//! `ipset restore` input cannot add an `INPUT` rule idempotently, so it names, in comment lines,
//! the one check-or-insert command to run after it. [`Rules::None`] leaves sets, address lists
//! and chains unreferenced, for operators who wire them into their own rules.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;
use std::sync::Arc;

use ipnet::IpNet;
use time::OffsetDateTime;

use super::entry::{Entry, Meta, SharedEntry};
use crate::domain::time::rfc3339;

/// Output formats of the native blocklist endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// One value per line.
    #[default]
    Plain,
    /// A JSON array of entry objects (a delta: `{seq, added, removed}`).
    Json,
    /// CSV with a header line.
    Csv,
    /// An `nft -f` script: a table of its own with one interval set per family and, unless
    /// [`Rules::None`], an input chain dropping both.
    Nftables,
    /// An `ipset restore` script, one `hash:net` set per family.
    Ipset,
    /// An `iptables-restore --noflush` (or, with `family=v6`, `ip6tables-restore --noflush`)
    /// script: one chain of DROP rules.
    Iptables,
    /// A RouterOS script filling one address list per family and, unless [`Rules::None`], adding
    /// one raw rule per family dropping it.
    Mikrotik,
}

impl Format {
    /// Every format, in documentation order.
    pub const ALL: [Format; 7] =
        [Format::Plain, Format::Json, Format::Csv, Format::Nftables, Format::Ipset, Format::Iptables, Format::Mikrotik];

    /// The name used in `format=`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Plain => "plain",
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Nftables => "nftables",
            Format::Ipset => "ipset",
            Format::Iptables => "iptables",
            Format::Mikrotik => "mikrotik",
        }
    }

    /// Whether it is a firewall's own script, to which [`Rules`] applies.
    pub fn is_firewall(self) -> bool {
        matches!(self, Format::Nftables | Format::Ipset | Format::Iptables | Format::Mikrotik)
    }

    /// The `Content-Type` it is served with.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            _ => "text/plain; charset=utf-8",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Format::ALL.into_iter().find(|f| f.name() == text).ok_or_else(|| {
            let names: Vec<_> = Format::ALL.iter().map(|f| f.name()).collect();
            format!("format must be one of {}, not {text:?}", names.join(", "))
        })
    }
}

/// Address families to include.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Family {
    /// IPv4 and IPv6.
    #[default]
    All,
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
}

impl Family {
    /// Whether `net` belongs to this selection.
    pub fn includes(self, net: &IpNet) -> bool {
        match self {
            Family::All => true,
            Family::V4 => matches!(net, IpNet::V4(_)),
            Family::V6 => matches!(net, IpNet::V6(_)),
        }
    }
}

impl FromStr for Family {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "" | "all" => Ok(Family::All),
            "v4" | "ipv4" | "4" => Ok(Family::V4),
            "v6" | "ipv6" | "6" => Ok(Family::V6),
            other => Err(format!("family must be all, v4 or v6, not {other:?}")),
        }
    }
}

/// Whether a firewall format brings the rules that make its sets drop traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Rules {
    /// Drop what is listed (inbound to this host) once loaded as documented: nftables and
    /// MikroTik carry their rules; iptables and ipset name, in comment lines, the one idempotent
    /// command that adds the `INPUT` rule after the restore.
    #[default]
    Drop,
    /// The sets (address lists, the iptables chain) only, referenced by nothing: for operators
    /// who wire their own rules. nftables then keeps the table and flushes and refills the sets,
    /// so chains the operator added to the table survive a reload.
    None,
}

impl Rules {
    /// The name used in `rules=`.
    pub fn name(self) -> &'static str {
        match self {
            Rules::Drop => "drop",
            Rules::None => "none",
        }
    }
}

impl FromStr for Rules {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "drop" => Ok(Rules::Drop),
            "none" => Ok(Rules::None),
            other => Err(format!(
                "rules must be drop (the default: the script blocks what it lists) or none (sets only), not {other:?}"
            )),
        }
    }
}

/// What to render: format and filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Options {
    /// Output format.
    pub format: Format,
    /// Merge adjacent and overlapping prefixes into the fewest CIDRs.
    pub aggregate: bool,
    /// Address families.
    pub family: Family,
    /// Whether firewall formats bring their drop rules (ignored by the others).
    pub rules: Rules,
}

/// A name safe in nft, ipset, iptables and RouterOS identifiers: ASCII alphanumerics and `_`,
/// at most `max` bytes.
pub fn identifier(list: &str, max: usize) -> String {
    let mut name: String = list.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    name.truncate(max);
    name
}

/// Merges the entries' prefixes into the fewest CIDRs covering exactly the same addresses.
/// The merged entries carry the list name as scenario, `ban`, and the latest expiry.
pub fn aggregate(list: &str, entries: &[SharedEntry]) -> Vec<SharedEntry> {
    let nets: Vec<IpNet> = entries.iter().map(|e| e.net).collect();
    let expires_at = entries.iter().map(|e| e.expires_at()).max().unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let listed_at = entries.iter().map(|e| e.listed_at()).min().unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let seq = entries.iter().map(|e| e.seq).max().unwrap_or(0);
    let meta = |scope: &str| {
        Arc::new(Meta { scope: scope.into(), scenario: list.into(), remediation: "ban".into(), rule: "aggregate".into() })
    };
    let (ip, range) = (meta("ip"), meta("range"));
    IpNet::aggregate(&nets)
        .into_iter()
        .map(|net| {
            let host = net.prefix_len() == net.max_prefix_len();
            SharedEntry::new(Entry::new(net, if host { ip.clone() } else { range.clone() }, listed_at, expires_at, seq))
        })
        .collect()
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_string() }
}

fn json_entry(entry: &Entry) -> serde_json::Value {
    serde_json::json!({
        "value": entry.value().to_string(),
        "scope": entry.scope(),
        "scenario": entry.scenario(),
        "remediation": entry.remediation(),
        "expires_at": rfc3339(entry.expires_at()),
        "seq": entry.seq,
    })
}

/// The prefix form every firewall accepts (`1.2.3.4/32` rather than `1.2.3.4` where needed).
fn cidr(entry: &Entry) -> String {
    entry.net.to_string()
}

struct FamilyNames {
    v4: String,
    v6: String,
}

fn family_names(list: &str, separator: char, max: usize) -> FamilyNames {
    let base = identifier(list, max.saturating_sub(12));
    FamilyNames { v4: format!("palisade{separator}{base}{separator}v4"), v6: format!("palisade{separator}{base}{separator}v6") }
}

/// The `maxelem` of every ipset set: the largest ipset takes (see the ipset renderer).
const IPSET_MAXELEM: u32 = u32::MAX;

/// The nftables table of a list (family `inet`).
fn nft_table(list: &str) -> String {
    format!("palisade_{}", identifier(list, 40))
}

/// The iptables chain of a list.
fn iptables_chain(list: &str) -> String {
    format!("PALISADE-{}", identifier(list, 18).to_ascii_uppercase())
}

/// The `elements = { … }` clause of a set, one member a line; nothing for an empty set (nft
/// refuses an empty clause).
fn nft_elements(out: &mut impl Write, members: &[&SharedEntry]) -> io::Result<()> {
    if members.is_empty() {
        return Ok(());
    }
    out.write_all(b"\t\telements = {\n")?;
    for (i, entry) in members.iter().enumerate() {
        let separator = if i + 1 == members.len() { "" } else { "," };
        writeln!(out, "\t\t\t{}{separator}", cidr(entry))?;
    }
    out.write_all(b"\t\t}\n")
}

/// Renders a full list. `entries` are written in the order given.
pub fn render_full(list: &str, options: Options, entries: &[SharedEntry], out: &mut impl Write) -> io::Result<()> {
    let selected = || entries.iter().filter(|e| options.family.includes(&e.net));
    let v4 = || selected().filter(|e| matches!(e.net, IpNet::V4(_)));
    let v6 = || selected().filter(|e| matches!(e.net, IpNet::V6(_)));
    match options.format {
        Format::Plain => {
            let mut line = Vec::with_capacity(48);
            for entry in selected() {
                line.clear();
                entry.value().append_to(&mut line);
                line.push(b'\n');
                out.write_all(&line)?;
            }
        }
        Format::Json => {
            out.write_all(b"[")?;
            for (i, entry) in selected().enumerate() {
                if i > 0 {
                    out.write_all(b",\n")?;
                }
                serde_json::to_writer(&mut *out, &json_entry(entry))?;
            }
            out.write_all(b"]\n")?;
        }
        Format::Csv => {
            out.write_all(b"value,scope,scenario,remediation,expires_at\n")?;
            for entry in selected() {
                writeln!(
                    out,
                    "{},{},{},{},{}",
                    entry.value(),
                    csv_field(entry.scope()),
                    csv_field(entry.scenario()),
                    csv_field(entry.remediation()),
                    rfc3339(entry.expires_at())
                )?;
            }
        }
        Format::Nftables => {
            let table = nft_table(list);
            let sets = [("v4", "ipv4_addr", v4().collect::<Vec<_>>()), ("v6", "ipv6_addr", v6().collect::<Vec<_>>())];
            match options.rules {
                Rules::Drop => {
                    // The table is Palisade's: declaring then deleting it makes the script replace
                    // it whole (sets, chain, rules) whether or not it existed, and nft applies one
                    // file as one transaction, so a reload never leaves a gap nor a second rule.
                    writeln!(out, "table inet {table}\ndelete table inet {table}\ntable inet {table} {{")?;
                    for (set, kind, members) in &sets {
                        writeln!(out, "\tset {set} {{\n\t\ttype {kind}\n\t\tflags interval\n\t\tauto-merge")?;
                        nft_elements(out, members)?;
                        out.write_all(b"\t}\n")?;
                    }
                    // Every base chain on a hook sees the packet: an accept in another chain (or
                    // in iptables-nft's INPUT) does not stop this one, and its drop is final. The
                    // priority only orders them: `filter - 10` drops before the usual `filter`
                    // chains run, so a listed source costs them nothing and never reaches what
                    // they do before their own verdict (log, count, queue to an IPS), and it is
                    // the agent's own priority.
                    out.write_all(
                        b"\tchain input {\n\t\ttype filter hook input priority filter - 10; policy accept;\n\t\tip saddr @v4 drop\n\t\tip6 saddr @v6 drop\n\t}\n}\n",
                    )?;
                }
                Rules::None => {
                    // Operators add their own chains to this table (nft rules may only name sets
                    // of their own table): keep it, and replace only the sets' elements.
                    writeln!(out, "table inet {table} {{")?;
                    for (set, kind, _) in &sets {
                        writeln!(out, "\tset {set} {{\n\t\ttype {kind}\n\t\tflags interval\n\t\tauto-merge\n\t}}")?;
                    }
                    out.write_all(b"}\n")?;
                    for (set, _, _) in &sets {
                        writeln!(out, "flush set inet {table} {set}")?;
                    }
                    writeln!(out, "table inet {table} {{")?;
                    for (set, kind, members) in &sets {
                        writeln!(out, "\tset {set} {{\n\t\ttype {kind}\n\t\tflags interval\n\t\tauto-merge")?;
                        nft_elements(out, members)?;
                        out.write_all(b"\t}\n")?;
                    }
                    out.write_all(b"}\n")?;
                }
            }
        }
        Format::Ipset => {
            let names = family_names(list, '-', 31);
            if options.rules == Rules::Drop {
                let mut lines = String::from("# Load with `ipset restore`, then reference the sets once (check, else insert):\n");
                for (tool, name) in [("iptables", &names.v4), ("ip6tables", &names.v6)] {
                    let rule = format!("INPUT -m set --match-set {name} src -j DROP");
                    lines.push_str(&format!("#   {tool} -C {rule} 2>/dev/null || {tool} -I {rule}\n"));
                }
                out.write_all(lines.as_bytes())?;
            }
            // `create -exist` refuses a set whose maxelem differs from the existing one's, so the
            // create lines must not depend on the list: maxelem is a ceiling, not an allocation,
            // hence the largest. Each set is filled as a fresh `-new` set swapped in whole, so the
            // rule referencing it never sees it half-filled.
            let temporary = family_names(list, '-', 27);
            for (name, new, family, members) in [
                (&names.v4, &temporary.v4, "inet", v4().collect::<Vec<_>>()),
                (&names.v6, &temporary.v6, "inet6", v6().collect()),
            ] {
                let new = format!("{new}-new");
                for set in [name, &new] {
                    writeln!(out, "create {set} hash:net family {family} hashsize 65536 maxelem {IPSET_MAXELEM} -exist")?;
                }
                writeln!(out, "flush {new}")?;
                for entry in members {
                    writeln!(out, "add {new} {} -exist", cidr(entry))?;
                }
                writeln!(out, "swap {new} {name}\ndestroy {new}")?;
            }
        }
        Format::Iptables => {
            // One family per script: iptables-restore refuses IPv6 addresses and vice versa.
            let chain = iptables_chain(list);
            let tool = if options.family == Family::V6 { "ip6tables" } else { "iptables" };
            if options.rules == Rules::Drop {
                // Inside a restore the INPUT jump cannot be made idempotent (`-A` duplicates it
                // on every reload, `-D` of a missing rule fails the whole restore): the chain is
                // the script's, the jump one check-or-insert command after it.
                writeln!(
                    out,
                    "# Load with `{tool}-restore --noflush` (without it the whole filter table is replaced),\n\
                     # then jump to the chain once (check, else insert):\n\
                     #   {tool} -C INPUT -j {chain} 2>/dev/null || {tool} -I INPUT -j {chain}"
                )?;
            }
            // Declaring the chain flushes it under --noflush, and the restore commits as one.
            writeln!(out, "*filter\n:{chain} - [0:0]")?;
            let members: Vec<_> = if options.family == Family::V6 { v6().collect() } else { v4().collect() };
            for entry in members {
                writeln!(out, "-A {chain} -s {} -j DROP", cidr(entry))?;
            }
            out.write_all(b"COMMIT\n")?;
        }
        Format::Mikrotik => {
            let name = format!("palisade-{}", identifier(list, 40));
            for (section, members) in [("/ip", v4().collect::<Vec<_>>()), ("/ipv6", v6().collect())] {
                if options.family == Family::V4 && section == "/ipv6" || options.family == Family::V6 && section == "/ip" {
                    continue;
                }
                writeln!(out, "{section} firewall address-list\nremove [find list={name}]")?;
                for entry in members {
                    writeln!(out, "add list={name} address={}", cidr(entry))?;
                }
                if options.rules == Rules::Drop {
                    // Raw prerouting drops before connection tracking and before any filter
                    // accept; added only when missing, so a reload keeps exactly one rule.
                    let raw = format!("{section} firewall raw");
                    writeln!(
                        out,
                        ":if ([:len [{raw} find comment=\"{name}\"]] = 0) do={{ {raw} add chain=prerouting \
                         src-address-list={name} action=drop comment=\"{name}\" }}"
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// Renders what changed since a cursor: `added` (latest state) and `removed`, up to `seq`.
/// `iptables` has no delta form (a rule cannot be removed blindly): the caller refuses it.
pub fn render_delta(
    list: &str,
    options: Options,
    seq: i64,
    added: &[SharedEntry],
    removed: &[SharedEntry],
    out: &mut impl Write,
) -> io::Result<()> {
    let keep = |e: &&SharedEntry| options.family.includes(&e.net);
    let added: Vec<&SharedEntry> = added.iter().filter(keep).collect();
    let removed: Vec<&SharedEntry> = removed.iter().filter(keep).collect();
    let is_v4 = |e: &SharedEntry| matches!(e.net, IpNet::V4(_));
    match options.format {
        Format::Plain => {
            for entry in &added {
                writeln!(out, "+{}", entry.value())?;
            }
            for entry in &removed {
                writeln!(out, "-{}", entry.value())?;
            }
        }
        Format::Json => {
            let body = serde_json::json!({
                "seq": seq,
                "added": added.iter().map(|e| json_entry(e)).collect::<Vec<_>>(),
                "removed": removed.iter().map(|e| e.value().to_string()).collect::<Vec<_>>(),
            });
            serde_json::to_writer(&mut *out, &body)?;
            out.write_all(b"\n")?;
        }
        Format::Csv => {
            out.write_all(b"op,value,scope,scenario,remediation,expires_at\n")?;
            for (op, entries) in [("add", &added), ("remove", &removed)] {
                for entry in entries {
                    writeln!(
                        out,
                        "{op},{},{},{},{},{}",
                        entry.value(),
                        csv_field(entry.scope()),
                        csv_field(entry.scenario()),
                        csv_field(entry.remediation()),
                        rfc3339(entry.expires_at())
                    )?;
                }
            }
        }
        Format::Nftables => {
            let table = nft_table(list);
            for (verb, entries) in [("delete", &removed), ("add", &added)] {
                for (set, v4) in [("v4", true), ("v6", false)] {
                    let members: Vec<String> = entries.iter().filter(|e| is_v4(e) == v4).map(|e| cidr(e)).collect();
                    if !members.is_empty() {
                        writeln!(out, "{verb} element inet {table} {set} {{ {} }}", members.join(", "))?;
                    }
                }
            }
        }
        Format::Ipset => {
            let names = family_names(list, '-', 31);
            for (verb, entries) in [("del", &removed), ("add", &added)] {
                for entry in entries {
                    let name = if is_v4(entry) { &names.v4 } else { &names.v6 };
                    writeln!(out, "{verb} {name} {} -exist", cidr(entry))?;
                }
            }
        }
        Format::Mikrotik => {
            let name = format!("palisade-{}", identifier(list, 40));
            for (section, v4) in [("/ip firewall address-list", true), ("/ipv6 firewall address-list", false)] {
                writeln!(out, "{section}")?;
                for entry in removed.iter().filter(|e| is_v4(e) == v4) {
                    writeln!(out, "remove [find list={name} address={}]", cidr(entry))?;
                }
                for entry in added.iter().filter(|e| is_v4(e) == v4) {
                    writeln!(out, "add list={name} address={}", cidr(entry))?;
                }
            }
        }
        Format::Iptables => {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "iptables has no delta form"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
