//! Every `settle` and `release` step is bounded: one that never finishes is
//! abandoned after its bound (the default, or the service's own), counted,
//! reported to the observer, and the other steps proceed. On tokio's paused
//! clock, so the bounds pass without waiting.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use provision::integration::{RegistryControl, ScopeControl};
use provision::{
    App, Error, Exit, Observer, Provide, Registry, RegistryBuilder, Request, ServiceInfo, Step,
    Timer,
};

struct TokioTimer;

impl Timer for TokioTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// What the steps did, in order, across all services of one test.
static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Whether the hung release's future was dropped (abandoned), not leaked.
static HUNG_DROPPED: AtomicBool = AtomicBool::new(false);
/// Tests share the statics above: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn event(text: impl Into<String>) {
    EVENTS.lock().unwrap().push(text.into());
}

fn events() -> Vec<String> {
    std::mem::take(&mut *EVENTS.lock().unwrap())
}

/// Sets a flag when dropped.
struct DropFlag(&'static AtomicBool);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Declares a unit service of `lifetime`, built from nothing, with the
/// steps given (the ones left out keep `Provide`'s defaults).
macro_rules! service {
    ($(#[$doc:meta])* $name:ident: $lifetime:ty { $($steps:tt)* }) => {
        $(#[$doc])*
        struct $name;
        impl Provide for $name {
            type Lifetime = $lifetime;
            type Deps = ();
            async fn build(_: ()) -> Result<Self, Error> {
                Ok($name)
            }
            $($steps)*
        }
    };
}

service!(Older: Request {
    async fn settle(&self, exit: Exit) -> Result<(), Error> {
        event(format!("Older settled {exit:?}"));
        Ok(())
    }
    async fn release(self, exit: Exit) -> Result<(), Error> {
        event(format!("Older released {exit:?}"));
        Ok(())
    }
});

service!(
    /// Its release never finishes.
    HungRelease: Request {
        async fn release(self, _: Exit) -> Result<(), Error> {
            let _flag = DropFlag(&HUNG_DROPPED);
            std::future::pending::<()>().await;
            Ok(())
        }
    }
);

service!(
    /// Its settle never finishes.
    HungSettle: Request {
        async fn settle(&self, _: Exit) -> Result<(), Error> {
            std::future::pending().await
        }
    }
);

service!(Newer: Request {
    async fn release(self, exit: Exit) -> Result<(), Error> {
        event(format!("Newer released {exit:?}"));
        Ok(())
    }
});

/// A release that takes three seconds, then records `name released`.
async fn release_slowly(name: &str) -> Result<(), Error> {
    tokio::time::sleep(Duration::from_secs(3)).await;
    event(format!("{name} released"));
    Ok(())
}

service!(
    /// Its release takes three seconds.
    Slow: Request {
        async fn release(self, _: Exit) -> Result<(), Error> {
            release_slowly("Slow").await
        }
    }
);

service!(
    /// Its release takes three seconds too, but it may.
    SlowButAllowed: Request {
        async fn release(self, _: Exit) -> Result<(), Error> {
            release_slowly("SlowButAllowed").await
        }
    }
);

service!(
    /// An app service whose release at shutdown never finishes.
    HungPool: App {
        async fn release(self, _: Exit) -> Result<(), Error> {
            std::future::pending().await
        }
    }
);

/// Counts what the observer is told of abandoned steps.
#[derive(Clone, Default)]
struct Abandoned(Arc<Mutex<Vec<Seen>>>);

/// A service's name, the step abandoned and its bound.
type Seen = (&'static str, Step, Duration);

impl Observer for Abandoned {
    fn abandoned(&self, service: &ServiceInfo, step: Step, bound: Duration) {
        self.0.lock().unwrap().push((service.name(), step, bound));
    }
}

impl Abandoned {
    fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }
}

/// `step`'s output; fails the test (rather than hanging it) if the bound
/// did not cut it.
async fn within_a_minute<F: Future>(step: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), step)
        .await
        .expect("the step finished or was abandoned within a minute")
}

fn bounded(observer: &Abandoned) -> RegistryBuilder {
    Registry::builder()
        .timer(TokioTimer)
        .step_timeout(Duration::from_secs(1))
        .observer(observer.clone())
}

/// Runs a test alone (the statics are shared), from no recorded events:
/// the guard to hold for the whole test, and a fresh observer.
async fn alone() -> (tokio::sync::MutexGuard<'static, ()>, Abandoned) {
    let serial = SERIAL.lock().await;
    events();
    (serial, Abandoned::default())
}

#[tokio::test(start_paused = true)]
async fn a_release_that_never_finishes_is_abandoned_counted_and_the_others_still_release() {
    let (_serial, observer) = alone().await;
    let registry = bounded(&observer).build().await.unwrap();
    let scope = registry.open_scope();
    drop(scope.resolve::<Older>().await.unwrap());
    drop(scope.resolve::<HungRelease>().await.unwrap());
    drop(scope.resolve::<Newer>().await.unwrap());
    let started = tokio::time::Instant::now();

    within_a_minute(scope.close(Exit::Success(StatusCode::OK))).await;

    assert_eq!(started.elapsed(), Duration::from_secs(1), "after its bound");
    assert_eq!(
        events(),
        ["Newer released Success(200)", "Older released Success(200)"],
        "the services before and after the hung one are released"
    );
    assert!(HUNG_DROPPED.load(Ordering::SeqCst), "the step was dropped");
    let report = registry.probe().report::<HungRelease>();
    assert_eq!(report.abandoned_releases, 1);
    assert_eq!(report.release_failures, 1);
    assert_eq!(report.held, 0, "{report:?}");
    assert_eq!(registry.probe().report::<Older>().abandoned_releases, 0);
    assert_eq!(
        observer.seen(),
        [("HungRelease", Step::Release, Duration::from_secs(1))]
    );
    assert_eq!(registry.probe().open_scopes(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_settle_that_never_finishes_fails_the_request_with_503_and_older_services_roll_back() {
    let (_serial, observer) = alone().await;
    let registry = bounded(&observer).build().await.unwrap();
    let scope = registry.open_scope();
    drop(scope.resolve::<Older>().await.unwrap());
    drop(scope.resolve::<HungSettle>().await.unwrap());

    let settled = within_a_minute(scope.settle(Exit::Success(StatusCode::CREATED))).await;

    let error = settled.unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert!(
        error
            .to_string()
            .contains("`HungSettle` did not settle within 1s"),
        "{error}"
    );
    assert_eq!(
        events(),
        ["Older settled Failure(503)"],
        "the older service is told the request failed"
    );
    assert_eq!(registry.probe().report::<HungSettle>().abandoned_settles, 1);
    assert_eq!(
        observer.seen(),
        [("HungSettle", Step::Settle, Duration::from_secs(1))]
    );
    scope
        .close(Exit::Failure(StatusCode::SERVICE_UNAVAILABLE))
        .await;
    assert_eq!(events(), ["Older released Failure(503)"]);
}

#[tokio::test(start_paused = true)]
async fn a_service_s_own_bound_replaces_the_default() {
    let (_serial, observer) = alone().await;
    let registry = bounded(&observer)
        .step_timeout_for::<SlowButAllowed>(Duration::from_secs(5))
        .build()
        .await
        .unwrap();
    let scope = registry.open_scope();
    drop(scope.resolve::<SlowButAllowed>().await.unwrap());
    drop(scope.resolve::<Slow>().await.unwrap());

    within_a_minute(scope.close(Exit::Cancelled)).await;

    assert_eq!(events(), ["SlowButAllowed released"]);
    assert_eq!(
        observer.seen(),
        [("Slow", Step::Release, Duration::from_secs(1))]
    );
    let probe = registry.probe();
    assert_eq!(probe.report::<Slow>().abandoned_releases, 1);
    assert_eq!(probe.report::<SlowButAllowed>().abandoned_releases, 0);
    assert_eq!(probe.report::<SlowButAllowed>().release_failures, 0);
}

#[tokio::test(start_paused = true)]
async fn shutdown_abandons_an_app_release_that_never_finishes() {
    let (_serial, observer) = alone().await;
    let registry = bounded(&observer)
        .register::<HungPool>()
        .build()
        .await
        .unwrap();

    within_a_minute(registry.shutdown()).await;

    assert_eq!(registry.probe().report::<HungPool>().abandoned_releases, 1);
    assert_eq!(registry.probe().held::<HungPool>(), 0);
    assert_eq!(
        observer.seen(),
        [("HungPool", Step::Release, Duration::from_secs(1))]
    );
}

#[tokio::test]
async fn without_a_timer_a_step_is_not_bounded() {
    let _serial = SERIAL.lock().await;
    let registry = Registry::builder().build().await.unwrap();
    let scope = registry.open_scope();
    drop(scope.resolve::<HungRelease>().await.unwrap());

    let close = scope.close(Exit::Cancelled);
    let outcome = tokio::time::timeout(Duration::from_millis(50), close).await;

    assert!(outcome.is_err(), "still releasing");
    assert_eq!(
        registry.probe().report::<HungRelease>().abandoned_releases,
        0
    );
}
