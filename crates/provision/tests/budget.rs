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

// ---------------------------------------------------------------------------
// The budgets themselves. The fakes count what is built and released, and
// with what exit; time is tokio's paused clock, so limits pass at once.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use provision::{Budget, BudgetGroup, BudgetLimit, Observer, ServiceInfo, Timer};

struct TokioTimer;
impl Timer for TokioTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }
    fn now(&self) -> Duration {
        static EPOCH: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
        EPOCH.get_or_init(tokio::time::Instant::now).elapsed()
    }
}

/// Values held now and at most, and the exits they were released with.
#[derive(Default)]
struct Gauge {
    held: AtomicUsize,
    peak: AtomicUsize,
    exits: Mutex<Vec<Exit>>,
}

impl Gauge {
    fn take(&self) {
        let now = self.held.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }
    fn give(&self, exit: Exit) {
        self.held.fetch_sub(1, Ordering::SeqCst);
        self.exits.lock().unwrap().push(exit);
    }
    fn exits(&self) -> Vec<Exit> {
        self.exits.lock().unwrap().clone()
    }
}

/// A counted value: a statement (transient) or a connection (request).
macro_rules! counted {
    ($name:ident, $lifetime:ty) => {
        struct $name(Arc<Gauge>);
        impl Provide for $name {
            type Lifetime = $lifetime;
            type Deps = ();
            async fn build(_: ()) -> Result<Self, Error> {
                unreachable!("each test overrides the build with its own gauge")
            }
            async fn release(self, exit: Exit) -> Result<(), Error> {
                self.0.give(exit);
                Ok(())
            }
        }
    };
}
counted!(Statement, Transient);
counted!(Conn, provision::Request);
counted!(SlowConn, provision::Request);

/// Builds `T` counted on `gauge`, after `work` (on the paused clock).
fn counted_build<T: Provide>(
    gauge: &Arc<Gauge>,
    work: Duration,
    make: fn(Arc<Gauge>) -> T,
) -> impl Fn() -> Pin<Box<dyn Future<Output = Result<T, Error>> + Send>> + Send + Sync + 'static {
    let gauge = gauge.clone();
    move || {
        let gauge = gauge.clone();
        Box::pin(async move {
            if !work.is_zero() {
                tokio::time::sleep(work).await;
            }
            gauge.take();
            Ok(make(gauge))
        })
    }
}

