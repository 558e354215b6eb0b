//! Tenant isolation: every organisation and sources endpoint against every
//! kind of caller, with the expected status of each cell written out in
//! [`MATRIX`] (derived from the rules in `src/domain/access.rs`). Run one
//! cell at a time (with fresh targets for writes, checking that refused
//! writes changed nothing and that refusals leak nothing), then the read
//! cells under concurrent load. Then the users endpoints, `GET/POST
//! /api/orgs` and `GET /api/scopes`: who sees which user, organisation and
//! scope, one request at a time and while other tenants write. On SQLite
//! and on PostgreSQL in pool and per-request mode.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::contract::{self, Org};
use crate::support::{Backend, Reply, TestApp};

/// The columns of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// No `Authorization` header.
    NoToken,
    /// A forged token (a real token id, a wrong secret) and a malformed one.
    BadToken,
    /// Members of another organisation (Globex): its admin and its member.
    Outsider,
    /// Acme's member.
    Member,
    /// Acme's admin.
    Admin,
}

const WHO: [Who; 5] = [
    Who::NoToken,
    Who::BadToken,
    Who::Outsider,
    Who::Member,
    Who::Admin,
];

/// Which of Acme's scopes a sources row targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The organisation's shared scope.
    Shared,
    /// The member's own user scope.
    MembersOwn,
    /// The admin's own user scope.
    AdminsOwn,
}

use Target::{AdminsOwn, MembersOwn, Shared};

/// The rows of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    GetOrg,
    ListMembers,
    AddMember,
    ChangeRole,
    RemoveMember,
    ListSources(Target),
    CreateSource(Target),
    GetSource(Target),
    PatchSource(Target),
    DeleteSource(Target),
}

use Op::{
    AddMember, ChangeRole, CreateSource, DeleteSource, GetOrg, GetSource, ListMembers, ListSources,
    PatchSource, RemoveMember,
};

/// The expected status of every cell.
///
/// * no or bad token: 401, always;
/// * outsiders (admin or member of another organisation): 404, never 403;
/// * the org scope: members read it, writing it is 403 for them;
/// * a user scope: its owner alone; anyone else in the organisation,
///   admins included, gets 404;
/// * member management: admins only (403 for a member).
///
/// `Shared` is Acme's org scope, `MembersOwn` its member's user scope,
/// `AdminsOwn` its admin's user scope.
#[rustfmt::skip]
const MATRIX: [(Op, [u16; 5]); 20] = [
    //                            no token  bad token  outsider  member  admin
    (GetOrg,                      [401,     401,       404,      200,    200]),
    (ListMembers,                 [401,     401,       404,      403,    200]),
    (AddMember,                   [401,     401,       404,      403,    201]),
    (ChangeRole,                  [401,     401,       404,      403,    200]),
    (RemoveMember,                [401,     401,       404,      403,    204]),
    (ListSources(Shared),         [401,     401,       404,      200,    200]),
    (CreateSource(Shared),        [401,     401,       404,      403,    201]),
    (GetSource(Shared),           [401,     401,       404,      200,    200]),
    (PatchSource(Shared),         [401,     401,       404,      403,    200]),
    (DeleteSource(Shared),        [401,     401,       404,      403,    204]),
    (ListSources(MembersOwn),     [401,     401,       404,      200,    404]),
    (CreateSource(MembersOwn),    [401,     401,       404,      201,    404]),
    (GetSource(MembersOwn),       [401,     401,       404,      200,    404]),
    (PatchSource(MembersOwn),     [401,     401,       404,      200,    404]),
    (DeleteSource(MembersOwn),    [401,     401,       404,      204,    404]),
    (ListSources(AdminsOwn),      [401,     401,       404,      404,    200]),
    (CreateSource(AdminsOwn),     [401,     401,       404,      404,    201]),
    (GetSource(AdminsOwn),        [401,     401,       404,      404,    200]),
    (PatchSource(AdminsOwn),      [401,     401,       404,      404,    200]),
    (DeleteSource(AdminsOwn),     [401,     401,       404,      404,    204]),
];

const ORG: &str = "/api/orgs/{org_id}";
const MEMBERS: &str = "/api/orgs/{org_id}/members";
const MEMBER: &str = "/api/orgs/{org_id}/members/{user_id}";
const SOURCES: &str = "/api/scopes/{scope_id}/sources";
const SOURCE: &str = "/api/scopes/{scope_id}/sources/{source_id}";

/// An id no row has.
const GHOST: i64 = 987_654_321;

impl Op {
    fn is_read(self) -> bool {
        matches!(self, GetOrg | ListMembers | ListSources(_) | GetSource(_))
    }

    /// The scope a sources row targets.
    fn target(self) -> Option<Target> {
        match self {
            ListSources(t) | CreateSource(t) | GetSource(t) | PatchSource(t) | DeleteSource(t) => {
                Some(t)
            }
            _ => None,
        }
    }

    /// Whether the request names something inside the organisation or
    /// scope (a member, a source, a user's email) besides the container.
    fn has_child(self) -> bool {
        matches!(
            self,
            AddMember | ChangeRole | RemoveMember | GetSource(_) | PatchSource(_) | DeleteSource(_)
        )
    }

    /// The thing a refusal names.
    fn refused_thing(self) -> &'static str {
        if self.target().is_some() {
            "scope"
        } else {
            "organisation"
        }
    }
}

/// The exact body of a refusal: one fixed text per status and thing, so it
/// cannot say anything about what exists.
fn refusal(op: Op, who: Who, status: u16) -> Value {
    let message = match (status, who) {
        (401, Who::NoToken) => {
            "missing bearer token: send `Authorization: Bearer <token>`".to_owned()
        }
        (401, _) => "the bearer token is invalid or has been revoked".to_owned(),
        (404, _) => format!("{} not found", op.refused_thing()),
        (403, _) => format!(
            "only an admin of the organisation may do this to the {}",
            op.refused_thing()
        ),
        _ => unreachable!("{status} is not a refusal"),
    };
    json!({ "error": message })
}

