//! Where a dependency list resolves its services: the app (while the
//! registry builds) or one request scope.

use crate::{Dep, Error, Provide, Registry, RequestScope};

/// Handed to [`Deps::resolve`](crate::Deps): says which scope dependencies
/// come from. You never construct or use one yourself.
#[derive(Clone, Copy)]
pub struct Resolver<'a> {
    kind: Kind<'a>,
}

#[derive(Clone, Copy)]
enum Kind<'a> {
    App(&'a Registry),
    Request(&'a RequestScope),
}

impl<'a> Resolver<'a> {
    pub(crate) fn app(registry: &'a Registry) -> Self {
        Resolver {
            kind: Kind::App(registry),
        }
    }

    pub(crate) fn request(scope: &'a RequestScope) -> Self {
        Resolver {
            kind: Kind::Request(scope),
        }
    }

    /// The span of the scope builds resolve in (none for the app): the
    /// parent of a build span when no span is current.
    pub(crate) fn span(&self) -> Option<&'a tracing::Span> {
        match self.kind {
            Kind::App(_) => None,
            Kind::Request(scope) => Some(scope.span()),
        }
    }

    pub(crate) async fn resolve<T: Provide>(self) -> Result<Dep<T>, Error> {
        match self.kind {
            Kind::App(registry) => registry.resolve_app::<T>().await,
            Kind::Request(scope) => scope.resolve::<T>().await,
        }
    }
}
