//! The OpenAPI 3 document at `GET /api/openapi.json`, generated from the
//! handlers' `#[utoipa::path]` attributes and the types' schemas.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::openapi_rules::InputRules;
use super::{ErrorBody, health, organisations, sources, users};
use crate::domain;

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "cloud-api", description = "The reference service of provision: users, organisations, scopes and sources. Each write says its disconnect policy: `finish` (it completes and commits even if the client goes away, within a deadline) or `cancel` (a client that goes away rolls it back). Reads are `cancel`: there is nothing to keep for a client that left."),
    paths(
        health::health, health::ready,
        users::list, users::get, users::create,
        organisations::create, organisations::list_mine, organisations::get,
        organisations::members, organisations::add_member, organisations::change_role,
        organisations::remove_member,
        sources::list_scopes, sources::list, sources::create, sources::get,
        sources::update, sources::delete,
    ),
    components(schemas(
        ErrorBody, health::Status,
        domain::User, domain::NewUser, domain::UserList,
        domain::Organisation, domain::NewOrganisation, domain::MyOrganisation,
        domain::Member, domain::Role, organisations::NewMember, organisations::RoleChange,
        domain::Scope, domain::ScopeKind,
        domain::Source, domain::NewSource, domain::SourcePatch, domain::SourceKind,
    )),
    modifiers(&BearerAuth, &InputRules, &ServerBounds),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The answers every route may give, whatever its handler does: the
/// request timeout (`--request-timeout`) and the end of the shutdown grace
/// period (`--shutdown-grace`) both cut a request in the outermost layer
/// (`crate::deadline`), so a client generated from the document must expect
/// them on every operation.
struct ServerBounds;

impl Modify for ServerBounds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        };
        const SHUTTING_DOWN: &str = "The server is shutting down and the request did not finish \
            within the grace period";
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                responses.insert(
                    "504".into(),
                    error("The request did not finish within the request timeout"),
                );
                match responses.get_mut("503") {
                    Some(RefOr::T(existing)) if !existing.description.is_empty() => {
                        existing.description = format!(
                            "{}; or {}",
                            existing.description,
                            SHUTTING_DOWN.to_lowercase()
                        );
                    }
                    _ => {
                        responses.insert("503".into(), error(SHUTTING_DOWN));
                    }
                }
            }
        }
    }
}

/// Serves the document. Public: asks for nothing.
pub async fn document() -> Json<serde_json::Value> {
    Json(served())
}

/// The document exactly as `GET /api/openapi.json` serves it.
pub fn served() -> serde_json::Value {
    let doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
    super::openapi_rules::with_config_schema(doc)
}
