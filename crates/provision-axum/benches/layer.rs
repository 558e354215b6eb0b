//! The per-request cost of `ProvisionLayer`: an axum `Router` called
//! directly as a tower service (no sockets, no hyper), on a current-thread
//! tokio runtime, with and without the layer, for a handler that asks for
//! no service; and with the layer for a handler that resolves one request
//! service.
//!
//! Two controls separate axum's cost of `Router::layer` (which wraps each
//! route in a new boxed service) from provision's own: the router with a
//! do-nothing `tower_layer::Identity` layer, and the router wrapped from
//! outside (`ProvisionLayer::layer(router)`, one `Provision<Router>`).
//!
//! Target: at most 150 ns over plain axum for a request that asks for
//! nothing.
//!
//! Also here, because it needs the `axum` feature of provision: a memoised
//! hit through the extractor a handler actually uses (`Dep<T>` from the
//! request's parts, `T` already built in this request). Target: at most
//! 30 ns. Its control is the same loop with `Extension<Arc<T>>`, what a
//! hand-written axum app uses to hand a handler a value made earlier; the
//! two are measured interleaved and their difference is provision's share.
//!
//! With `PROVISION_BENCH_SUMMARY=<file>` the figures are also written there
//! as JSON (`bench-runner` reads them into `bench/RESULTS.md`).
//!
//! ```text
//! cargo bench -p provision-axum --bench layer
//! ```

use std::cell::RefCell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::routing::get;
use criterion::Criterion;
use http::Request;
use http::request::Parts;
use http_body_util::BodyExt;
use provision::integration::{RegistryControl, ScopeControl};
use provision::{Dep, Error, Provide, Registry};
use provision_axum::ProvisionLayer;
use tower_layer::{Identity, Layer};
use tower_service::Service;

/// A request service whose constructor does nothing.
struct Noop;

impl Provide for Noop {
    type Lifetime = provision::Request;
    type Deps = ();
    async fn build(_: ()) -> Result<Self, Error> {
        Ok(Noop)
    }
}

async fn health() -> &'static str {
    "ok"
}

async fn one(Dep(_noop): Dep<Noop>) -> &'static str {
    "ok"
}

const SAMPLES: usize = 50;

/// The same routes in both routers, so that routing costs the same.
fn routes() -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/one", get(one))
}

/// `iters` requests to `path`, each response body collected, timed inside
/// one `block_on` so the runtime's entry is not counted per request.
fn time_requests<S>(
    runtime: &tokio::runtime::Runtime,
    service: &S,
    path: &'static str,
    iters: u64,
) -> Duration
where
    S: Service<Request<Body>, Response = http::Response<Body>, Error = std::convert::Infallible>
        + Clone,
{
    let mut service = service.clone();
    runtime.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let request = Request::get(path).body(Body::empty()).unwrap();
            let response = service.call(request).await.unwrap();
            debug_assert!(response.status().is_success());
            let body = response.into_body().collect().await.unwrap().to_bytes();
            black_box(body);
        }
        start.elapsed()
    })
}

/// Polls a future that is ready at once (no runtime needed).
fn ready<F: std::future::Future>(future: F) -> F::Output {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(future).poll(&mut cx) {
        std::task::Poll::Ready(value) => value,
        std::task::Poll::Pending => panic!("the future was expected to be ready"),
    }
}

/// Request parts, as an extractor sees them.
fn parts() -> Parts {
    Request::get("/one").body(()).unwrap().into_parts().0
}

