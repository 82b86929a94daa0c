//! Accounts, bearer auth, cloud instances and the realtime grant.

use serde_json::json;

use crate::helpers::{assert_status, spawn_app, spawn_app_with, strings};
use crate::web::{browser, page};

#[tokio::test]
async fn signup_login_and_bearer_auth() {
    let app = spawn_app().await;
    let u = app.signup().await;
    assert!(u.id.starts_with("user-"), "{}", u.id);
    assert!(
        !u.id.contains("example"),
        "ids are not derived from the email"
    );
    assert!(u.access.starts_with("access-") && u.refresh.starts_with("refresh-"));
    assert_eq!(
        u.body["user"]["isAdmin"], false,
        "nobody is admin by default"
    );
    assert_eq!(u.body["user"]["subscription"]["id"], "plus");

    // Tokens are stored only as hashes.
    let db = app.db.as_ref().unwrap();
    let n: i64 = sqlx::query_scalar("select count(*) from cloud_sessions where access_token_hash = $1 or refresh_token_hash = $2")
        .bind(&u.access)
        .bind(&u.refresh)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "raw tokens must not be stored");

    let (status, body) = app.get("/v1/account", &u.access).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["id"], u.id.as_str());
    let orgs = body["organizations"].as_array().unwrap();
    assert_eq!(orgs.len(), 1);
    assert_eq!(orgs[0]["role"], "owner", "the personal org is owned");

    let (status, body) = app.get("/v1/account", "access-nope").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "unauthorized");

    let (status, body) = app.login(&u.email.to_uppercase(), &u.password).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.login(&u.email, "wrong password").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_credentials");
    let (status, body) = app.login("nobody@example.com", "whatever1").await;
    assert_eq!(status, 401, "unknown email answers like a wrong password");
    assert_eq!(body["error"], "invalid_credentials");

    // Logout revokes the token.
    assert_status(app.post("/v1/web/logout", &u.access, json!({})).await, 200);
    assert_status(app.get("/v1/account", &u.access).await, 401);
}

#[tokio::test]
async fn duplicate_signup_is_409_and_bad_input_400() {
    let app = spawn_app().await;
    let u = app.signup().await;
    for (body, expected) in [
        (
            json!({"email": u.email.to_uppercase(), "displayName": "X", "password": "another password"}),
            409,
        ),
        (json!({"email": "x@example.com", "displayName": "X"}), 400),
        (
            json!({"email": "not-an-email", "displayName": "X", "password": "long enough"}),
            400,
        ),
        (
            json!({"email": "y@example.com", "displayName": "X", "password": "short"}),
            400,
        ),
    ] {
        let (status, answer) = app.post_public("/v1/web/signup", body.clone()).await;
        assert_eq!(status, expected, "{body}: {answer}");
    }
    let users: i64 = sqlx::query_scalar("select count(*) from cloud_users")
        .fetch_one(&app.db.as_ref().unwrap().pool)
        .await
        .unwrap();
    assert_eq!(users, 1, "refused signups create nothing");
}

#[tokio::test]
async fn cloud_instances_register_once_per_user() {
    let app = spawn_app().await;
    let [a, b] = app.signups().await;
    let laptop = json!({"id": "desktop-1234", "name": "Laptop"});
    let (status, body) = app.post("/v1/cloud-instances", &a.access, laptop).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["cloudInstance"]["id"], "desktop-1234");
    assert!(body["cloudInstance"]["endpoints"]["realtimeBaseUrl"].is_string());
    for (why, user, body, expected) in [
        (
            "again by its holder",
            &a,
            json!({"id": "desktop-1234"}),
            200,
        ),
        ("by another user", &b, json!({"id": "desktop-1234"}), 409),
        ("without an id", &b, json!({}), 400),
    ] {
        let (status, answer) = app.post("/v1/cloud-instances", &user.access, body).await;
        assert_eq!(status, expected, "{why}: {answer}");
    }

    let (status, body) = app.get("/v1/bootstrap", &a.access).await;
    assert_eq!(status, 200, "{body}");
    let ids = strings(&body["cloudInstances"], "id");
    assert_eq!(
        ids,
        vec![format!("instance-{}", a.id).as_str(), "desktop-1234"]
    );
}

