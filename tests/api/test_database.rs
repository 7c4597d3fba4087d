//! Fresh PostgreSQL databases for tests, so tests run in parallel without seeing each other's rows.
//!
//! The server is found at `ANGEL_MEMORY_TEST_POSTGRES_URL` (default: the local one, trust auth). When
//! it cannot be reached, tests that need it say that they are skipped — unless
//! `ANGEL_MEMORY_REQUIRE_POSTGRES=1` (CI), which makes that a failure.

use sqlx::Connection;

const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/test";

fn server_url() -> String {
    std::env::var("ANGEL_MEMORY_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_SERVER.into())
}

/// Whether the HTTP tests' servers should run on PostgreSQL (`ANGEL_MEMORY_TEST_BACKEND=postgres`).
pub fn http_tests_use_postgres() -> bool {
    std::env::var("ANGEL_MEMORY_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

fn required() -> bool {
    std::env::var("ANGEL_MEMORY_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// A database created for one test and dropped when the value is.
pub struct TestDatabase {
    pub url: String,
    name: String,
}

impl TestDatabase {
    /// `None` (after saying so) when no PostgreSQL is reachable and it is not required.
    pub async fn create(test: &str) -> Option<Self> {
        let server = server_url();
        let mut admin = match sqlx::PgConnection::connect(&server).await {
            Ok(conn) => conn,
            Err(error) if !required() => {
                eprintln!("skipped {test}: no PostgreSQL reachable at {server} ({error})");
                return None;
            }
            Err(error) => {
                panic!("PostgreSQL is required (ANGEL_MEMORY_REQUIRE_POSTGRES=1): {error}")
            }
        };
        let name = format!("angel_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create a test database");
        let _ = admin.close().await;
        let url = match server.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("ANGEL_MEMORY_TEST_POSTGRES_URL needs a database path: {server}"),
        };
        Some(Self { url, name })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot block on its own futures: a thread with
        // a runtime of its own removes the database (FORCE closes the store's pooled connections).
        let (server, name) = (server_url(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&server).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}