/// The ids one request uses.
#[derive(Debug, Clone)]
struct Ids {
    org: i64,
    scope: i64,
    source: i64,
    user: i64,
    email: String,
    name: String,
    /// The token of a member added for this cell (to check removal).
    fresh_token: Option<String>,
    /// The fresh member or source as created for this cell.
    original: Value,
}

impl Ids {
    /// The same container, with a child that does not exist.
    fn ghost_child(&self) -> Ids {
        Ids {
            source: GHOST,
            user: GHOST,
            email: "ghost@example.com".into(),
            ..self.clone()
        }
    }

    /// Nothing that exists.
    fn ghost_all(&self) -> Ids {
        Ids {
            org: GHOST,
            scope: GHOST,
            ..self.ghost_child()
        }
    }
}

/// One cell of the matrix, as one of the column's tokens.
struct Cell<'a> {
    op: Op,
    who: Who,
    face: &'a str,
    token: Option<&'a str>,
    status: u16,
}

/// Everything one can see through the API, read by the owners: what a
/// refused write must leave alone.
type State = BTreeMap<&'static str, Value>;

fn key(target: Target) -> &'static str {
    match target {
        Shared => "acme org scope",
        MembersOwn => "acme member scope",
        AdminsOwn => "acme admin scope",
    }
}

/// Two organisations, Acme and Globex, each with an admin, a member and a
/// source in every scope.
struct World {
    app: TestApp,
    acme: Org,
    globex: Org,
    /// Acme admin's token id with a wrong (well-formed) secret.
    forged: String,
    /// The seeded source of each of Acme's scopes, as created.
    seeded: BTreeMap<&'static str, Value>,
    next: AtomicUsize,
}

fn source_body(name: &str, kind: &str, url: &str, config: Value) -> Value {
    json!({"name": name, "kind": kind, "url": url, "config": config})
}

impl World {
    async fn new(backend: Backend) -> World {
        let app = TestApp::start(backend).await;
        let acme = contract::org(&app, "Acme", "acme").await;
        let globex = contract::org(&app, "Globex", "globex").await;
        let (token_id, _) = acme.admin.rsplit_once('_').unwrap();
        let forged = format!("{token_id}_{}", "0".repeat(64));
        let mut world = World {
            app,
            acme,
            globex,
            forged,
            seeded: BTreeMap::new(),
            next: AtomicUsize::new(0),
        };
        for (target, body) in [
            (
                Shared,
                source_body(
                    "acme-shared",
                    "openapi",
                    "https://petstore.acme.example.com/v3",
                    json!({"auth": "none"}),
                ),
            ),
            (
                MembersOwn,
                source_body(
                    "max-private",
                    "mcp",
                    "https://max.example.com/mcp",
                    json!({"token": "max-personal-secret"}),
                ),
            ),
            (
                AdminsOwn,
                source_body(
                    "ada-private",
                    "graphql",
                    "https://ada.example.com/graphql",
                    json!({"token": "ada-personal-secret"}),
                ),
            ),
        ] {
            let created = world
                .send(
                    Method::POST,
                    SOURCES,
                    &[world.scope(target)],
                    world.owner(target),
                    Some(body),
                )
                .await
                .expect(201);
            world.seeded.insert(key(target), created.body);
        }
        for (scope, token, name) in [
            (world.globex.org_scope, &world.globex.admin, "globex-shared"),
            (
                world.globex.member_scope,
                &world.globex.member,
                "globex-private",
            ),
        ] {
            world
                .send(
                    Method::POST,
                    SOURCES,
                    &[scope],
                    Some(token),
                    Some(source_body(
                        name,
                        "mcp",
                        "https://globex.example.com/mcp",
                        json!({"token": "globex-secret"}),
                    )),
                )
                .await
                .expect(201);
        }
        world
    }

    fn scope(&self, target: Target) -> i64 {
        match target {
            Shared => self.acme.org_scope,
            MembersOwn => self.acme.member_scope,
            AdminsOwn => self.acme.admin_scope,
        }
    }

    /// Who may write `target`: the admin for the org scope, else its owner.
    fn owner(&self, target: Target) -> Option<&str> {
        match target {
            Shared | AdminsOwn => Some(&self.acme.admin),
            MembersOwn => Some(&self.acme.member),
        }
    }

    /// The tokens standing for one column, with a name for messages.
    fn faces(&self, who: Who) -> Vec<(&'static str, Option<String>)> {
        match who {
            Who::NoToken => vec![("no token", None)],
            Who::BadToken => vec![
                ("a forged token", Some(self.forged.clone())),
                ("a malformed token", Some("pv_garbage".into())),
            ],
            Who::Outsider => vec![
                ("Globex's admin", Some(self.globex.admin.clone())),
                ("Globex's member", Some(self.globex.member.clone())),
            ],
            Who::Member => vec![("Acme's member", Some(self.acme.member.clone()))],
            Who::Admin => vec![("Acme's admin", Some(self.acme.admin.clone()))],
        }
    }

    async fn send(
        &self,
        method: Method,
        route: &str,
        params: &[i64],
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let params: Vec<&(dyn ToString + Sync)> =
            params.iter().map(|p| p as &(dyn ToString + Sync)).collect();
        self.app.call(method, route, &params, token, body).await
    }

    /// The request of `op` on `ids`.
    async fn call(&self, op: Op, token: Option<&str>, ids: &Ids) -> Reply {
        let (method, route, params, body) = match op {
            GetOrg => (Method::GET, ORG, vec![ids.org], None),
            ListMembers => (Method::GET, MEMBERS, vec![ids.org], None),
            AddMember => (
                Method::POST,
                MEMBERS,
                vec![ids.org],
                Some(json!({"email": ids.email})),
            ),
            ChangeRole => (
                Method::PATCH,
                MEMBER,
                vec![ids.org, ids.user],
                Some(json!({"role": "admin"})),
            ),
            RemoveMember => (Method::DELETE, MEMBER, vec![ids.org, ids.user], None),
            ListSources(_) => (Method::GET, SOURCES, vec![ids.scope], None),
            CreateSource(_) => (
                Method::POST,
                SOURCES,
                vec![ids.scope],
                Some(source_body(
                    &ids.name,
                    "mcp",
                    "https://created.example.com/mcp",
                    json!({"created": true}),
                )),
            ),
            GetSource(_) => (Method::GET, SOURCE, vec![ids.scope, ids.source], None),
            PatchSource(_) => (
                Method::PATCH,
                SOURCE,
                vec![ids.scope, ids.source],
                Some(json!({"url": "https://patched.example.com/v2", "config": {"patched": true}})),
            ),
            DeleteSource(_) => (Method::DELETE, SOURCE, vec![ids.scope, ids.source], None),
        };
        self.send(method, route, &params, token, body).await
    }

