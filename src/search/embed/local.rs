//! all-MiniLM-L6-v2 run in-process by candle (pure Rust, CPU).
//!
//! Pipeline, as sentence-transformers runs it: WordPiece tokenizer (truncated at 256 tokens) → 6-layer
//! BERT → mean of the token states over real tokens only (the attention mask) → L2 normalisation.
//! Weights come from `model.safetensors` (see `scripts/fetch_model.py`); the model's identity is the
//! sha256 of that file, computed from the very bytes that are loaded.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use sha2::{Digest, Sha256};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};
use tokio::sync::Semaphore;

use super::fetch::{MODEL_SHA256, REQUIRED_FILES};
use super::{EmbedError, Embedder, ModelInfo, normalize};

pub const MODEL_NAME: &str = "all-MiniLM-L6-v2";
pub const MODEL_DIM: usize = 384;
pub const DEFAULT_MODEL_DIR: &str = "models/all-MiniLM-L6-v2";
/// What sentence-transformers uses for this model (`max_seq_length`); the shipped tokenizer says 128.
pub const MAX_TOKENS: usize = 256;

pub struct LocalEmbedder {
    inner: Arc<Inner>,
    info: ModelInfo,
    batch_size: usize,
    /// Queries: someone is waiting for the vector.
    interactive: Arc<Lane>,
    /// The embedding queue: nobody waits, so it must never delay a request (see [`Lane`]).
    background: Arc<Lane>,
}

/// Where a forward pass runs: its own thread pool (candle and the tokenizer parallelise with rayon,
/// and run on whichever pool calls them) and a gate.
struct Lane {
    pool: rayon::ThreadPool,
    /// One inference at a time per lane: a forward pass already uses every core, and running two at
    /// once only doubles the memory and the latency of both.
    gate: Semaphore,
}

impl Lane {
    /// `low_priority`: the pool's threads take the lowest CPU priority (nice 19), so on a small
    /// machine a backlog of embeddings uses idle cores without stealing time from request handling.
    fn new(name: &'static str, low_priority: bool) -> Result<Self, EmbedError> {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(move |i| format!("embed-{name}-{i}"))
            .start_handler(move |_| {
                if low_priority {
                    crate::threads::lower_priority_of_this_thread();
                }
            })
            .build()
            .map_err(|e| EmbedError::Load(format!("embedding thread pool: {e}")))?;
        Ok(Self {
            pool,
            gate: Semaphore::new(1),
        })
    }
}

/// Settles how candle uses threads, unless the environment says otherwise. Two settings, each measured:
///
/// - `RAYON_NUM_THREADS` = the CPUs this process may use. Candle asks for its thread count before
///   every matrix product, and without that variable it reads and parses `/proc/cpuinfo` each time. A
///   question's embedding has about a hundred products: on a 2-core machine that took 3 of its 9 ms.
/// - `CANDLE_BARRIER_POOL_SPIN_LIMIT` = 0. Candle's element-wise operations run on its own helper
///   threads, which by default spin for 25,000 rounds after each operation waiting for the next. On a
///   2-core machine that spinning takes a core from the matrix products in between and from request
///   handling: parking at once raised batch embedding from 189–212 to 260–265 memories/s, with the
///   same question latency (`search_load`, 6,000 memories, three runs each).
///
/// # Safety
/// Changes the process environment: call it before any other thread exists (first thing in `main`).
#[allow(unsafe_code)]
pub unsafe fn settle_candle_threads() {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .to_string();
    for (name, value) in [
        ("RAYON_NUM_THREADS", threads.as_str()),
        ("CANDLE_BARRIER_POOL_SPIN_LIMIT", "0"),
    ] {
        if std::env::var_os(name).is_none() {
            // SAFETY: the caller guarantees that no other thread reads or writes the environment.
            unsafe { std::env::set_var(name, value) };
        }
    }
}

