//! A throwaway PostgreSQL cluster for integration tests and benchmarks.
//!
//! [`Cluster::start`] runs `initdb` into a fresh temporary directory, starts a
//! `postgres` server on a free loopback port and waits until it accepts
//! connections. Every test can then ask for its own empty database with
//! [`Cluster::create_database`] (the `sqlx::test` idea: tests share one server
//! but never each other's data). [`shared`] gives a process-wide cluster that is
//! started once per test binary.
//!
//! # Why it is built this way
//!
//! * **Root.** `initdb` and `postgres` refuse to run as root (a server bug must
//!   not become a root compromise). CI containers usually run as root, so when
//!   the effective uid is 0 the temporary directory is handed to the existing
//!   unprivileged `postgres` system user and both programs are started with
//!   that user's uid and gid (and no supplementary groups). The server process
//!   is then our direct child, so it can be signalled and reaped without a
//!   `su`/`runuser` wrapper in between. Without a `postgres` user, starting
//!   fails with a message saying how to fix it.
//! * **Speed.** The data is disposable, so durability is switched off:
//!   `initdb --no-sync`, `fsync=off`, `synchronous_commit=off`,
//!   `full_page_writes=off`. This makes `CREATE DATABASE` and commits cheap,
//!   which matters when hundreds of tests each create a database
//!   ([`ClusterOptions::durable`] turns durability back on, for crash
//!   tests). The
//!   directory goes on `/dev/shm` (RAM) when it has at least 1 GiB free, which
//!   makes `initdb` and `CREATE DATABASE` several times faster than on many CI
//!   disks; set `THROWAWAY_PG_TMPDIR` to choose another place. Each database
//!   costs about 8 MB (a copy of `template1`); [`Cluster::drop_database`]
//!   gives it back.
//! * **Isolation.** The server listens on `127.0.0.1` only, on a port picked
//!   by the kernel, with its Unix socket inside the temporary directory, so
//!   parallel test binaries never collide with each other or with a system
//!   server.
//! * **Cleanup that cannot leak.** Dropping a [`Cluster`] stops the server and
//!   deletes the directory. But the [`shared`] cluster lives in a `static`
//!   that is never dropped, and a test process can also die from `abort`, a
//!   double panic or `SIGKILL`. So each cluster also starts a tiny *guardian*
//!   process (`sh`) whose stdin is a pipe whose only write end is held by the
//!   test process. Whenever the test process goes away, for whatever reason,
//!   the kernel closes that write end, the guardian's `read` hits end of file,
//!   and it stops the server (`SIGQUIT`, immediate shutdown) and removes the
//!   directory. The pipe is close-on-exec, so the server never inherits the
//!   write end (which would keep the guardian waiting forever), and neither
//!   the guardian nor the server holds the test's stdout or stderr (which
//!   would make `cargo test` wait for them). Both run in their own process
//!   group so that a Ctrl-C aimed at `cargo test` kills the tests, not the
//!   cleanup.
//!
//! # Finding PostgreSQL
//!
//! The server binaries are taken from `$PG_BIN` if set, else from
//! `pg_config --bindir` if that directory holds `initdb`, else from the newest
//! `/usr/lib/postgresql/<version>/bin` (the Debian layout). If none is found
//! the error says how to install them; tests fail rather than skip.
//!
//! ```no_run
//! let cluster = throwaway_postgres::shared();
//! let db = cluster.create_database().unwrap();
//! let out = cluster.psql(&db, "SELECT 1 + 1").unwrap();
//! assert_eq!(out.trim(), "2");
//! let url = cluster.url(&db); // postgres://postgres@127.0.0.1:PORT/t_<pid>_<n>
//! # let _ = url;
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod certificates;
mod pgbouncer;

pub use certificates::Certificates;
pub use pgbouncer::PgBouncer;

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// The message used when no PostgreSQL server binaries can be found.
const INSTALL_HINT: &str = "PostgreSQL server binaries not found: install them with \
`apt-get update && apt-get install -y postgresql` (Debian) or set PG_BIN to the directory \
holding initdb and postgres";

/// How long to wait for a freshly started server to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a fast shutdown may take before escalating to immediate / kill.
const FAST_STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long an immediate shutdown may take before escalating to `SIGKILL`.
const IMMEDIATE_STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How many fresh ports to try when another process takes ours first.
const PORT_ATTEMPTS: usize = 8;