    /// The ids for one cell, creating a fresh target where the cell writes:
    /// a user to add, a member to change or remove, a source to change or
    /// delete.
    async fn prepare(&self, op: Op) -> Ids {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut ids = Ids {
            org: self.acme.id,
            scope: op.target().map_or(self.acme.org_scope, |t| self.scope(t)),
            source: op
                .target()
                .map_or(GHOST, |t| self.seeded[key(t)]["id"].as_i64().unwrap()),
            user: self.acme.member_id,
            email: format!("fresh-{n}@example.com"),
            name: format!("new-{n}"),
            fresh_token: None,
            original: Value::Null,
        };
        match op {
            AddMember | ChangeRole | RemoveMember => {
                let (id, token) = self.app.user(&format!("Fresh {n}"), &ids.email).await;
                ids.user = id;
                ids.fresh_token = Some(token);
                if op != AddMember {
                    ids.original = self
                        .send(
                            Method::POST,
                            MEMBERS,
                            &[self.acme.id],
                            Some(&self.acme.admin),
                            Some(json!({"email": ids.email})),
                        )
                        .await
                        .expect(201)
                        .body;
                }
            }
            PatchSource(t) | DeleteSource(t) => {
                let created = self
                    .send(
                        Method::POST,
                        SOURCES,
                        &[ids.scope],
                        self.owner(t),
                        Some(source_body(
                            &format!("fresh-{n}"),
                            "openapi",
                            &format!("https://fresh-{n}.example.com/openapi.json"),
                            json!({"n": n}),
                        )),
                    )
                    .await
                    .expect(201);
                ids.source = created.body["id"].as_i64().unwrap();
                ids.original = created.body;
            }
            _ => {}
        }
        ids
    }

    async fn state(&self) -> State {
        let (acme, globex) = (&self.acme, &self.globex);
        let reads: [(&'static str, &str, i64, &str); 9] = [
            ("acme", ORG, acme.id, &acme.admin),
            ("acme members", MEMBERS, acme.id, &acme.admin),
            (key(Shared), SOURCES, acme.org_scope, &acme.admin),
            (key(MembersOwn), SOURCES, acme.member_scope, &acme.member),
            (key(AdminsOwn), SOURCES, acme.admin_scope, &acme.admin),
            ("globex", ORG, globex.id, &globex.admin),
            ("globex members", MEMBERS, globex.id, &globex.admin),
            ("globex org scope", SOURCES, globex.org_scope, &globex.admin),
            (
                "globex member scope",
                SOURCES,
                globex.member_scope,
                &globex.member,
            ),
        ];
        let mut state = State::new();
        for (name, route, id, token) in reads {
            let reply = self
                .send(Method::GET, route, &[id], Some(token), None)
                .await;
            state.insert(name, reply.expect(200).body);
        }
        state
    }

    /// One cell: `op` as `face` (one token of the column `who`).
    /// Returns the state after it (checked).
    async fn cell(&self, cell: Cell<'_>, ids: &Ids, before: State) -> State {
        let Cell {
            op,
            who,
            face,
            token,
            status,
        } = cell;
        let label = format!("{op:?} as {face}");
        let reply = self.call(op, token, ids).await;
        assert_eq!(reply.status, status, "{label}: {}", reply.body);
        if (200..300).contains(&status) {
            let expected = self.succeeded(op, ids, &before, &reply, &label).await;
            if op.is_read() {
                return before;
            }
            let after = self.state().await;
            assert_eq!(after, expected, "{label}: wrong effect");
            return after;
        }
        assert_eq!(reply.body, refusal(op, who, status), "{label}");
        // An existing-but-foreign (or invisible) id and one that exists
        // nowhere must be refused alike.
        let mut ghosts = Vec::new();
        if op.has_child() {
            ghosts.push(("a missing child", ids.ghost_child()));
        }
        if status != 403 {
            ghosts.push(("missing ids", ids.ghost_all()));
        }
        for (what, ghost) in ghosts {
            let other = self.call(op, token, &ghost).await;
            assert_eq!(
                (other.status, &other.body),
                (reply.status, &reply.body),
                "{label}: refused differently for {what}"
            );
        }
        if op.is_read() {
            return before;
        }
        let after = self.state().await;
        assert_eq!(
            after, before,
            "{label}: a refused request changed something"
        );
        after
    }

    /// After every cell ran: each refused write's fresh target is still
    /// exactly as it was created (or still absent).
    async fn refused_writes_left_no_trace(&self, refused: &[(Op, Ids)]) {
        let admin = Some(self.acme.admin.as_str());
        let members = self
            .send(Method::GET, MEMBERS, &[self.acme.id], admin, None)
            .await;
        let members = members.expect(200).body;
        let members = members.as_array().unwrap();
        for (op, ids) in refused {
            match *op {
                AddMember => assert!(
                    !members.iter().any(|m| m["user_id"] == ids.user),
                    "{op:?}: {} became a member",
                    ids.email
                ),
                ChangeRole | RemoveMember => assert!(
                    members.contains(&ids.original),
                    "{op:?}: {} is no longer {}",
                    ids.email,
                    ids.original
                ),
                CreateSource(t) => {
                    let list = self
                        .send(Method::GET, SOURCES, &[ids.scope], self.owner(t), None)
                        .await
                        .expect(200)
                        .body;
                    assert!(
                        !list
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|s| s["name"] == ids.name.as_str()),
                        "{op:?}: {} was created",
                        ids.name
                    );
                }
                PatchSource(t) | DeleteSource(t) => {
                    let got = self
                        .send(
                            Method::GET,
                            SOURCE,
                            &[ids.scope, ids.source],
                            self.owner(t),
                            None,
                        )
                        .await
                        .expect(200);
                    assert_eq!(got.body, ids.original, "{op:?}");
                }
                GetOrg | ListMembers | ListSources(_) | GetSource(_) => {}
            }
        }
    }

