//! `#[provide]`: services declared with the attribute are the services a
//! hand-written `impl Provide` makes: the dependencies read from `build`'s
//! parameters (in order), the lifetime from the argument, `settle` and
//! `release` called as written.
#![cfg(feature = "macros")]

use std::future::Future;
use std::sync::Mutex;

use http::StatusCode;
use provision::integration::{RegistryControl, ScopeControl};
use provision::{Dep, Error, Exit, LifetimeKind, Registry, ServiceInfo, provide};

/// What each step saw, in order.
#[derive(Default)]
struct Journal(Mutex<Vec<String>>);
provision::supplied!(Journal);

impl Journal {
    fn push(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// An app service with no dependencies: `build` takes no parameters.
struct Pool {
    name: &'static str,
}

#[provide(App)]
impl Pool {
    async fn build() -> Result<Self, Error> {
        Ok(Pool { name: "pool" })
    }
}

/// A request service with two dependencies, one destructured in its
/// pattern, and a `release` that is a plain function returning a future
/// (as a service writes it to keep the future small).
struct Conn {
    journal: Dep<Journal>,
    pool: &'static str,
}

#[provide(Request)]
impl Conn {
    /// Doc comments and attributes on the steps are kept.
    #[allow(clippy::unused_async)]
    pub async fn build(journal: Dep<Journal>, Dep(pool): Dep<Pool>) -> Result<Self, Error> {
        journal.push(format!("Conn.build from {}", pool.name));
        Ok(Conn {
            journal,
            pool: pool.name,
        })
    }

    fn release(self, exit: Exit) -> impl Future<Output = Result<(), Error>> + Send {
        self.journal
            .push(format!("Conn.release {} {}", self.pool, exit.label()));
        async { Ok(()) }
    }
}

/// A request service built on another, settled and released.
struct Tx {
    conn: Dep<Conn>,
}

#[provide(provision::Request)]
impl Tx {
    async fn build(conn: provision::Dep<Conn>) -> Result<Self, Error> {
        Ok(Tx { conn })
    }

    async fn settle(&self, exit: Exit) -> Result<(), Error> {
        let verb = if exit.is_success() {
            "commit"
        } else {
            "roll back"
        };
        self.conn.journal.push(format!("Tx.settle: {verb}"));
        Ok(())
    }

    async fn release(self, exit: Exit) -> Result<(), Error> {
        self.conn
            .journal
            .push(format!("Tx.release {}", exit.label()));
        Ok(())
    }
}

/// A transient: the third lifetime.
struct Stamp;

#[provide(Transient)]
impl Stamp {
    async fn build(_conn: Dep<Conn>) -> Result<Self, Error> {
        Ok(Stamp)
    }
}

#[test]
fn the_dependencies_are_read_from_builds_parameters_in_order() {
    let names = |info: &ServiceInfo| -> Vec<&str> {
        info.dependencies().iter().map(|d| d.name()).collect()
    };
    assert_eq!(names(ServiceInfo::of::<Conn>()), ["Journal", "Pool"]);
    assert_eq!(names(ServiceInfo::of::<Tx>()), ["Conn"]);
    assert_eq!(names(ServiceInfo::of::<Pool>()), Vec::<&str>::new());
    assert_eq!(ServiceInfo::of::<Pool>().lifetime(), LifetimeKind::App);
    assert_eq!(ServiceInfo::of::<Conn>().lifetime(), LifetimeKind::Request);
    assert_eq!(
        ServiceInfo::of::<Stamp>().lifetime(),
        LifetimeKind::Transient
    );
}

#[tokio::test]
async fn a_request_builds_settles_and_releases_through_the_attributes_steps() {
    let registry = Registry::builder()
        .supply(Journal::default())
        .register::<Tx>()
        .register::<Stamp>()
        .build()
        .await
        .unwrap();

    let scope = registry.open_scope();
    let journal = scope.resolve::<Journal>().await.unwrap();
    let tx = scope.resolve::<Tx>().await.unwrap();
    let conn = scope.resolve::<Conn>().await.unwrap();
    assert!(
        std::sync::Arc::ptr_eq(tx.conn.shared(), conn.shared()),
        "one Conn per request"
    );
    drop(scope.resolve::<Stamp>().await.unwrap());
    drop((tx, conn));
    let created = Exit::Success(StatusCode::CREATED);
    scope.settle(created).await.unwrap();
    scope.close(created).await;

    assert_eq!(
        journal.lines(),
        [
            "Conn.build from pool",
            "Tx.settle: commit",
            "Tx.release success",
            "Conn.release pool success",
        ]
    );
    let probe = registry.probe();
    assert_eq!((probe.acquires::<Conn>(), probe.releases::<Conn>()), (1, 1));
    assert_eq!(
        (probe.acquires::<Stamp>(), probe.releases::<Stamp>()),
        (1, 1)
    );
    drop(journal);
    registry.shutdown().await;
}

/// The same service twice, by hand and through the attribute, with the same
/// body: the attribute adds no state to `build`'s future (and no box: the
/// trait's `build` is the function written).
struct ByHand;

impl provision::Provide for ByHand {
    type Lifetime = provision::Request;
    type Deps = (Journal, Pool);
    async fn build((journal, pool): (Dep<Journal>, Dep<Pool>)) -> Result<Self, Error> {
        std::future::ready(()).await;
        journal.push(pool.name.to_owned());
        Ok(ByHand)
    }
}

struct ByAttribute;

#[provide(Request)]
impl ByAttribute {
    async fn build(journal: Dep<Journal>, pool: Dep<Pool>) -> Result<Self, Error> {
        std::future::ready(()).await;
        journal.push(pool.name.to_owned());
        Ok(ByAttribute)
    }
}

#[test]
fn the_attribute_builds_the_same_future_as_a_hand_written_impl() {
    use provision::Provide;
    use std::sync::Arc;
    let handles = || {
        (
            Dep(Arc::new(Journal::default())),
            Dep(Arc::new(Pool { name: "pool" })),
        )
    };
    let by_hand = <ByHand as Provide>::build(handles());
    let by_attribute = <ByAttribute as Provide>::build(handles());
    assert_eq!(
        std::mem::size_of_val(&by_attribute),
        std::mem::size_of_val(&by_hand)
    );
}
