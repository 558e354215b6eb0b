//! Who may do what, as pure functions over the caller's memberships.
//!
//! The rules:
//!
//! * Anything in an organisation the caller does not belong to is
//!   [`AccessError::NotFound`], never `Forbidden`: a caller cannot learn that
//!   another tenant's organisation, scope or source exists.
//! * The org scope: every member reads its sources; only admins write them
//!   (a member gets `Forbidden`, since they can already see the scope).
//! * A user scope: only its owner reads or writes it. Admins do not see
//!   members' user scopes either (`NotFound`): a user scope holds that
//!   person's own integrations, often with personal credentials in the
//!   config, and an admin who needs them gone can remove the member (which
//!   deletes the user scope and its sources).
//! * Listing, adding, removing members and changing roles: admins only.
//! * An organisation always keeps at least one admin: removing or demoting
//!   the last one is [`AccessError::Conflict`].
//!
//! The store applies the last-admin rule itself, inside the transaction that
//! changes the membership, so two admins demoting each other at once cannot
//! both succeed.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::organisation::Role;
use super::scope::Scope;

/// The message for the last-admin rule.
pub const LAST_ADMIN: &str = "an organisation must keep at least one admin";

/// One organisation the caller belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The organisation.
    pub org_id: i64,
    /// The caller's role there.
    pub role: Role,
}

/// An authenticated user and every organisation they belong to, loaded once
/// per request (see `Connection::caller`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// The authenticated user.
    pub user_id: i64,
    /// All of the user's memberships.
    pub memberships: Vec<Membership>,
}

impl Caller {
    /// The caller's role in `org_id`, if a member.
    pub fn role_in(&self, org_id: i64) -> Option<Role> {
        self.memberships
            .iter()
            .find(|m| m.org_id == org_id)
            .map(|m| m.role)
    }
}

/// Reading or changing something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// List or get.
    Read,
    /// Create, change or delete.
    Write,
}

