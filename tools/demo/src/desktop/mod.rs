//! The shipped desktop's sequence, step by step (reference §C and desktop-contract.md § Cloud
//! calls): sign up in the portal, PKCE sign-in through the real authorize page, bootstrap, the
//! organization's provider, a conversation, realtime token and websocket, runtime session, one
//! prompt, the streamed turn, the saved transcript, stop. Each step prints its timing; the
//! first failure names its step.

mod http;
pub mod login;
mod provider;
pub mod stream;

use std::future::Future;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::json;
use tokio::time::Instant;

use crate::cli::RunOptions;
use crate::report::{Report, clip};
use http::{field, ok};

/// The step that failed and why.
#[derive(Debug)]
pub struct Failure {
    pub step: &'static str,
    pub error: anyhow::Error,
}

/// Runs `fut` as step `name`: prints `ok` with its detail and duration, or the failure.
pub(crate) async fn step<T>(
    report: &mut Report,
    name: &'static str,
    fut: impl Future<Output = anyhow::Result<(T, String)>>,
) -> Result<T, Failure> {
    let t = Instant::now();
    match fut.await {
        Ok((value, detail)) => {
            report.ok(name, &detail, t.elapsed());
            Ok(value)
        }
        Err(error) => {
            report.fail(name, &format!("{error:#}"));
            Err(Failure { step: name, error })
        }
    }
}

/// The desktop's way to find a sibling service without endpoints: port 4000/80/443 → `port`.
fn sibling(api: &str, port: u16) -> String {
    let Ok(mut url) = url::Url::parse(api) else {
        return api.to_owned();
    };
    if matches!(url.port_or_known_default(), Some(4000 | 80 | 443)) {
        let _ = url.set_port(Some(port));
    }
    url.as_str().trim_end_matches('/').to_owned()
}

/// `ws://host:4001/ws` → `http://host:4001` (the desktop replaces the path with absolute ones).
fn realtime_http_base(ws: &str) -> Option<String> {
    let mut url = url::Url::parse(ws).ok()?;
    let scheme = match url.scheme() {
        "ws" => "http",
        "wss" => "https",
        other => other,
    }
    .to_owned();
    url.set_scheme(&scheme).ok()?;
    url.set_path("");
    url.set_query(None);
    Some(url.as_str().trim_end_matches('/').to_owned())
}

/// What the summary line reports.
pub struct Outcome {
    pub email: String,
    pub turn: stream::Turn,
    pub stand_in: bool,
    pub registered_instance: bool,
}

