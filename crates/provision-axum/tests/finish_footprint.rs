//! A `finish` route's run holds the route's future once.
//!
//! `Finish` boxes the route's run (so that it can move onto a task if its
//! client leaves). A run written as an `async fn` taking the route kept it
//! as its argument, again inside the scope's future, and again where that
//! future awaited it: three copies in the box, each made on the first
//! poll. Here the route's own future holds 16 KiB, and the largest
//! allocation a request makes must stay under two of them.
//!
//! Its own test binary: the allocator that watches is the whole process's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http::{Request, Response, StatusCode};
use provision_axum::{Finish, ProvisionLayer};
use tower_service::Service;

/// The system allocator, noting the largest allocation of each thread.
struct Largest;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: allocations during the thread's teardown go unnoted.
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
}

// SAFETY: every call is passed on to `System` unchanged.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

/// Bytes the route's future holds across its wait.
const HELD: usize = 16 * 1024;

/// A route whose future is large and its own (axum boxes a handler's
/// future; a plain tower service's future is what `Finish` gets).
#[derive(Clone)]
struct LargeRoute;

impl Service<Request<Body>> for LargeRoute {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = impl_future::Large;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<Body>) -> Self::Future {
        impl_future::Large::default()
    }
}

mod impl_future {
    #![allow(clippy::large_stack_arrays)]
    use super::*;

    /// Holds `HELD` bytes, waits once, then answers with their sum.
    pub struct Large {
        bytes: [u8; HELD],
        waited: bool,
    }

    impl Default for Large {
        fn default() -> Large {
            Large {
                bytes: [1; HELD],
                waited: false,
            }
        }
    }

    impl Future for Large {
        type Output = Result<Response<Body>, Infallible>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let this = self.get_mut();
            if !this.waited {
                this.waited = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let sum: usize = this.bytes.iter().map(|&b| usize::from(b)).sum();
            Poll::Ready(Ok(Response::new(Body::from(sum.to_string()))))
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_finish_route_holds_its_future_once() {
    assert!(std::mem::size_of::<impl_future::Large>() >= HELD);
    let registry = provision::Registry::builder().build().await.unwrap();
    let finish = Finish::within(Duration::from_secs(30));
    let mut app: Router = Router::new()
        .route_service("/large", tower_layer::Layer::layer(&finish, LargeRoute))
        .layer(ProvisionLayer::new(registry.clone()));

    LARGEST.with(|largest| largest.set(0));
    let response = app
        .call(Request::post("/large").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let largest = LARGEST.with(Cell::get);

    assert_eq!(response.status(), StatusCode::OK);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(body, HELD.to_string(), "the route ran to its answer");
    assert_eq!(finish.outcomes().answered, 1, "through `Finish`");
    // The run is boxed, so the route is in some allocation: the measure
    // sees it.
    assert!(largest >= HELD, "largest allocation {largest} bytes");
    assert!(
        largest < 2 * HELD,
        "the largest allocation was {largest} bytes for a route holding {HELD}: \
         the route's future is held more than once"
    );
}
