//! Input validation shared by every entry point that stores data.
//!
//! The store calls these itself before writing, so a caller that forgets to
//! validate still cannot put a malformed row into the database.

use std::fmt;

/// Longest accepted name (users, organisations, sources), in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest accepted email address, in bytes (the SMTP path limit).
pub const MAX_EMAIL_LEN: usize = 320;
/// Longest accepted source URL, in bytes.
pub const MAX_URL_LEN: usize = 2048;
/// Largest accepted source config, serialised as JSON, in bytes.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;

/// Which input field is wrong and why, in words fit for an API client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// The field as the client named it, e.g. `"email"`.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl ValidationError {
    /// An error about `field`.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        ValidationError {
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ValidationError {}

/// Input that checks its own fields: a request body that the HTTP layer
/// refuses with a 400 while it is extracted, before the handler runs and
/// so before any service is built for the request (no connection is opened
/// for a request that was going to be refused).
///
/// ```
/// use cloud_api::domain::{NewUser, Validate};
///
/// let new = NewUser { name: " ".into(), email: "ada@example.com".into() };
/// assert_eq!(Validate::validate(&new).unwrap_err().to_string(), "name: must not be empty");
/// ```
pub trait Validate {
    /// Checks every field; the first problem found is reported.
    fn validate(&self) -> Result<(), ValidationError>;
}

/// A display name: not blank, at most [`MAX_NAME_CHARS`] characters, no
/// control characters (they break logs and UIs).
pub fn validate_name(field: &'static str, name: &str) -> Result<(), ValidationError> {
    if name.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ValidationError::new(
            field,
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Deliberately loose: one `@` between non-empty parts, no whitespace or
/// control characters, at most [`MAX_EMAIL_LEN`] bytes. Whether the address
/// really receives mail is not something a syntax check can know.
pub fn validate_email(email: &str) -> Result<(), ValidationError> {
    const FIELD: &str = "email";
    if email.is_empty() {
        return Err(ValidationError::new(FIELD, "must not be empty"));
    }
    if email.len() > MAX_EMAIL_LEN {
        return Err(ValidationError::new(
            FIELD,
            format!("must be at most {MAX_EMAIL_LEN} bytes"),
        ));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ValidationError::new(FIELD, "must not contain whitespace"));
    }
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            Ok(())
        }
        _ => Err(ValidationError::new(
            FIELD,
            "must look like an email address (name@domain)",
        )),
    }
}

/// An absolute `http` or `https` URL. Surrounding whitespace is rejected
/// rather than trimmed so that what is stored is exactly what was sent.
pub fn validate_url(url: &str) -> Result<(), ValidationError> {
    const FIELD: &str = "url";
    if url.len() > MAX_URL_LEN {
        return Err(ValidationError::new(
            FIELD,
            format!("must be at most {MAX_URL_LEN} bytes"),
        ));
    }
    if url.trim() != url {
        return Err(ValidationError::new(
            FIELD,
            "must not have surrounding whitespace",
        ));
    }
    let parsed = url::Url::parse(url)
        .map_err(|e| ValidationError::new(FIELD, format!("must be an absolute URL ({e})")))?;
    match parsed.scheme() {
        "http" | "https" if parsed.host().is_some() => Ok(()),
        "http" | "https" => Err(ValidationError::new(FIELD, "must have a host")),
        _ => Err(ValidationError::new(FIELD, "must use http or https")),
    }
}

/// A JSON object of at most [`MAX_CONFIG_BYTES`] once serialised.
pub fn validate_config(config: &serde_json::Value) -> Result<(), ValidationError> {
    const FIELD: &str = "config";
    if !config.is_object() {
        return Err(ValidationError::new(FIELD, "must be a JSON object"));
    }
    let size = serde_json::to_vec(config)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_CONFIG_BYTES {
        return Err(ValidationError::new(
            FIELD,
            format!("must be at most {MAX_CONFIG_BYTES} bytes as JSON"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names() {
        assert!(validate_name("name", "Ada").is_ok());
        assert!(validate_name("name", &"é".repeat(200)).is_ok());
        let err = validate_name("name", &"a".repeat(201)).unwrap_err();
        assert_eq!(err.to_string(), "name: must be at most 200 characters");
        assert_eq!(
            validate_name("name", "  ").unwrap_err().to_string(),
            "name: must not be empty"
        );
        assert_eq!(validate_name("title", "").unwrap_err().field, "title");
        assert!(validate_name("name", "a\nb").is_err());
    }

    #[test]
    fn emails() {
        for ok in ["a@b", "ada.lovelace+x@example.com", "x@localhost"] {
            assert!(validate_email(ok).is_ok(), "{ok}");
        }
        for bad in ["", "ab", "@b", "a@", "a@b@c", "a b@c", "a@b\n", "\t@x"] {
            let err = validate_email(bad).unwrap_err();
            assert_eq!(err.field, "email", "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(310));
        assert!(validate_email(&long).is_err());
        let max = format!("{}@b", "a".repeat(318));
        assert_eq!(max.len(), 320);
        assert!(validate_email(&max).is_ok());
    }

    #[test]
    fn urls() {
        for ok in [
            "http://example.com",
            "https://api.example.com/v1/openapi.json?x=1",
        ] {
            assert!(validate_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "example.com",
            "ftp://example.com",
            "file:///etc/passwd",
            "javascript:alert(1)",
            " http://example.com",
            "http://",
        ] {
            assert_eq!(validate_url(bad).unwrap_err().field, "url", "{bad:?}");
        }
        assert!(validate_url(&format!("https://e.com/{}", "a".repeat(2048))).is_err());
    }

    #[test]
    fn configs() {
        assert!(validate_config(&json!({})).is_ok());
        assert!(validate_config(&json!({"headers": {"x": 1}})).is_ok());
        for bad in [json!([]), json!(null), json!("x"), json!(1)] {
            assert_eq!(
                validate_config(&bad).unwrap_err().to_string(),
                "config: must be a JSON object"
            );
        }
        let big = json!({ "x": "a".repeat(MAX_CONFIG_BYTES) });
        assert!(validate_config(&big).is_err());
    }
}