struct Inner {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

impl std::fmt::Debug for LocalEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEmbedder")
            .field("info", &self.info)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

impl LocalEmbedder {
    /// Loads the model from `dir` (blocking: reads and hashes ~91 MB, then parses; ~0.5 s). Fails with
    /// [`EmbedError::ModelMissing`] naming the fetch command when a file is absent.
    /// `low_priority_queue`: the queue's lane runs at the lowest CPU priority (see [`Lane::new`]).
    pub fn load(
        dir: &Path,
        batch_size: usize,
        low_priority_queue: bool,
    ) -> Result<Self, EmbedError> {
        if batch_size == 0 {
            return Err(EmbedError::Config("batch_size must be at least 1".into()));
        }
        let missing: Vec<String> = REQUIRED_FILES
            .iter()
            .filter(|name| !dir.join(name).is_file())
            .map(|name| (*name).to_owned())
            .collect();
        if !missing.is_empty() {
            return Err(EmbedError::ModelMissing {
                dir: dir.to_path_buf(),
                missing,
            });
        }

        let config_path = dir.join("config.json");
        let config_text = std::fs::read_to_string(&config_path)
            .map_err(|e| EmbedError::Load(format!("{}: {e}", config_path.display())))?;
        let config: BertConfig = serde_json::from_str(&config_text)
            .map_err(|e| EmbedError::Load(format!("{}: {e}", config_path.display())))?;
        if config.hidden_size != MODEL_DIM {
            return Err(EmbedError::Load(format!(
                "{}: hidden_size {} but {MODEL_NAME} has {MODEL_DIM}",
                config_path.display(),
                config.hidden_size
            )));
        }

        let tokenizer = load_tokenizer(&dir.join("tokenizer.json"))?;

        // Read once, hash and load the same bytes: the revision recorded is exactly what runs. (Candle's
        // memory-mapped loader is an `unsafe fn`, and this crate forbids unsafe code; candle copies every
        // tensor into its own storage either way, and the buffer is freed once the model is built.)
        let weights_path = dir.join("model.safetensors");
        let weights = std::fs::read(&weights_path)
            .map_err(|e| EmbedError::Load(format!("{}: {e}", weights_path.display())))?;
        let revision = hex::encode(Sha256::digest(&weights));
        if revision != MODEL_SHA256 {
            tracing::warn!(
                path = %weights_path.display(),
                sha256 = %revision,
                expected = MODEL_SHA256,
                "model.safetensors is not the pinned {MODEL_NAME} release; vectors are recorded under its own hash"
            );
        }
        let device = Device::Cpu;
        let model = {
            let vb = VarBuilder::from_slice_safetensors(&weights, DType::F32, &device)
                .map_err(|e| EmbedError::Load(format!("{}: {e}", weights_path.display())))?;
            BertModel::load(vb, &config)
                .map_err(|e| EmbedError::Load(format!("{}: {e}", weights_path.display())))?
        };
        drop(weights);

        Ok(Self {
            inner: Arc::new(Inner {
                model,
                tokenizer,
                device,
            }),
            info: ModelInfo {
                name: MODEL_NAME.to_owned(),
                dim: MODEL_DIM,
                revision,
            },
            batch_size,
            interactive: Arc::new(Lane::new("query", false)?),
            background: Arc::new(Lane::new("queue", low_priority_queue)?),
        })
    }

    /// The blocking computation behind [`Embedder::embed`], for callers already on a blocking thread.
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let inner = &self.inner;
        self.interactive
            .pool
            .install(|| inner.embed_all(texts, self.batch_size))
    }

    async fn embed_in(
        &self,
        lane: &Arc<Lane>,
        texts: &[String],
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let _permit = lane
            .gate
            .acquire()
            .await
            .map_err(|e| EmbedError::Inference(format!("embedder closed: {e}")))?;
        let (inner, lane) = (Arc::clone(&self.inner), Arc::clone(lane));
        let texts = texts.to_vec();
        let batch_size = self.batch_size;
        tokio::task::spawn_blocking(move || {
            lane.pool.install(|| inner.embed_all(&texts, batch_size))
        })
        .await
        .map_err(|e| EmbedError::Inference(format!("inference task failed: {e}")))?
    }
}

#[async_trait]
impl Embedder for LocalEmbedder {
    fn model(&self) -> &ModelInfo {
        &self.info
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed_in(&self.interactive, texts).await
    }

    async fn embed_background(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed_in(&self.background, texts).await
    }
}