    /// Checks a permitted answer; returns the state it should leave.
    async fn succeeded(
        &self,
        op: Op,
        ids: &Ids,
        before: &State,
        reply: &Reply,
        label: &str,
    ) -> State {
        let mut after = before.clone();
        let list = |after: &mut State, name: &'static str| -> Vec<Value> {
            std::mem::take(after.get_mut(name).unwrap().as_array_mut().unwrap())
        };
        let by = |field: &'static str, id: i64| move |v: &Value| v[field] == id;
        match op {
            GetOrg => assert_eq!(reply.body, before["acme"], "{label}"),
            ListMembers => assert_eq!(reply.body, before["acme members"], "{label}"),
            ListSources(t) => assert_eq!(reply.body, before[key(t)], "{label}"),
            GetSource(t) => {
                assert_eq!(reply.body, self.seeded[key(t)], "{label}");
                assert!(before[key(t)].as_array().unwrap().contains(&reply.body));
            }
            AddMember => {
                assert_eq!(reply.body["user_id"], ids.user, "{label}");
                assert_eq!(reply.body["role"], "member", "{label}");
                let mut members = list(&mut after, "acme members");
                members.push(reply.body.clone());
                after.insert("acme members", Value::Array(members));
            }
            ChangeRole => {
                assert_eq!(reply.body["user_id"], ids.user, "{label}");
                assert_eq!(reply.body["role"], "admin", "{label}");
                let mut members = list(&mut after, "acme members");
                let at = members.iter().position(by("user_id", ids.user)).unwrap();
                members[at] = reply.body.clone();
                after.insert("acme members", Value::Array(members));
            }
            RemoveMember => {
                let mut members = list(&mut after, "acme members");
                members.retain(|m| !by("user_id", ids.user)(m));
                after.insert("acme members", Value::Array(members));
                // Gone with their user scope: they see nothing of Acme.
                let gone = ids.fresh_token.as_deref();
                let scopes = self.send(Method::GET, "/api/scopes", &[], gone, None).await;
                assert_eq!(scopes.expect(200).body, json!([]), "{label}");
                self.send(Method::GET, ORG, &[self.acme.id], gone, None)
                    .await
                    .expect(404);
            }
            CreateSource(t) => {
                assert_eq!(reply.body["name"], ids.name.as_str(), "{label}");
                assert_eq!(reply.body["scope_id"], ids.scope, "{label}");
                let mut sources = list(&mut after, key(t));
                sources.push(reply.body.clone());
                after.insert(key(t), Value::Array(sources));
            }
            PatchSource(t) => {
                let mut sources = list(&mut after, key(t));
                let at = sources.iter().position(by("id", ids.source)).unwrap();
                let old = &sources[at];
                for field in ["id", "scope_id", "name", "kind", "created_at"] {
                    assert_eq!(reply.body[field], old[field], "{label}: {field}");
                }
                assert_eq!(reply.body["url"], "https://patched.example.com/v2");
                assert_eq!(reply.body["config"], json!({"patched": true}));
                sources[at] = reply.body.clone();
                after.insert(key(t), Value::Array(sources));
            }
            DeleteSource(t) => {
                assert_eq!(reply.body, Value::Null, "{label}");
                let mut sources = list(&mut after, key(t));
                let had = sources.len();
                sources.retain(|s| !by("id", ids.source)(s));
                assert_eq!(sources.len(), had - 1, "{label}");
                after.insert(key(t), Value::Array(sources));
            }
        }
        after
    }

    /// Ids that exist but belong elsewhere, sent through a container the
    /// caller may use, are "not found" exactly like ids that exist nowhere.
    async fn foreign_children_through_own_containers(&self) {
        let (acme, globex) = (&self.acme, &self.globex);
        let seeded = |t: Target| self.seeded[key(t)]["id"].as_i64().unwrap();
        // (what, container, foreign child, whose token)
        let sources = [
            (
                "Acme's shared source via Globex's org scope",
                globex.org_scope,
                seeded(Shared),
                &globex.admin,
            ),
            (
                "the member's source via the org scope, as admin",
                acme.org_scope,
                seeded(MembersOwn),
                &acme.admin,
            ),
            (
                "the admin's source via the org scope, as admin",
                acme.org_scope,
                seeded(AdminsOwn),
                &acme.admin,
            ),
            (
                "the admin's source via the member's scope",
                acme.member_scope,
                seeded(AdminsOwn),
                &acme.member,
            ),
            (
                "the shared source via the member's scope",
                acme.member_scope,
                seeded(Shared),
                &acme.member,
            ),
        ];
        let mut cases = Vec::new();
        for (what, container, child, token) in sources {
            for (method, body) in [
                (Method::GET, None),
                (Method::PATCH, Some(json!({"name": "hijacked"}))),
                (Method::DELETE, None),
            ] {
                cases.push((
                    what,
                    method,
                    SOURCE,
                    container,
                    child,
                    token,
                    body,
                    "source not found",
                ));
            }
        }
        for (method, body) in [
            (Method::PATCH, Some(json!({"role": "admin"}))),
            (Method::DELETE, None),
        ] {
            let what = "Acme's member via Globex, as Globex's admin";
            cases.push((
                what,
                method,
                MEMBER,
                globex.id,
                acme.member_id,
                &globex.admin,
                body,
                "member not found",
            ));
        }
        let before = self.state().await;
        for (what, method, route, container, child, token, body, message) in cases {
            let label = format!("{method} {what}");
            let real = self
                .send(
                    method.clone(),
                    route,
                    &[container, child],
                    Some(token),
                    body.clone(),
                )
                .await;
            assert_eq!(real.body, json!({ "error": message }), "{label}");
            assert_eq!(real.status, 404, "{label}");
            let ghost = self
                .send(method, route, &[container, GHOST], Some(token), body)
                .await;
            assert_eq!(
                (ghost.status, &ghost.body),
                (real.status, &real.body),
                "{label}"
            );
        }
        assert_eq!(self.state().await, before, "a foreign id changed something");
    }

    async fn stop(self) {
        self.app.stop().await;
    }
}

