//! Packing and unpacking workspace state: `tar` for scratch workspaces, git bundles for
//! repository checkouts. Every read of a snapshot being made is bounded by the size cap.

use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::WorkspaceError;
use super::git::Git;
use crate::seal::RepoSpec;

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

fn temp_path(dir: &Path, suffix: &str) -> std::path::PathBuf {
    let parent = dir.parent().unwrap_or(dir);
    parent.join(format!(".tmp-{}{suffix}", uuid::Uuid::new_v4().simple()))
}

/// A bundle of the conversation branch and of a commit of every uncommitted change, relative
/// to the commit the conversation started from. `None` when over `cap`; empty when nothing
/// changed. Also returns that base commit.
pub async fn bundle(
    git: &Git,
    dir: &Path,
    branch: &str,
    cap: usize,
) -> Result<(Option<Vec<u8>>, String), WorkspaceError> {
    let head = git.text(dir, &["rev-parse", "HEAD"]).await?;
    let base = match git
        .text(dir, &["merge-base", "HEAD", "refs/remotes/origin/HEAD"])
        .await
    {
        Ok(b) if !b.is_empty() => b,
        _ => head.clone(),
    };
    // The working tree as a commit on top of HEAD, through a private index (the user's index
    // and branch are untouched). Ignored files (build output) are left out.
    let index = temp_path(dir, ".index");
    let index_str = index.to_string_lossy().into_owned();
    let env = [("GIT_INDEX_FILE", index_str.as_str())];
    let tree = async {
        git.run_env(dir, &["read-tree", "HEAD"], None, &env).await?;
        git.run_env(dir, &["add", "-A"], None, &env).await?;
        git.run_env(dir, &["write-tree"], None, &env).await
    }
    .await;
    let _ = std::fs::remove_file(&index);
    let tree = String::from_utf8_lossy(&tree?).trim().to_owned();
    let wip = git
        .text(
            dir,
            &[
                "commit-tree",
                &tree,
                "-p",
                &head,
                "-m",
                "Chatons workspace snapshot",
            ],
        )
        .await?;
    git.run(dir, &["update-ref", WIP_REF, &wip], None).await?;
    let base_tree = git
        .text(dir, &["rev-parse", &format!("{base}^{{tree}}")])
        .await?;
    let branch_ref = format!("refs/heads/{branch}");
    let branch_head = git
        .text(dir, &["rev-parse", "--verify", "-q", &branch_ref])
        .await
        .ok();
    if tree == base_tree && branch_head.as_deref().is_none_or(|h| h == base) && head == base {
        return Ok((Some(Vec::new()), base));
    }
    let file = temp_path(dir, ".bundle");
    let file_str = file.to_string_lossy().into_owned();
    let mut args = vec!["bundle", "create", "--quiet", file_str.as_str(), WIP_REF];
    let not_base = format!("^{base}");
    if branch_head.as_deref().is_some_and(|h| h != base) {
        args.push(branch_ref.as_str());
    }
    args.push(not_base.as_str());
    let made = git.run(dir, &args, None).await;
    let data = match made {
        Ok(_) => std::fs::read(&file),
        Err(e) => {
            let _ = std::fs::remove_file(&file);
            return Err(e.into());
        }
    };
    let _ = std::fs::remove_file(&file);
    let data = data?;
    Ok(((data.len() <= cap).then_some(data), base))
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