/// The guardian: waits for EOF on stdin (= the test process is gone), then
/// stops the postmaster of `$1` (data dir) and removes `$2` (temp dir).
const GUARDIAN_SCRIPT: &str = r#"
trap '' INT HUP PIPE
data=$1
root=$2
while read -r _ignored; do :; done
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  if [ -r "/proc/$1/stat" ]; then
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    st=${st##*) }
    case $st in Z*|X*) return 1 ;; esac
  fi
  return 0
}
if [ -r "$data/postmaster.pid" ]; then
  pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null)
  case $pid in ''|*[!0-9]*) pid= ;; esac
  if [ -n "$pid" ] && alive "$pid"; then
    ours=1
    if [ -r "/proc/$pid/cmdline" ]; then
      tr '\000' '\n' < "/proc/$pid/cmdline" | grep -qxF -- "$data" || ours=
    fi
    if [ -n "$ours" ]; then
      kill -QUIT "$pid" 2>/dev/null
      i=0
      while alive "$pid" && [ "$i" -lt 100 ]; do sleep 0.05; i=$((i+1)); done
      alive "$pid" && kill -KILL "$pid" 2>/dev/null
    fi
  fi
fi
rm -rf -- "$root"
"#;

/// An error from starting, stopping or talking to a throwaway cluster.
///
/// The message is meant for humans: it says what failed and, where it can,
/// how to fix it (for example how to install PostgreSQL) and includes the
/// tail of the server log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    fn new(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
        }
    }

    /// The human-readable message (the same text as `Display`).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Options for [`Cluster::start_with`]; build with [`ClusterOptions::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOptions {
    max_connections: u32,
    scram_user: Option<(String, String)>,
    /// `(certificate chain, private key)`, PEM.
    ssl: Option<(String, String)>,
    durable: bool,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            max_connections: 400,
            scram_user: None,
            ssl: None,
            durable: false,
        }
    }
}

impl ClusterOptions {
    /// Default options: `max_connections = 400`, no password user.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the server's `max_connections` (default 400).
    pub fn max_connections(mut self, max_connections: u32) -> Self {
        self.max_connections = max_connections;
        self
    }

    /// Also creates a login role `name` with `password`, which must
    /// authenticate with SCRAM-SHA-256 over TCP (its `pg_hba.conf` line comes
    /// before the trust lines). The role is a superuser so it can use the
    /// databases made by [`Cluster::create_database`]. Connect with
    /// [`Cluster::url_as`].
    pub fn scram_user(mut self, name: impl Into<String>, password: impl Into<String>) -> Self {
        self.scram_user = Some((name.into(), password.into()));
        self
    }

    /// Turns TLS on (`ssl = on`) with this certificate (PEM, the server's
    /// first, then any intermediates) and its unencrypted private key
    /// (PEM). Clients may still connect without TLS: the `pg_hba.conf`
    /// lines are `host`, which accept both.
    pub fn ssl(mut self, certificate_pem: impl Into<String>, key_pem: impl Into<String>) -> Self {
        self.ssl = Some((certificate_pem.into(), key_pem.into()));
        self
    }

    /// Keeps PostgreSQL's durability on (`fsync`, `synchronous_commit` and
    /// `full_page_writes` on, `initdb` syncing its files): a commit is
    /// acknowledged only once its WAL is flushed, so a crash
    /// ([`Cluster::kill_server`]) loses no acknowledged commit. Off by
    /// default, for speed: then a crash can lose the last commits.
    ///
    /// ```no_run
    /// let cluster = throwaway_postgres::ClusterOptions::new().durable(true).start().unwrap();
    /// let db = cluster.create_database().unwrap();
    /// cluster.psql(&db, "CREATE TABLE t (x int); INSERT INTO t VALUES (1);").unwrap();
    /// cluster.kill_server().unwrap();
    /// cluster.start_server().unwrap(); // crash recovery replays the WAL
    /// assert_eq!(cluster.psql(&db, "SELECT count(*) FROM t").unwrap().trim(), "1");
    /// ```
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// Starts a cluster with these options; same as [`Cluster::start_with`].
    pub fn start(&self) -> Result<Cluster, Error> {
        Cluster::start_with(self)
    }
}

/// A running throwaway PostgreSQL cluster (one server, one data directory).
///
/// Superuser `postgres` connects over TCP on `127.0.0.1` without a password.
/// Dropping the cluster stops the server (immediate shutdown) and deletes its
/// directory; if the process dies without dropping it, the guardian process
/// does the same (see the crate docs). All methods take `&self`, so a cluster
/// can be shared between threads.
#[derive(Debug)]
pub struct Cluster {
    port: u16,
    /// Major version from `PG_VERSION` (0 if unknown).
    major_version: u32,
    max_connections: u32,
    bin_dir: PathBuf,
    psql: PathBuf,
    root: PathBuf,
    data_dir: PathBuf,
    log_path: PathBuf,
    /// `(uid, gid)` to run initdb and postgres as, when we are root.
    run_as: Option<(u32, u32)>,
    scram_user: Option<String>,
    /// Whether the server runs with `ssl = on`.
    ssl: bool,
    /// Whether durability is on ([`ClusterOptions::durable`]).
    durable: bool,
    server: Mutex<Option<Child>>,
    guardian: Mutex<Option<Child>>,
    /// Keeps the directory alive; removed explicitly in `Drop`.
    _dir: tempfile::TempDir,
}

