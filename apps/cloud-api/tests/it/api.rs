//! The HTTP contract of cloud-api, on SQLite and on PostgreSQL in both
//! connection modes, directly and behind PgBouncer in transaction mode
//! (Debian's `pgbouncer`, started by the test on a free loopback port in
//! front of the throwaway cluster). Every answer is checked against the
//! OpenAPI document. A transaction-mode pooler refuses startup parameters
//! it does not know (`options`) and cannot keep session state, so the
//! service must rely on neither.

use crate::support::contract;

on_every_backend! {
    #[tokio::test]
    [sqlite, postgres_pool, postgres_per_request, pgbouncer_pool, pgbouncer_per_request]
    contract::{
        health_is_public_and_builds_nothing,
        ready_checks_the_database,
        openapi_document_is_public,
        protected_routes_refuse_missing_and_bad_tokens,
        users_create_get_and_list,
        users_pagination,
        users_bad_input_is_a_clear_4xx,
        unknown_routes_and_methods_are_json_errors,
        organisations_and_members,
        sources_in_scopes,
        a_failed_write_leaves_nothing_behind,
        metrics_count_requests_and_services,
    }(backend)
}
