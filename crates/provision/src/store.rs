//! The values of one scope (a request's, or the app's): memoised slots, the
//! order in which values were acquired, and their release.

use std::any::TypeId;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::build_once::BuildOnce;
use crate::probe::ServiceStats;
use std::future::Future;

use crate::service::{AnyArc, ServiceInfo};
use crate::{Error, Exit};

/// A value that was built in a scope and must be released with it.
pub(crate) struct Acquired {
    pub(crate) info: &'static ServiceInfo,
    pub(crate) value: AnyArc,
    pub(crate) stats: Arc<ServiceStats>,
}

pub(crate) struct Store {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Memoised services. A scope holds a handful, so a vector scan beats
    /// hashing.
    slots: Vec<(TypeId, Slot)>,
    /// Everything built here, in the order the builds finished: a service's
    /// dependencies always come before it, so releasing in reverse releases
    /// dependents first.
    acquired: Vec<Acquired>,
    closed: bool,
}

enum Slot {
    Building(Arc<BuildOnce>),
    Ready(AnyArc),
}

enum Step {
    Wait(Arc<BuildOnce>),
    Build(Arc<BuildOnce>),
}

impl Store {
    pub(crate) fn new() -> Store {
        Store {
            state: Mutex::new(State::default()),
        }
    }

    /// The memoised value of a service, if it has been built.
    #[inline]
    pub(crate) fn get(&self, id: TypeId) -> Option<AnyArc> {
        let state = self.lock();
        state.slots.iter().find_map(|(t, slot)| match slot {
            Slot::Ready(value) if *t == id => Some(value.clone()),
            _ => None,
        })
    }

    /// Puts a ready value in a slot without acquiring it: it has no release
    /// step here (the integration owns it, as with the request head).
    pub(crate) fn seed(&self, id: TypeId, value: AnyArc) {
        let mut state = self.lock();
        if !state.slots.iter().any(|(t, _)| *t == id) {
            state.slots.push((id, Slot::Ready(value)));
        }
    }

