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

/// Like [`WaitList`], for waiters that may stop waiting before the event
/// (a wait for shutdown dropped when its job or route ends): each waiter
/// holds the key of its entry and removes it when dropped, so the list
/// holds only the tasks still waiting and does not grow with every one
/// that ever waited.
#[derive(Default)]
pub(crate) struct KeyedWaitList {
    entries: Vec<Option<Waker>>,
    /// Indices of empty entries, reused before the list grows.
    free: Vec<usize>,
}

impl KeyedWaitList {
    /// Remembers `waker` under `key` (given one the first time): a task
    /// polled again replaces its own entry, never adds a second one.
    pub(crate) fn register(&mut self, key: &mut Option<usize>, waker: &Waker) {
        if let Some(Some(held)) = key.and_then(|k| self.entries.get_mut(k)) {
            if !held.will_wake(waker) {
                held.clone_from(waker);
            }
            return;
        }
        let k = match self.free.pop() {
            Some(k) => {
                self.entries[k] = Some(waker.clone());
                k
            }
            None => {
                self.entries.push(Some(waker.clone()));
                self.entries.len() - 1
            }
        };
        *key = Some(k);
    }

    /// Forgets the waiter with `key`. A key from before the list was woken
    /// (and so replaced) finds nothing, or an empty entry, and does nothing.
    pub(crate) fn remove(&mut self, key: usize) {
        if let Some(entry) = self.entries.get_mut(key)
            && entry.take().is_some()
        {
            self.free.push(key);
        }
    }

    /// Wakes every waiter still there.
    pub(crate) fn wake_all(self) {
        self.entries.into_iter().flatten().for_each(Waker::wake);
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

    #[test]
    fn a_keyed_waiter_that_leaves_is_forgotten_and_its_entry_reused() {
        let (a, b) = (
            Arc::new(Count(AtomicU32::new(0))),
            Arc::new(Count(AtomicU32::new(0))),
        );
        let (wa, wb) = (Waker::from(a.clone()), Waker::from(b.clone()));
        let mut list = KeyedWaitList::default();
        let (mut ka, mut kb) = (None, None);
        list.register(&mut ka, &wa);
        list.register(&mut ka, &wa);
        list.register(&mut kb, &wb);
        list.remove(ka.unwrap());
        assert_eq!(Arc::strong_count(&a), 2, "only the test's waker is left");
        let mut kc = None;
        list.register(&mut kc, &wa);
        assert_eq!(kc, ka, "the freed entry is reused");
        assert_eq!(list.entries.len(), 2);
        list.wake_all();
        assert_eq!(
            (a.0.load(Ordering::SeqCst), b.0.load(Ordering::SeqCst)),
            (1, 1)
        );
    }
}
