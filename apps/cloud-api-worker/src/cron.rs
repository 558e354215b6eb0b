//! The cron trigger: API tokens expire.
//!
//! Tokens have no expiry of their own; this job gives them one. Every run
//! (`[triggers] crons` in `wrangler.toml`, daily) deletes the tokens
//! created more than `TOKEN_MAX_AGE_DAYS` days ago (a variable; 90 by
//! default), inside the event's own request scope: `Tx` on a connection
//! opened for this event, committed if the job succeeds, rolled back if it
//! fails or panics, and released before the event ends, exactly as for a
//! fetch.

use cloud_api::services::Tx;
use provision::{Error, RequestScope};
use tokio_postgres::types::Type;
use worker::Env;

/// How old a token may get, by default, in days.
const DEFAULT_MAX_AGE_DAYS: i32 = 90;

/// `TOKEN_MAX_AGE_DAYS`, or the default.
pub(crate) fn max_age_days(env: &Env) -> i32 {
    env.var("TOKEN_MAX_AGE_DAYS")
        .ok()
        .and_then(|v| v.to_string().parse().ok())
        .filter(|days| *days >= 0)
        .unwrap_or(DEFAULT_MAX_AGE_DAYS)
}

/// Deletes the tokens older than `days` in this scope's transaction;
/// returns how many.
pub(crate) async fn delete_expired_tokens(days: i32) -> Result<u64, Error> {
    let scope = RequestScope::current()
        .ok_or_else(|| Error::new("the cron job runs outside a request scope"))?;
    let tx = scope.resolve::<Tx>().await?;
    let client = tx
        .get()?
        .postgres_client()
        .ok_or_else(|| Error::new("the Worker's database is PostgreSQL"))?;
    client
        .execute_typed(
            "DELETE FROM api_tokens WHERE created_at < now() - make_interval(days => $1)",
            &[(&days, Type::INT4)],
        )
        .await
        .map_err(|error| {
            tracing::error!(?error, "deleting expired API tokens failed");
            Error::new("deleting expired API tokens failed")
        })
}