enum StartFailure {
    /// The server could not bind its port (someone else took it).
    PortInUse(String),
    /// Backends of a killed server still hold its shared memory: they exit
    /// once they notice their postmaster is gone.
    OldBackendsAlive(String),
    Other(Error),
}

impl Cluster {
    /// Starts a cluster with default [`ClusterOptions`].
    pub fn start() -> Result<Cluster, Error> {
        Self::start_with(&ClusterOptions::default())
    }

    /// Starts a cluster: finds the binaries, runs `initdb` into a new
    /// temporary directory, starts the server on a free loopback port and
    /// waits (at most 30 s) until it accepts connections.
    pub fn start_with(options: &ClusterOptions) -> Result<Cluster, Error> {
        if let Some((name, _)) = &options.scram_user
            && (name.is_empty() || name.contains(['"', '\n', '\r', '\0']))
        {
            return Err(Error::new(format!(
                "invalid SCRAM user name {name:?}: must be non-empty without quotes or newlines"
            )));
        }
        let bin_dir = locate_bin_dir()?;
        let psql = find_psql(&bin_dir);

        let dir = make_temp_dir()?;
        let root = dir.path().to_path_buf();
        let owner = fs::metadata(&root)
            .map_err(|e| Error::new(format!("cannot stat {}: {e}", root.display())))?
            .uid();
        let run_as = if owner == 0 {
            let (uid, gid) = lookup_user("postgres")?;
            std::os::unix::fs::chown(&root, Some(uid), Some(gid)).map_err(|e| {
                Error::new(format!(
                    "cannot chown {} to the postgres user: {e}",
                    root.display()
                ))
            })?;
            Some((uid, gid))
        } else {
            None
        };

        let guardian = spawn_guardian(&root.join("data"), &root)?;
        let mut cluster = Cluster {
            port: 0,
            major_version: 0,
            max_connections: options.max_connections,
            bin_dir,
            psql,
            data_dir: root.join("data"),
            log_path: root.join("server.log"),
            root,
            run_as,
            scram_user: options.scram_user.as_ref().map(|(n, _)| n.clone()),
            ssl: options.ssl.is_some(),
            durable: options.durable,
            server: Mutex::new(None),
            guardian: Mutex::new(Some(guardian)),
            _dir: dir,
        };
        // From here on, any early return drops `cluster`, which cleans up.
        cluster.initdb()?;
        cluster.major_version = fs::read_to_string(cluster.data_dir.join("PG_VERSION"))
            .ok()
            .and_then(|v| v.trim().split('.').next()?.parse().ok())
            .unwrap_or(0);
        if let Some((name, _)) = &options.scram_user {
            cluster.add_scram_hba_line(name)?;
        }
        if let Some((certificate, key)) = &options.ssl {
            cluster.write_ssl_files(certificate, key)?;
        }

        let mut last_bind_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            cluster.port = free_port()?;
            match cluster.spawn_server() {
                Ok(child) => {
                    *lock(&cluster.server) = Some(child);
                    break;
                }
                Err(StartFailure::PortInUse(log)) => last_bind_error = log,
                Err(StartFailure::OldBackendsAlive(log)) => {
                    return Err(Error::new(format!(
                        "postgres found its shared memory in use at first start; server log:\n{log}"
                    )));
                }
                Err(StartFailure::Other(e)) => return Err(e),
            }
        }
        if lock(&cluster.server).is_none() {
            return Err(Error::new(format!(
                "postgres could not bind a free port in {PORT_ATTEMPTS} attempts; last server log:\n{last_bind_error}"
            )));
        }

