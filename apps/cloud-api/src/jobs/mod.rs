//! Work that is not an HTTP request: each run in a scope of its own
//! ([`provision::Registry::job`]), with the services and guarantees of a
//! request. The job's code is shared: the native server runs it on a timer
//! ([`periodic`]), the Cloudflare Worker from its cron trigger.

pub mod expire_tokens;
#[cfg(not(target_arch = "wasm32"))]
pub mod periodic;

/// Starts the native server's jobs on the runtime: token expiry every
/// `--token-expiry-interval`. They stop when the registry shuts down (a
/// run in progress is cut and released with `Exit::Shutdown`); await the
/// handle after that.
#[cfg(not(target_arch = "wasm32"))]
pub fn start(
    registry: &provision::Registry,
    settings: &crate::settings::Settings,
) -> tokio::task::JoinHandle<()> {
    let days = settings.token_max_age_days;
    periodic::spawn_periodic(
        registry.clone(),
        expire_tokens::NAME,
        settings.token_expiry_interval,
        periodic::Retry::default(),
        move || expire_tokens::expire_tokens(days),
    )
}
