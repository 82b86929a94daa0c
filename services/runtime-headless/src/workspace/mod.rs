//! Conversation workspaces on a worker, and their durable state.
//!
//! Layout under the runtime root:
//! - `conversations/<conversation>/` — the workspace the agent's tools see as `/workspace`;
//!   for a repository project, a clone on the branch `chatons/cloud-<conversation>`.
//! - `conversations/<conversation>.generation` — which stored snapshot the local copy is.
//! - `projects/<organization>/<project>/source.git` — one bare clone per project, fetched
//!   before a conversation's checkout is made; checkouts hard-link its objects.
//!
//! A conversation's checkout is a clone of the project's bare clone rather than a linked
//! `git worktree`: a linked worktree keeps its metadata in the shared repository, which the
//! sandboxed `bash` would then need write access to (and so to every other conversation's
//! branches); a local clone keeps everything inside `/workspace`, so git works in the sandbox
//! and one conversation cannot touch another's branch.
//!
//! git runs in the worker only on checkouts it made itself (the project's bare clone, a fresh
//! clone, a restore into one); anything that reads a checkout the agent has used runs in the
//! sandbox, since the agent controls that checkout's `.git` (its config could name filters).
//!
//! After every turn the workspace is saved outside the pod ([`WorkspaceStore`]): a gzip'ed tar
//! of a scratch workspace, or a git bundle of the conversation branch plus a commit of the
//! uncommitted changes for a repository. A worker whose local copy is missing or older
//! restores it before the next turn. A snapshot over the size cap is not stored: the caller
//! says so to the user, and the previous snapshot stays.

pub mod git;
mod snapshot;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::OwnedMutexGuard;

use crate::agent::path_segment;
use crate::seal::RepoSpec;
use crate::store::{StoreError, WorkspaceKind, WorkspaceSnapshot, WorkspaceStore};
use crate::tools::Sandbox;
use git::{Git, GitError};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum WorkspaceError {
    #[error("{0}")]
    Git(#[from] GitError),
    #[error("the repository address is not allowed: {0}")]
    Forbidden(String),
    #[error("the workspace cannot be prepared: {0}")]
    Io(String),
    #[error("the workspace's saved state is unavailable: {0}")]
    Store(String),
}

impl From<std::io::Error> for WorkspaceError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e.to_string())
    }
}

impl From<StoreError> for WorkspaceError {
    fn from(e: StoreError) -> Self {
        Self::Store(e.to_string())
    }
}

#[derive(Debug, Clone)]
pub struct WorkspaceConfig {
    pub root: PathBuf,
    pub git_binary: PathBuf,
    pub max_snapshot_bytes: usize,
    /// Loopback, private and `file://` clone URLs (development, tests).
    pub allow_private_networks: bool,
    /// Local copies unused for this long are removed (their state is kept in the store).
    pub idle: Duration,
}

/// Which conversation a run works in, and what is checked out there.
#[derive(Debug, Clone)]
pub struct Target {
    pub organization_id: String,
    pub project_id: String,
    pub conversation_id: String,
    pub repository: Option<RepoSpec>,
}

/// What [`WorkspaceManager::prepare`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// The local copy was current (or new and empty).
    Ready,
    /// A fresh checkout of the repository's default branch.
    Cloned { branch: String },
    /// Restored from the stored snapshot of that generation.
    Restored { generation: i64 },
}

/// What [`WorkspaceManager::save`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    Stored { generation: i64, bytes: usize },
    TooLarge { bytes: usize, limit: usize },
}

pub struct WorkspaceManager {
    config: WorkspaceConfig,
    store: Arc<dyn WorkspaceStore>,
    git: Git,
    sandbox: Arc<Sandbox>,
    owner: String,
    /// One run at a time per conversation on this worker; clones one at a time per project.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Held for the duration of one run in a conversation's workspace.
pub struct InUse {
    pub dir: PathBuf,
    _guard: OwnedMutexGuard<()>,
}

impl WorkspaceManager {
    pub fn new(
        config: WorkspaceConfig,
        store: Arc<dyn WorkspaceStore>,
        sandbox: Arc<Sandbox>,
        owner: String,
    ) -> Self {
        let git = Git::new(config.git_binary.clone(), config.root.join("git-home"));
        Self {
            config,
            store,
            git,
            sandbox,
            owner,
            locks: Mutex::new(HashMap::new()),
        }
    }

    pub fn dir(&self, conversation_id: &str) -> PathBuf {
        self.config
            .root
            .join("conversations")
            .join(path_segment(conversation_id))
    }

