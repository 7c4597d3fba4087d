//! Search latency and embedding throughput at scale, through the library's normal paths.
//!
//! Fills one user with `BENCH_MEMORIES` memories (default 100,000) through the store's write path,
//! lets the embedding worker embed every one of them with the local model (all-MiniLM-L6-v2, weights
//! in `models/all-MiniLM-L6-v2`; `python3 scripts/fetch_model.py` fetches them) and reports its
//! throughput, then runs `BENCH_QUERIES` queries (default 300) per mode through `Searcher` and prints
//! p50/p90/p99 latency. The memories are short sentences composed from word lists, all distinct; every
//! vector comes from the model.
//!
//! Results go to `bench-results/search_load.json`.
//!
//! Run: `cargo bench --bench search_load`
//! Quick smoke run: `BENCH_MEMORIES=2000 BENCH_QUERIES=50 cargo bench --bench search_load`
//! Repeated runs: `BENCH_SQLITE_FILE=/tmp/search.db` keeps the filled, embedded database there and
//! reuses it next time (fill and embedding throughput are then not measured again).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use angel_memory::domain::{Content, ConversationId, Source, Uid};
use angel_memory::search::embed::EmbeddingSettings;
use angel_memory::search::{Mode, SearchRequest, Searcher};
use angel_memory::store::postgres::{PgOptions, PostgresStore};
use angel_memory::store::sqlite::{PoolOptions, SqliteStore};
use angel_memory::store::{Actor, Context, NewMemory, SearchFilter, Store};
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod support;

const PEOPLE: &[&str] = &[
    "Sam", "Ana", "Ravi", "Mia", "Jon", "Lena", "Omar", "Kai", "Zoe", "Ivan", "Priya", "Tom",
    "Maria", "Chen", "Lucas", "Emma", "Noah", "Sara", "Diego", "Yuki",
];
const VERBS: &[&str] = &[
    "likes",
    "bought",
    "forgot",
    "repaired",
    "recommended",
    "painted",
    "lost",
    "found",
    "sold",
    "borrowed",
    "ordered",
    "cooked",
    "visited",
    "booked",
    "cancelled",
    "planned",
    "photographed",
    "returned",
    "wants",
    "hates",
];
const THINGS: &[&str] = &[
    "a red bicycle",
    "the espresso machine",
    "a blue tent",
    "the old piano",
    "a vegan cookbook",
    "the garden hose",
    "a wool sweater",
    "the train tickets",
    "a chess set",
    "the dentist appointment",
    "a pair of running shoes",
    "the kitchen lamp",
    "a sourdough starter",
    "the winter tyres",
    "a yoga mat",
    "the birthday cake",
    "a hiking map",
    "the laptop charger",
    "a jar of honey",
    "the concert tickets",
    "a box of paints",
    "the car insurance",
    "a guitar strap",
    "the rice cooker",
    "a bag of coffee beans",
];
const PLACES: &[&str] = &[
    "at the market",
    "in Lisbon",
    "near the office",
    "at the lake",
    "downtown",
    "at grandma's house",
    "in the garage",
    "at the gym",
    "on the balcony",
    "at the library",
    "in Berlin",
    "at the beach",
    "at the school fair",
    "in the mountains",
    "at the airport",
];
const WHEN: &[&str] = &[
    "last Monday",
    "yesterday",
    "this morning",
    "in March",
    "before the trip",
    "after work",
    "on the weekend",
    "during the holidays",
    "two weeks ago",
    "on Friday evening",
];
const QUERIES: &[&str] = &[
    "What did Sam buy at the market?",
    "who repaired the bicycle",
    "coffee",
    "When is the dentist appointment?",
    "Where did Ana lose her charger?",
    "things Priya cooked on the weekend",
    "train tickets to Berlin",
    "what music gear did anyone order",
    "a gift for a birthday",
    "camping equipment at the lake",
    "Maria hates winter tyres",
    "hiking in the mountains",
];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `i`-th memory: a distinct short sentence.
fn sentence(i: usize, rng: &mut StdRng) -> String {
    let pick = |rng: &mut StdRng, list: &[&str]| list[rng.random_range(0..list.len())].to_owned();
    format!(
        "{} {} {} {} {} (note {i})",
        pick(rng, PEOPLE),
        pick(rng, VERBS),
        pick(rng, THINGS),
        pick(rng, PLACES),
        pick(rng, WHEN)
    )
}

/// The `i`-th question: distinct texts, so that no cache of query vectors can help.
fn question(i: usize) -> String {
    format!(
        "{} {}",
        QUERIES[i % QUERIES.len()],
        PEOPLE[(i / QUERIES.len()) % PEOPLE.len()]
    )
}

fn percentile(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

#[allow(unsafe_code)]
fn main() -> ExitCode {
    // SAFETY: the first statement of `main`: no other thread exists yet. (As the binary does, so the
    // embedder runs here as it does in the service.)
    unsafe { angel_memory::search::embed::local::settle_candle_threads() };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run())
}

