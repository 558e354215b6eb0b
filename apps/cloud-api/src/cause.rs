//! An error with every cause behind it, for a startup failure: the outer
//! message says which step failed, the innermost what the database said.

use std::error::Error;
use std::fmt::Write as _;

/// `error`'s message, then each of its sources on a `caused by:` line. A
/// source whose message is already part of the line before it (a wrapper
/// that quotes its cause, a driver error whose text is only `db error`) is
/// left out: it would say the same thing twice.
///
/// ```
/// let io = std::io::Error::other("connection refused");
/// let error = cloud_api::store::StoreError::Unavailable(
///     cloud_api::store::Reason::with_source("cannot reach the database", io),
/// );
/// assert_eq!(
///     cloud_api::cause::chain(&error),
///     "cannot reach the database\n  caused by: connection refused"
/// );
/// ```
pub fn chain(error: &(dyn Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut last = out.clone();
    let mut source = error.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !message.is_empty() && !last.contains(&message) {
            let _ = write!(out, "\n  caused by: {message}");
            last = message;
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use super::*;

    #[derive(Debug)]
    struct Wrapped(&'static str, Option<Box<Wrapped>>);

    impl fmt::Display for Wrapped {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Wrapped {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn prints_each_new_cause_once() {
        let error = Wrapped(
            "building `Db` failed: could not migrate",
            Some(Box::new(Wrapped(
                "could not migrate",
                Some(Box::new(Wrapped(
                    "db error",
                    Some(Box::new(Wrapped("ERROR: permission denied", None))),
                ))),
            ))),
        );
        assert_eq!(
            chain(&error),
            "building `Db` failed: could not migrate\n  caused by: db error\n  caused by: ERROR: permission denied"
        );
        assert_eq!(chain(&Wrapped("alone", None)), "alone");
    }
}
