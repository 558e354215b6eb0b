//! [`Mode`]: a pool, or a connection per request.

use std::fmt;
use std::str::FromStr;

/// How requests get their connection. One setting, the rest of the code is
/// the same either way.
///
/// ```
/// use provision_postgres::Mode;
///
/// assert_eq!("per-request".parse::<Mode>().unwrap(), Mode::PerRequest);
/// assert!("sometimes".parse::<Mode>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Connections are kept in a pool and leased per request.
    #[default]
    Pool,
    /// Each request opens its own connection on its first query and closes
    /// it when it ends: the Cloudflare Workers rule, and the shape a
    /// transaction-mode pooler (PgBouncer, Hyperdrive) in front of the
    /// database expects, since it does the pooling.
    PerRequest,
}

impl FromStr for Mode {
    type Err = String;

    /// `pool` or `per-request`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pool" => Ok(Mode::Pool),
            "per-request" => Ok(Mode::PerRequest),
            _ => Err(format!(
                "database mode must be `pool` or `per-request`, not {s:?}"
            )),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Pool => "pool",
            Mode::PerRequest => "per-request",
        })
    }
}
