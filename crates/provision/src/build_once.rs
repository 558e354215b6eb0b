//! The rendezvous for one in-flight build: the first task to ask builds, the
//! others wait here and receive the same result, success or failure.

use std::future::poll_fn;
use std::sync::{Mutex, PoisonError};
use std::task::Poll;

use crate::Error;
use crate::service::AnyArc;
use crate::wait_list::WaitList;

pub(crate) struct BuildOnce {
    state: Mutex<State>,
}

enum State {
    Pending(WaitList),
    Done(Result<AnyArc, Error>),
    /// The building task was dropped before it finished (its request was
    /// cancelled); a waiter should try to build the service itself.
    Abandoned,
}

impl BuildOnce {
    pub(crate) fn new() -> BuildOnce {
        BuildOnce {
            state: Mutex::new(State::Pending(WaitList::default())),
        }
    }

    pub(crate) fn complete(&self, result: Result<AnyArc, Error>) {
        self.finish(State::Done(result));
    }

    pub(crate) fn abandon(&self) {
        self.finish(State::Abandoned);
    }

    fn finish(&self, outcome: State) {
        let previous = std::mem::replace(&mut *self.lock(), outcome);
        if let State::Pending(waiters) = previous {
            waiters.wake_all();
        }
    }

    /// Waits for the build. `None` means it was abandoned.
    pub(crate) async fn wait(&self) -> Option<Result<AnyArc, Error>> {
        poll_fn(|cx| {
            let mut state = self.lock();
            match &mut *state {
                State::Pending(waiters) => {
                    waiters.register(cx.waker());
                    Poll::Pending
                }
                State::Done(result) => Poll::Ready(Some(result.clone())),
                State::Abandoned => Poll::Ready(None),
            }
        })
        .await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state half-written
        // (every critical section is a single assignment or push).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
