//! Projects of the caller's organizations: what a project may hold (a repository only for
//! `repository` projects, its token sealed and kept with its URL) and who may hand the cloud
//! agent a shell (`workspaceCapability`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::app::access::{self, Scope};
use crate::domain::rules::{self, MAX_NAME};
use crate::domain::*;
use crate::paging::page_views;
use crate::views::*;
use crate::web::caller::Caller;

#[derive(Debug, Default, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryInput {
    /// An `http://` or `https://` clone URL with a host; blank removes the repository.
    #[schema(max_length = 2048)]
    pub clone_url: Option<String>,
    #[schema(max_length = 200)]
    pub default_branch: Option<String>,
    #[schema(schema_with = crate::schema::repository_auth)]
    pub auth_mode: Option<String>,
    /// Stored encrypted; never returned.
    #[schema(max_length = 16384)]
    pub access_token: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateProjectBody {
    #[schema(required = true, schema_with = crate::schema::name)]
    pub name: Option<String>,
    /// Default: the active organization.
    pub organization_id: Option<String>,
    #[schema(schema_with = crate::schema::project_kind)]
    pub kind: Option<String>,
    pub repository: Option<RepositoryInput>,
    /// `chat_only` (default) or `full_tools` (the cloud agent gets a scratch workspace with file
    /// and shell tools). Owners and admins only; repository projects are always `full_tools`.
    #[schema(value_type = Option<String>, pattern = "^(chat_only|full_tools)$")]
    pub workspace_capability: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateProjectBody {
    /// Trimmed; must not be blank.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: Option<String>,
    #[schema(schema_with = crate::schema::project_kind)]
    pub kind: Option<String>,
    pub repository: Option<RepositoryInput>,
    /// `chat_only` or `full_tools`; owners and admins only (see the create body).
    #[schema(value_type = Option<String>, pattern = "^(chat_only|full_tools)$")]
    pub workspace_capability: Option<String>,
    #[schema(schema_with = crate::schema::cloud_status)]
    pub cloud_status: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectResponse {
    pub project: ProjectView,
}

page_response! { ProjectListResponse { projects: ProjectView } }

page_query! { ProjectListQuery {
    /// Only this organization's projects.
    organization_id,
} limit "1-200, default 50." default 50 max 200 }

/// Decides the project's workspace capability. Repository projects always get the agent's file
/// and shell tools (as in the first system); a conversation project keeps what it has (a new one
/// starts `chat_only`) unless an owner or admin asks for another value. A member asking for a
/// change is refused, so nobody below admin can hand the agent a shell.
fn apply_capability(
    project: &mut Project,
    requested: Option<&str>,
    can_manage: bool,
    kind_changed: bool,
) -> Result<(), DomainError> {
    let requested = match rules::trimmed(requested) {
        None => None,
        Some(c) => Some(WorkspaceCapability::parse(&c).ok_or_else(|| {
            DomainError::invalid("workspaceCapability must be chat_only or full_tools")
        })?),
    };
    if project.kind == ProjectKind::Repository {
        if requested == Some(WorkspaceCapability::ChatOnly) {
            return Err(DomainError::invalid(
                "Repository projects always have workspaceCapability full_tools",
            ));
        }
        project.workspace_capability = WorkspaceCapability::FullTools;
        return Ok(());
    }
    if kind_changed {
        project.workspace_capability = WorkspaceCapability::ChatOnly;
    }
    if let Some(c) = requested
        && c != project.workspace_capability
    {
        if !can_manage {
            return Err(DomainError::Forbidden(
                "Only an organization owner or admin can change workspaceCapability.",
            ));
        }
        project.workspace_capability = c;
    }
    Ok(())
}

/// Applies kind + repository input: the repository (and its token) is kept only for
/// `repository` projects (the first system kept and exposed it for every kind).
fn apply_repository(
    state: &AppState,
    project: &mut Project,
    kind: Option<&str>,
    repo: Option<&RepositoryInput>,
    org_name: &str,
) -> Result<(), DomainError> {
    if let Some(kind) = kind {
        project.kind = ProjectKind::parse(kind.trim()).unwrap_or(ProjectKind::ConversationOnly);
    }
    if let Some(r) = repo {
        match rules::trimmed(r.clone_url.as_deref()) {
            None => project.repository = None,
            Some(url) => {
                let clone_url = rules::validate_clone_url(&url)?;
                let auth_mode = if r.auth_mode.as_deref().map(str::trim) == Some("token") {
                    "token"
                } else {
                    "none"
                };
                let token = match rules::trimmed(r.access_token.as_deref()) {
                    Some(t) => {
                        let t = rules::bounded(t, rules::MAX_SECRET, "accessToken")?;
                        Some(
                            state
                                .secrets
                                .seal(&t, project.id.as_str())
                                .map_err(DomainError::internal)?,
                        )
                    }
                    // The stored token stays with the repository it was given for: repointing
                    // the project elsewhere must not hand it to another server.
                    None => match project.repository.as_ref() {
                        Some(old) if old.clone_url == clone_url => old.token.clone(),
                        Some(old) if old.token.is_some() && auth_mode == "token" => {
                            return Err(DomainError::invalid(
                                "A new accessToken is required when the repository URL changes",
                            ));
                        }
                        _ => None,
                    },
                };
                project.repository = Some(Repository {
                    clone_url,
                    default_branch: rules::trimmed(r.default_branch.as_deref())
                        .map(|b| rules::bounded(b, MAX_NAME, "defaultBranch"))
                        .transpose()?,
                    auth_mode: auth_mode.into(),
                    token,
                });
            }
        }
    }
    if project.kind != ProjectKind::Repository {
        project.repository = None;
    }
    project.repo_name = project
        .repository
        .as_ref()
        .and_then(|r| rules::repo_name_of(&r.clone_url))
        .unwrap_or_else(|| org_name.to_owned());
    Ok(())
}

/// A new project of `org` as every project starts: conversations only, chat only, connected.
pub(crate) fn new_project(
    org: &Organization,
    creator: &UserId,
    name: String,
    now: Timestamp,
) -> Project {
    Project {
        id: ProjectId::generate(),
        organization_id: org.id.clone(),
        created_by: Some(creator.clone()),
        name,
        repo_name: org.name.clone(),
        kind: ProjectKind::ConversationOnly,
        workspace_capability: WorkspaceCapability::ChatOnly,
        repository: None,
        cloud_status: "connected".into(),
        created_at: now,
        updated_at: now,
    }
}

pub async fn create(
    state: &AppState,
    caller: &Caller,
    body: CreateProjectBody,
) -> Result<ProjectResponse, DomainError> {
    access::require_subscription(state, &caller.user).await?;
    let name = rules::required(body.name.as_deref(), MAX_NAME, "Project name is required")?;
    let scope = Scope::of(state, caller).await?;
    let (org, _) = scope.resolve(body.organization_id.as_deref())?.clone();
    let mut project = new_project(&org, &caller.user.id, name, now());
    apply_repository(
        state,
        &mut project,
        Some(body.kind.as_deref().unwrap_or("conversation_only")),
        body.repository.as_ref(),
        &org.name,
    )?;
    let can_manage = scope.role(&org.id).is_some_and(Role::can_manage);
    apply_capability(
        &mut project,
        body.workspace_capability.as_deref(),
        can_manage,
        false,
    )?;
    state.store.insert_project(&project).await?;
    Ok(ProjectResponse {
        project: project_view(&project, &org.name),
    })
}

pub async fn list(
    state: &AppState,
    caller: &Caller,
    q: ProjectListQuery,
) -> Result<ProjectListResponse, DomainError> {
    let page = q.page()?;
    let scope = Scope::of(state, caller).await?;
    let orgs = match rules::trimmed(q.organization_id.as_deref()) {
        Some(o) => vec![scope.resolve(Some(&o))?.0.id.clone()],
        None => scope.org_ids(),
    };
    let result = state.store.projects(&orgs, &page).await?;
    Ok(page_views(&result, |p| {
        project_view(p, &scope.org_name(&p.organization_id))
    })
    .into())
}

pub async fn get(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<ProjectResponse, DomainError> {
    let scope = Scope::of(state, caller).await?;
    let p = scope.project(state, id).await?;
    Ok(ProjectResponse {
        project: project_view(&p, &scope.org_name(&p.organization_id)),
    })
}

pub async fn update(
    state: &AppState,
    caller: &Caller,
    id: &str,
    body: UpdateProjectBody,
) -> Result<ProjectResponse, DomainError> {
    let scope = Scope::of(state, caller).await?;
    let mut p = scope.project(state, id).await?;
    if body.name.is_some() {
        p.name = rules::required(body.name.as_deref(), MAX_NAME, "Project name is required")?;
    }
    if let Some(s) = body.cloud_status.as_deref() {
        let s = s.trim();
        if !["connected", "connecting", "disconnected", "error"].contains(&s) {
            return Err(DomainError::invalid(
                "cloudStatus must be connected, connecting, disconnected or error",
            ));
        }
        p.cloud_status = s.to_owned();
    }
    let org_name = scope.org_name(&p.organization_id);
    let kind_before = p.kind;
    apply_repository(
        state,
        &mut p,
        body.kind.as_deref(),
        body.repository.as_ref(),
        &org_name,
    )?;
    let can_manage = scope.role(&p.organization_id).is_some_and(Role::can_manage);
    let kind_changed = p.kind != kind_before;
    apply_capability(
        &mut p,
        body.workspace_capability.as_deref(),
        can_manage,
        kind_changed,
    )?;
    p.updated_at = now();
    state.store.update_project(&p).await?;
    Ok(ProjectResponse {
        project: project_view(&p, &org_name),
    })
}

/// Deletes a project with its conversations. Its creator or an owner/admin of the organization.
pub async fn delete(state: &AppState, caller: &Caller, id: &str) -> Result<OkBody, DomainError> {
    let scope = Scope::of(state, caller).await?;
    let p = scope.project(state, id).await?;
    let manager = scope.role(&p.organization_id).is_some_and(Role::can_manage);
    if !manager && p.created_by.as_ref() != Some(&caller.user.id) {
        return Err(DomainError::Forbidden(
            "Only the project's creator or an organization owner/admin can delete it.",
        ));
    }
    state.store.delete_project(&p.id).await?;
    Ok(OkBody { ok: true })
}
