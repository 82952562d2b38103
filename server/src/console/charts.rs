//! SVG charts rendered on the server: pure functions from numbers to markup, so pages need no
//! script and no outside resource to draw them. Colours and sizes come from attributes (not
//! inline styles), which the console's content security policy allows. Each chart carries a
//! `<title>` and a text alternative, and the pages print the numbers in a table beside it.

use maud::{Markup, html};

/// One group of bars (a day, a bucket) and its values, one per series.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Label under the group.
    pub label: String,
    /// One value per series.
    pub values: Vec<u64>,
}

/// A series: its name (for the legend) and its fill colour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: &'static str,
    /// SVG fill colour.
    pub color: &'static str,
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 28.0;
const TOP: f64 = 24.0;

/// A grouped bar chart. Bars scale to the largest value (an all-zero chart draws no bars);
/// at most about 12 group labels are printed so they never overlap, counted back from the last
/// group (today, on a chart of days), which is always labelled.
pub fn bars(title: &str, series: &[Series], groups: &[Group]) -> Markup {
    let max = groups.iter().flat_map(|g| g.values.iter().copied()).max().unwrap_or(0);
    let plot_w = WIDTH - LEFT - 8.0;
    let plot_h = HEIGHT - BOTTOM - TOP;
    let slot = if groups.is_empty() { plot_w } else { plot_w / groups.len() as f64 };
    let bar_w = (slot * 0.8 / series.len().max(1) as f64).max(1.0);
    let label_every = groups.len().div_ceil(12).max(1);
    let total: u64 = groups.iter().flat_map(|g| g.values.iter()).sum();
    let summary = format!("{title}: {} groups, {total} in all, at most {max} in one", groups.len());
    html! {
        svg class="chart" viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(summary) xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            line x1=(LEFT) y1=(TOP + plot_h) x2=(WIDTH - 8.0) y2=(TOP + plot_h) stroke="#888" stroke-width="1" {}
            text x=(LEFT - 4.0) y=(TOP + 4.0) text-anchor="end" font-size="11" fill="currentColor" { (max) }
            text x=(LEFT - 4.0) y=(TOP + plot_h) text-anchor="end" font-size="11" fill="currentColor" { "0" }
            @for (i, group) in groups.iter().enumerate() {
                @let x0 = LEFT + slot * i as f64 + slot * 0.1;
                @for (j, value) in group.values.iter().enumerate() {
                    @if *value > 0 {
                        @let h = bar_height(*value, max, plot_h);
                        rect x=(round(x0 + bar_w * j as f64)) y=(round(TOP + plot_h - h)) width=(round(bar_w)) height=(round(h))
                            fill=(series.get(j).map_or("#555", |s| s.color)) {
                            title { (group.label) ": " (value) " " (series.get(j).map_or("", |s| s.name)) }
                        }
                    }
                }
                @if (groups.len() - 1 - i).is_multiple_of(label_every) {
                    text x=(round(x0 + slot * 0.4)) y=(HEIGHT - 10.0) text-anchor="middle" font-size="10" fill="currentColor" { (group.label) }
                }
            }
            @for (j, s) in series.iter().enumerate() {
                rect x=(LEFT + 130.0 * j as f64) y="4" width="10" height="10" fill=(s.color) {}
                text x=(LEFT + 14.0 + 130.0 * j as f64) y="13" font-size="11" fill="currentColor" { (s.name) }
            }
        }
    }
}

/// Height of a bar of `value` when `max` fills `plot_h`; a non-zero value is at least one unit
/// high so it stays visible.
pub fn bar_height(value: u64, max: u64, plot_h: f64) -> f64 {
    if max == 0 || value == 0 { 0.0 } else { (value as f64 / max as f64 * plot_h).max(1.0) }
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// `days` consecutive UTC days ending with `today` (days since the epoch), each with the counts
/// found in `found` (`(day, values)`), zero where absent.
pub fn fill_days(today: i64, days: i64, found: &[(i64, Vec<u64>)], width: usize) -> Vec<Group> {
    (today - days + 1..=today)
        .map(|day| Group {
            label: day_label(day),
            values: found.iter().find(|(d, _)| *d == day).map(|(_, v)| v.clone()).unwrap_or_else(|| vec![0; width]),
        })
        .collect()
}

/// `MM-DD` of a day since the epoch.
pub fn day_label(day: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(day * 86_400)
        .map(|d| format!("{:02}-{:02}", u8::from(d.month()), d.day()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: [Series; 1] = [Series { name: "signals", color: "#2563eb" }];

    #[test]
    fn bars_scale_to_the_largest_value_and_skip_zeros() {
        assert_eq!(bar_height(10, 10, 100.0), 100.0);
        assert_eq!(bar_height(5, 10, 100.0), 50.0);
        assert_eq!(bar_height(1, 1_000_000, 100.0), 1.0, "small values stay visible");
        assert_eq!(bar_height(0, 10, 100.0), 0.0);
        assert_eq!(bar_height(0, 0, 100.0), 0.0);
        let svg =
            bars("Signals", &ONE, &[Group { label: "a".into(), values: vec![0] }, Group { label: "b".into(), values: vec![4] }])
                .into_string();
        assert_eq!(svg.matches("<rect").count(), 2, "one bar and one legend swatch: {svg}");
        assert!(svg.contains("b: 4 signals"), "{svg}");
        assert!(svg.contains("aria-label=\"Signals: 2 groups, 4 in all, at most 4 in one\""), "{svg}");
    }

    #[test]
    fn the_last_group_is_always_labelled() {
        for days in [1, 7, 13, 30, 31] {
            let groups: Vec<Group> = (0..days).map(|d| Group { label: format!("day{d}"), values: vec![1] }).collect();
            let svg = bars("Days", &ONE, &groups).into_string();
            assert!(svg.contains(&format!(">day{}</text>", days - 1)), "{days} days: {svg}");
            assert!(svg.matches("text-anchor=\"middle\"").count() <= 12, "{days} days: labels overlap");
        }
    }

    #[test]
    fn an_empty_chart_is_still_a_valid_svg() {
        let svg = bars("Nothing", &ONE, &[]).into_string();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 1, "only the legend");
    }

    #[test]
    fn labels_and_titles_are_escaped() {
        let svg = bars("<script>", &ONE, &[Group { label: "<b>".into(), values: vec![1] }]).into_string();
        assert!(!svg.contains("<script>") && !svg.contains("<b>"), "{svg}");
    }

    #[test]
    fn days_are_filled_with_zeros_and_labelled() {
        let today = 20_417; // 2025-11-25
        let groups = fill_days(today, 3, &[(today - 1, vec![2, 1])], 2);
        assert_eq!(groups.iter().map(|g| g.label.as_str()).collect::<Vec<_>>(), ["11-23", "11-24", "11-25"]);
        assert_eq!(groups.iter().map(|g| g.values.clone()).collect::<Vec<_>>(), [vec![0, 0], vec![2, 1], vec![0, 0]]);
    }
}