/// What the observer heard of exceeded budgets.
#[derive(Clone, Default)]
struct Exceeded(Arc<Mutex<Vec<(&'static str, BudgetLimit)>>>);
impl Observer for Exceeded {
    fn budget_exceeded(&self, service: &ServiceInfo, limit: BudgetLimit) {
        self.0.lock().unwrap().push((service.name(), limit));
    }
}
impl Exceeded {
    fn seen(&self) -> Vec<(&'static str, BudgetLimit)> {
        self.0.lock().unwrap().clone()
    }
}

const FAILED: Exit = Exit::Failure(StatusCode::INTERNAL_SERVER_ERROR);

#[tokio::test]
async fn max_builds_refuses_the_build_after_the_nth_with_a_500_naming_the_service() {
    let gauge = Arc::new(Gauge::default());
    let observer = Exceeded::default();
    let registry = Registry::builder()
        .override_with::<Statement, _, _>(counted_build(&gauge, Duration::ZERO, Statement))
        .observer(observer.clone())
        .budget(Budget::new().max_builds::<Statement>(8))
        .build()
        .await
        .unwrap();
    let scope = registry.open_scope();
    let mut built = 0;
    let error = loop {
        match scope.resolve::<Statement>().await {
            Ok(statement) => {
                built += 1;
                drop(statement);
                assert!(built <= 8, "the 9th build must be refused");
            }
            Err(error) => break error,
        }
    };

    assert_eq!(built, 8, "every build up to the limit is allowed");
    assert_eq!(error.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
    assert_eq!(
        error.message(),
        "budget exceeded: `Statement` may be built at most 8 times in one request (max_builds), \
         and this request asked for more; is a handler building it in a loop?"
    );
    let report = registry.probe().report::<Statement>();
    assert_eq!(report.budget_exceeded, 1);
    assert_eq!(report.acquires, 8);
    assert_eq!(report.build_failures, 0, "a refusal is not a failed build");
    assert_eq!(observer.seen(), vec![("Statement", BudgetLimit::MaxBuilds)]);

    scope.close(FAILED).await;
    assert_eq!(registry.probe().releases::<Statement>(), 8);
    assert_eq!(
        gauge.exits(),
        vec![FAILED; 8],
        "released with the request's exit"
    );
    assert_eq!(gauge.held.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_routes_budget_overrides_the_registry_default_and_counts_per_request() {
    let gauge = Arc::new(Gauge::default());
    let registry = Registry::builder()
        .override_with::<Statement, _, _>(counted_build(&gauge, Duration::ZERO, Statement))
        .budget(Budget::new().max_builds::<Statement>(2))
        .build()
        .await
        .unwrap();

    // The default: two per request, in every request.
    for _ in 0..2 {
        let scope = registry.open_scope();
        drop(scope.resolve::<Statement>().await.unwrap());
        drop(scope.resolve::<Statement>().await.unwrap());
        assert!(scope.resolve::<Statement>().await.is_err());
        scope.close(FAILED).await;
    }

    // A route's own budget: five.
    let scope = registry.open_scope();
    scope.apply_budget(&Budget::new().max_builds::<Statement>(5));
    for _ in 0..5 {
        drop(scope.resolve::<Statement>().await.unwrap());
    }
    assert!(scope.resolve::<Statement>().await.is_err());
    scope.close(FAILED).await;

    let report = registry.probe().report::<Statement>();
    assert_eq!((report.acquires, report.releases), (9, 9));
    assert_eq!(report.budget_exceeded, 3);
}

#[tokio::test(start_paused = true)]
async fn acquire_wait_counts_every_wait_of_the_request_and_cuts_the_one_past_it_with_a_503() {
    let gauge = Arc::new(Gauge::default());
    let slow = Arc::new(Gauge::default());
    let observer = Exceeded::default();
    let registry = Registry::builder()
        .timer(TokioTimer)
        .observer(observer.clone())
        // Each build takes 1.5 s: one fits in 2 s, two do not.
        .override_with::<Conn, _, _>(counted_build(&gauge, Duration::from_millis(1500), Conn))
        .override_with::<SlowConn, _, _>(counted_build(
            &slow,
            Duration::from_millis(1500),
            SlowConn,
        ))
        .budget(Budget::new().acquire_wait(Duration::from_secs(2)))
        .build()
        .await
        .unwrap();

    let scope = registry.open_scope();
    let started = tokio::time::Instant::now();
    drop(scope.resolve::<Conn>().await.expect("1.5 s of 2 s"));
    let error = scope
        .resolve::<SlowConn>()
        .await
        .err()
        .expect("the second build would wait 3 s in all");

    assert_eq!(
        started.elapsed(),
        Duration::from_secs(2),
        "cut when the budget ran out"
    );
    assert_eq!(error.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(
        error.message(),
        "budget exceeded: this request waited 2s in all to acquire its services \
         (acquire_wait) and `SlowConn` was still not ready; try again shortly"
    );
    assert_eq!(
        observer.seen(),
        vec![("SlowConn", BudgetLimit::AcquireWait)]
    );
    let probe = registry.probe();
    assert_eq!(probe.report::<SlowConn>().budget_exceeded, 1);
    assert_eq!(probe.acquires::<SlowConn>(), 0, "its build was dropped");

    // What was built before the refusal is released with the request.
    let exit = Exit::Failure(StatusCode::SERVICE_UNAVAILABLE);
    scope.close(exit).await;
    assert_eq!(gauge.exits(), vec![exit]);
    assert_eq!(probe.held::<Conn>(), 0);

    // Another request starts with the whole budget again.
    let scope = registry.open_scope();
    drop(scope.resolve::<SlowConn>().await.expect("a fresh budget"));
    scope.close(Exit::Success(StatusCode::OK)).await;
    assert_eq!(slow.exits(), vec![Exit::Success(StatusCode::OK)]);
}

#[tokio::test(start_paused = true)]
async fn a_groups_cap_holds_concurrent_requests_to_m_values_at_once() {
    const M: usize = 4;
    let gauge = Arc::new(Gauge::default());
    let registry = Registry::builder()
        .timer(TokioTimer)
        .override_with::<Conn, _, _>(counted_build(&gauge, Duration::from_millis(10), Conn))
        .build()
        .await
        .unwrap();
    let reports = BudgetGroup::new("reports").max_held::<Conn>(M);
    let budget = Budget::new()
        .group(&reports)
        .acquire_wait(Duration::from_secs(60));

    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..4 * M {
        let (registry, budget) = (registry.clone(), budget.clone());
        requests.spawn(async move {
            let scope = registry.open_scope();
            scope.apply_budget(&budget);
            let conn = scope.resolve::<Conn>().await;
            // The handler's work, holding the connection.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let ok = conn.is_ok();
            drop(conn);
            scope.close(Exit::Success(StatusCode::OK)).await;
            ok
        });
    }
    let answered = requests.join_all().await;

    assert_eq!(answered, vec![true; 4 * M], "every request got its turn");
    assert_eq!(
        gauge.peak.load(Ordering::SeqCst),
        M,
        "never more than M at once"
    );
    assert_eq!(reports.peak::<Conn>(), M);
    assert_eq!(reports.held::<Conn>(), 0, "every slot given back");
    assert_eq!(gauge.exits().len(), 4 * M);
    assert_eq!(registry.probe().held::<Conn>(), 0);
}

/// A group `reports` of one `Conn` slot, taken by `holder`; `refused` is a
/// second request under the same budget (1 s to acquire), so what it asks
/// for that needs a `Conn` waits for the slot.
struct OneSlotTaken {
    gauge: Arc<Gauge>,
    observer: Exceeded,
    registry: Registry,
    reports: BudgetGroup,
    budget: Budget,
    holder: provision::RequestScope,
    refused: provision::RequestScope,
}

async fn one_slot_taken() -> OneSlotTaken {
    let gauge = Arc::new(Gauge::default());
    let observer = Exceeded::default();
    let registry = Registry::builder()
        .timer(TokioTimer)
        .observer(observer.clone())
        .override_with::<Conn, _, _>(counted_build(&gauge, Duration::ZERO, Conn))
        .build()
        .await
        .unwrap();
    let reports = BudgetGroup::new("reports").max_held::<Conn>(1);
    let budget = Budget::new()
        .group(&reports)
        .acquire_wait(Duration::from_secs(1));
    let holder = registry.open_scope();
    holder.apply_budget(&budget);
    drop(holder.resolve::<Conn>().await.unwrap());

    let refused = registry.open_scope();
    refused.apply_budget(&budget);
    OneSlotTaken {
        gauge,
        observer,
        registry,
        reports,
        budget,
        holder,
        refused,
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_that_gets_no_slot_within_its_acquire_budget_gets_a_503() {
    let OneSlotTaken {
        gauge,
        observer,
        registry,
        reports,
        budget,
        holder,
        refused,
    } = one_slot_taken().await;
    let started = tokio::time::Instant::now();
    let error = refused.resolve::<Conn>().await.err().expect("no slot");
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!(error.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(
        error.message(),
        "budget exceeded: no `Conn` came free within this request's acquire budget of 1s \
         (max_held: group `reports` holds at most 1); try again shortly"
    );
    assert_eq!(observer.seen(), vec![("Conn", BudgetLimit::MaxHeld)]);
    assert_eq!(
        reports.waiting::<Conn>(),
        0,
        "the refused request left the queue"
    );
    refused
        .close(Exit::Failure(StatusCode::SERVICE_UNAVAILABLE))
        .await;
    assert_eq!(gauge.peak.load(Ordering::SeqCst), 1);

    // The slot comes back when the holder has released its connection.
    assert_eq!(reports.held::<Conn>(), 1);
    holder.close(Exit::Success(StatusCode::OK)).await;
    assert_eq!(reports.held::<Conn>(), 0);
    let next = registry.open_scope();
    next.apply_budget(&budget);
    drop(
        next.resolve::<Conn>()
            .await
            .expect("the slot is free again"),
    );
    next.close(Exit::Success(StatusCode::OK)).await;
    assert_eq!(gauge.exits().len(), 2);
}

#[tokio::test]
async fn a_default_acquire_wait_without_a_timer_is_refused_at_startup() {
    let error = Registry::builder()
        .budget(Budget::new().acquire_wait(Duration::from_secs(1)))
        .build()
        .await
        .expect_err("nothing could measure the wait");
    assert!(
        error.message().contains("RegistryBuilder::timer"),
        "{error}"
    );
}

#[tokio::test]
async fn a_scope_with_no_budget_makes_none() {
    // No budget anywhere: nothing is limited, and the scope reports none.
    let registry = Registry::builder().build().await.unwrap();
    let scope = registry.open_scope();
    assert!(scope.budgets().is_empty());
    scope.close(Exit::Success(StatusCode::OK)).await;
}

/// A request service built on a connection.
struct Report;
impl Provide for Report {
    type Lifetime = provision::Request;
    type Deps = (Conn,);
    async fn build(_: (provision::Dep<Conn>,)) -> Result<Self, Error> {
        Ok(Report)
    }
}

#[tokio::test(start_paused = true)]
async fn a_service_whose_dependency_gets_no_slot_is_refused_for_that_dependency() {
    let OneSlotTaken {
        observer,
        registry,
        reports,
        holder,
        refused,
        ..
    } = one_slot_taken().await;
    let error = refused.resolve::<Report>().await.err().expect("no slot");

    assert_eq!(error.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert!(
        error
            .message()
            .starts_with("budget exceeded: no `Conn` came free"),
        "{error}"
    );
    assert_eq!(observer.seen(), vec![("Conn", BudgetLimit::MaxHeld)]);
    let probe = registry.probe();
    assert_eq!(probe.report::<Conn>().budget_exceeded, 1);
    assert_eq!(probe.report::<Report>().budget_exceeded, 0);
    refused
        .close(Exit::Failure(StatusCode::SERVICE_UNAVAILABLE))
        .await;
    holder.close(Exit::Success(StatusCode::OK)).await;
    assert_eq!(reports.held::<Conn>(), 0);
    assert_eq!(probe.held::<Conn>(), 0);
}
