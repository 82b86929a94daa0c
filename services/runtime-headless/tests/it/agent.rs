//! The coding agent end to end: real cloud-api (Postgres), real cloud-realtime with a websocket
//! client, runtime-headless workers as processes, and a scripted model server speaking each
//! provider wire. What the desktop would see is read from the websocket.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cloud_testkit::db::TestDb;
use cloud_testkit::process::ServiceProcess;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::scripted::{ScriptedProvider, Step};
use crate::support::{BIN, Client, TestUser, eventually};

const WAIT: Duration = Duration::from_secs(30);

pub struct Stack {
    pub db: TestDb,
    pub token: String,
    pub provider: ScriptedProvider,
    pub api: ServiceProcess,
    pub realtime: ServiceProcess,
    pub root: PathBuf,
    http: reqwest::Client,
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A desktop's view of one conversation: the user, its ids, and the websocket's events.
pub struct Desk {
    pub user: TestUser,
    pub conversation: String,
    pub model: String,
    pub events: Arc<Mutex<Vec<(Instant, Value)>>>,
}

pub async fn ok(resp: reqwest::Response, what: &str) -> Value {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{what}: {status} {body}");
    body
}

impl Stack {
    pub async fn new() -> Self {
        let db = TestDb::new().await;
        let token = cloud_testkit::random_token();
        let provider = ScriptedProvider::start().await;
        let root = std::env::temp_dir().join(format!("rh-agent-{}", uuid::Uuid::new_v4().simple()));
        let api = ServiceProcess::spawn(
            &cloud_testkit::workspace_binary("cloud-api"),
            &[
                ("DATABASE_URL", db.url.clone()),
                ("CHATONS_INTERNAL_SERVICE_TOKEN", token.clone()),
                (
                    "CHATONS_DATA_DIR",
                    root.join("api").to_string_lossy().into_owned(),
                ),
            ],
        )
        .await;
        let realtime = ServiceProcess::spawn(
            &cloud_testkit::workspace_binary("cloud-realtime"),
            &[
                ("CHATONS_INTERNAL_SERVICE_TOKEN", token.clone()),
                ("CHATONS_CLOUD_API_URL", api.url()),
            ],
        )
        .await;
        Self {
            db,
            token,
            provider,
            api,
            realtime,
            root,
            http: reqwest::Client::new(),
        }
    }

    pub fn worker_env(&self, owner: &str) -> Vec<(&'static str, String)> {
        vec![
            ("DATABASE_URL", self.db.url.clone()),
            ("CHATONS_RUNTIME_DB_POOL_SIZE", "4".to_owned()),
            (
                "CHATONS_RUNTIME_PROVIDER_ALLOW_PRIVATE_NETWORKS",
                "true".to_owned(),
            ),
            ("CHATONS_INTERNAL_SERVICE_TOKEN", self.token.clone()),
            ("CHATONS_CLOUD_API_URL", self.api.url()),
            (
                "CHATONS_REALTIME_PUBLISH_URL",
                format!("{}/v1/realtime/events", self.realtime.url()),
            ),
            ("CHATONS_RUNTIME_OWNER_ID", owner.to_owned()),
            ("CHATONS_RUNTIME_LEASE_TTL_SECONDS", "3".to_owned()),
            (
                "CHATONS_RUNTIME_ROOT_DIR",
                self.root.join(owner).to_string_lossy().into_owned(),
            ),
            ("CHATONS_RUNTIME_STREAM_COALESCE_MS", "20".to_owned()),
            ("CHATONS_RUNTIME_SANDBOX_NETWORK", "none".to_owned()),
        ]
    }

    pub async fn worker(&self, owner: &str) -> ServiceProcess {
        ServiceProcess::spawn(BIN, &self.worker_env(owner)).await
    }

