//! The app home in a real browser: Debian's headless Chromium, driven over WebDriver (chromedriver on
//! a free local port) by fantoccini. `scripts/install_browser` installs both (`scripts/test` runs it);
//! without them these tests fail, never skip. Screenshots of the main pages go to
//! `target/ui-screenshots/`.

use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use hyper_util::client::legacy::connect::HttpConnector;
use reqwest::Method;
use serde_json::{Value, json};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{TestApp, body};
use crate::ui::{deliver_conversation, sign_in_link, spawn_ui_app};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// A phone's viewport: the pages are made for it first.
const PHONE: (u32, u32) = (412, 915);

/// A headless Chromium session under its own chromedriver. `run` closes the session (which quits
/// Chromium) whether the steps pass or panic; dropping it stops chromedriver.
struct Browser {
    client: Client,
    driver: Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

impl Browser {
    async fn start() -> Self {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(binary).exists(),
                "{binary} is missing: the browser tests need Debian's chromium and chromium-driver; \
                 run scripts/install_browser (scripts/test does)"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("{url}/status")).await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                         "--lang=en-US", "--hide-scrollbars",
                         format!("--window-size={},{}", PHONE.0, PHONE.1)],
            }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&url)
            .await
            .expect("a Chromium session through chromedriver");
        Self { client, driver }
    }

    /// Runs the steps of a test, then ends the browser session however they ended.
    async fn run(&self, steps: impl std::future::Future<Output = ()>) {
        let outcome = AssertUnwindSafe(steps).catch_unwind().await;
        let _ = self.client.clone().close().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
    }

    async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .expect("find")
            .len()
    }

    /// Waits until exactly `n` elements match (a page may still be loading).
    async fn wait_count(&self, css: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = self.count(css).await;
            if found == n {
                return;
            }
            assert!(Instant::now() < deadline, "{found} of {css}, not {n}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn text(&self, css: &str) -> String {
        self.wait_for(css).await.text().await.expect("text")
    }

    async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("url");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// Saves what the browser shows as `target/ui-screenshots/<name>.png`.
    async fn screenshot(&self, name: &str) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Only the chromedriver this test started, by its own handle.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

async fn seed(app: &TestApp, key: &str) {
    let mut memories: Vec<Value> = (1..=40)
        .map(|i| json!({"content": format!("Daily note {i}: walked {i} km and read {i} pages"), "tags": ["daily"]}))
        .collect();
    memories.extend([
        json!({"content": "Sam drives a red Volvo to the climbing gym on Tuesdays", "tags": ["sam", "cars"], "category": "interesting"}),
        json!({"content": "Mia's birthday is on March 3rd; she likes lemon cake", "tags": ["mia"], "category": "system"}),
        json!({"content": "The spare key is under the blue flower pot", "tags": ["home"]}),
    ]);
    for chunk in memories.chunks(50) {
        let response = app
            .request(Method::POST, "/v1/memories/batch", key)
            .json(&json!({"memories": chunk}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

#[tokio::test]
async fn browser_signs_in_by_link_searches_edits_deletes_and_restores() {
    let app = spawn_ui_app().await;
    let key = app.user_with_key("omi-user-1").await;
    seed(&app, &key).await;
    deliver_conversation(&app, &key, "omi-user-1").await;
    let browser = Browser::start().await;
    browser
        .run(async {
            // The signed link signs in and lands on the timeline, away from the signed address.
            browser.goto(&sign_in_link(&app, "omi-user-1").await).await;
            browser.wait_for("#memories").await;
            assert_eq!(browser.path().await, "/app");
            assert_eq!(browser.count("#memories > li").await, 25);
            browser.screenshot("timeline").await;

            // Infinite scroll: the next page arrives when the end of the list comes into view.
            browser
                .client
                .execute(
                    "document.querySelector('a[data-more]').scrollIntoView();",
                    vec![],
                )
                .await
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while browser.count("#memories > li").await <= 25 {
                assert!(Instant::now() < deadline, "the next page did not load");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(
                browser.count("#memories > li").await >= 44,
                "all memories, then no more link"
            );
            assert_eq!(browser.count("a[data-more]").await, 0);

            // Search by words, with highlighted matches.
            browser.goto(&app.url("/app/search")).await;
            browser
                .wait_for("#q")
                .await
                .send_keys("red volvo")
                .await
                .unwrap();
            browser
                .wait_for("input[name=mode][value=text]")
                .await
                .click()
                .await
                .unwrap();
            browser
                .wait_for("#search button[type=submit]")
                .await
                .click()
                .await
                .unwrap();
            browser.wait_for("#results").await;
            let marks: Vec<String> = {
                let mut texts = Vec::new();
                for mark in browser
                    .client
                    .find_all(Locator::Css("#results mark"))
                    .await
                    .unwrap()
                {
                    texts.push(mark.text().await.unwrap());
                }
                texts
            };
            assert_eq!(marks, vec!["red", "Volvo"]);
            browser.screenshot("search-results").await;

            // Open it, edit it, and see the new version in its history.
            browser
                .wait_for("#results a.memory-link")
                .await
                .click()
                .await
                .unwrap();
            let content = browser.wait_for("#content").await;
            content.clear().await.unwrap();
            content
                .send_keys("Sam drives a green Volvo to the climbing gym on Tuesdays")
                .await
                .unwrap();
            browser.wait_for("#save").await.click().await.unwrap();
            browser.wait_for(".message.notice").await;
            assert!(browser.text(".message.notice").await.starts_with("Saved"));
            assert_eq!(browser.text("#current-version").await, "2");
            assert_eq!(browser.count("#history > li").await, 2);
            assert_eq!(browser.text("#history > li:first-child del").await, "red");
            assert_eq!(browser.text("#history > li:first-child ins").await, "green");
            browser
                .client
                .execute(
                    "document.getElementById('history-heading').scrollIntoView();",
                    vec![],
                )
                .await
                .unwrap();
            browser.screenshot("memory-history").await;

            // Delete (after confirming), then restore.
            browser.wait_for("#delete").await.click().await.unwrap();
            assert!(
                browser
                    .client
                    .get_alert_text()
                    .await
                    .unwrap()
                    .starts_with("Delete this memory?")
            );
            browser.client.accept_alert().await.unwrap();
            browser.wait_for("#restore").await;
            assert!(browser.text(".message.notice").await.starts_with("Deleted"));
            browser.wait_for("#restore").await.click().await.unwrap();
            browser.wait_for("#edit").await;
            assert_eq!(browser.text(".message.notice").await, "Restored.");

            // A conversation: overview, transcript by speaker, derived memories; complete one of its tasks.
            browser.goto(&app.url("/app/conversations")).await;
            browser
                .wait_for("#conversations a.memory-link")
                .await
                .click()
                .await
                .unwrap();
            browser.wait_for(".transcript").await;
            assert!(browser.count(".transcript > li").await >= 2);
            assert!(browser.count("#derived > li").await >= 1);
            browser.screenshot("conversation").await;
            let open_tasks = browser.count(".tasks li.task:not(.done)").await;
            assert!(open_tasks >= 1);
            browser
                .wait_for(".tasks li.task:not(.done) button.check")
                .await
                .click()
                .await
                .unwrap();
            browser
                .wait_count(".tasks li.task:not(.done)", open_tasks - 1)
                .await;
            browser.wait_count(".tasks li.task.done", 1).await;

            browser.goto(&app.url("/app/charts")).await;
            browser.wait_for("#chart-weekly").await;
            assert!(browser.count("#chart-weekly rect.bar").await == 26);
            browser.screenshot("charts").await;

            browser.goto(&app.url("/app/activity")).await;
            browser.wait_for("#events").await;
            assert!(browser.text("#events").await.contains("memory.restore"));
            browser.screenshot("activity").await;

            // The same timeline on a computer's screen.
            browser.client.set_window_size(1280, 900).await.unwrap();
            browser.goto(&app.url("/app")).await;
            browser.wait_for("#memories").await;
            browser.screenshot("timeline-desktop").await;
        })
        .await;
}

#[tokio::test]
async fn browser_signs_in_with_an_api_key_but_not_with_a_bare_uid() {
    let app = spawn_ui_app().await;
    let key = app.user_with_key("omi-user-1").await;
    app.create_memory(&key, "The spare key is under the blue flower pot")
        .await;
    let browser = Browser::start().await;
    browser
        .run(async {
            // As Omi opens the app home: the uid alone shows the sign-in page, no memories.
            browser.goto(&app.url("/app?uid=omi-user-1")).await;
            assert_eq!(browser.text("h1").await, "Sign in");
            assert!(
                !browser
                    .client
                    .source()
                    .await
                    .unwrap()
                    .contains("flower pot")
            );
            browser.screenshot("sign-in").await;

            browser
                .wait_for("#key")
                .await
                .send_keys(&key)
                .await
                .unwrap();
            browser
                .wait_for("form[action='/app/sign-in'] button")
                .await
                .click()
                .await
                .unwrap();
            browser.wait_for("#memories").await;
            assert!(browser.text("#memories").await.contains("flower pot"));

            // Sign-out ends it.
            browser
                .wait_for(".sign-out button")
                .await
                .click()
                .await
                .unwrap();
            assert!(browser.text(".message.notice").await.contains("signed out"));
            browser.goto(&app.url("/app")).await;
            assert_eq!(browser.text("h1").await, "Sign in");
        })
        .await;
}

#[tokio::test]
async fn browser_session_cannot_open_another_users_memory_nor_post_without_csrf() {
    let app = spawn_ui_app().await;
    let key_a = app.user_with_key("user-a").await;
    let key_b = app.user_with_key("user-b").await;
    let own = app
        .create_memory(&key_a, "A's grocery list: oats, apples")
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let theirs = app.create_memory(&key_b, "B's diary entry").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let browser = Browser::start().await;
    browser
        .run(async {
        browser.goto(&sign_in_link(&app, "user-a").await).await;
        browser.wait_for("#memories").await;

        browser
            .goto(&app.url(&format!("/app/memories/{theirs}")))
            .await;
        assert_eq!(browser.text("h1").await, "Not Found");
        assert!(browser.text(".error-reason").await.contains("not yours"));
        assert!(!browser.client.source().await.unwrap().contains("diary"));
        browser.screenshot("not-found").await;

        // A POST from the signed-in page without the form's token is refused.
        browser
            .goto(&app.url(&format!("/app/memories/{own}")))
            .await;
        browser.wait_for("#edit").await;
        let status = browser
            .client
            .execute_async(
                "const [url, done] = arguments;
                 fetch(url, {method: 'POST', credentials: 'same-origin',
                             headers: {'content-type': 'application/x-www-form-urlencoded'}, body: ''})
                   .then(r => done(r.status), e => done(String(e)));",
                vec![json!(format!("/app/memories/{own}/delete"))],
            )
            .await
            .unwrap();
        assert_eq!(status, json!(403));
        let stored = body(
            app.request(Method::GET, &format!("/v1/memories/{own}"), &key_a)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert!(stored["deleted_at"].is_null());
        })
        .await;
}
