//! The API contract: one function per behaviour, run against every backend
//! by `tests/api.rs`. Every answer is also checked against the OpenAPI
//! document by the client.

use cloud_api::services::Conn;
use reqwest::Method;
use serde_json::{Value, json};

use super::{Backend, TestApp};

async fn app_with_admin(backend: Backend) -> (TestApp, String) {
    let app = TestApp::start(backend).await;
    let (_, token) = app.user("Ada", "ada@example.com").await;
    (app, token)
}

pub async fn health_is_public_and_builds_nothing(backend: Backend) {
    let app = TestApp::start(backend).await;
    let reply = app.get("/api/health", &[], None).await.expect(200);
    assert_eq!(reply.body, json!({"status": "ok"}));
    let reply = app
        .get("/api/health", &[], Some("pv_garbage"))
        .await
        .expect(200);
    assert_eq!(
        reply.body["status"], "ok",
        "health never looks at the token"
    );
    let probe = app.registry.probe();
    assert_eq!(probe.acquires::<Conn>(), 0, "health opened a connection");
    assert_eq!(app.metrics.connections_opened(), 0);
    app.stop().await;
}

pub async fn ready_checks_the_database(backend: Backend) {
    let app = TestApp::start(backend).await;
    let reply = app.get("/api/ready", &[], None).await.expect(200);
    assert_eq!(reply.body, json!({"status": "ready"}));
    assert_eq!(app.registry.probe().acquires::<Conn>(), 1);
    app.stop().await;
}

pub async fn openapi_document_is_public(backend: Backend) {
    let app = TestApp::start(backend).await;
    let reply = app.get("/api/openapi.json", &[], None).await.expect(200);
    assert!(reply.body["openapi"].as_str().unwrap().starts_with("3."));
    assert!(reply.body["paths"]["/api/users/{id}"]["get"].is_object());
    assert_eq!(app.registry.probe().acquires::<Conn>(), 0);
    app.stop().await;
}

pub async fn protected_routes_refuse_missing_and_bad_tokens(backend: Backend) {
    let (app, _) = app_with_admin(backend).await;
    let missing = app.get("/api/users", &[], None).await.expect(401);
    assert!(
        missing.error().contains("missing bearer token"),
        "{}",
        missing.error()
    );
    let bad = app
        .get("/api/users", &[], Some("pv_1_00"))
        .await
        .expect(401);
    assert_eq!(
        bad.error(),
        "the bearer token is invalid or has been revoked"
    );
    let malformed = app
        .get("/api/users", &[], Some("not-a-token"))
        .await
        .expect(401);
    assert_eq!(
        malformed.error(),
        "the bearer token is invalid or has been revoked"
    );
    let basic = app
        .raw(Method::GET, "/api/users", &[], |r| {
            r.header("authorization", "Basic YWRhOnB3")
        })
        .await
        .expect(401);
    assert_eq!(
        basic.error(),
        "the Authorization header must be `Bearer <token>`"
    );
    // Refused for shape before any connection was opened.
    let probe = app.registry.probe();
    assert_eq!(
        probe.acquires::<Conn>(),
        2,
        "only the two tokens that had a shape were looked up"
    );
    app.stop().await;
}

pub async fn users_create_get_and_list(backend: Backend) {
    let (app, token) = app_with_admin(backend).await;
    let t = Some(token.as_str());
    let created = app
        .post(
            "/api/users",
            &[],
            t,
            json!({"name": "Grace", "email": "grace@example.com"}),
        )
        .await
        .expect(201);
    assert_eq!(created.body["name"], "Grace");
    assert_eq!(created.body["email"], "grace@example.com");
    let id = created.body["id"].as_i64().unwrap();
    assert!(created.body["created_at"].as_str().unwrap().ends_with('Z'));

    let fetched = app.get("/api/users/{id}", &[&id], t).await.expect(200);
    assert_eq!(fetched.body, created.body);

    let list = app.get("/api/users", &[], t).await.expect(200);
    assert_eq!(list.body["total"], 2);
    let emails: Vec<&str> = list.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        ["ada@example.com", "grace@example.com"],
        "ordered by id"
    );
    app.stop().await;
}

