//! The shipped desktop, call for call (desktop-contract.md § Cloud calls, reference part C):
//! it never registers its instance, sends the UUID it generated locally as `cloudInstanceId`,
//! exchanges the code with a JSON body, reads bootstrap without paginating, mints a realtime
//! token, opens the websocket, replays over HTTP with `afterSeq`, acquires a runtime session,
//! prompts, and refreshes twice at once with one refresh token. cloud-realtime and
//! runtime-headless run as the real binaries; the LLM is a fake OpenAI-compatible server.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use axum::routing::post;
use cloud_testkit::db::TestDb;
use cloud_testkit::process::ServiceProcess;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::spawn_on;

const WAIT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "correct horse battery staple";
const CALLBACK: &str = "chatons://cloud/auth/callback";
const REPLY: [&str; 4] = ["Hello ", "from ", "the ", "cloud"];

/// A fake OpenAI-compatible chat-completions server: every request streams `REPLY` as SSE.
async fn fake_provider() -> String {
    async fn completions() -> Response {
        let mut body = String::new();
        for (i, part) in REPLY.iter().enumerate() {
            let delta = if i == 0 {
                json!({"role": "assistant", "content": part})
            } else {
                json!({"content": part})
            };
            let chunk = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "finish_reason": null}]});
            body.push_str(&format!("data: {chunk}\n\n"));
        }
        let end = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
        body.push_str(&format!("data: {end}\n\ndata: [DONE]\n\n"));
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from(body))
            .unwrap()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let app = Router::new().route("/v1/chat/completions", post(completions));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

/// Sends `req`; its JSON answer, which must be a success.
async fn ok_json(req: reqwest::RequestBuilder, what: &str) -> Value {
    ok_answer(req.send().await.unwrap(), what).await
}

/// The JSON of `resp`, which must be a success.
async fn ok_answer(resp: reqwest::Response, what: &str) -> Value {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{what}: {status} {body}");
    body
}

