//! The coding agent: one run per turn. Send the conversation, the system prompt and the tool
//! schemas to the provider; stream the answer to the desktop; execute the tool calls it makes;
//! send the results back; repeat until the model stops or the step limit is reached. Steering
//! messages are delivered between steps, follow-ups after the run. Every finished message is
//! stored before the next step, so a restart or a takeover keeps it.

pub mod assembler;
pub mod events;
mod prompt;
mod step;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::domain::message::{
    AgentMessage, AssistantMessage, TokenUsage, fit_to_budget, repair_tool_pairs,
};
use crate::domain::{Capability, Lease, Session, Turn, TurnKind};
use crate::metrics::RuntimeMetrics;
use crate::provider::{LlmProvider, ModelRequest, ProviderError};
use crate::publish::{self, Lane};
use crate::seal::TurnSpec;
use crate::store::{MessageStore, Store};
use crate::tools::{self, MemoryContext, Sandbox, ToolContext, ToolLimits, Workspace};
use crate::workspace::{InUse, Prepared, Saved, Target, WorkspaceManager};

/// Settings of every run on this worker.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub max_steps: u32,
    pub coalesce: Duration,
    pub tool_limits: ToolLimits,
    /// Per-conversation workspaces live under `<root>/conversations/`.
    pub root_dir: PathBuf,
    /// cloud-api, for the memory tools (called with the user's own token).
    pub cloud_api_url: url::Url,
    /// Characters of history sent per step; older tool output is elided beyond it.
    pub context_char_budget: usize,
}

/// What a run needs from the worker.
#[derive(Clone)]
pub struct AgentDeps {
    pub workspaces: Arc<WorkspaceManager>,
    pub store: Arc<dyn Store>,
    pub messages: Arc<dyn MessageStore>,
    pub sandbox: Arc<Sandbox>,
    pub metrics: RuntimeMetrics,
    pub config: AgentConfig,
    pub http: reqwest::Client,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEnd {
    /// The model answered without tool calls.
    Done,
    /// The model still wanted tools after the configured number of steps.
    StepLimit,
    Failed(ProviderError),
    /// The workspace or the store could not be used.
    Broken(String),
    Aborted,
    /// Another worker holds the session now: it settles the turn.
    LeaseLost,
}

#[derive(Debug)]
pub struct RunResult {
    pub end: RunEnd,
    /// The messages of this run, in order (also stored).
    pub messages: Vec<AgentMessage>,
    pub usage: TokenUsage,
    pub steps: i32,
}

impl RunResult {
    /// The answer's text for the turn record.
    pub fn text(&self) -> String {
        self.messages
            .iter()
            .filter(|m| matches!(m, AgentMessage::Assistant(_)))
            .filter_map(AgentMessage::transcript_text)
            .collect::<Vec<_>>()
            .join("\n\n")
    }
}

/// One run in progress: its identity, its history and where it publishes.
pub(crate) struct Run<'a> {
    deps: &'a AgentDeps,
    session: &'a Session,
    turn: &'a Turn,
    lease: &'a Lease,
    lane: &'a Lane,
    cancel: &'a CancellationToken,
    spec: &'a TurnSpec,
    provider: Arc<dyn LlmProvider>,
    tools: Option<ToolContext>,
    memory: Option<MemoryContext>,
    work: Option<(Target, InUse)>,
    history: Vec<AgentMessage>,
    produced: Vec<AgentMessage>,
    usage: TokenUsage,
    output_started: bool,
}

