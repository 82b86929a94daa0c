//! `GET /`: what this server is, for a browser (a portal page) or for a JSON client (name,
//! version and where the portal, discovery, OpenAPI document and API reference are).

use axum::Json;
use axum::http::header::{self, HeaderValue};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use super::*;

#[derive(Template)]
#[template(path = "portal/home.html")]
struct HomePage {
    signed_in: bool,
    csrf_token: String,
    version: String,
}

/// The JSON answer of `GET /` (`Accept: application/json`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceDescription {
    pub name: String,
    pub version: String,
    pub links: ServiceLinks,
}

/// Absolute URLs of what a client of this server may want next.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceLinks {
    /// The web portal (sign in, create an account, organizations, providers).
    pub portal: String,
    /// OpenID Connect discovery document of the issuer.
    pub discovery: String,
    /// The OpenAPI document of the JSON API.
    pub openapi: String,
    /// The API reference page (renders `openapi`).
    pub docs: String,
}

/// The client asked for JSON rather than a page: `Accept` names `application/json` (or a
/// `+json` type) and not `text/html`.
fn wants_json(headers: &HeaderMap) -> bool {
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",")
        .to_ascii_lowercase();
    let json = accept.contains("application/json") || accept.contains("+json");
    json && !accept.contains("text/html")
}

pub(crate) fn describe(state: &AppState) -> ServiceDescription {
    let on = |base: &url::Url, path: &str| {
        base.join(path)
            .map(|u| u.to_string())
            .unwrap_or_else(|_| path.to_owned())
    };
    let issuer = state.oidc.issuer.trim_end_matches('/');
    ServiceDescription {
        name: "Chatons Cloud".to_owned(),
        version: state.config.common.version.clone(),
        links: ServiceLinks {
            portal: on(&state.config.web_url, "/cloud"),
            discovery: format!("{issuer}/.well-known/openid-configuration"),
            openapi: on(&state.config.public_url, "/openapi.json"),
            docs: on(&state.config.public_url, "/docs"),
        },
    }
}

/// Describes this server
#[utoipa::path(get, path = "/", tag = "service",
    responses(
        (status = 200, description = "What this server is and where its parts are: JSON for `Accept: application/json`, else a portal page",
            content((ServiceDescription = "application/json"), (String = "text/html"))),
    ))]
pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if wants_json(&headers) {
        let mut r = Json(describe(&state)).into_response();
        r.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("accept"));
        return r;
    }
    let ctx = Ctx::load(&state, &headers).await;
    let mut r = ctx.page(
        StatusCode::OK,
        &HomePage {
            signed_in: ctx.signed_in(),
            csrf_token: ctx.csrf.clone(),
            version: state.config.common.version.clone(),
        },
    );
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_only_when_asked_without_html() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_static(v));
            wants_json(&h)
        };
        assert!(with("application/json"));
        assert!(with("application/problem+json"));
        assert!(!with(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ));
        assert!(!with("*/*"));
        assert!(!wants_json(&HeaderMap::new()));
    }
}