pub async fn users_pagination(backend: Backend) {
    let (app, token) = app_with_admin(backend).await;
    let t = Some(token.as_str());
    for i in 0..6 {
        app.post(
            "/api/users",
            &[],
            t,
            json!({"name": format!("U{i}"), "email": format!("u{i}@example.com")}),
        )
        .await
        .expect(201);
    }
    let page = app
        .get("/api/users?limit=2&offset=3", &[], t)
        .await
        .expect(200);
    assert_eq!(page.body["total"], 7);
    let names: Vec<&str> = page.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["U2", "U3"]);
    let past_the_end = app.get("/api/users?offset=100", &[], t).await.expect(200);
    assert_eq!(past_the_end.body["users"], json!([]));
    assert_eq!(past_the_end.body["total"], 7);
    for bad in [
        "limit=0",
        "limit=501",
        "limit=-1",
        "offset=-1",
        "limit=abc",
        "limit=99999999999999999999",
    ] {
        let reply = app.get(&format!("/api/users?{bad}"), &[], t).await;
        assert_eq!(reply.status, 400, "{bad}: {}", reply.body);
        assert!(!reply.error().is_empty());
    }
    let max = app.get("/api/users?limit=500", &[], t).await.expect(200);
    assert_eq!(max.body["users"].as_array().unwrap().len(), 7);
    app.stop().await;
}

pub async fn users_bad_input_is_a_clear_4xx(backend: Backend) {
    let (app, token) = app_with_admin(backend).await;
    let t = Some(token.as_str());
    let missing = app
        .post("/api/users", &[], t, json!({"name": "No Email"}))
        .await
        .expect(400);
    assert!(missing.error().contains("email"), "{}", missing.error());
    let bad_email = app
        .post(
            "/api/users",
            &[],
            t,
            json!({"name": "X", "email": "not-an-email"}),
        )
        .await
        .expect(400);
    assert!(bad_email.error().contains("email"), "{}", bad_email.error());
    let empty_name = app
        .post(
            "/api/users",
            &[],
            t,
            json!({"name": "  ", "email": "x@example.com"}),
        )
        .await
        .expect(400);
    assert!(
        empty_name.error().contains("name"),
        "{}",
        empty_name.error()
    );
    let wrong_type = app
        .post(
            "/api/users",
            &[],
            t,
            json!({"name": 5, "email": "x@example.com"}),
        )
        .await
        .expect(400);
    assert!(
        wrong_type.error().contains("name"),
        "{}",
        wrong_type.error()
    );
    let broken = app
        .raw(Method::POST, "/api/users", &[], |r| {
            r.bearer_auth(&token)
                .header("content-type", "application/json")
                .body("{\"name\": ")
        })
        .await
        .expect(400);
    assert!(broken.error().contains("JSON"), "{}", broken.error());
    let not_json = app
        .raw(Method::POST, "/api/users", &[], |r| {
            r.bearer_auth(&token)
                .header("content-type", "text/plain")
                .body("hi")
        })
        .await
        .expect(415);
    assert!(
        not_json.error().contains("application/json"),
        "{}",
        not_json.error()
    );
    let huge = app
        .raw(Method::POST, "/api/users", &[], |r| {
            r.bearer_auth(&token)
                .header("content-type", "application/json")
                .body(format!(
                    "{{\"name\": \"{}\", \"email\": \"big@example.com\"}}",
                    "x".repeat(200_000)
                ))
        })
        .await
        .expect(413);
    assert!(!huge.error().is_empty());
    let first = app
        .post(
            "/api/users",
            &[],
            t,
            json!({"name": "Dup", "email": "dup@example.com"}),
        )
        .await
        .expect(201);
    let dup = app
        .post(
            "/api/users",
            &[],
            t,
            json!({"name": "Dup 2", "email": "dup@example.com"}),
        )
        .await
        .expect(409);
    assert_eq!(dup.error(), "a user with this email already exists");
    let not_int = app.get("/api/users/{id}", &[&"abc"], t).await.expect(400);
    assert!(not_int.error().contains("abc"), "{}", not_int.error());
    let absent = app.get("/api/users/{id}", &[&987_654], t).await.expect(404);
    assert_eq!(absent.error(), "user not found");
    app.get("/api/users/{id}", &[&-3], t).await.expect(404);
    // Nothing half-written: only the first Dup exists.
    let list = app.get("/api/users?limit=500", &[], t).await.expect(200);
    assert_eq!(list.body["total"], 2);
    assert_eq!(list.body["users"][1], first.body);
    app.stop().await;
}

