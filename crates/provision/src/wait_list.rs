//! [`WaitList`]: the tasks waiting for something to happen, kept under their
//! owner's lock and woken once it has.

use std::task::Waker;

/// The wakers of the tasks waiting for one event (a shutdown, the end of a
/// scope's tasks, a build). Its owner keeps it under its own lock, takes it
/// out (`std::mem::take`) when the event happens, and wakes it after
/// releasing the lock, so a woken task never finds the lock held.
#[derive(Default)]
pub(crate) struct WaitList(Vec<Waker>);

impl WaitList {
    /// Remembers `waker`, once: a task polled again while it waits is not
    /// added again, so repeated polls cannot grow the list.
    pub(crate) fn register(&mut self, waker: &Waker) {
        if !self.0.iter().any(|w| w.will_wake(waker)) {
            self.0.push(waker.clone());
        }
    }

    /// Wakes every waiter.
    pub(crate) fn wake_all(self) {
        self.0.into_iter().for_each(Waker::wake);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::task::Wake;

    struct Count(AtomicU32);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_task_registered_twice_is_woken_once_and_every_task_is_woken() {
        let (a, b) = (
            Arc::new(Count(AtomicU32::new(0))),
            Arc::new(Count(AtomicU32::new(0))),
        );
        let (wa, wb) = (Waker::from(a.clone()), Waker::from(b.clone()));
        let mut list = WaitList::default();
        list.register(&wa);
        list.register(&wa.clone());
        list.register(&wb);
        assert_eq!(list.0.len(), 2, "the same task is remembered once");
        list.wake_all();
        assert_eq!(
            (a.0.load(Ordering::SeqCst), b.0.load(Ordering::SeqCst)),
            (1, 1)
        );
    }
}
