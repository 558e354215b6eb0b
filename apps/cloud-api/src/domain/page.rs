//! Limit/offset pagination for list endpoints.

use super::validate::ValidationError;

/// A window into a list ordered by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}
