//! The Grafana dashboard's panels, asked of Prometheus over the run and
//! drawn as time series in `svg.rs`'s panels: the queries and the metric
//! names are the dashboard's, so the picture shows what a Grafana user sees.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use super::prometheus::Prometheus;
use crate::BoxError;
use crate::svg::{self, document, escape, frame};

/// Grafana's `$__rate_interval` for a 1 s scrape is 4 s (four scrapes);
/// the picture uses a steadier window.
const RATE_WINDOW: &str = "10s";
/// One point per this many seconds.
const STEP: f64 = 2.0;
/// Line colours, in turn (Grafana's classic palette).
const COLOURS: [&str; 10] = [
    "#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9", "#705da0",
    "#508642", "#cca300",
];

/// The dashboard: its title, and each panel's title, unit and targets
/// (PromQL and legend format).
pub struct Dashboard {
    pub title: String,
    panels: Vec<PanelSpec>,
}

struct PanelSpec {
    title: String,
    unit: String,
    targets: Vec<(String, String)>,
}

/// A panel with its series over the run.
pub struct Panel {
    title: String,
    unit: String,
    /// Legend, points (seconds since the start, value).
    series: Vec<(String, Vec<(f64, f64)>)>,
    /// Series at 0 throughout, left out of the drawing (every exit and
    /// failure series exists from the first build, most stay at 0).
    zero: usize,
}

