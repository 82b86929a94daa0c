//! `GET /` for API clients (`Accept: application/json`, chosen by `crate::dispatch`): the
//! service's name, version and where its parts are. Browsers get the portal's page instead.

use axum::Json;
use axum::extract::State;
use axum::http::header::{self, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

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

pub fn description(state: &AppState) -> ServiceDescription {
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
pub async fn describe(State(state): State<AppState>) -> Response {
    let mut r = Json(description(&state)).into_response();
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept"));
    r
}
