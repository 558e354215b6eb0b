//! Limit/offset pagination for list endpoints.

use serde::Deserialize;
use utoipa::IntoParams;

use super::validate::ValidationError;

/// A window into a list ordered by id.
///
/// Deserialized from `?limit=&offset=` and checked while it is: a query
/// with a bad limit is refused as it is extracted, before the handler runs
/// (and so before any connection is opened for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Pagination")]
pub struct Page {
    limit: i64,
    offset: i64,
}

impl Page {
    /// The page size when the client gives none.
    pub const DEFAULT_LIMIT: i64 = 50;
    /// The largest page size a client may ask for.
    pub const MAX_LIMIT: i64 = 500;

    /// From the optional `limit` and `offset` query parameters. An
    /// out-of-range limit is an error rather than silently clamped, so a
    /// client never mistakes a short page for the end of the list.
    pub fn new(limit: Option<i64>, offset: Option<i64>) -> Result<Page, ValidationError> {
        let limit = limit.unwrap_or(Self::DEFAULT_LIMIT);
        if !(1..=Self::MAX_LIMIT).contains(&limit) {
            return Err(ValidationError::new(
                "limit",
                format!("must be between 1 and {}", Self::MAX_LIMIT),
            ));
        }
        let offset = offset.unwrap_or(0);
        if offset < 0 {
            return Err(ValidationError::new("offset", "must not be negative"));
        }
        Ok(Page { limit, offset })
    }

    /// How many rows at most.
    pub fn limit(&self) -> i64 {
        self.limit
    }

    /// How many rows to skip.
    pub fn offset(&self) -> i64 {
        self.offset
    }
}

/// `?limit=&offset=` as sent, before it is checked: what the OpenAPI
/// document describes, and what a [`Page`] is deserialized from.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Pagination {
    /// At most this many users (default 50, at most 500).
    pub limit: Option<i64>,
    /// Skip this many users first (default 0).
    pub offset: Option<i64>,
}

impl TryFrom<Pagination> for Page {
    type Error = ValidationError;

    fn try_from(query: Pagination) -> Result<Page, ValidationError> {
        Page::new(query.limit, query.offset)
    }
}

impl Default for Page {
    fn default() -> Self {
        Page {
            limit: Self::DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(Page::new(None, None).unwrap(), Page::default());
        assert_eq!(Page::default().limit(), 50);
        let p = Page::new(Some(500), Some(7)).unwrap();
        assert_eq!((p.limit(), p.offset()), (500, 7));
        assert_eq!(Page::new(Some(501), None).unwrap_err().field, "limit");
        assert_eq!(Page::new(Some(0), None).unwrap_err().field, "limit");
        assert_eq!(Page::new(None, Some(-1)).unwrap_err().field, "offset");
    }

    #[test]
    fn deserializing_checks_the_bounds() {
        let page: Page = serde_json::from_str(r#"{"limit": 2, "offset": 3}"#).unwrap();
        assert_eq!((page.limit(), page.offset()), (2, 3));
        let page: Page = serde_json::from_str("{}").unwrap();
        assert_eq!(page, Page::default());
        let error = serde_json::from_str::<Page>(r#"{"limit": 0}"#).unwrap_err();
        assert_eq!(error.to_string(), "limit: must be between 1 and 500");
    }
}