impl Dashboard {
    pub fn read(path: &Path) -> Result<Dashboard, BoxError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let json: Value = serde_json::from_str(&text)?;
        let panels = json["panels"]
            .as_array()
            .ok_or("the dashboard has no panels")?
            .iter()
            .map(|p| PanelSpec {
                title: p["title"].as_str().unwrap_or_default().to_owned(),
                unit: p["fieldConfig"]["defaults"]["unit"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                targets: p["targets"]
                    .as_array()
                    .map(|targets| {
                        targets
                            .iter()
                            .filter_map(|t| {
                                Some((
                                    t["expr"].as_str()?.to_owned(),
                                    t["legendFormat"].as_str().unwrap_or_default().to_owned(),
                                ))
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect();
        Ok(Dashboard {
            title: json["title"].as_str().unwrap_or("dashboard").to_owned(),
            panels,
        })
    }

    /// Every panel's series over [`from`, `to`].
    pub async fn query(
        &self,
        prometheus: &Prometheus,
        from: f64,
        to: f64,
    ) -> Result<Vec<Panel>, BoxError> {
        let mut panels = Vec::new();
        for spec in &self.panels {
            let mut series = Vec::new();
            for (expr, legend) in &spec.targets {
                let expr = expr.replace("$__rate_interval", RATE_WINDOW);
                for (labels, points) in prometheus.query_range(&expr, from, to, STEP).await? {
                    let points: Vec<(f64, f64)> = points
                        .into_iter()
                        .filter(|(_, v)| v.is_finite())
                        .map(|(t, v)| (t - from, v))
                        .collect();
                    if !points.is_empty() {
                        series.push((legend_of(legend, &labels), points));
                    }
                }
            }
            series.sort_by(|a, b| a.0.cmp(&b.0));
            let before = series.len();
            series.retain(|(_, points)| points.iter().any(|p| p.1 != 0.0));
            panels.push(Panel {
                title: spec.title.clone(),
                unit: unit_label(&spec.unit).to_owned(),
                zero: before - series.len(),
                series,
            });
        }
        Ok(panels)
    }
}

impl Panel {
    /// The panel's series and their peaks, for the log.
    pub fn summary(&self) -> String {
        if self.series.is_empty() {
            return format!(
                "{}: nothing happened ({} series at 0 throughout)",
                self.title, self.zero
            );
        }
        let peaks: Vec<String> = self
            .series
            .iter()
            .map(|(name, points)| {
                let peak = points.iter().map(|p| p.1).fold(0.0, f64::max);
                format!("{name} peak {}", svg::number(peak))
            })
            .collect();
        format!(
            "{} ({}): {}; {} series at 0 throughout",
            self.title,
            self.unit,
            peaks.join("; "),
            self.zero
        )
    }
}

/// Grafana's legend format: `{{label}}` replaced by the series' label.
fn legend_of(format: &str, labels: &Value) -> String {
    let mut out = format.to_owned();
    if let Some(labels) = labels.as_object() {
        for (name, value) in labels {
            out = out.replace(
                &format!("{{{{{name}}}}}"),
                value.as_str().unwrap_or_default(),
            );
        }
    }
    if out.is_empty() {
        labels.to_string()
    } else {
        out
    }
}

/// The words for a Grafana unit.
fn unit_label(unit: &str) -> &str {
    match unit {
        "reqps" => "requests/s",
        "ops" => "per second",
        "s" => "seconds",
        "short" => "values",
        other => other,
    }
}

/// All panels in one document, time on the x axis (seconds since the start
/// of the load, over `length` seconds).
pub fn draw(title: &str, panels: &[Panel], length: f64) -> String {
    let caption = format!(
        "{title}: a {length:.0} s run, Prometheus scraping cloud-api every second (ops/grafana/provision.json's queries)"
    );
    document(&caption, &[], panels.len(), |s, i, ox, oy| {
        draw_panel(s, &panels[i], length, ox, oy)
    })
}

fn draw_panel(s: &mut String, panel: &Panel, length: f64, ox: f64, oy: f64) {
    let highest = panel
        .series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let plot = frame(s, &panel.title, &panel.unit, highest, ox, oy);
    let x = |t: f64| plot.left + (t / length).clamp(0.0, 1.0) * plot.width;
    let bottom = plot.top + plot.height;
    for tick in 0..=4 {
        let t = length * tick as f64 / 4.0;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{t:.0} s</text>"#,
            x(t),
            bottom + 13.0
        );
    }
    let note = match (panel.series.is_empty(), panel.zero) {
        (true, 0) => Some("no series: none happened in this run".to_owned()),
        (true, n) => Some(format!("all {n} series at 0 throughout this run")),
        (false, 0) => None,
        (false, n) => Some(format!("+{n} series at 0 throughout, not drawn")),
    };
    if let Some(note) = note {
        let y = if panel.series.is_empty() {
            plot.top + plot.height / 2.0
        } else {
            plot.top + 10.0
        };
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{y:.1}" text-anchor="middle" fill="#808080">{}</text>"##,
            plot.left + plot.width / 2.0,
            escape(&note)
        );
    }
    // The legend under the plot, in columns.
    let (mut lx, mut ly) = (plot.left, bottom + 28.0);
    for (k, (name, points)) in panel.series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        // A gap in the data (no sample) breaks the line.
        let mut path = String::new();
        let mut previous: Option<f64> = None;
        for &(t, v) in points {
            let command = match previous {
                Some(p) if t - p <= 1.5 * STEP => 'L',
                _ => 'M',
            };
            let _ = write!(path, "{command}{:.1},{:.1} ", x(t), plot.y(v));
            previous = Some(t);
        }
        let _ = writeln!(
            s,
            r#"<path d="{}" fill="none" stroke="{colour}" stroke-width="1.5"><title>{}</title></path>"#,
            path.trim_end(),
            escape(name)
        );
        let width = 22.0 + 6.0 * name.chars().count() as f64;
        if lx + width > plot.left + plot.width + 20.0 {
            lx = plot.left;
            ly += 13.0;
        }
        if ly < oy + svg::PANEL_H - 4.0 {
            let _ = writeln!(
                s,
                r#"<rect x="{lx:.1}" y="{:.1}" width="10" height="3" fill="{colour}"/><text x="{:.1}" y="{ly:.1}" font-size="10">{}</text>"#,
                ly - 4.0,
                lx + 13.0,
                escape(name)
            );
        }
        lx += width;
    }
    plot.axes(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legends_take_the_series_labels() {
        let labels: Value = serde_json::json!({"service": "Tx", "exit": "success"});
        assert_eq!(legend_of("{{service}} {{exit}}", &labels), "Tx success");
    }

    #[test]
    fn the_committed_dashboard_reads() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dashboard = Dashboard::read(&root.join(super::super::DASHBOARD)).unwrap();
        assert!(dashboard.panels.len() >= 10);
        assert!(dashboard.panels.iter().all(|p| !p.targets.is_empty()));
    }

    #[test]
    fn a_panel_draws_its_lines_and_legend() {
        let panel = Panel {
            title: "t".into(),
            unit: "u".into(),
            series: vec![("a".into(), vec![(0.0, 1.0), (2.0, 2.0)])],
            zero: 1,
        };
        let s = draw("d", &[panel], 10.0);
        assert!(s.contains("<path d=\"M"), "{s}");
        assert!(s.contains(">a</text>"), "{s}");
        assert!(s.contains("+1 series at 0 throughout, not drawn"), "{s}");
    }
}
