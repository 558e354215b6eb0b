//! [`Budget`]: per-request limits on what a request's scope may acquire, and
//! [`BudgetLimit`], the name of the one a request exceeded.
//!
//! Where they are checked: `RequestScope::build_shared`/`build_transient`
//! (`scope.rs`) hand every build of a request or transient service to
//! `scope_budget.rs` when a budget applies to the scope; with none, a
//! build pays one atomic load and one branch.

use std::any::TypeId;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::{BudgetGroup, Provide, ServiceInfo};

/// Limits on what one request's scope may acquire: a registry-wide default
/// ([`RegistryBuilder::budget`](crate::RegistryBuilder::budget)), and per
/// route (with the `axum` feature a `Budget` is a tower layer: apply it with
/// `Router::route_layer` or a route's `.layer`).
///
/// * [`max_builds::<T>(n)`](Budget::max_builds): at most `n` builds of `T`
///   per request. A transient service built in a loop (a handler opening a
///   connection per item) is a programming error: the build after the
///   `n`th is refused with a `500` naming the service and the limit.
/// * [`acquire_wait(t)`](Budget::acquire_wait): at most `t` in all spent
///   waiting to acquire services in one request (the time during which at
///   least one build, or a wait for a [`BudgetGroup`] slot, is in
///   progress). The acquisition that would go past it is cut (its build
///   dropped) and answered with a `503` saying what was exceeded. Needs the
///   registry's [`Timer`](crate::Timer).
/// * [`group(&g)`](Budget::group): the request's values count against
///   `g`'s caps ([`BudgetGroup::max_held`]), shared by every route with that
///   group: "the reports routes hold at most 4 `Conn`s at once". A build
///   waits for a free slot; the wait counts toward `acquire_wait`, and a
///   request that gets none in time is answered with a `503`.
///
/// Exceeding a limit is counted per service
/// ([`ServiceReport::budget_exceeded`](crate::ServiceReport::budget_exceeded),
/// [`Observer::budget_exceeded`](crate::Observer::budget_exceeded)), and
/// nothing is left unreleased: what the request built before the refusal
/// is released when it ends, with its exit.
///
/// When a route's budget and the registry's default both set a limit, the
/// route's wins (the innermost layer's, if several apply); groups add up: a
/// value counts against every group of every budget that applies. A budget
/// governs acquisitions made after it applies to the scope (the registry's
/// from the start; a layer's once its route is called).
///
/// ```
/// use std::time::Duration;
/// use provision::{Budget, BudgetGroup, Error, Provide, Registry, Request, Transient};
///
/// struct Conn;
/// impl Provide for Conn {
///     type Lifetime = Request;
///     type Deps = ();
///     async fn build(_: ()) -> Result<Self, Error> { Ok(Conn) }
/// }
/// struct Statement;
/// impl Provide for Statement {
///     type Lifetime = Transient;
///     type Deps = ();
///     async fn build(_: ()) -> Result<Self, Error> { Ok(Statement) }
/// }
///
/// // Every request: no loops of statements, at most 2 s waiting in all.
/// let default = Budget::new()
///     .max_builds::<Statement>(16)
///     .acquire_wait(Duration::from_secs(2));
/// let builder = Registry::builder().budget(default);
///
/// // The report routes: at most 4 connections at once between them.
/// let reports = BudgetGroup::new("reports").max_held::<Conn>(4);
/// let per_route = Budget::new().group(&reports);
/// // Router::new().route("/reports/a", get(a)).route("/reports/b", get(b))
/// //     .route_layer(per_route)
/// ```
#[derive(Clone, Default)]
pub struct Budget {
    pub(crate) spec: Arc<Spec>,
}

/// What a [`Budget`] sets. Shared by every request the budget applies to.
#[derive(Clone, Default)]
pub(crate) struct Spec {
    pub(crate) max_builds: Vec<(TypeId, u32)>,
    pub(crate) acquire_wait: Option<Duration>,
    pub(crate) groups: Vec<BudgetGroup>,
}

impl Budget {
    /// A budget that limits nothing yet.
    pub fn new() -> Budget {
        Budget::default()
    }

    /// At most `builds` builds of service `T` per request: the next is
    /// refused with a `500` naming `T` and the limit (a transient service
    /// built in a loop is a programming error, not a load problem). A
    /// request service is built once per request, so this matters for
    /// transient ones, and for a request service whose builds keep failing.
    pub fn max_builds<T: Provide>(mut self, builds: u32) -> Budget {
        let spec = Arc::make_mut(&mut self.spec);
        let id = TypeId::of::<T>();
        spec.max_builds.retain(|(t, _)| *t != id);
        spec.max_builds.push((id, builds));
        self
    }

    /// At most `limit` spent waiting to acquire services in one request, in
    /// all: the time during which at least one build (its dependencies
    /// included) or one wait for a group's slot is in progress. The
    /// acquisition that runs past it is cut and answered with a `503`.
    /// Measured and enforced with the registry's
    /// [`Timer`](crate::Timer); on a registry without one, a request under
    /// this limit is refused with a `500` (a misconfiguration).
    pub fn acquire_wait(mut self, limit: Duration) -> Budget {
        Arc::make_mut(&mut self.spec).acquire_wait = Some(limit);
        self
    }

    /// Counts this budget's requests against `group`'s caps
    /// ([`BudgetGroup::max_held`]), shared with every other budget given
    /// the same group (or a clone of it).
    pub fn group(mut self, group: &BudgetGroup) -> Budget {
        let spec = Arc::make_mut(&mut self.spec);
        if !spec.groups.iter().any(|g| g.same(group)) {
            spec.groups.push(group.clone());
        }
        self
    }

    /// The builds of `T` this budget allows per request, if it limits them.
    pub fn builds_allowed<T: Provide>(&self) -> Option<u32> {
        self.spec.max_builds_of(ServiceInfo::of::<T>())
    }

    /// The acquire-wait limit, if set.
    pub fn acquire_wait_limit(&self) -> Option<Duration> {
        self.spec.acquire_wait
    }
}

impl Spec {
    pub(crate) fn max_builds_of(&self, info: &ServiceInfo) -> Option<u32> {
        let id = info.type_id();
        self.max_builds
            .iter()
            .find_map(|(t, n)| (*t == id).then_some(*n))
    }
}

impl fmt::Debug for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Budget")
            .field("max_builds", &self.spec.max_builds.len())
            .field("acquire_wait", &self.spec.acquire_wait)
            .field("groups", &self.spec.groups)
            .finish()
    }
}

/// Which limit of a [`Budget`] a request exceeded: the `budget` label of
/// the metric, and what [`Observer::budget_exceeded`](crate::Observer::budget_exceeded) is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BudgetLimit {
    /// [`Budget::max_builds`]: built too many times in one request (`500`).
    MaxBuilds,
    /// [`Budget::acquire_wait`]: waited too long in all to acquire (`503`).
    AcquireWait,
    /// [`BudgetGroup::max_held`]: no slot of the group came free within the
    /// acquire budget (`503`).
    MaxHeld,
}

impl BudgetLimit {
    /// `max_builds`, `acquire_wait` or `max_held`, for logs and metric
    /// labels.
    pub fn label(&self) -> &'static str {
        match self {
            BudgetLimit::MaxBuilds => "max_builds",
            BudgetLimit::AcquireWait => "acquire_wait",
            BudgetLimit::MaxHeld => "max_held",
        }
    }
}

impl fmt::Display for BudgetLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}