pub async fn unknown_routes_and_methods_are_json_errors(backend: Backend) {
    let app = TestApp::start(backend).await;
    let nothing = app.get("/api/nothing", &[], None).await.expect(404);
    assert_eq!(nothing.error(), "no route for GET /api/nothing");
    let wrong = app.call(Method::PUT, "/api/health", &[], None, None).await;
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.error(), "PUT is not allowed on /api/health");
    app.stop().await;
}

/// An organisation with an admin (Ada) and a member (Max).
pub struct Org {
    pub id: i64,
    pub admin: String,
    pub member: String,
    pub member_id: i64,
    pub org_scope: i64,
    pub member_scope: i64,
    pub admin_scope: i64,
}

pub async fn org(app: &TestApp, name: &str, prefix: &str) -> Org {
    let (_, admin) = app
        .user(
            &format!("{prefix} admin"),
            &format!("{prefix}-admin@example.com"),
        )
        .await;
    let (member_id, member) = app
        .user(
            &format!("{prefix} member"),
            &format!("{prefix}-member@example.com"),
        )
        .await;
    let created = app
        .post("/api/orgs", &[], Some(&admin), json!({"name": name}))
        .await
        .expect(201);
    let id = created.body["id"].as_i64().unwrap();
    app.post(
        "/api/orgs/{org_id}/members",
        &[&id],
        Some(&admin),
        json!({"email": format!("{prefix}-member@example.com")}),
    )
    .await
    .expect(201);
    let scope_of = |scopes: &Value, user: Option<i64>| {
        scopes
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["org_id"] == id && s["user_id"].as_i64() == user)
            .map(|s| s["id"].as_i64().unwrap())
    };
    let admin_scopes = app
        .get("/api/scopes", &[], Some(&admin))
        .await
        .expect(200)
        .body;
    let member_scopes = app
        .get("/api/scopes", &[], Some(&member))
        .await
        .expect(200)
        .body;
    let org_scope = scope_of(&admin_scopes, None).expect("the org scope");
    let admin_scope = admin_scopes
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["org_id"] == id && s["kind"] == "user")
        .map(|s| s["id"].as_i64().unwrap())
        .expect("the admin's user scope");
    let member_scope = scope_of(&member_scopes, Some(member_id)).expect("the member's user scope");
    assert_eq!(
        scope_of(&member_scopes, None),
        Some(org_scope),
        "members see the org scope"
    );
    Org {
        id,
        admin,
        member,
        member_id,
        org_scope,
        member_scope,
        admin_scope,
    }
}

