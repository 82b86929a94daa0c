//! The agent's tools. `chat_only` projects get none; `full_tools` projects get `read`, `ls`,
//! `find`, `grep`, `write`, `edit` and `bash`, every path confined to the session's workspace
//! ([`path`]) and `bash` run only inside the sandbox ([`sandbox`]). Every output is capped and
//! marked truncated the way the desktop renders it.

pub mod bash;
mod files;
pub mod memory;
pub mod path;
pub mod proxy;
pub mod sandbox;
mod search;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::domain::Capability;
use crate::domain::message::{ToolDetails, Truncation};
use crate::provider::ToolSpec;

pub use memory::MemoryContext;
pub use path::Workspace;
pub use sandbox::Sandbox;

/// Caps on what a tool returns to the model.
#[derive(Debug, Clone, Copy)]
pub struct ToolLimits {
    pub max_output_bytes: usize,
    pub max_output_lines: usize,
    /// `bash` calls that name no timeout get this one; none may ask for more than `max`.
    pub bash_timeout: Duration,
    pub bash_max_timeout: Duration,
}

impl Default for ToolLimits {
    fn default() -> Self {
        Self {
            max_output_bytes: 50 * 1024,
            max_output_lines: 2000,
            bash_timeout: Duration::from_secs(120),
            bash_max_timeout: Duration::from_secs(600),
        }
    }
}

/// What a tool call gives back.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    pub text: String,
    pub is_error: bool,
    pub details: Option<ToolDetails>,
}

impl ToolOutput {
    pub fn ok(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            is_error: false,
            details: None,
        }
    }

    pub fn error(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            is_error: true,
            details: None,
        }
    }

    /// The desktop's tool result object (`tool_execution_end.result`).
    pub fn result_json(&self) -> Value {
        let mut v = json!({"content": [{"type": "text", "text": self.text}]});
        if let Some(d) = &self.details {
            v["details"] = serde_json::to_value(d).unwrap_or(Value::Null);
        }
        v
    }
}

/// Everything a tool call may touch: the workspace, the sandbox and the caps.
#[derive(Clone)]
pub struct ToolContext {
    pub workspace: Workspace,
    pub sandbox: Arc<Sandbox>,
    pub limits: ToolLimits,
    pub metrics: crate::metrics::RuntimeMetrics,
}

/// The tools a capability grants; the memory tools come with every capability when the
/// session belongs to an organization.
pub fn specs(capability: Capability, memory: bool) -> Vec<ToolSpec> {
    let mut out = workspace_specs(capability);
    if memory {
        out.extend(memory::specs());
    }
    out
}

fn workspace_specs(capability: Capability) -> Vec<ToolSpec> {
    match capability {
        Capability::ChatOnly => Vec::new(),
        Capability::FullTools => vec![
            files::read_spec(),
            files::ls_spec(),
            search::find_spec(),
            search::grep_spec(),
            files::write_spec(),
            files::edit_spec(),
            bash::spec(),
        ],
    }
}

