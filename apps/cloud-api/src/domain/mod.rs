//! Types, validation and access rules: no I/O, shared by every store and
//! runtime.

pub mod access;
pub mod organisation;
pub mod page;
pub mod scope;
pub mod source;
pub mod token;
pub mod user;
pub mod validate;

pub use access::{AccessError, Action, Caller, Membership};
pub use organisation::{Member, MyOrganisation, NewOrganisation, Organisation, Role};
pub use page::Page;
pub use scope::{Scope, ScopeKind};
pub use source::{NewSource, Source, SourceKind, SourcePatch};
pub use token::IssuedToken;
pub use user::{NewUser, User, UserList};
pub use validate::{Validate, ValidationError};
