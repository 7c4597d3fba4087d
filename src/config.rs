//! Layered configuration: defaults < config file < `ANGEL_MEMORY_*` environment < command-line flags.
//! Nested settings use `__` in the environment: `ANGEL_MEMORY_RATE_LIMIT__PER_SECOND=100`.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use thiserror::Error;

use crate::store::sqlite::Synchronous;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address and port the HTTP server listens on.
    pub listen: SocketAddr,
    /// Where the embedded database lives (`angel-memory.db`).
    pub data_dir: PathBuf,
    /// Overrides the data dir's SQLite file: `sqlite:/path/file.db`; or `postgres://…` to keep
    /// everything in PostgreSQL, shared by any number of instances.
    pub database_url: Option<String>,
    /// Bearer token for `/v1/admin/*` and `/metrics`; the admin API is off without it.
    #[serde(skip_serializing)]
    pub admin_token: Option<SecretString>,
    /// `text` for people, `json` for log collectors.
    pub log_format: LogFormat,
    pub rate_limit: RateLimit,
    pub limits: Limits,
    pub retention: Retention,
    pub sqlite: SqliteSettings,
    /// The PostgreSQL backend's pool and queue lease (`[postgres]`); unused on SQLite.
    pub postgres: PostgresSettings,
    /// The secret token expected as `?token=` in Omi's webhook URLs.
    #[serde(skip_serializing)]
    pub webhook_token: Option<SecretString>,
    /// Omi's `X-Omi-Signature` signing secret (`whsec_…`), and the previous one during rotation.
    #[serde(skip_serializing)]
    pub omi_signing_secret: Option<SecretString>,
    #[serde(skip_serializing)]
    pub omi_signing_secret_previous: Option<SecretString>,
    /// A Standard Webhooks secret (`whsec_<base64>`) for other senders.
    #[serde(skip_serializing)]
    pub standard_webhooks_secret: Option<SecretString>,
    pub webhooks: Webhooks,
    pub omi: OmiSettings,
    /// The sentence-embedding model behind semantic search (`[embedding]`).
    pub embedding: crate::search::embed::EmbeddingSettings,
    /// The app home: the web pages under `/app` (`[ui]`).
    pub ui: UiSettings,
}

/// The app home (`/app`): how browsers sign in and how long they stay signed in.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiSettings {
    /// Signs the sign-in links (`angel-memory ui link`); at least 32 characters. Without it, people
    /// sign in with an API key only.
    #[serde(skip_serializing)]
    pub link_secret: Option<SecretString>,
    /// Where people reach this service, e.g. `https://memory.example.com`: the base of sign-in links.
    /// An `https` address also marks session cookies `Secure`.
    pub public_url: Option<String>,
    /// How long a sign-in link works.
    pub link_ttl_hours: u32,
    /// How long a browser stays signed in.
    pub session_ttl_hours: u32,
}

