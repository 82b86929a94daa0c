//! Device login (RFC 8628) seen from outside: a standard relying party (the `openidconnect`
//! crate) runs the whole flow against the issuer while a signed-in browser approves or denies
//! the code on the portal.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod,
    CoreDeviceAuthorizationResponse, CoreGrantType, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreResponseMode,
    CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, ClientId, DeviceAuthorizationUrl, DeviceCodeErrorResponseType,
    IssuerUrl, Nonce, OAuth2TokenResponse, ProviderMetadata, Scope,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::helpers::{TestApp, TestUser, assert_error, spawn_app_with};
use crate::oidc::token_form;
use crate::web::{browser, page, submit};

const CLI: &str = "chatons-cli";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Discovery with the one field `CoreProviderMetadata` does not know.
#[derive(Clone, Debug, Deserialize, Serialize)]
struct DeviceEndpoint {
    device_authorization_endpoint: DeviceAuthorizationUrl,
}
impl AdditionalProviderMetadata for DeviceEndpoint {}
type DeviceProviderMetadata = ProviderMetadata<
    DeviceEndpoint,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// An app whose device logins ask for a one-second interval (the RFC's default is 5 s).
async fn spawn() -> TestApp {
    spawn_app_with(&[("CHATONS_DEVICE_POLL_INTERVAL_SECONDS", "1")]).await
}

