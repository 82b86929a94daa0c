//! The token endpoint: code exchange, refresh and device codes (form-encoded, and the desktop's
//! JSON).

use super::*;

// Token endpoint -------------------------------------------------------------------------------

pub(super) fn invalid_grant(description: &str) -> ApiError {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

/// Identifies and authenticates the client (Basic, form secret, or none for public clients).
pub(super) fn authenticate_client<'a>(
    state: &'a AppState,
    headers: &HeaderMap,
    req: &TokenRequest,
) -> Result<&'a Client, ApiError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .and_then(|b64| STANDARD.decode(b64.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            let (id, secret) = pair.split_once(':')?;
            let decode = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((decode(id)?, decode(secret)?))
        });
    let header_secret = headers
        .get("x-oidc-client-secret")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (client_id, secret) = match (&basic, req.client_id.as_deref()) {
        (Some((id, _)), Some(body_id)) if id != body_id => {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "client_id mismatch",
            ));
        }
        (Some((id, secret)), _) => (id.clone(), Some(secret.clone())),
        (None, Some(id)) => (id.to_owned(), req.client_secret.clone().or(header_secret)),
        (None, None) => {
            return Err(oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication required",
            ));
        }
    };
    let client = state
        .oidc
        .client(&client_id)
        .ok_or_else(|| oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client"))?;
    if let Some(expected) = &client.secret {
        let presented = secret.unwrap_or_default();
        let ok: bool = token_hash(&presented)
            .as_bytes()
            .ct_eq(token_hash(expected.expose()).as_bytes())
            .into();
        if !ok {
            return Err(oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            ));
        }
    }
    Ok(client)
}

/// The standard token response, plus `user`/`session`/`idToken` so the existing desktop (which
/// reads the first system's shape) keeps working.
#[derive(Serialize)]
pub(super) struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
    scope: String,
    user: Value,
    session: Value,
    #[serde(rename = "idToken", skip_serializing_if = "Option::is_none")]
    id_token_compat: Option<String>,
}

#[tracing::instrument(skip_all)]
pub async fn token(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match token_inner(&state, &ip, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

pub(super) async fn token_inner(
    state: &AppState,
    ip: &ClientIp,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    if let Err(wait) = state.limiters.token.check(&format!("token:{}", ip.0)) {
        return Err(ApiError::too_many_requests(wait.as_secs()));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let (req, _json) = parse_token_request(content_type, body)?;
    let client = authenticate_client(state, headers, &req)?;
    match req.grant_type.as_deref() {
        Some("authorization_code") => exchange_code(state, client, &req).await,
        Some("refresh_token") => refresh(state, client, &req).await,
        Some(DEVICE_CODE_GRANT) => redeem_device_code(state, client, &req).await,
        Some(_) => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only authorization_code, refresh_token and the device code grant are supported",
        )),
        None => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type is required",
        )),
    }
}

pub(super) async fn exchange_code(
    state: &AppState,
    client: &Client,
    req: &TokenRequest,
) -> Result<Response, ApiError> {
    let (Some(code), Some(redirect_uri)) = (req.code.as_deref(), req.redirect_uri.as_deref())
    else {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code and redirect_uri are required",
        ));
    };
    let Some(verifier) = req.code_verifier.as_deref() else {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code_verifier is required (PKCE)",
        ));
    };
    let hash = token_hash(code);
    let Some(record) = state.oidc.codes.get(&hash).await? else {
        return Err(invalid_grant("invalid or expired authorization code"));
    };
    let now = now();
    if record.consumed_at.is_some() {
        replay(state, &record).await?;
        return Err(invalid_grant("authorization code already used"));
    }
    if record.client_id != client.id || record.redirect_uri != redirect_uri {
        return Err(invalid_grant(
            "authorization code was issued to another client or redirect_uri",
        ));
    }
    if record.expires_at <= now {
        return Err(invalid_grant("authorization code expired"));
    }
    pkce::verify(verifier, &record.code_challenge).map_err(|e| invalid_grant(&e.to_string()))?;
    if !state.oidc.codes.consume(&hash, now).await? {
        replay(state, &record).await?;
        return Err(invalid_grant("authorization code already used"));
    }
    let Some(user) = tokens::user(state, &record.user_id).await? else {
        return Err(invalid_grant("the user no longer exists"));
    };
    let offline = record
        .scope
        .split_whitespace()
        .any(|s| s == "offline_access");
    let request = SessionRequest {
        user: user.id.clone(),
        client_id: client.id.clone(),
        scope: record.scope.clone(),
        active_org: None,
        with_refresh: offline,
        auth_time: record.auth_time,
        amr: record.amr.clone(),
    };
    let issued = tokens::issue(state, &request).await?;
    state
        .oidc
        .codes
        .bind_family(&hash, &issued.session.family_id)
        .await?;
    token_response(state, &user, &issued, record.nonce.as_deref()).await
}

