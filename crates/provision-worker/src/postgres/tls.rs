//! `sslmode` and `channel_binding` as libpq spells them, read from a
//! connection string, and what each means on Workers.
//!
//! tokio-postgres knows only `disable`, `prefer` and `require`, and refuses
//! the whole URL for `verify-ca` or `verify-full`; hosted providers put
//! those (and `channel_binding=require`) in the URLs they hand out. So the
//! TLS settings are read here first, and the URL given to tokio-postgres
//! carries a mode it understands.
//!
//! On Workers the TLS handshake is workerd's (StartTLS on the socket), and
//! workerd always verifies the server's certificate chain and host name; a
//! Worker cannot turn that off, nor see the TLS channel itself. Hence:
//!
//! | setting | on Workers |
//! |---|---|
//! | `sslmode=disable` | plain text |
//! | `sslmode=prefer` (default) | TLS if the server offers it, verified; plain text if it does not, or if the handshake fails (libpq's `prefer` retries without TLS too) |
//! | `sslmode=require`, `verify-ca`, `verify-full` | TLS, chain and host name verified (stricter than libpq's `require` and `verify-ca`); no TLS or a refused certificate: `503` |
//! | `channel_binding=disable`, `prefer` | SCRAM without channel binding |
//! | `channel_binding=require` | `503`: SCRAM-SHA-256-PLUS needs the TLS channel, which workerd keeps to itself |

use std::fmt;

/// libpq's `sslmode`, as the Worker applies it (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Plain text.
    Disable,
    /// TLS if the server offers it and the handshake succeeds, else plain
    /// text. The default, as in libpq.
    Prefer,
    /// TLS or fail.
    Require,
    /// TLS or fail (workerd checks the host name too).
    VerifyCa,
    /// TLS or fail, certificate chain and host name checked.
    VerifyFull,
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        })
    }
}

/// The TLS settings of a connection string, and the string to hand to
/// tokio-postgres.
pub(super) struct TlsSettings {
    pub(super) mode: SslMode,
    /// Why connecting cannot work on Workers, said to every request that
    /// tries (a `503`), rather than at isolate start where no caller sees it.
    pub(super) unsupported: Option<String>,
    /// The connection string with `sslmode` rewritten to one tokio-postgres
    /// parses, and `channel_binding=require` lowered (the request fails
    /// before connecting anyway, with a better message than a parse error).
    pub(super) url: String,
}

impl TlsSettings {
    /// Reads `sslmode` and `channel_binding` from a URL
    /// (`postgres://...?sslmode=...`) or a key=value string.
    pub(super) fn read(url: &str) -> TlsSettings {
        let mut mode = SslMode::Prefer;
        let mut unsupported = None;
        let rewrite = |key: &str, value: &str| -> Option<String> {
            match (key, value) {
                ("sslmode", "verify-ca" | "verify-full") => Some("require".into()),
                ("sslmode", "allow") => Some("prefer".into()),
                ("channel_binding", "require") => Some("prefer".into()),
                _ => None,
            }
        };
        let mut note = |key: &str, value: &str| match (key, value) {
            ("sslmode", "disable") => mode = SslMode::Disable,
            ("sslmode", "prefer") => mode = SslMode::Prefer,
            ("sslmode", "require") => mode = SslMode::Require,
            ("sslmode", "verify-ca") => mode = SslMode::VerifyCa,
            ("sslmode", "verify-full") => mode = SslMode::VerifyFull,
            ("sslmode", "allow") => {
                unsupported = Some(
                    "sslmode=allow is not supported on Cloudflare Workers: \
                     use sslmode=prefer (TLS when the server offers it) or sslmode=disable"
                        .to_string(),
                )
            }
            ("channel_binding", "require") => {
                unsupported = Some(
                    "channel_binding=require is not supported on Cloudflare Workers: \
                     SCRAM-SHA-256-PLUS needs the TLS channel, which workerd does not expose \
                     to the Worker; use channel_binding=prefer with sslmode=verify-full \
                     (workerd verifies the server's certificate and host name)"
                        .to_string(),
                )
            }
            _ => {}
        };
        // Each `key=value` pair: noted, and rewritten if tokio-postgres
        // would refuse its value.
        let mut pair = |pair: &str| -> String {
            match pair.split_once('=') {
                Some((key, value)) => {
                    note(key, value);
                    match rewrite(key, value) {
                        Some(value) => format!("{key}={value}"),
                        None => pair.to_string(),
                    }
                }
                None => pair.to_string(),
            }
        };
        let url = if let Some((base, query)) = url.split_once('?') {
            let pairs: Vec<String> = query.split('&').map(&mut pair).collect();
            format!("{base}?{}", pairs.join("&"))
        } else if url.contains("://") {
            url.to_string()
        } else {
            // key=value form; quoted values with spaces are left alone, as
            // they cannot be one of the values read here.
            url.split_whitespace()
                .map(pair)
                .collect::<Vec<_>>()
                .join(" ")
        };
        TlsSettings {
            mode,
            unsupported,
            url,
        }
    }
}
