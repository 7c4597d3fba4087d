//! A real server per test: its own SQLite file in a temporary directory, its own port.

use angel_memory::config::Config;
use angel_memory::http::Application;
use angel_memory::store;
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::Value;
use std::net::SocketAddr;
use tempfile::TempDir;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: Client,
    pub dir: TempDir,
    /// The server's own PostgreSQL database when the tests run on PostgreSQL; dropped with the app.
    _database: Option<crate::test_database::TestDatabase>,
}

/// Starts a server with test settings; `adjust` may change the configuration first.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    angel_memory::tls::install_crypto_provider();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_owned(),
        admin_token: Some(ADMIN_TOKEN.to_owned().into()),
        ..Config::default()
    };
    config.rate_limit.enabled = false;
    // No embedding model unless a test asks for one (search tests): loading it costs every server
    // start a second of CPU, and its worker would compete with the feature under test.
    config.embedding.model_dir = dir.path().join("no-embedding-model");
    adjust(&mut config);
    // ANGEL_MEMORY_TEST_BACKEND=postgres: the same tests, each server on a fresh PostgreSQL database.
    let database =
        if crate::test_database::http_tests_use_postgres() && config.database_url.is_none() {
            let database = crate::test_database::TestDatabase::create("this test")
                .await
                .expect("ANGEL_MEMORY_TEST_BACKEND=postgres needs a reachable PostgreSQL");
            config.database_url = Some(database.url.clone());
            Some(database)
        } else {
            None
        };
    let store = store::open(&config).await.expect("open store");
    let app = Application::build(config, store).await.expect("build app");
    let addr = app.local_addr();
    tokio::spawn(app.run(std::future::pending()));
    TestApp {
        addr,
        client: Client::new(),
        dir,
        _database: database,
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn request(&self, method: Method, path: &str, key: &str) -> RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(key)
    }

    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.request(method, path, ADMIN_TOKEN)
    }

    /// Creates a user through the admin API and returns a fresh API key for them.
    pub async fn user_with_key(&self, uid: &str) -> String {
        let response = self
            .admin(Method::POST, "/v1/admin/users")
            .json(&serde_json::json!({"uid": uid}))
            .send()
            .await
            .unwrap();
        assert!(
            response.status() == 201 || response.status() == 409,
            "create user: {}",
            response.status()
        );
        let response = self
            .admin(Method::POST, &format!("/v1/admin/users/{uid}/keys"))
            .json(&serde_json::json!({"name": "test"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        body(response).await["key"]
            .as_str()
            .expect("key in response")
            .to_owned()
    }

    pub async fn create_memory(&self, key: &str, content: &str) -> Value {
        let response = self
            .request(Method::POST, "/v1/memories", key)
            .json(&serde_json::json!({"content": content}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "create {content:?}");
        body(response).await
    }
}

pub async fn body(response: Response) -> Value {
    let text = response.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// Asserts a problem+json error with this status and returns its document.
pub async fn problem(response: Response, status: u16) -> Value {
    assert_eq!(response.status(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    let doc = body(response).await;
    assert_eq!(doc["status"], status);
    assert!(
        doc["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "a reason: {doc}"
    );
    doc
}

impl TestApp {
    /// Creates a user (if needed) and an Omi Developer API key (`omi_dev_…`) for them.
    pub async fn user_with_omi_dev_key(&self, uid: &str) -> String {
        self.user_with_key(uid).await;
        let response = self
            .admin(Method::POST, &format!("/v1/admin/users/{uid}/keys"))
            .json(&serde_json::json!({"name": "omi client", "format": "omi_dev"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        body(response).await["key"]
            .as_str()
            .expect("key in response")
            .to_owned()
    }
}

/// The names of a JSON object's fields, sorted: to compare a response with a contract's field list.
pub fn fields(value: &Value) -> Vec<String> {
    let mut names: Vec<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect();
    names.sort();
    names
}

/// Sorted field names from a list.
pub fn names(list: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
    names.sort();
    names
}

/// Keeps a server on the embedded SQLite file whatever `ANGEL_MEMORY_TEST_BACKEND` says: for tests
/// that open that file themselves.
pub fn on_sqlite(config: &mut Config) {
    config.database_url = Some(format!(
        "sqlite:{}",
        config.data_dir.join("angel-memory.db").display()
    ));
}

/// A conversation as a client of the API creates it (no transcript, no overview), for store tests.
pub fn api_conversation(client_session_id: &str, title: &str) -> store::NewConversation {
    let now = angel_memory::domain::Timestamp::now();
    store::NewConversation {
        conversation: angel_memory::domain::Conversation {
            id: uuid::Uuid::new_v4().to_string(),
            title: title.into(),
            overview: String::new(),
            emoji: "🧠".into(),
            category: "other".into(),
            source: "external_integration".into(),
            language: "en".into(),
            created_at: now,
            started_at: Some(now),
            finished_at: Some(now),
            discarded: false,
            imported_by_this_app: false,
            geolocation: None,
            folder_name: None,
            apps_results: Vec::new(),
            memory_id: None,
            deliveries: 0,
            updated_at: now,
        },
        segments: Vec::new(),
        source_text: None,
        client_session_id: Some(client_session_id.into()),
    }
}
