//! Any OpenAI-compatible embeddings endpoint: `POST {base_url}/embeddings` with
//! `{"model": …, "input": [texts…]}` (and `"dimensions"` when configured), answered by
//! `{"data": [{"index": i, "embedding": [...]}, …]}`. Works with Ollama (`http://localhost:11434/v1`),
//! OpenAI (`https://api.openai.com/v1`) and Gemini's OpenAI-compatible endpoint.
//!
//! Answers are reordered by `index`, checked for count and dimension, and L2-normalised (providers
//! differ on whether they normalise).

use async_trait::async_trait;
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{EmbedError, Embedder, EmbeddingSettings, ModelInfo, normalize};

/// Longest provider error text kept in an [`EmbedError`].
const MAX_ERROR_CHARS: usize = 500;
/// Text sent once to learn the vector length when `dimensions` is not configured.
const PROBE_TEXT: &str = "dimension probe";

pub struct OpenAiEmbedder {
    client: reqwest::Client,
    url: Url,
    model: String,
    api_key: Option<SecretString>,
    /// Sent as `dimensions` when configured.
    requested_dimensions: Option<usize>,
    batch_size: usize,
    info: ModelInfo,
}

impl std::fmt::Debug for OpenAiEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiEmbedder")
            .field("url", &self.url.as_str())
            .field("info", &self.info)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct EmbeddingsRequest<'a> {
    model: &'a str,
    input: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<usize>,
}

#[derive(Deserialize)]
struct EmbeddingsResponse {
    data: Vec<EmbeddingItem>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    #[serde(default)]
    index: Option<usize>,
    embedding: Vec<f32>,
}

