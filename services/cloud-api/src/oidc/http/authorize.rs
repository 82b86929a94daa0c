//! The authorization endpoint: validation, the login and consent flow, code issuance (the pages
//! themselves are `pages.rs`).

use super::*;

use crate::domain::{AMR_PASSWORD, Timestamp};

// Authorization endpoint -----------------------------------------------------------------------

/// The authorization request, as query parameters (GET) or hidden form fields (POST).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    prompt: Option<String>,
    max_age: Option<String>,
    base_url: Option<String>,
}

impl AuthorizeForm {
    pub(super) fn params(&self) -> &AuthorizeParams {
        &self.params
    }
}

impl AuthorizeParams {
    /// The parameters to carry through the login form, as hidden fields.
    pub(super) fn hidden(&self) -> Vec<(String, String)> {
        let fields = [
            ("response_type", &self.response_type),
            ("client_id", &self.client_id),
            ("redirect_uri", &self.redirect_uri),
            ("scope", &self.scope),
            ("state", &self.state),
            ("nonce", &self.nonce),
            ("code_challenge", &self.code_challenge),
            ("code_challenge_method", &self.code_challenge_method),
            ("prompt", &self.prompt),
            ("max_age", &self.max_age),
            ("base_url", &self.base_url),
        ];
        fields
            .into_iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_owned(), v.clone())))
            .collect()
    }
}

/// A request whose client and redirect URI are trusted: further errors may be redirected.
pub(super) struct Validated<'a> {
    pub(super) client: &'a Client,
    pub(super) redirect_uri: String,
    pub(super) state: Option<String>,
    pub(super) scope: String,
    pub(super) nonce: Option<String>,
    pub(super) challenge: String,
    pub(super) prompt: Vec<String>,
    pub(super) max_age: Option<i64>,
    pub(super) base_url: Option<String>,
}

pub(super) enum Invalid {
    /// Shown as a page: the redirect URI cannot be trusted.
    Page(&'static str, String),
    /// Sent back to the client.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
}

pub(super) fn validate<'a>(
    state: &'a AppState,
    p: &AuthorizeParams,
) -> Result<Validated<'a>, Invalid> {
    let client_id = p.client_id.as_deref().unwrap_or("");
    let client = state.oidc.client(client_id).ok_or_else(|| {
        Invalid::Page(
            "Unknown application",
            format!("No application is registered as {client_id:?}."),
        )
    })?;
    let redirect_uri = match p.redirect_uri.as_deref() {
        None if client.id == state.config.client_id => DESKTOP_CALLBACK.to_owned(),
        None => {
            return Err(Invalid::Page(
                "Invalid request",
                "redirect_uri is required.".into(),
            ));
        }
        Some(uri) if client.accepts_redirect(uri) => uri.to_owned(),
        Some(_) => {
            return Err(Invalid::Page(
                "Invalid redirect",
                "The redirect_uri is not registered for this application.".into(),
            ));
        }
    };
    let back = |error: &'static str, description: String| Invalid::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: p.state.clone(),
        error,
        description,
    };
    if p.response_type.as_deref() != Some("code") {
        return Err(back(
            "unsupported_response_type",
            "response_type must be code".into(),
        ));
    }
    let challenge = pkce::check_challenge(
        p.code_challenge.as_deref(),
        p.code_challenge_method.as_deref(),
    )
    .map_err(|e| back("invalid_request", e.to_string()))?;
    let prompt: Vec<String> = p
        .prompt
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if prompt
        .iter()
        .any(|v| !matches!(v.as_str(), "none" | "login" | "consent" | "select_account"))
    {
        return Err(back("invalid_request", "unsupported prompt value".into()));
    }
    if prompt.iter().any(|v| v == "none") && prompt.len() > 1 {
        return Err(back(
            "invalid_request",
            "prompt=none cannot be combined".into(),
        ));
    }
    let max_age = match p.max_age.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => Some(raw.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
            back(
                "invalid_request",
                "max_age must be a non-negative integer".into(),
            )
        })?),
    };
    let scope = p
        .scope
        .clone()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "openid profile email offline_access".to_owned());
    if scope.len() > 512
        || p.state.as_deref().map(str::len).unwrap_or(0) > 1024
        || p.nonce.as_deref().map(str::len).unwrap_or(0) > 512
    {
        return Err(back(
            "invalid_request",
            "scope, state or nonce is too long".into(),
        ));
    }
    Ok(Validated {
        client,
        redirect_uri,
        state: p.state.clone(),
        scope,
        nonce: p.nonce.clone(),
        challenge,
        prompt,
        max_age,
        base_url: p.base_url.clone(),
    })
}

