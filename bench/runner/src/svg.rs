//! The SVG every chart of the runner is drawn with, by hand (no plotting
//! crate): a document holding a grid of panels, each panel a plot area with
//! its own y scale, title, grid lines and unit. The benchmark's bar charts
//! (`charts.rs`) and the telemetry demo's time series (`telemetry/chart.rs`)
//! draw inside it.

use std::fmt::Write as _;

pub const PANEL_W: f64 = 520.0;
pub const PANEL_H: f64 = 270.0;
pub const COLUMNS: usize = 2;

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A "nice" upper bound for the axis: 1, 2 or 5 times a power of ten.
pub fn nice_max(v: f64) -> f64 {
    if v.is_nan() || v <= 0.0 || v.is_infinite() {
        return 1.0;
    }
    let power = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|&m| m >= v)
        .unwrap_or(10.0 * power)
}

pub fn number(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 0.01 || v == 0.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1e}")
    }
}

/// A document of `panels` panels in a grid, under `title` and a legend
/// (`series`: name and colour; empty for none). `draw` draws panel `i` at
/// its origin.
pub fn document(
    title: &str,
    series: &[(&str, &str)],
    panels: usize,
    mut draw: impl FnMut(&mut String, usize, f64, f64),
) -> String {
    let rows = panels.div_ceil(COLUMNS).max(1);
    let width = PANEL_W * COLUMNS.min(panels.max(1)) as f64;
    let height = 60.0 + PANEL_H * rows as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="10" y="20" font-size="15" font-weight="bold">{}</text>"#,
        escape(title)
    );
    let mut x = 10.0;
    for (name, colour) in series {
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="32" width="12" height="12" fill="{colour}"/><text x="{}" y="42">{}</text>"#,
            x + 16.0,
            escape(name)
        );
        x += 24.0 + 7.0 * name.len() as f64;
    }
    for i in 0..panels {
        let (ox, oy) = (
            PANEL_W * (i % COLUMNS) as f64,
            60.0 + PANEL_H * (i / COLUMNS) as f64,
        );
        draw(&mut s, i, ox, oy);
    }
    s.push_str("</svg>\n");
    s
}

/// One panel's plot area and its y scale (0 to `max`).
pub struct Plot {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
    pub max: f64,
}

impl Plot {
    /// The y coordinate of `v`, clamped to the plot.
    pub fn y(&self, v: f64) -> f64 {
        self.top + self.height - (v / self.max).clamp(0.0, 1.0) * self.height
    }

    /// The axis lines (drawn last, over what the panel drew).
    pub fn axes(&self, s: &mut String) {
        let (left, top, bottom) = (self.left, self.top, self.top + self.height);
        let _ = writeln!(
            s,
            r#"<line x1="{left}" x2="{left}" y1="{top}" y2="{bottom}" stroke="black"/><line x1="{left}" x2="{}" y1="{bottom}" y2="{bottom}" stroke="black"/>"#,
            left + self.width,
        );
    }
}

/// Draws the frame of a panel at (`ox`, `oy`): its title, the y grid up
/// to a nice bound above `highest`, and the unit; returns its plot area.
pub fn frame(s: &mut String, title: &str, unit: &str, highest: f64, ox: f64, oy: f64) -> Plot {
    let plot = Plot {
        left: ox + 60.0,
        top: oy + 24.0,
        width: PANEL_W - 80.0,
        height: PANEL_H - 90.0,
        max: nice_max(highest * 1.05),
    };
    let left = plot.left;
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="{}" font-size="12" font-weight="bold">{}</text>"#,
        oy + 14.0,
        escape(title)
    );
    for tick in 0..=4 {
        let v = plot.max * tick as f64 / 4.0;
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{y}" y2="{y}" stroke="#e0e0e0"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
            left + plot.width,
            left - 4.0,
            plot.y(v) + 4.0,
            number(v),
            y = plot.y(v),
        );
    }
    let middle = plot.top + plot.height / 2.0;
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{middle}" text-anchor="middle" transform="rotate(-90 {} {middle})">{}</text>"#,
        ox + 14.0,
        ox + 14.0,
        escape(unit)
    );
    plot
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_max_rounds_up_to_one_two_or_five() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(1.12), 2.0);
        assert_eq!(nice_max(70_458.0), 100_000.0);
        assert_eq!(nice_max(42.0), 50.0);
    }

    #[test]
    fn an_empty_document_is_valid() {
        let s = document("t", &[("a", "#000")], 0, |_, _, _, _| {});
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
    }
}