    fn marker(&self, conversation_id: &str) -> PathBuf {
        self.config
            .root
            .join("conversations")
            .join(format!("{}.generation", path_segment(conversation_id)))
    }

    fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(key.to_owned()).or_default().clone()
    }

    fn branch(conversation_id: &str) -> String {
        format!("chatons/cloud-{}", path_segment(conversation_id))
    }

    /// Makes the conversation's workspace current on this worker: restores the stored state
    /// when the local copy is missing or older, clones the repository for a new repository
    /// conversation. The returned guard keeps other runs of the conversation out.
    pub async fn prepare(&self, target: &Target) -> Result<(InUse, Prepared), WorkspaceError> {
        let guard = self
            .lock_for(&format!("conversation:{}", target.conversation_id))
            .lock_owned()
            .await;
        let dir = self.dir(&target.conversation_id);
        let marker = self.marker(&target.conversation_id);
        let local: Option<i64> = std::fs::read_to_string(&marker)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .filter(|_| dir.is_dir());
        let stored = self
            .store
            .snapshot_generation(&target.conversation_id)
            .await?;
        let prepared = match stored {
            Some(g) if local != Some(g) => {
                let snapshot = self
                    .store
                    .load_snapshot(&target.conversation_id)
                    .await?
                    .ok_or_else(|| WorkspaceError::Store("the snapshot disappeared".into()))?;
                self.restore(target, &dir, &snapshot).await?;
                std::fs::write(&marker, snapshot.generation.to_string())?;
                Prepared::Restored {
                    generation: snapshot.generation,
                }
            }
            _ if dir.is_dir() => Prepared::Ready,
            _ => match &target.repository {
                Some(repo) => {
                    self.checkout(target, repo, &dir).await?;
                    std::fs::write(&marker, "0")?;
                    Prepared::Cloned {
                        branch: Self::branch(&target.conversation_id),
                    }
                }
                None => {
                    std::fs::create_dir_all(&dir)?;
                    std::fs::write(&marker, "0")?;
                    Prepared::Ready
                }
            },
        };
        // Touch the marker: the janitor measures idleness from it.
        let _ = filetime_now(&marker);
        Ok((InUse { dir, _guard: guard }, prepared))
    }

    /// Stores the workspace's state after a turn (a no-op result is still a new generation).
    pub async fn save(
        &self,
        target: &Target,
        work: &InUse,
        turn_id: i64,
    ) -> Result<Saved, WorkspaceError> {
        let (kind, data, base, branch) = match &target.repository {
            None => (
                WorkspaceKind::Scratch,
                snapshot::pack_dir(&work.dir, self.config.max_snapshot_bytes).await?,
                None,
                None,
            ),
            Some(_) => {
                let branch = Self::branch(&target.conversation_id);
                let (data, base) = snapshot::bundle(
                    &self.sandbox,
                    &work.dir,
                    &branch,
                    self.config.max_snapshot_bytes,
                )
                .await?;
                (WorkspaceKind::Repository, data, Some(base), Some(branch))
            }
        };
        let Some(data) = data else {
            return Ok(Saved::TooLarge {
                bytes: snapshot::measure(&work.dir).await,
                limit: self.config.max_snapshot_bytes,
            });
        };
        let bytes = data.len();
        let generation = self
            .store
            .save_snapshot(&WorkspaceSnapshot {
                conversation_id: target.conversation_id.clone(),
                kind,
                generation: 0,
                data,
                base_commit: base,
                branch,
                saved_by: self.owner.clone(),
                turn_id: Some(turn_id),
            })
            .await?;
        std::fs::write(self.marker(&target.conversation_id), generation.to_string())?;
        Ok(Saved::Stored { generation, bytes })
    }

    /// Removes this worker's copy (its stored state is kept).
    pub async fn evict(&self, conversation_id: &str) {
        let _guard = self
            .lock_for(&format!("conversation:{conversation_id}"))
            .lock_owned()
            .await;
        let _ = tokio::fs::remove_dir_all(self.dir(conversation_id)).await;
        let _ = tokio::fs::remove_file(self.marker(conversation_id)).await;
    }

    /// Forgets a conversation entirely (it was deleted): local copy and stored state.
    pub async fn forget(&self, conversation_id: &str) -> Result<(), WorkspaceError> {
        self.evict(conversation_id).await;
        self.store.delete_snapshot(conversation_id).await?;
        Ok(())
    }

