//! What every store backend must do, written once. Each function takes a
//! freshly migrated, empty database.

use cloud_api::domain::{
    MyOrganisation, NewOrganisation, NewSource, NewUser, Organisation, Page, Role, Scope,
    ScopeKind, SourceKind, SourcePatch, User,
};
use cloud_api::store::{Connection, Database, StoreError};
use serde_json::json;

async fn conn(db: &Database) -> Connection {
    db.acquire().await.expect("acquire")
}

fn new_user(n: u32) -> NewUser {
    NewUser {
        name: format!("User {n}"),
        email: format!("user{n}@example.com"),
    }
}

async fn user(c: &Connection, n: u32) -> User {
    c.create_user(&new_user(n)).await.expect("create user")
}

/// Ada admin of Acme (hers) and member of Globex (Grace's): the
/// membership shape that access decisions and scope listings are read
/// against.
async fn ada_in_two_organisations(c: &Connection) -> (User, User, Organisation, Organisation) {
    let ada = user(c, 1).await;
    let grace = user(c, 2).await;
    let acme = c.create_organisation(ada.id, &org("Acme")).await.unwrap();
    let globex = c
        .create_organisation(grace.id, &org("Globex"))
        .await
        .unwrap();
    c.add_member(globex.id, ada.id, Role::Member).await.unwrap();
    (ada, grace, acme, globex)
}

/// Ada (user 1), admin of Acme: the first of her scopes, Acme's own.
async fn acme_scope(c: &Connection) -> Scope {
    let ada = user(c, 1).await;
    c.create_organisation(ada.id, &org("Acme")).await.unwrap();
    c.scopes_of_user(ada.id).await.unwrap().remove(0)
}

/// Ada admin of Acme, and Grace (user 2) a member of it.
async fn grace_member_of_acme(c: &Connection) -> (User, User, Organisation) {
    let ada = user(c, 1).await;
    let grace = user(c, 2).await;
    let acme = c.create_organisation(ada.id, &org("Acme")).await.unwrap();
    c.add_member(acme.id, grace.id, Role::Member).await.unwrap();
    (ada, grace, acme)
}

/// Each member of `org_id` with their role, in the store's order.
async fn roles(c: &Connection, org_id: i64) -> Vec<(i64, Role)> {
    c.list_members(org_id)
        .await
        .unwrap()
        .iter()
        .map(|m| (m.user_id, m.role))
        .collect()
}

/// A patch that renames a source, and nothing else.
fn patch_name(name: &str) -> SourcePatch {
    SourcePatch {
        name: Some(name.into()),
        ..SourcePatch::default()
    }
}

/// A patch that changes a source's url, and nothing else.
fn patch_url(url: &str) -> SourcePatch {
    SourcePatch {
        url: Some(url.into()),
        ..SourcePatch::default()
    }
}

fn org(name: &str) -> NewOrganisation {
    NewOrganisation { name: name.into() }
}

fn source(name: &str) -> NewSource {
    NewSource {
        name: name.into(),
        kind: SourceKind::Openapi,
        url: "https://petstore.example.com/openapi.json".into(),
        config: json!({"headers": {"x-api-key": "secret"}}),
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, the one timestamp format of the API.
fn assert_timestamp(ts: &str) {
    let b = ts.as_bytes();
    let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22];
    let ok = b.len() == 24
        && digits.iter().all(|&i| b[i].is_ascii_digit())
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[23] == b'Z';
    assert!(ok, "not an RFC 3339 UTC millisecond timestamp: {ts:?}");
    assert!(ts.starts_with("20"), "implausible year: {ts}");
}

fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, needle: &str) {
    match result {
        Err(StoreError::Conflict(message)) => {
            assert!(message.contains(needle), "{message:?} lacks {needle:?}")
        }
        other => panic!("expected a conflict about {needle:?}, got {other:?}"),
    }
}

