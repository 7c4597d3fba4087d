//! `/webhooks/omi/*`: the endpoints Omi calls. Each request is authenticated over its raw bytes,
//! parsed (bad input is a 400, never a 5xx), recorded durably with its dedupe key, and answered 200 at
//! once; the slow work happens afterwards in the inbox worker. Never a redirect.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::HeaderMap;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use crate::config::Webhooks;
use crate::domain::{Category, Content, Metadata, Source, Tags, Timestamp, TranscriptSegment, Uid};
use crate::omi::{payload, signature, voice};
use crate::recordings::Appended;
use crate::store::{Actor, Context, EventKind, Ingested, NewInboxEvent, NewMemory, TranscriptWork};

/// Each event kind gets its own body limit: conversations can carry inline photos.
pub fn router(settings: &Webhooks) -> OpenApiRouter<AppState> {
    let events = OpenApiRouter::new()
        .routes(routes!(transcript))
        .routes(routes!(day_summary))
        .routes(routes!(setup_completed))
        .layer(DefaultBodyLimit::max(settings.max_event_bytes));
    OpenApiRouter::new()
        .routes(routes!(conversation_created))
        .layer(DefaultBodyLimit::max(settings.max_conversation_bytes))
        .merge(events)
        .merge(
            OpenApiRouter::new()
                .routes(routes!(audio))
                .layer(DefaultBodyLimit::max(settings.max_audio_bytes)),
        )
}

/// Query parameters Omi appends (`uid`) or that the configured URL carries (`token`). Others are
/// ignored: the URL is Omi's to extend.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WebhookQuery {
    /// The Omi user; every effect of the request belongs to this user.
    uid: Option<String>,
    /// The URL secret, when the deployment uses one.
    token: Option<String>,
    /// Sent by the legacy real-time transcript shape only.
    session_id: Option<String>,
    /// Audio only.
    sample_rate: Option<u32>,
}

impl WebhookQuery {
    fn uid(&self) -> Result<Uid, ApiError> {
        let raw = self
            .uid
            .as_deref()
            .ok_or_else(|| ApiError::BadRequest("the uid query parameter is missing".into()))?;
        Ok(Uid::parse(raw)?)
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Accepts the request if the URL token or a signature verifies. A signature that is present but
/// wrong is refused even when the token matches: it means the body was altered.
fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    query: &WebhookQuery,
    uid: &Uid,
    body: &[u8],
) -> Result<(), ApiError> {
    let config = &state.config;
    let now = Timestamp::now().as_micros() / 1_000_000;
    let mut verified = url_token_matches(config, query.token.as_deref());
    if let (Some(secrets), Some(given)) = (omi_secrets(config), header(headers, "x-omi-signature"))
    {
        signature::verify_omi(given, uid.as_str(), body, &secrets, now)
            .map_err(|e| ApiError::Unauthorized(signature_reason(&e)))?;
        verified = true;
    }
    if let (Some(secret), Some(id), Some(ts), Some(given)) = (
        &config.standard_webhooks_secret,
        header(headers, "webhook-id"),
        header(headers, "webhook-timestamp"),
        header(headers, "webhook-signature"),
    ) {
        signature::verify_standard(id, ts, given, body, &[secret.expose_secret()], now)
            .map_err(|e| ApiError::Unauthorized(signature_reason(&e)))?;
        verified = true;
    }
    if verified {
        return Ok(());
    }
    if config.webhooks.insecure_accept_unauthenticated {
        tracing::warn!(
            "accepted an unauthenticated webhook (webhooks.insecure_accept_unauthenticated is on)"
        );
        return Ok(());
    }
    Err(ApiError::Unauthorized(
        "the webhook is not authenticated: wrong or missing token or signature",
    ))
}

/// Whether the URL carries the configured secret token (compared in constant time).
pub(super) fn url_token_matches(config: &crate::config::Config, given: Option<&str>) -> bool {
    match (&config.webhook_token, given) {
        (Some(expected), Some(given)) => {
            bool::from(given.as_bytes().ct_eq(expected.expose_secret().as_bytes()))
        }
        _ => false,
    }
}

/// Omi's signing secrets, current first, then the previous one during a rotation.
pub(super) fn omi_secrets(config: &crate::config::Config) -> Option<Vec<&str>> {
    let current = config.omi_signing_secret.as_ref()?;
    let previous = config
        .omi_signing_secret_previous
        .as_ref()
        .map(|s| s.expose_secret());
    Some(
        std::iter::once(current.expose_secret())
            .chain(previous)
            .collect(),
    )
}

pub(super) fn signature_reason(error: &signature::SignatureError) -> &'static str {
    match error {
        signature::SignatureError::Stale => {
            "the webhook signature's timestamp is too old or in the future"
        }
        signature::SignatureError::Mismatch => "the webhook signature does not match",
        _ => "the webhook signature header is malformed",
    }
}

