//! `bash`: one script in the sandbox, with a time limit, its output streamed as partial
//! results and capped (the tail is kept: that is where errors are).

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::sandbox::first_line;
use super::{ToolContext, ToolOutput, opt_u64, str_arg};
use crate::domain::message::{ToolDetails, Truncation};
use crate::provider::ToolSpec;

/// How often partial output is sent while a script runs.
const UPDATE_EVERY: Duration = Duration::from_millis(500);
/// Bytes of bubblewrap's own stderr kept (the script's stderr goes to stdout).
const MAX_STDERR: usize = 16 * 1024;

pub fn spec() -> ToolSpec {
    ToolSpec {
        name: "bash".into(),
        description: "Run a bash script in /workspace (a sandbox: only the workspace is \
            writable, nothing survives outside it between calls). Returns stdout and stderr \
            together and the exit code."
            .into(),
        parameters: json!({
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The script to run"},
                "timeout": {"type": "integer", "minimum": 1, "description": "Seconds before the script is killed"}
            },
            "required": ["command"]
        }),
    }
}

/// The last `cap` bytes of a stream, with counts of everything seen.
#[derive(Debug)]
pub struct Tail {
    buf: VecDeque<u8>,
    cap: usize,
    total_bytes: u64,
    total_lines: u64,
}

