//! The cost of a request scope, without any runtime: opening and closing an
//! empty one, the first resolution of a request service (with and without
//! the scope around it), a memoised hit, releasing services, and the
//! request-bound check.
//!
//! Targets: an empty scope costs at most 150 ns more than plain axum (see
//! `provision-axum`'s `layer` bench for the end-to-end figure); a memoised
//! hit at most 30 ns.
//!
//! ```text
//! cargo bench -p provision --bench scope
//! ```
//!
//! Every benchmark times its own loop (`iter_custom`) so that the median ns
//! per iteration can be printed, with derived differences, at the end. With
//! `PROVISION_BENCH_SUMMARY=<file>` the medians are also written there as
//! JSON (`bench-runner` reads them into `bench/RESULTS.md`).

use std::cell::RefCell;
use std::future::Future;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};
use http::StatusCode;
use provision::integration::{RegistryControl, ScopeControl};
use provision::{Error, Exit, Provide, Registry, Request, RequestBound, RequestScope};

/// Polls `future` to completion with a no-op waker: everything here is
/// ready at once, so no runtime is needed.
fn block_on<F: Future>(future: F) -> F::Output {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
    }
}

/// A request service whose constructor does nothing.
struct Noop;

impl Provide for Noop {
    type Lifetime = Request;
    type Deps = ();
    async fn build(_: ()) -> Result<Self, Error> {
        Ok(Noop)
    }
}

/// Eight distinct request services with empty constructors.
struct Svc<const N: usize>;

impl<const N: usize> Provide for Svc<N> {
    type Lifetime = Request;
    type Deps = ();
    async fn build(_: ()) -> Result<Self, Error> {
        Ok(Svc)
    }
}

const OK: Exit = Exit::Success(StatusCode::OK);
const SAMPLES: usize = 50;
/// Scopes prepared (outside the timer) per timed batch in the release benches.
const BATCH: u64 = 512;

fn config() -> Criterion {
    Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(SAMPLES)
        .nresamples(10_000)
}

/// Runs one benchmark and returns the median ns per iteration over its
/// measurement samples (`None` if it was filtered out or ran in test mode).
fn bench(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    mut routine: impl FnMut(u64) -> Duration,
) -> Option<f64> {
    let samples = RefCell::new(Vec::new());
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let elapsed = routine(iters);
            samples.borrow_mut().push((iters, elapsed));
            elapsed
        })
    });
    median_ns(&samples.into_inner())
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

/// A scope with `Svc<0>` .. `Svc<{n-1}>` built in it.
fn scope_with(registry: &Registry, n: usize) -> RequestScope {
    let scope = registry.open_scope();
    block_on(async {
        macro_rules! build {
            ($($i:literal)*) => {$(
                if $i < n {
                    drop(scope.resolve::<Svc<$i>>().await.unwrap());
                }
            )*};
        }
        build!(0 1 2 3 4 5 6 7);
    });
    scope
}

/// Times closing scopes prepared by `setup`, `BATCH` at a time; the setup
/// and the drop of the closed scopes are not timed.
fn time_release(iters: u64, setup: impl Fn() -> RequestScope) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(BATCH);
        left -= n;
        let scopes: Vec<RequestScope> = (0..n).map(|_| setup()).collect();
        let start = Instant::now();
        for scope in &scopes {
            block_on(scope.close(OK));
        }
        total += start.elapsed();
        drop(scopes);
    }
    total
}

