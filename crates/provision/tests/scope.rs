//! Request scopes without HTTP: build once under concurrency, failures
//! shared and not cached, transients, and what closing means.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::Poll;

use http::StatusCode;
use provision::integration::{RegistryControl, ScopeControl};
use provision::{Dep, Error, Exit, Provide, Registry, Request, Transient};
use tokio::sync::{Semaphore, oneshot};

/// Counts builds and releases; builds wait for a permit of `gate` when it
/// is set. A semaphore, not a `Notify`: a permit added before the build
/// reaches the gate is kept, so no opening is ever lost.
#[derive(Default)]
struct Counters {
    built: AtomicU32,
    released: AtomicU32,
    fail_next: AtomicU32,
    gate: Option<Arc<Semaphore>>,
}
provision::supplied!(Counters);

struct Slow(u32, Dep<Counters>);

impl Provide for Slow {
    type Lifetime = Request;
    type Deps = (Counters,);
    async fn build((c,): (Dep<Counters>,)) -> Result<Self, Error> {
        if let Some(gate) = &c.gate {
            gate.acquire()
                .await
                .expect("the gate is never closed")
                .forget();
        }
        if c.fail_next.swap(0, Ordering::SeqCst) == 1 {
            return Err(
                Error::new("connection refused").with_status(StatusCode::SERVICE_UNAVAILABLE)
            );
        }
        let n = c.built.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(Slow(n, c))
    }
    async fn release(self, _: Exit) -> Result<(), Error> {
        self.1.released.fetch_add(1, Ordering::SeqCst);
        Ok(())
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

async fn registry(counters: Counters) -> Registry {
    Registry::builder()
        .supply(counters)
        .register::<Slow>()
        .register::<Fresh>()
        .build()
        .await
        .unwrap()
}

fn gated() -> (Counters, Arc<Semaphore>) {
    let gate = Arc::new(Semaphore::new(0));
    (
        Counters {
            gate: Some(gate.clone()),
            ..Counters::default()
        },
        gate,
    )
}

/// Resolves `Slow` in `scope` on a task of its own. The receiver hears
/// once the resolve has returned `Pending` for the first time: it is then
/// parked, either in the build (on the gate) or waiting for another task's
/// build. A signal instead of a sleep: the test knows, rather than hopes,
/// that both tasks are inside the scope before it opens the gate.
fn resolve_slow(
    scope: &provision::RequestScope,
) -> (
    tokio::task::JoinHandle<Result<u32, Error>>,
    oneshot::Receiver<()>,
) {
    let (parked, heard) = oneshot::channel();
    let task = tokio::spawn(scope.bind(signal_when_parked(
        {
            let scope = scope.clone();
            async move { scope.resolve::<Slow>().await.map(|d| d.0.0) }
        },
        parked,
    )));
    (task, heard)
}

async fn signal_when_parked<F: Future>(future: F, parked: oneshot::Sender<()>) -> F::Output {
    let mut future = pin!(future);
    let mut parked = Some(parked);
    std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
        Poll::Pending => {
            if let Some(parked) = parked.take() {
                let _ = parked.send(());
            }
            Poll::Pending
        }
        ready => ready,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tasks_of_one_request_asking_at_once_get_one_build() {
    let (counters, gate) = gated();
    let registry = registry(counters).await;
    let scope = registry.open_scope();

    let (a, a_parked) = resolve_slow(&scope);
    let (b, b_parked) = resolve_slow(&scope);
    a_parked.await.unwrap();
    b_parked.await.unwrap(); // both are inside the scope, one build gated
    gate.add_permits(1);

    assert_eq!(a.await.unwrap().unwrap(), 1);
    assert_eq!(b.await.unwrap().unwrap(), 1);
    let probe = registry.probe();
    assert_eq!(probe.acquires::<Slow>(), 1);
    scope.close(Exit::Success(StatusCode::OK)).await;
    assert_eq!(probe.releases::<Slow>(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_build_reaches_every_waiter_and_is_not_cached() {
    let (counters, gate) = gated();
    counters.fail_next.store(1, Ordering::SeqCst);
    let registry = registry(counters).await;
    let scope = registry.open_scope();

    let (a, a_parked) = resolve_slow(&scope);
    let (b, b_parked) = resolve_slow(&scope);
    a_parked.await.unwrap();
    b_parked.await.unwrap();
    gate.add_permits(1);

    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    for result in [&a, &b] {
        let error = result.as_ref().unwrap_err();
        assert_eq!(error.to_string(), "connection refused");
        assert_eq!(error.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    }
    let probe = registry.probe();
    assert_eq!(
        probe.report::<Slow>().build_failures,
        1,
        "one build, two waiters"
    );

    // Not cached: the next ask builds again, and succeeds.
    let (retry, _) = resolve_slow(&scope);
    gate.add_permits(1);
    assert_eq!(retry.await.unwrap().unwrap(), 1);
    scope.close(Exit::Success(StatusCode::OK)).await;
    assert_eq!((probe.acquires::<Slow>(), probe.releases::<Slow>()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_builds_itself_when_the_builder_is_cancelled() {
    let (counters, gate) = gated();
    let registry = registry(counters).await;
    let scope = registry.open_scope();

    let (builder, builder_parked) = resolve_slow(&scope);
    builder_parked.await.unwrap(); // building, held at the gate
    let (waiter, waiter_parked) = resolve_slow(&scope);
    waiter_parked.await.unwrap(); // waiting for the builder's build
    builder.abort(); // the builder's request is cancelled mid-build
    assert!(builder.await.unwrap_err().is_cancelled());
    gate.add_permits(1); // the waiter took over and now finishes its own build

    assert_eq!(waiter.await.unwrap().unwrap(), 1);
    scope.close(Exit::Cancelled).await;
    let probe = registry.probe();
    assert_eq!((probe.acquires::<Slow>(), probe.releases::<Slow>()), (1, 1));
}

#[tokio::test]
async fn transients_are_built_per_use_and_released_with_the_scope() {
    let registry = registry(Counters::default()).await;
    let scope = registry.open_scope();

    let a = scope.resolve::<Fresh>().await.unwrap();
    let b = scope.resolve::<Fresh>().await.unwrap();
    assert_ne!(a.0.0, b.0.0);
    assert!(scope.cached::<Fresh>().is_none());
    drop((a, b));
    scope.close(Exit::Success(StatusCode::OK)).await;
    let probe = registry.probe();
    assert_eq!(
        (probe.acquires::<Fresh>(), probe.releases::<Fresh>()),
        (2, 2)
    );
}

#[tokio::test]
async fn a_closed_scope_builds_nothing_and_closes_once() {
    let registry = registry(Counters::default()).await;
    let scope = registry.open_scope();
    scope.resolve::<Slow>().await.map(drop).unwrap();
    scope.close(Exit::Success(StatusCode::OK)).await;
    scope.close(Exit::Cancelled).await;

    let error = scope.resolve::<Slow>().await.map(|_| ()).unwrap_err();
    assert!(
        error.to_string().contains("its scope has already ended"),
        "{error}"
    );
    let probe = registry.probe();
    assert_eq!((probe.acquires::<Slow>(), probe.releases::<Slow>()), (1, 1));
    assert_eq!(probe.open_scopes(), 0);
}

/// Depends on `Slow` and then fails: what it had built stays in the scope
/// and is released with it.
struct Fragile;
impl Provide for Fragile {
    type Lifetime = Request;
    type Deps = (Slow,);
    async fn build(_: (Dep<Slow>,)) -> Result<Self, Error> {
        Err(Error::new("fragile failed after acquiring Slow"))
    }
}

#[tokio::test]
async fn a_build_failing_midway_releases_what_it_had_built() {
    let registry = registry(Counters::default()).await;
    let scope = registry.open_scope();

    assert!(scope.resolve::<Fragile>().await.is_err());
    let probe = registry.probe();
    assert_eq!(probe.held::<Slow>(), 1);
    scope
        .close(Exit::Failure(StatusCode::INTERNAL_SERVER_ERROR))
        .await;
    assert_eq!(probe.held::<Slow>(), 0);
    assert_eq!(probe.releases::<Slow>(), 1);
    assert_eq!(probe.report::<Fragile>().build_failures, 1);
}

#[tokio::test]
async fn shutdown_waits_for_open_scopes() {
    let registry = registry(Counters::default()).await;
    let scope = registry.open_scope();
    scope.resolve::<Slow>().await.map(drop).unwrap();

    let (shutdown, shutdown_parked) = {
        let (parked, heard) = oneshot::channel();
        let registry = registry.clone();
        let task = tokio::spawn(signal_when_parked(
            async move { registry.shutdown().await },
            parked,
        ));
        (task, heard)
    };
    shutdown_parked
        .await
        .expect("shutdown must wait while a request is open, not finish at once");
    assert!(!shutdown.is_finished(), "a request is still open");
    let counters = registry
        .app::<Counters>()
        .expect("app services live until the scopes close");
    drop(counters);

    scope.close(Exit::Shutdown).await;
    shutdown.await.unwrap();
    let probe = registry.probe();
    assert_eq!(probe.releases::<Slow>(), 1);
    assert_eq!(
        probe.releases::<Counters>(),
        1,
        "released after the request scope"
    );
}

/// A service with the default release step, whose `Drop` panics. The
/// default release drops the value when the release starts (so that its
/// future is zero-sized); that panic must be caught like one inside an
/// async release, and must not stop the other releases.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("drop failure for the test");
    }
}

impl Provide for PanicsOnDrop {
    type Lifetime = Request;
    type Deps = (Slow,);
    async fn build(_: (Dep<Slow>,)) -> Result<Self, Error> {
        Ok(PanicsOnDrop)
    }
}

#[tokio::test]
async fn a_panic_in_a_default_release_is_caught_and_the_rest_are_released() {
    let registry = registry(Counters::default()).await;
    let scope = registry.open_scope();
    scope.resolve::<PanicsOnDrop>().await.map(drop).unwrap();

    scope.close(Exit::Success(StatusCode::OK)).await;
    let probe = registry.probe();
    let report = probe.report::<PanicsOnDrop>();
    assert_eq!(report.releases, 1, "its release ran once");
    assert_eq!(report.release_failures, 1, "and its panic was counted");
    assert_eq!(
        probe.releases::<Slow>(),
        1,
        "released after it, despite the panic"
    );
    assert_eq!(probe.held::<Slow>(), 0);
}