impl Tail {
    pub fn new(cap: usize) -> Self {
        Self {
            buf: VecDeque::with_capacity(cap.min(64 * 1024)),
            cap,
            total_bytes: 0,
            total_lines: 0,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.total_bytes += bytes.len() as u64;
        self.total_lines += bytes.iter().filter(|b| **b == b'\n').count() as u64;
        let keep = bytes.len().min(self.cap);
        let overflow = (self.buf.len() + keep).saturating_sub(self.cap);
        self.buf.drain(..overflow);
        self.buf.extend(&bytes[bytes.len() - keep..]);
    }

    pub fn text(&self) -> String {
        let (a, b) = self.buf.as_slices();
        let mut v = Vec::with_capacity(a.len() + b.len());
        v.extend_from_slice(a);
        v.extend_from_slice(b);
        let mut text = String::from_utf8_lossy(&v).into_owned();
        if self.truncated() {
            // Start at a line boundary so the first shown line is whole.
            if let Some(pos) = text.find('\n') {
                text.drain(..=pos);
            }
        }
        text
    }

    pub fn truncated(&self) -> bool {
        self.total_bytes > self.buf.len() as u64
    }

    pub fn details(&self, shown: &str, exit_code: Option<i32>) -> ToolDetails {
        ToolDetails {
            truncation: self.truncated().then(|| Truncation {
                truncated: true,
                total_bytes: self.total_bytes,
                total_lines: self.total_lines,
                output_bytes: shown.len() as u64,
                output_lines: shown.lines().count() as u64,
            }),
            exit_code,
        }
    }
}

enum End {
    Exited(std::process::ExitStatus),
    TimedOut,
    Aborted,
    WaitFailed(String),
}

pub async fn run(
    ctx: &ToolContext,
    args: &Value,
    cancel: &CancellationToken,
    updates: Option<mpsc::Sender<String>>,
) -> ToolOutput {
    let script = match str_arg(args, "command") {
        Ok(s) => s,
        Err(out) => return out,
    };
    let timeout = opt_u64(args, "timeout")
        .map(Duration::from_secs)
        .unwrap_or(ctx.limits.bash_timeout)
        .clamp(Duration::from_secs(1), ctx.limits.bash_max_timeout);
    let marker = format!("chatons-sandbox-ready-{}", uuid::Uuid::new_v4().simple());
    let proxy = match ctx.sandbox.proxy_for_call().await {
        Ok(p) => p,
        Err(e) => return sandbox_failed(ctx, &e),
    };
    let mut child = match ctx
        .sandbox
        .command(
            ctx.workspace.root(),
            script,
            &marker,
            timeout.as_secs() + 1,
            proxy.as_ref().map(|p| p.mount()),
        )
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return sandbox_failed(
                ctx,
                &format!(
                    "{} cannot be started: {e}",
                    ctx.sandbox.config().bwrap.display()
                ),
            );
        }
    };
    let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        let _ = child.start_kill();
        return sandbox_failed(ctx, "no output pipes");
    };
    let err_task = tokio::spawn(async move {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            if buf.len() < MAX_STDERR {
                buf.extend_from_slice(&chunk[..n.min(MAX_STDERR - buf.len())]);
            }
        }
        String::from_utf8_lossy(&buf).into_owned()
    });
    let mut tail = Tail::new(ctx.limits.max_output_bytes);
    let mut chunk = vec![0u8; 16 * 1024];
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(UPDATE_EVERY);
    ticker.tick().await;
    let mut sent_bytes = 0u64;
    let mut stdout_open = true;
    let end = loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break End::Aborted,
            () = &mut deadline => break End::TimedOut,
            read = stdout.read(&mut chunk), if stdout_open => match read {
                Ok(0) | Err(_) => stdout_open = false,
                Ok(n) => tail.push(&chunk[..n]),
            },
            status = child.wait(), if !stdout_open => break match status {
                Ok(s) => End::Exited(s),
                Err(e) => End::WaitFailed(e.to_string()),
            },
            _ = ticker.tick() => {
                if let Some(tx) = &updates
                    && tail.total_bytes != sent_bytes
                {
                    sent_bytes = tail.total_bytes;
                    let _ = tx.try_send(tail.text());
                }
            }
        }
    };
    if !matches!(end, End::Exited(_)) {
        // Killing bubblewrap ends the sandbox's PID namespace: every process in it dies.
        let killed = tokio::time::Instant::now();
        let _ = child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        tracing::info!(
            waited_ms = killed.elapsed().as_millis() as u64,
            "A bash call was stopped (time limit or abort)."
        );
    }
    drop(proxy);
    let bwrap_err = tokio::time::timeout(Duration::from_secs(2), err_task)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    if !bwrap_err.lines().any(|l| l == marker) {
        return sandbox_failed(ctx, &first_line(&bwrap_err));
    }
    let shown = tail.text();
    let (suffix, exit_code, is_error) = match end {
        End::Exited(s) => match s.code() {
            Some(0) => (String::new(), Some(0), false),
            Some(c) => (format!("\n\nCommand exited with code {c}"), Some(c), true),
            None => ("\n\nCommand was killed by a signal".into(), None, true),
        },
        End::TimedOut => (
            format!(
                "\n\nCommand timed out after {} s and was killed",
                timeout.as_secs()
            ),
            None,
            true,
        ),
        End::Aborted => ("\n\nCommand aborted".into(), None, true),
        End::WaitFailed(e) => (format!("\n\nCommand status unknown: {e}"), None, true),
    };
    let details = tail.details(&shown, exit_code);
    let body = if shown.is_empty() && suffix.is_empty() {
        "(no output)".to_owned()
    } else {
        shown
    };
    ToolOutput {
        text: format!("{body}{suffix}"),
        is_error,
        details: Some(details),
    }
}

fn sandbox_failed(ctx: &ToolContext, reason: &str) -> ToolOutput {
    tracing::warn!(%reason, "The bash sandbox could not start.");
    ctx.metrics.sandbox_failures.inc();
    ToolOutput::error(format!(
        "The sandbox could not start, so the command was not run: {reason}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_end() {
        let mut t = Tail::new(10);
        t.push(b"line1\nline2\n");
        t.push(b"line3\n");
        assert!(t.truncated());
        assert_eq!(t.text(), "line3\n");
        assert_eq!(t.total_lines, 3);
        let mut small = Tail::new(100);
        small.push(b"ok\n");
        assert!(!small.truncated());
        assert_eq!(small.text(), "ok\n");
        assert!(small.details("ok\n", Some(0)).truncation.is_none());
    }
}
