//! Organizations and their members.

use super::*;

#[async_trait]
impl OrganizationStore for MemoryStore {
    async fn create_organization(&self, org: &Organization, owner: &UserId) -> StoreResult<()> {
        self.try_with(|t| {
            if t.orgs.values().any(|o| o.slug == org.slug) {
                return Err(StoreError::Conflict("cloud_organizations_slug_uidx".into()));
            }
            t.orgs.insert(org.id.clone(), org.clone());
            t.memberships.push(Membership {
                organization_id: org.id.clone(),
                user_id: owner.clone(),
                role: Role::Owner,
                created_at: org.created_at,
            });
            Ok(())
        })
    }

    async fn organization(&self, id: &OrgId) -> StoreResult<Option<Organization>> {
        self.with(|t| t.orgs.get(id).cloned())
    }

    async fn memberships_of(&self, user: &UserId) -> StoreResult<Vec<(Organization, Role)>> {
        self.with(|t| {
            let mut out: Vec<(Organization, Role, Timestamp)> = t
                .memberships
                .iter()
                .filter(|m| &m.user_id == user)
                .filter_map(|m| {
                    t.orgs
                        .get(&m.organization_id)
                        .map(|o| (o.clone(), m.role, m.created_at))
                })
                .collect();
            out.sort_by(|a, b| {
                let pa = a.0.is_personal && a.0.owner_user_id.as_ref() == Some(user);
                let pb = b.0.is_personal && b.0.owner_user_id.as_ref() == Some(user);
                pb.cmp(&pa).then(a.2.cmp(&b.2)).then(a.0.id.cmp(&b.0.id))
            });
            out.into_iter().map(|(o, r, _)| (o, r)).collect()
        })
    }

    async fn role_in(&self, org: &OrgId, user: &UserId) -> StoreResult<Option<Role>> {
        self.with(|t| {
            t.memberships
                .iter()
                .find(|m| &m.organization_id == org && &m.user_id == user)
                .map(|m| m.role)
        })
    }

    async fn rename_organization(&self, org: &OrgId, name: &str, slug: &str) -> StoreResult<()> {
        self.try_with(|t| {
            if t.orgs.values().any(|o| o.slug == slug && &o.id != org) {
                return Err(StoreError::Conflict("cloud_organizations_slug_uidx".into()));
            }
            update(&mut t.orgs, org, |o| {
                o.name = name.to_owned();
                o.slug = slug.to_owned();
            })
        })
    }

    async fn members(&self, org: &OrgId, page: &PageReq) -> StoreResult<Page<Member>> {
        self.with(|t| {
            let items: Vec<Member> = t
                .memberships
                .iter()
                .filter(|m| &m.organization_id == org)
                .filter_map(|m| {
                    t.users.get(&m.user_id).map(|u| Member {
                        membership: m.clone(),
                        email: u.email.clone(),
                        display_name: u.display_name.clone(),
                    })
                })
                .collect();
            page_of(items, page)
        })
    }

    async fn set_role(&self, org: &OrgId, user: &UserId, role: Role) -> StoreResult<()> {
        self.try_with(|t| {
            if role != Role::Owner && last_owner(t, org, user) {
                return Err(StoreError::LastOwner);
            }
            let member = t
                .memberships
                .iter_mut()
                .find(|m| &m.organization_id == org && &m.user_id == user);
            member.ok_or(StoreError::NotFound)?.role = role;
            Ok(())
        })
    }

    async fn remove_member(&self, org: &OrgId, user: &UserId) -> StoreResult<()> {
        self.try_with(|t| {
            if last_owner(t, org, user) {
                return Err(StoreError::LastOwner);
            }
            let before = t.memberships.len();
            t.memberships
                .retain(|m| !(&m.organization_id == org && &m.user_id == user));
            if t.memberships.len() == before {
                return Err(StoreError::NotFound);
            }
            t.sessions.update_user(user, |s| {
                if s.active_organization_id.as_ref() == Some(org) {
                    s.active_organization_id = None;
                }
            });
            Ok(())
        })
    }

    async fn owner_count(&self, org: &OrgId) -> StoreResult<i64> {
        self.with(|t| {
            t.memberships
                .iter()
                .filter(|m| &m.organization_id == org && m.role == Role::Owner)
                .count() as i64
        })
    }
}

/// Whether `user` is the organization's only owner.
fn last_owner(t: &Tables, org: &OrgId, user: &UserId) -> bool {
    let mut owners = t
        .memberships
        .iter()
        .filter(|m| &m.organization_id == org && m.role == Role::Owner);
    matches!((owners.next(), owners.next()), (Some(m), None) if &m.user_id == user)
}
