//! Scopes outside HTTP (`Registry::job`, `Registry::run_scoped`): a job's
//! services are built in a scope of its own, settled on success, and
//! released with the job's exit: success, failure, panic, shutdown, or
//! cancelled when its future is dropped. They are counted by the same probe
//! as a request's.

use std::sync::Mutex;

use http::StatusCode;
use provision::{Dep, Error, Exit, Provide, Registry, Request, RequestScope};
use tokio::sync::oneshot;

/// What each step was told, in order.
#[derive(Default)]
struct Journal(Mutex<Vec<(&'static str, Exit)>>);
provision::supplied!(Journal);

impl Journal {
    fn push(&self, step: &'static str, exit: Exit) {
        self.0.lock().unwrap().push((step, exit));
    }
    fn steps(&self) -> Vec<(&'static str, Exit)> {
        self.0.lock().unwrap().clone()
    }
}

/// A transaction: commits in settle on success, rolls back otherwise.
struct Tx(Dep<Journal>);

impl Provide for Tx {
    type Lifetime = Request;
    type Deps = (Journal,);
    async fn build((journal,): (Dep<Journal>,)) -> Result<Self, Error> {
        Ok(Tx(journal))
    }
    async fn settle(&self, exit: Exit) -> Result<(), Error> {
        self.0.push("settle", exit);
        Ok(())
    }
    async fn release(self, exit: Exit) -> Result<(), Error> {
        self.0.push("release", exit);
        Ok(())
    }
}

async fn registry() -> (Registry, Dep<Journal>) {
    let registry = Registry::builder()
        .supply(Journal::default())
        .register::<Tx>()
        .build()
        .await
        .unwrap();
    let journal = registry.app::<Journal>().unwrap();
    (registry, journal)
}

async fn use_tx() -> Result<Dep<Tx>, Error> {
    RequestScope::current()
        .expect("a job runs inside its own scope")
        .resolve::<Tx>()
        .await
}

const OK: Exit = Exit::Success(StatusCode::OK);

#[tokio::test]
async fn a_job_that_succeeds_is_settled_then_released_with_success_and_counted() {
    let (registry, journal) = registry().await;
    let out = registry
        .run_scoped("ok", async {
            let a = use_tx().await?;
            let b = use_tx().await?;
            assert!(
                std::sync::Arc::ptr_eq(a.shared(), b.shared()),
                "one Tx per job"
            );
            Ok(7)
        })
        .await;
    assert_eq!(out.unwrap(), 7);
    assert_eq!(journal.steps(), vec![("settle", OK), ("release", OK)]);
    assert_eq!(registry.probe().acquires::<Tx>(), 1);
    assert_eq!(registry.probe().releases::<Tx>(), 1);
}

#[tokio::test]
async fn two_jobs_never_share_a_request_service() {
    let (registry, _journal) = registry().await;
    let first = registry
        .run_scoped("a", async { Ok(use_tx().await?.shared().clone()) })
        .await
        .unwrap();
    let second = registry
        .run_scoped("b", async { Ok(use_tx().await?.shared().clone()) })
        .await
        .unwrap();
    assert!(!std::sync::Arc::ptr_eq(&first, &second));
    assert_eq!(registry.probe().acquires::<Tx>(), 2);
}

#[tokio::test]
async fn a_job_that_fails_is_released_with_its_failure_and_returns_the_error() {
    let (registry, journal) = registry().await;
    let out: Result<(), Error> = registry
        .run_scoped("fails", async {
            use_tx().await?;
            Err(Error::new("conflict").with_status(StatusCode::CONFLICT))
        })
        .await;
    assert_eq!(out.unwrap_err().status(), Some(StatusCode::CONFLICT));
    let failed = Exit::Failure(StatusCode::CONFLICT);
    assert_eq!(
        journal.steps(),
        vec![("settle", failed), ("release", failed)]
    );
    assert_eq!(registry.probe().releases::<Tx>(), 1);
}

#[tokio::test]
async fn a_job_that_panics_is_released_with_panic_and_not_settled() {
    let (registry, journal) = registry().await;
    let out: Result<(), Error> = registry
        .run_scoped("panics", async {
            use_tx().await?;
            panic!("boom");
        })
        .await;
    let error = out.unwrap_err();
    assert!(error.message().contains("boom"), "{error}");
    assert_eq!(journal.steps(), vec![("release", Exit::Panic)]);
    assert_eq!(registry.probe().releases::<Tx>(), 1);
}

#[tokio::test]
async fn a_job_running_when_shutdown_begins_is_cut_and_released_with_shutdown() {
    let (registry, journal) = registry().await;
    let (holding, held) = oneshot::channel();
    let job = tokio::spawn({
        let registry = registry.clone();
        async move {
            registry
                .run_scoped("long", async {
                    let _tx = use_tx().await?;
                    holding.send(()).unwrap();
                    std::future::pending::<Result<(), Error>>().await
                })
                .await
        }
    });
    held.await.unwrap();
    // Shutdown waits for the job's scope; the job is cut, so it returns
    // (the bound only turns a hang into a failure).
    tokio::time::timeout(std::time::Duration::from_secs(30), registry.shutdown())
        .await
        .expect("shutdown cuts the running job instead of waiting for it");
    let out = job.await.unwrap();
    assert_eq!(
        out.unwrap_err().status(),
        Some(StatusCode::SERVICE_UNAVAILABLE)
    );
    assert_eq!(journal.steps(), vec![("release", Exit::Shutdown)]);
    assert_eq!(registry.probe().releases::<Tx>(), 1);
}

#[tokio::test]
async fn a_job_started_after_shutdown_does_not_run() {
    let (registry, _journal) = registry().await;
    registry.shutdown().await;
    let out: Result<(), Error> = registry
        .run_scoped("late", async { panic!("must not run") })
        .await;
    let error: Error = out.unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(registry.probe().acquires::<Tx>(), 0);
}

#[tokio::test]
async fn a_job_whose_future_is_dropped_is_released_with_cancelled_through_on_drop() {
    let (registry, journal) = registry().await;
    let (holding, held) = oneshot::channel();
    let (closed, close_ran) = oneshot::channel::<()>();
    let job = tokio::spawn({
        let registry = registry.clone();
        async move {
            registry
                .job("dropped")
                .on_drop(move |close| {
                    tokio::spawn(async move {
                        close.await;
                        let _ = closed.send(());
                    });
                })
                .run(async {
                    let _tx = use_tx().await?;
                    holding.send(()).unwrap();
                    std::future::pending::<Result<(), Error>>().await
                })
                .await
        }
    });
    held.await.unwrap();
    job.abort();
    assert!(job.await.unwrap_err().is_cancelled());
    close_ran.await.unwrap();
    assert_eq!(journal.steps(), vec![("release", Exit::Cancelled)]);
    assert_eq!(registry.probe().releases::<Tx>(), 1);
}

#[tokio::test]
async fn a_job_that_asks_for_nothing_opens_no_scope() {
    let (registry, journal) = registry().await;
    let out = registry.run_scoped("idle", async { Ok("done") }).await;
    assert_eq!(out.unwrap(), "done");
    assert!(journal.steps().is_empty());
    // Shutdown does not wait for a scope that was never opened.
    registry.shutdown().await;
}

/// A service whose settle never finishes (a commit that hangs).
struct HangingSettle(Dep<Journal>);

impl Provide for HangingSettle {
    type Lifetime = Request;
    type Deps = (Journal,);
    async fn build((journal,): (Dep<Journal>,)) -> Result<Self, Error> {
        Ok(HangingSettle(journal))
    }
    async fn settle(&self, exit: Exit) -> Result<(), Error> {
        self.0.push("settle", exit);
        std::future::pending().await
    }
    async fn release(self, exit: Exit) -> Result<(), Error> {
        self.0.push("release", exit);
        Ok(())
    }
}

#[tokio::test]
async fn a_job_dropped_while_it_settles_is_still_released_with_cancelled() {
    let registry = Registry::builder()
        .supply(Journal::default())
        .register::<HangingSettle>()
        .build()
        .await
        .unwrap();
    let journal = registry.app::<Journal>().unwrap();
    let (closed, close_ran) = oneshot::channel::<()>();
    let job = tokio::spawn({
        let registry = registry.clone();
        async move {
            registry
                .job("hangs-in-settle")
                .on_drop(move |close| {
                    tokio::spawn(async move {
                        close.await;
                        let _ = closed.send(());
                    });
                })
                .run(async {
                    RequestScope::current()
                        .unwrap()
                        .resolve::<HangingSettle>()
                        .await?;
                    Ok(())
                })
                .await
        }
    });
    // Bounded poll: the job has reached its settle step.
    for _ in 0..1000 {
        if !journal.steps().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(journal.steps(), vec![("settle", OK)]);
    job.abort();
    assert!(job.await.unwrap_err().is_cancelled());
    close_ran.await.unwrap();
    assert_eq!(
        journal.steps(),
        vec![("settle", OK), ("release", Exit::Cancelled)]
    );
    assert_eq!(registry.probe().releases::<HangingSettle>(), 1);
}
