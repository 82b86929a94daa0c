//! Confinement of tool paths to the session's workspace.
//!
//! The model names paths relative to its working directory, which it knows as `/workspace`
//! (that is where `bash` sees it). A path is resolved lexically first (`..` may not climb above
//! the root; other absolute paths are refused), then every existing component is checked: a
//! symlink is followed only when its target is still inside the workspace. File tools run one
//! at a time and `bash` cannot outlive its call, so nothing changes the tree between the check
//! and the use.

use std::io;
use std::path::{Component, Path, PathBuf};

/// The name the model and `bash` use for the workspace root.
pub const VIRTUAL_ROOT: &str = "/workspace";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("{0}: the path leads outside the workspace")]
    Outside(String),
    #[error("{0}: a symbolic link in the path leads outside the workspace")]
    SymlinkOutside(String),
    #[error("{0}: {1}")]
    Io(String, String),
}

#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
}

impl Workspace {
    /// Creates the directory if needed; `root` is canonicalised so prefix checks are exact.
    pub fn open(root: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(root)?;
        Ok(Self {
            root: root.canonicalize()?,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The real path for `input`, which may not exist yet (for `write`).
    pub fn resolve(&self, input: &str) -> Result<PathBuf, PathError> {
        let shown = input.to_owned();
        let input = input.trim();
        let relative: &Path = if input.is_empty() {
            Path::new(".")
        } else if let Some(rest) = input.strip_prefix(VIRTUAL_ROOT)
            && (rest.is_empty() || rest.starts_with('/'))
        {
            Path::new(rest.trim_start_matches('/'))
        } else if Path::new(input).is_absolute() {
            match Path::new(input).strip_prefix(&self.root) {
                Ok(rest) => rest,
                Err(_) => return Err(PathError::Outside(shown)),
            }
        } else {
            Path::new(input)
        };
        let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
        for c in relative.components() {
            match c {
                Component::Normal(p) => parts.push(p),
                Component::CurDir => {}
                Component::ParentDir => {
                    if parts.pop().is_none() {
                        return Err(PathError::Outside(shown));
                    }
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(PathError::Outside(shown));
                }
            }
        }
        let mut path = self.root.clone();
        for part in parts {
            path.push(part);
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.file_type().is_symlink() => match path.canonicalize() {
                    Ok(target) if target.starts_with(&self.root) => {}
                    // A dangling link, or one that leaves: either way not followed.
                    _ => return Err(PathError::SymlinkOutside(shown)),
                },
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(PathError::Io(shown, e.to_string())),
            }
        }
        Ok(path)
    }

    /// How a real path inside the workspace is shown to the model (relative, `.` for the root).
    pub fn display(&self, path: &Path) -> String {
        match path.strip_prefix(&self.root) {
            Ok(rel) if rel.as_os_str().is_empty() => ".".into(),
            Ok(rel) => rel.to_string_lossy().into_owned(),
            Err(_) => path.to_string_lossy().into_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> (Workspace, PathBuf) {
        let dir = std::env::temp_dir().join(format!("ws-test-{}", uuid::Uuid::new_v4().simple()));
        let outside = dir.join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        let ws = Workspace::open(&dir.join("root")).unwrap();
        (ws, outside)
    }

    #[test]
    fn relative_virtual_and_inside_absolute_paths_resolve() {
        let (ws, _) = ws();
        let root = ws.root().to_path_buf();
        assert_eq!(ws.resolve("a/b.txt").unwrap(), root.join("a/b.txt"));
        assert_eq!(ws.resolve("./a/../c").unwrap(), root.join("c"));
        assert_eq!(ws.resolve("/workspace/x").unwrap(), root.join("x"));
        assert_eq!(ws.resolve("/workspace").unwrap(), root);
        assert_eq!(ws.resolve("").unwrap(), root);
        let abs = root.join("y").to_string_lossy().into_owned();
        assert_eq!(ws.resolve(&abs).unwrap(), root.join("y"));
        assert_eq!(ws.display(&root.join("a/b")), "a/b");
        assert_eq!(ws.display(&root), ".");
    }

    #[test]
    fn escapes_are_refused() {
        let (ws, outside) = ws();
        for bad in ["../x", "a/../../x", "/etc/passwd", "/workspacefoo", "/"] {
            assert!(
                matches!(ws.resolve(bad), Err(PathError::Outside(_))),
                "{bad}"
            );
        }
        std::os::unix::fs::symlink(&outside, ws.root().join("out")).unwrap();
        assert!(matches!(
            ws.resolve("out/secret"),
            Err(PathError::SymlinkOutside(_))
        ));
        std::fs::create_dir(ws.root().join("real")).unwrap();
        std::os::unix::fs::symlink(ws.root().join("real"), ws.root().join("alias")).unwrap();
        assert!(ws.resolve("alias/f").is_ok());
        std::os::unix::fs::symlink("/nonexistent/zz", ws.root().join("dangling")).unwrap();
        assert!(ws.resolve("dangling").is_err());
    }
}