/// Part 1: every cell once, one at a time.
async fn matrix(backend: Backend) {
    let world = World::new(backend).await;
    let mut cells = 0;
    let mut refused = Vec::new();
    for (op, statuses) in MATRIX {
        // Fresh targets for the whole row first, so that only the cells
        // themselves change the state between two readings of it.
        let mut row = Vec::new();
        for (who, status) in WHO.into_iter().zip(statuses) {
            for (face, token) in world.faces(who) {
                row.push((who, status, face, token, world.prepare(op).await));
            }
        }
        let mut state = world.state().await;
        for (who, status, face, token, ids) in row {
            let token = token.as_deref();
            let cell = Cell {
                op,
                who,
                face,
                token,
                status,
            };
            state = world.cell(cell, &ids, state).await;
            if status >= 400 && !op.is_read() {
                refused.push((op, ids));
            }
            cells += 1;
        }
    }
    assert_eq!(cells, MATRIX.len() * 7);
    world.refused_writes_left_no_trace(&refused).await;
    world.foreign_children_through_own_containers().await;
    // The seeded sources were read, never written: still exactly as created.
    let state = world.state().await;
    for target in [Shared, MembersOwn, AdminsOwn] {
        let seeded = &world.seeded[key(target)];
        let id = seeded["id"].as_i64().unwrap();
        let got = world
            .send(
                Method::GET,
                SOURCE,
                &[world.scope(target), id],
                world.owner(target),
                None,
            )
            .await
            .expect(200);
        assert_eq!(&got.body, seeded);
        assert!(state[key(target)].as_array().unwrap().contains(seeded));
    }
    world.stop().await;
}

/// One read request and the answer it must get, every time.
struct Job {
    label: String,
    op: Op,
    token: Option<String>,
    ids: Ids,
    status: u16,
    body: Value,
}

const ROUNDS: usize = 20;
const CONCURRENCY: usize = 16;

/// Part 2: the read cells (and their ghost twins) for every caller, 20
/// rounds, 16 in flight at once; every answer must be the one it gets alone.
async fn matrix_under_concurrent_load(backend: Backend) {
    let world = World::new(backend).await;
    let before = world.state().await;
    let mut jobs = Vec::new();
    for (op, statuses) in MATRIX.into_iter().filter(|(op, _)| op.is_read()) {
        for (who, status) in WHO.into_iter().zip(statuses) {
            let ids = world.prepare(op).await;
            for (face, token) in world.faces(who) {
                // Alone first: the answer every concurrent repeat must match.
                let reply = world.call(op, token.as_deref(), &ids).await;
                assert_eq!(reply.status, status, "{op:?} as {face}: {}", reply.body);
                let mut variants = vec![("", ids.clone())];
                if status >= 400 && op.has_child() {
                    variants.push((" (missing child)", ids.ghost_child()));
                }
                if status >= 400 && status != 403 {
                    variants.push((" (missing ids)", ids.ghost_all()));
                }
                for (what, ids) in variants {
                    jobs.push(Job {
                        label: format!("{op:?} as {face}{what}"),
                        op,
                        token: token.clone(),
                        ids,
                        status,
                        body: reply.body.clone(),
                    });
                }
            }
        }
    }
    let jobs = Arc::new(jobs);
    let world = Arc::new(world);
    let next = Arc::new(AtomicUsize::new(0));
    let total = ROUNDS * jobs.len();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (jobs, world, next) = (jobs.clone(), world.clone(), next.clone());
            tokio::spawn(async move {
                let mut wrong = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return wrong;
                    }
                    let job = &jobs[i % jobs.len()];
                    let reply = world.call(job.op, job.token.as_deref(), &job.ids).await;
                    if reply.status != job.status || reply.body != job.body {
                        wrong.push(format!(
                            "{}: got {} {}, expected {} {}",
                            job.label, reply.status, reply.body, job.status, job.body
                        ));
                    }
                }
            })
        })
        .collect();
    let mut wrong = Vec::new();
    for worker in workers {
        match worker.await {
            Ok(w) => wrong.extend(w),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {total} concurrent answers differ from the table, e.g.:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(10)].join("\n")
    );
    assert!(jobs.len() >= 56, "{} read jobs", jobs.len());
    assert_eq!(world.state().await, before, "reads changed something");
    let Ok(world) = Arc::try_unwrap(world) else {
        panic!("the workers still hold the world")
    };
    world.stop().await;
}

// Part 3: who sees which users, organisations and scopes.
//
// Six people: Acme's admin and member, Globex's admin and member, Bea who
// belongs to both, and Lou who belongs to none. A caller sees themself,
// the accounts they created and those who share an organisation with
// them, nobody else; an organisation or a scope only if they belong to it.

/// The people of part 3, by index into `People::all`.
const ADA: usize = 0;
const MAX: usize = 1;
const GUS: usize = 2;
const GIA: usize = 3;
const BEA: usize = 4;
const LOU: usize = 5;

/// Whom each person may see (themself included), by index.
const SEES: [&[usize]; 6] = [
    /* ADA */ &[ADA, MAX, BEA],
    /* MAX */ &[ADA, MAX, BEA],
    /* GUS */ &[GUS, GIA, BEA],
    /* GIA */ &[GUS, GIA, BEA],
    /* BEA */ &[ADA, MAX, GUS, GIA, BEA],
    /* LOU */ &[LOU],
];

