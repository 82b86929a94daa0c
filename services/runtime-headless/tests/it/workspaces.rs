//! Repository workspaces, durable workspace state across takeovers, the size cap and idle
//! eviction — with real git (a local bare repository served over a file URL and over HTTP
//! behind a token), real processes and Postgres.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::agent::{Desk, Stack, ends, ok};
use crate::support::scripted::Step;
use crate::support::{Client, TestUser};

fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "T")
        .env("GIT_AUTHOR_EMAIL", "t@example.test")
        .env("GIT_COMMITTER_NAME", "T")
        .env("GIT_COMMITTER_EMAIL", "t@example.test")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A bare repository with one commit (README.md), ready for the dumb HTTP protocol.
fn bare_repo(base: &Path) -> PathBuf {
    let work = base.join("seed");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("README.md"), "hello repo\n").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "first"]);
    let bare = base.join("repo.git");
    git(
        base,
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    git(&bare, &["update-server-info"]);
    bare
}

#[derive(Clone)]
struct GitServer {
    root: PathBuf,
    auth: String,
}

/// Serves a bare repository's files (git's dumb HTTP protocol) to requests with the token.
async fn serve_repo(bare: &Path, token: &str) -> String {
    use base64::Engine;
    let state = GitServer {
        root: bare.to_path_buf(),
        auth: format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"))
        ),
    };
    async fn file(
        State(st): State<GitServer>,
        headers: HeaderMap,
        UrlPath(path): UrlPath<String>,
    ) -> impl IntoResponse {
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(st.auth.as_str()) {
            return (
                StatusCode::UNAUTHORIZED,
                [("www-authenticate", "Basic realm=\"git\"")],
                Vec::new(),
            )
                .into_response();
        }
        if path.contains("..") {
            return StatusCode::BAD_REQUEST.into_response();
        }
        match std::fs::read(st.root.join(&path)) {
            Ok(bytes) => (StatusCode::OK, bytes).into_response(),
            Err(_) => StatusCode::NOT_FOUND.into_response(),
        }
    }
    let app = axum::Router::new()
        .route("/repo.git/{*path}", axum::routing::get(file))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/repo.git", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

/// A git that records every argument list it is run with, then runs the real git.
fn git_wrapper(dir: &Path) -> (PathBuf, PathBuf) {
    let log = dir.join("git-argv.log");
    let real = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v git"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let wrapper = dir.join("git-wrapper");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec {} \"$@\"\n",
            log.display(),
            real.trim()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&wrapper)
        .status()
        .unwrap();
    (wrapper, log)
}