/// Interleaved measurement, robust to a machine whose load drifts: each
/// round times `per_round` requests of every variant in turn; the result is
/// each variant's median over rounds and the median of its per-round
/// difference from the first variant.
fn paired(rounds: usize, per_round: u64, variants: &[&dyn Fn(u64) -> Duration]) -> Vec<(f64, f64)> {
    let mut per_variant: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); variants.len()];
    for _ in 0..rounds {
        for (i, time) in variants.iter().enumerate() {
            per_variant[i].push(time(per_round).as_nanos() as f64 / per_round as f64);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let base = per_variant[0].clone();
    per_variant
        .into_iter()
        .map(|v| {
            let diffs = v.iter().zip(&base).map(|(x, b)| x - b).collect();
            (median(v), median(diffs))
        })
        .collect()
}

/// The median of the per-iteration times of the last `SAMPLES` samples
/// (criterion's measurement phase; the warm-up comes before).
fn median_ns(samples: &[(u64, Duration)]) -> Option<f64> {
    if samples.len() < SAMPLES {
        return None;
    }
    let mut per_iter: Vec<f64> = samples[samples.len() - SAMPLES..]
        .iter()
        .map(|(iters, d)| d.as_nanos() as f64 / *iters as f64)
        .collect();
    per_iter.sort_by(f64::total_cmp);
    Some((per_iter[SAMPLES / 2 - 1] + per_iter[SAMPLES / 2]) / 2.0)
}

fn main() {
    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(SAMPLES)
        .nresamples(10_000)
        .configure_from_args();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    let registry = runtime
        .block_on(Registry::builder().register::<Noop>().build())
        .expect("the bench registry builds");

    // Each router finished with `with_state(())`, as `axum::serve` finishes
    // it: without it axum turns each handler into a route again on every
    // request, and that cost, not the layer's, is what would be measured.
    let plain = routes().with_state::<()>(());
    let layered = routes()
        .layer(ProvisionLayer::new(registry.clone()))
        .with_state::<()>(());
    let identity = routes().layer(Identity::new()).with_state::<()>(());
    let outside = ProvisionLayer::new(registry.clone()).layer(routes().with_state::<()>(()));

    let mut medians = Vec::new();
    let mut group = c.benchmark_group("layer");
    let mut run = |name: &'static str, time: &dyn Fn(u64) -> Duration| {
        let samples = RefCell::new(Vec::new());
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let elapsed = time(iters);
                samples.borrow_mut().push((iters, elapsed));
                elapsed
            })
        });
        medians.push((name, median_ns(&samples.into_inner())));
    };
    run("axum_only_health", &|n| {
        time_requests(&runtime, &plain, "/health", n)
    });
    run("provision_layer_health", &|n| {
        time_requests(&runtime, &layered, "/health", n)
    });
    run("provision_layer_one_service", &|n| {
        time_requests(&runtime, &layered, "/one", n)
    });
    run("axum_identity_layer_health", &|n| {
        time_requests(&runtime, &identity, "/health", n)
    });
    run("provision_outside_router_health", &|n| {
        time_requests(&runtime, &outside, "/health", n)
    });

    // A memoised hit through the `Dep<T>` extractor, inside the request's
    // scope, `Noop` already built there.
    let scope = registry.open_scope();
    scope.in_scope(|| {
        let dep = ready(Dep::<Noop>::from_request_parts(&mut parts(), &()));
        assert!(dep.is_ok(), "the first extraction builds Noop");
    });
    let extract_samples = RefCell::new(Vec::new());
    group.bench_function("memoised_dep_extractor", |b| {
        b.iter_custom(|iters| {
            let mut parts = parts();
            let elapsed = scope.in_scope(|| {
                let start = Instant::now();
                for _ in 0..iters {
                    // Awaited inside an async block, as axum's handler
                    // futures await their extractors (the extractor's
                    // future is built in place, not moved).
                    let dep = ready(async {
                        Dep::<Noop>::from_request_parts(black_box(&mut parts), &()).await
                    });
                    drop(black_box(dep));
                }
                start.elapsed()
            });
            extract_samples.borrow_mut().push((iters, elapsed));
            elapsed
        })
    });
    let memoised_extractor = median_ns(&extract_samples.into_inner());

    // The same loop with what a hand-written axum app uses to hand a
    // handler a value made earlier: `Extension<Arc<T>>`, an `Arc` cloned
    // out of the request's extensions. Interleaved with `Dep<T>` so that
    // drift cancels; the difference is provision's share of a memoised hit
    // (the loop, the async block and the `Arc` clone and drop are common
    // to both).
    let mut with_extension = parts();
    with_extension.extensions.insert(std::sync::Arc::new(Noop));
    let with_extension = RefCell::new(with_extension);
    let with_dep = RefCell::new(parts());
    let extractors = scope.in_scope(|| {
        paired(
            101,
            20_000,
            &[
                &|n| {
                    let mut parts = with_extension.borrow_mut();
                    let start = Instant::now();
                    for _ in 0..n {
                        let ext = ready(async {
                            axum::Extension::<std::sync::Arc<Noop>>::from_request_parts(
                                black_box(&mut parts),
                                &(),
                            )
                            .await
                        });
                        drop(black_box(ext));
                    }
                    start.elapsed()
                },
                &|n| {
                    let mut parts = with_dep.borrow_mut();
                    let start = Instant::now();
                    for _ in 0..n {
                        let dep = ready(async {
                            Dep::<Noop>::from_request_parts(black_box(&mut parts), &()).await
                        });
                        drop(black_box(dep));
                    }
                    start.elapsed()
                },
            ],
        )
    });
    runtime.block_on(scope.close(provision::Exit::Success(http::StatusCode::OK)));

    group.finish();
    c.final_summary();

    let probe = registry.probe();
    assert_eq!(probe.open_scopes(), 0, "every scope was closed");
    assert_eq!(probe.held::<Noop>(), 0, "every service was released");
    // Nothing measured when filtered out or under `cargo test --benches`.
    if medians.iter().any(|(_, m)| m.is_some()) {
        println!("\nmedian ns per request (router called as a tower service)");
        println!("  {:<34} {:>10} {:>14}", "", "criterion", "interleaved");
        println!("  {:<34} {:>10} {:>14}", "", "median", "median (diff)");
        let interleaved = paired(
            101,
            500,
            &[
                &|n| time_requests(&runtime, &plain, "/health", n),
                &|n| time_requests(&runtime, &layered, "/health", n),
                &|n| time_requests(&runtime, &layered, "/one", n),
                &|n| time_requests(&runtime, &identity, "/health", n),
                &|n| time_requests(&runtime, &outside, "/health", n),
            ],
        );
        for ((name, median), (ns, diff)) in medians.iter().zip(&interleaved) {
            let median = median.map_or("-".to_owned(), |m| format!("{m:.1}"));
            println!("  {name:<34} {median:>10} {ns:>7.1} ({diff:+.1})");
        }
        println!("  (diff: interleaved median of per-round differences from axum_only_health)");
        let [_, (_, layer), (_, one), (_, identity), _] = interleaved[..] else {
            unreachable!("five variants")
        };
        println!("\n  layer overhead, no service (target <= 150 ns): {layer:.1} ns");
        println!("    of which axum's Router::layer itself (identity control): {identity:.1} ns");
        println!(
            "  one request service, over no service: {:.1} ns",
            one - layer
        );
        if let Some(ns) = memoised_extractor {
            println!("  memoised hit through Dep<T> (target <= 30 ns): {ns:.1} ns");
        }
        let [(extension, _), (dep, dep_over_extension)] = extractors[..] else {
            unreachable!("two variants")
        };
        println!(
            "    interleaved: Dep<T> {dep:.1} ns, Extension<Arc<T>> {extension:.1} ns, \
             provision's share {dep_over_extension:.1} ns"
        );
        let mut rows: Vec<(String, f64)> = medians
            .iter()
            .filter_map(|(name, m)| m.map(|m| (name.to_string(), m)))
            .collect();
        rows.extend(memoised_extractor.map(|m| ("memoised_dep_extractor".to_owned(), m)));
        rows.push(("interleaved_layer_overhead".to_owned(), layer));
        rows.push(("interleaved_identity_overhead".to_owned(), identity));
        rows.push(("interleaved_one_service_over_none".to_owned(), one - layer));
        rows.push(("interleaved_outside_overhead".to_owned(), interleaved[4].1));
        rows.push(("interleaved_extension_extractor".to_owned(), extension));
        rows.push(("interleaved_dep_extractor".to_owned(), dep));
        rows.push((
            "interleaved_dep_over_extension".to_owned(),
            dep_over_extension,
        ));
        write_summary(&rows);
    }
    assert_eq!(probe.held::<Noop>(), 0, "every service was released");
    runtime.block_on(registry.shutdown());
}

/// Writes the figures as a JSON object to `$PROVISION_BENCH_SUMMARY`, if set
/// (for `bench-runner`).
fn write_summary(rows: &[(String, f64)]) {
    let Some(path) = std::env::var_os("PROVISION_BENCH_SUMMARY") else {
        return;
    };
    let fields: Vec<String> = rows
        .iter()
        .map(|(name, ns)| format!("  \"{name}\": {ns:.3}"))
        .collect();
    std::fs::write(&path, format!("{{\n{}\n}}\n", fields.join(",\n")))
        .expect("the summary file can be written");
}