/// One person: their user as the database has it, and a token.
#[derive(Debug, Clone)]
struct Person {
    label: &'static str,
    user: Value,
    token: String,
}

impl Person {
    fn id(&self) -> i64 {
        self.user["id"].as_i64().unwrap()
    }
}

/// A user as stored, read around the API (what the API must show to
/// those who may see it).
async fn stored_user(app: &TestApp, id: i64) -> Value {
    use cloud_api::services::Db;
    let db = app.registry.app::<Db>().expect("Db is registered");
    let connection = db.database().acquire().await.expect("a connection");
    let user = connection.get_user(id).await.expect("the user");
    connection.close().await;
    serde_json::to_value(user).unwrap()
}

async fn person(app: &TestApp, label: &'static str, email: &str) -> Person {
    let (id, token) = app.user(label, email).await;
    Person {
        label,
        user: stored_user(app, id).await,
        token,
    }
}

struct People {
    app: TestApp,
    all: Vec<Person>,
    acme: i64,
    globex: i64,
}

impl People {
    async fn new(backend: Backend) -> People {
        let app = TestApp::start(backend).await;
        let mut all = Vec::new();
        for (label, email) in [
            ("Ada", "ada@acme.example.com"),
            ("Max", "max@acme.example.com"),
            ("Gus", "gus@globex.example.com"),
            ("Gia", "gia@globex.example.com"),
            ("Bea", "bea@example.com"),
            ("Lou", "lou@example.com"),
        ] {
            all.push(person(&app, label, email).await);
        }
        let mut people = People {
            app,
            all,
            acme: 0,
            globex: 0,
        };
        people.acme = people.org(ADA, "Acme", &[MAX, BEA]).await;
        people.globex = people.org(GUS, "Globex", &[GIA, BEA]).await;
        people
    }

    /// An organisation created by `admin` with `members` added by email.
    async fn org(&self, admin: usize, name: &str, members: &[usize]) -> i64 {
        let token = Some(self.all[admin].token.as_str());
        let org = self
            .app
            .post("/api/orgs", &[], token, json!({"name": name}))
            .await
            .expect(201);
        let id = org.body["id"].as_i64().unwrap();
        for &m in members {
            let email = &self.all[m].user["email"];
            self.app
                .post(MEMBERS, &[&id], token, json!({"email": email}))
                .await
                .expect(201);
        }
        id
    }

    fn token(&self, who: usize) -> Option<&str> {
        Some(self.all[who].token.as_str())
    }

    /// `GET /api/users` as `who` must show exactly these users, by id.
    fn expected_list(&self, who: usize) -> Value {
        let mut users: Vec<&Value> = SEES[who].iter().map(|&i| &self.all[i].user).collect();
        users.sort_by_key(|u| u["id"].as_i64());
        json!({"users": users, "total": users.len()})
    }

    /// The organisations `who` belongs to, as (id, role).
    fn expected_orgs(&self, who: usize) -> Vec<(i64, &'static str)> {
        match who {
            ADA => vec![(self.acme, "admin")],
            MAX => vec![(self.acme, "member")],
            GUS => vec![(self.globex, "admin")],
            GIA => vec![(self.globex, "member")],
            BEA => vec![(self.acme, "member"), (self.globex, "member")],
            _ => vec![],
        }
    }

    /// Every read of part 3 as `who`, with the one answer it must get.
    fn reads(&self, who: usize) -> Vec<(String, String, u16, Option<Value>)> {
        let label = self.all[who].label;
        let mut reads = vec![(
            format!("GET /api/users as {label}"),
            "/api/users".to_owned(),
            200,
            Some(self.expected_list(who)),
        )];
        let visible: Vec<&Value> = self.expected_list(who)["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| &self.all.iter().find(|p| &p.user == u).unwrap().user)
            .collect();
        let second = visible
            .get(1)
            .map(|u| vec![(*u).clone()])
            .unwrap_or_default();
        reads.push((
            format!("GET /api/users?limit=1&offset=1 as {label}"),
            "/api/users?limit=1&offset=1".to_owned(),
            200,
            Some(json!({"users": second, "total": visible.len()})),
        ));
        for (i, target) in self.all.iter().enumerate() {
            let (status, body) = if SEES[who].contains(&i) {
                (200, target.user.clone())
            } else {
                (404, json!({"error": "user not found"}))
            };
            reads.push((
                format!(
                    "GET /api/users/{} ({}) as {label}",
                    target.id(),
                    target.label
                ),
                format!("/api/users/{}", target.id()),
                status,
                Some(body),
            ));
        }
        reads.push((
            format!("GET /api/users/{GHOST} as {label}"),
            format!("/api/users/{GHOST}"),
            404,
            Some(json!({"error": "user not found"})),
        ));
        for org in [self.acme, self.globex] {
            if !self.expected_orgs(who).iter().any(|&(id, _)| id == org) {
                reads.push((
                    format!("GET /api/orgs/{org} as {label}"),
                    format!("/api/orgs/{org}"),
                    404,
                    Some(json!({"error": "organisation not found"})),
                ));
            }
        }
        // The lists of organisations and scopes are checked by `check_lists`.
        reads.push((
            format!("GET /api/orgs as {label}"),
            "/api/orgs".into(),
            200,
            None,
        ));
        reads.push((
            format!("GET /api/scopes as {label}"),
            "/api/scopes".into(),
            200,
            None,
        ));
        reads
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.app.call(Method::GET, path, &[], token, None).await
    }

    /// `GET /api/orgs` and `GET /api/scopes` as `who`: exactly their
    /// organisations, and in them the org scope and their own user scope.
    fn check_lists(&self, who: usize, orgs: &Value, scopes: &Value) -> Result<(), String> {
        let label = self.all[who].label;
        let got: Vec<(i64, &str)> = orgs
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (o["id"].as_i64().unwrap(), o["role"].as_str().unwrap()))
            .collect();
        let expected = self.expected_orgs(who);
        if got != expected {
            return Err(format!(
                "GET /api/orgs as {label}: {got:?}, expected {expected:?}"
            ));
        }
        let mut got: Vec<(i64, Option<i64>)> = scopes
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["org_id"].as_i64().unwrap(), s["user_id"].as_i64()))
            .collect();
        got.sort();
        let me = self.all[who].id();
        let mut expected: Vec<(i64, Option<i64>)> = expected
            .iter()
            .flat_map(|&(org, _)| [(org, None), (org, Some(me))])
            .collect();
        expected.sort();
        if got != expected {
            return Err(format!(
                "GET /api/scopes as {label}: {got:?}, expected {expected:?}"
            ));
        }
        Ok(())
    }

    /// Every read of every person, one at a time.
    async fn check_all_reads(&self) {
        for who in 0..self.all.len() {
            let token = self.token(who);
            for (label, path, status, body) in self.reads(who) {
                let reply = self.get(&path, token).await;
                assert_eq!(reply.status, status, "{label}: {}", reply.body);
                if let Some(body) = body {
                    assert_eq!(reply.body, body, "{label}");
                }
            }
            let orgs = self.get("/api/orgs", token).await.expect(200).body;
            let scopes = self.get("/api/scopes", token).await.expect(200).body;
            self.check_lists(who, &orgs, &scopes).unwrap();
        }
    }
}