async fn repo_project(
    stack: &Stack,
    user: &TestUser,
    clone_url: &str,
    token: Option<&str>,
) -> String {
    let mut repository =
        json!({"cloneUrl": clone_url, "defaultBranch": "main", "authMode": "none"});
    if let Some(t) = token {
        repository["authMode"] = json!("token");
        repository["accessToken"] = json!(t);
    }
    ok(
        stack
            .http()
            .post(format!("{}/v1/projects", stack.api.url()))
            .bearer_auth(&user.token)
            .json(&json!({"name": "Repo", "kind": "repository", "repository": repository}))
            .send()
            .await
            .unwrap(),
        "repository project",
    )
    .await["project"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A repository project on a local bare repository. cloud-api takes http(s) clone URLs only; a
/// `file://` URL is set directly in the database (development setups do the same).
async fn file_repo_project(stack: &Stack, user: &TestUser, bare: &Path) -> String {
    let project = repo_project(stack, user, "https://placeholder.example/r.git", None).await;
    sqlx::query("UPDATE cloud_projects SET repository_clone_url = $2 WHERE id = $1")
        .bind(&project)
        .bind(format!("file://{}", bare.display()))
        .execute(&stack.db.pool)
        .await
        .unwrap();
    project
}

/// A conversation of `project` watched over its own websocket.
async fn open(stack: &Stack, base: &Desk, project: &str) -> Desk {
    let user = TestUser {
        project: project.to_owned(),
        ..base.user.clone()
    };
    let conversation = stack.conversation(&user, project).await;
    stack.watch(user, conversation, base.model.clone()).await
}

fn tool_results(events: &[Value]) -> Vec<(String, bool, String)> {
    events
        .iter()
        .filter(|e| e["type"] == "tool_execution_end")
        .map(|e| {
            (
                e["toolName"].as_str().unwrap_or("").to_owned(),
                e["isError"] == true,
                e["result"]["content"][0]["text"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect()
}

/// Every file under `dir` (bytes searched, `.git` included).
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t)
                    if t.is_file()
                        && std::fs::read(&p).is_ok_and(|b| {
                            b.windows(needle.len()).any(|w| w == needle.as_bytes())
                        }) =>
                {
                    hits.push(p);
                }
                _ => {}
            }
        }
    }
    hits
}

#[tokio::test]
async fn repository_conversations_share_one_clone_get_their_own_branch_and_never_see_the_token() {
    let stack = Stack::new().await;
    let token = format!("ghp_{}", uuid::Uuid::new_v4().simple());
    let repos = stack.root.join("remote");
    let bare = bare_repo(&repos);
    let url = serve_repo(&bare, &token).await;
    let (wrapper, argv_log) = git_wrapper(&repos);
    let mut worker = stack
        .worker_with(
            "w1",
            &[(
                "CHATONS_RUNTIME_GIT",
                wrapper.to_string_lossy().into_owned(),
            )],
        )
        .await;
    let base = stack.desk("openai", "chat_only").await;
    let project = repo_project(&stack, &base.user, &url, Some(&token)).await;
    stack.provider.script(
        &base.model,
        vec![
            Step::tool("read", json!({"path": "README.md"})),
            Step::tool("bash", json!({"command": "git status --short --branch; git log --oneline | head -3; env; git remote -v"})),
            Step::tool("write", json!({"path": "notes.txt", "content": "conversation one"})),
            Step::text(&["done one"], 0),
            Step::tool("read", json!({"path": "README.md"})),
            Step::tool("ls", json!({})),
            Step::text(&["done two"], 0),
        ],
    );
    let one = open(&stack, &base, &project).await;
    let client = Client::new(&worker.url(), &one.user.token);
    let s1 = one.session(&client).await;
    client.prompt(&s1, "look at the repo").await;
    let events1 = one
        .wait("the first conversation's run", |e| ends(e) == 1)
        .await;
    let two = open(&stack, &base, &project).await;
    let s2 = two.session(&client).await;
    client.prompt(&s2, "and here").await;
    let events2 = two
        .wait("the second conversation's run", |e| ends(e) == 1)
        .await;

    let r1 = tool_results(&events1);
    assert_eq!(r1[0], ("read".into(), false, "hello repo\n".into()));
    let bash = &r1[1].2;
    let branch1 = format!(
        "chatons/cloud-{}",
        runtime_headless::agent::path_segment(&one.conversation)
    );
    assert!(
        bash.contains(&format!("## {branch1}")),
        "git works in the sandbox: {bash}"
    );
    assert!(bash.contains("first"), "{bash}");
    assert!(bash.contains(&url), "origin is the real remote: {bash}");
    let r2 = tool_results(&events2);
    assert_eq!(r2[0].2, "hello repo\n");
    assert!(
        !r2[1].2.contains("notes.txt"),
        "a conversation has its own checkout: {}",
        r2[1].2
    );

    // One clone of the project; two checkouts on their own branches.
    let argv = std::fs::read_to_string(&argv_log).unwrap();
    assert_eq!(
        argv.lines()
            .filter(|l| l.starts_with("clone --quiet --bare"))
            .count(),
        1,
        "{argv}"
    );
    let ws1 = stack.workspace("w1", &one.conversation);
    let ws2 = stack.workspace("w1", &two.conversation);
    let branch = |ws: &Path| {
        String::from_utf8(
            std::process::Command::new("git")
                .args(["branch", "--show-current"])
                .current_dir(ws)
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
        .trim()
        .to_owned()
    };
    assert_eq!(branch(&ws1), branch1);
    assert_eq!(
        branch(&ws2),
        format!(
            "chatons/cloud-{}",
            runtime_headless::agent::path_segment(&two.conversation)
        )
    );
    assert!(ws1.join("notes.txt").is_file() && !ws2.join("notes.txt").exists());

    // The token: in no argument list, no log line, no event, no file under the runtime root.
    assert!(!argv.contains(&token), "git argv: {argv}");
    for e in events1.iter().chain(events2.iter()) {
        assert!(!e.to_string().contains(&token), "event: {e}");
    }
    assert!(!bash.contains(&token));
    assert!(files_containing(&stack.root.join("w1"), &token).is_empty());
    worker.signal("TERM");
    worker.wait_exit(Duration::from_secs(10)).await;
    let logs = worker.output().join("\n");
    assert!(!logs.contains(&token), "runtime logs leak the token");
    assert!(logs.contains("clone") || !logs.is_empty());
}

#[tokio::test]
async fn file_urls_clone_when_private_networks_are_allowed() {
    let stack = Stack::new().await;
    let repos = stack.root.join("remote");
    let bare = bare_repo(&repos);
    let worker = stack.worker("w1").await;
    let base = stack.desk("openai", "chat_only").await;
    let project = file_repo_project(&stack, &base.user, &bare).await;
    stack.provider.script(
        &base.model,
        vec![
            Step::tool("read", json!({"path": "README.md"})),
            Step::text(&["ok"], 0),
        ],
    );
    let desk = open(&stack, &base, &project).await;
    let client = Client::new(&worker.url(), &desk.user.token);
    let s = desk.session(&client).await;
    client.prompt(&s, "read it").await;
    let events = desk.wait("the run", |e| ends(e) == 1).await;
    assert_eq!(tool_results(&events)[0].2, "hello repo\n");
}

async fn takeover_restores(kind: &str) {
    let stack = Stack::new().await;
    let a = stack.worker("worker-a").await;
    let b = stack.worker("worker-b").await;
    let base = stack.desk("openai", "full_tools").await;
    let desk = if kind == "repository" {
        let bare = bare_repo(&stack.root.join("remote"));
        let project = file_repo_project(&stack, &base.user, &bare).await;
        open(&stack, &base, &project).await
    } else {
        base
    };
    stack.provider.script(
        &desk.model,
        vec![
            Step::tool(
                "write",
                json!({"path": "src/a.txt", "content": "written on A"}),
            ),
            Step::text(&["saved"], 0),
            Step::tool("read", json!({"path": "src/a.txt"})),
            Step::text(&["seen"], 0),
        ],
    );
    let ca = Client::new(&a.url(), &desk.user.token);
    let cb = Client::new(&b.url(), &desk.user.token);
    let session = desk.session(&ca).await;
    ca.prompt(&session, "write").await;
    desk.wait("the first turn", |e| ends(e) == 1).await;
    a.signal("KILL");
    // The next command goes to the surviving worker, which takes the expired lease over.
    tokio::time::sleep(Duration::from_secs(4)).await;
    cb.prompt(&session, "read").await;
    let events = desk.wait("the second turn", |e| ends(e) == 2).await;
    let results = tool_results(&events);
    assert_eq!(
        results.last().unwrap(),
        &("read".to_owned(), false, "written on A".to_owned()),
        "{results:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "workspace" && e["phase"] == "restored"),
        "{events:#?}"
    );
    if kind == "repository" {
        let ws = stack.workspace("worker-b", &desk.conversation);
        assert!(
            ws.join("README.md").is_file(),
            "the checkout is back with the repository's files"
        );
    }
}

#[tokio::test]
async fn a_takeover_restores_a_scratch_workspace() {
    takeover_restores("scratch").await;
}

#[tokio::test]
async fn a_takeover_restores_a_repository_workspace() {
    takeover_restores("repository").await;
}

#[tokio::test]
async fn a_workspace_over_the_cap_is_reported_and_the_session_stays_usable() {
    let stack = Stack::new().await;
    let worker = stack
        .worker_with(
            "w1",
            &[(
                "CHATONS_RUNTIME_WORKSPACE_SNAPSHOT_MAX_BYTES",
                "4096".to_owned(),
            )],
        )
        .await;
    let desk = stack.desk("openai", "full_tools").await;
    let noise: String = (0..4000)
        .map(|i| format!("{:x}", (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)))
        .collect();
    stack.provider.script(
        &desk.model,
        vec![
            Step::tool("write", json!({"path": "big.txt", "content": noise})),
            Step::text(&["wrote"], 0),
            Step::text(&["still here"], 0),
        ],
    );
    let client = Client::new(&worker.url(), &desk.user.token);
    let session = desk.session(&client).await;
    client.prompt(&session, "write big").await;
    let events = desk.wait("the run", |e| ends(e) == 1).await;
    let notice = events
        .iter()
        .find(|e| e["type"] == "workspace" && e["phase"] == "snapshot_too_large")
        .unwrap_or_else(|| panic!("{events:#?}"));
    assert!(
        notice["details"]["sizeBytes"].as_u64().unwrap() > 4096,
        "{notice}"
    );
    assert!(notice["message"].as_str().unwrap().contains("not saved"));
    client.prompt(&session, "again").await;
    let events = desk.wait("the next run", |e| ends(e) == 2).await;
    let last = events
        .iter()
        .filter(|e| e["type"] == "agent_end")
        .nth(1)
        .unwrap();
    assert_eq!(last["outcome"], "succeeded");
}

#[tokio::test]
async fn idle_sessions_are_evicted_and_the_next_session_gets_their_files() {
    let stack = Stack::new().await;
    let worker = stack
        .worker_with(
            "w1",
            &[("CHATONS_RUNTIME_IDLE_TIMEOUT_SECONDS", "2".to_owned())],
        )
        .await;
    let desk = stack.desk("openai", "full_tools").await;
    stack.provider.script(
        &desk.model,
        vec![
            Step::tool(
                "write",
                json!({"path": "kept.txt", "content": "survives eviction"}),
            ),
            Step::text(&["ok"], 0),
            Step::tool("read", json!({"path": "kept.txt"})),
            Step::text(&["ok"], 0),
        ],
    );
    let client = Client::new(&worker.url(), &desk.user.token);
    let first = desk.session(&client).await;
    client.prompt(&first, "write").await;
    desk.wait("the run", |e| ends(e) == 1).await;
    desk.wait("the idle expiry", |e| {
        e.iter()
            .any(|x| x["type"] == "runtime_status" && x["status"] == "stopped")
    })
    .await;
    let ws = stack.workspace("w1", &desk.conversation);
    crate::support::eventually(
        Duration::from_secs(10),
        "the local copy removed",
        || async { (!ws.exists()).then_some(()) },
    )
    .await;
    // The desktop's next command gets a 404, acquires again, and sends it.
    let (status, _) = client.command(&first, json!({"type": "get_state"})).await;
    assert_eq!(status, 404);
    let second = desk.session(&client).await;
    assert_ne!(second, first);
    client.prompt(&second, "read").await;
    let events = desk.wait("the next run", |e| ends(e) == 2).await;
    assert_eq!(tool_results(&events).last().unwrap().2, "survives eviction");
}

#[tokio::test]
async fn repository_content_cannot_run_code_in_the_worker() {
    let stack = Stack::new().await;
    let bare = bare_repo(&stack.root.join("remote"));
    let worker = stack.worker("w1").await;
    let base = stack.desk("openai", "chat_only").await;
    let project = file_repo_project(&stack, &base.user, &bare).await;
    // The agent plants a clean filter and an fsmonitor command: the worker's snapshot of the
    // checkout must not run them outside the sandbox.
    let proof = std::env::temp_dir().join(format!("pwned-{}", uuid::Uuid::new_v4().simple()));
    let plant = format!(
        "git config filter.evil.clean \"sh -c 'touch {p}; cat'\"; git config core.fsmonitor \"touch {p}.fsmonitor\"; \
         echo '* filter=evil' > .gitattributes; echo change >> README.md; mkdir -p .git/hooks; \
         printf '#!/bin/sh\\ntouch {p}.hook\\n' > .git/hooks/post-checkout; chmod +x .git/hooks/post-checkout",
        p = proof.display()
    );
    stack.provider.script(
        &base.model,
        vec![
            Step::tool("bash", json!({"command": plant})),
            Step::text(&["planted"], 0),
        ],
    );
    let desk = open(&stack, &base, &project).await;
    let client = Client::new(&worker.url(), &desk.user.token);
    let s = desk.session(&client).await;
    client.prompt(&s, "plant").await;
    let events = desk.wait("the run", |e| ends(e) == 1).await;
    assert!(!tool_results(&events)[0].1, "{events:#?}");
    let saved: Option<i64> =
        sqlx::query_scalar("SELECT size_bytes FROM runtime_workspaces WHERE conversation_id = $1")
            .bind(&desk.conversation)
            .fetch_optional(&stack.db.pool)
            .await
            .unwrap();
    assert!(
        saved.is_some_and(|n| n > 0),
        "the changed checkout was saved: {events:#?}"
    );
    for suffix in ["", ".fsmonitor", ".hook"] {
        let p = PathBuf::from(format!("{}{suffix}", proof.display()));
        assert!(
            !p.exists(),
            "repository content ran in the worker: {}",
            p.display()
        );
    }
}
