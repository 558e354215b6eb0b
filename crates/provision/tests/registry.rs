//! Registries: the graph is validated at startup, app services are built
//! in dependency order and torn down in reverse, and any service can be
//! replaced for a test.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use provision::integration::{RegistryControl, ScopeControl};
use provision::{App, Dep, Error, Exit, Provide, Registry, Request, ServiceInfo};

/// Cloning shares the lines, so a test keeps a view of what a registry it no
/// longer holds has done.
#[derive(Default, Clone)]
struct Log(Arc<Mutex<Vec<String>>>);
provision::supplied!(Log);

impl Log {
    fn push(&self, line: impl Into<String>) {
        self.0.lock().unwrap().push(line.into());
    }
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

macro_rules! app_service {
    ($name:ident, $deps:ty, fails = $fails:expr) => {
        struct $name(Dep<Log>);
        impl Provide for $name {
            type Lifetime = App;
            type Deps = $deps;
            async fn build(deps: provision::Handles<Self>) -> Result<Self, Error> {
                let log: Dep<Log> = deps.0.clone();
                if $fails {
                    log.push(concat!("build failed ", stringify!($name)));
                    return Err(Error::new(concat!(
                        stringify!($name),
                        " cannot reach its server"
                    )));
                }
                log.push(concat!("built ", stringify!($name)));
                Ok($name(log))
            }
            async fn release(self, exit: Exit) -> Result<(), Error> {
                self.0
                    .push(format!("released {} ({})", stringify!($name), exit.label()));
                Ok(())
            }
        }
    };
}

app_service!(Config, (Log,), fails = false);
app_service!(Pool, (Log, Config), fails = false);
app_service!(Broken, (Log, Pool), fails = true);

#[tokio::test]
async fn app_services_build_in_dependency_order_and_release_in_reverse() {
    let log = Log::default();
    let registry = Registry::builder()
        .supply(log.clone())
        .register::<Pool>()
        .build()
        .await
        .unwrap();
    assert_eq!(log.lines(), ["built Config", "built Pool"]);
    registry.shutdown().await;
    assert_eq!(
        log.lines(),
        [
            "built Config",
            "built Pool",
            "released Pool (shutdown)",
            "released Config (shutdown)"
        ]
    );
}

#[tokio::test]
async fn a_failing_app_service_releases_those_built_before_it() {
    let log = Log::default();
    let error = Registry::builder()
        .supply(log.clone())
        .register::<Broken>()
        .build()
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "building app service `Broken` failed: Broken cannot reach its server"
    );
    assert_eq!(
        log.lines(),
        [
            "built Config",
            "built Pool",
            "build failed Broken",
            "released Pool (shutdown)",
            "released Config (shutdown)"
        ]
    );
}

struct Knot1;
struct Knot2;
struct Knot3;
impl Provide for Knot1 {
    type Lifetime = Request;
    type Deps = (Knot2,);
    async fn build(_: (Dep<Knot2>,)) -> Result<Self, Error> {
        Ok(Knot1)
    }
}
impl Provide for Knot2 {
    type Lifetime = Request;
    type Deps = (Knot3,);
    async fn build(_: (Dep<Knot3>,)) -> Result<Self, Error> {
        Ok(Knot2)
    }
}
impl Provide for Knot3 {
    type Lifetime = Request;
    type Deps = (Knot1,);
    async fn build(_: (Dep<Knot1>,)) -> Result<Self, Error> {
        Ok(Knot3)
    }
}

#[tokio::test]
async fn a_cycle_is_an_error_at_startup_that_names_it() {
    let error = Registry::builder()
        .register::<Knot1>()
        .build()
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "dependency cycle: Knot1 -> Knot2 -> Knot3 -> Knot1; \
         a service cannot depend on itself, directly or through others"
    );
}

#[tokio::test]
async fn an_unregistered_cyclic_service_fails_when_asked_for_instead_of_deadlocking() {
    let registry = Registry::builder().build().await.unwrap();
    let scope = registry.open_scope();
    let error = scope.resolve::<Knot2>().await.map(|_| ()).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("dependency cycle: Knot2 -> Knot3 -> Knot1 -> Knot2"),
        "{error}"
    );
    scope.close(Exit::Cancelled).await;
}

struct Conn(u32);
impl Provide for Conn {
    type Lifetime = Request;
    type Deps = (Pool,);
    async fn build(_: (Dep<Pool>,)) -> Result<Self, Error> {
        Ok(Conn(0))
    }
}

#[tokio::test]
async fn the_graph_prints_as_text_mermaid_and_dot() {
    let registry = Registry::builder()
        .supply(Log::default())
        .register::<Conn>()
        .build()
        .await
        .unwrap();
    let graph = registry.graph();
    assert_eq!(
        graph.to_string(),
        "Log (app)\nConfig (app) <- Log\nPool (app) <- Log, Config\nConn (request) <- Pool\n"
    );
    let mermaid = graph.to_mermaid();
    assert!(mermaid.starts_with("flowchart TD\n"));
    assert!(mermaid.contains("    Conn[\"Conn (request)\"]\n"));
    assert!(mermaid.contains("    Conn --> Pool\n"));
    let dot = graph.to_dot();
    assert!(dot.contains("\"Pool\" -> \"Config\";"));
    assert_eq!(
        ServiceInfo::of::<Conn>().dependencies(),
        vec![ServiceInfo::of::<Pool>()]
    );
}