pub async fn organisations_and_members(backend: Backend) {
    let app = TestApp::start(backend).await;
    let acme = org(&app, "Acme", "acme").await;
    let admin = Some(acme.admin.as_str());
    let member = Some(acme.member.as_str());

    let mine = app.get("/api/orgs", &[], member).await.expect(200);
    assert_eq!(mine.body[0]["role"], "member");
    assert_eq!(mine.body[0]["name"], "Acme");
    let got = app
        .get("/api/orgs/{org_id}", &[&acme.id], member)
        .await
        .expect(200);
    assert_eq!(got.body["name"], "Acme");

    let members = app
        .get("/api/orgs/{org_id}/members", &[&acme.id], admin)
        .await
        .expect(200);
    let roles: Vec<(&str, &str)> = members
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["email"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        roles,
        [
            ("acme-admin@example.com", "admin"),
            ("acme-member@example.com", "member")
        ]
    );
    app.get("/api/orgs/{org_id}/members", &[&acme.id], member)
        .await
        .expect(403);

    app.post(
        "/api/orgs/{org_id}/members",
        &[&acme.id],
        admin,
        json!({"email": "nobody@example.com"}),
    )
    .await
    .expect(409);
    let again = app
        .post(
            "/api/orgs/{org_id}/members",
            &[&acme.id],
            admin,
            json!({"email": "acme-member@example.com"}),
        )
        .await
        .expect(409);
    assert_eq!(
        again.error(),
        "the user is already a member of this organisation"
    );
    app.post(
        "/api/orgs/{org_id}/members",
        &[&acme.id],
        admin,
        json!({"email": "x@example.com", "role": "owner"}),
    )
    .await
    .expect(400);

    // The last admin can be neither demoted nor removed...
    let admin_id = members.body[0]["user_id"].as_i64().unwrap();
    let demote = app
        .patch(
            "/api/orgs/{org_id}/members/{user_id}",
            &[&acme.id, &admin_id],
            admin,
            json!({"role": "member"}),
        )
        .await
        .expect(409);
    assert_eq!(
        demote.error(),
        "an organisation must keep at least one admin"
    );
    app.delete(
        "/api/orgs/{org_id}/members/{user_id}",
        &[&acme.id, &admin_id],
        admin,
    )
    .await
    .expect(409);
    // ...until there is another.
    let promoted = app
        .patch(
            "/api/orgs/{org_id}/members/{user_id}",
            &[&acme.id, &acme.member_id],
            admin,
            json!({"role": "admin"}),
        )
        .await
        .expect(200);
    assert_eq!(promoted.body["role"], "admin");
    app.delete(
        "/api/orgs/{org_id}/members/{user_id}",
        &[&acme.id, &admin_id],
        member,
    )
    .await
    .expect(204);
    app.get("/api/orgs/{org_id}", &[&acme.id], admin)
        .await
        .expect(404);
    app.delete(
        "/api/orgs/{org_id}/members/{user_id}",
        &[&acme.id, &admin_id],
        member,
    )
    .await
    .expect(404);

    app.post("/api/orgs", &[], member, json!({"name": ""}))
        .await
        .expect(400);
    app.post("/api/orgs", &[], member, json!({}))
        .await
        .expect(400);
    app.stop().await;
}

pub async fn sources_in_scopes(backend: Backend) {
    let app = TestApp::start(backend).await;
    let acme = org(&app, "Acme", "acme").await;
    let admin = Some(acme.admin.as_str());
    let member = Some(acme.member.as_str());
    let route = "/api/scopes/{scope_id}/sources";
    let one = "/api/scopes/{scope_id}/sources/{source_id}";
    let source = json!({"name": "petstore", "kind": "openapi", "url": "https://petstore.example.com/v3", "config": {"auth": "none"}});

    let created = app
        .post(route, &[&acme.org_scope], admin, source.clone())
        .await
        .expect(201);
    let id = created.body["id"].as_i64().unwrap();
    assert_eq!(created.body["scope_id"], acme.org_scope);
    assert_eq!(created.body["kind"], "openapi");
    assert_eq!(created.body["config"], json!({"auth": "none"}));
    let dup = app
        .post(route, &[&acme.org_scope], admin, source.clone())
        .await
        .expect(409);
    assert_eq!(
        dup.error(),
        "a source with this name already exists in this scope"
    );
    // The same name in another scope is fine.
    app.post(route, &[&acme.member_scope], member, source.clone())
        .await
        .expect(201);

    let listed = app.get(route, &[&acme.org_scope], member).await.expect(200);
    assert_eq!(
        listed.body.as_array().unwrap().len(),
        1,
        "members read the org scope"
    );
    app.get(one, &[&acme.org_scope, &id], member)
        .await
        .expect(200);
    app.post(
        route,
        &[&acme.org_scope],
        member,
        json!({"name": "m", "kind": "mcp", "url": "http://m.example.com", "config": {}}),
    )
    .await
    .expect(403);

    let patched = app
        .patch(
            one,
            &[&acme.org_scope, &id],
            admin,
            json!({"url": "http://petstore.internal:8080/api", "kind": "graphql"}),
        )
        .await
        .expect(200);
    assert_eq!(patched.body["url"], "http://petstore.internal:8080/api");
    assert_eq!(patched.body["kind"], "graphql");
    assert_eq!(patched.body["name"], "petstore");
    assert!(
        patched.body["updated_at"].as_str().unwrap()
            >= created.body["updated_at"].as_str().unwrap()
    );

    for (bad, field) in [
        (
            json!({"name": "x", "kind": "soap", "url": "https://x.example.com", "config": {}}),
            "kind",
        ),
        (
            json!({"name": "x", "kind": "mcp", "url": "ftp://x.example.com", "config": {}}),
            "url",
        ),
        (
            json!({"name": "x", "kind": "mcp", "url": "not a url", "config": {}}),
            "url",
        ),
        (
            json!({"name": "x", "kind": "mcp", "url": "https://x.example.com", "config": [1, 2]}),
            "config",
        ),
        (
            json!({"name": "", "kind": "mcp", "url": "https://x.example.com", "config": {}}),
            "name",
        ),
        (
            json!({"kind": "mcp", "url": "https://x.example.com", "config": {}}),
            "name",
        ),
    ] {
        let reply = app
            .post(route, &[&acme.org_scope], admin, bad.clone())
            .await;
        assert_eq!(reply.status, 400, "{bad}: {}", reply.body);
        assert!(reply.error().contains(field), "{bad}: {}", reply.error());
    }
    app.patch(
        one,
        &[&acme.org_scope, &id],
        admin,
        json!({"url": "javascript:alert(1)"}),
    )
    .await
    .expect(400);

    app.delete(one, &[&acme.org_scope, &id], member)
        .await
        .expect(403);
    app.delete(one, &[&acme.org_scope, &id], admin)
        .await
        .expect(204);
    app.get(one, &[&acme.org_scope, &id], admin)
        .await
        .expect(404);
    app.delete(one, &[&acme.org_scope, &id], admin)
        .await
        .expect(404);
    app.get(route, &[&"abc"], admin).await.expect(400);
    app.get(route, &[&999_999], admin).await.expect(404);
    app.stop().await;
}