impl Default for UiSettings {
    fn default() -> Self {
        Self {
            link_secret: None,
            public_url: None,
            link_ttl_hours: 24,
            session_ttl_hours: 30 * 24,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Webhooks {
    /// Development only: accept webhooks with no authenticity check at all.
    pub insecure_accept_unauthenticated: bool,
    /// Create a user on their first webhook; otherwise unknown uids are refused.
    pub auto_create_users: bool,
    /// Spoken phrases that turn a live transcript segment into a memory.
    pub trigger_phrases: Vec<String>,
    /// Conversations can carry inline photos, so they get a larger limit.
    pub max_conversation_bytes: usize,
    pub max_event_bytes: usize,
    pub max_audio_bytes: usize,
    /// Failed processing attempts before an event is dead.
    pub max_attempts: u32,
    /// Processed events are kept this long (their dedupe keys with them).
    pub inbox_retention_days: u32,
    /// A pause in audio longer than this starts a new recording.
    pub audio_silence_gap_seconds: u64,
    pub audio_quota_megabytes: u64,
    pub audio_retention_days: u32,
}

impl Default for Webhooks {
    fn default() -> Self {
        Self {
            insecure_accept_unauthenticated: false,
            auto_create_users: true,
            trigger_phrases: crate::omi::voice::DEFAULT_TRIGGERS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            max_conversation_bytes: 16 * 1024 * 1024,
            max_event_bytes: 1024 * 1024,
            max_audio_bytes: 8 * 1024 * 1024,
            max_attempts: 8,
            inbox_retention_days: 7,
            audio_silence_gap_seconds: 30,
            audio_quota_megabytes: 500,
            audio_retention_days: 30,
        }
    }
}

/// This deployment's identity in Omi, and how Angel Memory calls Omi's APIs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OmiSettings {
    /// The Omi app id: conversations this app imported into Omi come back through the webhook and are
    /// recognised by it.
    pub app_id: Option<String>,
    /// Omi's API (Integration API under `/v2/integrations`, Developer API under `/v1/dev`).
    pub base_url: String,
    /// The app's Integration API key (`sk_…`): imports, reads and notifications for users of the app.
    #[serde(skip_serializing)]
    pub app_key: Option<SecretString>,
    /// One user's Developer API key (`omi_dev_…`).
    #[serde(skip_serializing)]
    pub dev_key: Option<SecretString>,
    pub connect_timeout_ms: u64,
    pub request_timeout_seconds: u64,
    /// Omi answers create-conversation only after its LLM has processed the text.
    pub create_conversation_timeout_seconds: u64,
    pub retry: crate::resilience::RetrySettings,
    pub breaker: crate::resilience::BreakerSettings,
    pub outbox: OutboxSettings,
}

impl Default for OmiSettings {
    fn default() -> Self {
        Self {
            app_id: None,
            base_url: "https://api.omi.me".into(),
            app_key: None,
            dev_key: None,
            connect_timeout_ms: 2_000,
            request_timeout_seconds: 15,
            create_conversation_timeout_seconds: 90,
            retry: crate::resilience::RetrySettings::default(),
            breaker: crate::resilience::BreakerSettings::default(),
            outbox: OutboxSettings::default(),
        }
    }
}

/// The durable queue of writes to Omi (`[omi.outbox]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxSettings {
    /// Run the outbox worker (it idles while the Integration API is not configured).
    pub enabled: bool,
    /// Memories of one user sent in one create-memories call.
    pub batch_size: u32,
    /// Failed deliveries before an item is dead (waiting for an operator).
    pub max_attempts: u32,
    /// Full-jitter backoff between attempts: base and cap.
    pub backoff_base_ms: u64,
    pub backoff_cap_seconds: u64,
    /// Delivered items are kept this long.
    pub retention_days: u32,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            batch_size: 25,
            max_attempts: 10,
            backoff_base_ms: 2_000,
            backoff_cap_seconds: 600,
            retention_days: 7,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// A token bucket per API key.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimit {
    pub enabled: bool,
    /// Sustained requests per second per key.
    pub per_second: u32,
    /// Requests a key may make at once before the sustained rate applies.
    pub burst: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body for ordinary API calls.
    pub max_body_bytes: usize,
    /// Largest body for `POST /v1/import`.
    pub max_import_bytes: usize,
    /// Longest a request may take before it is answered 503.
    pub request_timeout_seconds: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Soft-deleted memories older than this are purged by the scheduled purge.
    pub purge_deleted_after_days: u32,
    /// How often the scheduled purge runs; 0 turns it off.
    pub purge_interval_minutes: u64,
    /// How long a stored response for an `Idempotency-Key` is kept.
    pub idempotency_hours: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqliteSettings {
    pub synchronous: Synchronous,
    pub readers: usize,
    pub busy_timeout_ms: u64,
    /// Start the store's write-ahead log over once it is this large, even under constant writes,
    /// when no request has written for a moment (or at 16 times this size regardless); 0 leaves it
    /// to SQLite, which lets it grow until writes pause.
    pub restart_log_after_mb: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresSettings {
    /// Connections each instance keeps open at most.
    pub max_connections: u32,
    /// How long a worker owns queue work it claimed; when it dies, others take the work after this.
    pub claim_lease_ms: u64,
}

impl Default for PostgresSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            claim_lease_ms: 60_000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            data_dir: PathBuf::from("data"),
            database_url: None,
            admin_token: None,
            log_format: LogFormat::Text,
            rate_limit: RateLimit::default(),
            limits: Limits::default(),
            retention: Retention::default(),
            sqlite: SqliteSettings::default(),
            postgres: PostgresSettings::default(),
            webhook_token: None,
            omi_signing_secret: None,
            omi_signing_secret_previous: None,
            standard_webhooks_secret: None,
            webhooks: Webhooks::default(),
            omi: OmiSettings::default(),
            embedding: crate::search::embed::EmbeddingSettings::default(),
            ui: UiSettings::default(),
        }
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            enabled: true,
            per_second: 50,
            burst: 200,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_import_bytes: 256 * 1024 * 1024,
            request_timeout_seconds: 30,
        }
    }
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            purge_deleted_after_days: 30,
            purge_interval_minutes: 60,
            idempotency_hours: 24,
        }
    }
}

