//! [`ServiceInfo`]: one service type, erased, so registries and scopes can
//! hold services of any type side by side.

use std::any::{Any, TypeId};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::resolver::Resolver;
use crate::{Deps, Error, Exit, Lifetime, LifetimeKind, Provide};

pub(crate) type AnyArc = Arc<dyn Any + Send + Sync>;
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// A release step ready to run, or the value back if handles to it are still
/// alive elsewhere (it escaped its scope) so it cannot be moved out.
pub(crate) type Release = Result<BoxFuture<'static, Result<(), Error>>, AnyArc>;

/// One service type: its name, lifetime and dependencies, and its build,
/// settle and release steps with the type erased.
///
/// There is one `ServiceInfo` per service type, for the whole program
/// (`ServiceInfo::of::<T>()` returns the same `&'static`).
pub struct ServiceInfo {
    name: fn() -> &'static str,
    type_id: fn() -> TypeId,
    lifetime: LifetimeKind,
    deps: fn() -> Vec<&'static ServiceInfo>,
    pub(crate) build: for<'a> fn(Resolver<'a>) -> BoxFuture<'a, Result<AnyArc, Error>>,
    pub(crate) settle: for<'a> fn(&'a AnyArc, Exit) -> BoxFuture<'a, Result<(), Error>>,
    pub(crate) release: fn(AnyArc, Exit) -> Release,
}

impl ServiceInfo {
    /// The description of service `T`.
    ///
    /// ```
    /// use provision::{LifetimeKind, ServiceInfo};
    /// struct Settings;
    /// provision::supplied!(Settings);
    /// let info = ServiceInfo::of::<Settings>();
    /// assert_eq!(info.name(), "Settings");
    /// assert_eq!(info.lifetime(), LifetimeKind::App);
    /// ```
    pub fn of<T: Provide>() -> &'static ServiceInfo {
        const {
            &ServiceInfo {
                name: crate::short_type_name::<T>,
                type_id: TypeId::of::<T>,
                lifetime: <T::Lifetime as Lifetime>::KIND,
                deps: <T::Deps as Deps<T::Lifetime>>::services,
                build: build_erased::<T>,
                settle: settle_erased::<T>,
                release: release_erased::<T>,
            }
        }
    }

    /// The type's name without its module path, such as `Db` or
    /// `Pool<Postgres>`.
    pub fn name(&self) -> &'static str {
        (self.name)()
    }

    /// The service's lifetime.
    pub fn lifetime(&self) -> LifetimeKind {
        self.lifetime
    }

    /// The services it is built from, in the order of its `Deps` tuple.
    pub fn dependencies(&self) -> Vec<&'static ServiceInfo> {
        (self.deps)()
    }

    /// The `TypeId` of the service type.
    pub fn type_id(&self) -> TypeId {
        (self.type_id)()
    }
}

impl fmt::Debug for ServiceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceInfo")
            .field("name", &self.name())
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

impl PartialEq for ServiceInfo {
    fn eq(&self, other: &Self) -> bool {
        self.type_id() == other.type_id()
    }
}

impl Eq for ServiceInfo {}

fn build_erased<T: Provide>(resolver: Resolver<'_>) -> BoxFuture<'_, Result<AnyArc, Error>> {
    // Boxing here is what lets a service's build await its dependencies'
    // builds without the future types nesting forever.
    Box::pin(async move {
        let deps = <T::Deps as Deps<T::Lifetime>>::resolve(resolver).await?;
        let value = T::build(deps).await?;
        Ok(Arc::new(value) as AnyArc)
    })
}

fn settle_erased<T: Provide>(value: &AnyArc, exit: Exit) -> BoxFuture<'_, Result<(), Error>> {
    let value = value
        .downcast_ref::<T>()
        .expect("a scope stores each service under its own TypeId");
    Box::pin(value.settle(exit))
}

fn release_erased<T: Provide>(value: AnyArc, exit: Exit) -> Release {
    let value: Arc<T> = value
        .downcast::<T>()
        .unwrap_or_else(|_| unreachable!("a scope stores each service under its own TypeId"));
    match Arc::try_unwrap(value) {
        Ok(value) => Ok(Box::pin(value.release(exit))),
        Err(shared) => Err(shared as AnyArc),
    }
}
