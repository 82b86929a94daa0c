//! The issuer's pages: login, consent and message pages (the authorization endpoint's HTML).

use super::*;

#[derive(Template)]
#[template(path = "oidc/login.html")]
pub(super) struct LoginPage {
    client_label: String,
    error: Option<String>,
    csrf_token: String,
    hidden: Vec<(String, String)>,
    email: String,
    /// Where a passkey sign-in continues: this authorization request again (now signed in).
    return_to: String,
}

#[derive(Template)]
#[template(path = "oidc/consent.html")]
pub(super) struct ConsentPage {
    client_label: String,
    name: String,
    email: String,
    offline: bool,
    csrf_token: String,
    hidden: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "oidc/message.html")]
pub(crate) struct MessagePage {
    pub title: String,
    pub message: String,
    pub is_error: bool,
}

pub(super) fn render(t: &impl Template) -> String {
    t.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "Template rendering failed.");
        "<!doctype html><title>Error</title><p>Something went wrong.</p>".to_owned()
    })
}

pub(super) fn message_page(
    state: &AppState,
    status: StatusCode,
    title: &str,
    message: String,
) -> Response {
    let page = MessagePage {
        title: title.to_owned(),
        message,
        is_error: status.is_client_error() || status.is_server_error(),
    };
    web::html(status, render(&page), &[], https(state))
}

/// The answer to a form whose CSRF token does not check, with what the user should do `then`.
pub(super) fn form_expired(state: &AppState, then: &str) -> Response {
    message_page(
        state,
        StatusCode::BAD_REQUEST,
        "Please try again",
        format!("This form expired or was not sent by Chatons Cloud. {then}"),
    )
}

pub(super) fn login_form(
    state: &AppState,
    headers: &HeaderMap,
    params: &AuthorizeParams,
    v: &Validated<'_>,
    error: Option<String>,
    email: String,
    status: StatusCode,
) -> Response {
    let (csrf, set_cookie) = web::csrf_token(headers, https(state));
    // `prompt=login` is what a passkey sign-in just did: asking again would loop.
    let again: Vec<(String, String)> = params
        .hidden()
        .into_iter()
        .filter(|(k, v)| !(k == "prompt" && v.split_whitespace().any(|p| p == "login")))
        .collect();
    let return_to = format!(
        "/oidc/authorize?{}",
        serde_urlencoded::to_string(&again).unwrap_or_default()
    );
    let page = LoginPage {
        client_label: v.client.label.clone(),
        error,
        csrf_token: csrf,
        hidden: params.hidden(),
        email,
        return_to,
    };
    form_page(state, status, &page, v, set_cookie)
}

/// A page of the authorization flow whose form may answer with a redirect to the client (its
/// CSP `form-action` allows that URI), setting the CSRF cookie when it is new.
pub(super) fn form_page(
    state: &AppState,
    status: StatusCode,
    page: &impl Template,
    v: &Validated<'_>,
    set_cookie: Option<HeaderValue>,
) -> Response {
    let mut response = web::html(
        status,
        render(page),
        &form_action_source(&v.redirect_uri),
        https(state),
    );
    if let Some(c) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// The consent page. `new_session` is the session cookie this very response sets (after the
/// login form), whose CSRF token the page must carry.
pub(super) fn consent_form(
    state: &AppState,
    headers: &HeaderMap,
    params: &AuthorizeParams,
    v: &Validated<'_>,
    user: &User,
    new_session: Option<(&str, HeaderValue)>,
) -> Response {
    let (csrf, set_cookie) = match &new_session {
        Some((token, _)) => (web::session_csrf(token), None),
        None => web::csrf_token(headers, https(state)),
    };
    let extra_cookies = new_session.map(|(_, c)| c);
    let page = ConsentPage {
        client_label: v.client.label.clone(),
        name: user.display_name.clone(),
        email: user.email.clone(),
        offline: v.scope.split_whitespace().any(|s| s == "offline_access"),
        csrf_token: csrf,
        hidden: params.hidden(),
    };
    let mut response = web::html(
        StatusCode::OK,
        render(&page),
        &form_action_source(&v.redirect_uri),
        https(state),
    );
    for c in extra_cookies.into_iter().chain(set_cookie) {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}
