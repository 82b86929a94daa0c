//! The agent's tools against a real workspace and the real bubblewrap sandbox: confinement,
//! exact edits, output caps, the time limit, the environment, and failing closed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use runtime_headless::metrics::RuntimeMetrics;
use runtime_headless::tools::sandbox::{Network, Sandbox, SandboxConfig};
use runtime_headless::tools::{self, ToolContext, ToolLimits, ToolOutput, Workspace};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct Env {
    dir: PathBuf,
    ctx: ToolContext,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn env_with(config: SandboxConfig, limits: ToolLimits) -> Env {
    let dir = std::env::temp_dir().join(format!("rh-tools-{}", uuid::Uuid::new_v4().simple()));
    let workspace = Workspace::open(&dir.join("ws")).unwrap();
    let metrics = RuntimeMetrics::register(&cloud_common::metrics::Metrics::new("test"));
    Env {
        ctx: ToolContext {
            workspace,
            sandbox: Arc::new(Sandbox::new(config, &dir.join("sandbox"))),
            limits,
            metrics,
        },
        dir,
    }
}

fn env() -> Env {
    env_with(SandboxConfig::default(), ToolLimits::default())
}

async fn call(env: &Env, name: &str, args: Value) -> ToolOutput {
    tools::execute(
        name,
        &args,
        Some(&env.ctx),
        None,
        &CancellationToken::new(),
        None,
    )
    .await
}

fn ws(env: &Env) -> PathBuf {
    env.ctx.workspace.root().to_path_buf()
}

#[tokio::test]
async fn file_tools_read_write_edit_list_and_search() {
    let e = env();
    let out = call(
        &e,
        "write",
        json!({"path": "src/lib.rs", "content": "fn a() {}\nfn b() {}\n"}),
    )
    .await;
    assert!(!out.is_error, "{out:?}");
    assert_eq!(
        std::fs::read_to_string(ws(&e).join("src/lib.rs")).unwrap(),
        "fn a() {}\nfn b() {}\n"
    );
    let out = call(&e, "read", json!({"path": "/workspace/src/lib.rs"})).await;
    assert_eq!(out.text, "fn a() {}\nfn b() {}\n");
    let out = call(
        &e,
        "read",
        json!({"path": "src/lib.rs", "offset": 2, "limit": 1}),
    )
    .await;
    assert_eq!(out.text, "fn b() {}\n");
    let out = call(&e, "ls", json!({})).await;
    assert_eq!(out.text, "src/");
    let out = call(&e, "find", json!({"pattern": "*.rs"})).await;
    assert_eq!(out.text, "src/lib.rs");
    let out = call(&e, "grep", json!({"pattern": "fn b"})).await;
    assert_eq!(out.text, "src/lib.rs:2: fn b() {}");

    // Exact replacement; ambiguous and missing matches change nothing.
    let out = call(
        &e,
        "edit",
        json!({"path": "src/lib.rs", "oldText": "fn", "newText": "pub fn"}),
    )
    .await;
    assert!(
        out.is_error && out.text.contains("occurs 2 times"),
        "{out:?}"
    );
    let out = call(
        &e,
        "edit",
        json!({"path": "src/lib.rs", "oldText": "nope", "newText": "x"}),
    )
    .await;
    assert!(out.is_error && out.text.contains("not found"), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(ws(&e).join("src/lib.rs")).unwrap(),
        "fn a() {}\nfn b() {}\n"
    );
    let out = call(
        &e,
        "edit",
        json!({"path": "src/lib.rs", "oldText": "fn b", "newText": "pub fn b"}),
    )
    .await;
    assert!(!out.is_error, "{out:?}");
    assert_eq!(
        std::fs::read_to_string(ws(&e).join("src/lib.rs")).unwrap(),
        "fn a() {}\npub fn b() {}\n"
    );

    // Bad arguments are tool errors, never panics.
    assert!(call(&e, "read", json!({})).await.is_error);
    assert!(call(&e, "read", json!("not an object")).await.is_error);
    assert!(call(&e, "grep", json!({"pattern": "("})).await.is_error);
    assert!(call(&e, "teleport", json!({})).await.is_error);
}

#[tokio::test]
async fn output_is_capped_and_marked_truncated() {
    let e = env_with(
        SandboxConfig::default(),
        ToolLimits {
            max_output_bytes: 1000,
            max_output_lines: 50,
            ..ToolLimits::default()
        },
    );
    let big: String = (0..500).map(|i| format!("line {i}\n")).collect();
    std::fs::write(ws(&e).join("big.txt"), &big).unwrap();
    let out = call(&e, "read", json!({"path": "big.txt"})).await;
    let t = out.details.unwrap().truncation.unwrap();
    assert!(t.truncated);
    assert_eq!(t.total_lines, 500);
    assert!(out.text.starts_with("line 0\n"));
    assert!(
        out.text.contains("Use offset=51 to continue"),
        "{}",
        out.text
    );
    let out = call(&e, "bash", json!({"command": "seq 1 100000"})).await;
    assert!(!out.is_error, "{out:?}");
    let d = out.details.unwrap();
    assert!(d.truncation.unwrap().truncated);
    assert!(out.text.contains("100000"), "the tail is kept");
    assert!(out.text.len() < 1200);
}

#[tokio::test]
async fn paths_outside_the_workspace_are_refused_and_untouched() {
    let e = env();
    let outside = e.dir.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "keep me").unwrap();
    std::os::unix::fs::symlink(&outside, ws(&e).join("escape")).unwrap();
    let outside_file = outside.join("secret.txt").to_string_lossy().into_owned();
    let attempts = [
        ("read", json!({"path": "../outside/secret.txt"})),
        ("read", json!({"path": outside_file})),
        ("read", json!({"path": "escape/secret.txt"})),
        (
            "write",
            json!({"path": "../outside/secret.txt", "content": "pwned"}),
        ),
        (
            "write",
            json!({"path": "escape/secret.txt", "content": "pwned"}),
        ),
        ("write", json!({"path": outside_file, "content": "pwned"})),
        (
            "edit",
            json!({"path": "escape/secret.txt", "oldText": "keep", "newText": "lost"}),
        ),
        ("ls", json!({"path": "escape"})),
        ("ls", json!({"path": "/etc"})),
        ("find", json!({"pattern": "*", "path": "../"})),
        ("grep", json!({"pattern": "keep", "path": "escape"})),
    ];
    for (tool, args) in attempts {
        let out = call(&e, tool, args.clone()).await;
        assert!(out.is_error, "{tool} {args}: {out:?}");
        assert!(
            out.text.contains("outside the workspace"),
            "{tool} {args}: {out:?}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(outside.join("secret.txt")).unwrap(),
        "keep me"
    );
    // A walk from the root never follows the link either.
    let out = call(&e, "grep", json!({"pattern": "keep me"})).await;
    assert_eq!(out.text, "No matches.");
    // bash sees only the workspace: the outside directory does not exist in the sandbox.
    let out = call(
        &e,
        "bash",
        json!({"command": format!("cat {outside_file}; ls /; cat escape/secret.txt")}),
    )
    .await;
    assert!(!out.text.contains("keep me"), "{out:?}");
}

#[tokio::test]
async fn bash_runs_confined_without_the_workers_environment() {
    // SAFETY of the check: these are variables this test process really has.
    let e = env();
    std::fs::write(ws(&e).join("notes.txt"), "hi").unwrap();
    let out = call(
        &e,
        "bash",
        json!({"command": "pwd; ls; env; id -u; echo made > new.txt"}),
    )
    .await;
    assert!(!out.is_error, "{out:?}");
    assert!(out.text.contains("/workspace"), "{}", out.text);
    assert!(out.text.contains("notes.txt"), "{}", out.text);
    for (name, value) in std::env::vars() {
        if value.len() >= 6
            && ![
                "PATH", "PWD", "HOME", "LANG", "TERM", "SHLVL", "_", "USER", "OLDPWD",
            ]
            .contains(&name.as_str())
        {
            assert!(!out.text.contains(&value), "the sandbox saw {name}");
        }
    }
    for forbidden in ["DATABASE_URL", "CHATONS_", "CARGO", "RUST"] {
        assert!(
            !out.text.contains(forbidden),
            "{forbidden} leaked: {}",
            out.text
        );
    }
    assert_eq!(
        std::fs::read_to_string(ws(&e).join("new.txt")).unwrap(),
        "made\n"
    );
    // The system is read-only; the worker's processes are invisible.
    let out = call(
        &e,
        "bash",
        json!({"command": "touch /usr/x; ps -e | wc -l"}),
    )
    .await;
    assert!(
        out.text.contains("Read-only file system") || out.text.contains("Permission denied"),
        "{}",
        out.text
    );
    let exit = call(&e, "bash", json!({"command": "exit 3"})).await;
    assert!(exit.is_error);
    assert!(exit.text.contains("exited with code 3"), "{exit:?}");
}

#[tokio::test]
async fn bash_over_its_time_limit_is_killed_with_its_children() {
    let e = env();
    let marker = format!("{}", 4000 + (std::process::id() % 1000));
    let started = Instant::now();
    let out = call(
        &e,
        "bash",
        json!({"command": format!("sleep {marker}.5 & (sleep {marker}.6 &) ; sleep {marker}.7"), "timeout": 1}),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(out.is_error);
    assert!(out.text.contains("timed out after 1 s"), "{out:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&ps.stdout);
    assert!(
        !listing.contains(&format!("sleep {marker}.")),
        "children survived:\n{listing}"
    );
}

#[tokio::test]
async fn an_aborted_bash_call_stops_at_once() {
    let e = env();
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        c2.cancel();
    });
    let started = Instant::now();
    let out = tools::execute(
        "bash",
        &json!({"command": "sleep 30"}),
        Some(&e.ctx),
        None,
        &cancel,
        None,
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(out.is_error && out.text.contains("aborted"), "{out:?}");
}

#[tokio::test]
async fn bash_fails_closed_when_the_sandbox_cannot_start() {
    let e = env_with(
        SandboxConfig {
            bwrap: PathBuf::from("/nonexistent/bwrap"),
            ..SandboxConfig::default()
        },
        ToolLimits::default(),
    );
    let out = call(&e, "bash", json!({"command": "echo ran > ran.txt"})).await;
    assert!(out.is_error);
    assert!(out.text.contains("sandbox could not start"), "{out:?}");
    assert!(!ws(&e).join("ran.txt").exists());
    // A bubblewrap that cannot set up its namespaces (here: a fake that just fails).
    let fake = e.dir.join("fake-bwrap");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&fake)
        .status()
        .unwrap();
    let e2 = env_with(
        SandboxConfig {
            bwrap: fake,
            ..SandboxConfig::default()
        },
        ToolLimits::default(),
    );
    let out = call(&e2, "bash", json!({"command": "echo ran > ran.txt"})).await;
    assert!(out.is_error);
    assert!(out.text.contains("No permissions"), "{out:?}");
    assert!(!ws(&e2).join("ran.txt").exists());
}

#[tokio::test]
async fn public_network_reaches_only_public_addresses() {
    // A local HTTP server: the worker can reach it, the sandbox (through its proxy) cannot.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let app =
            axum::Router::new().route("/", axum::routing::get(|| async { "internal secret page" }));
        let _ = axum::serve(listener, app).await;
    });
    let e = env_with(
        SandboxConfig {
            network: Network::Public,
            helper: Some(PathBuf::from(crate::support::BIN)),
            ..SandboxConfig::default()
        },
        ToolLimits::default(),
    );
    let out = call(
        &e,
        "bash",
        json!({"command": format!(
            "echo proxy=$HTTPS_PROXY; curl -sS -m 5 http://127.0.0.1:{port}/ ; echo; \
             curl -sS -m 5 --noproxy '' -o /dev/null -w 'private:%{{http_code}}\n' http://10.0.0.1/; \
             curl -sS -m 5 --noproxy '' -o /dev/null -w 'loopback:%{{http_code}}\n' http://127.0.0.1:{port}/; \
             curl -sS -m 5 --noproxy '' -w 'tls:%{{http_code}}\n' https://10.0.0.2/ 2>&1 | tail -1"
        )}),
    )
    .await;
    assert!(out.text.contains("proxy=http://127.0.0.1:3128"), "{out:?}");
    assert!(!out.text.contains("internal secret page"), "{out:?}");
    assert!(
        out.text.contains("private:403"),
        "the proxy refuses private addresses: {out:?}"
    );
    assert!(
        out.text.contains("loopback:403"),
        "the proxy refuses loopback: {out:?}"
    );
    assert!(
        out.text.contains("403"),
        "CONNECT to a private address is refused: {out:?}"
    );
    let none = env();
    let out = call(
        &none,
        "bash",
        json!({"command": format!("curl -sS -m 3 http://127.0.0.1:{port}/")}),
    )
    .await;
    assert!(!out.text.contains("internal secret page"), "{out:?}");
}

#[tokio::test]
async fn without_proc_the_sandbox_still_runs_and_sees_no_processes() {
    let e = env_with(
        SandboxConfig {
            proc: false,
            ..SandboxConfig::default()
        },
        ToolLimits::default(),
    );
    let out = call(
        &e,
        "bash",
        json!({"command": "echo ok; ls /proc 2>/dev/null | wc -l"}),
    )
    .await;
    assert!(!out.is_error, "{out:?}");
    assert!(out.text.starts_with("ok\n0"), "{out:?}");
}
