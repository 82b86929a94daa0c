//! The tenant fixtures of the isolation and abuse tests: one user's organization with one of
//! each resource, the database snapshot refused requests must leave as it was, and the
//! operations `/openapi.json` documents.

use crate::helpers::{TestApp, TestUser};

/// Every row of the tables a refused request must leave alone, as JSON text (to compare).
#[allow(dead_code)]
pub async fn snapshot(pool: &sqlx::PgPool) -> Vec<String> {
    let mut out = Vec::new();
    for table in [
        "cloud_users",
        "cloud_sessions",
        "cloud_organizations",
        "cloud_organization_memberships",
        "cloud_organization_invites",
        "cloud_organization_providers",
        "cloud_projects",
        "cloud_conversations",
        "cloud_conversation_messages",
        "cloud_memories",
        "cloud_instances",
        "cloud_subscription_plans",
    ] {
        let rows: Vec<String> = sqlx::query_scalar(&format!(
            "select row_to_json(t)::text from {table} t order by 1"
        ))
        .fetch_all(pool)
        .await
        .unwrap();
        out.push(format!("{table}: {}", rows.join("\n")));
    }
    out
}

/// The rows of [`snapshot`] at one moment, to check later that refused requests changed none.
#[allow(dead_code)]
pub struct Unchanged {
    pool: sqlx::PgPool,
    before: Vec<String>,
}

#[allow(dead_code)]
impl Unchanged {
    /// The database of `app` as it is now.
    pub async fn from_now(app: &TestApp) -> Self {
        let pool = app.db.as_ref().expect("postgres").pool.clone();
        let before = snapshot(&pool).await;
        Self { pool, before }
    }

    /// Fails with `what` when a row changed since [`Unchanged::from_now`].
    pub async fn check(&self, what: &str) {
        assert_eq!(snapshot(&self.pool).await, self.before, "{what}");
    }
}

/// One documented operation of `/openapi.json`: method, path template, whether it takes a
/// JSON body.
#[allow(dead_code)]
#[derive(Debug, Clone)]
pub struct Operation {
    pub method: reqwest::Method,
    pub path: String,
    pub json_body: bool,
}

#[allow(dead_code)]
impl Operation {
    /// Whether `path` (a concrete path, query string ignored) is an instance of this template.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        let path = path.split('?').next().unwrap_or_default();
        let (want, got): (Vec<&str>, Vec<&str>) =
            (self.path.split('/').collect(), path.split('/').collect());
        self.method.as_str() == method
            && want.len() == got.len()
            && want
                .iter()
                .zip(&got)
                .all(|(w, g)| (w.starts_with('{') && !g.is_empty()) || w == g)
    }
}

/// Every operation cloud-api documents, from its own `/openapi.json` (so a new route is covered
/// by the table-driven tests as soon as it is documented).
#[allow(dead_code)]
pub async fn documented_operations(app: &TestApp) -> Vec<Operation> {
    let doc: serde_json::Value = reqwest::get(app.url("/openapi.json"))
        .await
        .expect("openapi")
        .json()
        .await
        .expect("openapi JSON");
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let Ok(method) = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()) else {
                continue;
            };
            out.push(Operation {
                method,
                path: path.clone(),
                json_body: op["requestBody"]["content"]["application/json"].is_object(),
            });
        }
    }
    assert!(out.len() > 20, "the document lists the routes: {out:?}");
    out
}

/// What one tenant owns, for the tests that aim requests at it: a user and their organization
/// with one of each resource.
#[allow(dead_code)]
pub struct Tenant {
    pub user: TestUser,
    pub org: String,
    pub project: String,
    pub conversation: String,
    pub provider: String,
    pub memory: String,
    pub project_memory: String,
    pub invite: String,
    pub instance: String,
}

#[allow(dead_code)]
impl Tenant {
    /// Signs `user` up with one of each resource in their active organization.
    pub async fn create(app: &TestApp, user: TestUser) -> Self {
        use serde_json::json;
        let t = user.access.clone();
        let (_, acct) = app.get("/v1/account", &t).await;
        let org = acct["activeOrganizationId"].as_str().unwrap().to_owned();
        let body = json!({"name": "Secret project"});
        let project = app.create("/v1/projects", &t, "project", body).await;
        let body = json!({"projectId": project});
        let conversation = app
            .create("/v1/conversations", &t, "conversation", body)
            .await;
        let messages = format!("/v1/conversations/{conversation}/messages");
        let body = json!({"messages": [{"id": "m1", "role": "user", "timestamp": 1, "content": "private"}]});
        let (status, _) = app.post(&messages, &t, body).await;
        assert_eq!(status, 200, "append");
        let body = json!({"kind": "openai", "label": "K", "secret": "sk-a"});
        let provider = app
            .create("/v1/organization/providers", &t, "provider", body)
            .await;
        let body = json!({"content": "A's private note"});
        let memory = app.create("/v1/memory", &t, "item", body).await;
        let body = json!({"scope": "project", "projectId": project, "content": "A's project note"});
        let project_memory = app.create("/v1/memory", &t, "item", body).await;
        let body = json!({"organizationId": org, "email": "friend@example.com"});
        let invite = app
            .create("/v1/organization/invites", &t, "invite", body)
            .await;
        let instance = format!("desk-{}", cloud_testkit::random_token());
        let (status, _) = app
            .post("/v1/cloud-instances", &t, json!({ "id": instance }))
            .await;
        assert_eq!(status, 201, "instance");
        Self {
            user,
            org,
            project,
            conversation,
            provider,
            memory,
            project_memory,
            invite,
            instance,
        }
    }

    /// A fresh user's tenant, and the database as it is once it exists (for the tests that
    /// check refused requests change nothing).
    pub async fn with_snapshot(app: &TestApp) -> (Self, Unchanged) {
        let tenant = Self::create(app, app.signup().await).await;
        (tenant, Unchanged::from_now(app).await)
    }

    /// `template` (a documented path) with this tenant's ids in its parameters.
    pub fn fill(&self, template: &str) -> String {
        let by_prefix = [
            ("/v1/projects/", "{id}", self.project.as_str()),
            ("/v1/conversations/", "{id}", self.conversation.as_str()),
            ("/v1/memory/", "{id}", self.memory.as_str()),
            (
                "/v1/organization/providers/",
                "{id}",
                self.provider.as_str(),
            ),
            ("/v1/cloud-instances/", "{id}", self.instance.as_str()),
            (
                "/v1/organization/invites/",
                "{inviteId}",
                self.invite.as_str(),
            ),
            ("/v1/admin/plans/", "{planId}", "plus"),
        ];
        let (param, value) = by_prefix
            .iter()
            .find(|(prefix, _, _)| template.starts_with(prefix))
            .map_or(("{userId}", self.user.id.as_str()), |(_, p, v)| (*p, *v));
        let path = template.replace(param, value);
        assert!(
            !path.contains('{'),
            "no id of the tenant fits {template}: add it to Tenant::fill"
        );
        path
    }
}