fn assert_invalid<T: std::fmt::Debug>(result: Result<T, StoreError>, field: &str) {
    match result {
        Err(StoreError::Invalid(message)) => assert!(
            message.starts_with(&format!("{field}: ")),
            "{message:?} does not name {field}"
        ),
        other => panic!("expected invalid {field}, got {other:?}"),
    }
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    match result {
        Err(StoreError::NotFound) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

pub async fn ping_answers(db: &Database) {
    let c = conn(db).await;
    c.ping().await.unwrap();
    c.close().await;
}

pub async fn migrate_is_idempotent(db: &Database) {
    db.migrate().await.unwrap();
    db.migrate().await.unwrap();
    let c = conn(db).await;
    assert_eq!(user(&c, 1).await.id, 1);
    c.close().await;
}

pub async fn users_create_get_and_list(db: &Database) {
    let c = conn(db).await;
    let ada = c
        .create_user(&NewUser {
            name: "Ada Lovelace".into(),
            email: "ada@example.com".into(),
        })
        .await
        .unwrap();
    assert_eq!(ada.id, 1);
    assert_eq!(ada.name, "Ada Lovelace");
    assert_eq!(ada.email, "ada@example.com");
    assert_timestamp(&ada.created_at);

    let grace = user(&c, 2).await;
    assert_eq!(grace.id, 2);
    assert_eq!(c.get_user(1).await.unwrap(), ada);
    assert_eq!(
        c.get_user_by_email("user2@example.com").await.unwrap(),
        grace
    );

    let list = c.list_users(Page::default()).await.unwrap();
    assert_eq!(list.total, 2);
    assert_eq!(list.users, vec![ada, grace]);
    c.close().await;
}

pub async fn users_duplicate_email_is_conflict(db: &Database) {
    let c = conn(db).await;
    let first = user(&c, 1).await;
    let again = NewUser {
        name: "Someone Else".into(),
        email: first.email.clone(),
    };
    assert_conflict(c.create_user(&again).await, "email already exists");
    // Exact comparison: a different case is a different address.
    let upper = NewUser {
        name: "Upper".into(),
        email: "USER1@example.com".into(),
    };
    assert_eq!(
        c.create_user(&upper).await.unwrap().email,
        "USER1@example.com"
    );
    assert_eq!(c.get_user(first.id).await.unwrap(), first);
    assert_eq!(c.list_users(Page::default()).await.unwrap().total, 2);
    c.close().await;
}

pub async fn users_invalid_input_is_rejected(db: &Database) {
    let c = conn(db).await;
    let blank = NewUser {
        name: " ".into(),
        email: "a@b.c".into(),
    };
    assert_invalid(c.create_user(&blank).await, "name");
    let long = NewUser {
        name: "x".repeat(201),
        email: "a@b.c".into(),
    };
    assert_invalid(c.create_user(&long).await, "name");
    for email in ["", "no-at", "two@@x", "a b@c", "@x", "x@"] {
        let bad = NewUser {
            name: "A".into(),
            email: email.into(),
        };
        assert_invalid(c.create_user(&bad).await, "email");
        assert_invalid(c.find_or_create_user(&bad).await, "email");
    }
    assert_eq!(c.list_users(Page::default()).await.unwrap().total, 0);
    c.close().await;
}

pub async fn users_missing_is_not_found(db: &Database) {
    let c = conn(db).await;
    assert_not_found(c.get_user(1).await);
    assert_not_found(c.get_user(-5).await);
    assert_not_found(c.get_user_by_email("nobody@example.com").await);
    user(&c, 1).await;
    assert_not_found(c.get_user(2).await);
    c.close().await;
}

pub async fn users_pagination(db: &Database) {
    let c = conn(db).await;
    let empty = c.list_users(Page::default()).await.unwrap();
    assert_eq!((empty.users.len(), empty.total), (0, 0));
    let past_empty = c
        .list_users(Page::new(Some(10), Some(5)).unwrap())
        .await
        .unwrap();
    assert_eq!((past_empty.users.len(), past_empty.total), (0, 0));

    for n in 1..=7 {
        user(&c, n).await;
    }
    let ids =
        |list: &cloud_api::domain::UserList| list.users.iter().map(|u| u.id).collect::<Vec<_>>();
    let first = c
        .list_users(Page::new(Some(3), None).unwrap())
        .await
        .unwrap();
    assert_eq!((ids(&first), first.total), (vec![1, 2, 3], 7));
    let second = c
        .list_users(Page::new(Some(3), Some(3)).unwrap())
        .await
        .unwrap();
    assert_eq!((ids(&second), second.total), (vec![4, 5, 6], 7));
    let last = c
        .list_users(Page::new(Some(3), Some(6)).unwrap())
        .await
        .unwrap();
    assert_eq!((ids(&last), last.total), (vec![7], 7));
    let beyond = c
        .list_users(Page::new(Some(3), Some(50)).unwrap())
        .await
        .unwrap();
    assert_eq!((ids(&beyond), beyond.total), (vec![], 7));
    let all = c
        .list_users(Page::new(Some(500), None).unwrap())
        .await
        .unwrap();
    assert_eq!(ids(&all), (1..=7).collect::<Vec<_>>());
    c.close().await;
}

pub async fn users_find_or_create(db: &Database) {
    let c = conn(db).await;
    let (created, was_new) = c.find_or_create_user(&new_user(1)).await.unwrap();
    assert!(was_new);
    assert_eq!(created.email, "user1@example.com");
    let renamed = NewUser {
        name: "Another Name".into(),
        email: "user1@example.com".into(),
    };
    let (found, was_new) = c.find_or_create_user(&renamed).await.unwrap();
    assert!(!was_new);
    assert_eq!(found, created, "an existing user is returned unchanged");

    // Finding an existing user must not spoil an enclosing transaction.
    c.begin().await.unwrap();
    let (again, was_new) = c.find_or_create_user(&renamed).await.unwrap();
    assert!(!was_new);
    let (other, was_new) = c.find_or_create_user(&new_user(2)).await.unwrap();
    assert!(was_new);
    c.commit().await.unwrap();
    assert_eq!(again.id, created.id);
    assert_eq!(c.get_user(other.id).await.unwrap(), other);
    c.close().await;
}

pub async fn tokens_create_and_resolve(db: &Database) {
    let c = conn(db).await;
    let ada = user(&c, 1).await;
    let grace = user(&c, 2).await;
    let issued = c.create_token(ada.id).await.unwrap();
    assert_timestamp(&issued.created_at);
    let prefix = format!("pv_{}_", issued.id);
    assert!(issued.token.starts_with(&prefix), "{}", issued.token);
    assert_eq!(issued.token.len(), prefix.len() + 64);

    let second = c.create_token(ada.id).await.unwrap();
    assert_ne!(second.token, issued.token);
    assert_ne!(second.id, issued.id);
    let graces = c.create_token(grace.id).await.unwrap();

    assert_eq!(
        c.resolve_token(&issued.token).await.unwrap(),
        Some(ada.clone())
    );
    assert_eq!(c.resolve_token(&second.token).await.unwrap(), Some(ada));
    assert_eq!(c.resolve_token(&graces.token).await.unwrap(), Some(grace));
    c.close().await;
}

pub async fn tokens_reject_malformed_unknown_and_mismatched(db: &Database) {
    let c = conn(db).await;
    let ada = user(&c, 1).await;
    let issued = c.create_token(ada.id).await.unwrap();
    let secret = issued.token.rsplit('_').next().unwrap().to_owned();
    let mut flipped = secret.clone().into_bytes();
    flipped[63] = if flipped[63] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();

    for bad in [
        String::new(),
        "garbage".into(),
        format!("Bearer {}", issued.token),
        issued.token.to_uppercase(),
        format!("{}x", issued.token),
        format!("pv_{}_{flipped}", issued.id),
        format!("pv_{}_{secret}", issued.id + 1),
        format!("pv_999999_{secret}"),
    ] {
        assert_eq!(c.resolve_token(&bad).await.unwrap(), None, "{bad:?}");
    }
    // Still resolvable: nothing above had side effects.
    assert!(c.resolve_token(&issued.token).await.unwrap().is_some());
    c.close().await;
}

pub async fn tokens_for_missing_user_is_not_found(db: &Database) {
    let c = conn(db).await;
    assert_not_found(c.create_token(42).await);
    c.close().await;
}

pub async fn tokens_revoke(db: &Database) {
    let c = conn(db).await;
    let ada = user(&c, 1).await;
    let grace = user(&c, 2).await;
    let issued = c.create_token(ada.id).await.unwrap();
    let kept = c.create_token(ada.id).await.unwrap();
    assert_not_found(c.revoke_token(grace.id, issued.id).await);
    assert!(c.resolve_token(&issued.token).await.unwrap().is_some());
    c.revoke_token(ada.id, issued.id).await.unwrap();
    assert_eq!(c.resolve_token(&issued.token).await.unwrap(), None);
    assert_not_found(c.revoke_token(ada.id, issued.id).await);
    assert_eq!(c.resolve_token(&kept.token).await.unwrap(), Some(ada));
    c.close().await;
}

pub async fn organisations_create_makes_admin_and_scopes(db: &Database) {
    let c = conn(db).await;
    let ada = user(&c, 1).await;
    let acme = c.create_organisation(ada.id, &org("Acme")).await.unwrap();
    assert_eq!(acme.name, "Acme");
    assert_timestamp(&acme.created_at);
    assert_eq!(c.get_organisation(acme.id).await.unwrap(), acme);

    assert_eq!(
        c.list_my_organisations(ada.id).await.unwrap(),
        vec![MyOrganisation {
            organisation: acme.clone(),
            role: Role::Admin
        }]
    );
    let members = c.list_members(acme.id).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(
        (
            members[0].user_id,
            members[0].name.as_str(),
            members[0].email.as_str(),
            members[0].role
        ),
        (ada.id, "User 1", "user1@example.com", Role::Admin)
    );

    let scopes = c.scopes_of_user(ada.id).await.unwrap();
    assert_eq!(scopes.len(), 2, "{scopes:?}");
    assert_eq!(
        (
            scopes[0].org_id,
            scopes[0].user_id,
            scopes[0].kind,
            scopes[0].name.as_str()
        ),
        (acme.id, None, ScopeKind::Org, "Acme")
    );
    assert_eq!(
        (scopes[1].org_id, scopes[1].user_id, scopes[1].kind),
        (acme.id, Some(ada.id), ScopeKind::User)
    );
    c.close().await;
}

pub async fn organisations_creation_is_atomic(db: &Database) {
    let c = conn(db).await;
    assert_not_found(c.create_organisation(99, &org("Ghost")).await);
    let ada = user(&c, 1).await;
    let real = c.create_organisation(ada.id, &org("Real")).await.unwrap();
    for id in 1..real.id {
        assert_not_found(c.get_organisation(id).await);
    }
    assert_eq!(c.list_my_organisations(ada.id).await.unwrap().len(), 1);
    assert_eq!(c.scopes_of_user(ada.id).await.unwrap().len(), 2);
    c.close().await;
}

pub async fn organisations_invalid_name(db: &Database) {
    let c = conn(db).await;
    let ada = user(&c, 1).await;
    assert_invalid(c.create_organisation(ada.id, &org("")).await, "name");
    assert_invalid(
        c.create_organisation(ada.id, &org(&"o".repeat(201))).await,
        "name",
    );
    assert!(c.list_my_organisations(ada.id).await.unwrap().is_empty());
    assert_not_found(c.get_organisation(1).await);
    c.close().await;
}

pub async fn caller_lists_memberships(db: &Database) {
    let c = conn(db).await;
    let (ada, grace, acme, globex) = ada_in_two_organisations(&c).await;

    let caller = c.caller(ada.id).await.unwrap();
    assert_eq!(caller.user_id, ada.id);
    assert_eq!(caller.role_in(acme.id), Some(Role::Admin));
    assert_eq!(caller.role_in(globex.id), Some(Role::Member));
    assert_eq!(caller.memberships.len(), 2);
    assert_eq!(caller.memberships[0].org_id, acme.id);

    let grace_caller = c.caller(grace.id).await.unwrap();
    assert_eq!(grace_caller.role_in(acme.id), None);
    assert!(c.caller(999).await.unwrap().memberships.is_empty());

    let mine: Vec<_> = c
        .list_my_organisations(ada.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.organisation.name, m.role))
        .collect();
    assert_eq!(
        mine,
        vec![
            ("Acme".to_owned(), Role::Admin),
            ("Globex".to_owned(), Role::Member)
        ]
    );
    c.close().await;
}

pub async fn members_add_list_change_remove(db: &Database) {
    let c = conn(db).await;
    let ada = user(&c, 1).await;
    let grace = user(&c, 2).await;
    let acme = c.create_organisation(ada.id, &org("Acme")).await.unwrap();

    let added = c.add_member(acme.id, grace.id, Role::Member).await.unwrap();
    assert_eq!(
        (
            added.user_id,
            added.name.as_str(),
            added.email.as_str(),
            added.role
        ),
        (grace.id, "User 2", "user2@example.com", Role::Member)
    );
    assert_eq!(
        roles(&c, acme.id).await,
        vec![(ada.id, Role::Admin), (grace.id, Role::Member)]
    );

    let scopes = c.scopes_of_user(grace.id).await.unwrap();
    assert_eq!(scopes.len(), 2);
    assert_eq!(scopes[0].kind, ScopeKind::Org);
    assert_eq!(scopes[1].user_id, Some(grace.id));
    // Ada does not see Grace's user scope among hers.
    assert!(
        c.scopes_of_user(ada.id)
            .await
            .unwrap()
            .iter()
            .all(|s| s.user_id != Some(grace.id))
    );

    let promoted = c
        .change_member_role(acme.id, grace.id, Role::Admin)
        .await
        .unwrap();
    assert_eq!(promoted.role, Role::Admin);
    assert_eq!(
        c.caller(grace.id).await.unwrap().role_in(acme.id),
        Some(Role::Admin)
    );

    c.remove_member(acme.id, grace.id).await.unwrap();
    assert_eq!(c.list_members(acme.id).await.unwrap().len(), 1);
    assert!(c.scopes_of_user(grace.id).await.unwrap().is_empty());
    assert_eq!(c.caller(grace.id).await.unwrap().role_in(acme.id), None);
    // Re-adding works and gives a fresh user scope.
    c.add_member(acme.id, grace.id, Role::Member).await.unwrap();
    let again = c.scopes_of_user(grace.id).await.unwrap();
    assert_eq!(again.len(), 2);
    assert_ne!(again[1].id, scopes[1].id);
    c.close().await;
}

pub async fn members_errors(db: &Database) {
    let c = conn(db).await;
    let (ada, grace, acme) = grace_member_of_acme(&c).await;

    assert_conflict(
        c.add_member(acme.id, grace.id, Role::Admin).await,
        "already a member",
    );
    assert_not_found(c.add_member(acme.id, 999, Role::Member).await);
    assert_not_found(c.add_member(999, grace.id, Role::Member).await);
    assert_not_found(c.remove_member(acme.id, 999).await);
    assert_not_found(c.remove_member(999, grace.id).await);
    assert_not_found(c.change_member_role(acme.id, 999, Role::Admin).await);
    assert_not_found(c.change_member_role(999, ada.id, Role::Member).await);
    assert!(c.list_members(999).await.unwrap().is_empty());

    // Nothing above changed anything.
    assert_eq!(
        roles(&c, acme.id).await,
        vec![(ada.id, Role::Admin), (grace.id, Role::Member)]
    );
    assert_eq!(c.scopes_of_user(grace.id).await.unwrap().len(), 2);
    c.close().await;
}

pub async fn members_last_admin_stays(db: &Database) {
    let c = conn(db).await;
    let (ada, grace, acme) = grace_member_of_acme(&c).await;

    assert_conflict(c.remove_member(acme.id, ada.id).await, "at least one admin");
    assert_conflict(
        c.change_member_role(acme.id, ada.id, Role::Member).await,
        "at least one admin",
    );
    // Re-affirming the last admin's role is fine.
    assert_eq!(
        c.change_member_role(acme.id, ada.id, Role::Admin)
            .await
            .unwrap()
            .role,
        Role::Admin
    );
    // With a second admin, the first may step down, and then leave.
    c.change_member_role(acme.id, grace.id, Role::Admin)
        .await
        .unwrap();
    c.change_member_role(acme.id, ada.id, Role::Member)
        .await
        .unwrap();
    assert_conflict(
        c.remove_member(acme.id, grace.id).await,
        "at least one admin",
    );
    c.remove_member(acme.id, ada.id).await.unwrap();
    assert_eq!(roles(&c, acme.id).await, vec![(grace.id, Role::Admin)]);
    c.close().await;
}

pub async fn members_removal_deletes_user_scope_and_sources(db: &Database) {
    let c = conn(db).await;
    let (_ada, grace, acme) = grace_member_of_acme(&c).await;
    let scopes = c.scopes_of_user(grace.id).await.unwrap();
    let (org_scope, own_scope) = (&scopes[0], &scopes[1]);
    let private = c
        .create_source(own_scope.id, &source("mine"))
        .await
        .unwrap();
    let shared = c
        .create_source(org_scope.id, &source("shared"))
        .await
        .unwrap();

    c.remove_member(acme.id, grace.id).await.unwrap();
    assert_not_found(c.get_scope(own_scope.id).await);
    assert_not_found(c.get_source(own_scope.id, private.id).await);
    assert!(c.list_sources(own_scope.id).await.unwrap().is_empty());
    // The organisation's own sources stay.
    assert_eq!(c.get_source(org_scope.id, shared.id).await.unwrap(), shared);
    c.close().await;
}

pub async fn scopes_get_and_of_user(db: &Database) {
    let c = conn(db).await;
    let (ada, grace, acme, globex) = ada_in_two_organisations(&c).await;

    let scopes = c.scopes_of_user(ada.id).await.unwrap();
    let shape: Vec<_> = scopes
        .iter()
        .map(|s| (s.org_id, s.kind, s.user_id, s.name.as_str()))
        .collect();
    assert_eq!(
        shape,
        vec![
            (acme.id, ScopeKind::Org, None, "Acme"),
            (acme.id, ScopeKind::User, Some(ada.id), "Acme"),
            (globex.id, ScopeKind::Org, None, "Globex"),
            (globex.id, ScopeKind::User, Some(ada.id), "Globex"),
        ]
    );
    for scope in &scopes {
        assert_eq!(&c.get_scope(scope.id).await.unwrap(), scope);
    }
    // Grace is not in Acme: none of its scopes are hers.
    assert!(
        c.scopes_of_user(grace.id)
            .await
            .unwrap()
            .iter()
            .all(|s| s.org_id == globex.id)
    );
    assert_not_found(c.get_scope(9999).await);
    assert!(c.scopes_of_user(9999).await.unwrap().is_empty());
    c.close().await;
}

pub async fn sources_crud(db: &Database) {
    let c = conn(db).await;
    let scope = acme_scope(&c).await;

    let created = c
        .create_source(scope.id, &source("petstore"))
        .await
        .unwrap();
    assert_eq!(created.scope_id, scope.id);
    assert_eq!(created.name, "petstore");
    assert_eq!(created.kind, SourceKind::Openapi);
    assert_eq!(created.url, "https://petstore.example.com/openapi.json");
    assert_eq!(created.config, json!({"headers": {"x-api-key": "secret"}}));
    assert_timestamp(&created.created_at);
    assert_eq!(created.created_at, created.updated_at);

    let second = c
        .create_source(
            scope.id,
            &NewSource {
                name: "tools".into(),
                kind: SourceKind::Mcp,
                url: "http://localhost:8080/mcp".into(),
                config: json!({}),
            },
        )
        .await
        .unwrap();
    assert_eq!(c.get_source(scope.id, created.id).await.unwrap(), created);
    assert_eq!(
        c.list_sources(scope.id).await.unwrap(),
        vec![created.clone(), second.clone()]
    );

    // Let the clock move so updated_at can differ (millisecond resolution).
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let patched = c
        .update_source(
            scope.id,
            created.id,
            &SourcePatch {
                url: Some("https://v2.example.com/openapi.json".into()),
                kind: Some(SourceKind::Graphql),
                config: Some(json!({"depth": 3})),
                ..SourcePatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(patched.name, "petstore", "absent fields stay");
    assert_eq!(patched.kind, SourceKind::Graphql);
    assert_eq!(patched.url, "https://v2.example.com/openapi.json");
    assert_eq!(
        patched.config,
        json!({"depth": 3}),
        "config is replaced, not merged"
    );
    assert_eq!(patched.created_at, created.created_at);
    assert!(patched.updated_at > created.updated_at, "{patched:?}");
    assert_eq!(c.get_source(scope.id, created.id).await.unwrap(), patched);

    let renamed = c
        .update_source(scope.id, created.id, &patch_name("pets"))
        .await
        .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.url.as_str()),
        ("pets", patched.url.as_str())
    );

    c.delete_source(scope.id, created.id).await.unwrap();
    assert_not_found(c.get_source(scope.id, created.id).await);
    assert_not_found(c.delete_source(scope.id, created.id).await);
    assert_not_found(
        c.update_source(scope.id, created.id, &patch_name("x"))
            .await,
    );
    assert_eq!(c.list_sources(scope.id).await.unwrap(), vec![second]);
    c.close().await;
}

pub async fn sources_names_unique_within_scope_only(db: &Database) {
    let c = conn(db).await;
    let ada = user(&c, 1).await;
    c.create_organisation(ada.id, &org("Acme")).await.unwrap();
    let scopes = c.scopes_of_user(ada.id).await.unwrap();
    let (shared, own) = (&scopes[0], &scopes[1]);

    let first = c.create_source(shared.id, &source("api")).await.unwrap();
    assert_conflict(
        c.create_source(shared.id, &source("api")).await,
        "name already exists",
    );
    // The same name in another scope is fine.
    c.create_source(own.id, &source("api")).await.unwrap();

    let other = c.create_source(shared.id, &source("other")).await.unwrap();
    assert_conflict(
        c.update_source(shared.id, other.id, &patch_name("api"))
            .await,
        "name already exists",
    );
    assert_eq!(c.get_source(shared.id, other.id).await.unwrap(), other);
    assert_eq!(c.get_source(shared.id, first.id).await.unwrap(), first);
    assert_eq!(c.list_sources(shared.id).await.unwrap().len(), 2);
    c.close().await;
}

pub async fn sources_confined_to_their_scope(db: &Database) {
    let c = conn(db).await;
    let ada = user(&c, 1).await;
    let grace = user(&c, 2).await;
    c.create_organisation(ada.id, &org("Acme")).await.unwrap();
    c.create_organisation(grace.id, &org("Globex"))
        .await
        .unwrap();
    let acme_scope = c.scopes_of_user(ada.id).await.unwrap().remove(0);
    let globex_scope = c.scopes_of_user(grace.id).await.unwrap().remove(0);
    let secret = c
        .create_source(globex_scope.id, &source("globex-internal"))
        .await
        .unwrap();

    assert_not_found(c.get_source(acme_scope.id, secret.id).await);
    assert_not_found(
        c.update_source(
            acme_scope.id,
            secret.id,
            &patch_url("https://evil.example.com"),
        )
        .await,
    );
    // An empty patch reads through `get`, which must filter by scope too.
    assert_not_found(
        c.update_source(acme_scope.id, secret.id, &SourcePatch::default())
            .await,
    );
    assert_not_found(c.delete_source(acme_scope.id, secret.id).await);
    assert!(c.list_sources(acme_scope.id).await.unwrap().is_empty());
    assert_eq!(
        c.get_source(globex_scope.id, secret.id).await.unwrap(),
        secret
    );
    c.close().await;
}

pub async fn sources_invalid_input(db: &Database) {
    let c = conn(db).await;
    let scope = acme_scope(&c).await;

    let mut bad = source("x");
    bad.url = "ftp://example.com".into();
    assert_invalid(c.create_source(scope.id, &bad).await, "url");
    let mut bad = source("x");
    bad.config = json!(["not", "an", "object"]);
    assert_invalid(c.create_source(scope.id, &bad).await, "config");
    assert_invalid(c.create_source(scope.id, &source("")).await, "name");
    assert_not_found(c.create_source(9999, &source("orphan")).await);
    assert!(c.list_sources(scope.id).await.unwrap().is_empty());

    let ok = c.create_source(scope.id, &source("ok")).await.unwrap();
    assert_invalid(
        c.update_source(
            scope.id,
            ok.id,
            &SourcePatch {
                config: Some(json!(1)),
                ..SourcePatch::default()
            },
        )
        .await,
        "config",
    );
    assert_invalid(
        c.update_source(scope.id, ok.id, &patch_url("not a url"))
            .await,
        "url",
    );
    assert_eq!(c.get_source(scope.id, ok.id).await.unwrap(), ok);
    c.close().await;
}

pub async fn sources_empty_patch_changes_nothing(db: &Database) {
    let c = conn(db).await;
    let scope = acme_scope(&c).await;
    let created = c.create_source(scope.id, &source("s")).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let same = c
        .update_source(scope.id, created.id, &SourcePatch::default())
        .await
        .unwrap();
    assert_eq!(same, created);
    c.close().await;
}

pub async fn transaction_rollback_discards_writes(db: &Database) {
    let c = conn(db).await;
    assert!(!c.in_transaction());
    c.begin().await.unwrap();
    assert!(c.in_transaction());
    let ghost = user(&c, 1).await;
    assert_eq!(c.get_user(ghost.id).await.unwrap(), ghost, "visible inside");
    c.rollback().await.unwrap();
    assert!(!c.in_transaction());
    assert_not_found(c.get_user(ghost.id).await);
    assert_eq!(c.list_users(Page::default()).await.unwrap().total, 0);
    // The connection works normally afterwards, in autocommit.
    let real = user(&c, 1).await;
    c.close().await;
    let other = conn(db).await;
    assert_eq!(other.get_user(real.id).await.unwrap(), real);
    other.close().await;
}

pub async fn transaction_commit_keeps_writes(db: &Database) {
    let c = conn(db).await;
    c.begin().await.unwrap();
    let ada = user(&c, 1).await;
    let acme = c.create_organisation(ada.id, &org("Acme")).await.unwrap();
    let scope = c.scopes_of_user(ada.id).await.unwrap().remove(0);
    let s = c.create_source(scope.id, &source("s")).await.unwrap();
    c.commit().await.unwrap();
    assert!(!c.in_transaction());
    c.close().await;

    let other = conn(db).await;
    assert_eq!(other.get_user(ada.id).await.unwrap(), ada);
    assert_eq!(other.get_organisation(acme.id).await.unwrap(), acme);
    assert_eq!(other.get_source(scope.id, s.id).await.unwrap(), s);
    other.close().await;
}

pub async fn transaction_uncommitted_writes_invisible_to_others(db: &Database) {
    let writer = conn(db).await;
    let reader = conn(db).await;
    writer.begin().await.unwrap();
    let ada = user(&writer, 1).await;
    assert_not_found(reader.get_user(ada.id).await);
    assert_eq!(reader.list_users(Page::default()).await.unwrap().total, 0);
    writer.commit().await.unwrap();
    assert_eq!(reader.get_user(ada.id).await.unwrap(), ada);
    writer.close().await;
    reader.close().await;
}

pub async fn transaction_after_error_cannot_commit(db: &Database) {
    let c = conn(db).await;
    let existing = user(&c, 1).await;
    c.begin().await.unwrap();
    let fresh = user(&c, 2).await;
    assert_conflict(c.create_user(&new_user(1)).await, "email already exists");
    assert!(c.in_transaction());
    match c.commit().await {
        Err(StoreError::Internal(message)) => assert!(message.contains("rolled back"), "{message}"),
        other => panic!("commit after a failed operation must fail, got {other:?}"),
    }
    assert!(!c.in_transaction());
    assert_not_found(c.get_user(fresh.id).await);
    assert_eq!(c.get_user(existing.id).await.unwrap(), existing);

    // A NotFound inside a transaction poisons it just the same.
    c.begin().await.unwrap();
    assert_not_found(c.get_user(12345).await);
    assert!(c.commit().await.is_err());
    // Rolling back a failed transaction is fine.
    c.begin().await.unwrap();
    assert_conflict(c.create_user(&new_user(1)).await, "email");
    c.rollback().await.unwrap();
    user(&c, 3).await;
    c.close().await;
}

pub async fn transaction_state_rules(db: &Database) {
    let c = conn(db).await;
    c.commit().await.unwrap();
    c.rollback().await.unwrap();
    c.begin().await.unwrap();
    assert!(matches!(c.begin().await, Err(StoreError::Internal(_))));
    assert!(c.in_transaction(), "a second begin does not end the first");
    let ada = user(&c, 1).await;
    c.commit().await.unwrap();
    c.commit().await.unwrap();
    assert_eq!(c.get_user(ada.id).await.unwrap(), ada);
    c.close().await;
}

pub async fn multi_statement_ops_join_the_callers_transaction(db: &Database) {
    let c = conn(db).await;
    let ada = user(&c, 1).await;
    let grace = user(&c, 2).await;
    c.begin().await.unwrap();
    let acme = c.create_organisation(ada.id, &org("Acme")).await.unwrap();
    c.add_member(acme.id, grace.id, Role::Member).await.unwrap();
    c.change_member_role(acme.id, grace.id, Role::Admin)
        .await
        .unwrap();
    assert!(
        c.in_transaction(),
        "no inner commit ended the caller's transaction"
    );
    c.rollback().await.unwrap();

    assert_not_found(c.get_organisation(acme.id).await);
    assert!(c.scopes_of_user(ada.id).await.unwrap().is_empty());
    assert!(c.scopes_of_user(grace.id).await.unwrap().is_empty());
    assert!(c.list_my_organisations(grace.id).await.unwrap().is_empty());

    // And the other way round: removing inside a committed transaction.
    let acme = c.create_organisation(ada.id, &org("Acme")).await.unwrap();
    c.add_member(acme.id, grace.id, Role::Member).await.unwrap();
    c.begin().await.unwrap();
    c.remove_member(acme.id, grace.id).await.unwrap();
    c.commit().await.unwrap();
    assert_eq!(c.list_members(acme.id).await.unwrap().len(), 1);
    c.close().await;
}

pub async fn close_rolls_back_open_transaction(db: &Database) {
    let c = conn(db).await;
    c.begin().await.unwrap();
    let ghost = user(&c, 1).await;
    c.close().await;
    let c = conn(db).await;
    assert!(!c.in_transaction());
    assert_not_found(c.get_user(ghost.id).await);
    let real = user(&c, 2).await;
    c.close().await;
    let c = conn(db).await;
    assert_eq!(c.get_user(real.id).await.unwrap(), real);
    c.close().await;
}

pub async fn drop_in_transaction_discards_writes(db: &Database) {
    let c = conn(db).await;
    c.begin().await.unwrap();
    let ghost = user(&c, 1).await;
    drop(c);
    // Whatever connection comes next must not carry the dropped
    // transaction: its writes are gone and its own writes are committed.
    let c = conn(db).await;
    assert_not_found(c.get_user(ghost.id).await);
    let real = user(&c, 2).await;
    drop(c);
    let c = conn(db).await;
    assert_eq!(c.get_user(real.id).await.unwrap(), real);
    assert_eq!(c.list_users(Page::default()).await.unwrap().total, 1);
    c.close().await;
}
