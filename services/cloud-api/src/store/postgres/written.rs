//! How records are written: a record stored as one row binds every column of its table's
//! [`Table::cols`] in that order, and the columns an update may change are bound by the same
//! function for the insert and the update.

use sqlx::Postgres;

use super::rows::*;
use super::{PgQuery, Table};
use crate::domain::*;

/// A record written as one row of [`Self::TABLE`].
pub(super) trait Written {
    const TABLE: &'static Table;

    /// Binds every column of `TABLE.cols`, in order.
    fn bind_row<'q>(&'q self, q: PgQuery<'q>) -> PgQuery<'q>;
}

/// Inserts `record` as a new row.
pub(super) async fn insert_row<'e, E, R>(ex: E, record: &R) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Postgres>,
    R: Written + Sync,
{
    let sql = R::TABLE.insert();
    record.bind_row(sqlx::query(&sql)).execute(ex).await?;
    Ok(())
}

impl Written for Session {
    const TABLE: &'static Table = &SESSIONS;

    fn bind_row<'q>(&'q self, q: PgQuery<'q>) -> PgQuery<'q> {
        q.bind(self.id.as_str())
            .bind(self.family_id.as_str())
            .bind(self.user_id.as_str())
            .bind(&self.client_id)
            .bind(&self.scope)
            .bind(&self.access_token_hash)
            .bind(&self.refresh_token_hash)
            .bind(self.active_organization_id.as_ref().map(|o| o.0.as_str()))
            .bind(self.auth_time)
            .bind(self.expires_at)
            .bind(self.refresh_expires_at)
            .bind(self.rotated_at)
            .bind(self.revoked_at)
            .bind(self.created_at)
            .bind(&self.amr)
    }
}

impl Written for Provider {
    const TABLE: &'static Table = &PROVIDERS;

    fn bind_row<'q>(&'q self, q: PgQuery<'q>) -> PgQuery<'q> {
        let q = q.bind(self.id.as_str()).bind(self.organization_id.as_str());
        bind_provider_settings(q, self)
            .bind(self.created_by.as_ref().map(|u| u.0.as_str()))
            .bind(self.created_at)
            .bind(self.updated_at)
    }
}

impl Written for Project {
    const TABLE: &'static Table = &PROJECTS;

    fn bind_row<'q>(&'q self, q: PgQuery<'q>) -> PgQuery<'q> {
        let q = q
            .bind(self.id.as_str())
            .bind(self.organization_id.as_str())
            .bind(self.created_by.as_ref().map(|u| u.0.as_str()));
        bind_project_settings(q, self)
            .bind(self.created_at)
            .bind(self.updated_at)
    }
}

impl Written for Conversation {
    const TABLE: &'static Table = &CONVERSATIONS;

    fn bind_row<'q>(&'q self, q: PgQuery<'q>) -> PgQuery<'q> {
        let q = q
            .bind(self.id.as_str())
            .bind(self.organization_id.as_str())
            .bind(self.project_id.as_str())
            .bind(self.created_by.as_ref().map(|u| u.0.as_str()));
        bind_conversation_settings(q, self)
            .bind(self.created_at)
            .bind(self.updated_at)
    }
}

/// What an admin edits in a provider, `kind` to the sealed secret (ten parameters).
pub(super) fn bind_provider_settings<'q>(q: PgQuery<'q>, p: &'q Provider) -> PgQuery<'q> {
    let q = q
        .bind(&p.kind)
        .bind(&p.label)
        .bind(&p.base_url)
        .bind(&p.credential_type)
        .bind(models_json(&p.models))
        .bind(&p.default_model)
        .bind(p.supports_cloud_runtime);
    bind_sealed(q, p.secret.as_ref())
}

/// What can change in a project, `name` to `cloud_status` (eleven parameters).
pub(super) fn bind_project_settings<'q>(q: PgQuery<'q>, p: &'q Project) -> PgQuery<'q> {
    let repo = p.repository.as_ref();
    let q = q
        .bind(&p.name)
        .bind(&p.repo_name)
        .bind(p.kind.as_str())
        .bind(p.workspace_capability.as_str())
        .bind(repo.map(|r| r.clone_url.as_str()))
        .bind(repo.and_then(|r| r.default_branch.as_deref()))
        .bind(repo.map(|r| r.auth_mode.as_str()));
    bind_sealed(q, repo.and_then(|r| r.token.as_ref())).bind(&p.cloud_status)
}

/// What can change in a conversation, `title` to `model_id` (four parameters).
pub(super) fn bind_conversation_settings<'q>(q: PgQuery<'q>, c: &'q Conversation) -> PgQuery<'q> {
    q.bind(&c.title)
        .bind(c.status.as_str())
        .bind(&c.model_provider)
        .bind(&c.model_id)
}

/// A sealed value's ciphertext, nonce and key id (three parameters; NULLs for none).
pub(super) fn bind_sealed<'q>(q: PgQuery<'q>, sealed: Option<&'q Sealed>) -> PgQuery<'q> {
    q.bind(sealed.map(|s| s.ciphertext.as_slice()))
        .bind(sealed.map(|s| s.nonce.as_slice()))
        .bind(sealed.map(|s| s.key_id.as_str()))
}
