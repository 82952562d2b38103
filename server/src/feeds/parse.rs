//! Reading a feed's body into networks, the pure part: plain lists, CSV, FireHOL `.netset`,
//! Spamhaus DROP/EDROP (`;` comments, or the JSON lines of `drop_v4.json`), ipsum (address and
//! count) and another Palisade's plain list. No I/O and no clock: the caller fetches the body and
//! applies the result. Lines that are not an address or CIDR are counted and a few of them
//! described, never fatal by themselves; [`Parsed::verdict`] says whether the copy as a whole is
//! usable (an HTML error page, or a body with nothing usable, is not).

use ipnet::IpNet;

use crate::domain::net::list_target;

/// How many rejected lines are described (the rest are only counted).
pub const MAX_REASONS: usize = 5;

/// A value longer than this is cut when quoted in a reason.
const QUOTED_CHARS: usize = 40;

/// The broadest range a feed may list: a /8 (IPv4) or /16 (IPv6). Broader is a mistake, and far
/// broader would cover never-block space anyway.
const MIN_PREFIX_V4: u8 = 8;
const MIN_PREFIX_V6: u8 = 16;

/// A feed's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedFormat {
    /// One address or CIDR per line; `#` and `;` start comments; text after the value is ignored.
    Plain,
    /// CSV: the first field of each row that is an address or CIDR; a header row is skipped.
    Csv,
    /// FireHOL `.netset` / `.ipset`: one value per line, `#` comments.
    Netset,
    /// Spamhaus DROP/EDROP: `range ; SBL…` lines and `;` comments, or JSON lines with `cidr`.
    Spamhaus,
    /// ipsum: `address<TAB>count`; addresses on fewer than the feed's minimum count of lists are
    /// left out.
    Ipsum,
    /// Another Palisade's `/v1/blocklists/{name}` (plain, read with an API key).
    Palisade,
    /// Told apart by content ([`guess`]).
    Auto,
}

impl FeedFormat {
    /// Every format, in documentation order.
    pub const ALL: [FeedFormat; 7] = [
        FeedFormat::Plain,
        FeedFormat::Csv,
        FeedFormat::Netset,
        FeedFormat::Spamhaus,
        FeedFormat::Ipsum,
        FeedFormat::Palisade,
        FeedFormat::Auto,
    ];

    /// Stored and typed name.
    pub fn name(self) -> &'static str {
        match self {
            FeedFormat::Plain => "plain",
            FeedFormat::Csv => "csv",
            FeedFormat::Netset => "netset",
            FeedFormat::Spamhaus => "spamhaus",
            FeedFormat::Ipsum => "ipsum",
            FeedFormat::Palisade => "palisade",
            FeedFormat::Auto => "auto",
        }
    }
}

impl std::str::FromStr for FeedFormat {
    type Err = String;

    /// The inverse of [`FeedFormat::name`]; anything else is refused with the list of names.
    fn from_str(text: &str) -> Result<Self, String> {
        FeedFormat::ALL.into_iter().find(|f| f.name() == text).ok_or_else(|| {
            let names: Vec<&str> = FeedFormat::ALL.iter().map(|f| f.name()).collect();
            format!("format must be one of {}, not {text:?}", names.join(", "))
        })
    }
}

/// What a body holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The networks, canonical, each once, in body order.
    pub entries: Vec<IpNet>,
    /// Lines that carry data (not blank, not a comment, not a header).
    pub lines: usize,
    /// Data lines that held no usable address or CIDR.
    pub rejected: usize,
    /// The first [`MAX_REASONS`] rejections, `line N: why`.
    pub reasons: Vec<String>,
    /// ipsum lines left out for being on too few lists (not rejections).
    pub below_count: usize,
    /// The body is an HTML or XML page (an error page served with status 200).
    pub markup: bool,
}

impl Parsed {
    /// Whether this copy may replace the last good one: `Err` with a sentence when it is a page,
    /// holds nothing usable, or more than `max_entries`.
    pub fn verdict(&self, max_entries: usize) -> Result<(), String> {
        if self.markup {
            return Err("the answer is an HTML or XML page, not a list".into());
        }
        if self.entries.is_empty() {
            if self.rejected > 0 {
                let first = self.reasons.first().map(String::as_str).unwrap_or_default();
                return Err(format!("none of its {} lines is an address or CIDR ({first})", self.rejected));
            }
            if self.below_count > 0 {
                return Err(format!("all {} addresses are on fewer lists than the minimum count", self.below_count));
            }
            return Err("the answer holds no address or CIDR".into());
        }
        if self.entries.len() > max_entries {
            return Err(format!("it holds {} entries, more than the limit of {max_entries}", self.entries.len()));
        }
        Ok(())
    }

