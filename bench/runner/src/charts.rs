//! Charts drawn from the run (in `svg.rs`'s panels):
//! the throughput ratio per cell, latency percentiles per endpoint and the
//! server's CPU per request. Written beside RESULTS.md in `charts/` and
//! linked from it.

use std::fmt::Write as _;
use std::path::Path;

use crate::svg::{document, escape, frame, number};

use crate::BoxError;
use crate::load::{Endpoint, Run};
use crate::servers::{Kind, Mode};

/// The servers drawn, in order, with their colours.
const SERIES: [(Kind, &str); 3] = [
    (Kind::Baseline, "#7f7f7f"),
    (Kind::Provision, "#1f77b4"),
    (Kind::Effect, "#d62728"),
];

/// One bar group (an x position) of a panel.
struct Group {
    label: String,
    /// One value per series; `None` draws nothing.
    values: Vec<Option<f64>>,
}

/// One small chart with its own y scale.
struct Panel {
    title: String,
    unit: &'static str,
    groups: Vec<Group>,
    /// A horizontal line (a ratio's 1.0).
    reference: Option<f64>,
}

/// A grid of panels with a shared legend.
fn svg(title: &str, series: &[(&str, &str)], panels: &[Panel]) -> String {
    document(title, series, panels.len(), |s, i, ox, oy| {
        draw_panel(s, &panels[i], ox, oy, series)
    })
}

fn draw_panel(s: &mut String, panel: &Panel, ox: f64, oy: f64, series: &[(&str, &str)]) {
    let n_series = series.len();
    let max = panel
        .groups
        .iter()
        .flat_map(|g| g.values.iter().flatten().copied())
        .chain(panel.reference)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let plot = frame(s, &panel.title, panel.unit, max, ox, oy);
    let (left, top, plot_w, plot_h) = (plot.left, plot.top, plot.width, plot.height);
    let y = |v: f64| plot.y(v);
    let slot = plot_w / panel.groups.len().max(1) as f64;
    let bar = (slot * 0.8 / n_series.max(1) as f64).min(28.0);
    for (g, group) in panel.groups.iter().enumerate() {
        let start = left + slot * g as f64 + (slot - bar * n_series as f64) / 2.0;
        for (k, value) in group.values.iter().enumerate() {
            let Some(v) = value.filter(|v| v.is_finite()) else {
                continue;
            };
            let colour = series.get(k).map_or("#2ca02c", |s| s.1);
            let _ = writeln!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{colour}"><title>{}: {}</title></rect>"#,
                start + bar * k as f64,
                y(v),
                bar - 1.0,
                top + plot_h - y(v),
                escape(&group.label),
                number(v)
            );
        }
        let lx = left + slot * (g as f64 + 0.5);
        let ly = top + plot_h + 12.0;
        let _ = writeln!(
            s,
            r#"<text x="{lx:.1}" y="{ly:.1}" text-anchor="end" transform="rotate(-35 {lx:.1} {ly:.1})">{}</text>"#,
            escape(&group.label)
        );
    }
    if let Some(r) = panel.reference {
        let _ = writeln!(
            s,
            r#"<line x1="{left}" x2="{}" y1="{y}" y2="{y}" stroke="black" stroke-dasharray="4 3"/>"#,
            left + plot_w,
            y = y(r)
        );
    }
    plot.axes(s);
}

fn runs_of(
    runs: &[Run],
    kind: Kind,
    mode: Mode,
    endpoint: Endpoint,
    concurrency: u32,
) -> Vec<&Run> {
    let mut v: Vec<&Run> = runs
        .iter()
        .filter(|r| {
            r.server == kind
                && r.mode == mode
                && r.endpoint == endpoint
                && r.concurrency == concurrency
        })
        .collect();
    v.sort_by_key(|r| r.round);
    v
}

fn median_of(runs: &[&Run], f: fn(&Run) -> f64) -> Option<f64> {
    (!runs.is_empty())
        .then(|| crate::report::median(&runs.iter().map(|r| f(r)).collect::<Vec<_>>()))
}

/// Median over alternations of `top / bottom` requests per second.
fn rps_ratio(top: &[&Run], bottom: &[&Run]) -> Option<f64> {
    (!top.is_empty() && top.len() == bottom.len()).then(|| {
        crate::report::median(
            &top.iter()
                .zip(bottom)
                .map(|(t, b)| t.rps / b.rps)
                .collect::<Vec<_>>(),
        )
    })
}

fn short(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Health => "health",
        Endpoint::UsersList => "list",
        Endpoint::UserGet => "get",
        Endpoint::UserCreate => "create",
    }
}