#[tokio::test]
async fn realtime_access_binds_user_and_instance() {
    let app = spawn_app().await;
    let [a, b] = app.signups().await;
    app.post("/v1/cloud-instances", &a.access, json!({"id": "desk-a"}))
        .await;

    let (status, body) = app.grant("realtime", &a.access, "desk-a").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["userId"], a.id.as_str());
    assert_eq!(body["cloudInstanceId"], "desk-a");
    let org = body["organizationId"].as_str().unwrap();
    assert!(org.starts_with("org-"));
    assert_eq!(body["organizationIds"], json!([org]));

    let canonical = format!("instance-{}", a.id);
    let not_found = Some("Cloud access grant not found");
    for (why, body, expected, message) in [
        (
            "the canonical instance stays valid",
            json!({"accessToken": a.access, "cloudInstanceId": canonical}),
            200,
            None,
        ),
        (
            "another user's instance",
            json!({"accessToken": b.access, "cloudInstanceId": "desk-a"}),
            404,
            not_found,
        ),
        (
            "an unknown token",
            json!({"accessToken": "access-x", "cloudInstanceId": "desk-a"}),
            404,
            None,
        ),
        ("no instance", json!({"accessToken": a.access}), 400, None),
    ] {
        let (status, answer) = app.internal("/v1/internal/realtime/access", body).await;
        assert_eq!(status, expected, "{why}: {answer}");
        if let Some(message) = message {
            assert_eq!(answer["message"], message, "{why}");
        }
    }
    // A user token is not the service token.
    let (status, _) = app
        .post(
            "/v1/internal/realtime/access",
            &a.access,
            json!({"accessToken": a.access, "cloudInstanceId": "desk-a"}),
        )
        .await;
    assert_eq!(status, 401);

    // The typed client agrees with the wire.
    let client = app.internal_client();
    // The holder of the instance is granted (as themself); another user is not.
    for (user, granted) in [(&a, true), (&b, false)] {
        let request = cloud_common::internal::RealtimeAccessRequest {
            access_token: user.access.clone(),
            cloud_instance_id: "desk-a".into(),
        };
        let got = client.realtime_access(&request).await.unwrap();
        let expected = granted.then(|| a.id.clone());
        assert_eq!(got.map(|g| g.user_id), expected, "{}", user.email);
    }
}