        if let Some((name, password)) = &options.scram_user {
            let sql = format!(
                "SET password_encryption = 'scram-sha-256';\nCREATE ROLE {} LOGIN SUPERUSER PASSWORD {};\n",
                quote_ident(name),
                quote_literal(password)
            );
            cluster.psql("postgres", &sql)?;
        }
        Ok(cluster)
    }

    /// The TCP port the server listens on (on `127.0.0.1`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for superuser `postgres` (no password needed):
    /// `postgres://postgres@127.0.0.1:PORT/db`.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{}",
            self.port,
            percent_encode(db)
        )
    }

    /// A connection URL with a user and password, e.g. for the SCRAM user of
    /// [`ClusterOptions::scram_user`]:
    /// `postgres://user:password@127.0.0.1:PORT/db` (percent-encoded).
    pub fn url_as(&self, user: &str, password: &str, db: &str) -> String {
        format!(
            "postgres://{}:{}@127.0.0.1:{}/{}",
            percent_encode(user),
            percent_encode(password),
            self.port,
            percent_encode(db)
        )
    }

    /// The name of the SCRAM user, if one was requested.
    pub fn scram_user(&self) -> Option<&str> {
        self.scram_user.as_deref()
    }

    /// The data directory (inside the temporary directory that is removed
    /// when the cluster goes away).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The directory holding `initdb`, `postgres` and friends.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The `psql` binary used by [`Cluster::psql`] (beside the server
    /// binaries if present there, else found on `PATH`).
    pub fn psql_path(&self) -> &Path {
        &self.psql
    }

    /// The whole server log so far (stderr of every server start).
    pub fn server_log(&self) -> String {
        fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Creates a fresh, empty database with a name unique in this process
    /// (`t_<pid>_<counter>`) and returns the name. Safe to call from many
    /// threads at once.
    pub fn create_database(&self) -> Result<String, Error> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("t_{}_{n}", std::process::id());
        // FILE_COPY (the only strategy before 15) copies template1's files
        // instead of writing every page to WAL: faster here (no fsync) and
        // it keeps WAL from growing by ~8 MB per database.
        let strategy = if self.major_version >= 15 {
            " STRATEGY = FILE_COPY"
        } else {
            ""
        };
        self.psql("postgres", &format!("CREATE DATABASE {name}{strategy};"))?;
        Ok(name)
    }

    /// Drops a database (e.g. one from [`Cluster::create_database`]),
    /// disconnecting its sessions first on PostgreSQL 13+. Long test runs can
    /// use this to give the space back.
    pub fn drop_database(&self, name: &str) -> Result<(), Error> {
        let force = if self.major_version >= 13 {
            " WITH (FORCE)"
        } else {
            ""
        };
        self.psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {}{force};", quote_ident(name)),
        )
        .map(drop)
    }

    /// Runs `sql` in database `db` as `postgres` through the `psql` binary
    /// (`-X -A -t -q -v ON_ERROR_STOP=1`, the script on stdin) and returns
    /// its stdout: unaligned rows, one per line, columns separated by `|`, no
    /// headers or command tags. Fails with psql's stderr if any statement
    /// fails.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, Error> {
        let mut cmd = Command::new(&self.psql);
        cmd.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-U", "postgres", "-f", "-"])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-d")
            .arg(db)
            .env("PGCONNECT_TIMEOUT", "10")
            .env_remove("PGPASSWORD")
            .env_remove("PGSERVICE")
            .env_remove("PGOPTIONS")
            .env_remove("PGSSLMODE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| {
            Error::new(format!(
                "cannot run {}: {e} (psql comes with the PostgreSQL client: \
                 `apt-get install -y postgresql-client`)",
                self.psql.display()
            ))
        })?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let output = thread::scope(|s| {
            s.spawn(move || {
                // A write error means psql exited early; its stderr says why.
                let _ = stdin.write_all(sql.as_bytes());
            });
            child.wait_with_output()
        })
        .map_err(|e| Error::new(format!("psql failed to run: {e}")))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(Error::new(format!(
                "psql on database {db:?} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim_end()
            )))
        }
    }

    /// Stops the server with a fast shutdown (`SIGINT`: clients are
    /// disconnected, the data directory is kept), for outage tests. Does
    /// nothing if it is already stopped. Escalates to immediate shutdown and
    /// then `SIGKILL` if the server takes too long, so it always returns
    /// within about 25 s.
    pub fn stop_server(&self) -> Result<(), Error> {
        let mut server = lock(&self.server);
        if let Some(mut child) = server.take() {
            stop_child(&mut child, "INT", FAST_STOP_TIMEOUT)?;
        }
        Ok(())
    }

    /// Kills the server's postmaster with `SIGKILL`, as a crash would: no
    /// shutdown checkpoint, and its backends are left behind until they
    /// notice (each exits at its next wait, usually at once). The data
    /// directory is kept; [`Cluster::start_server`] then waits for those
    /// backends and runs PostgreSQL's crash recovery. Does nothing if the
    /// server is already stopped.
    pub fn kill_server(&self) -> Result<(), Error> {
        let mut server = lock(&self.server);
        if let Some(mut child) = server.take() {
            if let Ok(Some(_)) = child.try_wait() {
                return Ok(());
            }
            child
                .kill()
                .map_err(|e| Error::new(format!("cannot kill postgres: {e}")))?;
            child
                .wait()
                .map_err(|e| Error::new(format!("cannot wait for postgres to exit: {e}")))?;
        }
        Ok(())
    }

    /// Starts the server again after [`Cluster::stop_server`] or
    /// [`Cluster::kill_server`], on the same port and data directory, and
    /// waits (at most 30 s) until it accepts connections (after a kill:
    /// until the old backends are gone and crash recovery is done). Does
    /// nothing if it is already running.
    pub fn start_server(&self) -> Result<(), Error> {
        let mut server = lock(&self.server);
        if let Some(child) = server.as_mut() {
            match child.try_wait() {
                Ok(None) => return Ok(()),
                _ => *server = None,
            }
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.spawn_server() {
                Ok(child) => {
                    *server = Some(child);
                    return Ok(());
                }
                // The port is fixed now (clients know the URL), so wait for
                // whoever holds it to let go.
                Err(StartFailure::PortInUse(_) | StartFailure::OldBackendsAlive(_))
                    if Instant::now() < deadline =>
                {
                    thread::sleep(Duration::from_millis(200));
                }
                Err(StartFailure::PortInUse(log)) => {
                    return Err(Error::new(format!(
                        "cannot restart postgres: port {} stayed in use; server log:\n{log}",
                        self.port
                    )));
                }
                Err(StartFailure::OldBackendsAlive(log)) => {
                    return Err(Error::new(format!(
                        "cannot restart postgres: the killed server's backends stayed alive; server log:\n{log}"
                    )));
                }
                Err(StartFailure::Other(e)) => return Err(e),
            }
        }
    }

    /// Whether the server process is currently running.
    pub fn is_running(&self) -> bool {
        let mut server = lock(&self.server);
        matches!(server.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        cmd.current_dir(&self.root)
            .env("LC_ALL", "C")
            .env_remove("PGDATA")
            .stdin(Stdio::null())
            // Own process group: a Ctrl-C aimed at the test run must not stop
            // the server behind the tests' back, nor kill it mid-initdb.
            .process_group(0);
        if let Some((uid, gid)) = self.run_as {
            // std drops supplementary groups when changing uid.
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    fn initdb(&self) -> Result<(), Error> {
        let output = self
            .command("initdb")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8"])
            .args((!self.durable).then_some("--no-sync"))
            .arg("--locale=C")
            .output()
            .map_err(|e| {
                Error::new(format!(
                    "cannot run {}: {e}",
                    self.bin_dir.join("initdb").display()
                ))
            })?;
        if output.status.success() {
            return Ok(());
        }
        let hint = if self.run_as.is_some() {
            format!(
                "\n(running as root: initdb runs as the `postgres` user, which must be able \
                 to reach {}; set TMPDIR to a directory it can traverse, e.g. /tmp)",
                self.root.display()
            )
        } else {
            String::new()
        };
        Err(Error::new(format!(
            "initdb failed ({}):\n{}{}{hint}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )))
    }

    fn add_scram_hba_line(&self, name: &str) -> Result<(), Error> {
        let path = self.data_dir.join("pg_hba.conf");
        let old = fs::read_to_string(&path)
            .map_err(|e| Error::new(format!("cannot read {}: {e}", path.display())))?;
        let new = format!(
            "# throwaway-postgres: password login for the SCRAM user, before the trust lines\n\
             host all \"{name}\" 127.0.0.1/32 scram-sha-256\n{old}"
        );
        // Overwriting keeps the file's owner and mode.
        fs::write(&path, new)
            .map_err(|e| Error::new(format!("cannot write {}: {e}", path.display())))
    }

    /// Writes `server.crt` and `server.key` (the server's defaults for
    /// `ssl_cert_file` and `ssl_key_file`) into the data directory. The
    /// server refuses a key that others can read or that it does not own.
    fn write_ssl_files(&self, certificate: &str, key: &str) -> Result<(), Error> {
        use std::os::unix::fs::PermissionsExt;
        for (name, text) in [("server.crt", certificate), ("server.key", key)] {
            let path = self.data_dir.join(name);
            let failed =
                |e: std::io::Error| Error::new(format!("cannot write {}: {e}", path.display()));
            fs::write(&path, text).map_err(failed)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).map_err(failed)?;
            if let Some((uid, gid)) = self.run_as {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid)).map_err(failed)?;
            }
        }
        Ok(())
    }

    /// Spawns `postgres` on `self.port` and waits until it is ready.
    fn spawn_server(&self) -> Result<Child, StartFailure> {
        let other = |m: String| StartFailure::Other(Error::new(m));
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| other(format!("cannot open {}: {e}", self.log_path.display())))?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let log2 = log
            .try_clone()
            .map_err(|e| other(format!("cannot duplicate log handle: {e}")))?;
        let mut cmd = self.command("postgres");
        cmd.arg("-D")
            .arg(&self.data_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .stdout(log)
            .stderr(log2);
        let max_connections = format!("max_connections={}", self.max_connections);
        let socket_dir = {
            let mut s = OsString::from("unix_socket_directories=");
            s.push(&self.root);
            s
        };
        let durability = if self.durable { "on" } else { "off" };
        let durability = [
            format!("fsync={durability}"),
            format!("synchronous_commit={durability}"),
            format!("full_page_writes={durability}"),
        ];
        for setting in [
            "listen_addresses=127.0.0.1",
            &durability[0],
            &durability[1],
            &durability[2],
            "shared_buffers=128MB",
            "password_encryption=scram-sha-256",
            "logging_collector=off",
            &max_connections,
        ] {
            cmd.arg("-c").arg(setting);
        }
        cmd.arg("-c").arg(socket_dir);
        if self.ssl {
            cmd.arg("-c").arg("ssl=on");
        }
        let mut child = cmd.spawn().map_err(|e| {
            other(format!(
                "cannot run {}: {e}",
                self.bin_dir.join("postgres").display()
            ))
        })?;

        let deadline = Instant::now() + READY_TIMEOUT;
        let mut delay = Duration::from_millis(5);
        let mut last_probe = String::from("no attempt yet");
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    let tail = self.log_tail(log_start);
                    if is_bind_failure(&tail) {
                        return Err(StartFailure::PortInUse(tail));
                    }
                    if tail.contains("pre-existing shared memory block") {
                        return Err(StartFailure::OldBackendsAlive(tail));
                    }
                    return Err(other(format!(
                        "postgres exited during startup ({status}); server log:\n{tail}"
                    )));
                }
                Ok(None) => {}
                Err(e) => return Err(other(format!("cannot wait for postgres: {e}"))),
            }
            if self.pidfile_ready(child.id()) {
                match probe(self.port) {
                    Ok(()) => return Ok(child),
                    Err(e) => last_probe = e,
                }
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(other(format!(
                    "postgres did not accept connections on 127.0.0.1:{} within {} s \
                     (last attempt: {last_probe}); server log:\n{}",
                    self.port,
                    READY_TIMEOUT.as_secs(),
                    self.log_tail(log_start)
                )));
            }
            thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(50));
        }
    }

    /// Whether `postmaster.pid` names `pid` and says the server is ready
    /// (the same check `pg_ctl -w` does). Guards against the probe reaching
    /// some other server that won a race for the port.
    fn pidfile_ready(&self, pid: u32) -> bool {
        let Ok(text) = fs::read_to_string(self.data_dir.join("postmaster.pid")) else {
            return false;
        };
        let mut lines = text.lines();
        if lines.next().map(str::trim) != Some(pid.to_string().as_str()) {
            return false;
        }
        // Line 8 is the status (PostgreSQL 10+); older servers lack it.
        match lines.nth(6) {
            Some(status) => status.trim() == "ready",
            None => true,
        }
    }

    fn log_tail(&self, from: u64) -> String {
        let bytes = fs::read(&self.log_path).unwrap_or_default();
        let start = usize::try_from(from).unwrap_or(0).min(bytes.len());
        let text = String::from_utf8_lossy(&bytes[start..]);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let server = self
            .server
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut child) = server {
            let _ = stop_child(&mut child, "QUIT", IMMEDIATE_STOP_TIMEOUT);
        }
        let _ = fs::remove_dir_all(&self.root);
        let guardian = self
            .guardian
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut guardian) = guardian {
            // Closing its stdin is what tells the guardian to finish; with
            // nothing left to clean up it exits at once.
            drop(guardian.stdin.take());
            if wait_timeout(&mut guardian, Duration::from_secs(5)).is_none() {
                let _ = guardian.kill();
                let _ = guardian.wait();
            }
        }
    }
}

