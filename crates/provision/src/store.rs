//! The values of one scope (a request's, or the app's): memoised slots, the
//! order in which values were acquired, and their release.

use std::any::TypeId;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

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
    /// When its build ended, for the observer's time held; `None` without
    /// an observer or a clock.
    pub(crate) built_at: Option<Instant>,
}

/// A value just built, and when its build ended (see `Acquired::built_at`).
pub(crate) struct Built {
    pub(crate) value: AnyArc,
    pub(crate) at: Option<Instant>,
}

/// Who hears of releases the store runs itself (a value built into a scope
/// that had already ended): the registry's observer, and the span the
/// release spans belong to.
#[derive(Clone, Copy)]
pub(crate) struct Report<'a> {
    pub(crate) observer: Option<&'a dyn crate::Observer>,
    pub(crate) span: &'a tracing::Span,
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
    /// Numbers builds, so a builder finds its own slot again.
    next_build: u64,
}

enum Slot {
    /// Being built by the task that holds build number `build`. `waiters`
    /// is made by the first task that has to wait for it: most builds have
    /// none and pay for no rendezvous.
    Building {
        build: u64,
        waiters: Option<Arc<BuildOnce>>,
    },
    Ready(AnyArc),
}

enum Step {
    Wait(Arc<BuildOnce>),
    Build(u64),
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
        report: Report<'_>,
        build: impl FnOnce() -> Fut,
    ) -> Result<AnyArc, Error>
    where
        Fut: Future<Output = Result<Built, Error>>,
    {
        let id = info.type_id();
        let mut build = Some(build);
        loop {
            let step = {
                let mut state = self.lock();
                if state.closed {
                    return Err(closed_error(info));
                }
                let state = &mut *state;
                match state.slots.iter_mut().find(|(t, _)| *t == id) {
                    Some((_, Slot::Ready(value))) => return Ok(value.clone()),
                    Some((_, Slot::Building { waiters, .. })) => Step::Wait(
                        waiters
                            .get_or_insert_with(|| Arc::new(BuildOnce::new()))
                            .clone(),
                    ),
                    None => {
                        let build = state.next_build;
                        state.next_build += 1;
                        state.slots.push((
                            id,
                            Slot::Building {
                                build,
                                waiters: None,
                            },
                        ));
                        Step::Build(build)
                    }
                }
            };
            match step {
                Step::Wait(cell) => match cell.wait().await {
                    Some(result) => return result,
                    None => continue,
                },
                Step::Build(number) => {
                    let build = build.take().expect("a caller builds at most once");
                    let mut abandon = AbandonOnDrop {
                        store: self,
                        id,
                        build: number,
                        armed: true,
                    };
                    let result = build().await;
                    abandon.armed = false;
                    return self.finish_build(info, stats, report, number, result).await;
                }
            }
        }
    }

    /// The memoised value of `info`'s service, or one built by `build` in
    /// this caller, never waiting on a build another caller drives: callers
    /// that find no value each build, the first to finish is kept, and a
    /// value that finishes later is released at once (`Exit::Cancelled`).
    ///
    /// For app services built on first use by requests: on Cloudflare
    /// Workers a request woken by a build another request drives runs in
    /// that request's context, or never, if that request was cut off and
    /// is never resumed.
    pub(crate) async fn get_or_race<Fut>(
        &self,
        info: &'static ServiceInfo,
        stats: &Arc<ServiceStats>,
        report: Report<'_>,
        build: impl FnOnce() -> Fut,
    ) -> Result<AnyArc, Error>
    where
        Fut: Future<Output = Result<Built, Error>>,
    {
        let id = info.type_id();
        if let Some(value) = self.get(id) {
            return Ok(value);
        }
        let Built { value, at } = build().await?;
        let (kept, lost) = {
            let mut state = self.lock();
            let winner = state.slots.iter().find_map(|(t, slot)| match slot {
                Slot::Ready(winner) if *t == id => Some(winner.clone()),
                _ => None,
            });
            match winner {
                _ if state.closed => (Err(closed_error(info)), Some(value)),
                Some(winner) => (Ok(winner), Some(value)),
                None => {
                    state.slots.push((id, Slot::Ready(value.clone())));
                    state.acquired.push(Acquired {
                        info,
                        value: value.clone(),
                        stats: stats.clone(),
                        built_at: at,
                    });
                    (Ok(value), None)
                }
            }
        };
        if let Some(value) = lost {
            // Boxed, as in `finish_build`.
            Box::pin(release_all(
                vec![Acquired {
                    info,
                    value,
                    stats: stats.clone(),
                    built_at: at,
                }],
                Exit::Cancelled,
                report,
                None,
            ))
            .await;
        }
        kept
    }

    async fn finish_build(
        &self,
        info: &'static ServiceInfo,
        stats: &Arc<ServiceStats>,
        report: Report<'_>,
        build: u64,
        result: Result<Built, Error>,
    ) -> Result<AnyArc, Error> {
        let id = info.type_id();
        let (result, built_at) = match result {
            Ok(Built { value, at }) => (Ok(value), at),
            Err(error) => (Err(error), None),
        };
        let (late, waiters) = {
            let mut state = self.lock();
            let waiters = state.take_building(id, build);
            let late = match &result {
                Ok(value) if !state.closed => {
                    state.slots.push((id, Slot::Ready(value.clone())));
                    state.acquired.push(Acquired {
                        info,
                        value: value.clone(),
                        stats: stats.clone(),
                        built_at,
                    });
                    None
                }
                Ok(value) => Some(value.clone()),
                Err(_) => None,
            };
            (late, waiters)
        };
        match late {
            None => {
                if let Some(waiters) = waiters {
                    waiters.complete(result.clone());
                }
                result
            }
            Some(value) => {
                // The scope closed while this build ran: nobody will release
                // the value later, so release it now.
                let error = closed_error(info);
                if let Some(waiters) = waiters {
                    waiters.complete(Err(error.clone()));
                }
                drop(result);
                // Boxed: held inline, this rare release would make the
                // future of every build (and of every future that awaits
                // one) several hundred bytes larger, each copied as it moves.
                Box::pin(release_all(
                    vec![Acquired {
                        info,
                        value,
                        stats: stats.clone(),
                        built_at,
                    }],
                    Exit::Cancelled,
                    report,
                    None,
                ))
                .await;
                Err(error)
            }
        }
    }

    /// Records a value that is not memoised (a transient) and hands back a
    /// handle to it. If the scope has closed meanwhile, the value is
    /// released at once: `acquired` must be the only handle, or it could not
    /// be.
    pub(crate) async fn record(
        &self,
        acquired: Acquired,
        report: Report<'_>,
    ) -> Result<AnyArc, Error> {
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
        // Boxed, as in `finish_build`.
        Box::pin(release_all(vec![late], Exit::Cancelled, report, None)).await;
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
        drop(state.take_ready());
        true
    }

    /// How many values have been acquired so far. Acquisitions are only
    /// ever appended until the store closes, so index `i < len` keeps
    /// naming the same value: `settle` walks them by index instead of
    /// copying the list (an allocation per request).
    pub(crate) fn acquired_len(&self) -> usize {
        self.lock().acquired.len()
    }

    /// The `index`th acquired value, oldest first, if the store still holds
    /// it (`None` once the store has closed and handed its values over).
    pub(crate) fn acquired_at(&self, index: usize) -> Option<(&'static ServiceInfo, AnyArc)> {
        let state = self.lock();
        state.acquired.get(index).map(|a| (a.info, a.value.clone()))
    }

    /// Closes the store: nothing more can be built in it. Returns what must be
    /// released, in acquisition order. The memo slots are emptied first so
    /// that the returned values are uniquely owned unless a handle escaped.
    pub(crate) fn close(&self) -> Vec<Acquired> {
        let (ready, acquired) = {
            let mut state = self.lock();
            state.closed = true;
            (state.take_ready(), std::mem::take(&mut state.acquired))
        };
        drop(ready);
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
    build: u64,
    armed: bool,
}

