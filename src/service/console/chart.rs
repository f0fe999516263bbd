//! The dashboard's charts: counts per day drawn as inline SVG on the
//! server (no script, no style attribute: the strict Content-Security-Policy
//! holds), each with a text alternative and the numbers as a table.

use std::fmt::Write as _;

use super::html::esc;
use crate::model::Timestamp;

const DAY: i64 = 86_400;

/// Counts per day for `days` days from the day holding `start`: the index
/// of `t` is whole days since that day's midnight (UTC); times outside the
/// range are not counted.
pub(super) fn per_day(
    times: impl IntoIterator<Item = Timestamp>,
    start: Timestamp,
    days: usize,
) -> Vec<u32> {
    let first = start.div_euclid(DAY) * DAY;
    let mut out = vec![0u32; days];
    for t in times {
        let i = (t - first).div_euclid(DAY);
        if let Some(slot) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) {
            *slot = slot.saturating_add(1);
        }
    }
    out
}

/// `YYYY-MM-DD` of the day `i` days after the day holding `start`.
pub(super) fn day_label(start: Timestamp, i: usize) -> String {
    let t = start.div_euclid(DAY) * DAY + DAY * i as i64;
    crate::clock::rfc3339(t)[..10].to_owned()
}

/// A bar chart of `counts` (one bar a day from the day of `start`), with
/// `title` as its accessible name, and the same numbers in a table inside
/// a `<details>`.
pub(super) fn bars(id: &str, title: &str, counts: &[u32], start: Timestamp) -> String {
    const W: usize = 640;
    const H: usize = 180;
    const TOP: usize = 16;
    const BOTTOM: usize = 24;
    const LEFT: usize = 32;
    let plot_h = H - TOP - BOTTOM;
    let max = counts.iter().copied().max().unwrap_or(0).max(1);
    let n = counts.len().max(1);
    let slot = (W - LEFT) as f64 / n as f64;
    let total: u64 = counts.iter().map(|c| u64::from(*c)).sum();
    let mut svg = format!(
        "<figure><svg id=\"{id}\" class=\"chart\" role=\"img\" aria-labelledby=\"{id}-t\" \
         viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title id=\"{id}-t\">{} ({total} in all, at most {max} a day)</title>\
         <line x1=\"{LEFT}\" y1=\"{}\" x2=\"{W}\" y2=\"{}\" class=\"axis\"/>\
         <text x=\"{}\" y=\"{}\" class=\"label\" text-anchor=\"end\">{max}</text>\
         <text x=\"{}\" y=\"{}\" class=\"label\" text-anchor=\"end\">0</text>",
        esc(title),
        TOP + plot_h,
        TOP + plot_h,
        LEFT - 4,
        TOP + 10,
        LEFT - 4,
        TOP + plot_h,
    );
    for (i, c) in counts.iter().enumerate() {
        let h = (*c as f64 / max as f64 * plot_h as f64).round();
        let x = LEFT as f64 + i as f64 * slot + 1.0;
        let y = (TOP + plot_h) as f64 - h;
        let _ = write!(
            svg,
            "<rect class=\"bar\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\">\
             <title>{}: {c}</title></rect>",
            (slot - 2.0).max(1.0),
            day_label(start, i)
        );
    }
    // Dates under the first, middle and last bars.
    for (i, x, anchor) in [
        (0, LEFT as f64, "start"),
        (
            n / 2,
            LEFT as f64 + (n / 2) as f64 * slot + slot / 2.0,
            "middle",
        ),
        (n - 1, W as f64, "end"),
    ] {
        let _ = write!(
            svg,
            "<text x=\"{x:.1}\" y=\"{}\" class=\"label\" text-anchor=\"{anchor}\">{}</text>",
            H - 6,
            &day_label(start, i)[5..]
        );
    }
    svg.push_str("</svg>");
    let _ = write!(
        svg,
        "<figcaption>{}</figcaption></figure><details><summary>{}: the numbers</summary>\
         <table><thead><tr><th scope=\"col\">Day</th><th scope=\"col\">Count</th></tr></thead><tbody>",
        esc(title),
        esc(title)
    );
    for (i, c) in counts.iter().enumerate() {
        let _ = write!(svg, "<tr><td>{}</td><td>{c}</td></tr>", day_label(start, i));
    }
    svg.push_str("</tbody></table></details>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_fall_on_their_utc_day() {
        // 2026-12-01T00:00:00Z
        let d0 = 1_796_083_200;
        let times = [
            d0,
            d0 + 5,
            d0 + DAY - 1,
            d0 + DAY,
            d0 + 29 * DAY + 10,
            d0 + 30 * DAY,
            d0 - 1,
        ];
        let c = per_day(times, d0 + 3600, 30);
        assert_eq!(c.len(), 30);
        assert_eq!(c[0], 3);
        assert_eq!(c[1], 1);
        assert_eq!(c[29], 1);
        assert_eq!(
            c.iter().sum::<u32>(),
            5,
            "the day after the range and the day before are out"
        );
        assert_eq!(day_label(d0 + 3600, 0), "2026-12-01");
        assert_eq!(day_label(d0, 31), "2027-01-01");
    }

    #[test]
    fn svg_has_a_bar_a_day_and_a_text_alternative() {
        let svg = bars("x", "Issued <per> day", &[0, 2, 1], 0);
        assert_eq!(svg.matches("<rect class=\"bar\"").count(), 3);
        assert!(svg.contains("Issued &lt;per&gt; day (3 in all, at most 2 a day)"));
        assert!(
            !svg.contains("style="),
            "no inline style: the CSP forbids it"
        );
        assert!(svg.contains("<td>1970-01-02</td><td>2</td>"));
    }
}