/// The process-wide cluster, started on first use and shared by every test
/// in the binary (give each test its own [`Cluster::create_database`]).
///
/// It is never dropped; the guardian process stops it and removes its
/// directory when the test process exits.
///
/// # Panics
///
/// If the cluster cannot be started, with the error's message (for example
/// how to install PostgreSQL). Later calls panic with the same message.
pub fn shared() -> &'static Cluster {
    static SHARED: OnceLock<Result<Cluster, Error>> = OnceLock::new();
    match SHARED.get_or_init(Cluster::start) {
        Ok(cluster) => cluster,
        Err(e) => panic!("throwaway-postgres: cannot start the shared cluster: {e}"),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn locate_bin_dir() -> Result<PathBuf, Error> {
    let pg_config = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    locate_in(
        std::env::var_os("PG_BIN"),
        pg_config,
        Path::new("/usr/lib/postgresql"),
    )
}

fn has_server(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("postgres").is_file()
}

fn locate_in(
    pg_bin: Option<OsString>,
    pg_config_bindir: Option<PathBuf>,
    versions_root: &Path,
) -> Result<PathBuf, Error> {
    if let Some(dir) = pg_bin.filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if has_server(&dir) {
            return Ok(dir);
        }
        return Err(Error::new(format!(
            "PG_BIN is set to {} but that directory does not contain both initdb and postgres. {INSTALL_HINT}",
            dir.display()
        )));
    }
    if let Some(dir) = pg_config_bindir.filter(|d| has_server(d)) {
        return Ok(dir);
    }
    let newest = fs::read_dir(versions_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version: Vec<u32> = name
                .split('.')
                .map(|p| p.parse().ok())
                .collect::<Option<_>>()?;
            let bin = entry.path().join("bin");
            has_server(&bin).then_some((version, bin))
        })
        .max();
    match newest {
        Some((_, bin)) => Ok(bin),
        None => Err(Error::new(INSTALL_HINT)),
    }
}

