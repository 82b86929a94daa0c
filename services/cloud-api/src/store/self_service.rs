//! Records of account self-service (change password or address, list and end sessions, delete
//! the account), as the store methods on `UserStore`, `SessionStore` and `EmailTokenStore` take
//! and return them. Each change is one method so both implementations can make it atomic.

use crate::domain::*;

/// A change of password asked by a signed-in user (see `UserStore::change_password`).
#[derive(Debug, Clone, Copy)]
pub struct PasswordChange<'a> {
    pub user: &'a UserId,
    /// The hash the current password was checked against: a reset or another change that
    /// happened meanwhile wins, and this one changes nothing.
    pub old_hash: &'a str,
    pub new_hash: &'a str,
    /// The session family that asked: it stays signed in, every other one is revoked.
    pub keep: &'a FamilyId,
    pub now: Timestamp,
}

/// A pending change of address, as stored: the SHA-256 `hash` of the token mailed to
/// `new_email`, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailChange {
    pub hash: String,
    pub user: UserId,
    /// Normalized (lower-cased) as at signup.
    pub new_email: String,
    pub expires_at: Timestamp,
}

/// What following a change-of-address link led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailChangeOutcome {
    /// The account's address is now `new_email`, verified.
    Changed {
        user: UserId,
        old_email: String,
        new_email: String,
    },
    /// Another account took the address after the link was sent; the link is used up.
    Taken,
    /// Unknown, already used or expired.
    Invalid,
}

/// One signed-in session family (a sign-in and every token refreshed from it), as the sessions
/// page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSession {
    pub family_id: FamilyId,
    pub client_id: String,
    pub scope: String,
    /// When the family started (the sign-in).
    pub created_at: Timestamp,
    /// When the user last authenticated for it (OIDC `auth_time`).
    pub auth_time: Timestamp,
    /// When its newest token pair was issued (the last refresh).
    pub last_used_at: Timestamp,
    /// When its last live token (access, or unrotated refresh) expires.
    pub expires_at: Timestamp,
}

/// What `UserStore::delete_account` did.
#[derive(Debug, Clone, PartialEq)]
pub enum AccountDeletion {
    /// The user is gone, with these organizations (their personal one and every one they were
    /// the only member of) and what cascades from them.
    Deleted { organizations: Vec<OrgId> },
    /// Nothing changed: the user is the last owner of these organizations, which have other
    /// members (someone must be made owner, or the members removed, first).
    LastOwner(Vec<Organization>),
}

/// Which organizations go with `user`'s account, from the organizations they belong to (and
/// their personal ones) and those organizations' memberships: `Ok` the ones to delete (personal,
/// or with no other member), by id; `Err` the ones that block it (the user is their only owner
/// and others are members), by name. Both stores decide with this one rule, on rows they have
/// locked.
pub(crate) fn plan_deletion(
    user: &UserId,
    orgs: &[Organization],
    memberships: &[(OrgId, UserId, Role)],
) -> Result<Vec<OrgId>, Vec<Organization>> {
    let mut doomed = Vec::new();
    let mut blocking = Vec::new();
    for org in orgs {
        let members = || memberships.iter().filter(|(o, _, _)| *o == org.id);
        let others = || members().filter(|(_, u, _)| u != user);
        let personal = org.is_personal && org.owner_user_id.as_ref() == Some(user);
        let owner = members().any(|(_, u, r)| u == user && *r == Role::Owner);
        if personal || others().next().is_none() {
            doomed.push(org.id.clone());
        } else if owner && !others().any(|(_, _, r)| *r == Role::Owner) {
            blocking.push(org.clone());
        }
    }
    if !blocking.is_empty() {
        blocking.sort_by(|a, b| (&a.name, &a.id.0).cmp(&(&b.name, &b.id.0)));
        return Err(blocking);
    }
    doomed.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(doomed)
}
