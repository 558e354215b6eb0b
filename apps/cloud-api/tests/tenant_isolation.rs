//! Tenant isolation: every organisation and sources endpoint against every
//! kind of caller, with the expected status of each cell written out in
//! [`MATRIX`] (derived from the rules in `src/domain/access.rs`). Run one
//! cell at a time (with fresh targets for writes, checking that refused
//! writes changed nothing and that refusals leak nothing), then the read
//! cells under concurrent load. On SQLite and on PostgreSQL in pool mode.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::Method;
use serde_json::{Value, json};

use support::contract::{self, Org};
use support::{Backend, Reply, TestApp};

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

macro_rules! on_backends {
    ($($module:ident => $backend:expr),* $(,)?) => {$(
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn matrix() {
                super::matrix($backend).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn matrix_under_concurrent_load() {
                super::matrix_under_concurrent_load($backend).await
            }
        }
    )*};
}

on_backends!(
    sqlite => Backend::Sqlite,
    postgres_pool => Backend::PostgresPool,
);