fn find_psql(bin_dir: &Path) -> PathBuf {
    let beside = bin_dir.join("psql");
    if beside.is_file() {
        return beside;
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("psql"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("psql"))
}

/// Looks up `(uid, gid)` of a user (via `getent`, falling back to
/// `/etc/passwd`).
fn lookup_user(name: &str) -> Result<(u32, u32), Error> {
    let parse = |line: &str| -> Option<(u32, u32)> {
        let f: Vec<&str> = line.trim().split(':').collect();
        (f.len() >= 4 && f[0] == name).then_some(())?;
        Some((f[2].parse().ok()?, f[3].parse().ok()?))
    };
    let from_getent = Command::new("getent")
        .args(["passwd", name])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| parse(&String::from_utf8_lossy(&o.stdout)));
    let found = from_getent.or_else(|| {
        fs::read_to_string("/etc/passwd")
            .ok()?
            .lines()
            .find_map(parse)
    });
    match found {
        Some((0, _)) | None => Err(Error::new(format!(
            "running as root, but initdb and postgres refuse to run as root and there is no \
             unprivileged `{name}` user to run them as: create it (`useradd --system \
             --user-group {name}`; installing the `postgresql` package also does) or run the \
             tests as a non-root user"
        ))),
        Some(ids) => Ok(ids),
    }
}

