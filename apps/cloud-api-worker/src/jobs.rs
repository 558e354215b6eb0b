//! The queue consumer: jobs sent to the Worker's queue (`cloud-api-jobs`
//! in `wrangler.toml`), one message, one job.
//!
//! Each message runs in a request scope of its own
//! ([`provision_worker::in_scope`], with the batch's `Context`), with the
//! same services, settle and release, `Exit`, metrics and panic handling
//! as a fetch: `Tx` commits when the job succeeds and rolls back when it
//! fails or panics. A job that succeeds is acknowledged; one that fails is
//! retried (Cloudflare delivers it again, up to `max_retries`); a body
//! that is not a job is logged and acknowledged, since retrying cannot fix
//! it.

use serde::Deserialize;
use serde_json::Value;
use worker::{Context, MessageBatch, MessageExt};

use cloud_api::app::App;

/// A message on the queue.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Job {
    /// Delete the API tokens created more than this many days ago: the
    /// cron job's work on demand (after shortening the policy, say).
    pub(crate) delete_tokens_older_than_days: i32,
    /// Test builds only: panic after the delete, before the commit.
    #[cfg(feature = "test-routes")]
    #[serde(default)]
    pub(crate) panic: bool,
}

/// Runs every message of `batch`, each in its own scope, in order, and
/// acknowledges or retries it.
pub(crate) async fn run(app: &App, batch: &MessageBatch<Value>, ctx: &Context) {
    for message in batch.iter() {
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                // Cannot happen for a JSON body; a body that is not JSON
                // stays unacknowledged and is retried with the batch.
                worker::console_error!("queue {}: unreadable message: {error}", batch.queue());
                continue;
            }
        };
        let job: Job = match serde_json::from_value(message.body().clone()) {
            Ok(job) => job,
            Err(error) => {
                worker::console_error!(
                    "queue {}: message {} is not a job ({error}); dropped",
                    batch.queue(),
                    message.id()
                );
                message.ack();
                continue;
            }
        };
        let days = job.delete_tokens_older_than_days;
        let outcome = provision_worker::in_scope(&app.registry, ctx, async {
            let deleted = crate::cron::delete_expired_tokens(days).await?;
            #[cfg(feature = "test-routes")]
            if job.panic {
                panic!("test: a queue job panicked");
            }
            Ok(deleted)
        })
        .await;
        match outcome {
            Ok(deleted) => {
                worker::console_log!(
                    "queue {}: message {}: deleted {deleted} API tokens older than {days} days",
                    batch.queue(),
                    message.id()
                );
                message.ack();
            }
            Err(error) => {
                worker::console_error!(
                    "queue {}: message {} failed, to be retried: {error}",
                    batch.queue(),
                    message.id()
                );
                message.retry();
            }
        }
    }
}
