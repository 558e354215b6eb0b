//! The Worker build of cloud-api in workerd: health and users, as the
//! issue asks. Not yet measured: the Worker build is being written
//! (issue 4). When it lands, this starts `workerd` with the built Worker
//! on loopback, pointed at the same database (per-request connections are
//! the only mode on Workers), and runs the same wrk matrix against it.

use std::path::Path;

use serde::Serialize;

/// What happened to the Worker measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Worker {
    /// `measured` or `skipped`.
    pub status: &'static str,
    pub reason: String,
}

/// Reports the Worker measurement as skipped, saying why.
pub fn workerd(root: &Path) -> Worker {
    let crate_exists = root.join("crates/provision-worker/Cargo.toml").exists();
    let workerd = std::process::Command::new("workerd")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let state = match (crate_exists, workerd) {
        (false, _) => "crates/provision-worker does not exist yet",
        (true, false) => "crates/provision-worker exists, but workerd is not installed here",
        (true, true) => {
            "crates/provision-worker and workerd exist, but cloud-api has no Worker build to serve yet"
        }
    };
    Worker {
        status: "skipped",
        reason: format!(
            "not yet measured: the Worker build of cloud-api is in progress (issue 4); {state}"
        ),
    }
}