    /// A worker with some variables overridden or added.
    pub async fn worker_with(
        &self,
        owner: &str,
        extra: &[(&'static str, String)],
    ) -> ServiceProcess {
        let mut env = self.worker_env(owner);
        for (k, v) in extra {
            env.retain(|(name, _)| name != k);
            env.push((k, v.clone()));
        }
        ServiceProcess::spawn(BIN, &env).await
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The workspace directory worker `owner` uses for a conversation.
    pub fn workspace(&self, owner: &str, conversation: &str) -> PathBuf {
        self.root
            .join(owner)
            .join("conversations")
            .join(runtime_headless::agent::path_segment(conversation))
    }

    /// Signs a user up with a provider of `kind` on the scripted server, sets the default
    /// project's capability, opens a conversation and the desktop's websocket.
    pub async fn desk(&self, kind: &str, capability: &str) -> Desk {
        let api = self.api.url();
        let (id, token, boot) = crate::support::signup(&self.http, &api).await;
        let project = boot["projects"][0]["id"].as_str().unwrap().to_owned();
        let model = format!("scripted-{}", uuid::Uuid::new_v4().simple());
        ok(
            self.http
                .post(format!("{api}/v1/organization/providers"))
                .bearer_auth(&token)
                .json(&json!({
                    "kind": kind, "label": "Scripted", "secret": "sk-scripted-secret",
                    "baseUrl": self.provider.base, "models": [{"id": model, "label": "Scripted"}],
                    "defaultModel": model
                }))
                .send()
                .await
                .unwrap(),
            "provider",
        )
        .await;
        ok(
            self.http
                .patch(format!("{api}/v1/projects/{project}"))
                .bearer_auth(&token)
                .json(&json!({"workspaceCapability": capability}))
                .send()
                .await
                .unwrap(),
            "capability",
        )
        .await;
        let conversation = ok(
            self.http
                .post(format!("{api}/v1/conversations"))
                .bearer_auth(&token)
                .json(&json!({"projectId": project, "title": "New - agent"}))
                .send()
                .await
                .unwrap(),
            "conversation",
        )
        .await["conversation"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let instance = uuid::Uuid::new_v4().to_string();
        ok(
            self.http
                .post(format!("{api}/v1/cloud-instances"))
                .bearer_auth(&token)
                .json(&json!({"id": instance, "name": "Laptop"}))
                .send()
                .await
                .unwrap(),
            "instance",
        )
        .await;
        let user = TestUser {
            id,
            token,
            instance,
            project,
        };
        self.watch(user, conversation, model).await
    }

    /// A desktop's view of `conversation`: its websocket, filtered to that conversation.
    pub async fn watch(&self, user: TestUser, conversation: String, model: String) -> Desk {
        let minted = ok(
            self.http
                .get(format!(
                    "{}/v1/realtime/token?cloudInstanceId={}",
                    self.realtime.url(),
                    user.instance
                ))
                .bearer_auth(&user.token)
                .send()
                .await
                .unwrap(),
            "realtime token",
        )
        .await;
        let (ws, _) = tokio_tungstenite::connect_async(format!(
            "ws://{}/ws?token={}",
            self.realtime.addr,
            minted["token"].as_str().unwrap()
        ))
        .await
        .expect("websocket");
        let events: Arc<Mutex<Vec<(Instant, Value)>>> = Arc::default();
        let sink = events.clone();
        let conv = conversation.clone();
        tokio::spawn(async move {
            let (_, mut read) = ws.split();
            while let Some(Ok(msg)) = read.next().await {
                if let Message::Text(t) = msg {
                    let frame: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                    if frame["type"] == "conversation.event"
                        && frame["conversationId"] == conv.as_str()
                    {
                        sink.lock()
                            .unwrap()
                            .push((Instant::now(), frame["payload"]["event"].clone()));
                    }
                }
            }
        });
        Desk {
            user,
            conversation,
            model,
            events,
        }
    }

    /// A new conversation of `project` for the desk's user.
    pub async fn conversation(&self, user: &TestUser, project: &str) -> String {
        ok(
            self.http
                .post(format!("{}/v1/conversations", self.api.url()))
                .bearer_auth(&user.token)
                .json(&json!({"projectId": project, "title": "New - agent"}))
                .send()
                .await
                .unwrap(),
            "conversation",
        )
        .await["conversation"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn transcript(&self, desk: &Desk) -> Vec<Value> {
        let body = ok(
            self.http
                .get(format!(
                    "{}/v1/conversations/{}/messages",
                    self.api.url(),
                    desk.conversation
                ))
                .bearer_auth(&desk.user.token)
                .send()
                .await
                .unwrap(),
            "transcript",
        )
        .await;
        body["messages"].as_array().cloned().unwrap_or_default()
    }
}

/// The usual setup: one worker, one desk whose model follows `steps`, its client and session.
pub struct Solo {
    pub stack: Stack,
    pub worker: ServiceProcess,
    pub desk: Desk,
    pub client: Client,
    pub session: String,
}

pub async fn solo(kind: &str, capability: &str, steps: Vec<Step>) -> Solo {
    let stack = Stack::new().await;
    let worker = stack.worker("w1").await;
    let desk = stack.desk(kind, capability).await;
    stack.provider.script(&desk.model, steps);
    let client = Client::new(&worker.url(), &desk.user.token);
    let session = desk.session(&client).await;
    Solo {
        stack,
        worker,
        desk,
        client,
        session,
    }
}

impl Desk {
    pub fn events(&self) -> Vec<Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// Waits until `pred` holds on the websocket's events (panics with them otherwise).
    pub async fn wait(&self, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let events = self.events();
            if pred(&events) {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {events:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// When the first event matching `pred` arrived.
    pub fn arrival(&self, pred: impl Fn(&Value) -> bool) -> Option<Instant> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .find(|(_, e)| pred(e))
            .map(|(t, _)| *t)
    }

    pub async fn session(&self, client: &Client) -> String {
        client
            .session_id(&self.user, &self.conversation, None)
            .await
    }
}

fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| e["type"].as_str().map(str::to_owned))
        .collect()
}

fn position(events: &[Value], pred: impl Fn(&Value) -> bool) -> usize {
    events
        .iter()
        .position(pred)
        .unwrap_or_else(|| panic!("event not found in {events:#?}"))
}

pub fn ends(events: &[Value]) -> usize {
    events.iter().filter(|e| e["type"] == "agent_end").count()
}

fn roles(messages: &Value) -> Vec<String> {
    messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap().to_owned())
        .collect()
}

async fn coding_turn(kind: &str) {
    let stack = Stack::new().await;
    let worker = stack.worker("w1").await;
    let desk = stack.desk(kind, "full_tools").await;
    let ws = stack.workspace("w1", &desk.conversation);
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("notes.txt"), "hello world\n").unwrap();
    let thinking = (kind == "anthropic").then(|| "The user wants the note fixed.".to_owned());
    stack.provider.script(
        &desk.model,
        vec![
            Step::Tools {
                thinking,
                text: Some("Let me look.".into()),
                calls: vec![("read".into(), json!({"path": "notes.txt"}))],
            },
            Step::tool(
                "edit",
                json!({"path": "notes.txt", "oldText": "world", "newText": "cloud"}),
            ),
            Step::tool("bash", json!({"command": "ls; env"})),
            Step::text(
                &["All ", "done: ", "the note ", "now says ", "hello cloud."],
                60,
            ),
        ],
    );
    let client = Client::new(&worker.url(), &desk.user.token);
    let session = desk.session(&client).await;
    let (status, reply) = client
        .command(
            &session,
            json!({"id": "req-1", "type": "prompt", "message": "Please fix notes.txt"}),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["id"], "req-1");
    let events = desk.wait("agent_end", |e| ends(e) == 1).await;

    assert_eq!(
        std::fs::read_to_string(ws.join("notes.txt")).unwrap(),
        "hello cloud\n"
    );
    // The desktop's events, in order; every message_update carries the whole message.
    let start = position(&events, |e| e["type"] == "agent_start");
    let tool = |name: &str, phase: &str| {
        let name = name.to_owned();
        let phase = format!("tool_execution_{phase}");
        move |e: &Value| e["type"] == phase.as_str() && e["toolName"] == name.as_str()
    };
    let order = [
        start,
        position(&events, tool("read", "start")),
        position(&events, tool("read", "end")),
        position(&events, tool("edit", "start")),
        position(&events, tool("edit", "end")),
        position(&events, tool("bash", "start")),
        position(&events, tool("bash", "end")),
        position(&events, |e| e["type"] == "agent_end"),
    ];
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "{order:?} {:?}",
        kinds(&events)
    );
    for e in events.iter().filter(|e| e["type"] == "message_update") {
        assert_eq!(e["message"]["role"], "assistant", "{e}");
        assert!(e["message"]["content"].is_array(), "{e}");
        assert!(e["assistantMessageEvent"]["type"].is_string(), "{e}");
    }
    let read_start = &events[order[1]];
    assert_eq!(read_start["args"], json!({"path": "notes.txt"}));
    let read_end = &events[order[2]];
    assert_eq!(read_end["isError"], false);
    assert_eq!(read_end["result"]["content"][0]["text"], "hello world\n");
    // Text streamed: the final answer arrived in more than one update before agent_end.
    let final_updates = events[order[6]..order[7]]
        .iter()
        .filter(|e| {
            e["type"] == "message_update" && e["assistantMessageEvent"]["type"] == "text_delta"
        })
        .count();
    assert!(
        final_updates > 1,
        "{final_updates} text updates: {:?}",
        kinds(&events)
    );
    // `env` inside bash: the sandbox's own variables, no service secret.
    let bash = events[order[6]]["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        bash.contains("notes.txt") && bash.contains("PWD=/workspace"),
        "{bash}"
    );
    for secret in [
        stack.token.as_str(),
        stack.db.url.as_str(),
        "sk-scripted-secret",
        "CHATONS_",
        "DATABASE_URL",
    ] {
        assert!(!bash.contains(secret), "bash saw {secret}: {bash}");
    }

    let end = events.iter().find(|e| e["type"] == "agent_end").unwrap();
    let expected = [
        "user",
        "assistant",
        "toolResult",
        "assistant",
        "toolResult",
        "assistant",
        "toolResult",
        "assistant",
    ];
    assert_eq!(roles(&end["messages"]), expected);
    assert!(end["usage"]["input"].as_u64().unwrap() > 0, "{end}");
    assert_eq!(end["outcome"], "succeeded");

    // get_messages and the snapshot hold the whole turn, tool calls and results included.
    let (_, got) = client
        .command(&session, json!({"id": "m", "type": "get_messages"}))
        .await;
    assert_eq!(got["id"], "m");
    let messages = &got["data"]["messages"];
    assert_eq!(roles(messages), expected);
    assert_eq!(
        messages[1]["content"].as_array().unwrap().last().unwrap()["type"],
        "toolCall"
    );
    assert_eq!(messages[2]["toolName"], "read");
    assert_eq!(
        messages[7]["content"][0]["text"],
        "All done: the note now says hello cloud."
    );
    let (_, snapshot) = client.get(&session).await;
    assert_eq!(roles(&snapshot["messages"]), expected);
    assert!(
        snapshot["tokenUsage"]["totalTokens"].as_u64().unwrap() > 0,
        "{snapshot}"
    );
    assert_eq!(snapshot["state"]["messageCount"], 8);

    // The transcript keeps the user and assistant text.
    let transcript = eventually(WAIT, "the turn in the transcript", || async {
        let t = stack.transcript(&desk).await;
        (t.len() == 3).then_some(t)
    })
    .await;
    assert_eq!(transcript[0]["content"], "Please fix notes.txt");
    assert_eq!(transcript[1]["content"], "Let me look.");
    assert_eq!(
        transcript[2]["content"],
        "All done: the note now says hello cloud."
    );

    // What the provider received: the tools, then each tool result.
    let requests = stack.provider.requests(&desk.model);
    assert_eq!(requests.len(), 4);
    let body = requests[1].to_string();
    assert!(
        body.contains("hello world"),
        "the read result went back: {body}"
    );
    let tools = requests[0]["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 14, "file, shell and memory tools");
    if kind == "anthropic" {
        assert_eq!(
            requests[0]["system"]
                .as_str()
                .map(|s| s.contains("/workspace")),
            Some(true)
        );
        let assistant = &requests[1]["messages"][1];
        assert_eq!(assistant["content"][0]["type"], "thinking");
        assert_eq!(assistant["content"][0]["signature"], "sig-test");
        assert_eq!(
            requests[1]["messages"][2]["content"][0]["type"],
            "tool_result"
        );
    } else {
        assert_eq!(requests[0]["messages"][0]["role"], "system");
        assert_eq!(requests[1]["messages"][3]["role"], "tool");
    }
}

#[tokio::test]
async fn coding_turn_over_openai_chat_completions() {
    coding_turn("openai").await;
}

#[tokio::test]
async fn coding_turn_over_anthropic_messages() {
    coding_turn("anthropic").await;
}

#[tokio::test]
async fn chat_only_projects_get_no_tools() {
    let Solo {
        stack,
        worker: _worker,
        desk,
        client,
        session,
    } = solo(
        "openai",
        "chat_only",
        vec![
            Step::tool("write", json!({"path": "x.txt", "content": "nope"})),
            Step::text(&["fine"], 0),
        ],
    )
    .await;
    client.prompt(&session, "write a file").await;
    let events = desk.wait("agent_end", |e| ends(e) == 1).await;
    let requests = stack.provider.requests(&desk.model);
    let offered: Vec<&str> = requests[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert!(
        offered.iter().all(|n| n.starts_with("memory_")),
        "{offered:?}"
    );
    let end = events
        .iter()
        .find(|e| e["type"] == "tool_execution_end")
        .unwrap();
    assert_eq!(end["isError"], true);
    assert!(!stack.workspace("w1", &desk.conversation).exists());
    // A member cannot switch the project to full_tools (cloud-api refuses: tested there too).
    let (_, access) = client
        .command(&session, json!({"id": "a", "type": "get_access_mode"}))
        .await;
    assert_eq!(access["data"]["mode"], "chat_only");
    let tools = access["data"]["tools"].as_array().unwrap();
    assert!(
        tools
            .iter()
            .all(|t| t.as_str().unwrap().starts_with("memory_")),
        "{access}"
    );
}

#[tokio::test]
async fn abort_stops_a_long_tool_and_a_stream_within_a_second() {
    let stack = Stack::new().await;
    let worker = stack.worker("w1").await;
    let desk = stack.desk("openai", "full_tools").await;
    stack.provider.script(
        &desk.model,
        vec![
            Step::tool("bash", json!({"command": "sleep 30"})),
            Step::slow(300, 100),
        ],
    );
    let client = Client::new(&worker.url(), &desk.user.token);
    let session = desk.session(&client).await;
    client.prompt(&session, "sleep").await;
    desk.wait("bash running", |e| {
        e.iter().any(|x| x["type"] == "tool_execution_start")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, reply) = client
        .command(&session, json!({"id": "ab1", "type": "abort"}))
        .await;
    // From the moment the abort is acknowledged (the grant check before it is not the run's).
    let asked = Instant::now();
    assert_eq!(
        (reply["id"].as_str(), reply["success"].as_bool()),
        (Some("ab1"), Some(true))
    );
    let events = desk.wait("the aborted run's end", |e| ends(e) == 1).await;
    let ended = desk.arrival(|e| e["type"] == "agent_end").unwrap();
    if ended.duration_since(asked) >= Duration::from_secs(1) {
        let mut worker = worker;
        worker.signal("TERM");
        worker.wait_exit(Duration::from_secs(10)).await;
        panic!(
            "the run ended {:?} after the abort; events {:#?}; worker log:\n{}",
            ended.duration_since(asked),
            desk.events
                .lock()
                .unwrap()
                .iter()
                .map(|(t, e)| format!("{:?} {}", t.duration_since(asked), e["type"]))
                .collect::<Vec<_>>(),
            worker.output().join("\n")
        );
    }
    let end = events.iter().find(|e| e["type"] == "agent_end").unwrap();
    assert_eq!(end["outcome"], "aborted");
    let tool_end = events
        .iter()
        .find(|e| e["type"] == "tool_execution_end")
        .unwrap();
    assert_eq!(tool_end["isError"], true);

    // Now during streaming.
    client.prompt(&session, "talk").await;
    desk.wait("streaming", |e| {
        e.iter()
            .filter(|x| x["assistantMessageEvent"]["type"] == "text_delta")
            .count()
            >= 2
    })
    .await;
    client
        .command(&session, json!({"id": "ab2", "type": "abort"}))
        .await;
    let asked = Instant::now();
    let events = desk.wait("the second run's end", |e| ends(e) == 2).await;
    let ended = events
        .iter()
        .filter(|e| e["type"] == "agent_end")
        .nth(1)
        .unwrap();
    assert_eq!(ended["outcome"], "aborted");
    let at = desk
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, e)| e["type"] == "agent_end")
        .nth(1)
        .map(|(t, _)| *t)
        .unwrap();
    assert!(
        at.duration_since(asked) < Duration::from_secs(1),
        "{:?}",
        at.duration_since(asked)
    );
    // The partial answer is kept, marked aborted.
    let (_, got) = client
        .command(&session, json!({"id": "g", "type": "get_messages"}))
        .await;
    let last = got["data"]["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["stopReason"], "aborted", "{last}");
}

#[tokio::test]
async fn steer_is_delivered_between_steps_and_follow_ups_after_the_run() {
    let Solo {
        stack,
        worker: _worker,
        desk,
        client,
        session,
    } = solo(
        "openai",
        "full_tools",
        vec![
            Step::tool("bash", json!({"command": "sleep 2"})),
            Step::text(&["steered"], 0),
            Step::text(&["followed"], 0),
            Step::text(&["third"], 0),
        ],
    )
    .await;
    client.prompt(&session, "start").await;
    desk.wait("bash running", |e| {
        e.iter().any(|x| x["type"] == "tool_execution_start")
    })
    .await;
    for (id, body) in [
        (
            "s",
            json!({"type": "steer", "message": "also check README"}),
        ),
        (
            "f",
            json!({"type": "follow_up", "message": "then summarize"}),
        ),
        ("p", json!({"type": "prompt", "message": "third thing"})),
    ] {
        let mut body = body;
        body["id"] = json!(id);
        let (status, reply) = client.command(&session, body).await;
        assert_eq!(status, 200, "{reply}");
        assert_eq!(reply["id"], id);
        assert_eq!(reply["data"]["behindActiveRun"], true, "{reply}");
    }
    let events = desk.wait("three runs", |e| ends(e) == 3).await;
    assert_eq!(
        events.iter().filter(|e| e["type"] == "agent_start").count(),
        3
    );
    let requests = stack.provider.requests(&desk.model);
    assert_eq!(requests.len(), 4);
    // The steer reached the model right after the tool result, in the same run.
    let second: Vec<String> = requests[1]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}:{}",
                m["role"].as_str().unwrap(),
                m["content"].as_str().unwrap_or("")
            )
        })
        .collect();
    let n = second.len();
    assert_eq!(second[n - 2].split(':').next(), Some("tool"), "{second:?}");
    assert_eq!(second[n - 1], "user:also check README", "{second:?}");
    let first_end = events.iter().find(|e| e["type"] == "agent_end").unwrap();
    assert_eq!(
        roles(&first_end["messages"]),
        ["user", "assistant", "toolResult", "user", "assistant"]
    );
    // The follow-up ran next, then the queued prompt.
    let last_user = |r: &Value| {
        r["messages"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .unwrap()["content"]
            .clone()
    };
    assert_eq!(last_user(&requests[2]), "then summarize");
    assert_eq!(last_user(&requests[3]), "third thing");
}

#[tokio::test]
async fn every_command_answers_with_the_request_id() {
    let Solo {
        stack: _stack,
        worker: _worker,
        desk,
        client,
        session,
    } = solo("openai", "full_tools", vec![Step::text(&["ok"], 0)]).await;
    let commands = [
        json!({"type": "get_state"}),
        json!({"type": "get_messages"}),
        json!({"type": "get_available_models"}),
        json!({"type": "get_available_thinking_levels"}),
        json!({"type": "get_access_mode"}),
        json!({"type": "get_commands"}),
        json!({"type": "get_session_stats"}),
        json!({"type": "get_last_assistant_text"}),
        json!({"type": "set_model", "provider": "openai", "modelId": desk.model}),
        json!({"type": "set_thinking_level", "level": "high"}),
        json!({"type": "cycle_thinking_level"}),
        json!({"type": "set_auto_compaction", "enabled": true}),
        json!({"type": "set_auto_retry", "enabled": false}),
        json!({"type": "set_steering_mode", "mode": "one-at-a-time"}),
        json!({"type": "set_follow_up_mode", "mode": "one-at-a-time"}),
        json!({"type": "prompt", "message": "hello", "images": [], "files": []}),
        json!({"type": "follow_up", "message": "  "}),
        json!({"type": "steer", "message": "now"}),
        json!({"type": "abort"}),
    ];
    let mut replies = serde_json::Map::new();
    for (i, c) in commands.iter().enumerate() {
        let mut body = c.clone();
        let id = format!("cmd-{i}");
        body["id"] = json!(id);
        let (status, reply) = client.command(&session, body).await;
        assert_eq!(status, 200, "{c}: {reply}");
        assert_eq!(reply["id"], id.as_str(), "{c}: {reply}");
        assert_eq!(reply["type"], "response");
        assert_eq!(reply["command"], c["type"]);
        assert_eq!(reply["success"], true, "{c}: {reply}");
        replies.insert(c["type"].as_str().unwrap().to_owned(), reply);
    }
    assert_eq!(replies["cycle_thinking_level"]["data"]["level"], "xhigh");
    let models = replies["get_available_models"]["data"]["models"]
        .as_array()
        .unwrap();
    assert!(
        models
            .iter()
            .any(|m| m["id"] == desk.model.as_str() && m["provider"] == "openai")
    );
    assert_eq!(replies["get_access_mode"]["data"]["mode"], "full_tools");
    let state = &replies["get_state"]["data"];
    for key in [
        "model",
        "thinkingLevel",
        "isStreaming",
        "isCompacting",
        "steeringMode",
        "followUpMode",
        "sessionFile",
        "sessionId",
        "autoCompactionEnabled",
        "messageCount",
        "pendingMessageCount",
    ] {
        assert!(state.get(key).is_some(), "state has {key}: {state}");
    }
    assert_eq!(state["sessionFile"], session.as_str(), "no server path");
    let (_, state) = client
        .command(&session, json!({"id": "s2", "type": "get_state"}))
        .await;
    assert_eq!(state["data"]["steeringMode"], "one-at-a-time");
    assert_eq!(state["data"]["autoCompactionEnabled"], true);
    assert_eq!(state["data"]["thinkingLevel"], "xhigh");
    // Failures keep the id too.
    let (status, bad) = client
        .command(
            &session,
            json!({"id": "bad", "type": "set_model", "provider": "openai", "modelId": "nope"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        (bad["id"].as_str(), bad["success"].as_bool()),
        (Some("bad"), Some(false))
    );
    assert!(bad["error"].as_str().unwrap().contains("Model not found"));
    let (status, bad) = client
        .command(&session, json!({"id": "img", "type": "prompt", "message": "x", "images": [{"type": "image", "data": "!!", "mimeType": "image/png"}]}))
        .await;
    assert_eq!((status, bad["id"].as_str()), (400, Some("img")));
}

#[tokio::test]
async fn a_killed_owner_mid_run_loses_no_finished_step() {
    let stack = Stack::new().await;
    let a = stack.worker("worker-a").await;
    let b = stack.worker("worker-b").await;
    let desk = stack.desk("openai", "full_tools").await;
    stack.provider.script(
        &desk.model,
        vec![
            Step::tool("bash", json!({"command": "echo step-one"})),
            Step::slow(400, 50),
        ],
    );
    let ca = Client::new(&a.url(), &desk.user.token);
    let cb = Client::new(&b.url(), &desk.user.token);
    let session = desk.session(&ca).await;
    ca.prompt(&session, "two steps").await;
    desk.wait("the second step streaming", |e| {
        e.iter().any(|x| x["type"] == "tool_execution_end")
            && e.iter()
                .filter(|x| x["assistantMessageEvent"]["type"] == "text_delta")
                .count()
                >= 2
    })
    .await;
    a.signal("KILL");
    let events = desk
        .wait("the new owner's verdict", |e| {
            e.iter().any(|x| x["type"] == "turn_failed")
        })
        .await;
    let failed = events.iter().find(|e| e["type"] == "turn_failed").unwrap();
    assert!(
        failed["message"].as_str().unwrap().contains("lost"),
        "{failed}"
    );
    let (_, got) = cb
        .command(&session, json!({"id": "after", "type": "get_messages"}))
        .await;
    let messages = &got["data"]["messages"];
    let r = roles(messages);
    assert_eq!(r[..3], ["user", "assistant", "toolResult"], "{messages}");
    assert!(
        messages[2]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("step-one"),
        "{messages}"
    );
}

async fn inputs_reach_the_model(kind: &str) {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let Solo {
        stack,
        worker: _worker,
        desk,
        client,
        session,
    } = solo(kind, "full_tools", vec![Step::text(&["seen"], 0)]).await;
    let (_, r) = client
        .command(
            &session,
            json!({"id": "t", "type": "set_thinking_level", "level": "high"}),
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    let png = b64(b"\x89PNG\r\n\x1a\nfake");
    let (status, r) = client
        .command(
            &session,
            json!({"id": "p", "type": "prompt", "message": "what is this?",
                   "images": [{"type": "image", "data": png, "mimeType": "image/png"}],
                   "files": [{"type": "file", "name": "todo.md", "mimeType": "text/markdown",
                              "data": b64(b"- ship it"), "size": 9}]}),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    desk.wait("agent_end", |e| ends(e) == 1).await;
    let request = stack.provider.requests(&desk.model).remove(0);
    let user = request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .unwrap()
        .clone();
    let parts = user["content"].as_array().expect("content parts");
    let text = parts.iter().find(|p| p["type"] == "text").unwrap()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(text.starts_with("what is this?"), "{text}");
    assert!(
        text.contains("- ship it") && text.contains("attachments/todo.md"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(
            stack
                .workspace("w1", &desk.conversation)
                .join("attachments/todo.md")
        )
        .unwrap(),
        "- ship it"
    );
    if kind == "anthropic" {
        let image = parts
            .iter()
            .find(|p| p["type"] == "image")
            .expect("image part");
        assert_eq!(image["source"]["media_type"], "image/png");
        assert_eq!(image["source"]["data"], png.as_str());
        assert_eq!(request["thinking"]["type"], "enabled");
        assert_eq!(request["thinking"]["budget_tokens"], 16384);
        assert!(request["max_tokens"].as_u64().unwrap() > 16384);
    } else {
        let image = parts
            .iter()
            .find(|p| p["type"] == "image_url")
            .expect("image part");
        assert_eq!(
            image["image_url"]["url"],
            format!("data:image/png;base64,{png}")
        );
        assert_eq!(request["reasoning_effort"], "high");
    }
}

#[tokio::test]
async fn images_files_and_thinking_reach_openai() {
    inputs_reach_the_model("openai").await;
}

#[tokio::test]
async fn images_files_and_thinking_reach_anthropic() {
    inputs_reach_the_model("anthropic").await;
}

#[tokio::test]
async fn memory_tools_round_trip_and_stay_in_their_organization() {
    let stack = Stack::new().await;
    let worker = stack.worker("w1").await;
    let desk = stack.desk("openai", "chat_only").await;
    // Someone else's memory, in another organization.
    let other = stack.desk("openai", "chat_only").await;
    let http = reqwest::Client::new();
    let theirs = ok(
        http.post(format!("{}/v1/memory", stack.api.url()))
            .bearer_auth(&other.user.token)
            .json(&json!({"content": "their secret plan", "scope": "global"}))
            .send()
            .await
            .unwrap(),
        "other memory",
    )
    .await["item"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    stack.provider.script(
        &desk.model,
        vec![
            Step::tool("memory_upsert", json!({"content": "The user prefers tabs.", "kind": "preference", "tags": ["style"]})),
            Step::tool("memory_search", json!({"query": "tabs"})),
            Step::tool("memory_get", json!({"id": theirs})),
            Step::tool("memory_delete", json!({"id": theirs})),
            Step::tool("memory_stats", json!({})),
            Step::text(&["noted"], 0),
        ],
    );
    let client = Client::new(&worker.url(), &desk.user.token);
    let session = desk.session(&client).await;
    client.prompt(&session, "remember that I like tabs").await;
    let events = desk.wait("agent_end", |e| ends(e) == 1).await;
    let results: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "tool_execution_end")
        .collect();
    assert_eq!(results.len(), 5, "{results:#?}");
    let text = |i: usize| {
        results[i]["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(results[0]["isError"], false, "{}", text(0));
    assert!(text(0).contains("The user prefers tabs."), "{}", text(0));
    assert_eq!(results[1]["isError"], false);
    assert!(
        text(1).contains("prefers tabs"),
        "search finds it: {}",
        text(1)
    );
    assert_eq!(
        results[2]["isError"],
        true,
        "another organization's memory: {}",
        text(2)
    );
    assert!(!text(2).contains("secret plan"));
    assert_eq!(results[3]["isError"], true, "{}", text(3));
    assert_eq!(results[4]["isError"], false);
    // Stored in cloud-api for the user's organization and project.
    let mine = ok(
        http.get(format!(
            "{}/v1/memory?scope=all&projectId={}",
            stack.api.url(),
            desk.user.project
        ))
        .bearer_auth(&desk.user.token)
        .send()
        .await
        .unwrap(),
        "list",
    )
    .await;
    let items = mine["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|m| m["content"] == "The user prefers tabs." && m["scope"] == "project"),
        "{mine}"
    );
    // The other organization's memory is untouched.
    let still = http
        .get(format!("{}/v1/memory/{theirs}", stack.api.url()))
        .bearer_auth(&other.user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), 200);
}

#[tokio::test]
async fn transient_provider_failures_are_retried_unless_auto_retry_is_off() {
    let Solo {
        stack,
        worker: _worker,
        desk,
        client,
        session,
    } = solo(
        "anthropic",
        "chat_only",
        vec![
            Step::Fail(529),
            Step::Fail(503),
            Step::text(&["recovered"], 0),
            Step::Fail(503),
        ],
    )
    .await;
    client.prompt(&session, "hello").await;
    let events = desk.wait("agent_end", |e| ends(e) == 1).await;
    let starts: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "auto_retry_start")
        .collect();
    assert_eq!(starts.len(), 2, "{events:#?}");
    assert_eq!(starts[0]["attempt"], 1);
    assert!(starts[0]["errorMessage"].as_str().unwrap().contains("529"));
    let end = events
        .iter()
        .find(|e| e["type"] == "auto_retry_end")
        .unwrap();
    assert_eq!(end["success"], true);
    let done = events.iter().find(|e| e["type"] == "agent_end").unwrap();
    assert_eq!(done["outcome"], "succeeded");
    assert_eq!(stack.provider.requests(&desk.model).len(), 3);

    client
        .command(
            &session,
            json!({"type": "set_auto_retry", "enabled": false}),
        )
        .await;
    client.prompt(&session, "again").await;
    let events = desk.wait("the second run", |e| ends(e) == 2).await;
    let second = events
        .iter()
        .filter(|e| e["type"] == "agent_end")
        .nth(1)
        .unwrap();
    assert_eq!(second["outcome"], "failed");
    let error = events
        .iter()
        .find(|e| e["type"] == "runtime_error")
        .unwrap();
    assert!(
        error["message"].as_str().unwrap().contains("HTTP 503"),
        "{error}"
    );
    assert_eq!(
        stack.provider.requests(&desk.model).len(),
        4,
        "no retry when it is off"
    );
}

#[tokio::test]
async fn a_revoked_token_is_refused_within_a_second_despite_the_grant_cache() {
    let Solo {
        stack,
        worker: _worker,
        desk,
        client,
        session,
    } = solo("openai", "chat_only", vec![Step::text(&["ok"], 0)]).await;
    // Warm the cache with a few calls.
    for i in 0..5 {
        let (status, _) = client
            .command(&session, json!({"id": i, "type": "get_state"}))
            .await;
        assert_eq!(status, 200);
    }
    ok(
        stack
            .http()
            .post(format!("{}/v1/web/logout", stack.api.url()))
            .bearer_auth(&desk.user.token)
            .send()
            .await
            .unwrap(),
        "logout",
    )
    .await;
    let revoked = Instant::now();
    let refused_at = loop {
        let (status, _) = client
            .command(&session, json!({"id": "x", "type": "get_state"}))
            .await;
        if status == 403 || status == 401 {
            break revoked.elapsed();
        }
        assert!(revoked.elapsed() < Duration::from_secs(5), "still accepted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(refused_at <= Duration::from_millis(1500), "{refused_at:?}");
}