#[tokio::test]
async fn an_override_replaces_the_constructor_and_keeps_the_lifetime() {
    let builds = Arc::new(AtomicU32::new(0));
    let counter = builds.clone();
    let registry = Registry::builder()
        .supply(Log::default())
        .register::<Conn>()
        .override_with::<Conn, _, _>(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move { Ok(Conn(100 + n)) }
        })
        .build()
        .await
        .unwrap();
    for expected in [101, 102] {
        let scope = registry.open_scope();
        let a = scope.resolve::<Conn>().await.unwrap();
        let b = scope.resolve::<Conn>().await.unwrap();
        assert_eq!(
            (a.0.0, b.0.0),
            (expected, expected),
            "per request, memoised within it"
        );
        drop((a, b));
        scope.close(Exit::Cancelled).await;
    }
    let probe = registry.probe();
    assert_eq!((probe.acquires::<Conn>(), probe.releases::<Conn>()), (2, 2));
}

struct Lazy;
impl Provide for Lazy {
    type Lifetime = App;
    type Deps = (Log,);
    async fn build((log,): (Dep<Log>,)) -> Result<Self, Error> {
        log.push("built Lazy");
        Ok(Lazy)
    }
}

#[tokio::test]
async fn an_unregistered_app_service_is_built_once_on_first_use() {
    let registry = Registry::builder()
        .supply(Log::default())
        .build()
        .await
        .unwrap();
    for _ in 0..3 {
        let scope = registry.open_scope();
        scope.resolve::<Lazy>().await.map(drop).unwrap();
        scope.close(Exit::Cancelled).await;
    }
    assert_eq!(registry.probe().acquires::<Lazy>(), 1);
    let log = registry.app::<Log>().unwrap();
    assert_eq!(log.lines(), ["built Lazy"]);
}

#[tokio::test]
async fn a_supplied_value_is_required() {
    let error = Registry::builder()
        .register::<Pool>()
        .build()
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("`Log` is supplied at startup, but no value was supplied"),
        "{error}"
    );
}

/// How many times `Racy` started building.
#[derive(Default)]
struct Builds(AtomicU32);
provision::supplied!(Builds);

/// An app service nobody registers (built on first use) whose first build
/// never finishes: a request cut off mid-build, on Workers, is never
/// resumed and never dropped.
struct Racy(u32);
impl Provide for Racy {
    type Lifetime = App;
    type Deps = (Builds,);
    async fn build((builds,): (Dep<Builds>,)) -> Result<Self, Error> {
        let n = (*builds).0.fetch_add(1, Ordering::SeqCst) + 1;
        if n == 1 {
            std::future::pending::<()>().await;
        }
        Ok(Racy(n))
    }
}

/// Polls `future` with a waker that does nothing, up to 100 times, until
/// it is ready: a future that needs another task to make progress stays
/// pending.
fn poll_alone<F: std::future::Future + Unpin>(future: &mut F) -> std::task::Poll<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for _ in 0..100 {
        if let std::task::Poll::Ready(output) = std::pin::Pin::new(&mut *future).poll(&mut cx) {
            return std::task::Poll::Ready(output);
        }
    }
    std::task::Poll::Pending
}

#[tokio::test]
async fn a_lazy_app_build_never_waits_on_a_build_another_request_drives() {
    let registry = Registry::builder()
        .supply(Builds::default())
        .build()
        .await
        .unwrap();
    let first = registry.open_scope();
    let mut stuck = Box::pin(first.resolve::<Racy>());
    assert!(
        poll_alone(&mut stuck).is_pending(),
        "the first build never ends"
    );

    // A second request builds for itself, and its value is kept.
    let second = registry.open_scope();
    let mut own = Box::pin(second.resolve::<Racy>());
    let std::task::Poll::Ready(value) = poll_alone(&mut own) else {
        panic!("the second request waited on the first request's build");
    };
    assert_eq!((*value.unwrap()).0, 2);
    let third = registry.open_scope();
    let mut later = Box::pin(third.resolve::<Racy>());
    let std::task::Poll::Ready(value) = poll_alone(&mut later) else {
        panic!("a later request waited");
    };
    assert_eq!((*value.unwrap()).0, 2, "the first value to finish is kept");
    assert_eq!(
        (*registry.app::<Builds>().unwrap())
            .0
            .load(Ordering::SeqCst),
        2
    );
    drop((stuck, own, later));
    for scope in [first, second, third] {
        scope.close(Exit::Cancelled).await;
    }
}

/// Counts nothing: a waker whose only job is to be held or not.
struct Held;
impl std::task::Wake for Held {
    fn wake(self: Arc<Self>) {}
}

/// A wait for shutdown that is dropped before shutdown begins (a `finish`
/// route or a job that completed) must not leave its waker behind: each
/// would keep its task's memory alive, and every later wait would scan
/// them all, for as long as the process runs.
#[tokio::test]
async fn a_dropped_wait_for_shutdown_leaves_no_waker_behind() {
    use std::future::Future;
    let registry = Registry::builder().build().await.unwrap();
    for _ in 0..3 {
        let held = Arc::new(Held);
        let waker = std::task::Waker::from(held.clone());
        let mut cx = std::task::Context::from_waker(&waker);
        {
            let mut begun = std::pin::pin!(registry.shutdown_begun());
            assert!(begun.as_mut().poll(&mut cx).is_pending());
        }
        drop(waker);
        assert_eq!(
            Arc::strong_count(&held),
            1,
            "the dropped wait still holds its task's waker"
        );
    }
    // A wait that is still there is woken when shutdown begins.
    let mut begun = Box::pin(registry.shutdown_begun());
    let woken = Arc::new(AtomicU32::new(0));
    struct Count(Arc<AtomicU32>);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let waker = std::task::Waker::from(Arc::new(Count(woken.clone())));
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(begun.as_mut().poll(&mut cx).is_pending());
    registry.shutdown().await;
    assert_eq!(woken.load(Ordering::SeqCst), 1);
    assert!(begun.as_mut().poll(&mut cx).is_ready());
}