/// Runs the agent for `turn`. Never panics on provider, tool or store errors: they end the run
/// with the matching [`RunEnd`].
#[allow(clippy::too_many_arguments)]
pub async fn run(
    deps: &AgentDeps,
    session: &Session,
    turn: &Turn,
    lease: &Lease,
    spec: &TurnSpec,
    provider: Arc<dyn LlmProvider>,
    lane: &Lane,
    cancel: &CancellationToken,
) -> RunResult {
    let mut run = Run {
        deps,
        session,
        turn,
        lease,
        lane,
        cancel,
        spec,
        provider,
        tools: None,
        memory: None,
        work: None,
        history: Vec::new(),
        produced: Vec::new(),
        usage: TokenUsage::default(),
        output_started: false,
    };
    let mut steps = 0i32;
    let end = run.drive(&mut steps).await;
    if !matches!(end, RunEnd::LeaseLost) {
        run.save_workspace().await;
    }
    RunResult {
        end,
        messages: run.produced,
        usage: run.usage,
        steps,
    }
}

impl Run<'_> {
    async fn drive(&mut self, steps: &mut i32) -> RunEnd {
        if self.spec.capability == Capability::FullTools {
            match self.open_workspace().await {
                Ok(ctx) => self.tools = Some(ctx),
                Err(e) => return RunEnd::Broken(e),
            }
        }
        self.memory = self.memory_context();
        if let Err(end) = self.load_history().await {
            return end;
        }
        let mut inputs = vec![self.turn.clone()];
        if self.turn.kind == TurnKind::FollowUp {
            let batch = self.session.preferences.follow_up_mode.batch() - 1;
            if batch > 0 {
                inputs.extend(self.take_queued(TurnKind::FollowUp, batch).await);
            }
        }
        if let Err(end) = self.deliver_user_messages(&inputs).await {
            return end;
        }
        loop {
            if self.cancel.is_cancelled() {
                return RunEnd::Aborted;
            }
            if *steps > 0 {
                let batch = self.session.preferences.steering_mode.batch();
                let steers = self.take_queued(TurnKind::Steer, batch).await;
                if let Err(end) = self.deliver_user_messages(&steers).await {
                    return end;
                }
            }
            if *steps >= self.deps.config.max_steps as i32 {
                return RunEnd::StepLimit;
            }
            *steps += 1;
            let answer = match self.step_with_retries(*steps).await {
                Ok(a) => a,
                Err(end) => return end,
            };
            let calls: Vec<(String, String, Value)> = answer
                .tool_calls()
                .map(|(id, name, args)| (id.to_owned(), name.to_owned(), args.clone()))
                .collect();
            if calls.is_empty() {
                return RunEnd::Done;
            }
            if let Err(end) = self.run_tools(calls).await {
                return end;
            }
        }
    }

    /// The request of one step: the whole history (made consistent and fitted to the context
    /// budget), the system prompt and the tools.
    fn request(&self) -> ModelRequest {
        let messages = fit_to_budget(
            repair_tool_pairs(self.history.clone()),
            self.deps.config.context_char_budget,
        );
        ModelRequest {
            base_url: self.spec.base_url.clone(),
            secret: cloud_common::Secret::new(self.spec.secret.clone()),
            model: self.spec.model.clone(),
            system: prompt::system_prompt(self.spec.capability, self.deps.sandbox.config()),
            messages,
            tools: tools::specs(self.spec.capability, self.memory.is_some()),
            thinking: self.spec.thinking(),
        }
    }

    /// One step; with auto-retry on (the default), a transient provider failure before any
    /// output is retried after a growing delay, with `auto_retry_start/_end` events.
    async fn step_with_retries(&mut self, step: i32) -> Result<AssistantMessage, RunEnd> {
        let mut attempt = 0u32;
        loop {
            let before = self.produced.len();
            let result = self.stream_step(step, self.request()).await;
            let retry = match &result {
                Err(RunEnd::Failed(e)) => {
                    self.session.preferences.auto_retry
                        && attempt < MAX_RETRIES
                        && self.produced.len() == before
                        && transient(e)
                }
                _ => false,
            };
            if !retry {
                if attempt > 0 {
                    let error = match &result {
                        Err(RunEnd::Failed(e)) => Some(e.to_string()),
                        _ => None,
                    };
                    self.publish(events::auto_retry_end(result.is_ok(), attempt, error))
                        .await;
                }
                return result;
            }
            attempt += 1;
            let delay = Duration::from_secs(1 << (attempt - 1).min(3));
            if let Err(RunEnd::Failed(e)) = &result {
                tracing::info!(turn = self.turn.id, attempt, error = %e, "Retrying a failed step.");
                self.publish(events::auto_retry_start(
                    attempt,
                    MAX_RETRIES,
                    delay,
                    &e.to_string(),
                ))
                .await;
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.cancel.cancelled() => return Err(RunEnd::Aborted),
            }
        }
    }

    /// The conversation's workspace, made current on this worker (restored or cloned as
    /// needed) and held for the run.
    async fn open_workspace(&mut self) -> Result<ToolContext, String> {
        let target = Target {
            organization_id: self.session.organization_id.clone().unwrap_or_default(),
            project_id: self.session.project_id.clone().unwrap_or_default(),
            conversation_id: self.session.conversation_id.clone(),
            repository: self.spec.repository.clone(),
        };
        if target.repository.is_some() && target.project_id.is_empty() {
            return Err("a repository workspace needs its project".into());
        }
        let (work, prepared) = self
            .deps
            .workspaces
            .prepare(&target)
            .await
            .map_err(|e| e.to_string())?;
        match prepared {
            Prepared::Ready => {}
            Prepared::Cloned { branch } => {
                self.publish(events::workspace(
                    "cloned",
                    &format!("Repository checked out on branch {branch}"),
                    None,
                ))
                .await;
            }
            Prepared::Restored { generation } => {
                self.publish(events::workspace(
                    "restored",
                    "Workspace restored from its saved state",
                    Some(serde_json::json!({"generation": generation})),
                ))
                .await;
            }
        }
        let workspace = Workspace::open(&work.dir)
            .map_err(|e| format!("the conversation's workspace cannot be opened: {e}"))?;
        self.work = Some((target, work));
        Ok(ToolContext {
            workspace,
            sandbox: self.deps.sandbox.clone(),
            limits: self.deps.config.tool_limits,
            metrics: self.deps.metrics.clone(),
        })
    }

    /// After the run: the workspace's state goes to the store; a workspace over the size cap
    /// or a failed save is reported, never dropped silently.
    async fn save_workspace(&mut self) {
        let Some((target, work)) = self.work.take() else {
            return;
        };
        match self
            .deps
            .workspaces
            .save(&target, &work, self.turn.id)
            .await
        {
            Ok(Saved::Stored { .. }) => {}
            Ok(Saved::TooLarge { bytes, limit }) => {
                let message = format!(
                    "The workspace was not saved: it is {} MB, over the {} MB limit. Its files \
                     stay on this worker only and are lost if the session moves.",
                    bytes.div_ceil(1 << 20),
                    limit.div_ceil(1 << 20)
                );
                tracing::warn!(
                    turn = self.turn.id,
                    bytes,
                    limit,
                    "Workspace snapshot over the cap."
                );
                self.publish(events::workspace(
                    "snapshot_too_large",
                    &message,
                    Some(serde_json::json!({"sizeBytes": bytes, "limitBytes": limit})),
                ))
                .await;
                self.publish(publish::runtime_status("ready", &message, &self.session.id))
                    .await;
            }
            Err(e) => {
                tracing::warn!(turn = self.turn.id, error = %e, "Workspace snapshot failed.");
                let message = format!("The workspace could not be saved: {e}");
                self.publish(events::workspace("snapshot_failed", &message, None))
                    .await;
            }
        }
    }

    /// The organization's memory, reached with the user's own token (no organization or no
    /// token: no memory tools).
    fn memory_context(&self) -> Option<MemoryContext> {
        Some(MemoryContext {
            http: self.deps.http.clone(),
            api: self.deps.config.cloud_api_url.clone(),
            token: cloud_common::Secret::new(self.spec.user_token.clone()?),
            organization_id: self.session.organization_id.clone()?,
            project_id: self.session.project_id.clone(),
            conversation_id: self.session.conversation_id.clone(),
        })
    }

    /// The conversation so far: its transcript when the session began, then every stored
    /// message of the session (this turn's own from an earlier attempt excluded).
    async fn load_history(&mut self) -> Result<(), RunEnd> {
        let stored = self
            .deps
            .messages
            .session_messages(&self.session.id)
            .await
            .map_err(|e| RunEnd::Broken(e.to_string()))?;
        let mut history: Vec<AgentMessage> = self
            .session
            .context
            .iter()
            .filter_map(AgentMessage::from_transcript)
            .collect();
        for m in stored {
            if m.turn_id == Some(self.turn.id) || history.iter().any(|h| h.id() == m.message.id()) {
                continue;
            }
            history.push(m.message);
        }
        self.history = history;
        Ok(())
    }

    async fn take_queued(&self, kind: TurnKind, limit: i64) -> Vec<Turn> {
        match self
            .deps
            .store
            .take_queued(&self.session.id, self.lease, self.turn.id, kind, limit)
            .await
        {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(turn = self.turn.id, error = %e, "Cannot take queued messages.");
                Vec::new()
            }
        }
    }

    async fn deliver_user_messages(&mut self, turns: &[Turn]) -> Result<(), RunEnd> {
        for t in turns {
            let input = t.user_input();
            let saved = |f: &crate::domain::input::FileInput| self.save_attachment(f);
            let message = AgentMessage::User(input.to_message(
                t.user_message_id(),
                chrono::Utc::now().timestamp_millis(),
                &saved,
            ));
            self.publish(events::message_start(&message)).await;
            self.store(&message).await?;
            self.publish(events::message_end(&message)).await;
        }
        Ok(())
    }

    /// Writes an attached file under `attachments/` of the workspace (when there is one).
    fn save_attachment(&self, f: &crate::domain::input::FileInput) -> Option<String> {
        use base64::Engine;
        let ctx = self.tools.as_ref()?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&f.data)
            .ok()?;
        let rel = format!("attachments/{}", f.name);
        let path = ctx.workspace.resolve(&rel).ok()?;
        std::fs::create_dir_all(path.parent()?).ok()?;
        std::fs::write(&path, bytes).ok()?;
        Some(rel)
    }

    /// Stores a finished message of this run (fenced by the lease) and adds it to the history.
    async fn store(&mut self, message: &AgentMessage) -> Result<(), RunEnd> {
        match self
            .deps
            .messages
            .append_messages(
                &self.session.id,
                self.lease,
                self.turn.id,
                std::slice::from_ref(message),
            )
            .await
        {
            Ok(true) => {}
            Ok(false) => return Err(RunEnd::LeaseLost),
            Err(e) => return Err(RunEnd::Broken(format!("the message cannot be stored: {e}"))),
        }
        self.history.push(message.clone());
        self.produced.push(message.clone());
        Ok(())
    }

    async fn publish(&self, event: Value) {
        self.lane
            .send(publish::conversation_event(self.session, event))
            .await;
    }
}

/// Retries of one step after a transient provider failure.
const MAX_RETRIES: u32 = 3;

/// Failures worth another attempt: rate limits, server errors, dropped or silent streams.
fn transient(e: &ProviderError) -> bool {
    match e {
        ProviderError::Status { status, .. } => matches!(status, 408 | 409 | 429 | 500..=599),
        ProviderError::Network(_) | ProviderError::Timeout(_) | ProviderError::Incomplete => true,
        ProviderError::Protocol(m) => m.to_lowercase().contains("overloaded"),
        _ => false,
    }
}

/// A path segment made of safe characters only (ids come from clients).
pub fn path_segment(id: &str) -> String {
    let s: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    if s.is_empty() { "_".into() } else { s }
}
