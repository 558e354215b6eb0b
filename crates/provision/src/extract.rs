//! `Dep<T>`, `Lazy<T>` and `RequestScope` as axum extractors (feature `axum`).
//!
//! This lives in the core crate, not in `provision-axum`, because Rust lets a
//! trait be implemented for a type only in the crate of one or the other.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum_core::extract::FromRequestParts;
use http::request::Parts;

use crate::{Dep, Lazy, Provide, Rejection, RequestHead, RequestScope, ambient};

impl<T: Provide, S: Send + Sync> FromRequestParts<S> for Dep<T> {
    type Rejection = Rejection;

    /// Looks the service up when called, not when first polled: axum awaits
    /// an extractor in the same poll that calls it, so the request's scope
    /// is entered either way, and a memoised hit then needs no state
    /// machine at all, only a ready value.
    fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> impl Future<Output = Result<Self, Rejection>> + Send {
        let found = ambient::with_current(|scope| {
            let scope = scope.ok_or_else(Rejection::no_scope)?;
            if let Some(dep) = scope.cached::<T>() {
                return Ok(Extraction::Ready(Some(Ok(dep))));
            }
            seed_head::<T>(scope, parts);
            Ok(Extraction::Building(resolve_boxed::<T>(scope.clone())))
        });
        found.unwrap_or_else(|rejection| Extraction::Ready(Some(Err(rejection))))
    }
}

/// `Lazy<T>` builds nothing when extracted: it takes the request's scope,
/// and the request's head if a service needs it (the head is the one input
/// that is gone by the time the handler runs).
impl<T: Provide, S: Send + Sync> FromRequestParts<S> for Lazy<T> {
    type Rejection = Rejection;

    fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> impl Future<Output = Result<Self, Rejection>> + Send {
        let lazy = ambient::with_current(|scope| {
            let scope = scope.ok_or_else(Rejection::no_scope)?;
            seed_head::<T>(scope, parts);
            Ok(scope.lazy::<T>())
        });
        std::future::ready(lazy)
    }
}

/// Seeds the request's head into its scope if building `T` could need it
/// (asked before `T` is resolved, so that an unregistered service that
/// depends on the head gets it on the first request too).
fn seed_head<T: Provide>(scope: &RequestScope, parts: &Parts) {
    if scope.registry().needs_request_head::<T>() && !scope.contains::<RequestHead>() {
        scope.seed(RequestHead::from_parts(parts));
    }
}

/// The future of the `Dep<T>` extractor: the answer, when it was known at
/// once, or the build of the service.
enum Extraction<T: Provide> {
    Ready(Option<Result<Dep<T>, Rejection>>),
    Building(Pin<Box<dyn Future<Output = Result<Dep<T>, Rejection>> + Send>>),
}

impl<T: Provide> Future for Extraction<T> {
    type Output = Result<Dep<T>, Rejection>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut *self {
            Extraction::Ready(answer) => {
                Poll::Ready(answer.take().expect("Extraction polled after completion"))
            }
            Extraction::Building(build) => build.as_mut().poll(cx),
        }
    }
}

/// The build path of the extractor, boxed: only the first ask of a service
/// in a request pays for it (one allocation), and the extractor's future
/// stays small for every other ask.
fn resolve_boxed<T: Provide>(
    scope: RequestScope,
) -> Pin<Box<dyn Future<Output = Result<Dep<T>, Rejection>> + Send>> {
    Box::pin(async move {
        scope
            .resolve_uncached::<T>()
            .await
            .map_err(|e| Rejection::new(crate::short_type_name::<T>(), e))
    })
}

impl<S: Send + Sync> FromRequestParts<S> for RequestScope {
    type Rejection = Rejection;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Self, Rejection> {
        RequestScope::current().ok_or_else(Rejection::no_scope)
    }
}