pub(super) fn https(state: &AppState) -> bool {
    state.config.web_url.scheme() == "https"
}

/// CSP `form-action` source that lets the login form's answer redirect to the client.
pub(super) fn form_action_source(redirect_uri: &str) -> Vec<String> {
    match Url::parse(redirect_uri) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {
            vec![u.origin().ascii_serialization()]
        }
        Ok(u) => vec![format!("{}:", u.scheme())],
        Err(_) => Vec::new(),
    }
}

pub(super) fn invalid_response(state: &AppState, invalid: Invalid, after_post: bool) -> Response {
    match invalid {
        Invalid::Page(title, message) => {
            message_page(state, StatusCode::BAD_REQUEST, title, message)
        }
        Invalid::Redirect {
            redirect_uri,
            state: st,
            error,
            description,
        } => {
            let mut pairs = vec![
                ("error", error.to_owned()),
                ("error_description", description),
            ];
            if let Some(s) = st {
                pairs.push(("state", s));
            }
            pairs.push(("iss", state.oidc.issuer.clone()));
            web::redirect(&with_query(&redirect_uri, &pairs), after_post, Vec::new())
        }
    }
}

pub(super) fn with_query(base: &str, pairs: &[(&str, String)]) -> String {
    match Url::parse(base) {
        Ok(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in pairs {
                    q.append_pair(k, v);
                }
            }
            url.to_string()
        }
        Err(_) => base.to_owned(),
    }
}

/// The browser's portal session, if any.
pub(super) async fn portal_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(Session, User)>, ApiError> {
    let Some(token) = web::cookie(headers, web::SESSION_COOKIE) else {
        return Ok(None);
    };
    let found = tokens::authenticate(state, token).await?;
    Ok(found.filter(|(s, _)| s.client_id == PORTAL_CLIENT))
}

pub(super) fn needs_login(v: &Validated<'_>, session: Option<&Session>, now: Timestamp) -> bool {
    let Some(session) = session else { return true };
    if v.prompt
        .iter()
        .any(|p| p == "login" || p == "select_account")
    {
        return true;
    }
    // max_age=0 asks for a fresh login every time (whole seconds would let the first second
    // pass); otherwise the login must be at most max_age seconds old.
    matches!(v.max_age, Some(max) if max == 0 || now - session.auth_time > chrono::Duration::seconds(max))
}

#[tracing::instrument(skip_all)]
pub async fn authorize_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<AuthorizeParams>,
) -> Response {
    let v = match validate(&state, &params) {
        Ok(v) => v,
        Err(invalid) => return invalid_response(&state, invalid, false),
    };
    let session = match portal_session(&state, &headers).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let now = now();
    let signed_in = session.filter(|(s, _)| !needs_login(&v, Some(s), now));
    let Some((session, user)) = signed_in else {
        if v.prompt.iter().any(|p| p == "none") {
            return invalid_response(
                &state,
                redirect_error(&v, "login_required", "the user is not signed in"),
                false,
            );
        }
        return login_form(
            &state,
            &headers,
            &params,
            &v,
            None,
            String::new(),
            StatusCode::OK,
        );
    };
    if v.prompt.iter().any(|p| p == "consent") {
        return consent_form(&state, &headers, &params, &v, &user, None);
    }
    let signed_in = (session.auth_time, session.amr.as_str());
    issue_code(&state, &v, &user, signed_in, Vec::new(), false).await
}

pub(super) fn redirect_error(v: &Validated<'_>, error: &'static str, description: &str) -> Invalid {
    Invalid::Redirect {
        redirect_uri: v.redirect_uri.clone(),
        state: v.state.clone(),
        error,
        description: description.to_owned(),
    }
}

/// The login / consent form: hidden authorization parameters plus what the user entered.
#[derive(Debug, Default, Deserialize)]
pub struct AuthorizeForm {
    #[serde(flatten)]
    params: AuthorizeParams,
    csrf_token: Option<String>,
    action: Option<String>,
    email: Option<String>,
    password: Option<String>,
    /// The second step of a sign-in with two-step sign-in on (see `second_step`).
    pub(super) ticket: Option<String>,
    pub(super) code: Option<String>,
}