impl Inner {
    fn embed_all(&self, texts: &[String], batch_size: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
        // Batch texts of similar length together so little time goes into padding; padding does not change
        // the vectors (masked attention, masked pooling), only the cost.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(texts[i].len()));
        let mut out: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        for chunk in order.chunks(batch_size.max(1)) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i].as_str()).collect();
            let vectors = self.embed_batch(&batch)?;
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = Some(v);
            }
        }
        out.into_iter()
            .map(|v| {
                v.ok_or_else(|| EmbedError::Inference("a text was left without a vector".into()))
            })
            .collect()
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EmbedError::Inference(format!("tokenizer: {e}")))?;
        let rows = encodings.len();
        let Some(width) = encodings.first().map(|e| e.len()) else {
            return Ok(Vec::new());
        };
        let mut ids = Vec::with_capacity(rows * width);
        let mut mask = Vec::with_capacity(rows * width);
        for encoding in &encodings {
            if encoding.len() != width {
                return Err(EmbedError::Inference(format!(
                    "tokenizer padded to {} and {width} in one batch",
                    encoding.len()
                )));
            }
            ids.extend_from_slice(encoding.get_ids());
            mask.extend_from_slice(encoding.get_attention_mask());
        }
        let infer = |e: candle_core::Error| EmbedError::Inference(e.to_string());
        let input_ids = Tensor::from_vec(ids, (rows, width), &self.device).map_err(infer)?;
        let attention_mask = Tensor::from_vec(mask, (rows, width), &self.device).map_err(infer)?;
        let token_type_ids = input_ids.zeros_like().map_err(infer)?;
        let hidden = self
            .model
            .forward(&input_ids, &token_type_ids, Some(&attention_mask))
            .map_err(infer)?;
        let pooled = mean_pool(&hidden, &attention_mask).map_err(infer)?;
        let mut vectors = pooled.to_vec2::<f32>().map_err(infer)?;
        for v in &mut vectors {
            if v.len() != MODEL_DIM {
                return Err(EmbedError::DimensionMismatch {
                    expected: MODEL_DIM,
                    actual: v.len(),
                });
            }
            normalize(v).map_err(|e| EmbedError::Inference(e.to_string()))?;
        }
        Ok(vectors)
    }
}

/// Loads `tokenizer.json` and replaces its shipped settings (pad every input to 128, truncate at 128) with
/// what sentence-transformers does: pad to the longest input of the batch, truncate at 256 tokens.
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer, EmbedError> {
    let mut tokenizer = Tokenizer::from_file(path)
        .map_err(|e| EmbedError::Load(format!("{}: {e}", path.display())))?;
    let padding = PaddingParams {
        strategy: PaddingStrategy::BatchLongest,
        ..tokenizer.get_padding().cloned().unwrap_or_default()
    };
    tokenizer.with_padding(Some(padding));
    let truncation = TruncationParams {
        max_length: MAX_TOKENS,
        ..tokenizer.get_truncation().cloned().unwrap_or_default()
    };
    tokenizer
        .with_truncation(Some(truncation))
        .map_err(|e| EmbedError::Load(format!("{}: {e}", path.display())))?;
    Ok(tokenizer)
}

/// Mean of the token states `hidden` `[batch, tokens, dim]` over the tokens whose `mask` `[batch, tokens]`
/// is 1; padding positions contribute nothing. Returns `[batch, dim]`.
pub fn mean_pool(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let mask = mask.to_dtype(hidden.dtype())?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?;
    summed.broadcast_div(&counts)
}

