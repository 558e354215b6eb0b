//! The budget of one request's scope: the [`Budget`]s that apply to it, what
//! it has spent (builds per service, time waiting to acquire), and the group
//! slots it holds until it has released everything.
//!
//! Made only for a scope that a budget applies to (the registry's default,
//! or a route's layer): a scope without one never allocates this, takes
//! this lock or reads a clock.

use std::any::TypeId;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::Duration;

use http::StatusCode;

use crate::budget::Spec;
use crate::budget_group::{Cap, Permit};
use crate::probe::ServiceStats;
use crate::{Budget, BudgetLimit, Error, Registry, ServiceInfo, Timer};

pub(crate) struct ScopeBudget {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The budgets that apply, oldest first (the registry's default, then
    /// each layer as it was entered): the newest that sets a limit wins.
    specs: Vec<Arc<Spec>>,
    /// Builds started, per service.
    builds: Vec<(TypeId, u32)>,
    /// Acquisitions in progress, and since when (on the timer's clock) at
    /// least one has been.
    acquiring: usize,
    since: Duration,
    /// Time spent with at least one acquisition in progress, before `since`.
    spent: Duration,
    /// Group slots taken by this request's values, given back once it has
    /// released them.
    permits: Vec<Permit>,
    /// Services whose builds are waiting for a group slot right now: when
    /// the acquire-wait limit cuts an acquisition (perhaps an outer one, a
    /// service that depends on the one waiting), the slot is what it waited
    /// for.
    slot_waits: Vec<&'static ServiceInfo>,
}

impl ScopeBudget {
    pub(crate) fn new(default: Option<&Budget>) -> ScopeBudget {
        let mut state = State::default();
        if let Some(default) = default {
            state.specs.push(default.spec.clone());
        }
        ScopeBudget {
            state: Mutex::new(state),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No user code runs under this lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `budget` (once: a budget entered twice applies once).
    pub(crate) fn apply(&self, budget: &Budget) {
        let mut state = self.lock();
        if !state.specs.iter().any(|s| Arc::ptr_eq(s, &budget.spec)) {
            state.specs.push(budget.spec.clone());
        }
    }

    /// The budgets that apply, oldest first.
    pub(crate) fn budgets(&self) -> Vec<Budget> {
        self.lock()
            .specs
            .iter()
            .map(|spec| Budget { spec: spec.clone() })
            .collect()
    }

    fn acquire_wait(&self) -> Option<Duration> {
        self.lock().specs.iter().rev().find_map(|s| s.acquire_wait)
    }

    /// Counts a build of `info`'s service, refusing it if it is one more
    /// than the budget allows.
    fn count_build(
        &self,
        registry: &Registry,
        info: &'static ServiceInfo,
        stats: &ServiceStats,
    ) -> Result<(), Error> {
        let refused = {
            let mut state = self.lock();
            let Some(max) = state.specs.iter().rev().find_map(|s| s.max_builds_of(info)) else {
                return Ok(());
            };
            let id = info.type_id();
            let at = match state.builds.iter().position(|(t, _)| *t == id) {
                Some(at) => at,
                None => {
                    state.builds.push((id, 0));
                    state.builds.len() - 1
                }
            };
            let built = &mut state.builds[at].1;
            if *built < max {
                *built += 1;
                return Ok(());
            }
            max
        };
        exceeded(registry, info, stats, BudgetLimit::MaxBuilds);
        Err(Error::new(format!(
            "budget exceeded: `{}` may be built at most {refused} times in one request \
             (max_builds), and this request asked for more; is a handler building it in a loop?",
            info.name()
        ))
        .with_status(StatusCode::INTERNAL_SERVER_ERROR))
    }

    /// The caps of every group that limits `info`'s service.
    fn caps(&self, info: &ServiceInfo) -> Vec<Arc<Cap>> {
        let state = self.lock();
        let id = info.type_id();
        let mut caps: Vec<Arc<Cap>> = Vec::new();
        for spec in &state.specs {
            for group in &spec.groups {
                if let Some(cap) = group.cap(id)
                    && !caps.iter().any(|c| Arc::ptr_eq(c, cap))
                {
                    caps.push(cap.clone());
                }
            }
        }
        caps
    }

    /// Builds one value of `info`'s service under this budget: counts the
    /// build, takes a slot of every group that caps the service (waiting
    /// for them), then runs `build`. The
    /// slots are kept by the scope once the value is built, and given back
    /// at once if it is not.
    ///
    /// `build` makes the build's future, rather than being it: taken by
    /// value, a future would be kept twice in this one (an `async fn`
    /// keeps its arguments apart from what it awaits), as in [`timed`](Self::timed).
    pub(crate) async fn build<Fut, T>(
        &self,
        registry: &Registry,
        info: &'static ServiceInfo,
        stats: &ServiceStats,
        build: impl FnOnce() -> Fut,
    ) -> Result<T, Error>
    where
        Fut: Future<Output = Result<T, Error>>,
    {
        self.count_build(registry, info, stats)?;
        let caps = self.caps(info);
        let mut permits = Vec::with_capacity(caps.len());
        if !caps.is_empty() {
            let _waiting = SlotWait::start(self, info);
            for cap in &caps {
                permits.push(cap.acquire().await);
            }
        }
        let value = build().await?;
        if !permits.is_empty() {
            self.lock().permits.append(&mut permits);
        }
        Ok(value)
    }
    /// Runs one acquisition of `info`'s service under the acquire-wait
    /// limit, if one applies: the time it runs counts toward the limit
    /// (time with several acquisitions in progress counts once), and if it
    /// is still running when the limit is reached it is dropped and
    /// refused with a `503`.
    ///
    /// `acquisition` makes the acquisition's future: taken by value, the
    /// future would be kept twice here, once as the argument and once
    /// pinned below.
    pub(crate) async fn timed<Fut>(
        &self,
        registry: &Registry,
        info: &'static ServiceInfo,
        stats: &ServiceStats,
        acquisition: impl FnOnce() -> Fut,
    ) -> Result<crate::service::AnyArc, Error>
    where
        Fut: Future<Output = Result<crate::service::AnyArc, Error>>,
    {
        let Some(limit) = self.acquire_wait() else {
            return acquisition().await;
        };
        let Some(timer) = registry.timer() else {
            return Err(Error::new(format!(
                "cannot acquire `{}`: its request's budget limits the time waiting to acquire \
                 (acquire_wait), and the registry has no timer to measure it \
                 (RegistryBuilder::timer)",
                info.name()
            ))
            .with_status(StatusCode::INTERNAL_SERVER_ERROR));
        };
        let waiting = Waiting::start(self, timer.as_ref());
        let remaining = limit.saturating_sub(waiting.spent_at_start);
        let mut acquisition = pin!(acquisition());
        let mut sleep = None;
        let outcome = poll_fn(|cx| {
            if let Poll::Ready(output) = acquisition.as_mut().poll(cx) {
                return Poll::Ready(Some(output));
            }
            // Started only once the acquisition has to wait: one that is
            // ready at once costs no timer.
            let sleep = sleep.get_or_insert_with(|| timer.sleep(remaining));
            sleep.as_mut().poll(cx).map(|()| None)
        })
        .await;
        if let Some(output) = outcome {
            return output;
        }
        // Cut. Asked while the acquisition (and any build nested in it
        // that waits for a slot) is still alive: what it was waiting for.
        let slot_wait = self.lock().slot_waits.first().copied();
        let error = match slot_wait {
            Some(waiting_for) => {
                let groups: Vec<String> = self
                    .caps(waiting_for)
                    .iter()
                    .map(|c| format!("`{}` holds at most {}", c.group, c.max))
                    .collect();
                let waiting_stats = registry.existing_stats(waiting_for);
                exceeded(
                    registry,
                    waiting_for,
                    waiting_stats.as_deref().unwrap_or(stats),
                    BudgetLimit::MaxHeld,
                );
                format!(
                    "budget exceeded: no `{}` came free within this request's acquire budget \
                     of {limit:?} (max_held: group {}); try again shortly",
                    waiting_for.name(),
                    groups.join(", group ")
                )
            }
            None => {
                exceeded(registry, info, stats, BudgetLimit::AcquireWait);
                format!(
                    "budget exceeded: this request waited {limit:?} in all to acquire its \
                     services (acquire_wait) and `{}` was still not ready; try again shortly",
                    info.name()
                )
            }
        };
        drop(waiting);
        Err(Error::new(error).with_status(StatusCode::SERVICE_UNAVAILABLE))
    }

    /// The group slots this request holds, to give back once it has
    /// released its values.
    pub(crate) fn take_permits(&self) -> Vec<Permit> {
        std::mem::take(&mut self.lock().permits)
    }
}

/// A build of `info`'s service waiting for group slots, noted in the
/// scope's state until it has them (or is dropped).
struct SlotWait<'a> {
    budget: &'a ScopeBudget,
    info: &'static ServiceInfo,
}

impl<'a> SlotWait<'a> {
    fn start(budget: &'a ScopeBudget, info: &'static ServiceInfo) -> SlotWait<'a> {
        budget.lock().slot_waits.push(info);
        SlotWait { budget, info }
    }
}

impl Drop for SlotWait<'_> {
    fn drop(&mut self) {
        let mut state = self.budget.lock();
        if let Some(at) = state
            .slot_waits
            .iter()
            .position(|i| i.type_id() == self.info.type_id())
        {
            state.slot_waits.remove(at);
        }
    }
}