/// A code presented twice: revoke what its first exchange issued.
pub(super) async fn replay(state: &AppState, record: &AuthCode) -> Result<(), ApiError> {
    tracing::warn!(client = %record.client_id, "Authorization code replayed; revoking the tokens it issued.");
    if let Some(family) = &record.family_id {
        accounts::sign_out(state, family).await?;
    }
    Ok(())
}

pub(super) async fn refresh(
    state: &AppState,
    client: &Client,
    req: &TokenRequest,
) -> Result<Response, ApiError> {
    let Some(refresh_token) = req.refresh_token.as_deref() else {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "refresh_token is required",
        ));
    };
    // Every refusal happens before the rotation, so a refused request (wrong client, rate
    // limit, deleted user) leaves the presented token exactly as usable as before.
    let Some(current) = tokens::refresh_session(state, refresh_token).await? else {
        return Err(invalid_grant("invalid or expired refresh token"));
    };
    if current.client_id != client.id {
        return Err(invalid_grant("refresh token was issued to another client"));
    }
    if let Err(wait) = state
        .limiters
        .token
        .check(&format!("token-user:{}", current.user_id))
    {
        return Err(ApiError::too_many_requests(wait.as_secs()));
    }
    let Some(user) = tokens::user(state, &current.user_id).await? else {
        return Err(invalid_grant("the user no longer exists"));
    };
    match tokens::rotate(state, refresh_token).await? {
        Refreshed::Issued(issued) => token_response(state, &user, &issued, None).await,
        Refreshed::Reused => Err(invalid_grant(
            "refresh token reused; the session was revoked",
        )),
        Refreshed::Invalid => Err(invalid_grant("invalid or expired refresh token")),
    }
}

pub(super) async fn token_response(
    state: &AppState,
    user: &User,
    issued: &IssuedTokens,
    nonce: Option<&str>,
) -> Result<Response, ApiError> {
    let now = now();
    let session = &issued.session;
    let id_token = if session.scope.split_whitespace().any(|s| s == "openid") {
        let claims = id_token_claims(&IdTokenInput {
            issuer: &state.oidc.issuer,
            client_id: &session.client_id,
            subject: user.id.as_str(),
            email: &user.email,
            email_verified: user.email_verified_at.is_some(),
            name: &user.display_name,
            nonce,
            auth_time: session.auth_time,
            amr: &session.amr,
            now,
            ttl_secs: state.config.id_token_ttl.as_secs() as i64,
            access_token: Some(&issued.access_token),
        });
        Some(
            state
                .oidc
                .signing
                .sign_jwt(&claims)
                .map_err(ApiError::internal)?,
        )
    } else {
        None
    };
    let plans = crate::app::access::plans(state).await?;
    let user_json =
        serde_json::to_value(crate::views::user_view(user, &plans, now)).unwrap_or(Value::Null);
    let body = TokenResponse {
        access_token: issued.access_token.clone(),
        token_type: "Bearer",
        expires_in: (session.expires_at - now).num_seconds().max(0),
        refresh_token: issued.refresh_token.clone(),
        id_token: id_token.clone(),
        scope: session.scope.clone(),
        user: user_json,
        session: json!({
            "accessToken": issued.access_token,
            "refreshToken": issued.refresh_token,
            "expiresAt": cloud_common::time::iso(session.expires_at),
            "refreshExpiresAt": session.refresh_expires_at.map(cloud_common::time::iso),
        }),
        id_token_compat: id_token,
    };
    Ok(no_store(Json(body).into_response()))
}