#[tracing::instrument(skip_all)]
pub async fn authorize_submit(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    ApiForm(form): ApiForm<AuthorizeForm>,
) -> Response {
    if !web::csrf_ok(&headers, form.csrf_token.as_deref()) {
        return form_expired(&state, "Go back and submit it again.");
    }
    let v = match validate(&state, &form.params) {
        Ok(v) => v,
        Err(invalid) => return invalid_response(&state, invalid, true),
    };
    match form.action.as_deref().unwrap_or("login") {
        "deny" => invalid_response(
            &state,
            redirect_error(&v, "access_denied", "the user declined"),
            true,
        ),
        "approve" => match portal_session(&state, &headers).await {
            Ok(Some((session, user))) => {
                let signed_in = (session.auth_time, session.amr.as_str());
                issue_code(&state, &v, &user, signed_in, Vec::new(), true).await
            }
            Ok(None) => login_form(
                &state,
                &headers,
                &form.params,
                &v,
                None,
                String::new(),
                StatusCode::OK,
            ),
            Err(e) => e.into_response(),
        },
        "login" => login(&state, &ip, &headers, &form, &v).await,
        "two_factor" => second_step(&state, &ip, &headers, &form, &v).await,
        _ => message_page(
            &state,
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "Unknown action.".into(),
        ),
    }
}

pub(super) async fn login(
    state: &AppState,
    ip: &ClientIp,
    headers: &HeaderMap,
    form: &AuthorizeForm,
    v: &Validated<'_>,
) -> Response {
    let email = form.email.as_deref().unwrap_or("").trim().to_lowercase();
    let password = form.password.as_deref().unwrap_or("");
    let retry = |message: &str, status: StatusCode| {
        login_form(
            state,
            headers,
            &form.params,
            v,
            Some(message.to_owned()),
            email.clone(),
            status,
        )
    };
    if email.is_empty() || password.is_empty() || password.len() > 1024 {
        return retry("Email and password are required.", StatusCode::BAD_REQUEST);
    }
    let user =
        match crate::app::accounts::sign_in_with_password(state, ip.0, &email, password).await {
            Ok(u) => u,
            Err(crate::domain::DomainError::RateLimited(_)) => {
                return retry(
                    "Too many attempts. Wait a minute and try again.",
                    StatusCode::TOO_MANY_REQUESTS,
                );
            }
            Err(e) => return ApiError::from(e).into_response(),
        };
    let Some(user) = user else {
        return retry("Invalid email or password.", StatusCode::UNAUTHORIZED);
    };
    match crate::app::second_factor::required(state, &user.id).await {
        Ok(true) => {
            return code_form(
                state,
                headers,
                &form.params,
                v,
                &user.id,
                None,
                StatusCode::OK,
            );
        }
        Ok(false) => {}
        Err(e) => return ApiError::from(e).into_response(),
    }
    signed_in(state, headers, form, v, &user, AMR_PASSWORD).await
}

/// After the sign-in (`amr`: how): the portal session, then the consent page or the code.
pub(super) async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
    form: &AuthorizeForm,
    v: &Validated<'_>,
    user: &User,
    amr: &str,
) -> Response {
    let issued = match accounts::start_portal_session(state, &user.id, None, amr).await {
        Ok(i) => i,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let cookie = web::set_cookie(
        web::SESSION_COOKIE,
        &issued.access_token,
        state.config.portal_session_ttl.as_secs() as i64,
        https(state),
    );
    if v.prompt.iter().any(|p| p == "consent") {
        let new_session = Some((issued.access_token.as_str(), cookie));
        return consent_form(state, headers, &form.params, v, user, new_session);
    }
    let signed_in = (issued.session.auth_time, amr);
    issue_code(state, v, user, signed_in, vec![cookie], true).await
}

pub(super) async fn issue_code(
    state: &AppState,
    v: &Validated<'_>,
    user: &User,
    (auth_time, amr): (Timestamp, &str),
    cookies: Vec<HeaderValue>,
    after_post: bool,
) -> Response {
    let code = new_token("");
    let now = now();
    let ttl = chrono::Duration::from_std(state.config.auth_code_ttl)
        .unwrap_or(chrono::Duration::minutes(5));
    let record = AuthCode {
        code_hash: token_hash(&code),
        client_id: v.client.id.clone(),
        redirect_uri: v.redirect_uri.clone(),
        user_id: user.id.clone(),
        scope: v.scope.clone(),
        nonce: v.nonce.clone(),
        code_challenge: v.challenge.clone(),
        auth_time,
        expires_at: now + ttl,
        consumed_at: None,
        family_id: None,
        amr: amr.to_owned(),
    };
    if let Err(e) = state.oidc.codes.insert(&record).await {
        return ApiError::from(e).into_response();
    }
    let mut pairs = vec![("code", code)];
    if let Some(s) = &v.state {
        pairs.push(("state", s.clone()));
    }
    pairs.push(("iss", state.oidc.issuer.clone()));
    if let Some(b) = &v.base_url {
        pairs.push(("base_url", b.clone()));
    }
    web::redirect(&with_query(&v.redirect_uri, &pairs), after_post, cookies)
}
