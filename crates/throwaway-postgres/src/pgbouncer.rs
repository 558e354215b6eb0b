//! A PgBouncer in transaction mode in front of a [`Cluster`], for tests of
//! code that must work behind a transaction-mode pooler (no session state,
//! no startup parameters beyond the ones PgBouncer knows).

use std::fs;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::{Cluster, Error, free_port};

const INSTALL_HINT: &str = "pgbouncer is not installed: run `apt-get update && apt-get install -y pgbouncer` \
     (Debian/Ubuntu; scripts/test-all does it), or set PGBOUNCER to its path";

/// A running `pgbouncer` (transaction pooling) that forwards every database
/// of a [`Cluster`] as user `postgres`. Stopped when dropped.
#[derive(Debug)]
pub struct PgBouncer {
    port: u16,
    child: Child,
    dir: PathBuf,
}

impl PgBouncer {
    /// The port it listens on (on `127.0.0.1`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL reaching `db` through the pooler: `postgres://postgres@127.0.0.1:PORT/db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// What PgBouncer has logged so far (its refusals name the reason).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Cluster {
    /// Starts a PgBouncer in transaction mode in front of this cluster on a
    /// free loopback port, and waits (at most 10 s) until it accepts
    /// connections. Fails with the command that installs it when
    /// `pgbouncer` is missing (`$PGBOUNCER`, else `/usr/sbin/pgbouncer`,
    /// else `pgbouncer` on the `PATH`).
    pub fn pgbouncer(&self) -> Result<PgBouncer, Error> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let program = locate_pgbouncer().ok_or_else(|| Error::new(INSTALL_HINT))?;
        let dir = self
            .root
            .join(format!("pgbouncer-{}", NEXT.fetch_add(1, Ordering::SeqCst)));
        fs::create_dir_all(&dir)
            .map_err(|e| Error::new(format!("cannot create {}: {e}", dir.display())))?;
        let port = free_port()?;
        // `auth_type = any`: the cluster trusts loopback, and every
        // database entry names the user the pooler logs in as.
        let config = format!(
            "[databases]\n\
             * = host=127.0.0.1 port={upstream} user=postgres\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = any\n\
             pool_mode = transaction\n\
             max_client_conn = 500\n\
             default_pool_size = 20\n\
             logfile = {log}\n\
             server_reset_query =\n",
            upstream = self.port,
            log = dir.join("pgbouncer.log").display(),
        );
        let ini = dir.join("pgbouncer.ini");
        fs::write(&ini, config)
            .map_err(|e| Error::new(format!("cannot write {}: {e}", ini.display())))?;
        let mut command = Command::new(&program);
        command
            .arg(&ini)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        if let Some((uid, gid)) = self.run_as {
            // PgBouncer, like postgres, refuses to run as root.
            for path in [&dir, &ini] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid))
                    .map_err(|e| Error::new(format!("cannot chown {}: {e}", path.display())))?;
            }
            command.uid(uid).gid(gid);
        }
        let child = command
            .spawn()
            .map_err(|e| Error::new(format!("cannot run {}: {e}", program.display())))?;
        let mut bouncer = PgBouncer { port, child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(bouncer);
            }
            if let Ok(Some(status)) = bouncer.child.try_wait() {
                return Err(Error::new(format!(
                    "pgbouncer exited at start ({status}); its log:\n{}",
                    bouncer.log()
                )));
            }
            if Instant::now() >= deadline {
                return Err(Error::new(format!(
                    "pgbouncer did not accept connections within 10 s; its log:\n{}",
                    bouncer.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn locate_pgbouncer() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PGBOUNCER") {
        return Some(PathBuf::from(path));
    }
    let debian = PathBuf::from("/usr/sbin/pgbouncer");
    if debian.is_file() {
        return Some(debian);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("pgbouncer"))
        .find(|p| p.is_file())
}
