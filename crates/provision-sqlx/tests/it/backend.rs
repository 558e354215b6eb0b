//! The two real databases behind one trait: a fresh database with the test
//! schema, and the few statements the cases run.

use std::future::Future;

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Database, Postgres, Sqlite};

/// Both tables exist in both dialects: `children.parent` is checked only
/// at commit, so a child without a parent makes the commit fail.
const SCHEMA: &str = "
    CREATE TABLE items (name TEXT PRIMARY KEY);
    CREATE TABLE parents (id INTEGER PRIMARY KEY);
    CREATE TABLE children (
        parent INTEGER NOT NULL REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED
    );
";

/// The SQLite database's file name in its fixture's directory.
pub const SQLITE_FILE: &str = "test.db";

/// The pool size every test uses: small, so a connection that is not given
/// back shows up in `num_idle`.
pub const POOL_SIZE: u32 = 3;

/// A database the test owns, and what keeps it alive (a SQLite file's
/// directory).
pub struct Fixture<DB: Database> {
    pub pool: sqlx::Pool<DB>,
    /// The SQLite file's directory.
    pub dir: Option<tempfile::TempDir>,
}

pub trait Backend: Database {
    fn fresh() -> impl Future<Output = Fixture<Self>> + Send;

    /// Inserts an item (autocommit on a `Conn`, or inside a `Tx`).
    fn insert<'c>(
        conn: &'c mut Self::Connection,
        name: &'c str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'c;

    /// Inserts a child whose parent does not exist: accepted now, refused
    /// by the commit.
    fn insert_orphan(
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + '_;

    /// How many items this connection sees (a read inside a `Tx`).
    fn count_in(conn: &mut Self::Connection) -> impl Future<Output = i64> + Send + '_;

    /// How many committed rows `table` has, seen from another connection.
    fn count(pool: &sqlx::Pool<Self>, table: &'static str) -> impl Future<Output = i64> + Send;
}

impl Backend for Postgres {
    async fn fresh() -> Fixture<Self> {
        let cluster = throwaway_postgres::shared();
        let db = cluster.create_database().expect("a fresh database");
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect(&cluster.url(&db))
            .await
            .expect("connects to the throwaway cluster");
        sqlx::raw_sql(SCHEMA).execute(&pool).await.unwrap();
        Fixture { pool, dir: None }
    }

    async fn insert(conn: &mut sqlx::PgConnection, name: &str) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO items (name) VALUES ($1)")
            .bind(name)
            .execute(conn)
            .await
            .map(drop)
    }

    async fn count_in(conn: &mut sqlx::PgConnection) -> i64 {
        let (n,): (i64,) = sqlx::query_as(count_sql("items"))
            .fetch_one(conn)
            .await
            .unwrap();
        n
    }

    async fn insert_orphan(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO children (parent) VALUES (42)")
            .execute(conn)
            .await
            .map(drop)
    }

    async fn count(pool: &sqlx::Pool<Self>, table: &'static str) -> i64 {
        let (n,): (i64,) = sqlx::query_as(count_sql(table))
            .fetch_one(pool)
            .await
            .unwrap();
        n
    }
}

impl Backend for Sqlite {
    async fn fresh() -> Fixture<Self> {
        let dir = tempfile::tempdir().unwrap();
        // WAL: a reader sees what is committed while a writer is open,
        // as on PostgreSQL. sqlx turns foreign keys on by default.
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join(SQLITE_FILE))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect_with(options)
            .await
            .expect("opens the SQLite file");
        sqlx::raw_sql(SCHEMA).execute(&pool).await.unwrap();
        Fixture {
            pool,
            dir: Some(dir),
        }
    }

    async fn insert(conn: &mut sqlx::SqliteConnection, name: &str) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO items (name) VALUES (?)")
            .bind(name)
            .execute(conn)
            .await
            .map(drop)
    }

    async fn count_in(conn: &mut sqlx::SqliteConnection) -> i64 {
        let (n,): (i64,) = sqlx::query_as(count_sql("items"))
            .fetch_one(conn)
            .await
            .unwrap();
        n
    }

    async fn insert_orphan(conn: &mut sqlx::SqliteConnection) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO children (parent) VALUES (42)")
            .execute(conn)
            .await
            .map(drop)
    }

    async fn count(pool: &sqlx::Pool<Self>, table: &'static str) -> i64 {
        let (n,): (i64,) = sqlx::query_as(count_sql(table))
            .fetch_one(pool)
            .await
            .unwrap();
        n
    }
}

fn count_sql(table: &'static str) -> &'static str {
    match table {
        "items" => "SELECT count(*) FROM items",
        "children" => "SELECT count(*) FROM children",
        other => panic!("no table {other}"),
    }
}
