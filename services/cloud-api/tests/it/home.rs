//! `GET /` (a portal page for browsers, a JSON description for API clients), `/docs` (the API
//! reference page) and the vendored Redoc bundle it loads.

use crate::helpers::{TestApp, spawn_app};

fn content_type(r: &reqwest::Response) -> &str {
    r.headers()["content-type"].to_str().unwrap()
}

async fn get_accepting(app: &TestApp, accept: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(app.url("/"))
        .header("accept", accept)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn root_is_a_page_for_browsers() {
    let app = spawn_app().await;
    let r = get_accepting(&app, "text/html,application/xhtml+xml,*/*;q=0.8").await;
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert!(content_type(&r).starts_with("text/html"));
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let body = r.text().await.unwrap();
    for needle in [
        "<h1>Chatons Cloud</h1>",
        "href=\"/cloud/login\"",
        "href=\"/cloud/signup\"",
        "href=\"/.well-known/openid-configuration\"",
        "href=\"/docs\"",
        "href=\"/static/portal.css\"",
    ] {
        assert!(body.contains(needle), "{needle} missing in {body}");
    }
    assert!(!body.contains("<script"), "the root page has no script");
    // No Accept header at all (curl, a plain link): the page too.
    let r = reqwest::get(app.url("/")).await.unwrap();
    assert!(content_type(&r).starts_with("text/html"));
}

#[tokio::test]
async fn root_describes_the_service_to_json_clients() {
    let app = spawn_app().await;
    let r = get_accepting(&app, "application/json").await;
    assert_eq!(r.status(), 200);
    assert!(content_type(&r).starts_with("application/json"));
    let vary: Vec<_> = r
        .headers()
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(vary.iter().any(|v| v.contains("accept")), "{vary:?}");
    let doc: serde_json::Value = r.json().await.unwrap();
    assert_eq!(doc["name"], "Chatons Cloud");
    assert_eq!(doc["version"], env!("CARGO_PKG_VERSION"));
    let links = &doc["links"];
    for (key, suffix) in [
        ("portal", "/cloud"),
        ("discovery", "/.well-known/openid-configuration"),
        ("openapi", "/openapi.json"),
        ("docs", "/docs"),
    ] {
        let url = links[key]
            .as_str()
            .unwrap_or_else(|| panic!("links.{key} in {doc}"));
        assert!(
            url.starts_with("http") && url.ends_with(suffix),
            "{key}: {url}"
        );
    }
    // Each link answers here.
    for key in ["discovery", "openapi", "docs"] {
        let path = url::Url::parse(links[key].as_str().unwrap())
            .unwrap()
            .path()
            .to_owned();
        let status = reqwest::get(app.url(&path)).await.unwrap().status();
        assert_eq!(status, 200, "{key}: {path}");
    }
}

#[tokio::test]
async fn docs_page_loads_the_vendored_renderer() {
    let app = spawn_app().await;
    let r = reqwest::get(app.url("/docs")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(content_type(&r).starts_with("text/html"));
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let script_src = csp
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("script-src"))
        .unwrap_or_else(|| panic!("no script-src in {csp}"));
    assert_eq!(
        script_src, "script-src 'self'",
        "no inline script, no eval, no CDN"
    );
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    let body = r.text().await.unwrap();
    assert!(
        body.contains("<redoc spec-url=\"/openapi.json\">"),
        "{body}"
    );
    assert!(
        body.contains("<script src=\"/assets/redoc.standalone.js\"></script>"),
        "{body}"
    );
    assert_eq!(
        body.matches("<script").count(),
        1,
        "only the bundle, no inline script"
    );
    assert!(
        !body.contains("https://"),
        "nothing from another origin: {body}"
    );

    let r = reqwest::get(app.url("/assets/redoc.standalone.js"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let cache = r.headers()["cache-control"].to_str().unwrap().to_owned();
    assert!(cache.starts_with("public, max-age="), "{cache}");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let js = r.bytes().await.unwrap();
    assert!(js.len() > 500_000, "the whole bundle ({} bytes)", js.len());
    assert!(
        js.starts_with(b"/*! For license information"),
        "the Redoc standalone bundle"
    );
}
