//! `settle` across several services: once one step has failed, the request
//! has failed, and every step after it (the older services) is told so, as
//! is every release. A transaction therefore commits only when the answer
//! the client gets says success, and its `release` knows from the exit
//! alone whether the request's work was kept: no flag of its own.

use std::sync::Mutex;

use http::StatusCode;
use provision::integration::{RegistryControl, ScopeControl};
use provision::{Dep, Error, Exit, Provide, Registry, Request};

/// What each step was told, in the order the steps ran.
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

/// The older service: commits on success, rolls back otherwise.
struct Tx {
    journal: Dep<Journal>,
}

impl Provide for Tx {
    type Lifetime = Request;
    type Deps = (Journal,);
    async fn build((journal,): (Dep<Journal>,)) -> Result<Self, Error> {
        Ok(Tx { journal })
    }
    async fn settle(&self, exit: Exit) -> Result<(), Error> {
        self.journal.push("Tx.settle", exit);
        Ok(())
    }
    async fn release(self, exit: Exit) -> Result<(), Error> {
        self.journal.push("Tx.release", exit);
        Ok(())
    }
}

/// The newer service, built on the transaction: its settle fails (say, an
/// outbox whose flush was refused).
struct Outbox(Dep<Tx>);

impl Provide for Outbox {
    type Lifetime = Request;
    type Deps = (Tx,);
    async fn build((tx,): (Dep<Tx>,)) -> Result<Self, Error> {
        Ok(Outbox(tx))
    }
    async fn settle(&self, exit: Exit) -> Result<(), Error> {
        self.0.journal.push("Outbox.settle", exit);
        Err(Error::new("the outbox refused the message").with_status(StatusCode::CONFLICT))
    }
    async fn release(self, exit: Exit) -> Result<(), Error> {
        self.0.journal.push("Outbox.release", exit);
        Ok(())
    }
}

#[tokio::test]
async fn after_a_failed_settle_the_older_services_are_told_the_request_failed() {
    let registry = Registry::builder()
        .supply(Journal::default())
        .register::<Outbox>()
        .build()
        .await
        .unwrap();
    let scope = registry.open_scope();
    let journal = scope.resolve::<Journal>().await.unwrap();
    drop(scope.resolve::<Outbox>().await.unwrap());

    let created = Exit::Success(StatusCode::CREATED);
    let error = scope.settle(created).await.unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::CONFLICT));
    // What an integration does with a failed settle: the answer becomes the
    // error, and the scope closes with that failure.
    let failed = Exit::Failure(StatusCode::CONFLICT);
    scope.close(failed).await;

    assert_eq!(
        journal.steps(),
        vec![
            ("Outbox.settle", created),
            // The client hears 409: the transaction must not commit.
            ("Tx.settle", failed),
            ("Outbox.release", failed),
            ("Tx.release", failed),
        ]
    );
    drop(journal);
    registry.shutdown().await;
}

/// A settle that panics fails the request as a 500 would.
struct Exploding;

impl Provide for Exploding {
    type Lifetime = Request;
    type Deps = (Tx,);
    async fn build(_: (Dep<Tx>,)) -> Result<Self, Error> {
        Ok(Exploding)
    }
    async fn settle(&self, _: Exit) -> Result<(), Error> {
        panic!("the flush panicked")
    }
}

#[tokio::test]
async fn after_a_panicking_settle_the_older_services_are_told_of_a_500() {
    let registry = Registry::builder()
        .supply(Journal::default())
        .register::<Exploding>()
        .build()
        .await
        .unwrap();
    let scope = registry.open_scope();
    let journal = scope.resolve::<Journal>().await.unwrap();
    drop(scope.resolve::<Exploding>().await.unwrap());

    let error = scope
        .settle(Exit::Success(StatusCode::OK))
        .await
        .unwrap_err();
    assert_eq!(error.status(), None, "a panic is an internal error");
    scope
        .close(Exit::Failure(StatusCode::INTERNAL_SERVER_ERROR))
        .await;

    assert_eq!(
        journal.steps()[0],
        (
            "Tx.settle",
            Exit::Failure(StatusCode::INTERNAL_SERVER_ERROR)
        )
    );
    drop(journal);
    registry.shutdown().await;
}