/// One acquisition in progress, for the acquire-wait clock: the scope's
/// clock runs while at least one is.
struct Waiting<'a> {
    budget: &'a ScopeBudget,
    timer: &'a dyn Timer,
    spent_at_start: Duration,
}

impl<'a> Waiting<'a> {
    fn start(budget: &'a ScopeBudget, timer: &'a dyn Timer) -> Waiting<'a> {
        let now = timer.now();
        let mut state = budget.lock();
        if state.acquiring == 0 {
            state.since = now;
        }
        state.acquiring += 1;
        let spent_at_start = state.spent + now.saturating_sub(state.since);
        Waiting {
            budget,
            timer,
            spent_at_start,
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let now = self.timer.now();
        let mut state = self.budget.lock();
        state.acquiring -= 1;
        if state.acquiring == 0 {
            let since = state.since;
            state.spent += now.saturating_sub(since);
        }
    }
}

/// Counts, logs and reports a limit exceeded by a build of `info`'s service.
fn exceeded(
    registry: &Registry,
    info: &'static ServiceInfo,
    stats: &ServiceStats,
    limit: BudgetLimit,
) {
    stats.record_budget_exceeded();
    tracing::warn!(
        service = info.name(),
        budget = limit.label(),
        "request budget exceeded"
    );
    if let Some(observer) = registry.observer() {
        observer.budget_exceeded(info, limit);
    }
}
