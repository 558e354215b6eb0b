//! Per-request budgets on the counting fake: at most N builds of a service
//! per scope, at most T waiting to acquire per scope, at most M values of a
//! service held at once by a group of routes.

use http::StatusCode;
use provision::integration::{RegistryControl, ScopeControl};
use provision::{Error, Exit, Provide, Registry, Transient};

/// A transient service: built anew by each ask.
struct Handle;
impl Provide for Handle {
    type Lifetime = Transient;
    type Deps = ();
    async fn build(_: ()) -> Result<Self, Error> {
        Ok(Handle)
    }
}

#[tokio::test]
async fn without_a_budget_a_loop_builds_as_many_as_it_asks_for() {
    let registry = Registry::builder().build().await.unwrap();
    let scope = registry.open_scope();
    for _ in 0..50 {
        drop(scope.resolve::<Handle>().await.unwrap());
    }
    scope.close(Exit::Success(StatusCode::OK)).await;
    let probe = registry.probe();
    assert_eq!(probe.acquires::<Handle>(), 50);
    assert_eq!(probe.releases::<Handle>(), 50);
}

