//! git, run by the worker for checkouts and snapshots — never with anything a repository can
//! turn into code execution in the worker, and never with the token where it could leak.
//!
//! - The environment is cleared: no system or global config (`GIT_CONFIG_NOSYSTEM`,
//!   `GIT_CONFIG_GLOBAL=/dev/null`), a private `HOME`, no terminal prompt, no credential helper.
//! - Settings come through `GIT_CONFIG_COUNT`/`KEY_n`/`VALUE_n` (environment, not argv and not
//!   `.git/config`): hooks off (`core.hooksPath=/dev/null`), no fsmonitor, no submodule
//!   recursion, redirects refused, only the http(s) and local file transports (`ext::` runs
//!   commands and stays off).
//! - The repository token, when there is one, is an `Authorization` header for that one
//!   command, in the same environment channel: it is not in the remote URL, any config file,
//!   the process list, the agent's sandbox, a log line or an error message (error text is
//!   scrubbed of it anyway).

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use tokio::process::Command;

/// Longest any one git command may take (clones of large repositories included).
const GIT_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("git {action} failed: {message}")]
pub struct GitError {
    pub action: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct Git {
    binary: PathBuf,
    home: PathBuf,
}

impl Git {
    pub fn new(binary: PathBuf, home: PathBuf) -> Self {
        Self { binary, home }
    }

    fn command(&self, cwd: &Path, args: &[&str], token: Option<&str>) -> Command {
        let mut config: Vec<(&str, String)> = vec![
            ("core.hooksPath", "/dev/null".into()),
            ("core.fsmonitor", "false".into()),
            ("submodule.recurse", "false".into()),
            ("http.followRedirects", "false".into()),
            ("protocol.allow", "never".into()),
            ("protocol.https.allow", "always".into()),
            ("protocol.http.allow", "always".into()),
            ("protocol.file.allow", "always".into()),
            ("credential.helper", String::new()),
            ("user.name", "Chatons Cloud".into()),
            ("user.email", "agent@cloud.chatons.ai".into()),
            ("init.defaultBranch", "main".into()),
            ("advice.detachedHead", "false".into()),
            ("gc.auto", "0".into()),
            // Objects from a remote or a stored bundle are checked before they are kept.
            ("fetch.fsckObjects", "true".into()),
            ("transfer.fsckObjects", "true".into()),
        ];
        if let Some(t) = token {
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{t}"));
            config.push(("http.extraHeader", format!("Authorization: Basic {basic}")));
        }
        let _ = std::fs::create_dir_all(&self.home);
        let mut cmd = Command::new(&self.binary);
        cmd.args(args)
            .current_dir(cwd)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &self.home)
            .env("LANG", "C")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_COUNT", config.len().to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        for (i, (k, v)) in config.iter().enumerate() {
            cmd.env(format!("GIT_CONFIG_KEY_{i}"), k)
                .env(format!("GIT_CONFIG_VALUE_{i}"), v);
        }
        cmd
    }

    /// Runs git; stdout on success. `token` only for commands that talk to the remote.
    pub async fn run(
        &self,
        cwd: &Path,
        args: &[&str],
        token: Option<&str>,
    ) -> Result<Vec<u8>, GitError> {
        self.run_env(cwd, args, token, &[]).await
    }

    /// [`Git::run`] with extra environment (e.g. `GIT_INDEX_FILE`).
    pub async fn run_env(
        &self,
        cwd: &Path,
        args: &[&str],
        token: Option<&str>,
        env: &[(&str, &str)],
    ) -> Result<Vec<u8>, GitError> {
        let action = args.first().copied().unwrap_or("").to_owned();
        let mut cmd = self.command(cwd, args, token);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = tokio::time::timeout(GIT_TIMEOUT, cmd.output())
            .await
            .map_err(|_| GitError {
                action: action.clone(),
                message: format!("it did not finish within {} s", GIT_TIMEOUT.as_secs()),
            })?
            .map_err(|e| GitError {
                action: action.clone(),
                message: format!("{} cannot be run: {e}", self.binary.display()),
            })?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        Err(GitError {
            action,
            message: scrub(&String::from_utf8_lossy(&out.stderr), token),
        })
    }

    pub async fn text(&self, cwd: &Path, args: &[&str]) -> Result<String, GitError> {
        Ok(String::from_utf8_lossy(&self.run(cwd, args, None).await?)
            .trim()
            .to_owned())
    }
}

/// git's error output made safe to show: the token (and any credentials in URLs) removed,
/// shortened to a few lines.
pub fn scrub(stderr: &str, token: Option<&str>) -> String {
    let mut text = stderr.to_owned();
    if let Some(t) = token.filter(|t| !t.is_empty()) {
        text = text.replace(t, "***");
    }
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(6)
        .map(strip_url_credentials)
        .collect();
    let joined = lines.join(" / ");
    if joined.is_empty() {
        "no error output".into()
    } else {
        joined.chars().take(600).collect()
    }
}

fn strip_url_credentials(line: &str) -> String {
    line.split_whitespace()
        .map(
            |word| match url::Url::parse(word.trim_matches(['\'', '"'])) {
                Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
                    let _ = u.set_username("");
                    let _ = u.set_password(None);
                    u.to_string()
                }
                _ => word.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_never_carry_the_token_or_url_credentials() {
        let err = "fatal: unable to access 'https://bob:ghp_secret@git.example/r.git/': 401\nremote: token ghp_secret refused\n";
        let s = scrub(err, Some("ghp_secret"));
        assert!(!s.contains("ghp_secret"), "{s}");
        assert!(!s.contains("bob"), "{s}");
        assert_eq!(scrub("", None), "no error output");
    }
}