    fn accept(&mut self, net: IpNet, seen: &mut std::collections::HashSet<IpNet>) {
        if seen.insert(net) {
            self.entries.push(net);
        }
    }

    fn reject(&mut self, line: usize, reason: String) {
        self.rejected += 1;
        if self.reasons.len() < MAX_REASONS {
            self.reasons.push(format!("line {line}: {reason}"));
        }
    }
}

/// The format a body looks like: JSON lines or `;` after a value (Spamhaus), a value and a count
/// (ipsum), commas (CSV), otherwise one value per line.
pub fn guess(text: &str) -> FeedFormat {
    let data = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        // A trailing `#` comment says nothing of the format (and may hold commas).
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .take(50)
        .collect::<Vec<_>>();
    if data.iter().any(|l| l.starts_with('{') || (l.contains(';') && value(l.split(';').next().unwrap_or("")).is_ok())) {
        return FeedFormat::Spamhaus;
    }
    let ipsum_like = |l: &&&str| {
        let mut fields = l.split_whitespace();
        matches!((fields.next(), fields.next(), fields.next()), (Some(v), Some(n), None) if value(v).is_ok() && n.parse::<u32>().is_ok())
    };
    if !data.is_empty() && data.iter().filter(ipsum_like).count() * 2 > data.len() {
        return FeedFormat::Ipsum;
    }
    if data.iter().any(|l| l.contains(',')) {
        return FeedFormat::Csv;
    }
    FeedFormat::Plain
}

/// Reads a body in `format`; `min_count` applies to ipsum.
pub fn parse(format: FeedFormat, text: &str, min_count: u32) -> Parsed {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let format = if format == FeedFormat::Auto { guess(text) } else { format };
    let mut parsed = Parsed { markup: text.trim_start().starts_with('<'), ..Parsed::default() };
    let mut seen = std::collections::HashSet::new();
    let mut header_possible = true;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let number = index + 1;
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') || line.starts_with("//") {
            continue;
        }
        let found = match format {
            FeedFormat::Plain | FeedFormat::Netset | FeedFormat::Palisade | FeedFormat::Auto => first_token(line),
            FeedFormat::Spamhaus => spamhaus(line),
            FeedFormat::Ipsum => match ipsum(line, min_count) {
                Some(found) => found,
                None => {
                    parsed.below_count += 1;
                    continue;
                }
            },
            FeedFormat::Csv => match csv(line) {
                Err(_) if header_possible => {
                    header_possible = false;
                    continue;
                }
                other => other,
            },
        };
        header_possible = false;
        match found {
            Ok(Some(net)) => {
                parsed.lines += 1;
                parsed.accept(net, &mut seen);
            }
            // A line that holds metadata, not an entry (Spamhaus' JSON trailer).
            Ok(None) => {}
            Err(reason) => {
                parsed.lines += 1;
                parsed.reject(number, reason);
            }
        }
    }
    parsed
}

/// An address or CIDR in canonical form, or why not.
fn value(text: &str) -> Result<IpNet, String> {
    let text = text.trim().trim_matches('"');
    let net = list_target(text).ok_or_else(|| format!("{} is not an address or CIDR", quoted(text)))?;
    let min = if net.addr().is_ipv4() { MIN_PREFIX_V4 } else { MIN_PREFIX_V6 };
    if net.prefix_len() < min {
        return Err(format!("{net} is broader than /{min}"));
    }
    Ok(net)
}

fn quoted(text: &str) -> String {
    if text.chars().count() > QUOTED_CHARS {
        format!("{:?}…", text.chars().take(QUOTED_CHARS).collect::<String>())
    } else {
        format!("{text:?}")
    }
}

/// The first whitespace-separated token, before any `#` or `;` comment.
fn first_token(line: &str) -> Result<Option<IpNet>, String> {
    let line = line.split(['#', ';']).next().unwrap_or_default();
    value(line.split_whitespace().next().unwrap_or_default()).map(Some)
}