/// Why an action is refused; maps to 404, 403 and 409.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessError {
    /// The target is invisible to the caller (or does not exist).
    NotFound,
    /// The caller can see the target but may not do this to it.
    Forbidden,
    /// The action would break an invariant (the last admin).
    Conflict(&'static str),
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessError::NotFound => f.write_str("not found"),
            AccessError::Forbidden => f.write_str("forbidden"),
            AccessError::Conflict(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for AccessError {}

/// May the caller do `action` to the sources of `scope`?
pub fn check_scope(caller: &Caller, scope: &Scope, action: Action) -> Result<(), AccessError> {
    let role = caller.role_in(scope.org_id).ok_or(AccessError::NotFound)?;
    match (scope.user_id, action, role) {
        (None, Action::Read, _) | (None, Action::Write, Role::Admin) => Ok(()),
        (None, Action::Write, Role::Member) => Err(AccessError::Forbidden),
        (Some(owner), _, _) if owner == caller.user_id => Ok(()),
        (Some(_), _, _) => Err(AccessError::NotFound),
    }
}

/// May the caller see the organisation itself? Returns their role there.
pub fn check_organisation(caller: &Caller, org_id: i64) -> Result<Role, AccessError> {
    caller.role_in(org_id).ok_or(AccessError::NotFound)
}

/// May the caller list, add, remove members or change roles in `org_id`?
pub fn check_manage_members(caller: &Caller, org_id: i64) -> Result<(), AccessError> {
    match check_organisation(caller, org_id)? {
        Role::Admin => Ok(()),
        Role::Member => Err(AccessError::Forbidden),
    }
}

/// Would changing a member whose role is `current` to `new` (`None`:
/// removing them) leave the organisation, which has `admins` admins now,
/// without one?
pub fn check_membership_change(
    current: Role,
    new: Option<Role>,
    admins: usize,
) -> Result<(), AccessError> {
    let loses_an_admin = current == Role::Admin && new != Some(Role::Admin);
    if loses_an_admin && admins <= 1 {
        return Err(AccessError::Conflict(LAST_ADMIN));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACME: i64 = 1;
    const GLOBEX: i64 = 2;

    fn caller(user_id: i64, memberships: &[(i64, Role)]) -> Caller {
        Caller {
            user_id,
            memberships: memberships
                .iter()
                .map(|&(org_id, role)| Membership { org_id, role })
                .collect(),
        }
    }

    fn org_scope(org_id: i64) -> Scope {
        Scope::new(100 + org_id, org_id, None, "org".into())
    }

    fn user_scope(org_id: i64, user_id: i64) -> Scope {
        Scope::new(200 + user_id, org_id, Some(user_id), "org".into())
    }

    #[test]
    fn members_read_the_org_scope_and_only_admins_write_it() {
        let admin = caller(1, &[(ACME, Role::Admin)]);
        let member = caller(2, &[(ACME, Role::Member)]);
        assert_eq!(check_scope(&admin, &org_scope(ACME), Action::Read), Ok(()));
        assert_eq!(check_scope(&admin, &org_scope(ACME), Action::Write), Ok(()));
        assert_eq!(check_scope(&member, &org_scope(ACME), Action::Read), Ok(()));
        assert_eq!(
            check_scope(&member, &org_scope(ACME), Action::Write),
            Err(AccessError::Forbidden)
        );
    }

    #[test]
    fn a_user_scope_is_its_owners_alone_even_for_admins() {
        let admin = caller(1, &[(ACME, Role::Admin)]);
        let member = caller(2, &[(ACME, Role::Member)]);
        for action in [Action::Read, Action::Write] {
            assert_eq!(check_scope(&member, &user_scope(ACME, 2), action), Ok(()));
            assert_eq!(check_scope(&admin, &user_scope(ACME, 1), action), Ok(()));
            assert_eq!(
                check_scope(&admin, &user_scope(ACME, 2), action),
                Err(AccessError::NotFound)
            );
            assert_eq!(
                check_scope(&member, &user_scope(ACME, 1), action),
                Err(AccessError::NotFound)
            );
        }
    }

    #[test]
    fn another_organisation_is_not_found_never_forbidden() {
        let admin_of_acme = caller(1, &[(ACME, Role::Admin)]);
        for action in [Action::Read, Action::Write] {
            assert_eq!(
                check_scope(&admin_of_acme, &org_scope(GLOBEX), action),
                Err(AccessError::NotFound)
            );
            // Even their own user id in a scope of an org they left.
            assert_eq!(
                check_scope(&admin_of_acme, &user_scope(GLOBEX, 1), action),
                Err(AccessError::NotFound)
            );
        }
        assert_eq!(
            check_organisation(&admin_of_acme, GLOBEX),
            Err(AccessError::NotFound)
        );
        assert_eq!(
            check_manage_members(&admin_of_acme, GLOBEX),
            Err(AccessError::NotFound)
        );
        let nobody = caller(9, &[]);
        assert_eq!(
            check_scope(&nobody, &org_scope(ACME), Action::Read),
            Err(AccessError::NotFound)
        );
    }

    #[test]
    fn roles_differ_per_organisation() {
        let both = caller(1, &[(ACME, Role::Member), (GLOBEX, Role::Admin)]);
        assert_eq!(check_organisation(&both, ACME), Ok(Role::Member));
        assert_eq!(
            check_manage_members(&both, ACME),
            Err(AccessError::Forbidden)
        );
        assert_eq!(check_manage_members(&both, GLOBEX), Ok(()));
        assert_eq!(
            check_scope(&both, &org_scope(ACME), Action::Write),
            Err(AccessError::Forbidden)
        );
        assert_eq!(
            check_scope(&both, &org_scope(GLOBEX), Action::Write),
            Ok(())
        );
    }

    #[test]
    fn the_last_admin_stays() {
        use Role::{Admin, Member};
        assert_eq!(
            check_membership_change(Admin, None, 1),
            Err(AccessError::Conflict(LAST_ADMIN))
        );
        assert_eq!(
            check_membership_change(Admin, Some(Member), 1),
            Err(AccessError::Conflict(LAST_ADMIN))
        );
        assert_eq!(check_membership_change(Admin, Some(Admin), 1), Ok(()));
        assert_eq!(check_membership_change(Admin, None, 2), Ok(()));
        assert_eq!(check_membership_change(Admin, Some(Member), 2), Ok(()));
        assert_eq!(check_membership_change(Member, None, 1), Ok(()));
        assert_eq!(check_membership_change(Member, Some(Admin), 1), Ok(()));
    }
}
