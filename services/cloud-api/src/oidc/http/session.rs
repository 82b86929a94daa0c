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
    let (_, user) = tokens::authenticate(&state, token)
        .await?
        .filter(|(s, _)| s.client_id != PORTAL_CLIENT)
        .ok_or_else(|| {
            oauth_bearer_error("invalid_token", "the access token is invalid or expired")
        })?;
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
    tokens::revoke(&state, &client.id, token).await?;
    Ok(StatusCode::OK.into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct LogoutParams {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    client_id: Option<String>,
    state: Option<String>,
    /// Only in the confirmation form's POST.
    csrf_token: Option<String>,
}

#[derive(Template)]
#[template(path = "oidc/logout.html")]
struct LogoutPage {
    name: String,
    email: String,
    csrf_token: String,
    hidden: Vec<(String, String)>,
}

/// The page refusing a logout's redirect target.
fn invalid_redirect(state: &AppState, message: &str) -> Response {
    message_page(
        state,
        StatusCode::BAD_REQUEST,
        "Invalid redirect",
        message.into(),
    )
}

/// Where a logout may send the browser: `Ok(None)` to the "signed out" page, or a
/// post-logout URI registered for the client named by the hint or `client_id`.
fn logout_target(
    state: &AppState,
    p: &LogoutParams,
    hint: Option<&Value>,
) -> Result<(Option<String>, Option<String>), &'static str> {
    let from_hint = hint.and_then(|c| match &c["aud"] {
        Value::String(s) => Some(s.clone()),
        Value::Array(a) => a.first().and_then(|v| v.as_str()).map(str::to_owned),
        _ => None,
    });
    let client_id = match (from_hint, p.client_id.clone()) {
        (Some(h), Some(c)) if h != c => return Err("client_id does not match the id_token_hint."),
        (h, c) => h.or(c),
    };
    let Some(uri) = p.post_logout_redirect_uri.clone() else {
        return Ok((client_id, None));
    };
    let allowed = client_id
        .as_deref()
        .and_then(|id| state.oidc.client(id))
        .is_some_and(|c| c.accepts_post_logout_redirect(&uri));
    if allowed {
        Ok((client_id, Some(uri)))
    } else {
        Err("The post_logout_redirect_uri is not registered for this application.")
    }
}

/// RP-initiated logout (OIDC RP-Initiated Logout 1.0). An `id_token_hint` must be a token this
/// issuer signed (an unsigned or foreign one is refused, nothing changes). A GET ends the
/// browser's portal session at once only when the hint names that session's user; otherwise
/// (a bare link any site can embed) the user confirms with a CSRF-checked POST. Redirects only
/// to a post-logout URI registered for the named client.
#[tracing::instrument(skip_all)]
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(p): ApiQuery<LogoutParams>,
) -> Response {
    let session = portal_session(&state, &headers).await.ok().flatten();
    let hint = match p.id_token_hint.as_deref().filter(|h| !h.is_empty()) {
        None => None,
        Some(raw) => match state.oidc.verified_id_token(raw) {
            Some(claims) => Some(claims),
            None => {
                return message_page(
                    &state,
                    StatusCode::BAD_REQUEST,
                    "Invalid request",
                    "The id_token_hint was not issued by Chatons Cloud. You are still signed in."
                        .into(),
                );
            }
        },
    };
    let (client_id, target) = match logout_target(&state, &p, hint.as_ref()) {
        Ok(t) => t,
        Err(message) => return invalid_redirect(&state, message),
    };
    let Some((session, user)) = session else {
        return end_session(&state, None, target, p.state).await;
    };
    if hint.is_some_and(|c| c["sub"] == user.id.as_str()) {
        return end_session(&state, Some(session), target, p.state).await;
    }
    let (csrf, set_cookie) = web::csrf_token(&headers, https(&state));
    let hidden = [
        ("client_id", client_id),
        ("post_logout_redirect_uri", target),
        ("state", p.state),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
    .collect();
    let page = LogoutPage {
        name: user.display_name.clone(),
        email: user.email.clone(),
        csrf_token: csrf,
        hidden,
    };
    let mut r = web::html(StatusCode::OK, render(&page), &[], https(&state));
    if let Some(c) = set_cookie {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

/// The confirmation form of [`logout`].
#[tracing::instrument(skip_all)]
pub async fn logout_confirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiForm(p): ApiForm<LogoutParams>,
) -> Response {
    if !web::csrf_ok(&headers, p.csrf_token.as_deref()) {
        return form_expired(&state, "You are still signed in.");
    }
    let target = match logout_target(&state, &p, None) {
        Ok((_, target)) => target,
        Err(message) => return invalid_redirect(&state, message),
    };
    let session = portal_session(&state, &headers).await.ok().flatten();
    end_session(&state, session.map(|(s, _)| s), target, p.state).await
}

/// Clears the cookie and shows the "signed out" page, or redirects to `target` with `state`.
fn end_session_response(state: &AppState, target: Option<String>, st: Option<String>) -> Response {
    let clear = web::clear_cookie(web::SESSION_COOKIE, https(state));
    if let Some(uri) = target {
        let pairs: Vec<(&str, String)> = st.map(|s| ("state", s)).into_iter().collect();
        return web::redirect(&with_query(&uri, &pairs), false, vec![clear]);
    }
    let mut r = message_page(
        state,
        StatusCode::OK,
        "Signed out",
        "You are signed out of Chatons Cloud.".into(),
    );
    r.headers_mut().append(header::SET_COOKIE, clear);
    r
}

async fn end_session(
    state: &AppState,
    session: Option<Session>,
    target: Option<String>,
    st: Option<String>,
) -> Response {
    if let Some(session) = session {
        // A failure is logged; the cookie is cleared anyway.
        if let Err(e) = accounts::sign_out(state, &session.family_id).await {
            tracing::warn!(error = %e, "Could not revoke the portal session at logout.");
        }
    }
    end_session_response(state, target, st)
}