/// `range ; SBL…`, or a JSON line (`{"cidr": "…", …}`; the `{"type": "metadata", …}` trailer is
/// skipped).
fn spamhaus(line: &str) -> Result<Option<IpNet>, String> {
    if !line.starts_with('{') {
        return first_token(line);
    }
    let object: serde_json::Value = serde_json::from_str(line).map_err(|_| format!("{} is not a JSON object", quoted(line)))?;
    match object.get("cidr").and_then(serde_json::Value::as_str) {
        Some(cidr) => value(cidr).map(Some),
        None if object.get("type").is_some() => Ok(None),
        None => Err(format!("{} has no cidr", quoted(line))),
    }
}

/// `address count` (tab or spaces); `None` when the count is below `min_count`.
fn ipsum(line: &str, min_count: u32) -> Option<Result<Option<IpNet>, String>> {
    let line = line.split('#').next().unwrap_or_default();
    let mut fields = line.split_whitespace();
    let net = match value(fields.next().unwrap_or_default()) {
        Ok(net) => net,
        Err(reason) => return Some(Err(reason)),
    };
    match fields.next().map(str::parse::<u32>) {
        Some(Ok(count)) if count >= min_count => Some(Ok(Some(net))),
        Some(Ok(_)) => None,
        Some(Err(_)) | None => Some(Err(format!("{net} has no count of lists"))),
    }
}