/// Plays the sequence; `Err` names the failed step.
pub async fn play(opts: &RunOptions, report: &mut Report) -> Result<Outcome, Failure> {
    let api = opts.api.clone();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Failure {
            step: "setup",
            error: e.into(),
        })?;
    report.title(&format!(
        "Chatons demo: the desktop's sequence against {api}"
    ));

    let provider = provider::choose(opts, report).await?;

    // The desktop reads discovery for authorization_endpoint.
    let authorize_endpoint = step(report, "discovery", async {
        let body = ok(client.get(format!("{api}/.well-known/openid-configuration"))).await?;
        let ep = field(&body, &["authorization_endpoint"])?.to_owned();
        let detail = format!("authorization_endpoint {ep}");
        Ok((ep, detail))
    })
    .await?;

    // An account, as a person would create it in the portal.
    let email = format!(
        "demo-{}@example.test",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let password = login::pkce_pair().0;
    step(report, "signup", async {
        let body = ok(client
            .post(format!("{api}/v1/web/signup"))
            .json(&json!({"email": email, "displayName": "Chatons demo", "password": password})))
        .await?;
        let id = field(&body, &["user", "id"])?;
        Ok(((), format!("{email} ({id}) via POST /v1/web/signup")))
    })
    .await?;

    let access = login::sign_in(
        report,
        &client,
        &api,
        &authorize_endpoint,
        &email,
        &password,
    )
    .await?;
    let bearer = format!("Bearer {access}");

    let (project_id, project_name, endpoints) = step(report, "bootstrap", async {
        let boot = ok(client
            .get(format!("{api}/v1/bootstrap"))
            .header("authorization", &bearer))
        .await?;
        let project = &boot["projects"][0];
        let id = field(project, &["id"])
            .context("bootstrap lists no project")?
            .to_owned();
        let name = project["name"].as_str().unwrap_or("Project").to_owned();
        let endpoints = boot["cloudInstances"][0]["endpoints"].clone();
        let detail = format!(
            "user {}, project {name:?} ({id}), {} cloud instance(s)",
            boot["user"]["email"].as_str().unwrap_or("?"),
            boot["cloudInstances"].as_array().map_or(0, Vec::len)
        );
        Ok(((id, name, endpoints), detail))
    })
    .await?;

    // Where realtime and runtime are: the flags, else bootstrap's first instance's endpoints
    // (as the desktop), else the desktop's port rule.
    let realtime = opts
        .realtime
        .clone()
        .or_else(|| {
            endpoints["realtimeBaseUrl"]
                .as_str()
                .and_then(realtime_http_base)
        })
        .unwrap_or_else(|| sibling(&api, 4001));
    let runtime = opts
        .runtime
        .clone()
        .or_else(|| {
            endpoints["runtimeBaseUrl"]
                .as_str()
                .map(|s| s.trim_end_matches('/').to_owned())
        })
        .unwrap_or_else(|| sibling(&api, 4002));
    report.info(&format!("realtime {realtime}   runtime {runtime}"));

    step(report, "provider", async {
        let body = ok(client
            .post(format!("{api}/v1/organization/providers"))
            .header("authorization", &bearer)
            .json(&json!({
                "kind": provider.kind, "label": "Chatons demo", "secret": provider.secret,
                "baseUrl": provider.base_url,
                "models": [{"id": provider.model, "label": provider.model}],
                "defaultModel": provider.model,
            })))
        .await?;
        let id = field(&body, &["provider", "id"])?;
        Ok((
            (),
            format!(
                "{} provider {id} at {}, default model {} (POST /v1/organization/providers)",
                provider.kind, provider.base_url, provider.model
            ),
        ))
    })
    .await?;

    step(report, "full tools", async {
        let body = ok(client
            .patch(format!("{api}/v1/projects/{project_id}"))
            .header("authorization", &bearer)
            .json(&json!({"workspaceCapability": "full_tools"})))
        .await?;
        let got = body["project"]["workspaceCapability"]
            .as_str()
            .or(body["workspaceCapability"].as_str())
            .unwrap_or("?");
        if got != "full_tools" {
            bail!("the project answered workspaceCapability {got:?}");
        }
        Ok((
            (),
            format!(
                "project {project_id}: workspaceCapability full_tools (PATCH /v1/projects/{{id}})"
            ),
        ))
    })
    .await?;

    let conversation_id = step(report, "conversation", async {
        let body = ok(client
            .post(format!("{api}/v1/conversations"))
            .header("authorization", &bearer)
            .json(
                &json!({"projectId": project_id, "title": format!("New - {project_name}"),
                "modelProvider": null, "modelId": null}),
            ))
        .await?;
        let id = field(&body, &["conversation", "id"])?.to_owned();
        // The desktop bootstraps again after creating one.
        let boot = ok(client
            .get(format!("{api}/v1/bootstrap"))
            .header("authorization", &bearer))
        .await?;
        let listed = boot["conversations"]
            .as_array()
            .is_some_and(|l| l.iter().any(|c| c["id"] == id.as_str()));
        if !listed {
            bail!("the new conversation {id} is not in the next bootstrap");
        }
        let detail = format!("{id} \"New - {project_name}\", listed by the next bootstrap");
        Ok((id, detail))
    })
    .await?;

    // The desktop's instance id is a UUID it generated; it never registers it.
    let instance = uuid::Uuid::new_v4().to_string();
    let token_url = format!("{realtime}/v1/realtime/token?cloudInstanceId={instance}");
    let t = Instant::now();
    let first = async {
        let (status, body) =
            http::send(client.get(&token_url).header("authorization", &bearer)).await?;
        if status == 403 {
            return Ok(None);
        }
        if !status.is_success() {
            bail!("{}", http::describe(status, &body));
        }
        Ok(Some(body))
    }
    .await;
    let first = match first {
        Ok(f) => f,
        Err(error) => {
            report.fail("realtime token", &format!("{error:#}"));
            return Err(Failure {
                step: "realtime token",
                error,
            });
        }
    };
    let registered_instance = first.is_none();
    let minted = match first {
        Some(body) => {
            let detail = format!("for the local instance id {instance} (never registered)");
            report.ok("realtime token", &detail, t.elapsed());
            body
        }
        None => {
            report.warn(
                "realtime token",
                "HTTP 403: cloud-api does not know the desktop's locally generated instance id. \
                 The shipped desktop never registers it; the demo does (POST /v1/cloud-instances) \
                 so the turn can run. Once first-use claiming lands this goes away.",
            );
            step(report, "register instance", async {
                ok(client
                    .post(format!("{api}/v1/cloud-instances"))
                    .header("authorization", &bearer)
                    .json(&json!({"id": instance, "name": "Chatons demo"})))
                .await?;
                Ok(((), format!("POST /v1/cloud-instances {{id: {instance}}}")))
            })
            .await?;
            step(report, "realtime token", async {
                let body = ok(client.get(&token_url).header("authorization", &bearer)).await?;
                Ok((body, format!("for the registered instance id {instance}")))
            })
            .await?
        }
    };

    let mut socket = step(report, "websocket", async {
        let ws_url = field(&minted, &["websocketUrl"])?;
        let token = field(&minted, &["token"])?;
        let sep = if ws_url.contains('?') { '&' } else { '?' };
        let url = format!("{ws_url}{sep}token={}", encode(token));
        let mut socket = stream::Socket::connect(&url).await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let hello = socket.next(deadline).await?;
        if hello["type"] != "hello" {
            bail!("the first frame is not hello: {}", http::clip_json(&hello));
        }
        let status = socket.next(deadline).await?;
        let detail = format!(
            "{ws_url}: hello (epoch {}, sequence {}), then {:?}",
            hello["epoch"].as_str().unwrap_or("?"),
            hello["sequence"],
            status["payload"]["message"].as_str().unwrap_or("?")
        );
        Ok((socket, detail))
    })
    .await?;

    step(report, "replay", async {
        let body = ok(client
            .get(format!(
                "{realtime}/v1/realtime/replay?cloudInstanceId={instance}&afterSeq=0"
            ))
            .header("authorization", &bearer))
        .await?;
        Ok((
            (),
            format!(
                "lastSeq {}, {} buffered event(s)",
                body["lastSeq"],
                body["events"].as_array().map_or(0, Vec::len)
            ),
        ))
    })
    .await?;

    let session_id = step(report, "runtime session", async {
        let (status, body) = http::send(
            client
                .post(format!("{runtime}/v1/runtime/sessions"))
                .header("authorization", &bearer)
                .json(
                    &json!({"conversationId": conversation_id, "projectId": project_id,
                    "cloudInstanceId": instance, "modelProvider": null, "modelId": null,
                    "thinkingLevel": null}),
                ),
        )
        .await?;
        if !status.is_success() {
            bail!("{}", http::describe(status, &body));
        }
        let id = field(&body, &["id"])?.to_owned();
        let detail = format!(
            "{id} (HTTP {}, status {})",
            status.as_u16(),
            body["status"].as_str().unwrap_or("?")
        );
        Ok((id, detail))
    })
    .await?;

    let command_id = format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let accepted = step(report, "prompt", async {
        let body = ok(client
            .post(format!(
                "{runtime}/v1/runtime/sessions/{session_id}/commands"
            ))
            .header("authorization", &bearer)
            .json(&json!({"id": command_id, "type": "prompt", "message": opts.prompt})))
        .await?;
        if body["success"] != true {
            bail!(
                "the runtime refused the prompt: {}",
                body["error"].as_str().unwrap_or("no error text")
            );
        }
        if body["id"] != command_id.as_str() {
            bail!(
                "the response does not echo the command id: {}",
                http::clip_json(&body)
            );
        }
        Ok((
            Instant::now(),
            format!("{:?} accepted", clip(&opts.prompt, 60)),
        ))
    })
    .await?;

    // The turn, as the desktop's renderer receives it.
    let t = Instant::now();
    let turn = stream::watch_turn(
        &mut socket,
        &conversation_id,
        report,
        accepted,
        opts.timeout,
    )
    .await
    .and_then(|turn| stream::judge(turn, opts.provider.is_none()));
    let turn = match turn {
        Ok((turn, detail)) => {
            report.ok("turn", &detail, t.elapsed());
            turn
        }
        Err(error) => {
            report.fail("turn", &format!("{error:#}"));
            return Err(Failure {
                step: "turn",
                error,
            });
        }
    };

    step(report, "transcript", async {
        // runtime-headless writes the transcript after the turn; give it a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let body = ok(client
                .get(format!("{api}/v1/conversations/{conversation_id}/messages"))
                .header("authorization", &bearer))
            .await?;
            let list = body["messages"].as_array().cloned().unwrap_or_default();
            if list.iter().any(|m| m["role"] == "assistant") {
                let roles: Vec<&str> = list.iter().filter_map(|m| m["role"].as_str()).collect();
                return Ok((
                    (),
                    format!(
                        "{} message(s) saved in cloud-api ({})",
                        list.len(),
                        roles.join(", ")
                    ),
                ));
            }
            if Instant::now() > deadline {
                bail!("no assistant message in the transcript after 10 s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await?;

    step(report, "stop session", async {
        let (status, body) = http::send(
            client
                .delete(format!("{runtime}/v1/runtime/sessions/{session_id}"))
                .header("authorization", &bearer),
        )
        .await?;
        // The desktop tolerates 404 here.
        if !status.is_success() && status != 404 {
            bail!("{}", http::describe(status, &body));
        }
        Ok((
            (),
            format!(
                "DELETE /v1/runtime/sessions/{session_id}: HTTP {}",
                status.as_u16()
            ),
        ))
    })
    .await?;

    Ok(Outcome {
        email,
        turn,
        stand_in: opts.provider.is_none(),
        registered_instance,
    })
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_siblings_as_the_desktop() {
        assert_eq!(
            sibling("http://127.0.0.1:4000", 4001),
            "http://127.0.0.1:4001"
        );
        assert_eq!(
            sibling("https://cloud.example.test", 4002),
            "https://cloud.example.test:4002"
        );
        assert_eq!(
            sibling("http://127.0.0.1:14000", 4001),
            "http://127.0.0.1:14000"
        );
        assert_eq!(
            realtime_http_base("ws://127.0.0.1:4001/ws").as_deref(),
            Some("http://127.0.0.1:4001")
        );
        assert_eq!(
            realtime_http_base("wss://rt.example.test/ws?x=1").as_deref(),
            Some("https://rt.example.test")
        );
    }
}
