//! Debian's `prometheus` as a plain child process: a generated
//! configuration (one job, cloud-api on loopback, scraped every second),
//! its data in the scratch directory, its HTTP API on a free loopback port.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::BoxError;
use crate::servers::free_port;

pub struct Prometheus {
    pub port: u16,
    child: Child,
}

impl Prometheus {
    /// Starts Prometheus scraping `127.0.0.1:target/metrics` every second and
    /// waits (at most 30 s) until it is ready.
    pub async fn start(tmp: &Path, target: u16) -> Result<Prometheus, BoxError> {
        let port = free_port()?;
        let config = tmp.join("prometheus.yml");
        let yaml = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: cloud-api\n    static_configs:\n      \
             - targets: ['127.0.0.1:{target}']\n"
        );
        std::fs::write(&config, yaml)?;
        let log = std::fs::File::create(tmp.join("prometheus.log"))?;
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                tmp.join("prometheus-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| {
                format!("cannot start prometheus ({e}): `apt-get install -y prometheus`")
            })?;
        let prometheus = Prometheus { port, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = crate::http::request(port, "GET", "/-/ready", &[], None).await
                && r.status == 200
            {
                return Ok(prometheus);
            }
            if Instant::now() > deadline {
                return Err("prometheus did not become ready in 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (at most 30 s) until the target has been scraped successfully.
    pub async fn wait_for_scrape(&self) -> Result<(), BoxError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let up = self.get("/api/v1/query", &[("query", "up")]).await?;
            if up["data"]["result"][0]["value"][1] == "1" {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("prometheus never scraped cloud-api: {up}").into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `expr` over [`from`, `to`] (Unix seconds), one point per `step` s:
    /// each series' labels and points.
    pub async fn query_range(
        &self,
        expr: &str,
        from: f64,
        to: f64,
        step: f64,
    ) -> Result<Vec<(Value, Vec<(f64, f64)>)>, BoxError> {
        let (from, to, step) = (format!("{from:.3}"), format!("{to:.3}"), format!("{step}"));
        let answer = self
            .get(
                "/api/v1/query_range",
                &[
                    ("query", expr),
                    ("start", &from),
                    ("end", &to),
                    ("step", &step),
                ],
            )
            .await?;
        if answer["status"] != "success" {
            return Err(format!("prometheus refused {expr:?}: {answer}").into());
        }
        let series = answer["data"]["result"]
            .as_array()
            .ok_or("no result")?
            .iter()
            .map(|s| {
                let points = s["values"]
                    .as_array()
                    .map(|values| {
                        values
                            .iter()
                            .filter_map(|p| {
                                let t = p[0].as_f64()?;
                                let v = p[1].as_str()?.parse::<f64>().ok()?;
                                Some((t, v))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                (s["metric"].clone(), points)
            })
            .collect();
        Ok(series)
    }

    async fn get(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, BoxError> {
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        let target = format!("{path}?{}", query.join("&"));
        let response = crate::http::request(self.port, "GET", &target, &[], None).await?;
        Ok(serde_json::from_str(&response.body)?)
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// Percent-encodes a query parameter's value.
fn encode(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