/// The first field of a CSV row that is an address or CIDR.
fn csv(line: &str) -> Result<Option<IpNet>, String> {
    line.split(',')
        .find_map(|field| value(field).ok())
        .map(Some)
        .ok_or_else(|| format!("no field of {} is an address or CIDR", quoted(line)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/feeds").join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }

    fn shown(parsed: &Parsed) -> Vec<String> {
        parsed.entries.iter().map(|net| crate::domain::net::display_target(*net)).collect()
    }

    #[test]
    fn firehol_netsets_keep_every_range_once_and_count_the_cut_line() {
        let parsed = parse(FeedFormat::Netset, &fixture("firehol_level1.netset"), 3);
        // Bogons are still entries here: never-block removes them later, not the parser. Only
        // the multicast-and-reserved /3 is too broad to be an entry at all.
        assert_eq!(parsed.entries.len(), 17, "{:?}", shown(&parsed));
        assert!(shown(&parsed).contains(&"185.224.128.17".to_string()));
        assert!(shown(&parsed).contains(&"10.0.0.0/8".to_string()));
        assert_eq!(parsed.lines, 20, "the duplicate and the cut line carry data");
        assert_eq!(parsed.rejected, 2);
        assert_eq!(
            parsed.reasons,
            ["line 51: 224.0.0.0/3 is broader than /8", "line 54: \"185.224.12\" is not an address or CIDR"]
        );
        assert_eq!(parsed.verdict(1_000_000), Ok(()));
        assert!(parsed.verdict(10).expect_err("too many").contains("more than the limit of 10"));
        assert_eq!(guess(&fixture("firehol_level1.netset")), FeedFormat::Plain);
    }

    #[test]
    fn spamhaus_drop_reads_ranges_before_the_sbl_reference_ipv6_included() {
        let text = fixture("drop.txt");
        let parsed = parse(FeedFormat::Spamhaus, &text, 3);
        assert_eq!(
            shown(&parsed),
            [
                "1.10.16.0/20",
                "1.19.0.0/16",
                "1.32.128.0/18",
                "2.56.192.0/22",
                "5.134.128.0/19",
                "27.126.160.0/20",
                "31.24.81.0/24",
                "45.14.71.0/24",
                "2a06:e480::/29",
                "2a0d:8480::/29"
            ]
        );
        assert_eq!(parsed.rejected, 1, "{:?}", parsed.reasons);
        assert_eq!(guess(&text), FeedFormat::Spamhaus);
    }

    #[test]
    fn spamhaus_json_lines_read_cidr_and_skip_the_metadata_trailer() {
        let text = "{\"cidr\":\"1.10.16.0/20\",\"sblid\":\"SBL256894\",\"rir\":\"apnic\"}\n\
                    {\"cidr\":\"2a06:e480::/29\",\"sblid\":\"SBL301771\",\"rir\":\"ripencc\"}\n\
                    {\"cidr\":\"banana\"}\n\
                    {\"type\":\"metadata\",\"timestamp\":1764858423,\"size\":3,\"records\":2}\n";
        let parsed = parse(FeedFormat::Auto, text, 3);
        assert_eq!(shown(&parsed), ["1.10.16.0/20", "2a06:e480::/29"]);
        assert_eq!((parsed.lines, parsed.rejected), (3, 1));
    }

    #[test]
    fn ipsum_keeps_addresses_on_at_least_the_minimum_count_of_lists() {
        let text = fixture("ipsum.txt");
        let parsed = parse(FeedFormat::Ipsum, &text, 3);
        assert_eq!(
            shown(&parsed),
            ["185.224.128.17", "80.94.95.115", "218.92.0.112", "45.148.10.121", "194.0.234.37", "92.118.39.95"]
        );
        assert_eq!(parsed.below_count, 3);
        assert_eq!(parsed.rejected, 1, "{:?}", parsed.reasons);
        assert_eq!(parse(FeedFormat::Ipsum, &text, 8).entries.len(), 3);
        assert_eq!(guess(&text), FeedFormat::Ipsum);
        let none = parse(FeedFormat::Ipsum, "141.98.11.11\t2\n", 3);
        assert!(none.verdict(10).expect_err("empty").contains("minimum count"));
    }

    #[test]
    fn csv_takes_the_first_address_field_and_skips_the_header() {
        let text = fixture("feodo_ipblocklist.csv");
        let parsed = parse(FeedFormat::Csv, &text, 3);
        assert_eq!(shown(&parsed), ["162.243.103.246", "50.16.16.211", "2604:a880:400:d1::9d4:f001", "139.59.80.108"]);
        assert_eq!((parsed.lines, parsed.rejected), (5, 1), "the header is not a rejection: {:?}", parsed.reasons);
        assert_eq!(guess(&text), FeedFormat::Csv);
    }

    #[test]
    fn plain_lists_take_addresses_ranges_and_ipv6_and_report_garbage() {
        let parsed = parse(FeedFormat::Plain, &fixture("blocklist.txt"), 3);
        assert_eq!(
            shown(&parsed),
            [
                "1.234.58.162",
                "103.142.21.30",
                "81.2.69.160",
                "81.2.69.0/28",
                "2001:470:1f0b:13a::2",
                "2400:cb00::/32",
                "89.248.165.74"
            ]
        );
        assert_eq!(parsed.rejected, 2);
        assert_eq!(
            parsed.reasons,
            ["line 10: \"this\" is not an address or CIDR", "line 11: \"999.1.1.1\" is not an address or CIDR"]
        );
    }

    #[test]
    fn an_html_error_page_or_a_body_of_garbage_is_not_a_copy() {
        let page = parse(FeedFormat::Netset, &fixture("outage.html"), 3);
        assert_eq!(page.verdict(100), Err("the answer is an HTML or XML page, not a list".into()));
        let garbage = parse(FeedFormat::Plain, "Service Unavailable\nplease retry later\n", 3);
        let error = garbage.verdict(100).expect_err("garbage");
        assert!(error.starts_with("none of its 2 lines is an address or CIDR (line 1:"), "{error}");
        assert_eq!(
            parse(FeedFormat::Plain, "# nothing today\n", 3).verdict(100),
            Err("the answer holds no address or CIDR".into())
        );
    }

    #[test]
    fn ranges_broader_than_a_slash_8_are_refused_and_long_values_cut() {
        let parsed = parse(FeedFormat::Plain, "0.0.0.0/0\n::/0\n45.0.0.0/8\n", 3);
        assert_eq!(shown(&parsed), ["45.0.0.0/8"]);
        assert_eq!(parsed.reasons, ["line 1: 0.0.0.0/0 is broader than /8", "line 2: ::/0 is broader than /16"]);
        let long = "x".repeat(200);
        let parsed = parse(FeedFormat::Plain, &long, 3);
        assert!(parsed.reasons[0].len() < 80, "{:?}", parsed.reasons);
    }

    #[test]
    fn formats_round_trip_by_name() {
        for format in FeedFormat::ALL {
            assert_eq!(format.name().parse::<FeedFormat>(), Ok(format));
        }
        assert!("xml".parse::<FeedFormat>().expect_err("unknown").contains("plain, csv, netset"));
    }
}
