//! `bench/RESULTS.md` and `bench/results.json`: the figures, the ratios,
//! the targets (met or missed), the machine and the exact commands.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use serde_json::json;

use crate::Plan;
use crate::ceiling::{self, Ceiling};
use crate::conncost::ConnCost;
use crate::load::{Contract, Endpoint, Memory, Run};
use crate::machine::Machine;
use crate::micro::{self, Micro};
use crate::servers::{self, Kind, Mode};
use crate::worker::Worker;

/// Wall-clock times of this run, seconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Wall {
    pub build_s: f64,
    pub measure_s: f64,
    pub total_s: f64,
}

/// The last `--quick` run's wall time, if there was one on this checkout.
#[derive(Debug, Clone, Serialize)]
pub struct QuickWall {
    pub total_s: f64,
    pub measure_s: f64,
    pub date_utc: String,
}

/// Everything measured.
pub struct Report {
    pub plan: Plan,
    pub machine: Machine,
    pub wrk_version: String,
    pub priority: String,
    pub postgres: String,
    pub seed: String,
    pub load_before: String,
    pub load_after: String,
    pub wall: Wall,
    pub quick_wall: Option<QuickWall>,
    pub micro: Option<Micro>,
    pub conn_cost: Option<ConnCost>,
    pub bad_input: Option<Vec<crate::badinput::Row>>,
    pub profile: Option<crate::profile::Profile>,
    pub ceiling: Vec<Ceiling>,
    pub contract: Contract,
    pub runs: Vec<Run>,
    pub rss: Vec<Memory>,
    pub worker: Worker,
    /// The Effect server's install (`None`: `--skip-effect`).
    pub effect_install: Option<crate::effect::Install>,
    /// The contract check, baseline against the Effect server.
    pub effect_contract: Option<Contract>,
    /// The default-configuration cell (`None`: not run).
    pub defaults: Option<crate::defaults::Defaults>,
    /// The charts written beside the report (`charts/<name>`).
    pub charts: Vec<String>,
}

