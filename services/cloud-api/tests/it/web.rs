//! The browser side of the tests: a cookie-keeping client, pages and form posts.

use cloud_testkit::oidc::csrf_from;

use crate::helpers::TestApp;

/// A browser session: keeps cookies, does not follow redirects.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("browser")
}

/// The HTML of `url` as `b` sees it.
pub async fn page(b: &reqwest::Client, url: impl reqwest::IntoUrl) -> String {
    b.get(url)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("page text")
}

/// Posts `form` to `url` from `b`.
pub async fn submit<F: serde::Serialize + ?Sized>(
    b: &reqwest::Client,
    url: impl reqwest::IntoUrl,
    form: &F,
) -> reqwest::Response {
    b.post(url).form(form).send().await.expect("form post")
}

/// Fills the portal's login form (with the page's CSRF token) in `b`.
pub async fn portal_login(
    app: &TestApp,
    b: &reqwest::Client,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let csrf = csrf_from(&page(b, app.url("/cloud/login")).await);
    let form = [
        ("email", email),
        ("password", password),
        ("csrf_token", csrf.as_str()),
    ];
    submit(b, app.url("/cloud/login"), &form).await
}

/// The value of the `name` cookie that `resp` sets.
#[allow(dead_code)]
pub fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(prefix.as_str()))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
}

/// The `Location` of a redirect.
#[allow(dead_code)]
pub fn location(resp: &reqwest::Response) -> &str {
    resp.headers()["location"].to_str().expect("location")
}
