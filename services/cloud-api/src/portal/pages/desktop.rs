//! The desktop hand-off page.

use super::*;

// Desktop hand-off --------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct DesktopQuery {
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    redirect_uri: Option<String>,
    nonce: Option<String>,
}

/// With the app's PKCE parameters: continue the authorization (`/desktop/auth` → the OIDC
/// authorization endpoint, which signs in if needed and returns a code to the app). Without:
/// explain how to start from the app.
pub async fn desktop(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<DesktopQuery>,
) -> Response {
    if q.code_challenge.as_deref().is_some_and(|c| !c.is_empty()) {
        let pairs: Vec<(&str, String)> = [
            ("state", q.state),
            ("code_challenge", q.code_challenge),
            ("code_challenge_method", q.code_challenge_method),
            ("redirect_uri", q.redirect_uri),
            ("nonce", q.nonce),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        return web::redirect(&format!("/desktop/auth?{query}"), false, Vec::new());
    }
    let ctx = Ctx::load(&state, &headers).await;
    ctx.page(
        StatusCode::OK,
        &DesktopPage {
            signed_in: ctx.signed_in(),
            csrf_token: ctx.csrf.clone(),
            email: ctx
                .caller
                .as_ref()
                .map(|c| c.user.email.clone())
                .unwrap_or_default(),
        },
    )
}
