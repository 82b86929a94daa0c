//! The first system's desktop helpers (`/desktop/auth`, `/v1/auth/desktop/exchange`).

use super::*;

// Desktop helpers ------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct DesktopAuthParams {
    state: Option<String>,
    redirect_uri: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    nonce: Option<String>,
    base_url: Option<String>,
    prompt: Option<String>,
}

/// Legacy entry point: forwards to the authorization endpoint for the desktop client. The
/// desktop must send its own PKCE challenge (the first system derived it from `state`, which made
/// PKCE useless).
pub async fn desktop_auth(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<DesktopAuthParams>,
) -> Response {
    if p.code_challenge.as_deref().unwrap_or("").is_empty() {
        return message_page(
            &state,
            StatusCode::BAD_REQUEST,
            "Update Chatons",
            "This sign-in link needs a PKCE code_challenge (S256). Update the desktop app and try again.".into(),
        );
    }
    let mut pairs = vec![
        ("response_type", "code".to_owned()),
        ("client_id", state.config.client_id.clone()),
        (
            "redirect_uri",
            p.redirect_uri
                .unwrap_or_else(|| DESKTOP_CALLBACK.to_owned()),
        ),
        ("scope", "openid profile email offline_access".to_owned()),
        ("code_challenge", p.code_challenge.unwrap_or_default()),
        (
            "code_challenge_method",
            p.code_challenge_method.unwrap_or_else(|| "S256".to_owned()),
        ),
    ];
    for (k, v) in [
        ("state", p.state),
        ("nonce", p.nonce),
        ("base_url", p.base_url),
        ("prompt", p.prompt),
    ] {
        if let Some(v) = v {
            pairs.push((k, v));
        }
    }
    web::redirect(
        &with_query(&state.oidc.endpoint("/oidc/authorize"), &pairs),
        false,
        Vec::new(),
    )
}

/// Legacy JSON exchange `{code, clientId, redirectUri, codeVerifier}`: the same checks as the
/// token endpoint's code grant, including the client.
pub async fn desktop_exchange(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut headers = headers;
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    match token_inner(&state, &ip, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}