/// Signs `email` up (named `name`) through the JSON route, as the portal's account would be.
async fn sign_up(api: &str, email: &str, name: &str) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("{api}/v1/web/signup"))
        .json(&json!({"email": email, "displayName": name, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    ok_answer(resp, &format!("signup of {name}")).await
}

/// The desktop's sign-in: discovery, the browser through `authorization_endpoint` (login form
/// with its CSRF token), the `chatons://` redirect's code exchanged with a JSON body.
async fn desktop_sign_in(api: &str, email: &str) -> Value {
    let http = reqwest::Client::new();
    let discovery = ok_json(
        http.get(format!("{api}/.well-known/openid-configuration")),
        "discovery",
    )
    .await;
    let (verifier, challenge) = cloud_testkit::oidc::pkce_pair();
    let state = uuid::Uuid::new_v4().to_string();
    let authorize = discovery["authorization_endpoint"].as_str().unwrap();
    let mut url = url::Url::parse(authorize).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "chatons-desktop")
        .append_pair("redirect_uri", CALLBACK)
        .append_pair("scope", "openid profile email offline_access")
        .append_pair("state", &state)
        .append_pair("nonce", &uuid::Uuid::new_v4().to_string())
        .append_pair("base_url", api)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = browser.get(url.as_str()).send().await.unwrap();
    assert_eq!(page.status(), 200, "login page");
    let html = page.text().await.unwrap();
    let mut form: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    form.extend([
        ("csrf_token".into(), cloud_testkit::oidc::csrf_from(&html)),
        ("email".into(), email.into()),
        ("password".into(), PASSWORD.into()),
        ("action".into(), "login".into()),
    ]);
    let resp = browser
        .post(format!("{api}/oidc/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert!(
        resp.status().is_redirection(),
        "login form: {}",
        resp.status()
    );
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(CALLBACK), "{location}");
    let query = cloud_testkit::oidc::query_of(&location);
    assert_eq!(query["state"], state);
    ok_json(
        http.post(discovery["token_endpoint"].as_str().unwrap())
            .json(&json!({"grantType": "authorization_code", "clientId": "chatons-desktop",
                          "code": query["code"], "redirectUri": CALLBACK, "codeVerifier": verifier})),
        "JSON token exchange",
    )
    .await
}

/// `endpoints.realtimeBaseUrl` as the desktop turns it into its HTTP base (ws→http, no `/ws`).
fn realtime_http_base(ws_url: &str) -> String {
    let http = ws_url.replacen("ws", "http", 1);
    http.trim_end_matches("/ws").to_owned()
}

#[tokio::test]
async fn the_shipped_desktop_sequence_works_unmodified() {
    let db = TestDb::new().await;
    let token = cloud_testkit::random_token();
    let provider = fake_provider().await;
    // cloud-api's address first, so the other two services can be pointed at it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    // cloud-realtime hands out its public websocket URL, so it needs its port beforehand.
    let realtime_port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let realtime = ServiceProcess::spawn(
        &cloud_testkit::workspace_binary("cloud-realtime"),
        &[
            ("PORT", realtime_port.to_string()),
            (
                "CHATONS_REALTIME_PUBLIC_URL",
                format!("ws://127.0.0.1:{realtime_port}/ws"),
            ),
            ("CHATONS_INTERNAL_SERVICE_TOKEN", token.clone()),
            ("CHATONS_CLOUD_API_URL", api.clone()),
        ],
    )
    .await;
    let runtime = ServiceProcess::spawn(
        &cloud_testkit::workspace_binary("runtime-headless"),
        &[
            ("DATABASE_URL", db.url.clone()),
            ("CHATONS_RUNTIME_DB_POOL_SIZE", "4".into()),
            (
                "CHATONS_RUNTIME_PROVIDER_ALLOW_PRIVATE_NETWORKS",
                "true".into(),
            ),
            ("CHATONS_INTERNAL_SERVICE_TOKEN", token.clone()),
            ("CHATONS_CLOUD_API_URL", api.clone()),
            (
                "CHATONS_REALTIME_PUBLISH_URL",
                format!("{}/v1/realtime/events", realtime.url()),
            ),
        ],
    )
    .await;
    let _app = spawn_on(
        listener,
        vec![
            ("DATABASE_URL".into(), db.url.clone()),
            ("CHATONS_INTERNAL_SERVICE_TOKEN".into(), token.clone()),
            (
                "CHATONS_REALTIME_PUBLIC_URL".into(),
                format!("ws://{}/ws", realtime.addr),
            ),
            ("CHATONS_RUNTIME_PUBLIC_URL".into(), runtime.url()),
        ],
    )
    .await;
    cloud_testkit::wait_for_readiness(&api, 204, "cloud-api").await;
    let http = reqwest::Client::new();

    // The account exists (signed up in the portal); the desktop signs in.
    let email = format!("desk-{}@example.test", uuid::Uuid::new_v4().simple());
    sign_up(&api, &email, "Desk").await;
    let tokens = desktop_sign_in(&api, &email).await;
    assert_eq!(tokens["user"]["email"], email.as_str());
    assert!(tokens["idToken"].is_string(), "{tokens}");
    let access = tokens["session"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let refresh = tokens["session"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(tokens["session"]["expiresAt"].is_string());

    // The organization's provider (configured by its owner) and a conversation.
    let boot = ok_json(
        http.get(format!("{api}/v1/bootstrap")).bearer_auth(&access),
        "bootstrap",
    )
    .await;
    let project_id = boot["projects"][0]["id"].as_str().unwrap().to_owned();
    ok_json(
        http.post(format!("{api}/v1/organization/providers"))
            .bearer_auth(&access)
            .json(
                &json!({"kind": "openai", "label": "Fake", "secret": "sk-desktop-test",
                          "baseUrl": provider, "models": [{"id": "fake-1", "label": "Fake"}],
                          "defaultModel": "fake-1"}),
            ),
        "provider",
    )
    .await;
    let created = ok_json(
        http.post(format!("{api}/v1/conversations"))
            .bearer_auth(&access)
            .json(
                &json!({"projectId": project_id, "title": "New - Cloud Workspace",
                          "modelProvider": "openai", "modelId": "fake-1"}),
            ),
        "conversation",
    )
    .await;
    let conversation_id = created["conversation"]["id"].as_str().unwrap().to_owned();

    // Bootstrap as the desktop reads it: no pagination, the first instance's endpoints.
    let boot = ok_json(
        http.get(format!("{api}/v1/bootstrap")).bearer_auth(&access),
        "bootstrap again",
    )
    .await;
    assert_eq!(boot["user"]["email"], email.as_str());
    assert!(boot.get("nextCursor").is_none());
    assert!(
        boot["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == conversation_id.as_str())
    );
    let endpoints = &boot["cloudInstances"][0]["endpoints"];
    let realtime_base = realtime_http_base(endpoints["realtimeBaseUrl"].as_str().unwrap());
    let runtime_base = endpoints["runtimeBaseUrl"].as_str().unwrap().to_owned();
    assert_eq!(realtime_base, realtime.url());

    // The instance id the desktop generated locally; never registered.
    let instance = uuid::Uuid::new_v4().to_string();
    let minted = ok_json(
        http.get(format!(
            "{realtime_base}/v1/realtime/token?cloudInstanceId={instance}"
        ))
        .bearer_auth(&access),
        "realtime token for an unregistered local instance id",
    )
    .await;
    let ws_url = minted["websocketUrl"].as_str().unwrap();
    let sep = if ws_url.contains('?') { '&' } else { '?' };
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "{ws_url}{sep}token={}",
        minted["token"].as_str().unwrap()
    ))
    .await
    .expect("websocket");
    let mut next_frame = async || -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, ws.next())
                .await
                .expect("a frame in time")
                .expect("open websocket")
                .expect("frame");
            if let Message::Text(t) = msg {
                return serde_json::from_str(t.as_str()).expect("JSON frame");
            }
        }
    };
    let hello = next_frame().await;
    assert_eq!(hello["type"], "hello", "{hello}");
    // On open the desktop replays over HTTP from its last seen seq (0 at first).
    let replay = |after: u64| {
        let (http, base, access, instance) = (
            http.clone(),
            realtime_base.clone(),
            access.clone(),
            instance.clone(),
        );
        async move {
            ok_json(
                http.get(format!(
                    "{base}/v1/realtime/replay?cloudInstanceId={instance}&afterSeq={after}"
                ))
                .bearer_auth(&access),
                "replay",
            )
            .await
        }
    };
    let first_replay = replay(0).await;
    assert!(first_replay["lastSeq"].is_u64(), "{first_replay}");

    // Runtime: acquire with the local instance id, then prompt.
    let acquired = ok_json(
        http.post(format!("{runtime_base}/v1/runtime/sessions"))
            .bearer_auth(&access)
            .json(
                &json!({"conversationId": conversation_id, "projectId": project_id,
                          "cloudInstanceId": instance, "modelProvider": "openai",
                          "modelId": "fake-1", "thinkingLevel": null}),
            ),
        "runtime acquire",
    )
    .await;
    let session_id = acquired["id"].as_str().expect("session id").to_owned();
    let reply = ok_json(
        http.post(format!(
            "{runtime_base}/v1/runtime/sessions/{session_id}/commands"
        ))
        .bearer_auth(&access)
        .json(&json!({"id": "desk-1", "type": "prompt", "message": "Say hello"})),
        "prompt",
    )
    .await;
    assert_eq!(reply["success"], true, "{reply}");

    // The turn streams over the websocket, in order.
    let mut text = String::new();
    let mut seqs = Vec::new();
    loop {
        let frame = next_frame().await;
        if frame["type"] != "conversation.event" {
            continue;
        }
        assert_eq!(frame["conversationId"], conversation_id.as_str());
        seqs.push(frame["seq"].as_u64().expect("seq"));
        let event = &frame["payload"]["event"];
        if event["type"] == "message_update"
            && event["assistantMessageEvent"]["type"] == "text_delta"
        {
            text.push_str(event["assistantMessageEvent"]["delta"].as_str().unwrap());
        }
        if event["type"] == "agent_end" {
            break;
        }
    }
    assert_eq!(text, REPLY.concat());
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");

    // HTTP replay with afterSeq returns what followed that position, nothing before it.
    let after = seqs[0];
    let replayed = replay(after).await;
    let replayed_seqs: Vec<u64> = replayed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert!(!replayed_seqs.is_empty(), "{replayed}");
    assert!(
        replayed_seqs.iter().all(|s| *s > after),
        "{replayed_seqs:?}"
    );
    for s in &seqs[1..] {
        assert!(
            replayed_seqs.contains(s),
            "seq {s} missing from {replayed_seqs:?}"
        );
    }
    assert!(replayed["lastSeq"].as_u64().unwrap() >= *seqs.last().unwrap());

    // Two code paths refresh at once with the one refresh token: both succeed, same pair.
    let refresh_once = || {
        let (http, api, refresh) = (http.clone(), api.clone(), refresh.clone());
        async move {
            http.post(format!("{api}/oidc/token"))
                .json(
                    &json!({"grantType": "refresh_token", "clientId": "chatons-desktop",
                              "redirectUri": CALLBACK, "refreshToken": refresh}),
                )
                .send()
                .await
                .unwrap()
        }
    };
    let (a, b) = tokio::join!(refresh_once(), refresh_once());
    let (a, b) = (
        ok_answer(a, "refresh A").await,
        ok_answer(b, "refresh B").await,
    );
    assert_eq!(a["session"], b["session"]);
    assert_eq!(a["user"]["email"], email.as_str());
    let fresh = a["session"]["accessToken"].as_str().unwrap();
    ok_json(
        http.get(format!(
            "{realtime_base}/v1/realtime/token?cloudInstanceId={instance}"
        ))
        .bearer_auth(fresh),
        "realtime token with the refreshed access token",
    )
    .await;
    ok_json(
        http.get(format!("{api}/v1/bootstrap")).bearer_auth(fresh),
        "bootstrap with the refreshed access token",
    )
    .await;

    // Another user naming that instance id is refused, by realtime and by the runtime.
    let other_email = format!("other-{}@example.test", uuid::Uuid::new_v4().simple());
    let other = sign_up(&api, &other_email, "Other").await;
    let other_access = other["session"]["accessToken"].as_str().unwrap();
    for path in [
        format!("/v1/realtime/token?cloudInstanceId={instance}"),
        format!("/v1/realtime/replay?cloudInstanceId={instance}&afterSeq=0"),
    ] {
        let url = format!("{realtime_base}{path}");
        let denied = http
            .get(url)
            .bearer_auth(other_access)
            .send()
            .await
            .unwrap();
        assert_eq!(denied.status(), 403, "{path}");
    }
    let other_boot = ok_json(
        http.get(format!("{api}/v1/bootstrap"))
            .bearer_auth(other_access),
        "other bootstrap",
    )
    .await;
    let other_project = other_boot["projects"][0]["id"].as_str().unwrap();
    let own = ok_json(
        http.post(format!("{api}/v1/conversations"))
            .bearer_auth(other_access)
            .json(&json!({"projectId": other_project})),
        "other conversation",
    )
    .await;
    // Their own conversation, but the first user's instance id: refused for the instance alone.
    let denied = http
        .post(format!("{runtime_base}/v1/runtime/sessions"))
        .bearer_auth(other_access)
        .json(
            &json!({"conversationId": own["conversation"]["id"], "projectId": other_project,
                      "cloudInstanceId": instance}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
}