async fn run() -> ExitCode {
    let memories = env_usize("BENCH_MEMORIES", 100_000);
    let queries = env_usize("BENCH_QUERIES", 300);
    let dir = tempfile::tempdir().expect("temp dir");
    // BENCH_DATABASE_URL: on a fresh PostgreSQL database instead of a SQLite file.
    let database = support::BenchDatabase::from_env();
    let sqlite_file = std::env::var_os("BENCH_SQLITE_FILE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().join("bench.db"));
    let store: Arc<dyn Store> = match &database {
        Some(database) => Arc::new(
            PostgresStore::open(&database.url, PgOptions::default())
                .await
                .expect("open store"),
        ),
        None => {
            Arc::new(SqliteStore::open(&sqlite_file, &PoolOptions::default()).expect("open store"))
        }
    };
    let settings = EmbeddingSettings {
        model_dir: std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("models/all-MiniLM-L6-v2"),
        ..EmbeddingSettings::default()
    };
    let searcher = Searcher::from_settings(Arc::clone(&store), &settings).await;
    if !searcher.semantic_available() {
        eprintln!(
            "no embedding model in {}; run `python3 scripts/fetch_model.py` first",
            settings.model_dir.display()
        );
        return ExitCode::FAILURE;
    }
    let uid = Uid::parse("bench-user").unwrap();
    let ctx = Context::new(Actor::System, None);
    let reused = store.get_user(&uid).await.is_ok();
    let (mut fill_seconds, mut embedded, mut embed_seconds, mut throughput) = (0.0, 0, 0.0, 0.0);
    if reused {
        println!(
            "reusing the filled, embedded database {}",
            sqlite_file.display()
        );
    } else {
        store.create_user(&uid).await.expect("user");

        // Fill: batches through the normal write path, 20 memories per conversation.
        let mut rng = StdRng::seed_from_u64(7);
        let started = Instant::now();
        let mut written = 0;
        while written < memories {
            let n = (memories - written).min(1_000);
            let batch: Vec<NewMemory> = (written..written + n)
                .map(|i| NewMemory {
                    conversation_id: Some(
                        ConversationId::parse(&format!("conv-{}", i / 20)).unwrap(),
                    ),
                    ..NewMemory::new(Content::parse(&sentence(i, &mut rng)).unwrap(), Source::Api)
                })
                .collect();
            let results = store
                .create_memories(&uid, batch, &ctx)
                .await
                .expect("write");
            assert!(results.iter().all(Result::is_ok), "a write failed");
            written += n;
        }
        fill_seconds = started.elapsed().as_secs_f64();
        println!(
            "filled {memories} memories in {fill_seconds:.1} s ({:.0}/s)",
            memories as f64 / fill_seconds
        );

        // Embed everything with the background worker's own code path.
        let worker = searcher.worker().expect("worker").clone();
        let started = Instant::now();
        embedded = worker.drain().await;
        embed_seconds = started.elapsed().as_secs_f64();
        throughput = embedded as f64 / embed_seconds;
        println!(
            "embedded {embedded} memories in {embed_seconds:.1} s: {throughput:.0} memories/s"
        );
    }

    let mut results = serde_json::Map::new();
    for mode in [Mode::Text, Mode::Semantic, Mode::Hybrid] {
        let request = |q: &str| SearchRequest {
            query: q.to_owned(),
            mode,
            limit: 10,
            filter: SearchFilter::default(),
            tuning: Default::default(),
        };
        // Warm-up: loads the user's vectors into the cache.
        let warm = Instant::now();
        searcher
            .search_memories(&uid, &request(QUERIES[0]))
            .await
            .expect("search");
        let warm_ms = warm.elapsed().as_secs_f64() * 1000.0;
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        let mut empty = 0;
        for i in 0..queries {
            let q = question(i);
            let t = Instant::now();
            let found = searcher
                .search_memories(&uid, &request(&q))
                .await
                .expect("search");
            histogram
                .record(t.elapsed().as_micros().max(1) as u64)
                .unwrap();
            if found.items.is_empty() {
                empty += 1;
            }
            assert_eq!(found.mode, mode);
        }
        let (p50, p90, p99) = (
            percentile(&histogram, 0.5),
            percentile(&histogram, 0.9),
            percentile(&histogram, 0.99),
        );
        println!(
            "{:<8} p50 {p50:.2} ms  p90 {p90:.2} ms  p99 {p99:.2} ms  max {:.2} ms  (first query with cache load {warm_ms:.0} ms; {empty} of {queries} empty)",
            mode.as_str(),
            histogram.max() as f64 / 1000.0
        );
        results.insert(
            mode.as_str().into(),
            serde_json::json!({"p50_ms": p50, "p90_ms": p90, "p99_ms": p99,
                "max_ms": histogram.max() as f64 / 1000.0, "first_query_ms": warm_ms, "queries": queries}),
        );
    }
    // Where a semantic query's time goes: the question's embedding alone, on a model of its own
    // (same settings, same distinct texts as above).
    let embedder = angel_memory::search::embed::from_settings(&settings)
        .await
        .expect("model");
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for i in 0..queries {
        let q = question(i);
        let t = Instant::now();
        embedder.embed(&[q]).await.expect("embed");
        histogram
            .record(t.elapsed().as_micros().max(1) as u64)
            .unwrap();
    }
    let (p50, p99) = (percentile(&histogram, 0.5), percentile(&histogram, 0.99));
    println!("of which the question's embedding: p50 {p50:.2} ms  p99 {p99:.2} ms");
    results.insert(
        "query_embedding".into(),
        serde_json::json!({"p50_ms": p50, "p99_ms": p99, "queries": queries}),
    );
    let report = serde_json::json!({
        "memories": memories,
        "reused_database": reused,
        "fill_seconds": fill_seconds,
        "embedded": embedded,
        "embed_seconds": embed_seconds,
        "embedded_per_second": throughput,
        "latency": results,
        "targets": {"text_p50_ms": 3, "hybrid_p50_ms": 15, "hybrid_p99_ms": 40, "embedded_per_second": 200},
    });
    let _ = std::fs::create_dir_all("bench-results");
    let _ = std::fs::write(
        "bench-results/search_load.json",
        serde_json::to_string_pretty(&report).unwrap_or_default(),
    );
    ExitCode::SUCCESS
}
