//! Routes served by two adapters at one path, chosen per request. The first system's
//! `POST /v1/web/signup` and `/v1/web/login` answered JSON to API clients and redirected
//! browsers that posted its HTML forms; here the JSON API (`http`) answers the first kind and the
//! portal (`portal`, with its CSRF check, which the first system lacked) the second. This module
//! is part of the composition root, so neither adapter imports the other.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::AppState;
use crate::http::extract::ClientIp;

pub fn routes() -> Router<AppState> {
    Router::new()
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

async fn signup(State(state): State<AppState>, ip: ClientIp, request: Request) -> Response {
    if is_form(request.headers()) {
        let headers = request.headers().clone();
        let body = match Bytes::from_request(request, &state).await {
            Ok(b) => b,
            Err(e) => return e.into_response(),
        };
        return crate::portal::pages::signup_with_form(&state, &ip, &headers, &body, true).await;
    }
    match cloud_common::extract::ApiJson::from_request(request, &state).await {
        Ok(body) => crate::http::accounts::signup(State(state), ip, body)
            .await
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn login(State(state): State<AppState>, ip: ClientIp, request: Request) -> Response {
    if is_form(request.headers()) {
        let headers = request.headers().clone();
        let body = match Bytes::from_request(request, &state).await {
            Ok(b) => b,
            Err(e) => return e.into_response(),
        };
        return crate::portal::pages::login_with_form(
            &state,
            &ip,
            &headers,
            &body,
            StatusCode::FOUND,
        )
        .await;
    }
    match cloud_common::extract::ApiJson::from_request(request, &state).await {
        Ok(body) => crate::http::accounts::login(State(state), ip, body)
            .await
            .into_response(),
        Err(e) => e.into_response(),
    }
}