/// The checks every event shares: a readable body within its limit, a valid uid, authenticity.
fn accept(
    state: &AppState,
    headers: &HeaderMap,
    query: &WebhookQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Uid, Bytes), ApiError> {
    let body = body_or_413(body)?;
    let uid = query.uid()?;
    authenticate(state, headers, query, &uid, &body)?;
    Ok((uid, body))
}

fn body_or_413(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| match rejection.status().as_u16() {
        413 => {
            ApiError::PayloadTooLarge("the webhook body is larger than this event allows".into())
        }
        _ => ApiError::BadRequest("the webhook body could not be read".into()),
    })
}

/// Omi re-sends identical bytes when it retries, so the body's hash identifies a repeat. (The delivery
/// headers are not enough alone: Omi reuses `conversation:<id>:finalization` when it reprocesses a
/// conversation, with new content that must not be dropped.)
fn body_key(body: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(body)))
}

async fn record(
    state: &AppState,
    uid: &Uid,
    kind: EventKind,
    body: &Bytes,
    transcript: Option<TranscriptWork>,
    headers: &HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let event = NewInboxEvent {
        kind,
        dedupe_key: Some(body_key(body)),
        body: body.to_vec(),
    };
    let ctx = Context::new(Actor::System, super::auth::request_id(headers));
    let auto_create = state.config.webhooks.auto_create_users;
    match state
        .store
        .ingest(uid, auto_create, event, transcript, &ctx)
        .await?
    {
        Ingested::New { response, .. } => {
            metrics::counter!("webhook_events_total", "kind" => kind.as_str(), "outcome" => "new")
                .increment(1);
            state.inbox.wake();
            Ok(Json(response))
        }
        Ingested::Repeat { response, .. } => {
            metrics::counter!("webhook_events_total", "kind" => kind.as_str(), "outcome" => "repeat").increment(1);
            Ok(Json(response))
        }
        Ingested::UnknownUser => Err(ApiError::Forbidden(
            "unknown uid: this deployment does not create users from webhooks",
        )),
    }
}

#[utoipa::path(post, path = "/webhooks/omi/conversation", tag = "webhooks", params(WebhookQuery),
    request_body(content = Object, description = "Omi's conversation object (memory_creation / memory_created)"),
    responses((status = 200, description = "Recorded; processed right after", body = Object),
              (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 413, body = ApiError)))]
async fn conversation_created(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<WebhookQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let (uid, body) = accept(&state, &headers, &query, body)?;
    let conversation: payload::Conversation = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("not a conversation: {e}")))?;
    if conversation.id.trim().is_empty() {
        return Err(ApiError::BadRequest("the conversation has no id".into()));
    }
    record(&state, &uid, EventKind::Conversation, &body, None, &headers).await
}

#[utoipa::path(post, path = "/webhooks/omi/transcript", tag = "webhooks", params(WebhookQuery),
    request_body(content = Object, description = "{session_id, segments} or a bare array of segments"),
    responses((status = 200, description = "`{\"message\": \"Remembered: …\"}` when a trigger phrase was spoken", body = Object),
              (status = 400, body = ApiError), (status = 401, body = ApiError)))]
async fn transcript(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<WebhookQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let (uid, body) = accept(&state, &headers, &query, body)?;
    let batch: payload::TranscriptBatch = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("not a transcript batch: {e}")))?;
    let (session_id, segments) = batch.into_parts();
    let session_id = session_id.or_else(|| query.session_id.clone());
    let triggers = &state.config.webhooks.trigger_phrases;
    let segments = segments
        .into_iter()
        .map(|s| {
            let id =
                s.id.clone()
                    .filter(|id| !id.is_empty())
                    .unwrap_or_else(|| synthetic_segment_id(&uid, &session_id, &s));
            let capture = s
                .is_user
                .then(|| voice::capture(&s.text, triggers))
                .flatten()
                .and_then(|text| {
                    let metadata = json!({"omi": {"segment_id": id, "session_id": session_id}});
                    Some(NewMemory {
                        content: Content::parse(&text).ok()?,
                        category: Category::Manual,
                        tags: Tags::parse(&["voice"]).unwrap_or_default(),
                        visibility: Default::default(),
                        source: Source::OmiRealtime,
                        conversation_id: None,
                        metadata: Metadata::parse(metadata).unwrap_or_default(),
                        occurred_at: None,
                    })
                });
            let segment = TranscriptSegment {
                id,
                text: s.text,
                speaker: s.speaker,
                speaker_id: s.speaker_id,
                speaker_name: s.speaker_name,
                is_user: s.is_user,
                person_id: s.person_id,
                start: s.start,
                end: s.end,
            };
            (segment, capture)
        })
        .collect();
    let work = TranscriptWork {
        session_id,
        segments,
    };
    record(
        &state,
        &uid,
        EventKind::Transcript,
        &body,
        Some(work),
        &headers,
    )
    .await
}

