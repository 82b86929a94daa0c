//! Runs a service binary as a real child process (for signals, `kill -9` and multi-replica
//! tests) and learns its port from its JSON "Listening." log line.

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

pub struct ServiceProcess {
    pub addr: SocketAddr,
    child: Child,
    /// Every stdout line the process printed so far (JSON logs), for assertions.
    lines: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl ServiceProcess {
    /// Starts `binary` with `PORT=0`, JSON logs and exactly `env` (plus PATH), and waits until it
    /// listens.
    pub async fn spawn(binary: &str, env: &[(&str, String)]) -> Self {
        Self::spawn_with_args(binary, &[], env).await
    }

    pub async fn spawn_with_args(binary: &str, args: &[&str], env: &[(&str, String)]) -> Self {
        let mut cmd = Command::new(binary);
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", "0")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {binary}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let Some(line) = rx.recv().await else {
                    panic!("{binary} exited before listening; output: {seen:#?}");
                };
                let port = serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| {
                        (v["message"] == "Listening.")
                            .then(|| {
                                v["addr"]
                                    .as_str()
                                    .and_then(|a| a.parse::<SocketAddr>().ok())
                            })
                            .flatten()
                    });
                seen.push(line);
                if let Some(a) = port {
                    break SocketAddr::from(([127, 0, 0, 1], a.port()));
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{binary} did not listen within 30 s"));
        Self {
            addr,
            child,
            lines: rx,
            seen,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running child")
    }

    /// Sends a signal by name (`TERM`, `KILL`, `INT`).
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        tokio::time::timeout(within, self.child.wait())
            .await
            .expect("process did not exit in time")
            .expect("wait")
    }

    /// Lines printed so far (drains what arrived since the last call).
    pub fn output(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }
}
