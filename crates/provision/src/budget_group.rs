//! [`BudgetGroup`]: caps on how many values of a service a group of routes
//! holds at once, across every request of the app, and the permits that
//! enforce them (a first-come, first-served semaphore with no runtime of its
//! own, so the core still builds for wasm32).

use std::any::TypeId;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::{Provide, ServiceInfo};

/// Caps shared by a group of routes: at most `M` values of a service held
/// at once by all the requests of all the routes whose [`Budget`](crate::Budget)
/// names this group. Cloning gives another handle to the same caps.
///
/// A value takes a slot when its build starts and gives it back once the
/// request that built it has released everything (after its release step:
/// a connection is back in the pool or closed by then). A build that finds
/// no free slot waits for one, first come first served; the wait counts
/// toward the request's [`acquire_wait`](crate::Budget::acquire_wait), and a
/// request that gets no slot within it is answered with a `503`. Without an
/// acquire-wait limit a request waits for a slot as long as it takes (so
/// set one: a request holding a slot while it waits for a second one of the
/// same group can otherwise wait for ever).
///
/// ```
/// use provision::{Budget, BudgetGroup, Error, Provide, Request};
///
/// struct Conn;
/// impl Provide for Conn {
///     type Lifetime = Request;
///     type Deps = ();
///     async fn build(_: ()) -> Result<Self, Error> { Ok(Conn) }
/// }
///
/// let reports = BudgetGroup::new("reports").max_held::<Conn>(4);
/// let budget = Budget::new().group(&reports); // one layer, on every report route
/// assert_eq!(reports.held::<Conn>(), 0);
/// assert_eq!(reports.max_held_of::<Conn>(), Some(4));
/// ```
#[derive(Clone)]
pub struct BudgetGroup {
    inner: Arc<GroupInner>,
}

#[derive(Clone)]
struct GroupInner {
    name: &'static str,
    caps: Vec<Arc<Cap>>,
}

impl BudgetGroup {
    /// A group named `name` (in error messages and logs) with no caps yet.
    pub fn new(name: &'static str) -> BudgetGroup {
        BudgetGroup {
            inner: Arc::new(GroupInner {
                name,
                caps: Vec::new(),
            }),
        }
    }

    /// At most `max` values of service `T` held at once by the group's
    /// requests. Set caps before handing the group to budgets: a clone
    /// taken earlier does not see caps added later.
    pub fn max_held<T: Provide>(mut self, max: usize) -> BudgetGroup {
        let inner = Arc::make_mut(&mut self.inner);
        let info = ServiceInfo::of::<T>();
        inner.caps.retain(|c| c.service.type_id() != info.type_id());
        inner.caps.push(Arc::new(Cap {
            group: inner.name,
            service: info,
            max,
            state: Mutex::new(CapState::default()),
        }));
        self
    }

    /// The group's name.
    pub fn name(&self) -> &'static str {
        self.inner.name
    }

    /// The cap on `T`, if the group has one.
    pub fn max_held_of<T: Provide>(&self) -> Option<usize> {
        self.cap(TypeId::of::<T>()).map(|c| c.max)
    }

    /// Values of `T` the group's requests hold right now (slots taken).
    pub fn held<T: Provide>(&self) -> usize {
        self.cap(TypeId::of::<T>()).map_or(0, |c| c.lock().held)
    }

    /// The most values of `T` the group's requests have held at once.
    pub fn peak<T: Provide>(&self) -> usize {
        self.cap(TypeId::of::<T>()).map_or(0, |c| c.lock().peak)
    }

    /// Requests waiting for a slot of `T` right now.
    pub fn waiting<T: Provide>(&self) -> usize {
        self.cap(TypeId::of::<T>())
            .map_or(0, |c| c.lock().queue.len())
    }

    pub(crate) fn cap(&self, id: TypeId) -> Option<&Arc<Cap>> {
        self.inner.caps.iter().find(|c| c.service.type_id() == id)
    }

    pub(crate) fn same(&self, other: &BudgetGroup) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Debug for BudgetGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("BudgetGroup");
        d.field("name", &self.inner.name);
        for cap in &self.inner.caps {
            d.field(cap.service.name(), &cap.max);
        }
        d.finish()
    }
}

/// One cap: a service, its maximum, and who holds and waits for slots.
pub(crate) struct Cap {
    pub(crate) group: &'static str,
    pub(crate) service: &'static ServiceInfo,
    pub(crate) max: usize,
    state: Mutex<CapState>,
}

#[derive(Default)]
struct CapState {
    held: usize,
    peak: usize,
    next_ticket: u64,
    /// Waiting builds, oldest first.
    queue: VecDeque<(u64, Waker)>,
    /// Tickets handed a slot by a release that their owner has not picked
    /// up yet: the slot stays taken on their behalf.
    granted: Vec<u64>,
}

impl Cap {
    fn lock(&self) -> MutexGuard<'_, CapState> {
        // No user code runs under this lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a slot, first come first served.
    pub(crate) fn acquire(self: &Arc<Cap>) -> Acquire {
        Acquire {
            cap: self.clone(),
            ticket: None,
        }
    }

    /// Gives a slot back: to the oldest waiter if there is one (the slot
    /// stays taken), or to the pool.
    fn give_back(&self) {
        let next = {
            let mut state = self.lock();
            match state.queue.pop_front() {
                Some((ticket, waker)) => {
                    state.granted.push(ticket);
                    Some(waker)
                }
                None => {
                    state.held -= 1;
                    None
                }
            }
        };
        if let Some(waker) = next {
            waker.wake();
        }
    }
}

/// A slot of a [`Cap`], given back when dropped.
pub(crate) struct Permit {
    cap: Arc<Cap>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.cap.give_back();
    }
}

/// The wait for a slot ([`Cap::acquire`]).
pub(crate) struct Acquire {
    cap: Arc<Cap>,
    ticket: Option<u64>,
}

impl Future for Acquire {
    type Output = Permit;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Permit> {
        let this = &mut *self;
        let mut state = this.cap.lock();
        match this.ticket {
            None => {
                if state.held < this.cap.max && state.queue.is_empty() {
                    state.held += 1;
                    state.peak = state.peak.max(state.held);
                    drop(state);
                    return Poll::Ready(Permit {
                        cap: this.cap.clone(),
                    });
                }
                let ticket = state.next_ticket;
                state.next_ticket += 1;
                state.queue.push_back((ticket, cx.waker().clone()));
                this.ticket = Some(ticket);
                Poll::Pending
            }
            Some(ticket) => {
                if let Some(at) = state.granted.iter().position(|t| *t == ticket) {
                    state.granted.swap_remove(at);
                    this.ticket = None;
                    drop(state);
                    return Poll::Ready(Permit {
                        cap: this.cap.clone(),
                    });
                }
                if let Some((_, waker)) = state.queue.iter_mut().find(|(t, _)| *t == ticket)
                    && !waker.will_wake(cx.waker())
                {
                    *waker = cx.waker().clone();
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        // Given up while waiting (the request was cut, or its acquire
        // budget ran out): leave the queue, or pass on a slot granted
        // meanwhile.
        let Some(ticket) = self.ticket else { return };
        let granted = {
            let mut state = self.cap.lock();
            match state.granted.iter().position(|t| *t == ticket) {
                Some(at) => {
                    state.granted.swap_remove(at);
                    true
                }
                None => {
                    state.queue.retain(|(t, _)| *t != ticket);
                    false
                }
            }
        };
        if granted {
            self.cap.give_back();
        }
    }
}