/// Writes the charts into `dir` (`charts/` beside RESULTS.md); returns
/// their file names.
pub fn write(
    dir: &Path,
    runs: &[Run],
    modes: &[Mode],
    endpoints: &[Endpoint],
    concurrency: &[u32],
) -> Result<Vec<String>, BoxError> {
    std::fs::create_dir_all(dir)?;
    let has_effect = runs.iter().any(|r| r.server == Kind::Effect);
    let servers: Vec<(Kind, &str)> = SERIES
        .iter()
        .copied()
        .filter(|(k, _)| *k != Kind::Effect || has_effect)
        .collect();
    let mut written = Vec::new();

    // Throughput ratio per cell: provision ÷ baseline and, on a scale of
    // its own (an order of magnitude apart), provision ÷ Effect.
    let mut ratio_series = vec![("provision ÷ baseline", SERIES[1].1)];
    if has_effect {
        ratio_series.push(("provision ÷ Effect", SERIES[2].1));
    }
    let cells: Vec<(Endpoint, u32)> = endpoints
        .iter()
        .flat_map(|&e| concurrency.iter().map(move |&c| (e, c)))
        .collect();
    let mut panels = Vec::new();
    for &mode in modes {
        let of = |k, endpoint, c| runs_of(runs, k, mode, endpoint, c);
        panels.push(Panel {
            title: format!("provision ÷ baseline, {mode} mode"),
            unit: "ratio of requests/s (median)",
            reference: Some(1.0),
            groups: cells
                .iter()
                .map(|&(endpoint, c)| Group {
                    label: format!("{} c={c}", short(endpoint)),
                    values: vec![rps_ratio(
                        &of(Kind::Provision, endpoint, c),
                        &of(Kind::Baseline, endpoint, c),
                    )],
                })
                .collect(),
        });
        if has_effect {
            panels.push(Panel {
                title: format!("provision ÷ Effect, {mode} mode"),
                unit: "ratio of requests/s (median)",
                reference: Some(1.0),
                groups: cells
                    .iter()
                    .map(|&(endpoint, c)| {
                        let e = of(Kind::Effect, endpoint, c);
                        // Provision's runs of the rounds Effect ran in.
                        let p: Vec<&Run> = of(Kind::Provision, endpoint, c)
                            .into_iter()
                            .filter(|p| e.iter().any(|e| e.round == p.round))
                            .collect();
                        Group {
                            label: format!("{} c={c}", short(endpoint)),
                            values: vec![None, rps_ratio(&p, &e)],
                        }
                    })
                    .collect(),
            });
        }
    }
    let ratio_svg = svg(
        "Throughput ratio per cell (dashed: 1.0)",
        &ratio_series,
        &panels,
    );
    std::fs::write(dir.join("throughput-ratio.svg"), ratio_svg)?;
    written.push("throughput-ratio.svg".to_owned());

    // Latency percentiles per endpoint, at the run's middle concurrency.
    let names: Vec<(&str, &str)> = servers.iter().map(|(k, c)| (k.label(), *c)).collect();
    let c = concurrency
        .get(concurrency.len() / 2)
        .copied()
        .unwrap_or(32);
    type Of = fn(&Run) -> f64;
    let percentiles: [(&str, Of); 4] = [
        ("p50", |r| r.p50_us),
        ("p90", |r| r.p90_us),
        ("p99", |r| r.p99_us),
        ("p99.9", |r| r.p999_us),
    ];
    let panels: Vec<Panel> = modes
        .iter()
        .flat_map(|&m| endpoints.iter().map(move |&e| (m, e)))
        .map(|(mode, endpoint)| Panel {
            title: format!("{}, {mode}, c={c}", endpoint.request()),
            unit: "ms (median over alternations)",
            reference: None,
            groups: percentiles
                .iter()
                .map(|(name, f)| Group {
                    label: (*name).to_owned(),
                    values: servers
                        .iter()
                        .map(|(k, _)| {
                            median_of(&runs_of(runs, *k, mode, endpoint, c), *f).map(|v| v / 1000.0)
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    std::fs::write(
        dir.join("latency.svg"),
        svg(
            &format!("Latency percentiles per endpoint (wrk, c={c})"),
            &names,
            &panels,
        ),
    )?;
    written.push("latency.svg".to_owned());

    // CPU per request.
    let panels: Vec<Panel> = modes
        .iter()
        .flat_map(|&m| endpoints.iter().map(move |&e| (m, e)))
        .map(|(mode, endpoint)| Panel {
            title: format!("{}, {mode}", endpoint.request()),
            unit: "µs of server CPU per request",
            reference: None,
            groups: concurrency
                .iter()
                .map(|&c| Group {
                    label: format!("c={c}"),
                    values: servers
                        .iter()
                        .map(|(k, _)| {
                            median_of(&runs_of(runs, *k, mode, endpoint, c), |r| {
                                r.cpu_us_per_request
                            })
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    std::fs::write(
        dir.join("cpu-per-request.svg"),
        svg(
            "Server CPU time per request (median over alternations)",
            &names,
            &panels,
        ),
    )?;
    written.push("cpu-per-request.svg".to_owned());
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_run_draws_a_valid_document() {
        let s = svg("t", &[("a", "#000")], &[]);
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
    }
}