fn rp_http() -> openidconnect::reqwest::Client {
    openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Starts a device login the raw way: `(status, body)` of the device authorization endpoint.
async fn start(app: &TestApp, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(app.url("/oidc/device/authorize"))
        .form(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["cache-control"], "no-store");
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn poll(app: &TestApp, device_code: &str) -> (u16, Value) {
    token_form(
        app,
        &[
            ("grant_type", DEVICE_GRANT),
            ("client_id", CLI),
            ("device_code", device_code),
        ],
    )
    .await
}

/// `browser` (signed in) answers the code `user_code` with `action` on the verification page;
/// returns the page it lands on.
async fn answer(
    app: &TestApp,
    b: &reqwest::Client,
    user_code: &str,
    action: &str,
) -> (u16, String) {
    let confirm = page(b, app.url(&format!("/cloud/device?user_code={user_code}"))).await;
    assert!(
        confirm.contains("Sign in Chatons command line?"),
        "{confirm}"
    );
    assert!(confirm.contains(user_code), "{confirm}");
    let csrf = cloud_testkit::oidc::csrf_from(&confirm);
    let form = [
        ("csrf_token", csrf.as_str()),
        ("user_code", user_code),
        ("action", action),
    ];
    let resp = submit(b, app.url("/cloud/device"), &form).await;
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn a_standard_relying_party_completes_the_device_flow_through_pending_slow_down_and_denial() {
    let app = spawn().await;
    let user = app.signup().await;
    let http = rp_http();
    let issuer = IssuerUrl::new(app.base.clone()).unwrap();
    let meta = DeviceProviderMetadata::discover_async(issuer, &http)
        .await
        .unwrap();
    let endpoint = meta
        .additional_metadata()
        .device_authorization_endpoint
        .clone();
    assert_eq!(endpoint.url().as_str(), app.url("/oidc/device/authorize"));
    let client = CoreClient::from_provider_metadata(meta, ClientId::new(CLI.into()), None)
        .set_device_authorization_url(endpoint);
    let details: CoreDeviceAuthorizationResponse = client
        .exchange_device_code()
        .add_scope(Scope::new("offline_access".into()))
        .request_async(&http)
        .await
        .unwrap();
    let user_code = details.user_code().secret().clone();
    assert!(
        user_code.len() == 9 && user_code.as_bytes()[4] == b'-',
        "{user_code}"
    );
    assert_eq!(
        details.verification_uri().as_str(),
        app.url("/cloud/device")
    );
    assert_eq!(
        details.verification_uri_complete().unwrap().secret(),
        &app.url(&format!("/cloud/device?user_code={user_code}"))
    );
    assert_eq!(details.interval(), Duration::from_secs(1));
    assert_eq!(details.expires_in(), Duration::from_secs(600));

    // The library polls at once, then sleeps the interval between polls. Its first sleep is
    // skipped, so its second poll comes too soon: it is told to slow down and adds 5 s, as the
    // server does. The test approves meanwhile.
    let (slept_tx, mut slept) = tokio::sync::mpsc::unbounded_channel::<Duration>();
    let sleeps = Arc::new(AtomicUsize::new(0));
    let device_code = details.device_code().secret().clone();
    let poller = tokio::spawn({
        let (client, details, http) = (client.clone(), details.clone(), http.clone());
        async move {
            let sleep = move |interval: Duration| {
                let first = sleeps.fetch_add(1, Ordering::SeqCst) == 0;
                let _ = slept_tx.send(interval);
                async move {
                    if !first {
                        tokio::time::sleep(interval).await;
                    }
                }
            };
            client
                .exchange_device_access_token(&details)
                .unwrap()
                .request_async(&http, sleep, None)
                .await
        }
    });
    // After `authorization_pending` the interval stays 1 s; after `slow_down` it is 6 s.
    assert_eq!(slept.recv().await, Some(Duration::from_secs(1)));
    assert_eq!(slept.recv().await, Some(Duration::from_secs(6)));
    let b = app.portal_browser(&user).await;
    let (status, done) = answer(&app, &b, &user_code, "approve").await;
    assert_eq!(status, 200, "{done}");
    assert!(done.contains("Device connected"), "{done}");

    let token = poller.await.unwrap().expect("the device gets its tokens");
    let id_token = token.extra_fields().id_token().expect("an id_token");
    let claims = id_token
        .claims(&client.id_token_verifier(), |_: Option<&Nonce>| Ok(()))
        .unwrap();
    assert_eq!(claims.subject().as_str(), user.id);
    assert!(
        token.refresh_token().is_some(),
        "offline_access was asked for"
    );
    let access = token.access_token().secret();
    let (status, bootstrap) = app.get("/v1/bootstrap", access).await;
    assert_eq!(status, 200, "{bootstrap}");

    // A device code is good for one token response.
    let (status, body) = poll(&app, &device_code).await;
    assert_error(status, &body, 400, "invalid_grant");

    // A second login the user denies: the library's poll ends with `access_denied`.
    let denied: CoreDeviceAuthorizationResponse = client
        .exchange_device_code()
        .request_async(&http)
        .await
        .unwrap();
    let (status, page) = answer(&app, &b, denied.user_code().secret(), "deny").await;
    assert_eq!(status, 200, "{page}");
    let refused = client
        .exchange_device_access_token(&denied)
        .unwrap()
        .request_async(&http, tokio::time::sleep, None)
        .await
        .expect_err("a denied login yields no tokens");
    match refused {
        openidconnect::RequestTokenError::ServerResponse(e) => {
            assert_eq!(e.error(), &DeviceCodeErrorResponseType::AccessDenied);
        }
        other => panic!("not access_denied: {other:?}"),
    }
}

#[tokio::test]
async fn a_denied_device_login_is_access_denied_and_is_answered_once() {
    let app = spawn().await;
    let user = app.signup().await;
    let (status, started) = start(&app, &[("client_id", CLI), ("scope", "openid")]).await;
    assert_eq!(status, 200, "{started}");
    let device_code = started["device_code"].as_str().unwrap();
    let user_code = started["user_code"].as_str().unwrap();

    let (status, body) = poll(&app, device_code).await;
    assert_error(status, &body, 400, "authorization_pending");
    let (status, body) = poll(&app, device_code).await;
    assert_error(status, &body, 400, "slow_down");

    let b = app.portal_browser(&user).await;
    let (status, done) = answer(&app, &b, user_code, "deny").await;
    assert_eq!(status, 200, "{done}");
    assert!(done.contains("Request denied"), "{done}");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (status, body) = poll(&app, device_code).await;
    assert_error(status, &body, 400, "access_denied");

    // The code is no longer pending: neither its page nor a second answer accepts it.
    let again = b
        .get(app.url(&format!("/cloud/device?user_code={user_code}")))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
    let csrf = app.csrf_of(&b, "/cloud/device").await;
    let form = [
        ("csrf_token", csrf.as_str()),
        ("user_code", user_code),
        ("action", "approve"),
    ];
    let resp = submit(&b, app.url("/cloud/device"), &form).await;
    assert_eq!(resp.status(), 404);
    let (status, body) = poll(&app, device_code).await;
    assert_error(status, &body, 400, "access_denied");
}

#[tokio::test]
async fn the_verification_page_needs_a_signed_in_user_and_a_csrf_token() {
    let app = spawn().await;
    let user = app.signup().await;
    let (_, started) = start(&app, &[("client_id", CLI)]).await;
    let device_code = started["device_code"].as_str().unwrap();
    let user_code = started["user_code"].as_str().unwrap();

    // Signed out: the login page, which comes back to the code.
    let resp = browser()
        .get(started["verification_uri_complete"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap();
    let back = format!("/cloud/device?user_code={user_code}");
    let expected = format!(
        "/cloud/login?{}",
        serde_urlencoded::to_string([("return_to", back.as_str())]).unwrap()
    );
    assert_eq!(location, expected);

    // A forged form (no CSRF token) changes nothing.
    let b = app.portal_browser(&user).await;
    let form = [("user_code", user_code), ("action", "approve")];
    let resp = submit(&b, app.url("/cloud/device"), &form).await;
    assert_eq!(resp.status(), 400);
    let (status, body) = poll(&app, device_code).await;
    assert_error(status, &body, 400, "authorization_pending");

    // Typed by hand: any case, spaces for the dash.
    let typed = user_code.to_lowercase().replace('-', " ");
    let url = reqwest::Url::parse_with_params(&app.url("/cloud/device"), [("user_code", &typed)])
        .unwrap();
    let confirm = page(&b, url).await;
    assert!(confirm.contains(user_code), "{confirm}");
    assert!(
        confirm.contains("stay signed in"),
        "the default scope asks for a refresh token"
    );
}

#[tokio::test]
async fn guessing_user_codes_is_rate_limited() {
    let app = spawn().await;
    let user: TestUser = app.signup().await;
    let (_, started) = start(&app, &[("client_id", CLI)]).await;
    let user_code = started["user_code"].as_str().unwrap();
    let b = app.portal_browser(&user).await;
    let mut statuses = Vec::new();
    for i in 0..12 {
        // Valid-looking codes from the alphabet, none of them the live one.
        let guess = format!("BBBB-BB{}", ["BB", "BC", "BD", "BF"][i % 4]);
        let url = app.url(&format!("/cloud/device?user_code={guess}"));
        statuses.push(b.get(url).send().await.unwrap().status().as_u16());
    }
    assert_eq!(&statuses[..10], &[404; 10], "{statuses:?}");
    assert_eq!(&statuses[10..], &[429; 2], "{statuses:?}");
    // Limited means limited: even the right code is not looked up now.
    let url = app.url(&format!("/cloud/device?user_code={user_code}"));
    assert_eq!(b.get(url).send().await.unwrap().status(), 429);
}

#[tokio::test]
async fn device_codes_expire_and_only_device_clients_use_them() {
    let app = spawn().await;
    let (_, started) = start(&app, &[("client_id", CLI)]).await;
    let device_code = started["device_code"].as_str().unwrap();

    let (status, body) = start(&app, &[("client_id", "chatons-desktop")]).await;
    assert_error(status, &body, 400, "unauthorized_client");
    let (status, body) = start(&app, &[("client_id", "nobody")]).await;
    assert_error(status, &body, 401, "invalid_client");
    let desktop_poll = [
        ("grant_type", DEVICE_GRANT),
        ("client_id", "chatons-desktop"),
        ("device_code", device_code),
    ];
    let (status, body) = token_form(&app, &desktop_poll).await;
    assert_error(status, &body, 400, "unauthorized_client");
    let (status, body) =
        token_form(&app, &[("grant_type", DEVICE_GRANT), ("client_id", CLI)]).await;
    assert_error(status, &body, 400, "invalid_request");
    let (status, body) = poll(&app, "not-a-device-code").await;
    assert_error(status, &body, 400, "invalid_grant");

    let pool = &app.db.as_ref().unwrap().pool;
    sqlx::query("UPDATE cloud_oidc_device_grants SET expires_at = now() - interval '1 second'")
        .execute(pool)
        .await
        .unwrap();
    let (status, body) = poll(&app, device_code).await;
    assert_error(status, &body, 400, "expired_token");

    let discovery: Value = reqwest::get(app.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let grants = discovery["grant_types_supported"].as_array().unwrap();
    assert!(grants.iter().any(|g| g == DEVICE_GRANT), "{discovery}");
}