/// Segments of the legacy shape carry no id: one is derived from what identifies the segment.
fn synthetic_segment_id(uid: &Uid, session: &Option<String>, s: &payload::Segment) -> String {
    let seed = format!(
        "angel-memory/live/{uid}/{}/{}/{}",
        session.as_deref().unwrap_or(""),
        s.start,
        s.text
    );
    Uuid::new_v5(&Uuid::NAMESPACE_URL, seed.as_bytes()).to_string()
}

#[utoipa::path(post, path = "/webhooks/omi/day-summary", tag = "webhooks", params(WebhookQuery),
    request_body(content = Object, description = "{summary, summary_json, uid, created_at}"),
    responses((status = 200, body = Object), (status = 400, body = ApiError), (status = 401, body = ApiError)))]
async fn day_summary(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<WebhookQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let (uid, body) = accept(&state, &headers, &query, body)?;
    serde_json::from_slice::<payload::DaySummaryBody>(&body)
        .map_err(|e| ApiError::BadRequest(format!("not a day summary: {e}")))?;
    record(&state, &uid, EventKind::DaySummary, &body, None, &headers).await
}

#[utoipa::path(get, path = "/webhooks/omi/setup-completed", tag = "webhooks", params(WebhookQuery),
    responses((status = 200, description = "`{\"is_setup_completed\": bool}`", body = Object),
              (status = 400, body = ApiError), (status = 401, body = ApiError)))]
async fn setup_completed(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<WebhookQuery>,
) -> Result<Json<Value>, ApiError> {
    let uid = query.uid()?;
    // Omi signs no setup check; with a URL token configured, the token is required here too.
    if state.config.webhook_token.is_some() {
        authenticate(&state, &headers, &query, &uid, b"")?;
    }
    let ready = state.store.is_setup(&uid).await? || state.config.webhooks.auto_create_users;
    Ok(Json(json!({"is_setup_completed": ready})))
}

/// The delivery id Omi sends with retried deliveries, when there is one.
fn delivery_id(headers: &HeaderMap) -> Option<String> {
    ["x-omi-delivery", "idempotency-key", "x-omi-idempotency-key"]
        .iter()
        .find_map(|name| header(headers, name))
        .map(|id| format!("delivery:{id}"))
}

#[utoipa::path(post, path = "/webhooks/omi/audio", tag = "webhooks", params(WebhookQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "Raw PCM16 little-endian mono"),
    responses((status = 200, description = "`{\"stored\": true, \"recording_id\"}`, or `{\"stored\": false, \"reason\"}` over quota", body = Object),
              (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 413, body = ApiError)))]
async fn audio(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<WebhookQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let (uid, body) = accept(&state, &headers, &query, body)?;
    let sample_rate = query
        .sample_rate
        .filter(|rate| (1_000..=192_000).contains(rate))
        .ok_or_else(|| {
            ApiError::BadRequest("sample_rate must be given, between 1000 and 192000".into())
        })?;
    if body.is_empty() || body.len() % 2 != 0 {
        return Err(ApiError::BadRequest(
            "PCM16 audio needs an even, non-zero number of bytes".into(),
        ));
    }
    let delivery = delivery_id(&headers);
    if let Some(key) = &delivery
        && state.store.seen_event(&uid, EventKind::Audio, key).await?
    {
        return Ok(Json(json!({"stored": true, "repeat": true})));
    }
    if !state.config.webhooks.auto_create_users && !state.store.is_setup(&uid).await? {
        return Err(ApiError::Forbidden(
            "unknown uid: this deployment does not create users from webhooks",
        ));
    }
    let ctx = Context::new(Actor::System, super::auth::request_id(&headers));
    // The chunk's arrival is recorded (without its bytes) so its delivery id deduplicates retries.
    let event = NewInboxEvent {
        kind: EventKind::Audio,
        dedupe_key: delivery,
        body: Vec::new(),
    };
    state.store.ingest(&uid, true, event, None, &ctx).await?;
    match state
        .recorder
        .append(&uid, sample_rate, body.to_vec())
        .await
    {
        Ok(Appended::Stored { recording_id }) => {
            Ok(Json(json!({"stored": true, "recording_id": recording_id})))
        }
        Ok(Appended::OverQuota) => {
            tracing::warn!("audio dropped: the user's recording quota is full");
            metrics::counter!("audio_chunks_dropped_total", "reason" => "quota").increment(1);
            Ok(Json(
                json!({"stored": false, "reason": "the recording quota is full"}),
            ))
        }
        Err(error) => Err(ApiError::Unavailable(error.to_string())),
    }
}
