//! Sentence embedders: text in, unit-length vectors out.
//!
//! Two implementations behind one trait:
//! - [`local::LocalEmbedder`]: all-MiniLM-L6-v2 (384 dimensions) run in-process by candle, from weights on
//!   disk (`scripts/fetch_model.py` or [`fetch::ensure_model`] puts them there). No network at run time.
//! - [`openai::OpenAiEmbedder`]: any OpenAI-compatible `/v1/embeddings` endpoint (Ollama, OpenAI, Gemini's
//!   compatible endpoint).
//!
//! Every vector returned is L2-normalised, so cosine similarity is a dot product. Nothing here ever
//! invents a vector: a failure is an [`EmbedError`], and the caller falls back to full-text search and
//! embeds later.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

pub mod fetch;
pub mod local;
pub mod openai;

pub use fetch::ensure_model;
pub use local::LocalEmbedder;
pub use openai::OpenAiEmbedder;

/// Identity of the model behind an embedder. Store it with every vector: vectors from different
/// models (or different weights of the same model) are not comparable, and a change means re-embedding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Model name, e.g. `all-MiniLM-L6-v2` or the provider's model id.
    pub name: String,
    /// Length of every vector this embedder returns.
    pub dim: usize,
    /// Weights/config identity: the sha256 of the local weights file, or the provider endpoint, model and
    /// dimension for a remote provider.
    pub revision: String,
}

/// Turns texts into unit-length vectors.
#[async_trait]
pub trait Embedder: Send + Sync + 'static {
    /// What produces the vectors (store it alongside them).
    fn model(&self) -> &ModelInfo;

    /// One unit-length vector of length `model().dim` per text, in the same order. An empty input gives
    /// an empty output without any work.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;

    /// [`Embedder::embed`] for work nobody is waiting on (the embedding queue). An embedder that
    /// computes on this machine runs it at low CPU priority, so requests go first.
    async fn embed_background(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed(texts).await
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error(
        "embedding model files missing in {}: {}; fetch them with `python3 scripts/fetch_model.py --dest {}`",
        dir.display(), missing.join(", "), dir.display()
    )]
    ModelMissing { dir: PathBuf, missing: Vec<String> },
    #[error("could not fetch the embedding model: {0}")]
    Fetch(String),
    #[error("could not load the embedding model: {0}")]
    Load(String),
    #[error("embedding inference failed: {0}")]
    Inference(String),
    #[error("invalid embedding settings: {0}")]
    Config(String),
    #[error("embedding provider unreachable: {0}")]
    Transport(String),
    #[error("embedding provider rejected the credentials (HTTP {status}): {message}")]
    Auth { status: u16, message: String },
    #[error("embedding provider answered HTTP {status}: {message}")]
    Status { status: u16, message: String },
    #[error("could not decode the embedding provider's answer: {0}")]
    Decode(String),
    #[error("embedding provider returned {actual} vectors for {expected} texts")]
    CountMismatch { expected: usize, actual: usize },
    #[error("embedding has dimension {actual}, expected {expected}")]
    DimensionMismatch { expected: usize, actual: usize },
}

impl EmbedError {
    /// Whether trying again later may succeed (network trouble, rate limits, provider errors), as
    /// opposed to a problem that needs an operator (missing model, bad key, wrong dimension).
    pub fn is_transient(&self) -> bool {
        match self {
            EmbedError::Transport(_) => true,
            EmbedError::Status { status, .. } => *status == 408 || *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// Which embedder to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// all-MiniLM-L6-v2 in-process, weights from `model_dir`.
    #[default]
    Local,
    /// An OpenAI-compatible `/embeddings` endpoint at `base_url`.
    #[serde(alias = "open_ai")]
    OpenAi,
    /// No embeddings: search by text alone (smallest footprint).
    Off,
}

/// The `[embedding]` section of the configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddingSettings {
    pub provider: Provider,
    /// Local provider: directory with `model.safetensors`, `tokenizer.json`, `config.json`.
    pub model_dir: PathBuf,
    /// OpenAI-compatible provider: base URL including the version, e.g. `http://localhost:11434/v1`
    /// (Ollama) or `https://api.openai.com/v1`; requests go to `{base_url}/embeddings`.
    pub base_url: String,
    /// OpenAI-compatible provider: model id, e.g. `all-minilm` (Ollama) or `text-embedding-3-small`.
    pub model: String,
    /// OpenAI-compatible provider: bearer token, if the endpoint needs one.
    #[serde(skip_serializing)]
    pub api_key: Option<SecretString>,
    /// OpenAI-compatible provider: vector length. When set it is sent as `dimensions` and every answer is
    /// checked against it; when unset it is learnt from one probe request at start-up.
    pub dimensions: Option<usize>,
    /// Texts per model call (local) or per request (provider).
    pub batch_size: usize,
    /// OpenAI-compatible provider: timeout of one request.
    pub timeout_seconds: u64,
    /// Local provider: run the embedding queue at the lowest CPU priority (nice 19), so a backlog
    /// never slows requests on a small machine. Commands a person waits on (`eval`) turn it off.
    pub low_priority_queue: bool,
}

impl Default for EmbeddingSettings {
    fn default() -> Self {
        Self {
            provider: Provider::Local,
            model_dir: PathBuf::from(local::DEFAULT_MODEL_DIR),
            base_url: "http://localhost:11434/v1".to_owned(),
            model: "all-minilm".to_owned(),
            api_key: None,
            dimensions: None,
            batch_size: 32,
            timeout_seconds: 30,
            low_priority_queue: true,
        }
    }
}

impl EmbeddingSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_seconds)
    }

    fn validate(&self) -> Result<(), EmbedError> {
        if self.batch_size == 0 {
            return Err(EmbedError::Config("batch_size must be at least 1".into()));
        }
        if self.provider == Provider::OpenAi {
            if self.timeout_seconds == 0 {
                return Err(EmbedError::Config(
                    "timeout_seconds must be at least 1".into(),
                ));
            }
            if self.model.trim().is_empty() {
                return Err(EmbedError::Config("model must not be empty".into()));
            }
            if self.dimensions == Some(0) {
                return Err(EmbedError::Config("dimensions must be at least 1".into()));
            }
        }
        Ok(())
    }
}