#[tokio::test]
async fn unknown_instance_ids_are_claimed_on_first_use_within_bounds() {
    let app = spawn_app_with(&[("CHATONS_MAX_INSTANCES_PER_USER", "2")]).await;
    let [a, b] = app.signups().await;
    // The desktop's locally generated id, never registered: claimed by the first caller.
    let local = uuid::Uuid::new_v4().to_string();
    let (status, body) = app.grant("realtime", &a.access, &local).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["cloudInstanceId"], local.as_str());
    let (status, _) = app.grant("realtime", &a.access, &local).await;
    assert_eq!(status, 200, "the holder keeps using it");
    // Another user naming it (or the first user's canonical id) is refused.
    assert_status(app.grant("realtime", &b.access, &local).await, 404);
    let (status, _) = app
        .grant("realtime", &b.access, &format!("instance-{}", a.id))
        .await;
    assert_eq!(status, 404);
    let (status, body) = app
        .post("/v1/cloud-instances", &b.access, json!({"id": local}))
        .await;
    assert_eq!(status, 409, "{body}");
    // The runtime grant claims the same way.
    let second = uuid::Uuid::new_v4().to_string();
    let (status, body) = app.grant("runtime", &a.access, &second).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["cloudInstance"]["id"], second.as_str());
    let (_, boot) = app.get("/v1/bootstrap", &a.access).await;
    let ids = strings(&boot["cloudInstances"], "id");
    assert!(
        ids.contains(&local.as_str()) && ids.contains(&second.as_str()),
        "{boot}"
    );
    // Bounded: a third id is refused, with a clear error where there is a body to read.
    let third = uuid::Uuid::new_v4().to_string();
    assert_status(app.grant("realtime", &a.access, &third).await, 404);
    let (status, body) = app
        .post("/v1/cloud-instances", &a.access, json!({"id": third}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "instance_limit_reached");
    // Ids are validated (length, characters) and nothing is claimed for a bad one.
    for bad in ["a/b", "x y", "semi;colon", &"z".repeat(201)] {
        let (status, _) = app.grant("realtime", &b.access, bad).await;
        assert_eq!(status, 404, "{bad}");
        let (status, body) = app
            .post("/v1/cloud-instances", &b.access, json!({"id": bad}))
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    // Removing one frees a place.
    let (status, _) = app
        .delete(&format!("/v1/cloud-instances/{second}"), &b.access)
        .await;
    assert_eq!(status, 404, "not theirs");
    let (status, _) = app
        .delete(&format!("/v1/cloud-instances/{second}"), &a.access)
        .await;
    assert_eq!(status, 200);
    assert_status(app.grant("realtime", &a.access, &third).await, 200);
}

#[tokio::test]
async fn bootstrap_without_pagination_returns_everything() {
    let app = spawn_app().await;
    let u = app.signup().await;
    let (_, boot) = app.get("/v1/bootstrap", &u.access).await;
    let default_project = boot["projects"][0]["id"].as_str().unwrap().to_owned();
    // More than any page: 210 projects and 210 conversations.
    let mut project_ids = vec![default_project.clone()];
    for n in 0..210 {
        let (status, body) = app
            .post(
                "/v1/projects",
                &u.access,
                json!({"name": format!("P{n:03}")}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        project_ids.push(body["project"]["id"].as_str().unwrap().to_owned());
    }
    let mut conversation_ids = Vec::new();
    for n in 0..210 {
        let (status, body) = app
            .post(
                "/v1/conversations",
                &u.access,
                json!({"projectId": default_project, "title": format!("C{n:03}")}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        conversation_ids.push(body["conversation"]["id"].as_str().unwrap().to_owned());
    }
    let ids = |v: &serde_json::Value, key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let (status, boot) = app.get("/v1/bootstrap", &u.access).await;
    assert_eq!(status, 200);
    assert_eq!(sorted(ids(&boot, "projects")), sorted(project_ids.clone()));
    assert_eq!(
        sorted(ids(&boot, "conversations")),
        sorted(conversation_ids.clone())
    );
    assert!(
        boot.get("nextCursor").is_none(),
        "nothing was left out: {}",
        boot["nextCursor"]
    );

    // A client that asks for pages gets pages and a cursor until the end.
    let (mut projects, mut conversations, mut pages) = (Vec::new(), Vec::new(), 0);
    let mut path = "/v1/bootstrap?limit=100".to_owned();
    loop {
        let (status, page) = app.get(&path, &u.access).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        assert!(page["projects"].as_array().unwrap().len() <= 100);
        projects.extend(ids(&page, "projects"));
        conversations.extend(ids(&page, "conversations"));
        match page["nextCursor"].as_str() {
            Some(c) => path = format!("/v1/bootstrap?limit=100&cursor={c}"),
            None => {
                assert!(page["nextCursor"].is_null(), "{page}");
                break;
            }
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(sorted(projects), sorted(project_ids));
    assert_eq!(sorted(conversations), sorted(conversation_ids));
    assert_status(app.get("/v1/bootstrap?cursor=%21%21", &u.access).await, 400);
    assert_status(app.get("/v1/bootstrap?limit=0", &u.access).await, 400);
}

#[tokio::test]
async fn the_first_systems_form_posts_redirect_with_a_session_and_need_csrf() {
    let app = spawn_app().await;
    let b = browser();
    let csrf = cloud_testkit::oidc::csrf_from(&page(&b, app.url("/cloud/signup")).await);
    let email = format!("form{}@example.com", cloud_testkit::random_token());
    let signup = |csrf: Option<&str>, email: &str| {
        let mut form = vec![
            ("email", email.to_owned()),
            ("displayName", "Form User".to_owned()),
            ("password", "correct horse battery".to_owned()),
            ("return_to", "/cloud/providers".to_owned()),
        ];
        if let Some(c) = csrf {
            form.push(("csrf_token", c.to_owned()));
        }
        b.post(app.url("/v1/web/signup")).form(&form).send()
    };
    // Without the CSRF token nothing happens.
    let resp = signup(None, &email).await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.headers().get("set-cookie").is_none());
    assert_status(app.get("/v1/bootstrap", "x").await, 401);
    // With it: the account, a session cookie and the first system's 302.
    let resp = signup(Some(&csrf), &email).await.unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], "/cloud/providers");
    let cookies: Vec<&str> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("chatons_cloud_session=") && c.contains("HttpOnly")),
        "{cookies:?}"
    );
    let account = b.get(app.url("/cloud/account")).send().await.unwrap();
    assert_eq!(account.status(), 200);
    assert!(account.text().await.unwrap().contains(&email));
    // Signed in now: the form's token is bound to the new session.
    assert_eq!(signup(Some(&csrf), &email).await.unwrap().status(), 400);
    let csrf = cloud_testkit::oidc::csrf_from(&page(&b, app.url("/cloud/signup")).await);
    let resp = signup(Some(&csrf), &email).await.unwrap();
    assert_eq!(resp.status(), 409, "the address is taken");

    // Login form: CSRF required, wrong password 401, success 302 with the cookie.
    let other = browser();
    let csrf = cloud_testkit::oidc::csrf_from(&page(&other, app.url("/cloud/login")).await);
    let login = |csrf: Option<&str>, password: &str| {
        let mut form = vec![
            ("email", email.clone()),
            ("password", password.to_owned()),
            ("return_to", "https://evil.example/steal".to_owned()),
        ];
        if let Some(c) = csrf {
            form.push(("csrf_token", c.to_owned()));
        }
        other.post(app.url("/v1/web/login")).form(&form).send()
    };
    let resp = login(None, "correct horse battery").await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.headers().get("set-cookie").is_none());
    let resp = login(Some(&csrf), "wrong password!").await.unwrap();
    assert_eq!(resp.status(), 401);
    let resp = login(Some(&csrf), "correct horse battery").await.unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(
        resp.headers()["location"],
        "/cloud/account?notice=welcome",
        "a foreign return_to is not followed"
    );
    assert!(resp.headers().get("set-cookie").is_some());
    // JSON clients keep the JSON answers.
    let (status, body) = app.login(&email, "correct horse battery").await;
    assert_eq!(status, 200, "{body}");
}
