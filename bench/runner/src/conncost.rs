//! What a new PostgreSQL connection costs a request: connect, authenticate
//! (trust, or SCRAM-SHA-256 with its client-side key derivation), and the
//! first query (the token lookup every protected request starts with),
//! measured from Rust with tokio-postgres, as the servers connect; plus
//! the server's side, `pgbench -C` with `SELECT 1`.

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_postgres::NoTls;
use tokio_postgres::types::Type;

use crate::ceiling::pgbench_run;
use crate::setup::{Env, SCRAM_PASSWORD, SCRAM_USER};
use crate::{BoxError, Plan, say};

/// Summary of a sample, in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

impl Stats {
    fn of(mut samples: Vec<Duration>) -> Stats {
        samples.sort();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let at = |q: f64| us(samples[((samples.len() - 1) as f64 * q).round() as usize]);
        Stats {
            mean_us: samples.iter().map(|d| us(*d)).sum::<f64>() / samples.len() as f64,
            p50_us: at(0.5),
            p99_us: at(0.99),
        }
    }
}

/// One authentication method, sequentially, from one client.
#[derive(Debug, Clone, Serialize)]
pub struct Phases {
    pub auth: &'static str,
    /// TCP connect, startup, authentication, until ready for queries.
    pub connect: Stats,
    /// The first query on the new connection.
    pub first_query: Stats,
    /// Dropping the client until its connection task has ended.
    pub close: Stats,
    /// All three.
    pub total: Stats,
}

/// `pgbench -C` with `SELECT 1`.
#[derive(Debug, Clone, Serialize)]
pub struct Storm {
    pub auth: &'static str,
    pub clients: u32,
    /// New connections (each with one `SELECT 1`) per second.
    pub tps: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConnCost {
    pub iterations: usize,
    pub trust: Phases,
    pub scram: Phases,
    /// The same first query on an already open connection (what pool mode
    /// pays instead).
    pub query_on_open_connection: Stats,
    pub storms: Vec<Storm>,
}

const FIRST_QUERY: &str = "SELECT t.hash, u.id, u.name, u.email, \
    to_char(u.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS created_at \
    FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = $1";

async fn phases(
    auth: &'static str,
    url: &str,
    token_id: i64,
    iterations: usize,
) -> Result<Phases, BoxError> {
    let (mut connect, mut first, mut close, mut total) = (vec![], vec![], vec![], vec![]);
    // A few unmeasured rounds first.
    for i in 0..iterations + 10 {
        let t0 = Instant::now();
        let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
        let task = tokio::spawn(async move {
            let _ = connection.await;
        });
        let t1 = Instant::now();
        client
            .query_typed_opt(FIRST_QUERY, &[(&token_id, Type::INT8)])
            .await?
            .ok_or("the token is missing")?;
        let t2 = Instant::now();
        drop(client);
        let _ = task.await;
        let t3 = Instant::now();
        if i >= 10 {
            connect.push(t1 - t0);
            first.push(t2 - t1);
            close.push(t3 - t2);
            total.push(t3 - t0);
        }
    }
    Ok(Phases {
        auth,
        connect: Stats::of(connect),
        first_query: Stats::of(first),
        close: Stats::of(close),
        total: Stats::of(total),
    })
}

pub async fn run(env: &Env, plan: &Plan, started: Instant) -> Result<ConnCost, BoxError> {
    let trust = phases("trust", &env.url, env.token_id, plan.conn_iters).await?;
    let scram = phases(
        "scram-sha-256",
        &env.scram_url,
        env.token_id,
        plan.conn_iters,
    )
    .await?;
    let (client, connection) = tokio_postgres::connect(&env.url, NoTls).await?;
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut open = Vec::new();
    for i in 0..plan.conn_iters + 10 {
        let t0 = Instant::now();
        client
            .query_typed_opt(FIRST_QUERY, &[(&env.token_id, Type::INT8)])
            .await?;
        if i >= 10 {
            open.push(t0.elapsed());
        }
    }
    drop(client);
    let _ = task.await;
    say(
        started,
        format!(
            "connect+auth+first query p50: trust {:.0} us, SCRAM {:.0} us; query on an open connection {:.0} us",
            trust.total.p50_us,
            scram.total.p50_us,
            Stats::of(open.clone()).p50_us
        ),
    );
    let mut storms = Vec::new();
    let root = crate::workspace_root();
    for clients in [1, 32] {
        for (auth, user) in [
            ("trust", None),
            ("scram-sha-256", Some((SCRAM_USER, SCRAM_PASSWORD))),
        ] {
            let (tps, _, _) = pgbench_run(
                env,
                &root,
                "bench/pgbench/connect_select1.sql",
                clients,
                plan.pgbench_s,
                true,
                user,
            )?;
            say(
                started,
                format!("pgbench -C SELECT 1, {auth:<13} c={clients:<3} {tps:>7.0} connections/s"),
            );
            storms.push(Storm { auth, clients, tps });
        }
    }
    Ok(ConnCost {
        iterations: plan.conn_iters,
        trust,
        scram,
        query_on_open_connection: Stats::of(open),
        storms,
    })
}
