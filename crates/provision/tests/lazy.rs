//! `Lazy<T>` without HTTP: nothing is built until `get`, two `get`s build
//! once, a failure reaches the caller with its status and is not memoised,
//! and what was built is released when the request ends.

use std::sync::atomic::{AtomicU32, Ordering};

use http::StatusCode;
use provision::integration::{RegistryControl, ScopeControl};
use provision::{Dep, Error, Exit, Lazy, Provide, Registry, Request, Transient};

/// Counts builds and releases; fails the next build when told to.
#[derive(Default)]
struct Counters {
    built: AtomicU32,
    released: AtomicU32,
    fail_next: AtomicU32,
}
provision::supplied!(Counters);

struct Conn(u32, Dep<Counters>);

impl Provide for Conn {
    type Lifetime = Request;
    type Deps = (Counters,);
    async fn build((c,): (Dep<Counters>,)) -> Result<Self, Error> {
        if c.fail_next.swap(0, Ordering::SeqCst) == 1 {
            return Err(Error::new("the database is unavailable")
                .with_status(StatusCode::SERVICE_UNAVAILABLE));
        }
        Ok(Conn(c.built.fetch_add(1, Ordering::SeqCst) + 1, c))
    }
    async fn release(self, _: Exit) -> Result<(), Error> {
        self.1.released.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Built from `Conn`: a `Lazy` of it builds the whole chain on `get`.
struct Tx(Dep<Conn>);

impl Provide for Tx {
    type Lifetime = Request;
    type Deps = (Conn,);
    async fn build((conn,): (Dep<Conn>,)) -> Result<Self, Error> {
        Ok(Tx(conn))
    }
}

struct Fresh(u32);

impl Provide for Fresh {
    type Lifetime = Transient;
    type Deps = (Counters,);
    async fn build((c,): (Dep<Counters>,)) -> Result<Self, Error> {
        Ok(Fresh(c.built.fetch_add(1, Ordering::SeqCst) + 1))
    }
}

async fn registry() -> Registry {
    Registry::builder()
        .supply(Counters::default())
        .register::<Tx>()
        .register::<Fresh>()
        .build()
        .await
        .expect("the registry builds")
}

fn counters(registry: &Registry) -> Dep<Counters> {
    registry.app::<Counters>().expect("Counters is supplied")
}

#[tokio::test]
async fn nothing_is_built_until_get() {
    let registry = registry().await;
    let probe = registry.probe();
    let scope = registry.open_scope();
    let tx: Lazy<Tx> = scope.lazy();
    let copy = tx.clone();
    assert!(!tx.is_built(), "a fresh handle has built nothing");
    assert_eq!(
        probe.acquires::<Conn>(),
        0,
        "taking the handle built no Conn"
    );
    assert_eq!(probe.acquires::<Tx>(), 0, "taking the handle built no Tx");
    drop(copy);
    scope.close(Exit::Success(StatusCode::BAD_REQUEST)).await;
    assert_eq!(probe.acquires::<Conn>(), 0, "closing built nothing");
    assert_eq!(counters(&registry).released.load(Ordering::SeqCst), 0);
    registry.shutdown().await;
}

#[tokio::test]
async fn two_gets_build_once_and_share_the_value() {
    let registry = registry().await;
    let probe = registry.probe();
    let scope = registry.open_scope();
    let tx: Lazy<Tx> = scope.lazy();
    let conn: Lazy<Conn> = scope.lazy();
    let first = tx.get().await.expect("Tx builds");
    let Tx(first_conn) = &*first;
    assert!(tx.is_built());
    let second = tx.get().await.expect("Tx is memoised");
    let direct = conn.get().await.expect("Conn is memoised");
    assert!(std::sync::Arc::ptr_eq(first.shared(), second.shared()));
    assert!(std::sync::Arc::ptr_eq(first_conn.shared(), direct.shared()));
    assert_eq!((probe.acquires::<Tx>(), probe.acquires::<Conn>()), (1, 1));
    drop((first, second, direct));
    scope.close(Exit::Success(StatusCode::OK)).await;
    assert_eq!((probe.releases::<Tx>(), probe.releases::<Conn>()), (1, 1));
    registry.shutdown().await;
}

#[tokio::test]
async fn a_transient_is_built_by_each_get() {
    let registry = registry().await;
    let scope = registry.open_scope();
    let fresh: Lazy<Fresh> = scope.lazy();
    assert!(!fresh.is_built(), "a transient is never memoised");
    let a = fresh.get().await.unwrap();
    let b = fresh.get().await.unwrap();
    assert_eq!(((*a).0, (*b).0), (1, 2));
    drop((a, b));
    scope.close(Exit::Success(StatusCode::OK)).await;
    assert_eq!(registry.probe().releases::<Fresh>(), 2);
    registry.shutdown().await;
}

#[tokio::test]
async fn a_failed_build_reaches_the_caller_with_its_status_and_is_not_memoised() {
    let registry = registry().await;
    let probe = registry.probe();
    counters(&registry).fail_next.store(1, Ordering::SeqCst);
    let scope = registry.open_scope();
    let tx: Lazy<Tx> = scope.lazy();
    let error = tx.get().await.err().expect("the build fails");
    assert_eq!(error.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(error.message(), "the database is unavailable");
    assert!(!tx.is_built());
    assert_eq!(probe.report::<Conn>().build_failures, 1);
    let retried = tx.get().await.expect("the next get builds again");
    let Tx(conn) = &*retried;
    assert_eq!((**conn).0, 1, "the first value that was built");
    drop(retried);
    scope.close(Exit::Success(StatusCode::OK)).await;
    assert_eq!((probe.acquires::<Conn>(), probe.releases::<Conn>()), (1, 1));
    registry.shutdown().await;
}

#[tokio::test]
async fn what_get_built_is_released_when_the_request_ends_and_nothing_after() {
    let registry = registry().await;
    let probe = registry.probe();
    let scope = registry.open_scope();
    let conn: Lazy<Conn> = scope.lazy();
    drop(conn.get().await.unwrap());
    scope.close(Exit::Success(StatusCode::OK)).await;
    assert_eq!(counters(&registry).released.load(Ordering::SeqCst), 1);
    let late = conn
        .get()
        .await
        .err()
        .expect("nothing is built after the end");
    assert_eq!(
        late.message(),
        "cannot build `Conn`: its scope has already ended"
    );
    assert_eq!((probe.acquires::<Conn>(), probe.releases::<Conn>()), (1, 1));
    registry.shutdown().await;
}
