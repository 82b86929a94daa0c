//! The organization's cloud memory as agent tools, over cloud-api's memory routes with the
//! user's own grant (the bearer token the turn was queued with, sealed with the turn).
//!
//! Every call is pinned to the session's organization (and project, for project memories):
//! the model cannot name another organization, and a memory id from another organization is
//! answered as not found, even when the user belongs to that organization too.

use std::time::Duration;

use serde_json::{Map, Value, json};
use url::Url;

use super::{ToolOutput, opt_str, opt_u64, str_arg};
use crate::provider::ToolSpec;

pub const NAMES: [&str; 7] = [
    "memory_search",
    "memory_list",
    "memory_get",
    "memory_upsert",
    "memory_update",
    "memory_delete",
    "memory_stats",
];

/// Where memory calls go and on whose behalf.
#[derive(Clone)]
pub struct MemoryContext {
    pub http: reqwest::Client,
    pub api: Url,
    pub token: cloud_common::Secret,
    pub organization_id: String,
    pub project_id: Option<String>,
    pub conversation_id: String,
}

impl std::fmt::Debug for MemoryContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryContext")
            .field("organization_id", &self.organization_id)
            .field("project_id", &self.project_id)
            .finish_non_exhaustive()
    }
}

fn spec(name: &str, description: &str, properties: Value, required: &[&str]) -> ToolSpec {
    ToolSpec {
        name: name.into(),
        description: description.into(),
        parameters: json!({"type": "object", "properties": properties, "required": required}),
    }
}

pub fn specs() -> Vec<ToolSpec> {
    let scope = json!({"type": "string", "enum": ["global", "project", "all"],
        "description": "global: the user's own notes; project: shared with the project; all (default for reads)"});
    vec![
        spec(
            "memory_search",
            "Search the organization's cloud memory (the user's notes and this project's).",
            json!({"query": {"type": "string"}, "scope": scope, "kind": {"type": "string"},
                   "limit": {"type": "integer", "minimum": 1, "maximum": 50}}),
            &["query"],
        ),
        spec(
            "memory_list",
            "List memories, newest first.",
            json!({"scope": scope, "kind": {"type": "string"},
                   "limit": {"type": "integer", "minimum": 1, "maximum": 100},
                   "includeArchived": {"type": "boolean"}}),
            &[],
        ),
        spec(
            "memory_get",
            "Read one memory by id.",
            json!({"id": {"type": "string"}}),
            &["id"],
        ),
        spec(
            "memory_upsert",
            "Save a memory (a fact, preference or decision worth keeping). With the id of an \
             existing memory it is replaced.",
            json!({"content": {"type": "string"}, "title": {"type": "string"},
                   "kind": {"type": "string", "description": "e.g. fact, preference, decision"},
                   "scope": {"type": "string", "enum": ["global", "project"]},
                   "tags": {"type": "array", "items": {"type": "string"}},
                   "topicKey": {"type": "string"}, "id": {"type": "string"}}),
            &["content"],
        ),
        spec(
            "memory_update",
            "Change fields of a memory (content, title, kind, tags, archived, status).",
            json!({"id": {"type": "string"}, "content": {"type": "string"}, "title": {"type": "string"},
                   "kind": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
                   "archived": {"type": "boolean"},
                   "status": {"type": "string", "enum": ["active", "superseded"]}}),
            &["id"],
        ),
        spec(
            "memory_delete",
            "Delete a memory by id.",
            json!({"id": {"type": "string"}}),
            &["id"],
        ),
        spec(
            "memory_stats",
            "Counts of the organization's memories by kind and scope.",
            json!({}),
            &[],
        ),
    ]
}