/// Part 3, one request at a time: every person against every user, and
/// what creating users and organisations shows to whom: an account is seen
/// by its creator and by those who come to share an organisation with it.
async fn users_orgs_and_scopes(backend: Backend) {
    let mut people = People::new(backend).await;
    people.check_all_reads().await;
    // Without a token, or with a bad one, nothing at all.
    for path in ["/api/users", "/api/orgs", "/api/scopes"] {
        for token in [None, Some("pv_garbage")] {
            people.get(path, token).await.expect(401);
        }
    }
    people
        .get(&format!("/api/users/{}", people.all[ADA].id()), None)
        .await
        .expect(401);

    // Lou creates an account for Newt: from then on Lou sees it (Lou wrote
    // its name and email), nobody else does.
    let newt = people
        .app
        .post(
            "/api/users",
            &[],
            people.token(LOU),
            json!({"name": "Newt", "email": "newt@example.com"}),
        )
        .await
        .expect(201);
    let newt_id = newt.body["id"].as_i64().unwrap();
    assert_eq!(newt.body, stored_user(&people.app, newt_id).await);
    let lou_sees = people
        .get("/api/users", people.token(LOU))
        .await
        .expect(200);
    assert_eq!(
        lou_sees.body,
        json!({"users": [people.all[LOU].user, newt.body], "total": 2}),
        "Lou's list after creating Newt"
    );
    for who in 0..people.all.len() {
        let reply = people
            .get(&format!("/api/users/{newt_id}"), people.token(who))
            .await;
        let expected = if who == LOU {
            (200, newt.body.clone())
        } else {
            (404, json!({"error": "user not found"}))
        };
        assert_eq!(
            (reply.status, reply.body),
            expected,
            "Newt as seen by {}",
            people.all[who].label
        );
    }
    // Everyone else's reads are as before.
    for who in [ADA, MAX, GUS, GIA, BEA] {
        let token = people.token(who);
        let list = people.get("/api/users", token).await.expect(200);
        assert_eq!(
            list.body,
            people.expected_list(who),
            "{}",
            people.all[who].label
        );
    }
    // Taken emails are refused whoever holds them, naming nobody.
    for who in [LOU, GUS] {
        let taken = people
            .app
            .post(
                "/api/users",
                &[],
                people.token(who),
                json!({"name": "Impostor", "email": "ada@acme.example.com"}),
            )
            .await
            .expect(409);
        assert_eq!(
            taken.body,
            json!({"error": "a user with this email already exists"})
        );
    }
    // Ada adds Newt to Acme: now Acme sees Newt, and Newt sees Acme.
    people
        .app
        .post(
            MEMBERS,
            &[&people.acme],
            people.token(ADA),
            json!({"email": "newt@example.com"}),
        )
        .await
        .expect(201);
    let (_, newt_token) = people.app.user("Newt", "newt@example.com").await;
    people.all.push(Person {
        label: "Newt",
        user: newt.body.clone(),
        token: newt_token,
    });
    for (who, sees) in [
        (ADA, true),
        (MAX, true),
        (BEA, true),
        (GUS, false),
        (GIA, false),
        (LOU, true),
    ] {
        let reply = people
            .get(&format!("/api/users/{newt_id}"), people.token(who))
            .await;
        let label = people.all[who].label;
        if sees {
            assert_eq!(
                (reply.status, &reply.body),
                (200, &newt.body),
                "Newt as seen by {label}"
            );
        } else {
            assert_eq!(reply.status, 404, "Newt as seen by {label}: {}", reply.body);
        }
    }
    let newt_sees = people
        .get("/api/users", people.token(6))
        .await
        .expect(200)
        .body;
    let ids: Vec<i64> = newt_sees["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect();
    let mut expected = vec![
        people.all[ADA].id(),
        people.all[MAX].id(),
        people.all[BEA].id(),
        newt_id,
    ];
    expected.sort();
    assert_eq!(
        (ids, newt_sees["total"].as_i64()),
        (expected, Some(4)),
        "Newt's list"
    );
    people.all.pop();

    // Gus creates Initech: his alone.
    let initech = people
        .app
        .post(
            "/api/orgs",
            &[],
            people.token(GUS),
            json!({"name": "Initech"}),
        )
        .await
        .expect(201);
    let initech = initech.body["id"].as_i64().unwrap();
    for who in [ADA, MAX, GIA, BEA, LOU] {
        let reply = people
            .get(&format!("/api/orgs/{initech}"), people.token(who))
            .await;
        assert_eq!(
            (reply.status, reply.body),
            (404, json!({"error": "organisation not found"})),
            "Initech as seen by {}",
            people.all[who].label
        );
        let orgs = people
            .get("/api/orgs", people.token(who))
            .await
            .expect(200)
            .body;
        let scopes = people
            .get("/api/scopes", people.token(who))
            .await
            .expect(200)
            .body;
        people.check_lists(who, &orgs, &scopes).unwrap();
    }
    let gus_orgs = people
        .get("/api/orgs", people.token(GUS))
        .await
        .expect(200)
        .body;
    let ids: Vec<i64> = gus_orgs
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![people.globex, initech]);
    people.app.stop().await;
}