fn spawn_guardian(data_dir: &Path, root: &Path) -> Result<Child, Error> {
    Command::new("/bin/sh")
        .arg("-c")
        .arg(GUARDIAN_SCRIPT)
        .arg("throwaway-postgres-guardian")
        .arg(data_dir)
        .arg(root)
        // Only we hold the write end of this pipe (std makes it close-on-exec,
        // so no other child inherits it). Our exit closes it.
        .stdin(Stdio::piped())
        // Never hold the test process's stdout/stderr open.
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .current_dir("/")
        .process_group(0)
        .spawn()
        .map_err(|e| Error::new(format!("cannot start the cleanup guardian /bin/sh: {e}")))
}

/// Where the cluster's directory goes: `$THROWAWAY_PG_TMPDIR` if set, else
/// `/dev/shm` when it is a traversable directory with at least 1 GiB free
/// (RAM-backed: `initdb` and `CREATE DATABASE` get several times faster than
/// on many CI disks), else the system temp dir (`$TMPDIR` or `/tmp`).
fn make_temp_dir() -> Result<tempfile::TempDir, Error> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("throwaway-pg-");
    if let Some(base) = std::env::var_os("THROWAWAY_PG_TMPDIR").filter(|b| !b.is_empty()) {
        return builder.tempdir_in(&base).map_err(|e| {
            Error::new(format!(
                "cannot create a temporary directory in THROWAWAY_PG_TMPDIR={}: {e}",
                Path::new(&base).display()
            ))
        });
    }
    let shm = Path::new("/dev/shm");
    if shm_usable(shm)
        && let Ok(dir) = builder.tempdir_in(shm)
    {
        return Ok(dir);
    }
    builder.tempdir().map_err(|e| {
        Error::new(format!(
            "cannot create a temporary directory in {}: {e}",
            std::env::temp_dir().display()
        ))
    })
}

fn shm_usable(shm: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = fs::metadata(shm) else {
        return false;
    };
    // Others must be able to traverse it (the `postgres` user, when root).
    if !meta.is_dir() || meta.permissions().mode() & 0o001 == 0 {
        return false;
    }
    let available_kib = Command::new("df")
        .arg("-Pk")
        .arg(shm)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.lines()
                .nth(1)?
                .split_whitespace()
                .nth(3)?
                .parse::<u64>()
                .ok()
        });
    available_kib.is_some_and(|kib| kib >= 1024 * 1024)
}

fn free_port() -> Result<u16, Error> {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::new(format!("cannot find a free port on 127.0.0.1: {e}")))
}

fn is_bind_failure(log: &str) -> bool {
    log.contains("could not bind")
        || log.contains("Address already in use")
        || log.contains("could not create any TCP/IP sockets")
}