pub async fn a_failed_write_leaves_nothing_behind(backend: Backend) {
    let app = TestApp::start(backend).await;
    let acme = org(&app, "Acme", "acme").await;
    let admin = Some(acme.admin.as_str());
    let route = "/api/scopes/{scope_id}/sources";
    app.post(
        route,
        &[&acme.org_scope],
        admin,
        json!({"name": "a", "kind": "mcp", "url": "https://a.example.com", "config": {}}),
    )
    .await
    .expect(201);
    // A conflicting write inside a transaction: rolled back, connection fine.
    app.post(
        route,
        &[&acme.org_scope],
        admin,
        json!({"name": "a", "kind": "mcp", "url": "https://b.example.com", "config": {}}),
    )
    .await
    .expect(409);
    let listed = app.get(route, &[&acme.org_scope], admin).await.expect(200);
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    assert_eq!(listed.body[0]["url"], "https://a.example.com");
    let probe = app.registry.probe();
    assert_eq!(probe.held::<Conn>(), 0);
    assert_eq!(probe.acquires::<Conn>(), probe.releases::<Conn>());
    app.stop().await;
}

pub async fn metrics_count_requests_and_services(backend: Backend) {
    let (app, token) = app_with_admin(backend).await;
    app.get("/api/health", &[], None).await.expect(200);
    app.get("/api/users", &[], Some(&token)).await.expect(200);
    app.get("/api/users", &[], Some(&token)).await.expect(200);
    app.get("/api/users/{id}", &[&987_654], Some(&token))
        .await
        .expect(404);
    let text = reqwest::get(format!("http://{}/metrics", app.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"http_requests_total{method="GET",route="/api/users",status="200"} 2"#,
        r#"http_requests_total{method="GET",route="/api/users/{id}",status="404"} 1"#,
        r#"http_requests_total{method="GET",route="/api/health",status="200"} 1"#,
        r#"provision_service_acquisitions_total{service="Conn",lifetime="request"} 3"#,
        r#"provision_service_held{service="Conn",lifetime="request"} 0"#,
        r#"provision_service_releases_total{service="Conn",lifetime="request",exit="success"} 2"#,
        r#"provision_service_releases_total{service="Conn",lifetime="request",exit="failure"} 1"#,
        r#"provision_service_acquisitions_total{service="Db",lifetime="app"} 1"#,
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
    assert!(
        text.contains(r#"http_request_duration_seconds_count{route="/api/users"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"provision_service_acquire_wait_seconds_count{service="Conn",lifetime="request"} 3"#
        ),
        "{text}"
    );
    app.stop().await;
}