fn main() {
    let mut c = config().configure_from_args();
    let registry = block_on(
        Registry::builder()
            .register::<Noop>()
            .register::<Svc<0>>()
            .register::<Svc<1>>()
            .register::<Svc<2>>()
            .register::<Svc<3>>()
            .register::<Svc<4>>()
            .register::<Svc<5>>()
            .register::<Svc<6>>()
            .register::<Svc<7>>()
            .build(),
    )
    .expect("the bench registry builds");

    let mut group = c.benchmark_group("scope");

    // (a) Open and close a scope in which nothing was asked for.
    let empty = bench(&mut group, "empty_open_close", |iters| {
        let start = Instant::now();
        for _ in 0..iters {
            let scope = registry.open_scope();
            black_box(scope.close_if_idle());
        }
        start.elapsed()
    });

    // (b) Open, first resolution of a no-op request service, close
    // (settle is not called; close runs its default release step).
    let first = bench(&mut group, "open_first_resolve_close", |iters| {
        let start = Instant::now();
        for _ in 0..iters {
            let scope = registry.open_scope();
            let dep = block_on(scope.resolve::<Noop>()).unwrap();
            drop(black_box(dep));
            block_on(scope.close(OK));
        }
        start.elapsed()
    });

    // (b') The first resolution alone: scopes are opened before and closed
    // after the timed part, so this is the resolution machinery only (slot
    // lookup, build rendezvous, recording the acquisition, the `Dep`); the
    // constructor is an `async fn` that returns at once.
    let first_only = bench(&mut group, "first_resolve", |iters| {
        let mut total = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let n = left.min(BATCH);
            left -= n;
            let scopes: Vec<RequestScope> = (0..n).map(|_| registry.open_scope()).collect();
            let start = Instant::now();
            for scope in &scopes {
                drop(black_box(block_on(scope.resolve::<Noop>()).unwrap()));
            }
            total += start.elapsed();
            for scope in &scopes {
                block_on(scope.close(OK));
            }
        }
        total
    });

    // (c) Memoised hits on an already-built service.
    let warm = registry.open_scope();
    drop(block_on(warm.resolve::<Noop>()).unwrap());
    let cached = bench(&mut group, "memoised_cached", |iters| {
        let start = Instant::now();
        for _ in 0..iters {
            black_box(black_box(&warm).cached::<Noop>());
        }
        start.elapsed()
    });
    let resolved = bench(&mut group, "memoised_resolve", |iters| {
        let start = Instant::now();
        for _ in 0..iters {
            black_box(block_on(black_box(&warm).resolve::<Noop>())).ok();
        }
        start.elapsed()
    });
    block_on(warm.close(OK));

    // (d) Release (close) of a scope holding 1 or 8 services, built
    // outside the timed part.
    let release_1 = bench(&mut group, "release_1", |iters| {
        time_release(iters, || scope_with(&registry, 1))
    });
    let release_8 = bench(&mut group, "release_8", |iters| {
        time_release(iters, || scope_with(&registry, 8))
    });

    // (e) RequestBound::get inside the scope that created the value.
    let scope = registry.open_scope();
    let bound_get = bench(&mut group, "request_bound_get", |iters| {
        scope.in_scope(|| {
            let bound = RequestBound::new(7u64);
            let start = Instant::now();
            for _ in 0..iters {
                black_box(black_box(&bound).get().is_ok());
            }
            start.elapsed()
        })
    });
    block_on(scope.close(OK));

    group.finish();
    c.final_summary();

    let rows = [
        ("(a) empty scope: open + close_if_idle", empty),
        ("(b) open + first resolve + close", first),
        ("(b') first resolve only (scope outside)", first_only),
        ("(c) memoised hit: cached::<T>()", cached),
        ("(c) memoised hit: resolve::<T>() polled", resolved),
        ("(d) release 1 service (close)", release_1),
        ("(d) release 8 services (close)", release_8),
        ("(e) RequestBound::get, same scope", bound_get),
    ];
    write_summary(&[
        ("empty_open_close", empty),
        ("open_first_resolve_close", first),
        ("first_resolve", first_only),
        ("memoised_cached", cached),
        ("memoised_resolve", resolved),
        ("release_1", release_1),
        ("release_8", release_8),
        ("request_bound_get", bound_get),
    ]);
    if rows.iter().any(|(_, m)| m.is_some()) {
        println!("\nmedian ns per iteration");
        for (name, median) in rows {
            if let Some(ns) = median {
                println!("  {name:<44} {ns:>8.1}");
            }
        }
        if let (Some(first), Some(empty)) = (first, empty) {
            println!(
                "  {:<44} {:>8.1}",
                "(b) - (a): first resolution + its release",
                first - empty
            );
        }
        if let (Some(r8), Some(r1)) = (release_8, release_1) {
            println!(
                "  {:<44} {:>8.1}",
                "(d) per extra service: (8 - 1) / 7",
                (r8 - r1) / 7.0
            );
        }
    }
}

/// Writes the medians as a JSON object to `$PROVISION_BENCH_SUMMARY`, if set
/// (for `bench-runner`); benchmarks that did not run are left out.
fn write_summary(rows: &[(&str, Option<f64>)]) {
    let Some(path) = std::env::var_os("PROVISION_BENCH_SUMMARY") else {
        return;
    };
    let fields: Vec<String> = rows
        .iter()
        .filter_map(|(name, ns)| ns.map(|ns| format!("  \"{name}\": {ns:.3}")))
        .collect();
    std::fs::write(&path, format!("{{\n{}\n}}\n", fields.join(",\n")))
        .expect("the summary file can be written");
}
