//! Input validation shared by every entry point that stores data.
//!
//! The store calls these itself before writing, so a caller that forgets to
//! validate still cannot put a malformed row into the database.

use std::fmt;

/// Longest accepted name (users, organisations, sources), in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest accepted email address, in characters (the SMTP path limit,
/// counted the way JSON Schema's `maxLength` counts, so that the OpenAPI
/// document can state it exactly).
pub const MAX_EMAIL_LEN: usize = 320;
/// Longest accepted source URL, in bytes.
pub const MAX_URL_LEN: usize = 2048;
/// Largest accepted source config, serialised as JSON, in bytes.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;

// The rules below, as the ECMA-262 regular expressions the OpenAPI document
// states (`pattern`), so that a client generated from the document never
// sends a value the service refuses, and the service refuses every value
// the document calls invalid. The functions below are the service's side of
// the same rules; `tests/it/openapi_rules.rs` checks that they agree.

/// Control characters (Unicode category Cc, what `char::is_control` means).
macro_rules! cc {
    () => {
        r"\u0000-\u001f\u007f-\u009f"
    };
}

/// The white space that is not a control character (with `cc!`, what
/// `char::is_whitespace` and so `str::trim` mean).
macro_rules! ws {
    () => {
        r"\u0020\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
    };
}

/// [`validate_name`] as a pattern: no control character, and at least one
/// character that is not white space (with `minLength` 1 and `maxLength`
/// [`MAX_NAME_CHARS`]).
pub const NAME_PATTERN: &str = concat!("^[^", cc!(), "]*[^", cc!(), ws!(), "][^", cc!(), "]*$");

/// [`validate_email`] as a pattern: one `@` between non-empty parts, no
/// white space or control character (with `maxLength` [`MAX_EMAIL_LEN`]).
pub const EMAIL_PATTERN: &str = concat!("^[^@", cc!(), ws!(), "]+@[^@", cc!(), ws!(), "]+$");

/// Strings and keys in a source config: no U+0000 (PostgreSQL's `jsonb`
/// cannot store it; refused on SQLite too, so both behave alike).
pub const CONFIG_TEXT_PATTERN: &str = r"^[^\u0000]*$";

/// One octet of a dotted IPv4 address, without leading zeros.
macro_rules! octet {
    () => {
        r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
    };
}

/// [`validate_url`] as a pattern (with `maxLength` [`MAX_URL_LEN`]): `http`
/// or `https`, then a host that is a dotted IPv4 address or a DNS name
/// (letters, digits and single inner hyphens per label, the last label
/// starting with a letter), an optional port up to 65535, then an optional
/// path, query or fragment of printable ASCII. No user info (credentials
/// belong in `config`), no white space.
pub const URL_PATTERN: &str = concat!(
    r"^https?://(?:",
    octet!(),
    r"(?:\.",
    octet!(),
    r"){3}|(?:[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*\.)*[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*)",
    r"(?::(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?",
    r"(?:[/?#][\x21-\x7e]*)?$"
);

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
/// control characters, at most [`MAX_EMAIL_LEN`] characters. Whether the address
/// really receives mail is not something a syntax check can know.
pub fn validate_email(email: &str) -> Result<(), ValidationError> {
    const FIELD: &str = "email";
    if email.is_empty() {
        return Err(ValidationError::new(FIELD, "must not be empty"));
    }
    if email.chars().count() > MAX_EMAIL_LEN {
        return Err(ValidationError::new(
            FIELD,
            format!("must be at most {MAX_EMAIL_LEN} characters"),
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
        "http" | "https" if parsed.host().is_some() => {}
        "http" | "https" => return Err(ValidationError::new(FIELD, "must have a host")),
        _ => return Err(ValidationError::new(FIELD, "must use http or https")),
    }
    if !matches_url_pattern(url) {
        return Err(ValidationError::new(
            FIELD,
            "must be http(s)://host[:port][/path], the host a DNS name or an IPv4 address, \
             without user info, in printable ASCII",
        ));
    }
    Ok(())
}

/// Whether `url` matches [`URL_PATTERN`].
fn matches_url_pattern(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return false;
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if !tail.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return false;
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let port_ok = port.is_none_or(|p| {
        p.bytes().all(|b| b.is_ascii_digit())
            && match p.len() {
                1..=4 => true,
                5 => !p.starts_with('0') && p.parse::<u32>().is_ok_and(|n| n <= 65535),
                _ => false,
            }
    });
    port_ok && (is_ipv4(host) || is_dns_name(host))
}

/// Four dotted octets, 0 to 255, without leading zeros.
fn is_ipv4(host: &str) -> bool {
    let octets: Vec<&str> = host.split('.').collect();
    octets.len() == 4
        && octets.iter().all(|o| {
            (1..=3).contains(&o.len())
                && o.bytes().all(|b| b.is_ascii_digit())
                && (o.len() == 1 || !o.starts_with('0'))
                && o.parse::<u16>().is_ok_and(|n| n <= 255)
        })
}

/// Labels of letters and digits with single inner hyphens, the last
/// starting with a letter (so that it is never read as an IPv4 number, and
/// never punycode, which has a double hyphen).
fn is_dns_name(host: &str) -> bool {
    let label_ok = |label: &str| {
        !label.is_empty()
            && label
                .split('-')
                .all(|run| !run.is_empty() && run.bytes().all(|b| b.is_ascii_alphanumeric()))
    };
    let labels: Vec<&str> = host.split('.').collect();
    labels.iter().all(|l| label_ok(l))
        && labels
            .last()
            .is_some_and(|l| l.starts_with(|c: char| c.is_ascii_alphabetic()))
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
    if has_nul(config) {
        return Err(ValidationError::new(
            FIELD,
            "must not contain the character U+0000 in any string or key",
        ));
    }
    Ok(())
}

/// Whether any string or key in `value`, at any depth, holds U+0000.
fn has_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(has_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
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
        // Characters, not bytes: what the document's maxLength counts.
        let accented = format!("{}@b", "é".repeat(318));
        assert!(validate_email(&accented).is_ok());
        assert!(validate_email(&format!("é{accented}")).is_err());
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
        for ok in [
            "http://10.0.0.5:8080/openapi.json",
            "https://a-b.c9.example.com:65535/x?y=1#z",
            "https://e.com:0001",
        ] {
            assert!(validate_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://user:pw@e.com/",
            "http://e.com:65536",
            "http://e.com:00080",
            "http://1.2.3",
            "http://256.1.1.1",
            "http://01.1.1.1",
            "http://xn--bcher-kva.example",
            "http://-e.com",
            "http://e.com/a b",
            "http://e.com/\u{e9}",
            "HTTP://e.com",
        ] {
            assert_eq!(validate_url(bad).unwrap_err().field, "url", "{bad:?}");
        }
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
        for nul in [json!({"a\u{0}": 1}), json!({"a": [{"b": "\u{0}"}]})] {
            assert_eq!(validate_config(&nul).unwrap_err().field, "config", "{nul}");
        }
    }
}