impl Drop for AbandonOnDrop<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let waiters = self.store.lock().take_building(self.id, self.build);
        if let Some(waiters) = waiters {
            waiters.abandon();
        }
    }
}

impl State {
    /// Takes the memoised values out (so that each acquired value is
    /// uniquely owned again), leaving the slots of builds still running:
    /// their builders find them to hand their waiters the outcome.
    fn take_ready(&mut self) -> Vec<(TypeId, Slot)> {
        if !self
            .slots
            .iter()
            .any(|(_, slot)| matches!(slot, Slot::Building { .. }))
        {
            // The usual case, no build in flight: the whole list goes, and
            // partitioning it would allocate a new one.
            return std::mem::take(&mut self.slots);
        }
        let (building, ready) = std::mem::take(&mut self.slots)
            .into_iter()
            .partition(|(_, slot)| matches!(slot, Slot::Building { .. }));
        self.slots = building;
        ready
    }

    /// Removes the slot of build number `build` of service `id`, handing
    /// back its waiters' rendezvous, if any task waited.
    fn take_building(&mut self, id: TypeId, build: u64) -> Option<Arc<BuildOnce>> {
        let at = self.slots.iter().position(|(t, slot)| {
            *t == id && matches!(slot, Slot::Building { build: b, .. } if *b == build)
        })?;
        match self.slots.swap_remove(at).1 {
            Slot::Building { waiters, .. } => waiters,
            Slot::Ready(_) => unreachable!("the position matched a building slot"),
        }
    }
}