const WRITERS: usize = 4;
const WRITES: usize = 5;

/// Part 3 under load: every read of every person, 20 rounds, 16 in flight,
/// while four other tenants each create organisations and users and add
/// them as members. Every read must get the answer it gets alone, and each
/// writer must end up seeing exactly what they made.
async fn users_orgs_and_scopes_under_concurrent_writes(backend: Backend) {
    let people = People::new(backend).await;
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let email: &'static str = Box::leak(format!("writer-{w}@example.com").into_boxed_str());
        writers.push(person(&people.app, "a writer", email).await);
    }
    let mut jobs = Vec::new();
    for who in 0..people.all.len() {
        for (label, path, status, body) in people.reads(who) {
            jobs.push((who, label, path, status, body));
        }
    }
    let jobs = Arc::new(jobs);
    let people = Arc::new(people);
    let next = Arc::new(AtomicUsize::new(0));
    let total = ROUNDS * jobs.len();
    let readers: Vec<_> = (0..CONCURRENCY - WRITERS)
        .map(|_| {
            let (jobs, people, next) = (jobs.clone(), people.clone(), next.clone());
            tokio::spawn(async move {
                let mut wrong = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return wrong;
                    }
                    let (who, label, path, status, body) = &jobs[i % jobs.len()];
                    let reply = people.get(path, people.token(*who)).await;
                    let right = reply.status == *status
                        && match (body, path.as_str()) {
                            (Some(body), _) => reply.body == *body,
                            (None, "/api/orgs") => people
                                .check_lists(
                                    *who,
                                    &reply.body,
                                    &json!(null_scopes(people.as_ref(), *who)),
                                )
                                .is_ok(),
                            (None, _) => people
                                .check_lists(
                                    *who,
                                    &json!(orgs_json(people.as_ref(), *who)),
                                    &reply.body,
                                )
                                .is_ok(),
                        };
                    if !right {
                        wrong.push(format!("{label}: got {} {}", reply.status, reply.body));
                    }
                }
            })
        })
        .collect();
    let writing: Vec<_> = writers
        .iter()
        .enumerate()
        .map(|(w, writer)| {
            let (people, token) = (people.clone(), writer.token.clone());
            tokio::spawn(async move {
                let t = Some(token.as_str());
                let mut made = Vec::new();
                for n in 0..WRITES {
                    let org = people
                        .app
                        .post(
                            "/api/orgs",
                            &[],
                            t,
                            json!({"name": format!("W{w} org {n}")}),
                        )
                        .await
                        .expect(201)
                        .body;
                    let email = format!("w{w}-made-{n}@example.com");
                    let user = people
                        .app
                        .post(
                            "/api/users",
                            &[],
                            t,
                            json!({"name": format!("Made {w}.{n}"), "email": email}),
                        )
                        .await
                        .expect(201)
                        .body;
                    people
                        .app
                        .post(
                            MEMBERS,
                            &[&org["id"].as_i64().unwrap()],
                            t,
                            json!({"email": email}),
                        )
                        .await
                        .expect(201);
                    made.push((org, user));
                }
                made
            })
        })
        .collect();
    let mut wrong = Vec::new();
    for reader in readers {
        match reader.await {
            Ok(w) => wrong.extend(w),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    let mut made = Vec::new();
    for writer in writing {
        match writer.await {
            Ok(m) => made.push(m),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {total} concurrent answers differ from the ones alone, e.g.:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(10)].join("\n")
    );
    // Each writer sees themself and the users they made, and their orgs.
    for (w, writer) in writers.iter().enumerate() {
        let t = Some(writer.token.as_str());
        let mut users = vec![writer.user.clone()];
        users.extend(made[w].iter().map(|(_, u)| u.clone()));
        users.sort_by_key(|u| u["id"].as_i64());
        let list = people.get("/api/users?limit=500", t).await.expect(200).body;
        assert_eq!(
            list,
            json!({"users": users, "total": WRITES + 1}),
            "writer {w}"
        );
        let orgs = people.get("/api/orgs", t).await.expect(200).body;
        let ids: Vec<&Value> = orgs.as_array().unwrap().iter().map(|o| &o["id"]).collect();
        let mine: Vec<&Value> = made[w].iter().map(|(o, _)| &o["id"]).collect();
        assert_eq!(ids, mine, "writer {w}'s organisations");
        // Another writer's users stay invisible.
        let other = &made[(w + 1) % WRITERS][0].1;
        let reply = people.get(&format!("/api/users/{}", other["id"]), t).await;
        assert_eq!(reply.status, 404, "writer {w} sees {other}");
    }
    people.check_all_reads().await;
    let Ok(people) = Arc::try_unwrap(people) else {
        panic!("the tasks still hold the people")
    };
    people.app.stop().await;
}

/// The orgs `who` must see, shaped enough for `check_lists`.
fn orgs_json(people: &People, who: usize) -> Vec<Value> {
    people
        .expected_orgs(who)
        .into_iter()
        .map(|(id, role)| json!({"id": id, "role": role}))
        .collect()
}

/// The scopes `who` must see, shaped enough for `check_lists`.
fn null_scopes(people: &People, who: usize) -> Vec<Value> {
    let me = people.all[who].id();
    people
        .expected_orgs(who)
        .into_iter()
        .flat_map(|(org, _)| {
            [
                json!({"org_id": org, "user_id": null}),
                json!({"org_id": org, "user_id": me}),
            ]
        })
        .collect()
}

on_every_backend! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    super::{
        matrix,
        matrix_under_concurrent_load,
        users_orgs_and_scopes,
        users_orgs_and_scopes_under_concurrent_writes,
    }(backend)
}