/// Runs one tool call. `updates` receives partial output of long calls (`bash`). Never panics
/// on bad arguments: they come back as a tool error the model can correct.
pub async fn execute(
    name: &str,
    args: &Value,
    ctx: Option<&ToolContext>,
    memory: Option<&MemoryContext>,
    cancel: &CancellationToken,
    updates: Option<mpsc::Sender<String>>,
) -> ToolOutput {
    let args = match args {
        Value::Object(_) => args.clone(),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            _ => return ToolOutput::error("The tool arguments are not a JSON object."),
        },
        Value::Null => json!({}),
        _ => return ToolOutput::error("The tool arguments are not a JSON object."),
    };
    if memory::NAMES.contains(&name) {
        return match memory {
            Some(m) => m.run(name, &args).await,
            None => ToolOutput::error(format!(
                "Tool {name} is not available: this session has no organization memory."
            )),
        };
    }
    let Some(ctx) = ctx else {
        return ToolOutput::error(format!(
            "Tool {name} is not available: this project has no workspace tools."
        ));
    };
    let ctx = ctx.clone();
    let name_owned = name.to_owned();
    let cancel = cancel.clone();
    match name {
        "bash" => bash::run(&ctx, &args, &cancel, updates).await,
        "read" | "ls" | "find" | "grep" | "write" | "edit" => {
            // Filesystem work blocks; keep it off the async threads.
            let run = tokio::task::spawn_blocking(move || match name_owned.as_str() {
                "read" => files::read(&ctx, &args),
                "ls" => files::ls(&ctx, &args),
                "find" => search::find(&ctx, &args),
                "grep" => search::grep(&ctx, &args),
                "write" => files::write(&ctx, &args),
                _ => files::edit(&ctx, &args),
            });
            match run.await {
                Ok(out) => out,
                Err(e) => ToolOutput::error(format!("The tool failed: {e}")),
            }
        }
        other => ToolOutput::error(format!("Unknown tool: {other}")),
    }
}

/// A string argument, or a tool error naming it.
fn str_arg<'a>(args: &'a Value, name: &str) -> Result<&'a str, ToolOutput> {
    args.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| ToolOutput::error(format!("The argument {name:?} (a string) is required.")))
}

fn opt_str<'a>(args: &'a Value, name: &str) -> Option<&'a str> {
    args.get(name).and_then(Value::as_str)
}

fn opt_u64(args: &Value, name: &str) -> Option<u64> {
    args.get(name).and_then(|v| {
        v.as_u64()
            .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
    })
}

/// Keeps the head of `text` within the caps; the details say what was cut.
pub fn truncate_head(text: &str, limits: &ToolLimits) -> (String, Option<ToolDetails>) {
    let total_bytes = text.len() as u64;
    let total_lines = text.lines().count() as u64;
    let mut out = String::new();
    let mut lines = 0usize;
    for line in text.split_inclusive('\n') {
        if lines >= limits.max_output_lines || out.len() + line.len() > limits.max_output_bytes {
            break;
        }
        out.push_str(line);
        lines += 1;
    }
    if out.len() == text.len() {
        return (out, None);
    }
    if out.is_empty() {
        // One enormous line: cut it at a character boundary.
        let mut cut = limits.max_output_bytes.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push_str(&text[..cut]);
        lines = 1;
    }
    let details = ToolDetails {
        truncation: Some(Truncation {
            truncated: true,
            total_bytes,
            total_lines,
            output_bytes: out.len() as u64,
            output_lines: lines as u64,
        }),
        exit_code: None,
    };
    (out, Some(details))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_the_head_and_says_so() {
        let limits = ToolLimits {
            max_output_bytes: 10,
            max_output_lines: 2,
            ..ToolLimits::default()
        };
        let (out, d) = truncate_head("a\nb\nc\n", &limits);
        assert_eq!(out, "a\nb\n");
        let t = d.unwrap().truncation.unwrap();
        assert!(t.truncated);
        assert_eq!((t.total_lines, t.output_lines), (3, 2));
        let (out, d) = truncate_head("ab\n", &limits);
        assert_eq!((out.as_str(), d), ("ab\n", None));
        let (out, d) = truncate_head(&"é".repeat(20), &limits);
        assert!(out.len() <= 10 && d.is_some());
    }

    #[test]
    fn capabilities_grant_their_tools() {
        assert!(specs(Capability::ChatOnly, false).is_empty());
        assert_eq!(specs(Capability::ChatOnly, true).len(), 7);
        let names: Vec<String> = specs(Capability::FullTools, true)
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(
            names[..7],
            ["read", "ls", "find", "grep", "write", "edit", "bash"]
        );
        assert_eq!(names.len(), 14);
        for name in names {
            // Valid for both wires: ^[a-zA-Z0-9_-]{1,64}$
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            );
        }
    }
}