impl MemoryContext {
    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Result<Url, ToolOutput> {
        let mut url = self.api.clone();
        url.path_segments_mut()
            .map_err(|_| ToolOutput::error("The memory service address is invalid."))?
            .pop_if_empty()
            .extend(segments);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("organizationId", &self.organization_id);
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    fn scoped_query(
        &self,
        args: &Value,
        default_limit: u64,
        max: u64,
    ) -> Vec<(&'static str, String)> {
        let mut q = vec![(
            "limit",
            opt_u64(args, "limit")
                .unwrap_or(default_limit)
                .clamp(1, max)
                .to_string(),
        )];
        let scope = opt_str(args, "scope").unwrap_or("all");
        q.push(("scope", scope.to_owned()));
        if let Some(p) = &self.project_id {
            q.push(("projectId", p.clone()));
        }
        if let Some(k) = opt_str(args, "kind") {
            q.push(("kind", k.to_owned()));
        }
        if args.get("includeArchived").and_then(Value::as_bool) == Some(true) {
            q.push(("includeArchived", "true".into()));
        }
        q
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, ToolOutput> {
        let resp = req
            .bearer_auth(self.token.expose())
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .map_err(|e| {
                ToolOutput::error(format!(
                    "The memory service cannot be reached: {}",
                    e.without_url()
                ))
            })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let message = body["message"].as_str().unwrap_or("request refused");
        Err(ToolOutput::error(match status.as_u16() {
            404 => "No such memory in this organization.".to_owned(),
            401 | 403 => format!("The memory service refused this session: {message}"),
            s => format!("The memory service answered {s}: {message}"),
        }))
    }

    /// A memory by id, only when it belongs to the session's organization.
    async fn own(&self, id: &str) -> Result<Value, ToolOutput> {
        let url = self.url(&["v1", "memory", id], &[])?;
        let body = self.send(self.http.get(url)).await?;
        let item = body.get("item").cloned().unwrap_or(Value::Null);
        if item["ownership"]["organizationId"].as_str() != Some(self.organization_id.as_str()) {
            return Err(ToolOutput::error("No such memory in this organization."));
        }
        Ok(item)
    }

    pub async fn run(&self, name: &str, args: &Value) -> ToolOutput {
        match self.dispatch(name, args).await {
            Ok(v) => ToolOutput::ok(serde_json::to_string_pretty(&v).unwrap_or_default()),
            Err(out) => out,
        }
    }

    async fn dispatch(&self, name: &str, args: &Value) -> Result<Value, ToolOutput> {
        match name {
            "memory_search" => {
                let query = str_arg(args, "query")?;
                let mut q = self.scoped_query(args, 10, 50);
                q.push(("query", query.to_owned()));
                let url = self.url(&["v1", "memory", "search"], &q)?;
                self.send(self.http.get(url)).await
            }
            "memory_list" => {
                let url = self.url(&["v1", "memory"], &self.scoped_query(args, 20, 100))?;
                self.send(self.http.get(url)).await
            }
            "memory_get" => self.own(str_arg(args, "id")?).await,
            "memory_stats" => {
                let url = self.url(&["v1", "memory", "stats"], &[])?;
                self.send(self.http.get(url)).await
            }
            "memory_upsert" => {
                let content = str_arg(args, "content")?;
                if let Some(id) = opt_str(args, "id") {
                    // Replacing: only a memory of this organization.
                    self.own(id).await?;
                }
                let scope = match opt_str(args, "scope") {
                    Some("global") => "global",
                    Some("project") | None if self.project_id.is_some() => "project",
                    _ => "global",
                };
                let mut body = Map::new();
                body.insert("content".into(), json!(content));
                body.insert("scope".into(), json!(scope));
                body.insert("organizationId".into(), json!(self.organization_id));
                body.insert("source".into(), json!("cloud-agent"));
                body.insert("conversationId".into(), json!(self.conversation_id));
                if scope == "project" {
                    body.insert("projectId".into(), json!(self.project_id));
                }
                for key in ["title", "kind", "tags", "topicKey", "id"] {
                    if let Some(v) = args.get(key).filter(|v| !v.is_null()) {
                        body.insert(key.into(), v.clone());
                    }
                }
                let url = self.url(&["v1", "memory"], &[])?;
                self.send(self.http.post(url).json(&Value::Object(body)))
                    .await
            }
            "memory_update" => {
                let id = str_arg(args, "id")?;
                self.own(id).await?;
                let mut patch = Map::new();
                for key in ["content", "title", "kind", "tags", "archived", "status"] {
                    if let Some(v) = args.get(key).filter(|v| !v.is_null()) {
                        patch.insert(key.into(), v.clone());
                    }
                }
                let url = self.url(&["v1", "memory", id], &[])?;
                self.send(self.http.patch(url).json(&Value::Object(patch)))
                    .await
            }
            "memory_delete" => {
                let id = str_arg(args, "id")?;
                self.own(id).await?;
                let url = self.url(&["v1", "memory", id], &[])?;
                self.send(self.http.delete(url)).await
            }
            other => Err(ToolOutput::error(format!("Unknown tool: {other}"))),
        }
    }
}
