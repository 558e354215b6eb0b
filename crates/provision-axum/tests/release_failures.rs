//! A release step that fails or panics does not stop the others, and is
//! reported through tracing. (Its own test binary: it installs a global
//! tracing subscriber to read what was reported.)

mod support;

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use provision::{Dep, Error, Exit, Provide, Registry, Request};
use provision_axum::ProvisionLayer;
use support::{Event, Journal, TestServer};

static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();

struct Capture;
impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.get_or_init(Default::default)
            .lock()
            .unwrap()
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> String {
    String::from_utf8(LOGS.get_or_init(Default::default).lock().unwrap().clone()).unwrap()
}

struct First(Dep<Journal>);
struct Failing(Dep<Journal>);
struct Panicking(Dep<Journal>);
struct Last(Dep<Journal>);

macro_rules! service {
    ($name:ident, $deps:ty, |$journal:ident| $release:expr) => {
        impl Provide for $name {
            type Lifetime = Request;
            type Deps = $deps;
            async fn build(deps: provision::Handles<Self>) -> Result<Self, Error> {
                Ok($name(deps.0.clone()))
            }
            async fn release(self, exit: Exit) -> Result<(), Error> {
                let $journal = &self.0;
                $journal.push(Event::Released(stringify!($name), 0, exit));
                $release
            }
        }
    };
}

service!(First, (Journal,), |_j| Ok(()));
service!(Failing, (Journal, First), |_j| Err(Error::new(
    "could not return the connection"
)));
service!(Panicking, (Journal, Failing), |_j| panic!(
    "release exploded"
));
service!(Last, (Journal, Panicking), |_j| Ok(()));

#[tokio::test]
async fn failing_and_panicking_releases_are_reported_and_do_not_stop_the_others() {
    tracing_subscriber::fmt()
        .with_writer(|| Capture)
        .with_ansi(false)
        .init();
    let registry = Registry::builder()
        .supply(Journal::default())
        .register::<Last>()
        .build()
        .await
        .unwrap();
    let app = Router::new()
        .route("/", get(|Dep(_l): Dep<Last>| async { "ok" }))
        .layer(ProvisionLayer::new(registry.clone()));
    let server = TestServer::start(app).await;

    assert_eq!(server.get("/").await.0, StatusCode::OK);

    let journal = registry.app::<Journal>().unwrap();
    let released: Vec<&str> = journal
        .events()
        .into_iter()
        .map(|e| match e {
            Event::Released(name, _, _) => name,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(released, ["Last", "Panicking", "Failing", "First"]);
    let probe = registry.probe();
    for report in probe.snapshot().iter().filter(|r| r.name != "Journal") {
        assert_eq!((report.acquires, report.releases), (1, 1), "{report:?}");
    }
    assert_eq!(probe.report::<Failing>().release_failures, 1);
    assert_eq!(probe.report::<Panicking>().release_failures, 1);
    assert_eq!(probe.report::<Last>().release_failures, 0);

    let logs = logs();
    assert!(logs.contains("release failed"), "{logs}");
    assert!(logs.contains("could not return the connection"), "{logs}");
    assert!(logs.contains("release panicked"), "{logs}");
    assert!(logs.contains("release exploded"), "{logs}");
    server.stop().await;
}
