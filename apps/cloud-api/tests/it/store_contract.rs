//! The store contract (`support::store_contract`: what every store backend
//! must do, written once) on SQLite and on PostgreSQL in both modes, each
//! test on a fresh, migrated database.

use crate::support::store_contract as contract;

on_every_backend! {
    #[tokio::test]
    contract::{
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
    }(database)
}
