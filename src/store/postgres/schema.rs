//! Migrations for the PostgreSQL backend: embedded in the binary, applied in order on start, with the
//! same numbering as the SQLite backend's (each mirrors its SQLite namesake in PostgreSQL terms).

use sqlx::PgPool;

use super::db_error;
use crate::store::StoreError;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "foundation",
        include_str!("migrations/0001_foundation.sql"),
    ),
    (
        2,
        "omi_ingest",
        include_str!("migrations/0002_omi_ingest.sql"),
    ),
    (3, "search", include_str!("migrations/0003_search.sql")),
    (
        4,
        "fts_background_merge",
        include_str!("migrations/0004_fts_background_merge.sql"),
    ),
    (
        6,
        "omi_outbox",
        include_str!("migrations/0006_omi_outbox.sql"),
    ),
    (
        7,
        "omi_dialect",
        include_str!("migrations/0007_omi_dialect.sql"),
    ),
    (8, "app_home", include_str!("migrations/0008_app_home.sql")),
    (
        9,
        "search_in_memory",
        include_str!("migrations/0009_search_in_memory.sql"),
    ),
];

/// Any constant: instances starting together take turns migrating under this advisory lock.
const MIGRATION_LOCK: i64 = 0x616e_6765_6c6d_656d;

/// Applies every migration the database has not seen yet, each in its own transaction. Refuses to run
/// against a database migrated by a newer build.
pub async fn migrate(pool: &PgPool) -> Result<usize, StoreError> {
    let mut conn = pool.acquire().await.map_err(db_error)?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    let result = apply(&mut conn).await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(db_error);
    let applied = result?;
    unlocked?;
    Ok(applied)
}

async fn apply(conn: &mut sqlx::PgConnection) -> Result<usize, StoreError> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at BIGINT NOT NULL
        )",
    )
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    let seen: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
    let current = seen.iter().copied().max().unwrap_or(0);
    let newest = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > newest {
        return Err(StoreError::Unavailable(format!(
            "the database is at schema version {current}, newer than this build knows ({newest}); upgrade angel-memory"
        )));
    }
    let mut applied = 0;
    // Each version the database lacks, not only those above its newest: numbers are assigned per
    // feature, so one merged later than a higher one still gets applied.
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| !seen.contains(&m.0)) {
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(db_error)?;
        sqlx::raw_sql(sql)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(version)
        .bind(name)
        .bind(crate::domain::Timestamp::now().as_micros())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        applied += 1;
    }
    Ok(applied)
}
