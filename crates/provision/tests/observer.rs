//! What the [`Observer`] is told: every build and every release of it,
//! including a value built into a scope that had already ended (released
//! at once), settle failures, and how long each value was held.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use provision::integration::{RegistryControl, ScopeControl};
use provision::{Error, Exit, Observer, Provide, Registry, Request, ServiceInfo, Transient};
use tokio::sync::Notify;

/// What the observer heard, as text, in order.
#[derive(Clone, Default)]
struct Heard(Arc<Mutex<Vec<String>>>);

impl Heard {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Observer for Heard {
    fn settle_failed(&self, service: &ServiceInfo, error: &Error) {
        self.0
            .lock()
            .unwrap()
            .push(format!("settle failed {}: {error}", service.name()));
    }
    fn acquired(&self, service: &ServiceInfo, _elapsed: Option<Duration>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("acquired {}", service.name()));
    }
    fn released(
        &self,
        service: &ServiceInfo,
        exit: Exit,
        _error: Option<&Error>,
        _held: Option<Duration>,
    ) {
        self.0
            .lock()
            .unwrap()
            .push(format!("released {} {}", service.name(), exit.label()));
    }
}

/// Lets the test hold a build until the scope has closed.
static GO: Notify = Notify::const_new();
/// Tells the test the build has begun.
static STARTED: Notify = Notify::const_new();

struct Late;
impl Provide for Late {
    type Lifetime = Transient;
    type Deps = ();
    async fn build(_: ()) -> Result<Self, Error> {
        STARTED.notify_one();
        GO.notified().await;
        Ok(Late)
    }
}

/// A registry whose observer is a fresh [`Heard`].
async fn heard_registry() -> (Heard, Registry) {
    let heard = Heard::default();
    let registry = Registry::builder()
        .observer(heard.clone())
        .build()
        .await
        .unwrap();
    (heard, registry)
}

/// A build that ends after its scope closed: the value is released at once
/// (nobody else could), and the observer hears of that release, so its
/// count of values held goes back to zero.
#[tokio::test]
async fn a_value_built_after_its_scope_ended_is_reported_released() {
    let (heard, registry) = heard_registry().await;
    let scope = registry.open_scope();
    let build = tokio::spawn({
        let scope = scope.clone();
        async move { scope.resolve::<Late>().await.map(|_| ()) }
    });
    STARTED.notified().await;
    scope.close(Exit::Success(StatusCode::OK)).await;
    GO.notify_one();
    let error = build.await.unwrap().unwrap_err();
    assert!(
        error.to_string().contains("scope has already ended"),
        "{error}"
    );
    assert_eq!(registry.probe().releases::<Late>(), 1);
    assert_eq!(
        heard.take(),
        ["acquired Late", "released Late cancelled"],
        "the observer hears of every release"
    );
}

struct Refuses;
impl Provide for Refuses {
    type Lifetime = Request;
    type Deps = ();
    async fn build(_: ()) -> Result<Self, Error> {
        Ok(Refuses)
    }
    async fn settle(&self, _exit: Exit) -> Result<(), Error> {
        Err(Error::new("commit refused").with_status(StatusCode::CONFLICT))
    }
}

/// A settle step that fails is counted (the probe's `settle_failures`) and
/// reported to the observer with its error; the value is then released
/// with the failure the client hears.
#[tokio::test]
async fn a_failed_settle_is_counted_and_reported() {
    let (heard, registry) = heard_registry().await;
    let scope = registry.open_scope();
    drop(scope.resolve::<Refuses>().await.unwrap());
    let error = scope
        .settle(Exit::Success(StatusCode::OK))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::CONFLICT));
    scope.close(Exit::Failure(StatusCode::CONFLICT)).await;
    assert_eq!(registry.probe().report::<Refuses>().settle_failures, 1);
    assert_eq!(
        heard.take(),
        [
            "acquired Refuses",
            "settle failed Refuses: commit refused",
            "released Refuses failure"
        ]
    );
}
