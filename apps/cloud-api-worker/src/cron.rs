//! The cron trigger: API tokens expire.
//!
//! Every run (`[triggers] crons` in `wrangler.toml`, daily) runs the token
//! expiry job that the native server runs on a timer
//! (`cloud_api::jobs::expire_tokens`, the same code): it deletes the tokens
//! created more than `TOKEN_MAX_AGE_DAYS` days ago (a variable; 90 by
//! default), inside the event's own scope (`provision_worker::in_scope`,
//! which is `Registry::job`): `Tx` on a connection opened for this event,
//! committed if the job succeeds, rolled back if it fails or panics, and
//! released before the event ends, exactly as for a fetch.

use cloud_api::jobs::expire_tokens::{DEFAULT_MAX_AGE_DAYS, expire_tokens};
use provision::Error;
use worker::Env;

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
    expire_tokens(days).await
}
