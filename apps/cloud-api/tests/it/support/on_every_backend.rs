//! Shared by `store_sqlite.rs` and `store_postgres.rs`: the store contract
//! (one body per behaviour, run against every backend) and its fixture.

#![allow(dead_code)] // Each test binary uses a different part of the helpers.

use std::any::Any;

use cloud_api::store::Database;

pub mod store_contract;

/// A database for one test, plus whatever must live as long as it (a
/// temporary directory).
pub struct TestDb {
    pub db: Database,
    pub keep: Box<dyn Any + Send>,
}

/// Expands to one `#[tokio::test]` per contract test, each on a fresh
/// database from `$setup().await`. The list is the single place naming the
/// contract tests; a test missing here is dead code, which clippy rejects.
#[macro_export]
macro_rules! contract_tests {
    ($setup:path) => {
        $crate::contract_tests!(@each $setup;
            ping_answers,
            migrate_is_idempotent,
            users_create_get_and_list,
            users_duplicate_email_is_conflict,
            users_invalid_input_is_rejected,
            users_missing_is_not_found,
            users_pagination,
            users_find_or_create,
            tokens_create_and_resolve,
            tokens_reject_malformed_unknown_and_mismatched,
            tokens_for_missing_user_is_not_found,
            tokens_revoke,
            organisations_create_makes_admin_and_scopes,
            organisations_creation_is_atomic,
            organisations_invalid_name,
            caller_lists_memberships,
            members_add_list_change_remove,
            members_errors,
            members_last_admin_stays,
            members_removal_deletes_user_scope_and_sources,
            scopes_get_and_of_user,
            sources_crud,
            sources_names_unique_within_scope_only,
            sources_confined_to_their_scope,
            sources_invalid_input,
            sources_empty_patch_changes_nothing,
            transaction_rollback_discards_writes,
            transaction_commit_keeps_writes,
            transaction_uncommitted_writes_invisible_to_others,
            transaction_after_error_cannot_commit,
            transaction_state_rules,
            multi_statement_ops_join_the_callers_transaction,
            close_rolls_back_open_transaction,
            drop_in_transaction_discards_writes,
        );
    };
    (@each $setup:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let test_db = $setup().await;
                common::store_contract::$name(&test_db.db).await;
                drop(test_db);
            }
        )*
    };
}
