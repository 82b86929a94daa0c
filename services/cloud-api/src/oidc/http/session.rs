//! Userinfo, revocation (RFC 7009) and end-session.

use super::*;

// Userinfo, revocation, logout -----------------------------------------------------------------

#[tracing::instrument(skip_all)]
pub async fn userinfo(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let token = bearer(&headers)
        .ok_or_else(|| oauth_bearer_error("invalid_request", "bearer token required"))?;
    let (session, user) = sessions::authenticate(state.store.as_ref(), token)
        .await?
        .filter(|(s, _)| s.client_id != PORTAL_CLIENT)
        .ok_or_else(|| {
            oauth_bearer_error("invalid_token", "the access token is invalid or expired")
        })?;
    let _ = session;
    Ok(Json(json!({
        "sub": user.id.as_str(),
        "email": user.email,
        "email_verified": user.email_verified_at.is_some(),
        "name": user.display_name,
        "preferred_username": user.email.split('@').next().unwrap_or(&user.email),
    })))
}

pub(super) fn oauth_bearer_error(error: &'static str, description: &str) -> ApiError {
    let mut e = ApiError::new(StatusCode::UNAUTHORIZED, error, description.to_owned())
        .with_field("error_description", description);
    e.www_authenticate = Some("Bearer");
    e
}

#[derive(Debug, Default, Deserialize)]
pub struct RevokeRequest {
    token: Option<String>,
    #[allow(dead_code)]
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// RFC 7009: revokes an access token (its session) or a refresh token (its whole family).
/// Unknown tokens are answered 200 like known ones, so the endpoint reveals nothing.
#[tracing::instrument(skip_all)]
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiForm(req): ApiForm<RevokeRequest>,
) -> Result<Response, ApiError> {
    let as_token_req = TokenRequest {
        client_id: req.client_id.clone(),
        client_secret: req.client_secret.clone(),
        ..TokenRequest::default()
    };
    let client = authenticate_client(&state, &headers, &as_token_req)?;
    let Some(token) = req.token.as_deref().filter(|t| !t.is_empty()) else {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is required",
        ));
    };
    let hash = token_hash(token);
    let now = now();
    if let Some(session) = state.store.session_by_access_hash(&hash, now).await? {
        if session.client_id == client.id {
            state.store.revoke_session(&session.id, now).await?;
        }
    } else if let Some(session) = state.store.session_by_refresh_hash(&hash).await? {
        if session.client_id == client.id {
            sessions::revoke_family(state.store.as_ref(), &session.family_id).await?;
        }
    }
    Ok(StatusCode::OK.into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct LogoutParams {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    client_id: Option<String>,
    state: Option<String>,
}

/// RP-initiated logout: ends the browser's portal session; redirects only to a registered
/// post-logout URI of the named client.
#[tracing::instrument(skip_all)]
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(p): ApiQuery<LogoutParams>,
) -> Response {
    if let Ok(Some((session, _))) = portal_session(&state, &headers).await {
        let _ = sessions::revoke_family(state.store.as_ref(), &session.family_id).await;
    }
    let clear = web::clear_cookie(web::SESSION_COOKIE, https(&state));
    let client_id = p
        .client_id
        .clone()
        .or_else(|| p.id_token_hint.as_deref().and_then(audience_of));
    if let Some(uri) = p.post_logout_redirect_uri.as_deref() {
        let allowed = client_id
            .as_deref()
            .and_then(|id| state.oidc.client(id))
            .is_some_and(|c| c.accepts_post_logout_redirect(uri));
        if !allowed {
            let mut r = message_page(
                &state,
                StatusCode::BAD_REQUEST,
                "Invalid redirect",
                "You are signed out, but the post_logout_redirect_uri is not registered.".into(),
            );
            r.headers_mut().append(header::SET_COOKIE, clear);
            return r;
        }
        let mut pairs = Vec::new();
        if let Some(s) = p.state {
            pairs.push(("state", s));
        }
        return web::redirect(&with_query(uri, &pairs), false, vec![clear]);
    }
    let mut r = message_page(
        &state,
        StatusCode::OK,
        "Signed out",
        "You are signed out of Chatons Cloud.".into(),
    );
    r.headers_mut().append(header::SET_COOKIE, clear);
    r
}

/// The `aud` of an id_token hint (not verified: it only selects which client's registered
/// post-logout URIs apply, never grants anything).
pub(super) fn audience_of(id_token: &str) -> Option<String> {
    let payload = id_token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    match &claims["aud"] {
        Value::String(s) => Some(s.clone()),
        Value::Array(a) => a.first().and_then(|v| v.as_str()).map(str::to_owned),
        _ => None,
    }
}
