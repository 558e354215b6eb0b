//! A task spawned from a request that must outlive the response gets a
//! scope of its own (`spawn_scoped`): the request releases its services at
//! its own end, the task builds its own, settles them when it returns `Ok`
//! and releases them with its own exit. A request-bound value carried
//! across refuses to be used in the task.

mod support;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use provision::{Dep, Error, Exit, RequestBound, RequestScope};
use provision_axum::ProvisionLayer;
use support::{Conn, Knobs, TestServer, journal, registry};
use tokio::sync::oneshot;

type Gate = Arc<Mutex<Option<oneshot::Receiver<()>>>>;
type Report = Arc<Mutex<Option<oneshot::Sender<(Result<(), String>, u64)>>>>;

#[tokio::test]
async fn a_spawned_job_has_its_own_scope_and_outlives_the_response() {
    let registry = registry(Knobs::default()).await;
    let journal = journal(&registry);
    let (open_gate, gate) = oneshot::channel::<()>();
    let gate: Gate = Arc::new(Mutex::new(Some(gate)));
    let (report, reported) = oneshot::channel();
    let report: Report = Arc::new(Mutex::new(Some(report)));

    let router = Router::new()
        .route(
            "/accept",
            get(move |Dep(conn): Dep<Conn>| {
                let gate = gate.lock().unwrap().take().unwrap();
                let report = report.lock().unwrap().take().unwrap();
                async move {
                    let bound = RequestBound::new(conn.id).named("request socket");
                    provision_axum::spawn_scoped("after-response", async move {
                        // The job's own Conn, not the request's.
                        let own = RequestScope::current()
                            .expect("the job's scope")
                            .resolve::<Conn>()
                            .await?;
                        // The request's socket is refused here.
                        let refused = bound.get().map(drop).map_err(|e| e.to_string());
                        gate.await.map_err(|_| Error::new("gate dropped"))?;
                        let _ = report.send((refused, own.id));
                        Ok(())
                    });
                    format!("request conn {}", conn.id)
                }
            }),
        )
        .layer(ProvisionLayer::new(registry.clone()));
    let server = TestServer::start(router).await;

    let (status, body) = server.get("/accept").await;
    assert_eq!(status, StatusCode::OK);
    let request_conn: u64 = body.strip_prefix("request conn ").unwrap().parse().unwrap();
    // The response is complete while the job still holds its own Conn: the
    // request's Conn was released (before the last byte), the job's not.
    assert_eq!(
        journal.released("Conn"),
        vec![(request_conn, Exit::Success(StatusCode::OK))]
    );

    open_gate.send(()).unwrap();
    let (refused, job_conn) = reported.await.unwrap();
    let refused = refused.unwrap_err();
    assert!(
        refused.starts_with(provision::CROSS_REQUEST_MESSAGE),
        "{refused}"
    );
    assert_ne!(job_conn, request_conn, "the job built its own Conn");
    support::eventually("the job's Conn is released", || {
        journal.released("Conn").len() == 2
    })
    .await;
    assert_eq!(
        journal.released("Conn"),
        vec![
            (request_conn, Exit::Success(StatusCode::OK)),
            (job_conn, Exit::Success(StatusCode::OK))
        ]
    );
    assert_eq!(registry.probe().acquires::<Conn>(), 2);
    server.stop().await;
}

#[tokio::test]
async fn spawn_scoped_outside_a_request_refuses() {
    let out = provision_axum::spawn_scoped("nowhere", async { Ok(()) })
        .await
        .unwrap();
    assert!(out.unwrap_err().message().contains("outside a request"));
}