impl OpenAiEmbedder {
    /// Builds the client for vectors of length `dim` (no request is made).
    pub fn new(settings: &EmbeddingSettings, dim: usize) -> Result<Self, EmbedError> {
        settings.validate()?;
        if dim == 0 {
            return Err(EmbedError::Config("dimensions must be at least 1".into()));
        }
        if let Some(requested) = settings.dimensions
            && requested != dim
        {
            return Err(EmbedError::Config(format!(
                "dimensions is {requested} but the embedder was built for {dim}"
            )));
        }
        let base = settings.base_url.trim_end_matches('/');
        let url = Url::parse(&format!("{base}/embeddings"))
            .map_err(|e| EmbedError::Config(format!("base_url {:?}: {e}", settings.base_url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(EmbedError::Config(format!(
                "base_url {:?} must be http:// or https://",
                settings.base_url
            )));
        }
        crate::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(settings.timeout())
            .connect_timeout(settings.timeout())
            .user_agent(concat!("angel-memory/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EmbedError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            client,
            info: ModelInfo {
                name: settings.model.clone(),
                dim,
                revision: format!(
                    "openai-compatible {base} model={} dim={dim}",
                    settings.model
                ),
            },
            url,
            model: settings.model.clone(),
            api_key: settings.api_key.clone(),
            requested_dimensions: settings.dimensions,
            batch_size: settings.batch_size,
        })
    }

    /// Builds the client; when `dimensions` is not configured, learns the vector length from one probe
    /// request (so a provider that is down fails here, and the caller runs on full-text search).
    pub async fn connect(settings: &EmbeddingSettings) -> Result<Self, EmbedError> {
        if let Some(dim) = settings.dimensions {
            return Self::new(settings, dim);
        }
        // The dimension is unknown until the probe answers; `request` does not read it, and the
        // probe's vector length replaces it below before the embedder is returned.
        let mut embedder = Self::new(settings, 1)?;
        let vectors = embedder.request(&[PROBE_TEXT.to_owned()]).await?;
        let dim = vectors.first().map(Vec::len).unwrap_or_default();
        if dim == 0 {
            return Err(EmbedError::Decode(
                "the provider returned an empty vector".into(),
            ));
        }
        embedder.info.dim = dim;
        embedder.info.revision = format!(
            "openai-compatible {} model={} dim={dim}",
            settings.base_url.trim_end_matches('/'),
            settings.model
        );
        Ok(embedder)
    }

    /// One request; vectors in input order, not yet checked for dimension nor normalised.
    async fn request(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let body = EmbeddingsRequest {
            model: &self.model,
            input: texts,
            dimensions: self.requested_dimensions,
        };
        let mut request = self.client.post(self.url.clone()).json(&body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?;
        if !status.is_success() {
            let message = error_message(&bytes);
            return Err(
                if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                    EmbedError::Auth {
                        status: status.as_u16(),
                        message,
                    }
                } else {
                    EmbedError::Status {
                        status: status.as_u16(),
                        message,
                    }
                },
            );
        }
        let parsed: EmbeddingsResponse =
            serde_json::from_slice(&bytes).map_err(|e| EmbedError::Decode(e.to_string()))?;
        order_by_index(parsed.data, texts.len())
    }
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    fn model(&self) -> &ModelInfo {
        &self.info
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(self.batch_size.max(1)) {
            for mut vector in self.request(chunk).await? {
                if vector.len() != self.info.dim {
                    return Err(EmbedError::DimensionMismatch {
                        expected: self.info.dim,
                        actual: vector.len(),
                    });
                }
                normalize(&mut vector)?;
                out.push(vector);
            }
        }
        Ok(out)
    }
}

/// Puts the provider's items in input order by `index` (positional when no item carries one), and
/// checks that every input got exactly one vector.
fn order_by_index(items: Vec<EmbeddingItem>, expected: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
    if items.len() != expected {
        return Err(EmbedError::CountMismatch {
            expected,
            actual: items.len(),
        });
    }
    if items.iter().all(|item| item.index.is_none()) {
        return Ok(items.into_iter().map(|item| item.embedding).collect());
    }
    let mut slots: Vec<Option<Vec<f32>>> = vec![None; expected];
    for item in items {
        let index = item
            .index
            .ok_or_else(|| EmbedError::Decode("some items have an index and some do not".into()))?;
        let slot = slots.get_mut(index).ok_or_else(|| {
            EmbedError::Decode(format!("index {index} out of range for {expected} inputs"))
        })?;
        if slot.replace(item.embedding).is_some() {
            return Err(EmbedError::Decode(format!("index {index} appears twice")));
        }
    }
    // Count matched and no index repeated, so every slot is filled.
    slots
        .into_iter()
        .enumerate()
        .map(|(i, v)| v.ok_or_else(|| EmbedError::Decode(format!("no vector for index {i}"))))
        .collect()
}

fn transport(e: reqwest::Error) -> EmbedError {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    // The whole source chain: reqwest hides the useful part (e.g. "connection refused") in it. The key is a
    // header, never part of the URL, so the message carries no secret.
    let mut message = format!("{kind}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(inner) = source {
        message.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    EmbedError::Transport(message)
}

/// The provider's error text: OpenAI's `{"error": {"message": …}}`, Ollama's `{"error": "…"}`, or the
/// raw body, cut to a reasonable length.
fn error_message(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => match &value["error"] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Object(o) => match o.get("message") {
                Some(serde_json::Value::String(s)) => s.clone(),
                _ => value["error"].to_string(),
            },
            _ => String::from_utf8_lossy(body).into_owned(),
        },
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".to_owned();
    }
    match text.char_indices().nth(MAX_ERROR_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::embed::Provider;

    fn item(index: Option<usize>, value: f32) -> EmbeddingItem {
        EmbeddingItem {
            index,
            embedding: vec![value],
        }
    }

    #[test]
    fn orders_by_index() {
        let got = order_by_index(
            vec![item(Some(2), 2.0), item(Some(0), 0.0), item(Some(1), 1.0)],
            3,
        )
        .unwrap();
        assert_eq!(got, vec![vec![0.0], vec![1.0], vec![2.0]]);
        let positional = order_by_index(vec![item(None, 5.0), item(None, 6.0)], 2).unwrap();
        assert_eq!(positional, vec![vec![5.0], vec![6.0]]);
    }

    #[test]
    fn rejects_bad_indices_and_counts() {
        assert!(matches!(
            order_by_index(vec![item(Some(0), 0.0)], 2),
            Err(EmbedError::CountMismatch {
                expected: 2,
                actual: 1
            })
        ));
        assert!(matches!(
            order_by_index(vec![item(Some(0), 0.0), item(Some(0), 1.0)], 2),
            Err(EmbedError::Decode(_))
        ));
        assert!(matches!(
            order_by_index(vec![item(Some(0), 0.0), item(Some(5), 1.0)], 2),
            Err(EmbedError::Decode(_))
        ));
        assert!(matches!(
            order_by_index(vec![item(Some(0), 0.0), item(None, 1.0)], 2),
            Err(EmbedError::Decode(_))
        ));
    }

    #[test]
    fn error_messages_from_common_providers() {
        assert_eq!(
            error_message(br#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}"#),
            "Incorrect API key provided"
        );
        assert_eq!(
            error_message(br#"{"error":"model \"x\" not found"}"#),
            "model \"x\" not found"
        );
        assert_eq!(error_message(b"upstream exploded"), "upstream exploded");
        assert_eq!(error_message(b""), "(empty body)");
        let long = "x".repeat(2000);
        assert_eq!(
            error_message(long.as_bytes()).chars().count(),
            MAX_ERROR_CHARS + 1
        );
    }

    fn settings(base_url: &str) -> EmbeddingSettings {
        EmbeddingSettings {
            provider: Provider::OpenAi,
            base_url: base_url.to_owned(),
            model: "text-embedding-3-small".to_owned(),
            ..Default::default()
        }
    }

    #[test]
    fn builds_an_https_client_and_rejects_bad_urls() {
        let e = OpenAiEmbedder::new(&settings("https://api.openai.com/v1/"), 1536).unwrap();
        assert_eq!(e.url.as_str(), "https://api.openai.com/v1/embeddings");
        assert_eq!(e.model().dim, 1536);
        assert_eq!(e.model().name, "text-embedding-3-small");
        assert!(matches!(
            OpenAiEmbedder::new(&settings("not a url"), 3),
            Err(EmbedError::Config(_))
        ));
        assert!(matches!(
            OpenAiEmbedder::new(&settings("ftp://example.org/v1"), 3),
            Err(EmbedError::Config(_))
        ));
    }

    #[tokio::test]
    async fn https_requests_speak_tls_through_rustls_and_ring() {
        use std::io::{Read, Write};
        // A plain TCP listener that records the first bytes the client sends, then answers garbage. A
        // TLS ClientHello (record type 0x16, version 3.x) shows the rustls client with the ring provider
        // is configured and handshaking, with no cmake-built aws-lc-rs in the build.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut first = [0u8; 5];
            socket.read_exact(&mut first).unwrap();
            let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
            first
        });
        let e = OpenAiEmbedder::new(&settings(&format!("https://{addr}/v1")), 3).unwrap();
        let err = e.embed(&["x".to_owned()]).await.unwrap_err();
        assert!(matches!(err, EmbedError::Transport(_)), "{err:?}");
        let first = server.join().unwrap();
        assert_eq!(first[0], 0x16, "TLS handshake record, got {first:?}");
        assert_eq!(first[1], 0x03, "TLS version 3.x, got {first:?}");
    }
}
