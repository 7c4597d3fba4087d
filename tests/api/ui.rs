//! The app home (`/app`) through plain HTTP: who may sign in and how, CSRF, isolation between users,
//! and error pages. The same pages in a real browser: `ui_browser.rs`.

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::helpers::{TestApp, body, on_sqlite, spawn_app_with};

pub const LINK_SECRET: &str = "test-link-secret-0123456789abcdef-xyz";
pub const WEBHOOK_TOKEN: &str = "7Qm2Xr9LbV4sK8nW1cYt6PdZ3hJf0GaE";

/// A server with sign-in links and the conversation webhook on.
pub async fn spawn_ui_app() -> TestApp {
    spawn_app_with(|c| {
        c.ui.link_secret = Some(LINK_SECRET.to_owned().into());
        c.webhook_token = Some(WEBHOOK_TOKEN.to_owned().into());
    })
    .await
}

/// A sign-in link for `uid`, from the admin API.
pub async fn sign_in_link(app: &TestApp, uid: &str) -> String {
    let response = app
        .admin(Method::POST, &format!("/v1/admin/users/{uid}/ui-link"))
        .json(&json!({"public_url": format!("http://{}", app.addr)}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    body(response).await["url"].as_str().unwrap().to_owned()
}

/// Delivers the shared fixture conversation for `uid` and waits until it has been processed.
pub async fn deliver_conversation(app: &TestApp, key: &str, uid: &str) -> Value {
    let fixture = std::fs::read(format!(
        "{}/../shared/fixtures/omi/conversation_created_full.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("the shared Omi fixtures beside the repository");
    let response = app
        .client
        .post(app.url(&format!(
            "/webhooks/omi/conversation?token={WEBHOOK_TOKEN}&uid={uid}"
        )))
        .header("content-type", "application/json")
        .body(fixture)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let list = body(
            app.request(Method::GET, "/v1/conversations", key)
                .send()
                .await
                .unwrap(),
        )
        .await;
        if let Some(first) = list["items"].as_array().and_then(|a| a.first()) {
            return first.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the conversation was not processed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A browser without a browser: keeps cookies, follows no redirects, reads tokens out of pages.
pub struct Visitor<'a> {
    app: &'a TestApp,
    client: Client,
    cookies: BTreeMap<String, String>,
}

impl<'a> Visitor<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            client: Client::builder().redirect(Policy::none()).build().unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    fn remember(&mut self, response: &Response) {
        for value in response.headers().get_all(SET_COOKIE) {
            let cookie = value.to_str().unwrap();
            let (pair, attributes) = cookie.split_once(';').unwrap_or((cookie, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn has_session(&self) -> bool {
        self.cookies.contains_key("am_session")
    }

    pub async fn get(&mut self, path_or_url: &str) -> Response {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            self.app.url(path_or_url)
        };
        let response = self
            .client
            .get(url)
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.remember(&response);
        response
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Response {
        let encoded = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let response = self
            .client
            .post(self.app.url(path))
            .header(COOKIE, self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encoded)
            .send()
            .await
            .unwrap();
        self.remember(&response);
        response
    }

    /// Opens a page and returns its HTML, asserting the status.
    pub async fn page(&mut self, path: &str, status: u16) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), status, "GET {path}");
        html(response).await
    }

    /// Signs in with a link and lands on the timeline.
    pub async fn sign_in_with_link(&mut self, link: &str) {
        let response = self.get(link).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&response), "/app");
        assert!(self.has_session(), "a session cookie");
    }

    /// The CSRF token of the signed-in session, as the pages carry it.
    pub async fn csrf(&mut self) -> String {
        let page = self.page("/app", 200).await;
        field_value(&page, "csrf").expect("a CSRF field on every signed-in page")
    }
}

pub fn location(response: &Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The body of an HTML page.
pub async fn html(response: Response) -> String {
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("text/html"),
        "an HTML page, got {content_type}"
    );
    response.text().await.unwrap()
}

/// `value` of the first input named `name`.
pub fn field_value(page: &str, name: &str) -> Option<String> {
    let at = page.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &page[at + name.len() + 15..];
    Some(rest[..rest.find('"')?].to_owned())
}

async fn create(app: &TestApp, key: &str, content: &str) -> String {
    app.create_memory(key, content).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn memory(app: &TestApp, key: &str, id: &str) -> Value {
    body(
        app.request(Method::GET, &format!("/v1/memories/{id}"), key)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn a_bare_uid_opens_no_session() {
    let app = spawn_ui_app().await;
    let key = app.user_with_key("omi-user-1").await;
    create(&app, &key, "Sam drives a red Volvo").await;
    let mut visitor = Visitor::new(&app);

    let page = visitor.page("/app?uid=omi-user-1", 200).await;
    assert!(page.contains("Sign in"), "{page}");
    assert!(!page.contains("red Volvo"), "no memory without proof");
    assert!(!visitor.has_session());

    // Nor any page behind it.
    let response = visitor.get("/app/search?q=volvo").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/app/sign-in");
    let response = visitor.get("/app").await;
    assert_eq!(location(&response), "/app/sign-in");
}

#[tokio::test]
async fn a_signed_link_signs_in_once_checked() {
    let app = spawn_ui_app().await;
    let key = app.user_with_key("omi-user-1").await;
    create(&app, &key, "Sam drives a red Volvo").await;
    let link = sign_in_link(&app, "omi-user-1").await;
    assert!(link.contains("/app?uid=omi-user-1&exp="), "{link}");

    let mut visitor = Visitor::new(&app);
    let response = visitor.get(&link).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("am_session="))
        .expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/app"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http here: {cookie}");
    let page = visitor.page("/app", 200).await;
    assert!(page.contains("Sam drives a red Volvo"), "{page}");
    // Omi opening the app home with the same uid keeps the session.
    let page = visitor.page("/app?uid=omi-user-1", 200).await;
    assert!(page.contains("Sam drives a red Volvo"));

    // Tampered links are refused and open nothing.
    for bad in [
        link.replace("uid=omi-user-1", "uid=omi-user-2"),
        link.replace("&sig=", "&sig=AAAA"),
        link.split("&sig=").next().unwrap().to_owned(),
    ] {
        let mut stranger = Visitor::new(&app);
        let response = stranger.get(&bad).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{bad}");
        let page = html(response).await;
        assert!(page.contains("not valid"), "{page}");
        assert!(!stranger.has_session());
    }
}

#[tokio::test]
async fn links_need_a_secret_and_behind_https_cookies_are_secure() {
    let app = spawn_app_with(|c| {
        c.ui.public_url = Some("https://memory.example".into());
    })
    .await;
    app.user_with_key("u1").await;
    let response = app
        .admin(Method::POST, "/v1/admin/users/u1/ui-link")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let mut visitor = Visitor::new(&app);
    let response = visitor.get("/app?uid=u1&exp=99999999999&sig=abc").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(html(response).await.contains("not enabled"));

    let response = visitor.get("/app/sign-in").await;
    let cookie = response
        .headers()
        .get(SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        cookie.contains("Secure") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
}

#[tokio::test]
async fn an_api_key_signs_in_through_the_form_with_its_token() {
    let app = spawn_ui_app().await;
    let key = app.user_with_key("omi-user-1").await;
    let mut visitor = Visitor::new(&app);
    let page = visitor.page("/app/sign-in", 200).await;
    let token = field_value(&page, "sign_in_token").unwrap();

    // Without the form's token (a cross-site post), nothing happens.
    let response = visitor
        .post(
            "/app/sign-in",
            &[("key", &key), ("sign_in_token", "forged")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(!visitor.has_session());

    let page = visitor.page("/app/sign-in", 200).await;
    let token_2 = field_value(&page, "sign_in_token").unwrap();
    assert_ne!(token, token_2, "a fresh token per form");
    let response = visitor
        .post(
            "/app/sign-in",
            &[("key", "am_not-a-key"), ("sign_in_token", &token_2)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let page = html(response).await;
    assert!(page.contains("not valid"));
    assert!(!visitor.has_session());

    // The page that said so carries the next form's token.
    let token_3 = field_value(&page, "sign_in_token").unwrap();
    let response = visitor
        .post(
            "/app/sign-in",
            &[("key", &key), ("sign_in_token", &token_3)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(visitor.has_session());
    let page = visitor.page("/app", 200).await;
    assert!(page.contains("Your memories"));

    // The sign-in is in the user's audit trail, made with that key.
    let audit = body(
        app.request(Method::GET, "/v1/audit", &key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let event = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "session.create")
        .expect("session.create audited");
    assert!(
        event["actor"].as_str().unwrap().starts_with("key:"),
        "{event}"
    );
    assert_eq!(event["details"]["method"], "api_key");
}

#[tokio::test]
async fn every_post_needs_the_sessions_csrf_token() {
    let app = spawn_ui_app().await;
    let key = app.user_with_key("omi-user-1").await;
    let id = create(&app, &key, "The spare key is under the blue pot").await;
    let mut visitor = Visitor::new(&app);
    visitor
        .sign_in_with_link(&sign_in_link(&app, "omi-user-1").await)
        .await;
    let csrf = visitor.csrf().await;
    let delete = format!("/app/memories/{id}/delete");

    for form in [vec![], vec![("csrf", "wrong-token")]] {
        let response = visitor.post(&delete, &form).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let request_id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let page = html(response).await;
        assert!(
            page.contains("did not come from your current session"),
            "{page}"
        );
        assert!(page.contains(&request_id), "the page names the request id");
    }
    assert!(memory(&app, &key, &id).await["deleted_at"].is_null());

    // A token of another session of the same user does not do either.
    let mut other = Visitor::new(&app);
    other
        .sign_in_with_link(&sign_in_link(&app, "omi-user-1").await)
        .await;
    let other_csrf = other.csrf().await;
    assert_ne!(other_csrf, csrf);
    let response = visitor.post(&delete, &[("csrf", &other_csrf)]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    let response = visitor.post(&delete, &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(!memory(&app, &key, &id).await["deleted_at"].is_null());

    // Sign-out too is a POST with the token, and ends the session for good.
    let response = visitor.post("/app/sign-out", &[]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let stolen = visitor.cookies.get("am_session").cloned().unwrap();
    let response = visitor.post("/app/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(location(&response), "/app/sign-in?signed_out=1");
    assert!(!visitor.has_session());
    visitor.cookies.insert("am_session".into(), stolen);
    let response = visitor.get("/app").await;
    assert_eq!(
        location(&response),
        "/app/sign-in",
        "the old cookie is dead"
    );
}

#[tokio::test]
async fn erasing_a_user_ends_their_sessions() {
    let app = spawn_ui_app().await;
    app.user_with_key("omi-user-1").await;
    let mut visitor = Visitor::new(&app);
    visitor
        .sign_in_with_link(&sign_in_link(&app, "omi-user-1").await)
        .await;
    visitor.page("/app", 200).await;
    let response = app
        .admin(Method::DELETE, "/v1/admin/users/omi-user-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = visitor.get("/app").await;
    assert_eq!(location(&response), "/app/sign-in");
}

#[tokio::test]
async fn a_session_sees_only_its_own_users_pages() {
    let app = spawn_ui_app().await;
    let key_a = app.user_with_key("user-a").await;
    let key_b = app.user_with_key("user-b").await;
    create(&app, &key_a, "A's own memory").await;
    let b_memory = create(&app, &key_b, "B's secret plan").await;
    let b_conversation = deliver_conversation(&app, &key_b, "user-b").await;
    let b_task = body(
        app.request(Method::GET, "/v1/tasks", &key_b)
            .send()
            .await
            .unwrap(),
    )
    .await["items"][0]["id"]
        .as_str()
        .expect("the fixture has action items")
        .to_owned();

    let mut a = Visitor::new(&app);
    a.sign_in_with_link(&sign_in_link(&app, "user-a").await)
        .await;
    let csrf = a.csrf().await;
    for path in [
        format!("/app/memories/{b_memory}"),
        format!(
            "/app/conversations/{}",
            b_conversation["id"].as_str().unwrap()
        ),
    ] {
        let page = a.page(&path, 404).await;
        assert!(page.contains("not yours"), "{page}");
        assert!(!page.contains("secret plan"));
    }
    for (path, form) in [
        (
            format!("/app/memories/{b_memory}/delete"),
            vec![("csrf", csrf.as_str())],
        ),
        (
            format!("/app/memories/{b_memory}/restore"),
            vec![("csrf", csrf.as_str())],
        ),
        (
            format!("/app/memories/{b_memory}/edit"),
            vec![
                ("csrf", csrf.as_str()),
                ("version", "1"),
                ("content", "taken over"),
                ("category", "manual"),
                ("visibility", "private"),
            ],
        ),
        (
            format!("/app/tasks/{b_task}"),
            vec![("csrf", csrf.as_str()), ("completed", "true")],
        ),
    ] {
        let response = a.post(&path, &form).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "POST {path}");
    }
    let b_view = memory(&app, &key_b, &b_memory).await;
    assert_eq!(b_view["content"], "B's secret plan");
    assert!(b_view["deleted_at"].is_null());

    // A's timeline and search show A's memories only.
    let page = a.page("/app", 200).await;
    assert!(page.contains("A's own memory"), "{page}");
    assert!(!page.contains("secret plan"));
    let page = a.page("/app/search?q=secret+plan&mode=text", 200).await;
    assert!(!page.contains("B's secret plan"), "{page}");
    assert!(page.contains("No memory matches"), "{page}");
}

#[tokio::test]
async fn edits_make_versions_and_stale_edits_are_explained() {
    let app = spawn_ui_app().await;
    let key = app.user_with_key("omi-user-1").await;
    let id = create(&app, &key, "Lunch with Mia on Friday").await;
    let mut visitor = Visitor::new(&app);
    visitor
        .sign_in_with_link(&sign_in_link(&app, "omi-user-1").await)
        .await;
    let csrf = visitor.csrf().await;
    let edit = format!("/app/memories/{id}/edit");
    let form = |version: &'static str, content: &'static str| {
        vec![
            ("version", version),
            ("content", content),
            ("category", "manual"),
            ("tags", "mia, food"),
            ("visibility", "private"),
        ]
    };
    let mut fields = form("1", "Lunch with Mia on Saturday");
    fields.push(("csrf", &csrf));
    let response = visitor.post(&edit, &fields).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&response),
        format!("/app/memories/{id}?notice=saved")
    );
    let stored = memory(&app, &key, &id).await;
    assert_eq!(stored["version"], 2);
    assert_eq!(stored["tags"], json!(["food", "mia"]));
    let page = visitor.page(&location(&response), 200).await;
    assert!(
        page.contains("<del>Friday</del>") && page.contains("<ins>Saturday</ins>"),
        "{page}"
    );
    assert!(page.contains("+#food"), "{page}");

    // Someone else changes it; an edit of the old version is not saved, and says why.
    let response = app
        .request(Method::PATCH, &format!("/v1/memories/{id}"), &key)
        .header("if-match", "\"2\"")
        .json(&json!({"content": "Lunch with Mia on Sunday"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut fields = form("2", "Lunch with Mia and Leo on Saturday");
    fields.push(("csrf", &csrf));
    let response = visitor.post(&edit, &fields).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let page = html(response).await;
    assert!(page.contains("changed after you opened it"), "{page}");
    assert!(
        page.contains("Lunch with Mia and Leo on Saturday"),
        "the draft is kept"
    );
    assert_eq!(
        memory(&app, &key, &id).await["content"],
        "Lunch with Mia on Sunday"
    );

    // Invalid input is a page with the reason, and nothing changes.
    let mut fields = form("3", "   ");
    fields.push(("csrf", &csrf));
    let response = visitor.post(&edit, &fields).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(html(response).await.contains("content: must not be empty"));
    assert_eq!(memory(&app, &key, &id).await["version"], 3);
}

#[tokio::test]
async fn failures_are_pages_with_a_reason_and_the_request_id() {
    let app = spawn_ui_app().await;
    app.user_with_key("omi-user-1").await;
    let mut visitor = Visitor::new(&app);
    visitor
        .sign_in_with_link(&sign_in_link(&app, "omi-user-1").await)
        .await;
    for (path, status, reason) in [
        (
            "/app/search?q=car&from=yesterday",
            400,
            "from: &quot;yesterday&quot; is not a date",
        ),
        ("/app/search?q=car&mode=fuzzy", 400, "is not a mode"),
        ("/app/memories/not-a-uuid", 400, "id: is not a UUID"),
        (
            "/app/memories/0193a0c4-0000-7000-8000-000000000000",
            404,
            "not yours",
        ),
        ("/app/no-such-page", 404, "does not exist"),
        (
            "/app/tasks?show=someday",
            400,
            "show must be open, done or all",
        ),
        ("/app/conversations?cursor=garbage", 400, "cursor"),
    ] {
        let response = visitor.get(path).await;
        assert_eq!(response.status(), status, "{path}");
        let request_id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let page = html(response).await;
        assert!(page.contains(reason), "{path}: {page}");
        assert!(page.contains("<h1>"), "{path}: a whole page");
        if status != 400 || !path.starts_with("/app/search") {
            assert!(page.contains(&request_id), "{path}: names the request");
        }
    }
}

#[tokio::test]
async fn pages_escape_what_they_show() {
    let app = spawn_ui_app().await;
    let key = app.user_with_key("omi-user-1").await;
    create(
        &app,
        &key,
        "<script>alert('x')</script> & <b>bold</b> plans",
    )
    .await;
    let mut visitor = Visitor::new(&app);
    visitor
        .sign_in_with_link(&sign_in_link(&app, "omi-user-1").await)
        .await;
    for path in ["/app", "/app/search?q=bold+plans&mode=text"] {
        let page = visitor.page(path, 200).await;
        assert!(!page.contains("<script>alert"), "{path}: {page}");
        assert!(!page.contains("<b>bold"), "{path}");
        assert!(page.contains("&lt;script&gt;"), "{path}: {page}");
    }
    let page = visitor
        .page("/app/search?q=bold+plans&mode=text", 200)
        .await;
    assert!(
        page.contains("<mark>bold</mark>") && page.contains("<mark>plans</mark>"),
        "{page}"
    );
    let response = visitor.get("/app").await;
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert_eq!(response.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn the_cli_mints_links_that_sign_in() {
    // The command finds the server's database through --data-dir: the embedded file.
    let app = spawn_app_with(|c| {
        on_sqlite(c);
        c.ui.link_secret = Some(LINK_SECRET.to_owned().into());
        c.webhook_token = Some(WEBHOOK_TOKEN.to_owned().into());
    })
    .await;
    app.user_with_key("omi-user-1").await;
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_angel-memory"))
            .env_remove("ANGEL_MEMORY_ADMIN_TOKEN")
            .env("ANGEL_MEMORY_UI__LINK_SECRET", LINK_SECRET)
            .arg("--data-dir")
            .arg(app.dir.path())
            .args(args)
            .output()
            .unwrap()
    };
    let base = format!("http://{}", app.addr);
    let output = run(&["ui", "link", "--uid", "omi-user-1", "--public-url", &base]);
    assert!(output.status.success(), "{output:?}");
    let link = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(
        link.starts_with(&format!("{base}/app?uid=omi-user-1&exp=")),
        "{link}"
    );
    let mut visitor = Visitor::new(&app);
    visitor.sign_in_with_link(&link).await;

    let output = run(&["ui", "link", "--uid", "nobody", "--public-url", &base]);
    assert_eq!(output.status.code(), Some(3), "unknown user");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_angel-memory"))
        .env_remove("ANGEL_MEMORY_UI__LINK_SECRET")
        .arg("--data-dir")
        .arg(app.dir.path())
        .args(["ui", "link", "--uid", "omi-user-1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(5), "no secret configured");
    assert!(String::from_utf8_lossy(&output.stderr).contains("ui.link_secret"));
}
