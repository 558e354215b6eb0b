//! The criterion microbenchmarks of the core crates, run through cargo;
//! their medians come back through `PROVISION_BENCH_SUMMARY`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::Serialize;

use crate::{BoxError, Plan, say};

/// Median ns per iteration, by benchmark.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Micro {
    /// `crates/provision/benches/scope.rs`.
    pub scope: BTreeMap<String, f64>,
    /// `crates/provision-axum/benches/layer.rs`.
    pub layer: BTreeMap<String, f64>,
}

/// The exact commands, for the report.
pub fn commands(plan: &Plan) -> [String; 2] {
    let (warm, measure) = plan.micro_times;
    [
        format!(
            "cargo bench -p provision --bench scope -- --warm-up-time {warm} --measurement-time {measure}"
        ),
        format!(
            "cargo bench -p provision-axum --bench layer -- --warm-up-time {warm} --measurement-time {measure}"
        ),
    ]
}

pub fn run(root: &Path, tmp: &Path, plan: &Plan, started: Instant) -> Result<Micro, BoxError> {
    let (warm, measure) = plan.micro_times;
    let mut micro = Micro::default();
    for (package, bench) in [("provision", "scope"), ("provision-axum", "layer")] {
        let summary = tmp.join(format!("{bench}.json"));
        let log = tmp.join(format!("{bench}.log"));
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(root)
            .args(["bench", "-p", package, "--bench", bench, "--"])
            .arg("--warm-up-time")
            .arg(warm.to_string())
            .arg("--measurement-time")
            .arg(measure.to_string())
            .env("PROVISION_BENCH_SUMMARY", &summary)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(Stdio::null())
            .status()?;
        if !status.success() {
            return Err(format!(
                "cargo bench -p {package} --bench {bench} failed ({status}):\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
            .into());
        }
        let text = std::fs::read_to_string(&summary)
            .map_err(|e| format!("{bench} wrote no summary ({e}); is the bench up to date?"))?;
        let values: BTreeMap<String, f64> = serde_json::from_str(&text)?;
        say(
            started,
            format!(
                "{bench}: {}",
                values
                    .iter()
                    .map(|(k, v)| format!("{k} {v:.1} ns"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        match bench {
            "scope" => micro.scope = values,
            _ => micro.layer = values,
        }
    }
    Ok(micro)
}
