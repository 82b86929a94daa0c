//! The sandbox `bash` runs in: bubblewrap with every namespace unshared, an empty environment,
//! the system read-only, the session's workspace read-write at `/workspace`, a private `/tmp`,
//! `/proc` and `/dev`, no capabilities, and resource limits (address space, processes, file
//! size, CPU time) set by `prlimit` before the shell starts. Nothing of the worker is visible:
//! not its environment (service token, database URL, keys), not its files, not other
//! sessions' workspaces, not its processes.
//!
//! Network: `none` gives the sandbox a network namespace with only its own loopback; `public`
//! additionally gives it an HTTP(S) proxy (see [`super::proxy`]) that dials only
//! public addresses, so the cluster, the node and the worker's loopback stay out of reach.
//!
//! There is no fallback: if bubblewrap is missing or cannot create the namespaces, `bash` fails
//! with a tool error and nothing runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

/// Mount points bound read-only when they exist (what programs commonly need from `/etc`).
const ETC_FILES: &[&str] = &[
    "/etc/alternatives",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/ca-certificates.conf",
    "/etc/pki",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/mime.types",
    "/etc/nsswitch.conf",
    "/etc/protocols",
    "/etc/services",
    "/etc/gitconfig",
    "/etc/bash.bashrc",
    "/etc/profile",
    "/etc/inputrc",
];

/// Top-level system directories: bound read-only, or recreated as the symlinks they are on
/// merged-/usr systems.
const SYSTEM_DIRS: &[&str] = &[
    "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Loopback of its own only.
    None,
    /// Public internet through the worker's filtering proxy.
    Public,
}

impl Network {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "public" => Some(Self::Public),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The bubblewrap binary (a name is looked up on `PATH`).
    pub bwrap: PathBuf,
    pub network: Network,
    pub memory_bytes: u64,
    pub max_processes: u64,
    pub max_file_bytes: u64,
    /// The runtime-headless binary run inside `public` sandboxes as the proxy forwarder
    /// (`None`: this process's own executable).
    pub helper: Option<PathBuf>,
    /// A fresh `/proc` of the sandbox's own PID namespace. Off where the container runtime
    /// forbids mounting one (masked `/proc`): the sandbox then has no `/proc` at all, never
    /// the worker's.
    pub proc: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            bwrap: PathBuf::from("bwrap"),
            network: Network::None,
            memory_bytes: 4 << 30,
            max_processes: 512,
            max_file_bytes: 2 << 30,
            helper: None,
            proc: true,
        }
    }
}

/// Builds the command line of sandboxed scripts and starts their proxies.
#[derive(Debug)]
pub struct Sandbox {
    config: SandboxConfig,
    /// Worker-private files the sandbox borrows: `etc/passwd`, `etc/group`, proxy sockets.
    runtime_dir: PathBuf,
    /// This binary, bound into `public` sandboxes as the proxy forwarder.
    helper: PathBuf,
}

/// Where the proxy of a `public` sandbox listens, inside and outside.
pub struct ProxyMount<'a> {
    pub host_socket: &'a Path,
    pub helper: &'a Path,
}

pub const INNER_PROXY_SOCKET: &str = "/run/chatons/proxy.sock";
pub const INNER_HELPER: &str = "/run/chatons/sandbox-helper";
pub const INNER_PROXY_PORT: u16 = 3128;

impl Sandbox {
    /// `runtime_dir` must not be inside any workspace.
    pub fn new(config: SandboxConfig, runtime_dir: &Path) -> Self {
        let etc = runtime_dir.join("etc");
        // A user entry for uid 1000 so `whoami`, ssh and friends do not fail.
        let _ = std::fs::create_dir_all(&etc).and_then(|()| {
            std::fs::write(etc.join("passwd"), "root:x:0:0::/root:/bin/false\nagent:x:1000:1000:agent:/tmp:/bin/bash\nnobody:x:65534:65534::/nonexistent:/bin/false\n")?;
            std::fs::write(etc.join("group"), "root:x:0:\nagent:x:1000:\nnogroup:x:65534:\n")
        });
        Self {
            runtime_dir: runtime_dir.to_path_buf(),
            helper: config
                .helper
                .clone()
                .or_else(|| std::env::current_exe().ok())
                .unwrap_or_default(),
            config,
        }
    }

