//! [`RequestHead`]: the request line and headers, as a request service.

use http::{HeaderMap, Method, Uri, Version};

use crate::{Error, Provide, Request};

/// The request's method, URI, version and headers, available to services
/// (an authentication service reads `Authorization` from it).
///
/// It is not built: the integration seeds it into the scope, and only when
/// some service depends on it, so requests that do not need it do not pay
/// for copying the headers.
///
/// ```
/// use provision::{Dep, Error, Provide, Request, RequestHead};
///
/// struct BearerToken(Option<String>);
///
/// impl Provide for BearerToken {
///     type Lifetime = Request;
///     type Deps = (RequestHead,);
///     async fn build((head,): (Dep<RequestHead>,)) -> Result<Self, Error> {
///         let token = head.header("authorization")
///             .and_then(|v| v.strip_prefix("Bearer "))
///             .map(str::to_owned);
///         Ok(BearerToken(token))
///     }
/// }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RequestHead {
    /// The request method.
    pub method: Method,
    /// The request URI.
    pub uri: Uri,
    /// The HTTP version.
    pub version: Version,
    /// The request headers.
    pub headers: HeaderMap,
}

impl RequestHead {
    /// Copies the head of a request.
    pub fn from_parts(parts: &http::request::Parts) -> RequestHead {
        RequestHead {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            headers: parts.headers.clone(),
        }
    }

    /// A header's value as text, if present and valid visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Provide for RequestHead {
    type Lifetime = Request;
    type Deps = ();

    async fn build(_: ()) -> Result<Self, Error> {
        Err(Error::new(
            "the request head is seeded by the integration when a service is resolved through an extractor; \
             it is not available to a scope opened without a request",
        ))
    }
}
