//! End to end: the three services as processes, played through the desktop's sequence
//! (reference part C): sign in → bootstrap → register instance → realtime token → websocket →
//! acquire runtime session → prompt → deltas over the websocket in order → transcript.
//!
//! Sign-in is the desktop's own: authorization code with PKCE (S256) on `chatons-desktop`, the
//! login form filled by a cookie-keeping HTTP client, the code exchanged at `/oidc/token`.

use std::time::Duration;

use cloud_testkit::db::TestDb;
use cloud_testkit::process::ServiceProcess;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{BIN, FakeProvider, eventually};

const WAIT: Duration = Duration::from_secs(20);

async fn json_of(resp: reqwest::Response, what: &str) -> Value {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{what}: {status} {body}");
    body
}

const PASSWORD: &str = "correct horse battery staple";
const DESKTOP_REDIRECT: &str = "chatons://cloud/auth/callback";

/// The desktop's sign-in: `GET /oidc/authorize` with a fresh S256 challenge, the login form
/// posted with its CSRF token, the `chatons://` redirect's code exchanged with the verifier.
async fn desktop_login(api: &str, email: &str) -> String {
    let (verifier, challenge) = cloud_testkit::oidc::pkce_pair();
    let authorize =
        cloud_testkit::oidc::desktop_authorize_url(api, DESKTOP_REDIRECT, &challenge, "e2e-state");
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = browser.get(&authorize).send().await.unwrap();
    assert_eq!(page.status(), 200, "login page");
    let html = page.text().await.unwrap();
    let mut form: Vec<(String, String)> = cloud_testkit::oidc::query_of(&authorize)
        .into_iter()
        .collect();
    form.extend([
        (
            "csrf_token".to_owned(),
            cloud_testkit::oidc::csrf_from(&html),
        ),
        ("email".to_owned(), email.to_owned()),
        ("password".to_owned(), PASSWORD.to_owned()),
        ("action".to_owned(), "login".to_owned()),
    ]);
    let resp = browser
        .post(format!("{api}/oidc/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "login form");
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(DESKTOP_REDIRECT), "{location}");
    let query = cloud_testkit::oidc::query_of(&location);
    assert_eq!(query["state"], "e2e-state");
    let tokens = json_of(
        reqwest::Client::new()
            .post(format!("{api}/oidc/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("client_id", "chatons-desktop"),
                ("code", query["code"].as_str()),
                ("code_verifier", verifier.as_str()),
                ("redirect_uri", DESKTOP_REDIRECT),
            ])
            .send()
            .await
            .unwrap(),
        "token exchange",
    )
    .await;
    assert!(tokens["id_token"].is_string(), "{tokens}");
    tokens["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn desktop_sequence_streams_a_turn_over_the_websocket() {
    let db = TestDb::new().await;
    let token = cloud_testkit::random_token();
    let provider = FakeProvider::start().await;
    let data_dir = std::env::temp_dir().join(format!("e2e-{}", uuid::Uuid::new_v4().simple()));
    let api = ServiceProcess::spawn(
        &cloud_testkit::workspace_binary("cloud-api"),
        &[
            ("DATABASE_URL", db.url.clone()),
            ("CHATONS_INTERNAL_SERVICE_TOKEN", token.clone()),
            ("CHATONS_DATA_DIR", data_dir.to_string_lossy().into_owned()),
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
    let runtime = ServiceProcess::spawn(
        BIN,
        &[
            ("DATABASE_URL", db.url.clone()),
            ("CHATONS_RUNTIME_DB_POOL_SIZE", "4".to_owned()),
            (
                "CHATONS_RUNTIME_PROVIDER_ALLOW_PRIVATE_NETWORKS",
                "true".to_owned(),
            ),
            ("CHATONS_INTERNAL_SERVICE_TOKEN", token.clone()),
            ("CHATONS_CLOUD_API_URL", api.url()),
            (
                "CHATONS_REALTIME_PUBLISH_URL",
                format!("{}/v1/realtime/events", realtime.url()),
            ),
        ],
    )
    .await;
    let http = reqwest::Client::new();

    // Sign up in the portal, then sign the desktop in.
    let email = format!("e2e-{}@example.test", uuid::Uuid::new_v4().simple());
    json_of(
        http.post(format!("{}/v1/web/signup", api.url()))
            .json(&json!({"email": email, "displayName": "E2E", "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
        "signup",
    )
    .await;
    let access = desktop_login(&api.url(), &email).await;

    // Bootstrap: the default project; the organization gets an OpenAI-compatible provider.
    let boot = json_of(
        http.get(format!("{}/v1/bootstrap", api.url()))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap(),
        "bootstrap",
    )
    .await;
    let project_id = boot["projects"][0]["id"]
        .as_str()
        .expect("a project")
        .to_owned();
    json_of(
        http.post(format!("{}/v1/organization/providers", api.url()))
            .bearer_auth(&access)
            .json(&json!({
                "kind": "openai", "label": "Fake", "secret": "sk-e2e-secret",
                "baseUrl": provider.base, "models": [{"id": "chunks=6,delay=30", "label": "Fake"}],
                "defaultModel": "chunks=6,delay=30"
            }))
            .send()
            .await
            .unwrap(),
        "provider",
    )
    .await;
    let conversation = json_of(
        http.post(format!("{}/v1/conversations", api.url()))
            .bearer_auth(&access)
            .json(&json!({"projectId": project_id, "title": "New - e2e"}))
            .send()
            .await
            .unwrap(),
        "conversation",
    )
    .await;
    let conversation_id = conversation["conversation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Register the desktop's own instance id.
    let instance = uuid::Uuid::new_v4().to_string();
    json_of(
        http.post(format!("{}/v1/cloud-instances", api.url()))
            .bearer_auth(&access)
            .json(&json!({"id": instance, "name": "Laptop"}))
            .send()
            .await
            .unwrap(),
        "register instance",
    )
    .await;

    // Realtime token and websocket.
    let minted = json_of(
        http.get(format!(
            "{}/v1/realtime/token?cloudInstanceId={instance}",
            realtime.url()
        ))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap(),
        "realtime token",
    )
    .await;
    let ws_token = minted["token"].as_str().unwrap();
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws?token={ws_token}", realtime.addr))
            .await
            .expect("websocket handshake");
    let mut next_json = async || -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, ws.next())
                .await
                .expect("a websocket frame in time")
                .expect("open websocket")
                .expect("frame");
            if let Message::Text(t) = msg {
                return serde_json::from_str(t.as_str()).expect("JSON frame");
            }
        }
    };
    let hello = next_json().await;
    assert_eq!(hello["type"], "hello", "{hello}");

    // Acquire the runtime session and prompt.
    let acquired = json_of(
        http.post(format!("{}/v1/runtime/sessions", runtime.url()))
            .bearer_auth(&access)
            .json(&json!({
                "conversationId": conversation_id, "projectId": project_id,
                "cloudInstanceId": instance, "modelProvider": null, "modelId": null,
                "thinkingLevel": null
            }))
            .send()
            .await
            .unwrap(),
        "acquire",
    )
    .await;
    let session_id = acquired["id"].as_str().unwrap().to_owned();
    assert_eq!(acquired["status"], "ready");
    let reply = json_of(
        http.post(format!(
            "{}/v1/runtime/sessions/{session_id}/commands",
            runtime.url()
        ))
        .bearer_auth(&access)
        .json(&json!({"id": "desktop-1", "type": "prompt", "message": "Hello cloud"}))
        .send()
        .await
        .unwrap(),
        "prompt",
    )
    .await;
    assert_eq!(reply["id"], "desktop-1");
    assert_eq!(reply["success"], true);

    // Deltas arrive over the websocket, in order, with increasing sequence numbers.
    let mut deltas = String::new();
    let mut last_seq = 0u64;
    loop {
        let frame = next_json().await;
        if frame["type"] != "conversation.event" {
            continue;
        }
        assert_eq!(frame["conversationId"], conversation_id.as_str());
        let seq = frame["seq"].as_u64().expect("seq");
        assert!(seq > last_seq, "sequence goes up: {seq} after {last_seq}");
        last_seq = seq;
        let event = &frame["payload"]["event"];
        if event["type"] == "message_update"
            && event["assistantMessageEvent"]["type"] == "text_delta"
        {
            deltas.push_str(event["assistantMessageEvent"]["delta"].as_str().unwrap());
        }
        if event["type"] == "agent_end" {
            assert_eq!(event["outcome"], "succeeded", "{event}");
            break;
        }
    }
    assert_eq!(deltas, "tok0 tok1 tok2 tok3 tok4 tok5 ");

    // The transcript in cloud-api holds the turn.
    let messages = eventually(WAIT, "the turn in the cloud transcript", || {
        let (http, api, access, conversation_id) = (
            http.clone(),
            api.url(),
            access.clone(),
            conversation_id.clone(),
        );
        async move {
            let body: Value = http
                .get(format!("{api}/v1/conversations/{conversation_id}/messages"))
                .bearer_auth(&access)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let list = body["messages"].as_array()?.clone();
            (list.len() == 2).then_some(list)
        }
    })
    .await;
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(messages[0]["content"], "Hello cloud");
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["content"], "tok0 tok1 tok2 tok3 tok4 tok5 ");
    let _ = std::fs::remove_dir_all(&data_dir);
}
