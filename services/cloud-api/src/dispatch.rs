//! Routes served by two adapters at one path, chosen per request. `GET /` answers a portal page
//! to browsers and the JSON description (`http::service`) to clients asking for JSON. The first system's
//! `POST /v1/web/signup` and `/v1/web/login` answered JSON to API clients and redirected
//! browsers that posted its HTML forms; here the JSON API (`http`) answers the first kind and the
//! portal (`portal`, with its CSRF check, which the first system lacked) the second. This module
//! is part of the composition root, so neither adapter imports the other.

use axum::Router;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cloud_common::ApiError;
use cloud_common::extract::ApiJson;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::http::accounts;
use crate::http::extract::ClientIp;
use crate::portal::{Posted, pages};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .route("/v1/web/signup", post(signup))
        .route("/v1/web/login", post(login))
}

/// A browser's form post (`application/x-www-form-urlencoded`), as the first system's pages sent.
fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.to_ascii_lowercase()
                .contains("application/x-www-form-urlencoded")
        })
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

async fn root(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if wants_json(&headers) {
        crate::http::service::describe(State(state)).await
    } else {
        pages::home(&state, &headers).await
    }
}

/// Answers a browser's form post with `form` (the portal reads it, CSRF check included) and
/// anything else with `json` (the JSON API reads it).
async fn form_or_json<F, J>(
    state: &AppState,
    request: Request,
    form: impl AsyncFnOnce(Posted<F>) -> Response,
    json: impl AsyncFnOnce(ApiJson<J>) -> Response,
) -> Response
where
    F: DeserializeOwned + Default,
    ApiJson<J>: FromRequest<AppState, Rejection = ApiError>,
{
    if is_form(request.headers()) {
        match Posted::from_request(request, state).await {
            Ok(posted) => form(posted).await,
            Err(refused) => refused,
        }
    } else {
        match ApiJson::from_request(request, state).await {
            Ok(body) => json(body).await,
            Err(e) => e.into_response(),
        }
    }
}

async fn signup(State(state): State<AppState>, ip: ClientIp, request: Request) -> Response {
    let json_state = state.clone();
    form_or_json(
        &state,
        request,
        async |form| pages::signup_with_form(&state, &ip, form, true).await,
        async |body| {
            accounts::signup(State(json_state), ip, body)
                .await
                .into_response()
        },
    )
    .await
}

async fn login(State(state): State<AppState>, ip: ClientIp, request: Request) -> Response {
    let json_state = state.clone();
    form_or_json(
        &state,
        request,
        async |form| pages::login_with_form(&state, &ip, form, StatusCode::FOUND).await,
        async |body| {
            accounts::login(State(json_state), ip, body)
                .await
                .into_response()
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

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
