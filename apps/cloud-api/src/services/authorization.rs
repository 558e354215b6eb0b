//! [`Authorization`]: the request's `Authorization` header, handed to the
//! scope by the [`SignedIn`](crate::http::SignedIn) extractor.

use http::HeaderValue;
use provision::{Error, Provide, Request};

/// The value of this request's `Authorization` header, if it sent one.
///
/// It is what [`BearerToken`](super::BearerToken) reads, instead of the
/// whole [`RequestHead`](provision::RequestHead): depending on the head
/// would make every request that asks for a service copy its method, URI
/// and header map into the scope, and only this one value is needed (its
/// clone shares the request's bytes). Nothing builds it: the
/// [`SignedIn`](crate::http::SignedIn) extractor seeds it while the
/// request's headers are at hand.
pub struct Authorization(pub Option<HeaderValue>);

impl Provide for Authorization {
    type Lifetime = Request;
    type Deps = ();

    async fn build(_: ()) -> Result<Self, Error> {
        Err(Error::new(
            "the Authorization header is handed to the request's scope by the `SignedIn` \
             extractor; ask for the caller through `SignedIn`",
        ))
    }
}