/// One (mode, endpoint, concurrency) cell, both servers, all rounds.
#[derive(Debug, Clone, Serialize)]
struct Cell {
    mode: Mode,
    endpoint: Endpoint,
    concurrency: u32,
    rounds: usize,
    baseline: Side,
    provision: Side,
    /// provision / baseline requests per second, per alternation.
    rps_ratio: Spread,
    /// provision / baseline p99 latency, per alternation.
    p99_ratio: Spread,
    /// provision / baseline server CPU time per request, per alternation.
    cpu_ratio: Spread,
    ceiling_tps: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
struct Side {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    requests: u64,
    errors: u64,
    sessions_opened: i64,
    metric_connections_opened: Option<u64>,
    peak_backends: i64,
    ceiling_fraction: Option<f64>,
    cpu_us_per_request: f64,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct Spread {
    min: f64,
    median: f64,
    max: f64,
}

/// A target and whether it was met.
#[derive(Debug, Clone, Serialize)]
struct Target {
    target: String,
    measured: String,
    met: Option<bool>,
}

/// The median (NaN for none).
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if !n.is_multiple_of(2) => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn spread(values: &[f64]) -> Spread {
    Spread {
        min: values.iter().copied().fold(f64::INFINITY, f64::min),
        median: median(values),
        max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    }
}

/// Medians (and sums of the counts) over one server's runs of a cell.
/// Latency and CPU per request come from the runs that answered anything
/// (NaN, `null` in JSON, if none did).
fn side(runs: &[&Run], ceiling_tps: Option<f64>) -> Side {
    let answered: Vec<&Run> = runs.iter().copied().filter(|r| r.requests > 0).collect();
    let of = |f: fn(&Run) -> f64| median(&answered.iter().map(|r| f(r)).collect::<Vec<_>>());
    let rps = median(&runs.iter().map(|r| r.rps).collect::<Vec<_>>());
    Side {
        rps,
        p50_us: of(|r| r.p50_us),
        p99_us: of(|r| r.p99_us),
        p999_us: of(|r| r.p999_us),
        requests: runs.iter().map(|r| r.requests).sum(),
        errors: runs.iter().map(|r| r.errors).sum(),
        sessions_opened: runs.iter().map(|r| r.sessions_opened).sum(),
        metric_connections_opened: runs.iter().map(|r| r.metric_connections_opened).sum(),
        peak_backends: runs.iter().map(|r| r.peak_backends).max().unwrap_or(0),
        ceiling_fraction: ceiling_tps.map(|t| rps / t),
        cpu_us_per_request: of(|r| r.cpu_us_per_request),
    }
}

/// One (endpoint, concurrency) of the Worker in workerd, with the native
/// provision server in per-request mode (Workers' only mode) from the same
/// run for comparison.
#[derive(Debug, Clone, Serialize)]
struct WorkerCell {
    endpoint: Endpoint,
    concurrency: u32,
    rounds: usize,
    worker: Side,
    /// provision in per-request mode, this endpoint and concurrency
    /// (medians over its alternations), if it was measured in this run.
    native: Option<Side>,
    /// worker / native, of the medians.
    rps_ratio: Option<f64>,
    p99_ratio: Option<f64>,
    cpu_ratio: Option<f64>,
}

/// Health at one concurrency: the reference Worker against the bare
/// workers-rs Worker, both in workerd, alternated in the same run.
#[derive(Debug, Clone, Serialize)]
struct BareCell {
    concurrency: u32,
    /// Runs of each that answered requests.
    rounds: usize,
    worker: Side,
    bare: Side,
    /// Reference / bare, of the medians of workerd's CPU per request.
    cpu_ratio: f64,
    rps_ratio: f64,
}

fn ms(us: f64) -> String {
    if us >= 100_000.0 {
        format!("{:.0} ms", us / 1000.0)
    } else if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

fn count(n: f64) -> String {
    let n = n.round() as i64;
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn mark(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

/// Reads the wall time of the last `--quick` run on this checkout.
pub fn last_quick_wall(root: &Path) -> Option<QuickWall> {
    let path = crate::tools::target_dir(root)
        .join("bench-quick")
        .join("results.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    Some(QuickWall {
        total_s: v["wall_time"]["total_s"].as_f64()?,
        measure_s: v["wall_time"]["measure_s"].as_f64()?,
        date_utc: v["machine"]["date_utc"].as_str()?.to_owned(),
    })
}

impl Report {
    pub fn new(plan: &Plan, _root: &Path) -> Report {
        Report {
            plan: plan.clone(),
            machine: Machine::default(),
            wrk_version: String::new(),
            priority: String::new(),
            postgres: String::new(),
            seed: String::new(),
            load_before: String::new(),
            load_after: String::new(),
            wall: Wall::default(),
            quick_wall: None,
            micro: None,
            conn_cost: None,
            bad_input: None,
            profile: None,
            ceiling: Vec::new(),
            contract: Contract::default(),
            runs: Vec::new(),
            rss: Vec::new(),
            worker: Worker::not_run("not run"),
            effect_install: None,
            effect_contract: None,
            defaults: None,
            charts: Vec::new(),
        }
    }

    fn cells(&self) -> Vec<Cell> {
        let mut cells = Vec::new();
        for &mode in &self.plan.modes {
            for &endpoint in &self.plan.endpoints {
                for &concurrency in &self.plan.concurrency {
                    let of = |kind: Kind| -> Vec<&Run> {
                        let mut runs: Vec<&Run> = self
                            .runs
                            .iter()
                            .filter(|r| {
                                r.mode == mode
                                    && r.endpoint == endpoint
                                    && r.concurrency == concurrency
                                    && r.server == kind
                            })
                            .collect();
                        runs.sort_by_key(|r| r.round);
                        runs
                    };
                    let (b, p) = (of(Kind::Baseline), of(Kind::Provision));
                    if b.is_empty() || b.len() != p.len() {
                        continue;
                    }
                    let ceiling_tps = self
                        .ceiling
                        .iter()
                        .find(|c| {
                            c.mode == mode && c.endpoint == endpoint && c.concurrency == concurrency
                        })
                        .map(|c| c.tps);
                    let side = |runs: &[&Run]| side(runs, ceiling_tps);
                    let rps_ratios: Vec<f64> =
                        b.iter().zip(&p).map(|(b, p)| p.rps / b.rps).collect();
                    let p99_ratios: Vec<f64> =
                        b.iter().zip(&p).map(|(b, p)| p.p99_us / b.p99_us).collect();
                    let cpu_ratios: Vec<f64> = b
                        .iter()
                        .zip(&p)
                        .map(|(b, p)| p.cpu_us_per_request / b.cpu_us_per_request)
                        .collect();
                    cells.push(Cell {
                        mode,
                        endpoint,
                        concurrency,
                        rounds: b.len(),
                        baseline: side(&b),
                        provision: side(&p),
                        rps_ratio: spread(&rps_ratios),
                        p99_ratio: spread(&p99_ratios),
                        cpu_ratio: spread(&cpu_ratios),
                        ceiling_tps,
                    });
                }
            }
        }
        cells
    }

    fn worker_cells(&self, cells: &[Cell]) -> Vec<WorkerCell> {
        let mut out = Vec::new();
        for &endpoint in &self.worker.endpoints {
            for &concurrency in &self.worker.concurrency {
                let runs: Vec<&Run> = self
                    .worker
                    .runs
                    .iter()
                    .filter(|r| r.endpoint == endpoint && r.concurrency == concurrency)
                    .collect();
                if runs.is_empty() {
                    continue;
                }
                let native = cells
                    .iter()
                    .find(|c| {
                        c.mode == Mode::PerRequest
                            && c.endpoint == endpoint
                            && c.concurrency == concurrency
                    })
                    .map(|c| c.provision.clone());
                let worker = side(&runs, None);
                let ratio = |f: fn(&Side) -> f64| native.as_ref().map(|n| f(&worker) / f(n));
                out.push(WorkerCell {
                    endpoint,
                    concurrency,
                    rounds: runs.len(),
                    rps_ratio: ratio(|s| s.rps),
                    p99_ratio: ratio(|s| s.p99_us),
                    cpu_ratio: ratio(|s| s.cpu_us_per_request),
                    worker,
                    native,
                });
            }
        }
        out
    }

    fn bare_cells(&self) -> Vec<BareCell> {
        let Some(versus) = &self.worker.versus_bare else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for &concurrency in &versus.concurrency {
            let of = |kind: Kind| -> Vec<&Run> {
                versus
                    .runs
                    .iter()
                    .filter(|r| r.server == kind && r.concurrency == concurrency)
                    .filter(|r| r.requests > 0)
                    .collect()
            };
            let (worker_runs, bare_runs) = (of(Kind::Worker), of(Kind::WorkerBare));
            if worker_runs.is_empty() || bare_runs.is_empty() {
                continue;
            }
            let worker = side(&worker_runs, None);
            let bare = side(&bare_runs, None);
            out.push(BareCell {
                concurrency,
                rounds: worker_runs.len().min(bare_runs.len()),
                cpu_ratio: worker.cpu_us_per_request / bare.cpu_us_per_request,
                rps_ratio: worker.rps / bare.rps,
                worker,
                bare,
            });
        }
        out
    }

    fn targets(&self, cells: &[Cell], worker_cells: &[WorkerCell]) -> Vec<Target> {
        let mut targets = Vec::new();
        let list = |filter: &dyn Fn(&Cell) -> bool, value: &dyn Fn(&Cell) -> f64| -> String {
            cells
                .iter()
                .filter(|c| filter(c))
                .map(|c| {
                    format!(
                        "{} c={}: {:.3} (CPU/request ratio {:.3})",
                        c.mode,
                        c.concurrency,
                        value(c),
                        c.cpu_ratio.median
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        let all = |filter: &dyn Fn(&Cell) -> bool, ok: &dyn Fn(&Cell) -> bool| -> Option<bool> {
            let selected: Vec<&Cell> = cells.iter().filter(|c| filter(c)).collect();
            if selected.is_empty() {
                None
            } else {
                Some(selected.iter().all(|c| ok(c)))
            }
        };
        let instructions = |endpoint: Endpoint| -> String {
            self.profile
                .as_ref()
                .and_then(|p| p.rows.iter().find(|r| r.endpoint == endpoint))
                .map_or(String::new(), |r| {
                    format!(
                        "; instructions per request (callgrind, pool) {:.3}x",
                        r.ratio
                    )
                })
        };
        let health = |c: &Cell| c.endpoint == Endpoint::Health;
        targets.push(Target {
            target: "health: provision rps >= 0.98 x baseline (median ratio), every mode and concurrency".into(),
            measured: list(&health, &|c| c.rps_ratio.median) + &instructions(Endpoint::Health),
            met: all(&health, &|c| c.rps_ratio.median >= 0.98),
        });
        for endpoint in [Endpoint::UsersList, Endpoint::UserGet] {
            let filter = move |c: &Cell| c.endpoint == endpoint && c.mode == Mode::Pool;
            targets.push(Target {
                target: format!(
                    "{endpoint}, pool mode: provision rps >= 0.97 x baseline (median ratio)"
                ),
                measured: list(&filter, &|c| c.rps_ratio.median) + &instructions(endpoint),
                met: all(&filter, &|c| c.rps_ratio.median >= 0.97),
            });
        }
        let misses: Vec<String> = cells
            .iter()
            .filter(|c| c.p99_ratio.median > 1.05)
            .map(|c| {
                format!(
                    "{} {} c={}: {:.2}",
                    c.mode, c.endpoint, c.concurrency, c.p99_ratio.median
                )
            })
            .collect();
        let p99_met = cells.len() - misses.len();
        targets.push(Target {
            target: "p99 latency <= 1.05 x baseline (median ratio), every cell".into(),
            measured: if misses.is_empty() {
                format!("{p99_met}/{} cells", cells.len())
            } else {
                format!(
                    "{p99_met}/{} cells; over: {}",
                    cells.len(),
                    misses.join("; ")
                )
            },
            met: if cells.is_empty() {
                None
            } else {
                Some(misses.is_empty())
            },
        });
        let micro = self.micro.as_ref();
        let scope = |k: &str| micro.and_then(|m| m.scope.get(k).copied());
        let layer = |k: &str| micro.and_then(|m| m.layer.get(k).copied());
        let empty = scope("empty_open_close");
        let outside = layer("interleaved_outside_overhead");
        let per_route = layer("interleaved_layer_overhead");
        let identity = layer("interleaved_identity_overhead");
        let ns = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0} ns"));
        targets.push(Target {
            target: "empty request scope <= 150 ns: a request that asks for nothing (scope open + close; the layer around the router; provision's share of the per-route layer)".into(),
            measured: format!(
                "scope open + close_if_idle {}; ProvisionLayer around the router +{} over plain axum; per route (Router::layer, as cloud-api) +{}, of which {} is axum's own per-route layering (identity layer), so provision's share {}",
                ns(empty),
                ns(outside),
                ns(per_route),
                ns(identity),
                ns(per_route.zip(identity).map(|(p, i)| p - i)),
            ),
            met: match (empty, outside, per_route, identity) {
                (Some(e), Some(o), Some(p), Some(i)) => Some(e <= 150.0 && o <= 150.0 && p - i <= 150.0),
                _ => None,
            },
        });
        let cached = scope("memoised_cached");
        let resolved = scope("memoised_resolve");
        let extractor = layer("memoised_dep_extractor");
        let dep = layer("interleaved_dep_extractor");
        let extension = layer("interleaved_extension_extractor");
        let share = layer("interleaved_dep_over_extension");
        let ns1 = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} ns"));
        targets.push(Target {
            target: "memoised hit <= 30 ns: provision's share of the Dep<T> extractor a handler uses (over axum's Extension<Arc<T>> in the same loop, interleaved); also RequestScope::cached and ::resolve".into(),
            measured: format!(
                "Dep<T> extractor {} (criterion), interleaved {} against Extension<Arc<T>> {}: provision's share {}; cached {}; resolve {}",
                ns1(extractor),
                ns1(dep),
                ns1(extension),
                ns1(share),
                ns1(cached),
                ns1(resolved),
            ),
            met: share.zip(cached).map(|(s, c)| s <= 30.0 && c <= 30.0),
        });
        let health_cells: Vec<&Cell> = cells.iter().filter(|c| health(c)).collect();
        let opened: Vec<String> = health_cells
            .iter()
            .map(|c| {
                format!(
                    "{} c={}: sessions {}, metric {}, peak backends {}",
                    c.mode,
                    c.concurrency,
                    c.provision.sessions_opened,
                    c.provision
                        .metric_connections_opened
                        .map_or("-".into(), |m| m.to_string()),
                    c.provision.peak_backends
                )
            })
            .collect();
        targets.push(Target {
            target: "health opens 0 database connections at every concurrency (provision; pg_stat_database sessions and db_connections_opened_total during the runs)".into(),
            measured: opened.join("; "),
            met: if health_cells.is_empty() {
                None
            } else {
                Some(health_cells.iter().all(|c| {
                    c.provision.sessions_opened == 0
                        && c.provision.metric_connections_opened.unwrap_or(0) == 0
                }))
            },
        });
        let worker_health: Vec<&WorkerCell> = worker_cells
            .iter()
            .filter(|c| c.endpoint == Endpoint::Health)
            .collect();
        targets.push(Target {
            target: "health opens 0 database connections in workerd too (the Worker build; pg_stat_database sessions and the Worker's db_connections_opened_total during the runs)".into(),
            measured: if worker_health.is_empty() {
                format!("{}: {}", self.worker.status, self.worker.reason)
            } else {
                worker_health
                    .iter()
                    .map(|c| {
                        format!(
                            "c={}: sessions {}, metric {}, peak backends {}",
                            c.concurrency,
                            c.worker.sessions_opened,
                            c.worker
                                .metric_connections_opened
                                .map_or("-".into(), |m| m.to_string()),
                            c.worker.peak_backends
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            },
            met: if worker_health.is_empty() {
                None
            } else {
                Some(worker_health.iter().all(|c| {
                    c.worker.sessions_opened == 0
                        && c.worker.metric_connections_opened.unwrap_or(0) == 0
                }))
            },
        });
        let bare_cells = self.bare_cells();
        targets.push(Target {
            target: format!(
                "Workers: workerd's CPU per health request, the reference Worker / a bare workers-rs Worker built the same way, alternated (at most {:.1})",
                crate::worker::BARE_TARGET
            ),
            measured: if bare_cells.is_empty() {
                format!("{}: {}", self.worker.status, self.worker.reason)
            } else {
                bare_cells
                    .iter()
                    .map(|c| {
                        format!(
                            "c={}: {:.2} ({:.0} / {:.0} us)",
                            c.concurrency,
                            c.cpu_ratio,
                            c.worker.cpu_us_per_request,
                            c.bare.cpu_us_per_request
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            },
            met: if bare_cells.is_empty() {
                None
            } else {
                Some(
                    bare_cells
                        .iter()
                        .all(|c| c.cpu_ratio <= crate::worker::BARE_TARGET),
                )
            },
        });
        if let Some(d) = &self.defaults {
            let ratio = d.ratio(|r| r.rps);
            targets.push(Target {
                target: format!(
                    "the default configuration (`cloud-api serve`, no RUST_LOG: an access log line per request) within 10 % of the same server with logging off: health, c = {}, median rps ratio >= 0.90",
                    crate::defaults::CONCURRENCY
                ),
                measured: format!(
                    "{ratio:.3} (CPU per request ratio {:.3}); {} access log lines written",
                    d.ratio(|r| r.cpu_us_per_request),
                    d.access_lines
                ),
                met: Some(ratio >= 0.90 && d.access_lines >= d.measured_requests),
            });
        }
        if let Some(rows) = &self.bad_input {
            let provision: Vec<_> = rows
                .iter()
                .filter(|r| r.server == servers::Kind::Provision)
                .collect();
            targets.push(Target {
                target: "a request refused for bad input (4xx) opens 0 database connections (provision, per-request mode, valid token; pg_stat_database sessions and db_connections_opened_total)".into(),
                measured: provision
                    .iter()
                    .map(|r| format!("{}: {:.2} per request", r.case, r.per_request()))
                    .collect::<Vec<_>>()
                    .join("; "),
                met: Some(provision.iter().all(|r| {
                    r.sessions_opened == 0
                        && r.metric_connections_opened.unwrap_or(0) == 0
                        && r.answered_as_expected == r.requests
                })),
            });
        }
        targets
    }

    /// The Markdown report and its JSON twin.
    pub fn render(&self) -> (String, String) {
        let cells = self.cells();
        let worker_cells = self.worker_cells(&cells);
        let targets = self.targets(&cells, &worker_cells);
        let json = json!({
            "mode": if self.plan.quick { "quick" } else { "full" },
            "machine": self.machine,
            "wall_time": self.wall,
            "last_quick_wall_time": self.quick_wall,
            "tools": { "wrk": self.wrk_version, "postgresql": self.postgres },
            "settings": {
                "rounds": self.plan.rounds,
                "warmup_s": self.plan.warmup_s,
                "duration_s": self.plan.duration_s,
                "concurrency": self.plan.concurrency,
                "pgbench_s": self.plan.pgbench_s,
                "pool_size": servers::POOL_SIZE,
                "seed": self.seed,
            },
            "load_average": { "before": self.load_before, "after": self.load_after },
            "priority": self.priority,
            "commands": self.commands(),
            "targets": targets,
            "contract": self.contract,
            "cells": cells,
            "runs": self.runs,
            "memory": self.rss,
            "ceiling": self.ceiling,
            "connection_cost": self.conn_cost,
            "connections_per_4xx": self.bad_input,
            "micro": self.micro,
            "callgrind": self.profile,
            "default_configuration": self.defaults,
            "effect": {
                "install": self.effect_install,
                "contract": self.effect_contract,
                "cells": crate::effect::cells(&self.runs),
            },
            "charts": self.charts,
            "worker": {
                "status": self.worker.status,
                "reason": self.worker.reason,
                "build": self.worker.build,
                "endpoints": self.worker.endpoints,
                "concurrency": self.worker.concurrency,
                "rounds": self.worker.rounds,
                "measure_s": self.worker.measure_s,
                "idle_rss_kib": self.worker.idle_rss_kib,
                "peak_rss_kib": self.worker.peak_rss_kib,
                "failures": self.worker.failures,
                "log": self.worker.log,
                "commands": self.worker.commands(),
                "cells": worker_cells,
                "runs": self.worker.runs,
                "bare_build": self.worker.bare_build,
                "versus_bare": self.worker.versus_bare,
                "versus_bare_cells": self.bare_cells(),
            },
        });
        let json = serde_json::to_string_pretty(&json).expect("serialisable") + "\n";
        (self.markdown(&cells, &worker_cells, &targets), json)
    }

    fn commands(&self) -> Vec<String> {
        let mut commands = vec![format!(
            "cargo run -p bench-runner --release{}",
            if self.plan.only_worker {
                " -- --only-worker"
            } else if self.plan.quick {
                " -- --quick"
            } else {
                ""
            }
        )];
        if self.plan.only_worker {
            // Only the database setup and the Workers ran.
            commands.push("cargo build --release -p cloud-api".into());
            commands.push("target/release/cloud-api migrate --database-url postgres://postgres@127.0.0.1:PGPORT/DB".into());
            commands.extend(self.worker.commands());
            return commands;
        }
        commands.push("cargo build --release -p cloud-api -p bench-baseline".into());
        if self.micro.is_some() {
            commands.extend(micro::commands(&self.plan));
        }
        commands.push("target/release/cloud-api migrate --database-url postgres://postgres@127.0.0.1:PGPORT/DB".into());
        commands.push(
            "target/release/cloud-api token create --email user1@bench.example --database-url ..."
                .into(),
        );
        for kind in [Kind::Baseline, Kind::Provision] {
            for mode in Mode::ALL {
                commands.push(servers::command_line(kind, mode));
            }
        }
        if self.effect_install.is_some() {
            commands.push(format!(
                "cd {} && npm ci --ignore-scripts --no-audit --no-fund",
                crate::effect::DIR
            ));
            for mode in Mode::ALL {
                commands.push(crate::effect::command_line(mode));
            }
        }
        if let Some(d) = &self.defaults {
            commands.extend(d.commands.iter().cloned());
        }
        commands.push(format!(
            "wrk -t<min(C,2)> -c<C> -d{}s --timeout 10s -s bench/wrk/get.lua http://127.0.0.1:PORT/api/users?limit=10 -- <token>   (after a {} s warm-up run; post_user.lua for POST)",
            self.plan.duration_s, self.plan.warmup_s
        ));
        for mode in Mode::ALL {
            commands.push(ceiling::command_line(mode));
        }
        commands.push("pgbench -n -M extended -C -c {1,32} -f bench/pgbench/connect_select1.sql -U {postgres | bench_scram} ...".into());
        commands.extend(self.worker.commands());
        commands
    }

    fn markdown(&self, cells: &[Cell], worker_cells: &[WorkerCell], targets: &[Target]) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let _ = writeln!(md, "# Benchmark results\n");
        let _ = writeln!(
            md,
            "provision (the reference service `apps/cloud-api`) against a hand-written axum \
             baseline (`bench/baseline`) with the same users contract, and against PostgreSQL's \
             own ceiling (pgbench running the same SQL). Written by `bench/runner`; method and \
             analysis in [bench/README.md](README.md). Raw figures, every run: \
             [results.json](results.json).\n"
        );
        if self.plan.quick {
            let _ = writeln!(
                md,
                "> **Quick run** (`--quick`): one concurrency, two alternations, 1 s runs; the Worker: health and users list, one run each. A smoke test, not the reference figures.\n"
            );
        }
        let _ = writeln!(md, "## Machine and run\n");
        let _ = writeln!(md, "| | |\n|---|---|");
        let _ = writeln!(md, "| date | {} |", m.date_utc);
        let _ = writeln!(md, "| commit | {} |", m.commit);
        let _ = writeln!(
            md,
            "| CPU | {} ({} cores online, `nproc`) |",
            m.cpu_model, m.nproc
        );
        let _ = writeln!(md, "| memory | {:.1} GiB |", m.memory_gib);
        let _ = writeln!(md, "| kernel | {} ({}) |", m.kernel, m.os);
        let _ = writeln!(md, "| rustc | {} |", m.rustc);
        let _ = writeln!(
            md,
            "| PostgreSQL | {} (throwaway cluster: fsync off, shared_buffers 128MB, max_connections {}) |",
            self.postgres,
            crate::setup::MAX_CONNECTIONS
        );
        let _ = writeln!(md, "| load generator | {} |", self.wrk_version);
        let _ = writeln!(md, "| data | {} |", self.seed);
        let _ = writeln!(
            md,
            "| load average (1/5/15 min) | before {}, after {} |",
            self.load_before, self.load_after
        );
        let _ = writeln!(md, "| scheduling priority | {} |", self.priority);
        let _ = writeln!(
            md,
            "| wall time | {:.0} s in all: {:.0} s building (cached), {:.0} s measuring{} |",
            self.wall.total_s,
            self.wall.build_s,
            self.wall.measure_s,
            self.worker
                .build
                .as_ref()
                .map_or(String::new(), |b| format!(
                    "; of which the Worker in workerd: {:.0} s building, {:.0} s measuring",
                    b.seconds, self.worker.measure_s
                ))
        );
        if let Some(q) = &self.quick_wall {
            let _ = writeln!(
                md,
                "| `--quick` wall time | {:.0} s in all, {:.0} s measuring (last quick run, {}) |",
                q.total_s, q.measure_s, q.date_utc
            );
        }
        let _ = writeln!(
            md,
            "| settings | {} alternations (baseline, provision, baseline, ...) per cell; {} s warm-up + {} s measured per run; concurrency {:?}; pool size {} for both servers; both log at `RUST_LOG=warn` |",
            self.plan.rounds,
            self.plan.warmup_s,
            self.plan.duration_s,
            self.plan.concurrency,
            servers::POOL_SIZE
        );
        let _ = writeln!(
            md,
            "| contract check | {}/{} answers identical (status, content type, body){} |\n",
            self.contract.identical,
            self.contract.checks,
            if self.contract.differences.is_empty() {
                String::new()
            } else {
                format!(": {}", self.contract.differences.join("; "))
            }
        );
        let _ = writeln!(
            md,
            "Everything runs on this one machine: wrk, both servers and PostgreSQL share its {} cores, so absolute figures are low and the ratios are what to read.\n",
            m.nproc
        );

        let _ = writeln!(md, "## Targets\n");
        let _ = writeln!(md, "| target | measured | |\n|---|---|---|");
        for t in targets {
            let _ = writeln!(md, "| {} | {} | {} |", t.target, t.measured, mark(t.met));
        }
        let _ = writeln!(
            md,
            "\nWhat the profiles (callgrind, perf, strace) found and what was fixed, what remains, and why a target is missed: [README.md, Analysis](README.md#analysis).\n"
        );

        for mode in Mode::ALL {
            let mode_cells: Vec<&Cell> = cells.iter().filter(|c| c.mode == mode).collect();
            if mode_cells.is_empty() {
                continue;
            }
            let _ = writeln!(md, "## HTTP load, {mode} mode\n");
            let _ = writeln!(
                md,
                "Requests per second (median over the alternations) and the ratio provision / baseline per alternation, min / median / max. Server CPU per request: the server process's CPU time during the run (`/proc/<pid>/task/*/schedstat`) over the requests answered; unlike throughput it barely moves when something else runs on the machine, so its ratio is the steadier measure of what provision costs. Ceiling: pgbench running the endpoint's SQL at the same concurrency{}; fraction = server rps / ceiling tps.\n",
                if mode == Mode::PerRequest {
                    " with a new connection per transaction (`-C`)"
                } else {
                    " on persistent connections"
                }
            );
            let _ = writeln!(
                md,
                "| endpoint | c | baseline rps | provision rps | ratio min / median / max | server CPU per request, baseline / provision | CPU ratio (median) | DB ceiling tps | baseline / ceiling | provision / ceiling |"
            );
            let _ = writeln!(md, "|---|--:|--:|--:|:-:|--:|--:|--:|--:|--:|");
            for c in &mode_cells {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {:.3} / **{:.3}** / {:.3} | {:.1} / {:.1} µs | {:.3} | {} | {} | {} |",
                    c.endpoint.request(),
                    c.concurrency,
                    count(c.baseline.rps),
                    count(c.provision.rps),
                    c.rps_ratio.min,
                    c.rps_ratio.median,
                    c.rps_ratio.max,
                    c.baseline.cpu_us_per_request,
                    c.provision.cpu_us_per_request,
                    c.cpu_ratio.median,
                    c.ceiling_tps.map_or("n/a (no SQL)".into(), count),
                    c.baseline
                        .ceiling_fraction
                        .map_or("-".into(), |f| format!("{f:.2}")),
                    c.provision
                        .ceiling_fraction
                        .map_or("-".into(), |f| format!("{f:.2}")),
                );
            }
            let _ = writeln!(md);
            if mode_cells.iter().any(|c| {
                c.baseline.ceiling_fraction.is_some_and(|f| f > 1.0)
                    || c.provision.ceiling_fraction.is_some_and(|f| f > 1.0)
            }) {
                let _ = writeln!(
                    md,
                    "{}\n",
                    if mode == Mode::Pool {
                        "A fraction above 1: at that concurrency pgbench keeps C backends busy on the same 2 cores, while each server funnels its C clients into a pool of 16 connections, which PostgreSQL serves faster."
                    } else {
                        "A fraction above 1: `pgbench -C` spends this machine's CPU on its own connection set-up too (libpq, on the same 2 cores as PostgreSQL), so at that concurrency it is not a hard ceiling."
                    }
                );
            }
            let _ = writeln!(
                md,
                "Latency (wrk; medians over the alternations) and the p99 ratio provision / baseline (median over alternations).\n"
            );
            let _ = writeln!(
                md,
                "| endpoint | c | p50 baseline / provision | p99 baseline / provision | p99 ratio | p99.9 baseline / provision | errors |"
            );
            let _ = writeln!(md, "|---|--:|--:|--:|--:|--:|--:|");
            for c in &mode_cells {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} / {} | {} / {} | {:.2} | {} / {} | {} / {} |",
                    c.endpoint.request(),
                    c.concurrency,
                    ms(c.baseline.p50_us),
                    ms(c.provision.p50_us),
                    ms(c.baseline.p99_us),
                    ms(c.provision.p99_us),
                    c.p99_ratio.median,
                    ms(c.baseline.p999_us),
                    ms(c.provision.p999_us),
                    c.baseline.errors,
                    c.provision.errors,
                );
            }
            let _ = writeln!(md);
            let _ = writeln!(
                md,
                "Database connections opened during the measured runs (all alternations): PostgreSQL's count (`pg_stat_database.sessions`), the server's own (`db_connections_opened_total` on `/metrics`; both servers count connections opened for a request, not pool refills), and the most backends of that server seen at once (`pg_stat_activity`, sampled every 100 ms).\n"
            );
            let _ = writeln!(
                md,
                "| endpoint | c | requests baseline / provision | sessions baseline / provision | metric baseline / provision | peak backends baseline / provision |"
            );
            let _ = writeln!(md, "|---|--:|--:|--:|--:|--:|");
            for c in &mode_cells {
                let metric = |s: &Side| {
                    s.metric_connections_opened
                        .map_or("-".into(), |m| count(m as f64))
                };
                let _ = writeln!(
                    md,
                    "| {} | {} | {} / {} | {} / {} | {} / {} | {} / {} |",
                    c.endpoint.request(),
                    c.concurrency,
                    count(c.baseline.requests as f64),
                    count(c.provision.requests as f64),
                    count(c.baseline.sessions_opened as f64),
                    count(c.provision.sessions_opened as f64),
                    metric(&c.baseline),
                    metric(&c.provision),
                    c.baseline.peak_backends,
                    c.provision.peak_backends,
                );
            }
            let _ = writeln!(md);
        }

        if !self.rss.is_empty() {
            let _ = writeln!(md, "## Memory\n");
            let _ = writeln!(
                md,
                "Resident memory of each server process: when ready (`VmRSS`), and its peak over all of that mode's runs (`VmHWM`).\n"
            );
            let _ = writeln!(
                md,
                "| server | mode | idle RSS | peak RSS |\n|---|---|--:|--:|"
            );
            for r in &self.rss {
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.1} MiB | {:.1} MiB |",
                    r.server.label(),
                    r.mode,
                    r.idle_rss_kib as f64 / 1024.0,
                    r.peak_rss_kib as f64 / 1024.0
                );
            }
            let _ = writeln!(md);
        }

        if let Some(cc) = &self.conn_cost {
            let _ = writeln!(md, "## What a new connection costs\n");
            let _ = writeln!(
                md,
                "One client (tokio-postgres, release build, as the servers connect), sequentially, {} times each: connect (TCP, startup, authentication), the first query (the token lookup every protected request starts with), and close (drop the client until its connection task ends). Microseconds.\n",
                cc.iterations
            );
            let _ = writeln!(
                md,
                "| authentication | connect p50 | first query p50 | close p50 | total p50 | total p99 | total mean |\n|---|--:|--:|--:|--:|--:|--:|"
            );
            for p in [&cc.trust, &cc.scram] {
                let _ = writeln!(
                    md,
                    "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
                    p.auth,
                    p.connect.p50_us,
                    p.first_query.p50_us,
                    p.close.p50_us,
                    p.total.p50_us,
                    p.total.p99_us,
                    p.total.mean_us
                );
            }
            let _ = writeln!(
                md,
                "| (pool mode: the same query on an open connection) | | {:.0} | | {:.0} | {:.0} | {:.0} |\n",
                cc.query_on_open_connection.p50_us,
                cc.query_on_open_connection.p50_us,
                cc.query_on_open_connection.p99_us,
                cc.query_on_open_connection.mean_us
            );
            let _ = writeln!(
                md,
                "SCRAM / trust, connect p50: **{:.2}x**. The server side, `pgbench -C` (a new connection, then `SELECT 1`, per transaction):\n",
                cc.scram.connect.p50_us / cc.trust.connect.p50_us
            );
            let _ = writeln!(
                md,
                "| authentication | clients | connections/s |\n|---|--:|--:|"
            );
            for s in &cc.storms {
                let _ = writeln!(md, "| {} | {} | {} |", s.auth, s.clients, count(s.tps));
            }
            let _ = writeln!(md);
        }

        if let Some(rows) = &self.bad_input {
            self.bad_input_markdown(&mut md, rows);
        }

        if let Some(profile) = &self.profile {
            let _ = writeln!(md, "## Instructions per request (callgrind)\n");
            let _ = writeln!(
                md,
                "Both servers in pool mode under valgrind's callgrind, one keep-alive client sending requests one after another (after up to 300 warm-up requests). User-space instructions only: the kernel's share (socket reads and writes) is the same for both and is most of a health request's CPU time. Unlike time, these counts do not move when something else runs on the machine. {}{}\n",
                profile.status,
                if profile.dumps.is_empty() {
                    String::new()
                } else {
                    format!("; dumps for `callgrind_annotate` in `{}`", profile.dumps)
                }
            );
            if !profile.rows.is_empty() {
                let _ = writeln!(
                    md,
                    "| endpoint | requests | baseline Ir/request | provision Ir/request | difference | ratio |\n|---|--:|--:|--:|--:|--:|"
                );
                for r in &profile.rows {
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {} | {:+} | {:.3} |",
                        r.endpoint.request(),
                        count(r.requests as f64),
                        count(r.baseline as f64),
                        count(r.provision as f64),
                        r.provision as i64 - r.baseline as i64,
                        r.ratio
                    );
                }
                let _ = writeln!(md);
            }
        }

        let _ = writeln!(md, "## Microbenchmarks (criterion)\n");
        match &self.micro {
            None => {
                let _ = writeln!(md, "Not run (`--skip-micro`).\n");
            }
            Some(micro) => {
                let _ = writeln!(
                    md,
                    "Median ns per iteration. `crates/provision/benches/scope.rs` (no runtime) and `crates/provision-axum/benches/layer.rs` (the router called as a tower service on a current-thread runtime; the overheads are medians of 101 interleaved rounds).\n"
                );
                let _ = writeln!(md, "| what | bench | ns | target |\n|---|---|--:|---|");
                let rows: [(&str, &str, &str, &str); 18] = [
                    (
                        "empty request scope: open + close_if_idle",
                        "scope",
                        "empty_open_close",
                        "<= 150",
                    ),
                    (
                        "open + first resolution + close (no-op constructor)",
                        "scope",
                        "open_first_resolve_close",
                        "",
                    ),
                    (
                        "first resolution only (scope outside the timer, no-op constructor)",
                        "scope",
                        "first_resolve",
                        "",
                    ),
                    (
                        "memoised hit: RequestScope::cached",
                        "scope",
                        "memoised_cached",
                        "<= 30",
                    ),
                    (
                        "memoised hit: RequestScope::resolve, polled",
                        "scope",
                        "memoised_resolve",
                        "<= 30",
                    ),
                    (
                        "memoised hit: Dep<T> extractor from request parts",
                        "layer",
                        "memoised_dep_extractor",
                        "",
                    ),
                    (
                        "  the same, interleaved with the control below",
                        "layer",
                        "interleaved_dep_extractor",
                        "",
                    ),
                    (
                        "  control: axum's Extension<Arc<T>>, same loop",
                        "layer",
                        "interleaved_extension_extractor",
                        "",
                    ),
                    (
                        "  provision's share of the memoised hit (difference)",
                        "layer",
                        "interleaved_dep_over_extension",
                        "<= 30",
                    ),
                    ("release (close) with 1 service", "scope", "release_1", ""),
                    ("release (close) with 8 services", "scope", "release_8", ""),
                    (
                        "request-bound check: RequestBound::get",
                        "scope",
                        "request_bound_get",
                        "",
                    ),
                    ("plain axum, health", "layer", "axum_only_health", ""),
                    (
                        "ProvisionLayer per route (Router::layer), health",
                        "layer",
                        "provision_layer_health",
                        "",
                    ),
                    (
                        "ProvisionLayer, one request service",
                        "layer",
                        "provision_layer_one_service",
                        "",
                    ),
                    (
                        "layer overhead over plain axum, health (interleaved)",
                        "layer",
                        "interleaved_layer_overhead",
                        "<= 150",
                    ),
                    (
                        "  of which axum's own Router::layer (identity layer)",
                        "layer",
                        "interleaved_identity_overhead",
                        "",
                    ),
                    (
                        "ProvisionLayer around the router (outside), overhead",
                        "layer",
                        "interleaved_outside_overhead",
                        "",
                    ),
                ];
                for (what, bench, key, target) in rows {
                    let map = if bench == "scope" {
                        &micro.scope
                    } else {
                        &micro.layer
                    };
                    if let Some(v) = map.get(key) {
                        let _ = writeln!(md, "| {what} | {bench} | {v:.1} | {target} |");
                    }
                }
                let _ = writeln!(md);
            }
        }

        if !self.charts.is_empty() {
            let _ = writeln!(md, "## Charts\n");
            let _ = writeln!(
                md,
                "Drawn by the runner from this run's figures (`bench/runner/src/charts.rs`).\n"
            );
            for chart in &self.charts {
                let _ = writeln!(md, "![{chart}](charts/{chart})\n");
            }
        }
        if let Some(d) = &self.defaults {
            crate::defaults::markdown(&mut md, d);
        }
        crate::effect::markdown(
            &mut md,
            self.effect_install.as_ref(),
            &crate::effect::cells(&self.runs),
            &self.rss,
            self.effect_contract.as_ref(),
        );
        self.worker_markdown(&mut md, worker_cells);

        let _ = writeln!(md, "## Exact commands\n");
        let _ = writeln!(md, "```sh");
        for c in self.commands() {
            let _ = writeln!(md, "{c}");
        }
        let _ = writeln!(md, "```");
        md
    }

    /// "Connections per 4xx": what a request refused for its input costs
    /// the database.
    fn bad_input_markdown(&self, md: &mut String, rows: &[crate::badinput::Row]) {
        let _ = writeln!(md, "## Connections per 4xx\n");
        let _ = writeln!(
            md,
            "Requests refused for bad input, each sent {} times with a valid token to both servers in per-request mode (every database touch is a new connection). Connections per request: the sessions PostgreSQL saw open (`pg_stat_database.sessions`) over the requests sent; provision's own `db_connections_opened_total` beside it.\n",
            rows.first().map_or(0, |r| r.requests)
        );
        let _ = writeln!(
            md,
            "| bad input | status | baseline: answered as expected | baseline: connections per request | provision: answered as expected | provision: connections per request | provision: db_connections_opened_total |\n|---|--:|--:|--:|--:|--:|--:|"
        );
        let provision = rows.iter().filter(|r| r.server == servers::Kind::Provision);
        for p in provision {
            let b = rows
                .iter()
                .find(|r| r.server == servers::Kind::Baseline && r.case == p.case);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {}/{} | **{:.2}** | {} |",
                p.case,
                p.expected_status,
                b.map_or("-".into(), |b| format!(
                    "{}/{}",
                    b.answered_as_expected, b.requests
                )),
                b.map_or("-".into(), |b| format!("{:.2}", b.per_request())),
                p.answered_as_expected,
                p.requests,
                p.per_request(),
                p.metric_connections_opened
                    .map_or("-".into(), |m| m.to_string()),
            );
        }
        let _ = writeln!(md);
    }

    /// "Cloudflare Workers build in workerd".
    fn worker_markdown(&self, md: &mut String, cells: &[WorkerCell]) {
        let w = &self.worker;
        let _ = writeln!(md, "## Cloudflare Workers build in workerd\n");
        let Some(build) = &w.build else {
            let _ = writeln!(md, "Not measured ({}): {}.\n", w.status, w.reason);
            return;
        };
        let _ = writeln!(
            md,
            "`apps/cloud-api-worker`: the same router and services as cloud-api, built for wasm32 by `{}` (profile `worker`, no test features; `index_bg.wasm` {} KiB, `index.js` {} KiB), served by workerd {} (the open-source Workers runtime) with the checked-in `workerd.capnp` on loopback, against the same database and token. A Worker opens a PostgreSQL connection per request (there is no pool on Workers), so it is compared with the native provision server **in per-request mode** from this run. The same wrk method as above: `-t min(C,2) -c C`, {} s warm-up + {} s measured, {} run(s) per cell, medians; ratios are Worker / native of the medians (the native runs came earlier in the run and were not alternated with these). Server CPU per request: the workerd process's CPU time over the requests answered. Build {:.0} s (`scripts/build-worker`: cargo, which recompiles only what changed, then wasm-bindgen, wasm-opt and esbuild, which run every time); measurement {:.0} s.\n",
            build.command,
            count(build.wasm_kib as f64),
            count(build.js_kib as f64),
            build.workerd_version.trim_start_matches("workerd "),
            self.plan.warmup_s,
            self.plan.duration_s,
            w.rounds,
            build.seconds,
            w.measure_s,
        );
        if w.status != "measured" {
            let _ = writeln!(md, "**{}**: {}.\n", w.status, w.reason);
        }
        if !cells.is_empty() {
            let ratio =
                |r: Option<f64>, digits: usize| r.map_or("-".into(), |r| format!("{r:.digits$}"));
            let _ = writeln!(
                md,
                "| endpoint | c | Worker rps | native per-request rps | rps ratio | p50 Worker / native | p99 Worker / native | p99 ratio | server CPU per request, Worker / native | CPU ratio | errors Worker / native |"
            );
            let _ = writeln!(md, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
            for c in cells {
                let n = c.native.as_ref();
                // Nothing answered within the runs: no latency or CPU figure.
                let answered = c.worker.requests > 0;
                let latency = |us: f64| if answered { ms(us) } else { "-".into() };
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | **{}** | {} / {} | {} / {} | {} | {} / {} µs | {} | {} / {} |",
                    c.endpoint.request(),
                    c.concurrency,
                    count(c.worker.rps),
                    n.map_or("-".into(), |n| count(n.rps)),
                    ratio(c.rps_ratio, 3),
                    latency(c.worker.p50_us),
                    n.map_or("-".into(), |n| ms(n.p50_us)),
                    latency(c.worker.p99_us),
                    n.map_or("-".into(), |n| ms(n.p99_us)),
                    if answered {
                        ratio(c.p99_ratio, 2)
                    } else {
                        "-".into()
                    },
                    if answered {
                        format!("{:.1}", c.worker.cpu_us_per_request)
                    } else {
                        "-".into()
                    },
                    n.map_or("-".into(), |n| format!("{:.1}", n.cpu_us_per_request)),
                    if answered {
                        ratio(c.cpu_ratio, 2)
                    } else {
                        "-".into()
                    },
                    count(c.worker.errors as f64),
                    n.map_or("-".into(), |n| count(n.errors as f64)),
                );
            }
            let _ = writeln!(md);
            let _ = writeln!(
                md,
                "Database connections opened by the Worker during the measured runs: PostgreSQL's count (`pg_stat_database.sessions`), the Worker's own (`db_connections_opened_total` on its `/metrics`, one isolate) and the most of its backends (`application_name` `cloud-api-worker`) seen at once.\n"
            );
            let _ = writeln!(
                md,
                "| endpoint | c | requests | sessions | metric | peak backends |\n|---|--:|--:|--:|--:|--:|"
            );
            for c in cells {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} |",
                    c.endpoint.request(),
                    c.concurrency,
                    count(c.worker.requests as f64),
                    count(c.worker.sessions_opened as f64),
                    c.worker
                        .metric_connections_opened
                        .map_or("-".into(), |m| count(m as f64)),
                    c.worker.peak_backends,
                );
            }
            let _ = writeln!(md);
        }
        let mut notes = Vec::new();
        if let (Some(idle), Some(peak)) = (w.idle_rss_kib, w.peak_rss_kib) {
            notes.push(format!(
                "workerd's resident memory: {:.1} MiB when ready, {:.1} MiB at its peak.",
                idle as f64 / 1024.0,
                peak as f64 / 1024.0
            ));
        }
        let busy: Vec<String> = cells
            .iter()
            .filter(|c| c.worker.requests > 0)
            .map(|c| {
                format!(
                    "{} c={} {:.2}",
                    c.endpoint,
                    c.concurrency,
                    c.worker.rps * c.worker.cpu_us_per_request / 1e6
                )
            })
            .collect();
        if !busy.is_empty() {
            notes.push(format!(
                "CPU cores workerd kept busy (rps x CPU per request; the machine has {}): {}.",
                self.machine.nproc,
                busy.join("; ")
            ));
        }
        let run_us = f64::from(self.plan.duration_s) * 1e6;
        for c in cells {
            if c.worker.requests == 0 {
                notes.push(format!(
                    "**{} at c={}: no request was answered within the {} s measured run{}**: the Worker's latency there is longer than the run (wrk counts only the requests answered before it stops).",
                    c.endpoint.request(),
                    c.concurrency,
                    self.plan.duration_s,
                    if c.rounds > 1 { "s" } else { "" }
                ));
            } else if c.worker.p50_us * 2.0 > run_us {
                notes.push(format!(
                    "{} at c={}: the Worker's p50 ({}) is more than half the {} s run, so each connection completed only a request or two per run and the requests still waiting when wrk stopped are not counted: a rough figure.",
                    c.endpoint.request(),
                    c.concurrency,
                    ms(c.worker.p50_us),
                    self.plan.duration_s
                ));
            }
        }
        for c in cells.iter().filter(|c| c.worker.errors > 0) {
            notes.push(format!(
                "**{} at c={}: {} errors in {} requests** (wrk's count: non-2xx answers, connect/read/write errors, timeouts).",
                c.endpoint.request(),
                c.concurrency,
                count(c.worker.errors as f64),
                count(c.worker.requests as f64)
            ));
        }
        for failure in &w.failures {
            notes.push(format!("**Not measured**: {failure}"));
        }
        if !w.log.trim().is_empty() {
            notes.push(format!(
                "workerd logged (first lines): `{}`",
                w.log.lines().take(3).collect::<Vec<_>>().join(" / ")
            ));
        }
        for note in notes {
            let _ = writeln!(md, "- {note}");
        }
        let _ = writeln!(md);
        self.bare_markdown(md);
    }

    /// "Against a bare workers-rs Worker": issue 14's Workers target.
    fn bare_markdown(&self, md: &mut String) {
        let w = &self.worker;
        let _ = writeln!(
            md,
            "### Against a bare workers-rs Worker
"
        );
        let (Some(build), Some(versus)) = (&w.bare_build, &w.versus_bare) else {
            let _ = writeln!(
                md,
                "Not measured ({}): {}.
",
                w.status, w.reason
            );
            return;
        };
        let _ = writeln!(
            md,
            "`{}`: a plain `#[event(fetch)]` answering `GET /api/health` with the same JSON (workers-rs's own `Request` and `Response`: no `http` conversion, axum, provision, tracing or metrics), built by `{}` (the same profile, nightly, wasm-bindgen, wasm-opt and esbuild; `index_bg.wasm` {} KiB, `index.js` {} KiB, built in {:.0} s) and served by the same workerd with `{}/workerd.capnp`, at the same time as the reference Worker (which had just served the cells above). Health on each in turn, the first of each round alternating, {} round(s) per concurrency, the same wrk method and CPU reading; medians. Target: the reference's CPU per request at most {:.1} times the bare one's.\n",
            build.crate_dir,
            build.command,
            count(build.wasm_kib as f64),
            count(build.js_kib as f64),
            build.seconds,
            build.crate_dir,
            versus.rounds,
            crate::worker::BARE_TARGET,
        );
        let cells = self.bare_cells();
        if !cells.is_empty() {
            let _ = writeln!(
                md,
                "| c | rounds | CPU per request, reference / bare | CPU ratio | target | rps, reference / bare | rps ratio | p50, reference / bare |"
            );
            let _ = writeln!(md, "|--:|--:|--:|--:|---|--:|--:|--:|");
            for c in &cells {
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.0} / {:.0} us | {:.2} | {} | {} / {} | {:.2} | {} / {} |",
                    c.concurrency,
                    c.rounds,
                    c.worker.cpu_us_per_request,
                    c.bare.cpu_us_per_request,
                    c.cpu_ratio,
                    mark(Some(c.cpu_ratio <= crate::worker::BARE_TARGET)),
                    count(c.worker.rps),
                    count(c.bare.rps),
                    c.rps_ratio,
                    ms(c.worker.p50_us),
                    ms(c.bare.p50_us),
                );
            }
            let _ = writeln!(md);
            let each: Vec<String> = versus
                .runs
                .iter()
                .map(|r| {
                    format!(
                        "{} c={} #{} {:.0} us",
                        r.server.label(),
                        r.concurrency,
                        r.round,
                        r.cpu_us_per_request
                    )
                })
                .collect();
            let _ = writeln!(md, "Every run, in order: {}.\n", each.join(", "));
        }
        for failure in &versus.failures {
            let _ = writeln!(md, "- **Not measured**: {failure}");
        }
        if !versus.failures.is_empty() {
            let _ = writeln!(md);
        }
    }
}
