//! `Finish`'s report of how each route ended after its client left: which
//! route (its matched path and method), and whether it completed, was cut
//! (its deadline) or panicked. A client that stays sees its own answer, so
//! its run is not reported.

mod support;

use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::{patch, post};
use http::{Request, StatusCode};
use provision::Dep;
use provision_axum::{Background, Finish, FinishOutcome, ProvisionLayer};
use support::{Collect, Conn, Knobs, poll_once, registry};
use tokio::sync::Notify;
use tower_service::Service;

/// What the reporter heard: method, route, outcome.
type Heard = Arc<Mutex<Vec<(String, Option<String>, FinishOutcome)>>>;

/// `finish` with a reporter that writes into `heard`.
fn reporting(finish: &Finish, heard: &Heard) -> Finish {
    let heard = heard.clone();
    finish.clone().report(move |report| {
        heard.lock().unwrap().push((
            report.method.to_string(),
            report.route.map(str::to_owned),
            report.outcome,
        ));
    })
}

/// Routes that hold their `Conn` until `gate` opens; `/orders/{id}` panics
/// then; `/slow` is under `short` (a 50 ms deadline) and never answers.
fn router(
    registry: &provision::Registry,
    finish: &Finish,
    short: &Finish,
    gate: &Arc<Notify>,
) -> Router {
    let (g1, g2, g3) = (gate.clone(), gate.clone(), gate.clone());
    Router::new()
        .route(
            "/orders",
            post(move |Dep(_conn): Dep<Conn>| created_at(g1)).layer(finish.clone()),
        )
        .route(
            "/orders/{id}",
            patch(move |Dep(_conn): Dep<Conn>| panic_at(g2)).layer(finish.clone()),
        )
        .route(
            "/slow",
            post(move |Dep(_conn): Dep<Conn>| created_at(g3)).layer(short.clone()),
        )
        .layer(ProvisionLayer::new(registry.clone()))
}

/// Waits for `gate`, then answers 201.
async fn created_at(gate: Arc<Notify>) -> StatusCode {
    gate.notified().await;
    StatusCode::CREATED
}

/// Waits for `gate`, then panics.
async fn panic_at(gate: Arc<Notify>) -> StatusCode {
    gate.notified().await;
    panic!("the handler panics after its client left");
}

fn request(method: &str, path: &str, background: &Collect) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap();
    request.extensions_mut().insert(background.background());
    request
}

/// Calls `method path`, and drops the response future (the client left)
/// once the route holds its connection.
async fn leave(app: &mut Router, method: &str, path: &str, collect: &Collect) {
    let mut response = pin!(app.call(request(method, path, collect)));
    assert!(poll_once(response.as_mut()).is_pending());
}

#[tokio::test]
async fn each_route_whose_client_left_is_counted_by_its_outcome() {
    let registry = registry(Knobs::default()).await;
    let heard = Heard::default();
    let finish = reporting(&Finish::within(Duration::from_secs(30)), &heard);
    let short = reporting(&Finish::within(Duration::from_millis(50)), &heard);
    let gate = Arc::new(Notify::new());
    let collect = Collect::default();
    let mut app = router(&registry, &finish, &short, &gate);
    let last = || heard.lock().unwrap().last().cloned();
    let route = |path: &str| Some(path.to_owned());

    // Completed: the client left, the route answered on the background.
    leave(&mut app, "POST", "/orders", &collect).await;
    gate.notify_one();
    collect.run_all().await;
    assert_eq!(finish.outcomes().disconnected, 1);
    assert_eq!(finish.outcomes().finished_after_disconnect, 1);
    assert_eq!(
        last(),
        Some(("POST".into(), route("/orders"), FinishOutcome::Completed))
    );

    // Panicked: counted as finished too (it was not cut).
    leave(&mut app, "PATCH", "/orders/7", &collect).await;
    gate.notify_one();
    collect.run_all().await;
    assert_eq!(finish.outcomes().disconnected, 2);
    assert_eq!(finish.outcomes().finished_after_disconnect, 2);
    assert_eq!(
        last(),
        Some((
            "PATCH".into(),
            route("/orders/{id}"),
            FinishOutcome::Panicked
        )),
        "the route as declared, not the path called"
    );

    // Cut: its 50 ms deadline passes with the gate shut.
    leave(&mut app, "POST", "/slow", &collect).await;
    collect.run_all().await;
    assert_eq!(
        finish.outcomes().disconnected,
        2,
        "`/slow` has its own Finish"
    );
    assert_eq!(short.outcomes().cut_by_deadline, 1);
    assert_eq!(
        last(),
        Some(("POST".into(), route("/slow"), FinishOutcome::Cut))
    );
    assert_eq!(heard.lock().unwrap().len(), 3, "each run reported once");

    // A client that stays: answered, not a disconnect.
    let mut response = pin!(app.call(request("POST", "/orders", &collect)));
    assert!(poll_once(response.as_mut()).is_pending());
    gate.notify_one();
    assert_eq!(response.await.unwrap().status(), StatusCode::CREATED);
    assert_eq!(finish.outcomes().answered, 1);
    assert_eq!(finish.outcomes().disconnected, 2);
    assert_eq!(
        heard.lock().unwrap().len(),
        3,
        "a client that stayed is not reported"
    );
}