impl Default for SqliteSettings {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Normal,
            readers: 3,
            busy_timeout_ms: 5_000,
            restart_log_after_mb: 64,
        }
    }
}

/// Where the database is, once the settings are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseLocation {
    Sqlite(PathBuf),
    /// A `postgres://` (or `postgresql://`) connection URL.
    Postgres(String),
}

impl Config {
    /// Loads the layers. `file` is the `--config` flag (else `ANGEL_MEMORY_CONFIG`); `overrides` are the
    /// flags that were given, as a partial TOML-like map.
    pub fn load(
        file: Option<&Path>,
        overrides: Serialized<serde_json::Value>,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        let file = file
            .map(Path::to_owned)
            .or_else(|| std::env::var_os("ANGEL_MEMORY_CONFIG").map(PathBuf::from));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError::MissingFile(file));
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment
            .merge(
                // The test harness's own switches share the prefix but are not settings.
                Env::prefixed("ANGEL_MEMORY_")
                    .ignore(&[
                        "CONFIG",
                        "TEST_BACKEND",
                        "TEST_POSTGRES_URL",
                        "REQUIRE_POSTGRES",
                    ])
                    .split("__"),
            )
            .merge(overrides);
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if let Some(token) = &self.admin_token
            && token.expose_secret().len() < 16
        {
            return invalid("admin_token must be at least 16 characters");
        }
        if self.rate_limit.enabled
            && (self.rate_limit.per_second == 0 || self.rate_limit.burst == 0)
        {
            return invalid(
                "rate_limit.per_second and rate_limit.burst must be positive (or set rate_limit.enabled = false)",
            );
        }
        if self.limits.max_body_bytes < 1024
            || self.limits.max_import_bytes < self.limits.max_body_bytes
        {
            return invalid(
                "limits.max_body_bytes must be at least 1024 and at most limits.max_import_bytes",
            );
        }
        if self.limits.request_timeout_seconds == 0 {
            return invalid("limits.request_timeout_seconds must be positive");
        }
        if self.retention.idempotency_hours < 24 {
            return invalid("retention.idempotency_hours must be at least 24");
        }
        if self.sqlite.readers == 0 || self.sqlite.readers > 64 {
            return invalid("sqlite.readers must be between 1 and 64");
        }
        if let Some(token) = &self.webhook_token
            && token.expose_secret().len() < 16
        {
            return invalid("webhook_token must be at least 16 characters");
        }
        for (name, secret) in [
            ("omi_signing_secret", &self.omi_signing_secret),
            (
                "omi_signing_secret_previous",
                &self.omi_signing_secret_previous,
            ),
            ("standard_webhooks_secret", &self.standard_webhooks_secret),
        ] {
            if secret
                .as_ref()
                .is_some_and(|s| s.expose_secret().trim().is_empty())
            {
                return Err(ConfigError::Invalid(format!("{name} must not be empty")));
            }
        }
        if self
            .webhooks
            .trigger_phrases
            .iter()
            .any(|p| p.split_whitespace().count() == 0)
        {
            return invalid("webhooks.trigger_phrases must not contain empty phrases");
        }
        if self.webhooks.max_attempts == 0 {
            return invalid("webhooks.max_attempts must be positive");
        }
        self.validate_omi()?;
        if let Some(secret) = &self.ui.link_secret
            && secret.expose_secret().len() < 32
        {
            return invalid("ui.link_secret must be at least 32 characters");
        }
        if let Some(url) = &self.ui.public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return invalid("ui.public_url must start with https:// or http://");
        }
        if self.ui.link_ttl_hours == 0 || self.ui.session_ttl_hours == 0 {
            return invalid("ui.link_ttl_hours and ui.session_ttl_hours must be positive");
        }
        if self.postgres.max_connections == 0 || self.postgres.claim_lease_ms == 0 {
            return invalid(
                "postgres.max_connections and postgres.claim_lease_ms must be positive",
            );
        }
        self.database()?;
        Ok(())
    }

    /// Omi's keys are recognisable by their prefixes (Omi itself refuses others), so a key pasted into
    /// the wrong setting is caught here, without ever printing it.
    fn validate_omi(&self) -> Result<(), ConfigError> {
        let omi = &self.omi;
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        match reqwest::Url::parse(&omi.base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {}
            _ => return invalid("omi.base_url must be an http(s) URL"),
        }
        if omi
            .app_id
            .as_deref()
            .is_some_and(|id| id.trim().is_empty() || id.contains('/'))
        {
            return invalid("omi.app_id must be a non-empty id without '/'");
        }
        if let Some(key) = &omi.app_key
            && !key.expose_secret().starts_with("sk_")
        {
            return invalid("omi.app_key must be an Omi app API key (starting with sk_)");
        }
        if let Some(key) = &omi.dev_key
            && !key.expose_secret().starts_with("omi_dev_")
        {
            return invalid(
                "omi.dev_key must be an Omi Developer API key (starting with omi_dev_; omi_mcp_ keys do not work)",
            );
        }
        if omi.connect_timeout_ms == 0
            || omi.request_timeout_seconds == 0
            || omi.create_conversation_timeout_seconds == 0
        {
            return invalid("omi timeouts must be positive");
        }
        if omi.retry.base_ms == 0 || omi.retry.cap_ms < omi.retry.base_ms {
            return invalid("omi.retry.base_ms must be positive and at most omi.retry.cap_ms");
        }
        let b = &omi.breaker;
        if b.consecutive_failures == 0
            || b.window == 0
            || b.failure_rate_percent == 0
            || b.failure_rate_percent > 100
            || b.half_open_probes == 0
            || b.open_seconds == 0
        {
            return invalid(
                "omi.breaker: consecutive_failures, window, open_seconds and half_open_probes must be positive, failure_rate_percent 1–100",
            );
        }
        let o = &omi.outbox;
        if o.batch_size == 0 || o.max_attempts == 0 || o.backoff_base_ms == 0 {
            return invalid(
                "omi.outbox: batch_size, max_attempts and backoff_base_ms must be positive",
            );
        }
        Ok(())
    }

    /// Whether any way to authenticate Omi's webhooks is configured.
    pub fn webhook_auth_configured(&self) -> bool {
        self.webhook_token.is_some()
            || self.omi_signing_secret.is_some()
            || self.standard_webhooks_secret.is_some()
    }

    pub fn database(&self) -> Result<DatabaseLocation, ConfigError> {
        let Some(url) = &self.database_url else {
            return Ok(DatabaseLocation::Sqlite(
                self.data_dir.join("angel-memory.db"),
            ));
        };
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(ConfigError::Invalid(
                    "database_url sqlite: needs a file path".into(),
                ));
            }
            return Ok(DatabaseLocation::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseLocation::Postgres(url.clone()));
        }
        Err(ConfigError::Invalid(
            "database_url must start with sqlite: or postgres://".into(),
        ))
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures must return figment::Error
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
        assert_eq!(
            Config::default().database().unwrap(),
            DatabaseLocation::Sqlite(PathBuf::from("data/angel-memory.db"))
        );
    }

    #[test]
    fn layers_apply_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "angel.toml",
                "listen = \"127.0.0.1:9000\"\n[rate_limit]\nper_second = 7\nburst = 9\n",
            )?;
            jail.set_env("ANGEL_MEMORY_RATE_LIMIT__BURST", "11");
            let overrides = Serialized::defaults(serde_json::json!({"listen": "127.0.0.1:9100"}));
            let config = Config::load(Some(Path::new("angel.toml")), overrides)
                .map_err(|e| e.to_string())?;
            assert_eq!(config.listen.port(), 9100);
            assert_eq!(config.rate_limit.per_second, 7);
            assert_eq!(config.rate_limit.burst, 11);
            Ok(())
        });
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("ANGEL_MEMORY_LISTEN", "not-an-address");
            let err = Config::load(None, Serialized::defaults(serde_json::json!({}))).unwrap_err();
            assert!(err.to_string().to_lowercase().contains("listen"), "{err}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("ANGEL_MEMORY_ADMIN_TOKEN", "short");
            let err = Config::load(None, Serialized::defaults(serde_json::json!({}))).unwrap_err();
            assert!(err.to_string().contains("admin_token"), "{err}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("ANGEL_MEMORY_OMI__DEV_KEY", "omi_mcp_0123456789");
            let err = Config::load(None, Serialized::defaults(serde_json::json!({}))).unwrap_err();
            assert!(err.to_string().contains("omi.dev_key"), "{err}");
            assert!(
                !err.to_string().contains("0123456789"),
                "the key is never shown: {err}"
            );
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("ANGEL_MEMORY_OMI__OUTBOX__NO_SUCH_SETTING", "1");
            assert!(Config::load(None, Serialized::defaults(serde_json::json!({}))).is_err());
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("ANGEL_MEMORY_NO_SUCH_SETTING", "1");
            assert!(Config::load(None, Serialized::defaults(serde_json::json!({}))).is_err());
            Ok(())
        });
    }
}