    /// Removes local copies nobody used for the idle time (skipping those in use).
    pub async fn sweep_idle(&self) -> usize {
        let dir = self.config.root.join("conversations");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return 0;
        };
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(conv) = name.strip_suffix(".generation") else {
                continue;
            };
            let idle = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|d| d > self.config.idle);
            if !idle {
                continue;
            }
            let lock = self.lock_for(&format!("conversation:{conv}"));
            let Ok(_guard) = lock.try_lock_owned() else {
                continue;
            };
            let _ = tokio::fs::remove_dir_all(dir.join(conv)).await;
            let _ = tokio::fs::remove_file(&path).await;
            removed += 1;
        }
        removed
    }

    /// The project's bare clone, fetched, then the conversation's checkout on its branch.
    async fn checkout(
        &self,
        target: &Target,
        repo: &RepoSpec,
        dir: &Path,
    ) -> Result<String, WorkspaceError> {
        let source = self.source(target, repo).await?;
        let branch = Self::branch(&target.conversation_id);
        snapshot::local_clone(&self.git, &source, dir, repo).await?;
        let base = self.git.text(dir, &["rev-parse", "HEAD"]).await?;
        self.git
            .run(dir, &["checkout", "-q", "-B", &branch, &base], None)
            .await?;
        Ok(base)
    }

    /// `projects/<org>/<project>/source.git`, cloned or fetched from the remote.
    async fn source(&self, target: &Target, repo: &RepoSpec) -> Result<PathBuf, WorkspaceError> {
        self.check_remote(&repo.clone_url).await?;
        let _guard = self
            .lock_for(&format!("project:{}", target.project_id))
            .lock_owned()
            .await;
        let parent = self
            .config
            .root
            .join("projects")
            .join(path_segment(&target.organization_id))
            .join(path_segment(&target.project_id));
        std::fs::create_dir_all(&parent)?;
        let source = parent.join("source.git");
        let token = repo.token.as_deref();
        if source.join("HEAD").is_file() {
            self.git
                .run(
                    &source,
                    &[
                        "fetch",
                        "--quiet",
                        "--prune",
                        &repo.clone_url,
                        "+refs/heads/*:refs/heads/*",
                    ],
                    token,
                )
                .await?;
        } else {
            let _ = std::fs::remove_dir_all(&source);
            let dest = source.to_string_lossy().into_owned();
            let result = self
                .git
                .run(
                    &parent,
                    &["clone", "--quiet", "--bare", "--", &repo.clone_url, &dest],
                    token,
                )
                .await;
            if let Err(e) = result {
                let _ = std::fs::remove_dir_all(&source);
                return Err(e.into());
            }
        }
        Ok(source)
    }

    /// The same guard provider URLs get: public addresses only, unless private networks are
    /// allowed (which also allows `file://`).
    async fn check_remote(&self, clone_url: &str) -> Result<(), WorkspaceError> {
        let url = url::Url::parse(clone_url)
            .map_err(|_| WorkspaceError::Forbidden("the clone URL is not a URL".into()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(WorkspaceError::Forbidden(
                "the clone URL carries credentials (give the token separately)".into(),
            ));
        }
        match url.scheme() {
            "file" if self.config.allow_private_networks => Ok(()),
            "http" | "https" if self.config.allow_private_networks => Ok(()),
            "http" | "https" => crate::provider::egress::check_url(&url)
                .await
                .map_err(|r| WorkspaceError::Forbidden(r.0)),
            other => Err(WorkspaceError::Forbidden(format!(
                "the {other:?} scheme is not allowed"
            ))),
        }
    }

    async fn restore(
        &self,
        target: &Target,
        dir: &Path,
        snapshot: &WorkspaceSnapshot,
    ) -> Result<(), WorkspaceError> {
        let _ = tokio::fs::remove_dir_all(dir).await;
        match (snapshot.kind, &target.repository) {
            (WorkspaceKind::Repository, Some(repo)) => {
                let base = self.checkout(target, repo, dir).await?;
                let base = snapshot.base_commit.clone().unwrap_or(base);
                let branch = snapshot
                    .branch
                    .clone()
                    .unwrap_or_else(|| Self::branch(&target.conversation_id));
                snapshot::unbundle(&self.git, dir, &branch, &base, &snapshot.data).await
            }
            _ => {
                std::fs::create_dir_all(dir)?;
                snapshot::unpack_dir(dir, &snapshot.data).await
            }
        }
    }
}

/// Sets a file's modification time to now (by rewriting it), for the idle janitor.
fn filetime_now(path: &Path) -> std::io::Result<()> {
    let text = std::fs::read(path)?;
    std::fs::write(path, text)
}