/// Sends `signal` (a name such as `INT`) to `pid` with the shell's `kill`.
fn send_signal(pid: u32, signal: &str) {
    let _ = Command::new("/bin/sh")
        .args(["-c", "kill -s \"$1\" \"$2\" 2>/dev/null", "kill"])
        .arg(signal)
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Signals the server and waits; escalates to `SIGQUIT` (immediate shutdown)
/// and then `SIGKILL`.
fn stop_child(child: &mut Child, signal: &str, timeout: Duration) -> Result<(), Error> {
    if let Ok(Some(_)) = child.try_wait() {
        return Ok(());
    }
    send_signal(child.id(), signal);
    if wait_timeout(child, timeout).is_some() {
        return Ok(());
    }
    if signal != "QUIT" {
        send_signal(child.id(), "QUIT");
        if wait_timeout(child, IMMEDIATE_STOP_TIMEOUT).is_some() {
            return Ok(());
        }
    }
    let _ = child.kill();
    child
        .wait()
        .map(|_| ())
        .map_err(|e| Error::new(format!("cannot wait for postgres to exit: {e}")))
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => {
                thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(20));
            }
            _ => return None,
        }
    }
}

/// Opens a protocol-v3 session as `postgres` and waits for ReadyForQuery.
fn probe(port: u16) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map_err(|e| e.to_string())?;
    let timeout = Some(Duration::from_secs(2));
    stream
        .set_read_timeout(timeout)
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(timeout)
        .map_err(|e| e.to_string())?;
    let mut body = 196_608u32.to_be_bytes().to_vec(); // protocol 3.0
    for part in ["user", "postgres", "database", "postgres", ""] {
        body.extend_from_slice(part.as_bytes());
        body.push(0);
    }
    let mut message = u32::try_from(body.len() + 4)
        .expect("small")
        .to_be_bytes()
        .to_vec();
    message.extend_from_slice(&body);
    stream.write_all(&message).map_err(|e| e.to_string())?;
    loop {
        let mut header = [0u8; 5];
        stream.read_exact(&mut header).map_err(|e| e.to_string())?;
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        if !(4..=1 << 20).contains(&len) {
            return Err(format!("bad message length {len}"));
        }
        let mut payload = vec![0u8; len - 4];
        stream.read_exact(&mut payload).map_err(|e| e.to_string())?;
        match header[0] {
            b'Z' => {
                let _ = stream.write_all(&[b'X', 0, 0, 0, 4]);
                return Ok(());
            }
            b'E' => return Err(error_text(&payload)),
            // Any authentication request other than "ok" still means the
            // server accepts connections.
            b'R' if payload.get(..4) != Some(&[0, 0, 0, 0]) => return Ok(()),
            _ => {}
        }
    }
}

/// The `M` (message) field of an ErrorResponse.
fn error_text(payload: &[u8]) -> String {
    payload
        .split(|b| *b == 0)
        .find_map(|field| field.strip_prefix(b"M"))
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .unwrap_or_else(|| "server error".to_owned())
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_message_says_how_to_fix() {
        let empty = tempfile::tempdir().unwrap();
        let err = locate_in(None, None, empty.path()).unwrap_err();
        assert_eq!(err.message(), INSTALL_HINT);
        assert!(err.message().contains("apt-get install -y postgresql"));
        assert!(err.message().contains("PG_BIN"));
    }

    #[test]
    fn bad_pg_bin_is_an_error_not_a_fallback() {
        let empty = tempfile::tempdir().unwrap();
        let versions = fake_versions(&["15"]);
        let err = locate_in(Some(empty.path().into()), None, versions.path()).unwrap_err();
        assert!(err.message().contains("PG_BIN is set to"), "{err}");
        assert!(err.message().contains("apt-get install -y postgresql"));
    }

    #[test]
    fn picks_newest_version_numerically() {
        let versions = fake_versions(&["9.6", "15", "13", "notaversion"]);
        let found = locate_in(None, None, versions.path()).unwrap();
        assert_eq!(found, versions.path().join("15/bin"));
    }

    #[test]
    fn pg_config_wins_over_scan_when_it_has_initdb() {
        let versions = fake_versions(&["13", "16"]);
        let found = locate_in(None, Some(versions.path().join("13/bin")), versions.path()).unwrap();
        assert_eq!(found, versions.path().join("13/bin"));
        let empty = tempfile::tempdir().unwrap();
        let found = locate_in(None, Some(empty.path().into()), versions.path()).unwrap();
        assert_eq!(found, versions.path().join("16/bin"));
    }

    #[test]
    fn urls_are_percent_encoded() {
        assert_eq!(percent_encode("a b@c:d/é"), "a%20b%40c%3Ad%2F%C3%A9");
        assert_eq!(percent_encode("t_1_2"), "t_1_2");
    }

    #[test]
    fn missing_user_says_how_to_fix() {
        let err = lookup_user("no_such_user_throwaway_pg").unwrap_err();
        assert!(err.message().contains("refuse to run as root"), "{err}");
        assert!(err.message().contains("useradd"), "{err}");
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    fn fake_versions(versions: &[&str]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for v in versions {
            let bin = root.path().join(v).join("bin");
            fs::create_dir_all(&bin).unwrap();
            fs::write(bin.join("initdb"), "").unwrap();
            fs::write(bin.join("postgres"), "").unwrap();
        }
        root
    }
}
