//! Packing and unpacking workspace state: `tar` for scratch workspaces, git bundles for
//! repository checkouts. Every read of a snapshot being made is bounded by the size cap.

use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::WorkspaceError;
use super::git::Git;
use crate::seal::RepoSpec;
use crate::tools::Sandbox;

const WIP_REF: &str = "refs/chatons/wip";
const SAVED_BRANCH_REF: &str = "refs/chatons/saved-branch";

fn tar() -> Command {
    let mut cmd = Command::new("tar");
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LANG", "C")
        .kill_on_drop(true);
    cmd
}

/// A gzip'ed tar of `dir`, or `None` when it would be larger than `cap` bytes.
pub async fn pack_dir(dir: &Path, cap: usize) -> Result<Option<Vec<u8>>, WorkspaceError> {
    let mut child = tar()
        .arg("-C")
        .arg(dir)
        .args(["-czf", "-", "."])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut out = child
        .stdout
        .take()
        .ok_or_else(|| WorkspaceError::Io("tar has no output".into()))?;
    let mut data = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = out.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        if data.len() + n > cap {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Ok(None);
        }
        data.extend_from_slice(&chunk[..n]);
    }
    let status = child.wait().await?;
    // 1: some file changed while it was read or could not be archived (sockets): still usable.
    if !matches!(status.code(), Some(0 | 1)) {
        return Err(WorkspaceError::Io(format!("tar failed ({status})")));
    }
    Ok(Some(data))
}

pub async fn unpack_dir(dir: &Path, data: &[u8]) -> Result<(), WorkspaceError> {
    let mut child = tar()
        .arg("-C")
        .arg(dir)
        .args(["-xzf", "-", "--no-same-owner", "--no-same-permissions"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(data).await?;
    }
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        return Err(WorkspaceError::Io(format!(
            "the snapshot cannot be unpacked: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("")
        )));
    }
    Ok(())
}