/// Builds the configured embedder. The local model is loaded (read, hashed, parsed) on a blocking thread;
/// a provider without configured `dimensions` gets one probe request to learn its vector length.
/// Fails with [`EmbedError::ModelMissing`] when the local weights are absent: the caller should then run
/// on full-text search alone, not substitute vectors.
pub async fn from_settings(settings: &EmbeddingSettings) -> Result<Arc<dyn Embedder>, EmbedError> {
    settings.validate()?;
    match settings.provider {
        Provider::Local => {
            let dir = settings.model_dir.clone();
            let (batch_size, low_priority) = (settings.batch_size, settings.low_priority_queue);
            let embedder = tokio::task::spawn_blocking(move || {
                LocalEmbedder::load(&dir, batch_size, low_priority)
            })
            .await
            .map_err(|e| EmbedError::Load(format!("loading task failed: {e}")))??;
            Ok(Arc::new(embedder))
        }
        Provider::OpenAi => Ok(Arc::new(OpenAiEmbedder::connect(settings).await?)),
        Provider::Off => Err(EmbedError::Config("embedding.provider is \"off\"".into())),
    }
}

/// Scales `v` to unit length in place. Fails on an all-zero or non-finite vector, which has no
/// direction: such a vector must not be stored as if it meant something.
pub fn normalize(v: &mut [f32]) -> Result<(), EmbedError> {
    let norm = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if !norm.is_finite() || norm == 0.0 {
        return Err(EmbedError::Decode(format!(
            "vector of length {} has norm {norm}; cannot normalise",
            v.len()
        )));
    }
    let inv = (1.0 / norm) as f32;
    v.iter_mut().for_each(|x| *x *= inv);
    Ok(())
}

/// Dot product of two equal-length vectors; the cosine similarity for unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_gives_unit_length() {
        let mut v = vec![3.0, 4.0];
        normalize(&mut v).unwrap();
        assert!((v[0] - 0.6).abs() < 1e-7 && (v[1] - 0.8).abs() < 1e-7);
        assert!((cosine(&v, &v) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn normalize_rejects_zero_and_nan() {
        assert!(matches!(
            normalize(&mut [0.0, 0.0]),
            Err(EmbedError::Decode(_))
        ));
        assert!(matches!(
            normalize(&mut [f32::NAN, 1.0]),
            Err(EmbedError::Decode(_))
        ));
        assert!(matches!(normalize(&mut []), Err(EmbedError::Decode(_))));
    }

    #[test]
    fn settings_defaults_and_parsing() {
        let s = EmbeddingSettings::default();
        assert_eq!(s.provider, Provider::Local);
        assert_eq!(s.model_dir, PathBuf::from("models/all-MiniLM-L6-v2"));
        assert_eq!(s.batch_size, 32);
        let parsed: EmbeddingSettings = serde_json::from_value(serde_json::json!({
            "provider": "openai", "base_url": "https://api.openai.com/v1",
            "model": "text-embedding-3-small", "api_key": "sk-test", "dimensions": 512
        }))
        .unwrap();
        assert_eq!(parsed.provider, Provider::OpenAi);
        assert_eq!(parsed.dimensions, Some(512));
        assert_eq!(parsed.batch_size, 32);
        // The key never leaves through serialisation or Debug.
        let out = serde_json::to_string(&parsed).unwrap();
        assert!(!out.contains("sk-test"), "{out}");
        assert!(!format!("{parsed:?}").contains("sk-test"));
        let unknown =
            serde_json::from_value::<EmbeddingSettings>(serde_json::json!({"modle": "x"}));
        assert!(unknown.is_err());
    }

    #[test]
    fn validation_rejects_nonsense() {
        let s = EmbeddingSettings {
            batch_size: 0,
            ..Default::default()
        };
        assert!(matches!(s.validate(), Err(EmbedError::Config(_))));
        let s = EmbeddingSettings {
            provider: Provider::OpenAi,
            dimensions: Some(0),
            ..Default::default()
        };
        assert!(matches!(s.validate(), Err(EmbedError::Config(_))));
    }

    #[test]
    fn transient_errors() {
        assert!(EmbedError::Transport("x".into()).is_transient());
        for status in [408, 429, 500, 503] {
            let e = EmbedError::Status {
                status,
                message: String::new(),
            };
            assert!(e.is_transient(), "{status}");
        }
        let e = EmbedError::Status {
            status: 400,
            message: String::new(),
        };
        assert!(!e.is_transient());
        let e = EmbedError::Auth {
            status: 401,
            message: String::new(),
        };
        assert!(!e.is_transient());
    }
}
