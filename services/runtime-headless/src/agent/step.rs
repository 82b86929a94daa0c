//! One step of a run: the streamed model call, then the tool calls it asked for.

use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::assembler::Assembler;
use super::events::{self, Coalescer};
use super::{Run, RunEnd};
use crate::domain::message::{
    AgentMessage, AssistantMessage, StopReason, TextPart, ToolResultMessage,
};
use crate::provider::{ModelRequest, ProviderError};
use crate::tools::{self, ToolOutput};

enum StreamEnd {
    Complete,
    Failed(ProviderError),
    Aborted,
    LeaseLost,
}

impl Run<'_> {
    /// Streams one answer to the desktop and stores it. `Err` ends the run.
    pub(super) async fn stream_step(
        &mut self,
        step: i32,
        request: ModelRequest,
    ) -> Result<AssistantMessage, RunEnd> {
        let id = format!("{}-turn-{}-step-{step}", self.session.id, self.turn.id);
        let mut asm = Assembler::new(
            id,
            self.provider.api(),
            &self.spec.provider_kind,
            &self.spec.model,
            chrono::Utc::now().timestamp_millis(),
        );
        self.publish(events::message_start(&AgentMessage::Assistant(
            asm.message().clone(),
        )))
        .await;
        let mut coalescer = Coalescer::new(self.deps.config.coalesce);
        let opened = tokio::select! {
            r = self.provider.stream(request) => Some(r),
            () = self.cancel.cancelled() => None,
        };
        let end = match opened {
            None => StreamEnd::Aborted,
            Some(Err(e)) => StreamEnd::Failed(e),
            Some(Ok(mut stream)) => loop {
                let deadline = coalescer.deadline();
                let next = tokio::select! {
                    biased;
                    () = self.cancel.cancelled() => break StreamEnd::Aborted,
                    () = sleep_until(deadline) => {
                        if let Some(piece) = coalescer.flush(Instant::now()) {
                            self.publish(events::message_update(asm.message(), &piece)).await;
                        }
                        continue;
                    }
                    n = stream.next() => n,
                };
                let event = match next {
                    None => break StreamEnd::Complete,
                    Some(Err(e)) => break StreamEnd::Failed(e),
                    Some(Ok(e)) => e,
                };
                if !self.output_started {
                    match self
                        .deps
                        .store
                        .mark_output_started(self.turn.id, self.lease)
                        .await
                    {
                        Ok(true) => self.output_started = true,
                        _ => break StreamEnd::LeaseLost,
                    }
                }
                if let Some(piece) = asm.apply(event) {
                    for p in coalescer.push(piece, Instant::now()) {
                        self.publish(events::message_update(asm.message(), &p))
                            .await;
                    }
                }
            },
        };
        if matches!(end, StreamEnd::LeaseLost) {
            return Err(RunEnd::LeaseLost);
        }
        let outcome = match &end {
            StreamEnd::Complete => None,
            StreamEnd::Aborted => Some((StopReason::Aborted, None)),
            StreamEnd::Failed(e) => Some((StopReason::Error, Some(e.to_string()))),
            StreamEnd::LeaseLost => None,
        };
        let had_content = asm.has_content();
        let message = asm.finish(outcome);
        self.usage.add(message.usage);
        self.deps
            .metrics
            .tokens(message.usage.input, message.usage.output);
        let wrapped = AgentMessage::Assistant(message.clone());
        // A step that failed or was aborted before producing anything leaves no message.
        if had_content || matches!(end, StreamEnd::Complete) {
            self.publish(events::message_done(&message)).await;
            self.publish(events::message_end(&wrapped)).await;
            self.store(&wrapped).await?;
        }
        match end {
            StreamEnd::Complete => Ok(message),
            StreamEnd::Aborted => Err(RunEnd::Aborted),
            StreamEnd::Failed(e) => Err(RunEnd::Failed(e)),
            StreamEnd::LeaseLost => Err(RunEnd::LeaseLost),
        }
    }

    /// Runs the calls one after the other; an abort stops at the current call, and every call
    /// still gets a result (the next request needs one per call).
    pub(super) async fn run_tools(
        &mut self,
        calls: Vec<(String, String, Value)>,
    ) -> Result<(), RunEnd> {
        for (id, name, args) in calls {
            let output = if self.cancel.is_cancelled() {
                ToolOutput::error("Not run: the run was aborted.")
            } else {
                self.publish(events::tool_start(&id, &name, &args)).await;
                let out = self.execute(&id, &name, &args).await;
                let outcome = if self.cancel.is_cancelled() {
                    "aborted"
                } else if out.is_error {
                    "error"
                } else {
                    "ok"
                };
                self.deps.metrics.tool_call(&name, outcome);
                self.publish(events::tool_end(
                    &id,
                    &name,
                    out.result_json(),
                    out.is_error,
                ))
                .await;
                out
            };
            let result = AgentMessage::ToolResult(ToolResultMessage {
                id: format!("{}-turn-{}-result-{id}", self.session.id, self.turn.id),
                tool_call_id: id,
                tool_name: name,
                content: vec![TextPart::Text { text: output.text }],
                is_error: output.is_error,
                details: output.details,
                timestamp: chrono::Utc::now().timestamp_millis(),
            });
            self.publish(events::message_start(&result)).await;
            self.store(&result).await?;
            self.publish(events::message_end(&result)).await;
        }
        if self.cancel.is_cancelled() {
            return Err(RunEnd::Aborted);
        }
        Ok(())
    }

    /// One call, relaying its partial output as `tool_execution_update` events.
    async fn execute(&self, id: &str, name: &str, args: &Value) -> ToolOutput {
        let (tx, mut rx) = mpsc::channel::<String>(4);
        let call = tools::execute(
            name,
            args,
            self.tools.as_ref(),
            self.memory.as_ref(),
            self.cancel,
            Some(tx),
        );
        tokio::pin!(call);
        loop {
            tokio::select! {
                out = &mut call => return out,
                Some(partial) = rx.recv() => {
                    self.publish(events::tool_update(id, name, args, &partial)).await;
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
