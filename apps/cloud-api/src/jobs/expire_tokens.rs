//! The token-expiry job: API tokens have no expiry of their own; this job
//! gives them one by deleting those created more than a given number of
//! days ago.

use provision::{Error, RequestScope};

use crate::services::{Tx, store_error};

/// The job's name, in logs.
pub const NAME: &str = "expire-tokens";

/// How old a token may get, by default, in days.
pub const DEFAULT_MAX_AGE_DAYS: i32 = 90;

/// Deletes the tokens created more than `max_age_days` days ago, in the
/// current scope's [`Tx`] (committed if the job's run succeeds, rolled back
/// otherwise); returns how many. Run it in a job's scope:
///
/// ```no_run
/// # async fn run(registry: provision::Registry) -> Result<(), provision::Error> {
/// use cloud_api::jobs::expire_tokens::{NAME, expire_tokens};
/// let deleted = registry.run_scoped(NAME, expire_tokens(90)).await?;
/// # Ok(()) }
/// ```
pub async fn expire_tokens(max_age_days: i32) -> Result<u64, Error> {
    let scope = RequestScope::current()
        .ok_or_else(|| Error::new("the token-expiry job runs outside a scope"))?;
    let tx = scope.resolve::<Tx>().await?;
    let deleted = tx
        .get()?
        .delete_tokens_older_than(max_age_days)
        .await
        .map_err(store_error)?;
    tracing::info!(deleted, max_age_days, "expired API tokens deleted");
    Ok(deleted)
}