/// A clock whose every sleep is over at once: a route under it that has not
/// answered when first polled is cut.
struct Elapsed;

impl provision::Timer for Elapsed {
    fn sleep(&self, _: Duration) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(std::future::ready(()))
    }
}

/// Polls `future` to its end on this thread, outside any tokio runtime (as
/// a host such as Cloudflare Workers runs it).
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

impl Collect {
    /// Runs the collected tasks, and those they hand over, to their end.
    fn run_all_here(&self) {
        loop {
            let tasks = std::mem::take(&mut *self.0.lock().unwrap());
            if tasks.is_empty() {
                return;
            }
            for task in tasks {
                block_on(task);
            }
        }
    }
}

/// Without tokio the route goes to the request's `Background` at its first
/// poll and its answer comes back over a channel (`on_background_now`): a
/// client that left is reported from there, with each outcome.
#[test]
fn on_a_host_without_tokio_a_route_whose_client_left_is_reported_too() {
    let registry = block_on(registry(Knobs::default()));
    let heard = Heard::default();
    let finish = reporting(&Finish::within(Duration::from_secs(30)), &heard);
    let gate = Arc::new(Notify::new());
    let collect = Collect::default();
    let mut app = router(&registry, &finish, &finish, &gate);
    let last = || heard.lock().unwrap().last().cloned();
    let route = |path: &str| Some(path.to_owned());
    let mut leave = |method: &str, path: &str, background: Background| {
        let mut request = request(method, path, &collect);
        request.extensions_mut().insert(background);
        let mut response = pin!(app.call(request));
        assert!(poll_once(response.as_mut()).is_pending());
    };

    gate.notify_one(); // the route answers when run
    leave("POST", "/orders", collect.background());
    collect.run_all_here();
    assert_eq!(
        last(),
        Some(("POST".into(), route("/orders"), FinishOutcome::Completed))
    );

    gate.notify_one();
    leave("PATCH", "/orders/7", collect.background());
    collect.run_all_here();
    assert_eq!(
        last(),
        Some((
            "PATCH".into(),
            route("/orders/{id}"),
            FinishOutcome::Panicked
        ))
    );

    // The gate stays shut; the host's clock says the deadline is past.
    let clocked = collect
        .background()
        .with_clock(Elapsed, Duration::from_secs(20));
    leave("POST", "/orders", clocked);
    collect.run_all_here();
    assert_eq!(
        last(),
        Some(("POST".into(), route("/orders"), FinishOutcome::Cut))
    );
    assert_eq!(finish.outcomes().cut_by_deadline, 1);
    assert_eq!(finish.outcomes().disconnected, 3);
    assert_eq!(heard.lock().unwrap().len(), 3, "each run reported once");
}
