//! The TLS settings of a database URL that cloud-api cannot honour.
//!
//! cloud-api connects to PostgreSQL without TLS (tokio-postgres' `NoTls`;
//! no TLS stack is compiled in). tokio-postgres then fails `sslmode=require`
//! and `channel_binding=require` only when connecting, after the retries,
//! as a vague "cannot connect", and refuses `verify-ca` and `verify-full`
//! as an invalid URL. Refusing them at startup, naming the setting, says
//! what is wrong where the operator looks, and never connects in plain
//! text when TLS was asked for.

/// Why `url` asks for something a connection without TLS cannot give, if
/// it does. Never echoes the URL (it holds the password).
pub(super) fn refusal(url: &str) -> Option<String> {
    let pairs: Vec<(&str, &str)> = match url.split_once('?') {
        Some((_, query)) => query.split('&').filter_map(|p| p.split_once('=')).collect(),
        None if url.contains("://") => Vec::new(),
        None => url
            .split_whitespace()
            .filter_map(|p| p.split_once('='))
            .collect(),
    };
    // The last occurrence wins, as in tokio-postgres and libpq.
    let value = |key: &str| pairs.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| *v);
    if let Some(mode @ ("require" | "verify-ca" | "verify-full")) = value("sslmode") {
        return Some(format!(
            "sslmode={mode} asks for TLS, but cloud-api connects to PostgreSQL without TLS: \
             use sslmode=disable or sslmode=prefer for a database on loopback or a private \
             network, or reach it through a local TLS-terminating proxy"
        ));
    }
    if value("channel_binding") == Some("require") {
        return Some(
            "channel_binding=require needs TLS (SCRAM-SHA-256-PLUS), but cloud-api connects \
             to PostgreSQL without TLS: use channel_binding=prefer (or remove it) for a \
             database on loopback or a private network"
                .to_string(),
        );
    }
    None
}