/// Bytes the workspace occupies (for the "too large" notice).
pub async fn measure(dir: &Path) -> usize {
    let out = Command::new("du")
        .args(["-sb"])
        .arg(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .await;
    out.ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// The conversation's checkout, cloned from the project's bare clone (objects hard-linked),
/// its `origin` pointing at the real remote (the URL carries no credentials).
pub async fn local_clone(
    git: &Git,
    source: &Path,
    dir: &Path,
    repo: &RepoSpec,
) -> Result<(), WorkspaceError> {
    let parent = dir
        .parent()
        .ok_or_else(|| WorkspaceError::Io("the workspace has no parent".into()))?;
    std::fs::create_dir_all(parent)?;
    let source = source.to_string_lossy().into_owned();
    let dest = dir.to_string_lossy().into_owned();
    let mut args = vec!["clone", "--quiet", "--local"];
    if let Some(b) = &repo.default_branch {
        args.extend(["--branch", b.as_str()]);
    }
    args.extend(["--", source.as_str(), dest.as_str()]);
    git.run(parent, &args, None).await?;
    git.run(dir, &["remote", "set-url", "origin", &repo.clone_url], None)
        .await?;
    Ok(())
}

/// A scratch file next to the workspace (never inside it).
fn temp_path(dir: &Path, suffix: &str) -> std::path::PathBuf {
    let parent = dir.parent().unwrap_or(dir);
    parent.join(format!(".tmp-{}{suffix}", uuid::Uuid::new_v4().simple()))
}

/// Made inside the sandbox: the checkout's `.git` is the agent's to change (its config could
/// name filters or an fsmonitor command), so no git command of a save runs in the worker.
const BUNDLE_SCRIPT: &str = r#"set -eu
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_TERMINAL_PROMPT=0
branch="$1"; out=.git/chatons-snapshot.bundle
rm -f "$out"
head=$(git rev-parse HEAD)
base=$(git merge-base HEAD refs/remotes/origin/HEAD 2>/dev/null || echo "$head")
idx=$(mktemp)
GIT_INDEX_FILE=$idx git read-tree HEAD
GIT_INDEX_FILE=$idx git add -A
tree=$(GIT_INDEX_FILE=$idx git write-tree)
rm -f "$idx"
wip=$(git -c user.name='Chatons Cloud' -c user.email=agent@cloud.chatons.ai commit-tree "$tree" -p "$head" -m 'Chatons workspace snapshot')
git update-ref refs/chatons/wip "$wip"
echo "base=$base"
tip=$(git rev-parse --verify -q "refs/heads/$branch" || true)
if [ "$tree" = "$(git rev-parse "$base^{tree}")" ] && [ "$head" = "$base" ] && { [ -z "$tip" ] || [ "$tip" = "$base" ]; }; then
  echo unchanged; exit 0
fi
refs="refs/chatons/wip"
if [ -n "$tip" ] && [ "$tip" != "$base" ]; then refs="$refs refs/heads/$branch"; fi
git bundle create --quiet "$out" $refs "^$base"
echo bundled
"#;

/// A bundle of the conversation branch and of a commit of every uncommitted change, relative
/// to the commit the conversation started from. `None` when over `cap`; empty when nothing
/// changed. Also returns that base commit.
pub async fn bundle(
    sandbox: &Sandbox,
    dir: &Path,
    branch: &str,
    cap: usize,
) -> Result<(Option<Vec<u8>>, String), WorkspaceError> {
    let script = format!("set -- {}\n{BUNDLE_SCRIPT}", shell_quote(branch));
    let marker = format!("chatons-snapshot-{}", uuid::Uuid::new_v4().simple());
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(300),
        sandbox.command(dir, &script, &marker, 300, None).output(),
    )
    .await
    .map_err(|_| WorkspaceError::Io("the snapshot did not finish in time".into()))?
    .map_err(|e| WorkspaceError::Io(format!("the sandbox cannot start: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !String::from_utf8_lossy(&out.stderr)
        .lines()
        .any(|l| l == marker)
    {
        return Err(WorkspaceError::Io(
            "the sandbox could not start to make the snapshot".into(),
        ));
    }
    if !out.status.success() {
        let why: String = stdout
            .lines()
            .last()
            .unwrap_or("")
            .chars()
            .take(300)
            .collect();
        return Err(WorkspaceError::Io(format!("the snapshot failed: {why}")));
    }
    let base = stdout
        .lines()
        .find_map(|l| l.strip_prefix("base="))
        .map(str::to_owned)
        .ok_or_else(|| WorkspaceError::Io("the snapshot named no base commit".into()))?;
    if stdout.lines().any(|l| l == "unchanged") {
        return Ok((Some(Vec::new()), base));
    }
    let file = dir.join(".git").join("chatons-snapshot.bundle");
    // Written by the sandbox: read only a regular file, never through a link.
    let meta = std::fs::symlink_metadata(&file)?;
    if !meta.file_type().is_file() {
        return Err(WorkspaceError::Io(
            "the snapshot file is not a regular file".into(),
        ));
    }
    if meta.len() as usize > cap {
        let _ = std::fs::remove_file(&file);
        return Ok((None, base));
    }
    let data = std::fs::read(&file)?;
    let _ = std::fs::remove_file(&file);
    Ok(((data.len() <= cap).then_some(data), base))
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Brings a fresh checkout (at `base`) to the saved state: the branch as it was, and the
/// working tree with its uncommitted changes (the index is the branch's, as after a save).
pub async fn unbundle(
    git: &Git,
    dir: &Path,
    branch: &str,
    base: &str,
    data: &[u8],
) -> Result<(), WorkspaceError> {
    if data.is_empty() {
        git.run(dir, &["checkout", "-q", "-f", "-B", branch, base], None)
            .await?;
        return Ok(());
    }
    let file = temp_path(dir, ".bundle");
    std::fs::write(&file, data)?;
    let file_str = file.to_string_lossy().into_owned();
    let result = async {
        let heads = git.text(dir, &["bundle", "list-heads", &file_str]).await?;
        let branch_ref = format!("refs/heads/{branch}");
        let mut specs = vec![format!("+{WIP_REF}:{WIP_REF}")];
        let has_branch = heads.lines().any(|l| l.ends_with(&branch_ref));
        if has_branch {
            specs.push(format!("+{branch_ref}:{SAVED_BRANCH_REF}"));
        }
        let mut args = vec!["fetch", "--quiet", "--no-tags", file_str.as_str()];
        args.extend(specs.iter().map(String::as_str));
        git.run(dir, &args, None).await?;
        let start = if has_branch { SAVED_BRANCH_REF } else { base };
        git.run(dir, &["checkout", "-q", "-f", "-B", branch, start], None)
            .await?;
        git.run(dir, &["read-tree", "-u", "--reset", WIP_REF], None)
            .await?;
        git.run(dir, &["reset", "-q"], None).await?;
        Ok::<(), WorkspaceError>(())
    }
    .await;
    let _ = std::fs::remove_file(&file);
    result
}