/// The default model directory resolved against `base` (e.g. the working directory).
pub fn default_model_dir(base: &Path) -> PathBuf {
    base.join(DEFAULT_MODEL_DIR)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed_tokenizer() -> PathBuf {
        default_model_dir(Path::new(env!("CARGO_MANIFEST_DIR"))).join("tokenizer.json")
    }

    #[test]
    fn mean_pool_ignores_padding() {
        // Two sequences of three tokens, dim 2; the second has one padding token with huge values.
        let hidden = Tensor::new(
            &[
                [[1.0f32, 2.0], [3.0, 4.0], [5.0, 6.0]],
                [[2.0, 0.0], [4.0, 2.0], [1000.0, -1000.0]],
            ],
            &Device::Cpu,
        )
        .unwrap();
        let mask = Tensor::new(&[[1u32, 1, 1], [1, 1, 0]], &Device::Cpu).unwrap();
        let pooled = mean_pool(&hidden, &mask).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(pooled, vec![vec![3.0, 4.0], vec![3.0, 1.0]]);
    }

    #[test]
    fn mean_pool_then_normalize_is_unit_length() {
        let hidden = Tensor::new(&[[[3.0f32, 0.0], [3.0, 8.0], [9.0, 9.0]]], &Device::Cpu).unwrap();
        let mask = Tensor::new(&[[1u32, 1, 0]], &Device::Cpu).unwrap();
        let mut rows = mean_pool(&hidden, &mask).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(rows[0], vec![3.0, 4.0]);
        normalize(&mut rows[0]).unwrap();
        assert!((rows[0][0] - 0.6).abs() < 1e-7 && (rows[0][1] - 0.8).abs() < 1e-7);
    }

    #[test]
    fn mean_pool_of_an_all_padding_row_is_zero_not_nan() {
        let hidden = Tensor::new(&[[[1.0f32, 1.0]]], &Device::Cpu).unwrap();
        let mask = Tensor::new(&[[0u32]], &Device::Cpu).unwrap();
        let mut rows = mean_pool(&hidden, &mask).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(rows[0], vec![0.0, 0.0]);
        // …and such a vector is refused rather than stored.
        assert!(normalize(&mut rows[0]).is_err());
    }

    #[test]
    fn shipped_tokenizer_pads_to_128_and_the_override_pads_to_batch_longest() {
        let shipped = Tokenizer::from_file(committed_tokenizer()).unwrap();
        let enc = shipped.encode("I like espresso", true).unwrap();
        assert_eq!(
            enc.len(),
            128,
            "the shipped tokenizer.json pads to Fixed(128)"
        );

        let tokenizer = load_tokenizer(&committed_tokenizer()).unwrap();
        let single = tokenizer.encode("I like espresso", true).unwrap();
        // [CLS] i like es ##pres ##so [SEP] — no padding for a single text.
        assert_eq!(single.get_ids().first(), Some(&101));
        assert_eq!(single.get_ids().last(), Some(&102));
        assert!(single.get_attention_mask().iter().all(|&m| m == 1));
        assert!(single.get_type_ids().iter().all(|&t| t == 0));

        let batch = tokenizer
            .encode_batch(vec!["I like espresso", "My car is red and fast"], true)
            .unwrap();
        let longest = batch
            .iter()
            .map(|e| e.get_attention_mask().iter().sum::<u32>())
            .max()
            .unwrap();
        assert!(batch.iter().all(|e| e.len() == longest as usize));
        assert_eq!(batch[0].get_ids()[..single.len()], *single.get_ids());
        let pads = batch[0].len() - single.len();
        assert!(pads > 0);
        assert!(
            batch[0].get_ids()[single.len()..].iter().all(|&id| id == 0),
            "[PAD] is id 0"
        );
        assert_eq!(
            batch[0]
                .get_attention_mask()
                .iter()
                .filter(|&&m| m == 0)
                .count(),
            pads
        );
    }

    #[test]
    fn override_truncates_at_256_tokens() {
        let tokenizer = load_tokenizer(&committed_tokenizer()).unwrap();
        let long = "coffee ".repeat(1000);
        let enc = tokenizer.encode(long.as_str(), true).unwrap();
        assert_eq!(enc.len(), MAX_TOKENS);
        assert_eq!(
            enc.get_ids().last(),
            Some(&102),
            "[SEP] survives truncation"
        );
    }

    #[test]
    fn missing_model_names_the_directory_and_the_fetch_command() {
        let dir = tempfile::tempdir().unwrap();
        let err = LocalEmbedder::load(dir.path(), 32, false).unwrap_err();
        let EmbedError::ModelMissing { missing, .. } = &err else {
            panic!("expected ModelMissing, got {err:?}");
        };
        assert_eq!(missing.len(), 3);
        let msg = err.to_string();
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        assert!(msg.contains("scripts/fetch_model.py"), "{msg}");
        assert!(msg.contains("model.safetensors"), "{msg}");
    }
}
