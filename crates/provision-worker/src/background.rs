//! [`background`]: release steps handed to the fetch event's `wait_until`,
//! each bounded in time.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use provision_axum::Background;
use wasm_bindgen::{JsCast, JsValue};
use worker::send::{SendFuture, SendWrapper};
use worker::worker_sys::Context as JsContext;
use worker::{Context, ScheduleContext};

/// How long a release handed to `wait_until` may run. Cloudflare keeps an
/// event's `waitUntil` work alive for about 30 seconds after the response
/// is sent or the client disconnects, then cancels it; a release still
/// running by then would be cut off at an unknown point, so it is
/// abandoned a little earlier, on purpose, and said so.
pub const RELEASE_BUDGET: Duration = Duration::from_secs(25);

/// The longest a `finish` route (`provision_axum::Finish`) may run on
/// Workers, whatever its own deadline: it runs through `wait_until`, bounded
/// in all by [`RELEASE_BUDGET`], and a route cut at this point still has
/// the 5 s left to roll back and release its services. A route's deadline
/// is kept with a JavaScript timer ([`background`]); past it the route is
/// cut, rolled back, released with `Exit::Cancelled` and counted
/// (`Finish::outcomes`), and a client still there gets a `503`.
pub const FINISH_BUDGET: Duration = Duration::from_secs(20);

static ABANDONED: AtomicU64 = AtomicU64::new(0);

/// The JavaScript timer (`setTimeout`, through `worker::Delay`) as
/// provision's clock: it keeps a `finish` route's deadline.
struct JsTimer;

impl provision::Timer for JsTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        // Workers runs an isolate on one thread: the timer never leaves it.
        Box::pin(SendFuture::new(worker::Delay::from(duration)))
    }
}

/// How many background releases this isolate abandoned because they
/// overran [`RELEASE_BUDGET`] (reset with the instance).
pub fn abandoned_releases() -> u64 {
    ABANDONED.load(Ordering::Relaxed)
}

/// A [`Background`] that hands each task to this event's `wait_until`:
/// the task runs in the event's own I/O context (so it may close the
/// request's sockets), and the runtime keeps the event alive until it has
/// finished, after the response has been sent or the client has gone away.
/// A task that runs longer than [`RELEASE_BUDGET`] is abandoned (dropped),
/// logged and counted ([`abandoned_releases`]), so it never holds the
/// event, or the isolate, for ever. Its clock is a JavaScript timer, which
/// keeps the deadline of a `finish` route (`provision_axum::Finish`), at
/// most [`FINISH_BUDGET`].
///
/// [`serve`](crate::serve) puts one in every request's extensions, where
/// `provision-axum` finds it for the releases it cannot await (a request
/// or response body dropped before the end, as when the client leaves).
pub fn background(ctx: &impl WaitUntil) -> Background {
    ctx.background()
}

/// An event's context, whose `wait_until` keeps work alive after the event
/// answered: `worker::Context` (fetch, queue) and `worker::ScheduleContext`
/// (cron triggers).
pub trait WaitUntil {
    /// A [`Background`] on this context (see [`background`]).
    fn background(&self) -> Background;
}

impl WaitUntil for Context {
    fn background(&self) -> Background {
        // `worker::Context` is not `Clone`; the JS object behind it is.
        let js: &JsContext = self.as_ref();
        let js: &JsValue = js.as_ref();
        let ctx = Context::new(js.clone().unchecked_into());
        Background::new(move |task| ctx.wait_until(bounded(task, RELEASE_BUDGET)))
            .with_clock(JsTimer, FINISH_BUDGET)
    }
}

impl WaitUntil for ScheduleContext {
    fn background(&self) -> Background {
        // Used from this isolate's single thread only.
        let ctx = SendWrapper(self.clone());
        Background::new(move |task| ctx.wait_until(bounded(task, RELEASE_BUDGET)))
            .with_clock(JsTimer, FINISH_BUDGET)
    }
}

/// `task`, abandoned after `budget`.
async fn bounded(task: impl Future<Output = ()>, budget: Duration) {
    let mut task = pin!(task);
    let mut timer = pin!(worker::Delay::from(budget));
    let finished = poll_fn(|cx| {
        if task.as_mut().poll(cx).is_ready() {
            return Poll::Ready(true);
        }
        timer.as_mut().poll(cx).map(|()| false)
    })
    .await;
    if !finished {
        let total = ABANDONED.fetch_add(1, Ordering::Relaxed) + 1;
        worker::console_error!(
            "a release step overran {RELEASE_BUDGET:?} in the background and was abandoned \
             ({total} in this isolate); what it held is left to the runtime"
        );
    }
}