/// Releases values in reverse order of acquisition, each exactly once. A
/// release that fails or panics is reported and does not stop the others.
/// Each step runs in a `release` span, a child of `report.span`.
pub(crate) async fn release_all(
    acquired: Vec<Acquired>,
    exit: Exit,
    report: Report<'_>,
    bounds: Option<&crate::step_bound::StepBounds>,
) {
    use tracing::Instrument;
    let observer = report.observer;
    for Acquired {
        info,
        value,
        stats,
        built_at,
    } in acquired.into_iter().rev()
    {
        let span = crate::span::release(info, exit, report.span);
        // Read once the step has ended (or was abandoned): the value was
        // held until then.
        let held = || built_at.map(|at| at.elapsed());
        // A release may do its work when it is called (the default drops
        // the value then), so a panic there is caught as well as one while
        // it is awaited.
        let started = span.in_scope(|| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (info.release)(value, exit)))
        });
        let outcome = match started {
            Ok(Ok(release)) => {
                let release = crate::catch_unwind::CatchUnwind::new(release);
                match crate::step_bound::bounded(bounds, info, release)
                    .instrument(span.clone())
                    .await
                {
                    Ok(outcome) => outcome,
                    Err(bound) => {
                        // Dropped unfinished: whatever it held is dropped
                        // with it (a connection closes).
                        stats.record_release();
                        stats.record_release_failure();
                        stats.record_abandoned(crate::Step::Release);
                        let error = Error::new(format!(
                            "release of `{}` did not finish within {bound:?}, so it was abandoned",
                            info.name()
                        ));
                        crate::span::record_error(&span, &error);
                        tracing::error!(
                            service = info.name(),
                            exit = exit.label(),
                            ?bound,
                            "release step abandoned: it did not finish within its bound"
                        );
                        if let Some(observer) = observer {
                            observer.abandoned(info, crate::Step::Release, bound);
                            observer.released(info, exit, Some(&error), held());
                        }
                        continue;
                    }
                }
            }
            Err(panic) => Err(panic),
            Ok(Err(shared)) => {
                stats.record_escape();
                if let Some(observer) = observer {
                    observer.escaped(info);
                }
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
        if let Err(error) = &outcome {
            crate::span::record_error(&span, error);
        }
        if let Some(observer) = observer {
            observer.released(info, exit, outcome.as_ref().err(), held());
        }
    }
}
