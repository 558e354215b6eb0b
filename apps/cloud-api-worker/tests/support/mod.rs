//! What both workerd test files (`workerd.rs`, `workerd_tls.rs`) set up
//! alike: the paths `scripts/test-worker` provides, a freshly migrated
//! database with a signed-up user, and workerd serving a build of the
//! Worker on ports of its own.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cloud_api::domain::NewUser;
use cloud_api::store::{Database, PostgresMode};
use throwaway_postgres::Cluster;

/// The path in the environment variable `name`, which must exist; the
/// message says to run through `scripts/test-worker` when it is not set.
pub fn env_path(name: &str) -> PathBuf {
    let value = std::env::var_os(name).unwrap_or_else(|| {
        panic!("{name} is not set: run these tests through scripts/test-worker, which builds the Worker and installs workerd")
    });
    let path = PathBuf::from(value);
    assert!(path.exists(), "{name}={} does not exist", path.display());
    path
}

/// A fresh database with the schema and a user (Ada) with a token.
pub struct TestDb {
    pub cluster: &'static Cluster,
    pub name: String,
    pub url: String,
    pub token: String,
    /// Ada's id; `workerd_tls.rs` has no use for it.
    #[allow(dead_code)]
    pub ada: i64,
}

/// A fresh database on `cluster`, migrated, with Ada and her token.
pub async fn migrated_db(cluster: &'static Cluster) -> TestDb {
    let name = cluster.create_database().expect("a fresh database");
    let url = cluster.url(&name);
    // Migrations run natively (`cloud-api migrate`), never from a Worker.
    let db = Database::connect_postgres(
        &url,
        PostgresMode::PerRequest,
        1,
        Duration::from_secs(5),
        Duration::from_secs(10),
    )
    .unwrap();
    db.migrate().await.expect("migrations apply");
    let connection = db.acquire().await.unwrap();
    let (ada, _) = connection
        .find_or_create_user(&NewUser {
            name: "Ada".into(),
            email: "ada@example.com".into(),
        })
        .await
        .unwrap();
    let token = connection.create_token(ada.id).await.unwrap().token;
    connection.close().await;
    TestDb {
        cluster,
        name,
        url,
        token,
        ada: ada.id,
    }
}

/// workerd serving one build, killed when dropped.
pub struct Workerd {
    child: Child,
    pub port: u16,
    /// The trigger Worker's port: fires the main Worker's events
    /// (`workerd.rs` only).
    #[allow(dead_code)]
    pub events_port: u16,
    dir: PathBuf,
}

/// How a test wants workerd started beyond the checked-in configuration.
#[derive(Default)]
pub struct Options<'a> {
    /// Extra text bindings.
    pub bindings: &'a [(&'a str, &'a str)],
    /// Only wait for workerd to listen: the first request is the test's
    /// (a cold start), not the readiness probe's.
    pub cold: bool,
    /// A CA (PEM) added to what the outbound network trusts.
    pub trusted_ca: Option<&'a str>,
}

impl Workerd {
    /// Serves `build` with the `workerd` binary and `DATABASE_URL`, once it
    /// answers `/api/health` (or only listens, with `options.cold`).
    pub async fn serve(
        workerd: &Path,
        build: &Path,
        database_url: &str,
        options: Options<'_>,
    ) -> Workerd {
        let port = free_port();
        let events_port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "cloud-api-worker-e2e-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        for file in ["index.js", "index_bg.wasm"] {
            std::fs::copy(build.join(file), dir.join(file))
                .unwrap_or_else(|e| panic!("{}: {e}", build.join(file).display()));
        }
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::fs::copy(manifest.join("trigger.js"), dir.join("trigger.js")).unwrap();
        // The checked-in configuration, on this test's ports.
        let mut config = std::fs::read_to_string(manifest.join("workerd.capnp"))
            .unwrap()
            .replace("build/index.js", "index.js")
            .replace("build/index_bg.wasm", "index_bg.wasm")
            .replace("127.0.0.1:8787", &format!("127.0.0.1:{port}"))
            .replace("127.0.0.1:8788", &format!("127.0.0.1:{events_port}"));
        let extra: String = options
            .bindings
            .iter()
            .map(|(name, value)| format!("(name = \"{name}\", text = \"{value}\"), "))
            .collect();
        // The main Worker's bindings come first.
        config = config.replacen("bindings = [", &format!("bindings = [{extra}"), 1);
        if let Some(ca_pem) = options.trusted_ca {
            std::fs::write(dir.join("ca.pem"), ca_pem).unwrap();
            let network = r#"network = (allow = ["public", "private", "local"])"#;
            assert!(
                config.contains(network),
                "workerd.capnp no longer has `{network}`: update this test"
            );
            config = config.replace(
                network,
                r#"network = (allow = ["public", "private", "local"], tlsOptions = (trustedCertificates = [embed "ca.pem"]))"#,
            );
        }
        std::fs::write(dir.join("workerd.capnp"), config).unwrap();
        let log = std::fs::File::create(dir.join("workerd.log")).unwrap();
        let child = Command::new(workerd)
            // --experimental: the trigger Worker's service binding calls
            // `scheduled()`, an experimental workerd handler.
            .args(["serve", "workerd.capnp", "--verbose", "--experimental"])
            .current_dir(&dir)
            .env("DATABASE_URL", database_url)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("workerd starts");
        let mut workerd = Workerd {
            child,
            port,
            events_port,
            dir,
        };
        let started = Instant::now();
        loop {
            if let Some(status) = workerd.child.try_wait().unwrap() {
                panic!("workerd exited ({status}):\n{}", workerd.log());
            }
            if options.cold {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    break;
                }
            } else {
                let ready = reqwest::get(workerd.url("/api/health")).await;
                if ready.is_ok_and(|r| r.status() == 200) {
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "workerd did not answer within 20 s:\n{}",
                workerd.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        workerd
    }

    /// `path` on the main Worker.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What workerd has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("workerd.log")).unwrap_or_default()
    }
}

impl Drop for Workerd {
    fn drop(&mut self) {
        // SIGKILL: a hung request keeps workerd from exiting on SIGTERM.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let _ = writeln!(std::io::stderr(), "--- workerd log ---\n{}", self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port free now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