    pub(crate) fn has_acquisitions(&self) -> bool {
        !self.lock().acquired.is_empty()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// The memoised value of `info`'s service, built by `build` if no task has
    /// built it yet. Concurrent callers share one build and its result; a
    /// failed build is not memoised.
    pub(crate) async fn get_or_build<Fut>(
        &self,
        info: &'static ServiceInfo,
        stats: &Arc<ServiceStats>,
        build: impl FnOnce() -> Fut,
    ) -> Result<AnyArc, Error>
    where
        Fut: Future<Output = Result<AnyArc, Error>>,
    {
        let id = info.type_id();
        let mut build = Some(build);
        loop {
            let step = {
                let mut state = self.lock();
                if state.closed {
                    return Err(closed_error(info));
                }
                match state.slots.iter().find(|(t, _)| *t == id) {
                    Some((_, Slot::Ready(value))) => return Ok(value.clone()),
                    Some((_, Slot::Building(cell))) => Step::Wait(cell.clone()),
                    None => {
                        let cell = Arc::new(BuildOnce::new());
                        state.slots.push((id, Slot::Building(cell.clone())));
                        Step::Build(cell)
                    }
                }
            };
            match step {
                Step::Wait(cell) => match cell.wait().await {
                    Some(result) => return result,
                    None => continue,
                },
                Step::Build(cell) => {
                    let build = build.take().expect("a caller builds at most once");
                    let mut abandon = AbandonOnDrop {
                        store: self,
                        id,
                        cell: &cell,
                        armed: true,
                    };
                    let result = build().await;
                    abandon.armed = false;
                    return self.finish_build(info, stats, &cell, result).await;
                }
            }
        }
    }

    async fn finish_build(
        &self,
        info: &'static ServiceInfo,
        stats: &Arc<ServiceStats>,
        cell: &Arc<BuildOnce>,
        result: Result<AnyArc, Error>,
    ) -> Result<AnyArc, Error> {
        let id = info.type_id();
        let late = {
            let mut state = self.lock();
            state.slots.retain(|(t, slot)| {
                !(*t == id && matches!(slot, Slot::Building(c) if Arc::ptr_eq(c, cell)))
            });
            match &result {
                Ok(value) if !state.closed => {
                    state.slots.push((id, Slot::Ready(value.clone())));
                    state.acquired.push(Acquired {
                        info,
                        value: value.clone(),
                        stats: stats.clone(),
                    });
                    None
                }
                Ok(value) => Some(value.clone()),
                Err(_) => None,
            }
        };
        match late {
            None => {
                cell.complete(result.clone());
                result
            }
            Some(value) => {
                // The scope closed while this build ran: nobody will release
                // the value later, so release it now.
                let error = closed_error(info);
                cell.complete(Err(error.clone()));
                drop(result);
                release_all(
                    vec![Acquired {
                        info,
                        value,
                        stats: stats.clone(),
                    }],
                    Exit::Cancelled,
                    None,
                )
                .await;
                Err(error)
            }
        }
    }

    /// Records a value that is not memoised (a transient) and hands back a
    /// handle to it. If the scope has closed meanwhile, the value is
    /// released at once: `acquired` must be the only handle, or it could not
    /// be.
    pub(crate) async fn record(&self, acquired: Acquired) -> Result<AnyArc, Error> {
        let late = {
            let mut state = self.lock();
            if state.closed {
                acquired
            } else {
                let value = acquired.value.clone();
                state.acquired.push(acquired);
                return Ok(value);
            }
        };
        let error = closed_error(late.info);
        release_all(vec![late], Exit::Cancelled, None).await;
        Err(error)
    }

    /// Closes the store if nothing was acquired in it, atomically: a build
    /// finishing at the same moment either lands before (and this refuses)
    /// or finds the store closed (and releases its value itself).
    pub(crate) fn close_if_empty(&self) -> bool {
        let mut state = self.lock();
        if !state.acquired.is_empty() {
            return false;
        }
        state.closed = true;
        state.slots.clear();
        true
    }

    /// The acquired values, newest last, without closing the store (for
    /// `settle`).
    pub(crate) fn snapshot(&self) -> Vec<(&'static ServiceInfo, AnyArc)> {
        let state = self.lock();
        state
            .acquired
            .iter()
            .map(|a| (a.info, a.value.clone()))
            .collect()
    }

    /// Closes the store: nothing more can be built in it. Returns what must be
    /// released, in acquisition order. The memo slots are emptied first so
    /// that the returned values are uniquely owned unless a handle escaped.
    pub(crate) fn close(&self) -> Vec<Acquired> {
        let (slots, acquired) = {
            let mut state = self.lock();
            state.closed = true;
            (
                std::mem::take(&mut state.slots),
                std::mem::take(&mut state.acquired),
            )
        };
        drop(slots);
        acquired
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Critical sections never call user code, so a poisoned lock can only
        // come from an allocation failure mid-push; the state is still whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn closed_error(info: &ServiceInfo) -> Error {
    Error::new(format!(
        "cannot build `{}`: its scope has already ended",
        info.name()
    ))
}

/// If a build's future is dropped before it finishes (the request was
/// cancelled), frees the slot and tells waiters to build it themselves.
struct AbandonOnDrop<'a> {
    store: &'a Store,
    id: TypeId,
    cell: &'a Arc<BuildOnce>,
    armed: bool,
}

impl Drop for AbandonOnDrop<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.store.lock().slots.retain(|(t, slot)| {
            !(*t == self.id && matches!(slot, Slot::Building(c) if Arc::ptr_eq(c, self.cell)))
        });
        self.cell.abandon();
    }
}

/// Releases values in reverse order of acquisition, each exactly once. A
/// release that fails or panics is reported and does not stop the others.
pub(crate) async fn release_all(
    acquired: Vec<Acquired>,
    exit: Exit,
    observer: Option<&dyn crate::Observer>,
) {
    for Acquired { info, value, stats } in acquired.into_iter().rev() {
        // A release may do its work when it is called (the default drops
        // the value then), so a panic there is caught as well as one while
        // it is awaited.
        let started =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (info.release)(value, exit)));
        let outcome = match started {
            Ok(Ok(release)) => crate::catch_unwind::CatchUnwind::new(release).await,
            Err(panic) => Err(panic),
            Ok(Err(shared)) => {
                stats.record_escape();
                tracing::error!(
                    service = info.name(),
                    handles = std::sync::Arc::strong_count(&shared) - 1,
                    "a handle to this service outlived its scope, so its release step cannot run; \
                     it will be dropped when the last handle is"
                );
                continue;
            }
        };
        stats.record_release();
        let outcome = match outcome {
            Ok(Ok(())) => {
                tracing::debug!(service = info.name(), exit = exit.label(), "released");
                Ok(())
            }
            Ok(Err(error)) => {
                stats.record_release_failure();
                tracing::error!(service = info.name(), exit = exit.label(), %error, "release failed");
                Err(error)
            }
            Err(panic) => {
                stats.record_release_failure();
                let error = Error::new(format!(
                    "release of `{}` panicked: {}",
                    info.name(),
                    crate::catch_unwind::panic_message(&*panic)
                ));
                tracing::error!(service = info.name(), exit = exit.label(), %error, "release panicked");
                Err(error)
            }
        };
        if let Some(observer) = observer {
            observer.released(info, exit, outcome.as_ref().err());
        }
    }
}
