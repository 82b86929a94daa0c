//! Accounts: the user row, its password hash and the admin-managed entitlements.

use super::*;

#[async_trait]
impl UserStore for MemoryStore {
    async fn create_account(&self, a: NewAccount) -> StoreResult<()> {
        self.try_with(|t| {
            if t.users.values().any(|u| u.email == a.user.email) {
                return Err(StoreError::Conflict("cloud_users_email_uidx".into()));
            }
            if t.orgs.values().any(|o| o.slug == a.organization.slug) {
                return Err(StoreError::Conflict("cloud_organizations_slug_uidx".into()));
            }
            t.memberships.push(Membership {
                organization_id: a.organization.id.clone(),
                user_id: a.user.id.clone(),
                role: Role::Owner,
                created_at: a.user.created_at,
            });
            t.orgs.insert(a.organization.id.clone(), a.organization);
            t.projects
                .insert(a.default_project.id.clone(), a.default_project);
            t.users.insert(a.user.id.clone(), a.user);
            Ok(())
        })
    }

    async fn user(&self, id: &UserId) -> StoreResult<Option<User>> {
        self.with(|t| t.users.get(id).cloned())
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let email = email.to_lowercase();
        self.with(|t| t.users.values().find(|u| u.email == email).cloned())
    }

    async fn list_users(&self, page: &PageReq) -> StoreResult<Page<User>> {
        self.with(|t| page_of(t.users.values().cloned().collect(), page))
    }

    async fn update_user_entitlements(&self, user: &User) -> StoreResult<()> {
        self.try_with(|t| write_entitlements(t, user))
    }

    async fn replace_password_hash(&self, id: &UserId, old: &str, new: &str) -> StoreResult<bool> {
        self.with(|t| match t.users.get_mut(id) {
            Some(u) if u.password_hash.as_deref() == Some(old) => {
                u.password_hash = Some(new.to_owned());
                true
            }
            _ => false,
        })
    }

    async fn change_password(&self, change: PasswordChange<'_>) -> StoreResult<bool> {
        self.with(|t| t.change_password(change))
    }

    async fn delete_account(&self, id: &UserId) -> StoreResult<AccountDeletion> {
        self.try_with(|t| t.delete_account(id))
    }
}

/// Writes the admin-managed fields of `user` (shared with the audited admin change).
pub(super) fn write_entitlements(t: &mut Tables, user: &User) -> StoreResult<()> {
    update(&mut t.users, &user.id, |u| {
        u.is_admin = user.is_admin;
        u.subscription_plan = user.subscription_plan.clone();
        u.complimentary = user.complimentary.clone();
    })
}
