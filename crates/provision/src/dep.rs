//! [`Dep`], the handle to a service, and [`Deps`], a service's dependency list.

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;

use crate::lifetime::{Lifetime, ServesLifetime};
use crate::resolver::Resolver;
use crate::service::ServiceInfo;
use crate::{Error, Provide};

/// A handle to a service of type `T`, shared with everything else in its
/// scope that asked for the same service.
///
/// In a handler it is an extractor (with the `axum` feature): the handler's
/// signature says what it holds, and nothing else is built for it. In a
/// service's `build` it is how dependencies arrive.
///
/// Writing `Dep<T>` for a `T` that nothing provides does not compile:
///
/// ```compile_fail
/// struct Mailer;
/// async fn handler(_mailer: provision::Dep<Mailer>) {}
/// ```
pub struct Dep<T: Provide>(pub Arc<T>);

impl<T: Provide> Dep<T> {
    /// The shared value.
    pub fn shared(&self) -> &Arc<T> {
        &self.0
    }
}

impl<T: Provide> Deref for Dep<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Provide> Clone for Dep<T> {
    fn clone(&self) -> Self {
        Dep(self.0.clone())
    }
}

impl<T: Provide + fmt::Debug> fmt::Debug for Dep<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Dep").field(&self.0).finish()
    }
}

/// A dependency list: a tuple of services that a service with lifetime `L`
/// is built from.
///
/// Implemented for `()` and for tuples of up to twelve services, each of
/// whose lifetimes may serve `L` (see [`ServesLifetime`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a dependency list for a `{L}` service",
    note = "a dependency list is a tuple of service types, such as `()`, `(Pool,)` or `(Pool, Settings)`"
)]
pub trait Deps<L: Lifetime>: Send + 'static {
    /// What `build` receives: the tuple of [`Dep`] handles.
    type Handles: Send + 'static;

    /// Resolves every dependency, in order.
    #[doc(hidden)]
    fn resolve(resolver: Resolver<'_>)
    -> impl Future<Output = Result<Self::Handles, Error>> + Send;

    /// The services in the list, for graph validation.
    #[doc(hidden)]
    fn services() -> Vec<&'static ServiceInfo>;
}

impl<L: Lifetime> Deps<L> for () {
    type Handles = ();

    async fn resolve(_: Resolver<'_>) -> Result<(), Error> {
        Ok(())
    }

    fn services() -> Vec<&'static ServiceInfo> {
        Vec::new()
    }
}

macro_rules! tuple_deps {
    ($($name:ident),+) => {
        impl<L: Lifetime, $($name),+> Deps<L> for ($($name,)+)
        where
            $($name: Provide, $name::Lifetime: ServesLifetime<L>,)+
        {
            type Handles = ($(Dep<$name>,)+);

            async fn resolve(resolver: Resolver<'_>) -> Result<Self::Handles, Error> {
                Ok(($(resolver.resolve::<$name>().await?,)+))
            }

            fn services() -> Vec<&'static ServiceInfo> {
                vec![$(ServiceInfo::of::<$name>()),+]
            }
        }
    };
}

tuple_deps!(A);
tuple_deps!(A, B);
tuple_deps!(A, B, C);
tuple_deps!(A, B, C, D);
tuple_deps!(A, B, C, D, E);
tuple_deps!(A, B, C, D, E, F);
tuple_deps!(A, B, C, D, E, F, G);
tuple_deps!(A, B, C, D, E, F, G, H);
tuple_deps!(A, B, C, D, E, F, G, H, I);
tuple_deps!(A, B, C, D, E, F, G, H, I, J);
tuple_deps!(A, B, C, D, E, F, G, H, I, J, K);
tuple_deps!(A, B, C, D, E, F, G, H, I, J, K, M);