    /// The proxy of one call (`None` when the sandbox has no network).
    pub async fn proxy_for_call(&self) -> Result<Option<super::proxy::ProxyHandle>, String> {
        match self.config.network {
            Network::None => Ok(None),
            Network::Public => {
                super::proxy::ProxyHandle::start(&self.runtime_dir.join("proxy"), &self.helper)
                    .map(Some)
                    .map_err(|e| format!("the network proxy cannot start: {e}"))
            }
        }
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// `bwrap … -- sh -c '<marker>; exec 2>&1; exec "$@"' marker prlimit … -- bash -c script`.
    /// The marker, printed to stderr once the sandbox is set up, tells a command that failed
    /// from a sandbox that never started. The script's stderr is merged into stdout.
    pub fn command(
        &self,
        workspace: &Path,
        script: &str,
        marker: &str,
        cpu_seconds: u64,
        proxy: Option<ProxyMount<'_>>,
    ) -> Command {
        let mut cmd = Command::new(&self.config.bwrap);
        cmd.arg("--unshare-all")
            .arg("--die-with-parent")
            .arg("--new-session")
            .arg("--clearenv")
            .args(["--uid", "1000", "--gid", "1000"])
            .args(["--hostname", "sandbox"])
            .args(["--ro-bind", "/usr", "/usr"]);
        for dir in SYSTEM_DIRS {
            let path = Path::new(dir);
            match std::fs::read_link(path) {
                Ok(target) => {
                    cmd.arg("--symlink").arg(target).arg(dir);
                }
                Err(_) if path.is_dir() => {
                    cmd.args(["--ro-bind", dir, dir]);
                }
                Err(_) => {}
            }
        }
        for file in ETC_FILES {
            cmd.args(["--ro-bind-try", file, file]);
        }
        for name in ["passwd", "group"] {
            cmd.arg("--ro-bind-try")
                .arg(self.runtime_dir.join("etc").join(name))
                .arg(format!("/etc/{name}"));
        }
        if self.config.proc {
            cmd.args(["--proc", "/proc"]);
        }
        cmd.args(["--dev", "/dev", "--tmpfs", "/tmp"])
            .arg("--bind")
            .arg(workspace)
            .arg("/workspace")
            .args(["--chdir", "/workspace"])
            .args([
                "--setenv",
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            ])
            .args(["--setenv", "HOME", "/tmp"])
            .args(["--setenv", "USER", "agent"])
            .args(["--setenv", "TERM", "dumb"])
            .args(["--setenv", "LANG", "C.UTF-8"])
            .args(["--setenv", "GIT_TERMINAL_PROMPT", "0"])
            .args(["--cap-drop", "ALL"]);
        let mut inner: Vec<String> = Vec::new();
        if let Some(p) = proxy {
            cmd.arg("--dir").arg("/run/chatons");
            cmd.arg("--bind").arg(p.host_socket).arg(INNER_PROXY_SOCKET);
            cmd.arg("--ro-bind").arg(p.helper).arg(INNER_HELPER);
            let url = format!("http://127.0.0.1:{INNER_PROXY_PORT}");
            for var in [
                "HTTP_PROXY",
                "HTTPS_PROXY",
                "http_proxy",
                "https_proxy",
                "ALL_PROXY",
            ] {
                cmd.args(["--setenv", var, &url]);
            }
            cmd.args(["--setenv", "NO_PROXY", "localhost,127.0.0.1"]);
            inner.extend([
                INNER_HELPER.to_owned(),
                "sandbox-forward".to_owned(),
                format!("127.0.0.1:{INNER_PROXY_PORT}"),
                INNER_PROXY_SOCKET.to_owned(),
            ]);
        }
        cmd.arg("--")
            .args([
                "/bin/sh",
                "-c",
                "printf '%s\\n' \"$0\" >&2; exec 2>&1; exec \"$@\"",
            ])
            .arg(marker);
        cmd.args(inner);
        cmd.arg("/usr/bin/prlimit")
            .arg(format!("--as={}", self.config.memory_bytes))
            .arg(format!("--nproc={}", self.config.max_processes))
            .arg(format!("--fsize={}", self.config.max_file_bytes))
            .arg(format!("--cpu={cpu_seconds}"))
            .arg("--nofile=4096")
            .arg("--")
            .args(["/bin/bash", "-c", script]);
        cmd.env_clear()
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `true` in the sandbox: `Err` with bubblewrap's reason when it cannot start.
    pub async fn probe(&self, scratch: &Path) -> Result<(), String> {
        std::fs::create_dir_all(scratch).map_err(|e| e.to_string())?;
        let marker = "sandbox-probe";
        let child = self
            .command(scratch, "true", marker, 5, None)
            .spawn()
            .map_err(|e| format!("{}: {e}", self.config.bwrap.display()))?;
        let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
            .await
            .map_err(|_| "the sandbox probe did not finish within 10 s".to_owned())?
            .map_err(|e| e.to_string())?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.lines().next() == Some(marker) && out.status.success() {
            Ok(())
        } else {
            Err(first_line(&stderr))
        }
    }
}

/// bubblewrap's own complaint, for an error message.
pub fn first_line(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no error output")
        .chars()
        .take(300)
        .collect()
}
