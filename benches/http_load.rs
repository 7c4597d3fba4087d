//! End-to-end HTTP load benchmark for the memory API.
//!
//! Starts the real `angel-memory serve` binary on a loopback port with a fresh
//! temporary data dir, creates a user and an API key through the admin API, then
//! measures:
//!
//! * closed-loop throughput and latency with 32 concurrent clients for
//!   create / get / list / update (`BENCH_SECONDS` each, default 10);
//! * open-loop latency of single creates at a fixed 1,000 requests/s, measured
//!   from the intended send time so a slow server cannot hide behind a slow
//!   client (no coordinated omission);
//! * filling the user up to `BENCH_FILL` memories (default 100,000) with the
//!   batch endpoint, the server's resident memory afterwards, and get/list
//!   latency at that size.
//!
//! Results are printed as they come, summarised against the targets, and written
//! to `bench-results/http_load.json` and `bench-results/http_load.svg`.
//!
//! Run: `cargo bench --bench http_load`
//! Quick smoke run: `BENCH_SECONDS=2 BENCH_FILL=2000 cargo bench --bench http_load`

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::Rng as _;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};

use support::{
    ChartRow, Row, Server, Table, Tally, Target, build_client, env_number, megabytes,
    proc_status_kb, send, send_json,
};

mod support;

const CLIENTS: usize = 32;
const OPEN_LOOP_RATE: u64 = 1_000;
const FILL_BATCH: usize = 100;
const FILL_CLIENTS: usize = 4;
const TABLE: Table = Table {
    name_width: 26,
    rate: "req/s",
};

// Targets.
const TARGET_CREATE_RPS: f64 = 5_000.0;
const TARGET_SINGLE_CREATE_P99_MS: f64 = 5.0;
const TARGET_RSS_MB: f64 = 60.0;

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

struct Config {
    seconds: u64,
    fill: usize,
}

impl Config {
    fn from_env() -> Self {
        Self {
            seconds: env_number("BENCH_SECONDS", 10).max(1),
            fill: env_number("BENCH_FILL", 100_000) as usize,
        }
    }

    fn duration(&self) -> Duration {
        Duration::from_secs(self.seconds)
    }

    /// Shorter sample used for the get/list measurement after the fill.
    fn sample_duration(&self) -> Duration {
        Duration::from_secs((self.seconds / 2).max(1))
    }
}

// ---------------------------------------------------------------------------
// API client
// ---------------------------------------------------------------------------

/// A memory as far as the bench cares: its id and current version.
#[derive(Clone, Debug)]
struct Memory {
    id: String,
    version: u64,
}

impl Memory {
    fn from_json(value: &Value) -> Result<Self, String> {
        let id = match &value["id"] {
            Value::String(s) => s.clone(),
            Value::Null => return Err(format!("response has no id: {value}")),
            other => other.to_string(),
        };
        let version = value["version"]
            .as_u64()
            .ok_or_else(|| format!("response has no numeric version: {value}"))?;
        Ok(Self { id, version })
    }
}

/// Cheap to clone: one shared connection pool.
#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: Arc<str>,
    auth: Arc<str>,
}

impl Api {
    fn new(client: reqwest::Client, base: &str, token: &str) -> Self {
        Self {
            client,
            base: base.into(),
            auth: format!("Bearer {token}").into(),
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .header(reqwest::header::AUTHORIZATION, &*self.auth)
    }

    async fn create(&self, body: &Value) -> Result<Memory, String> {
        let req = self
            .request(reqwest::Method::POST, "/v1/memories")
            .json(body);
        let value = send_json(req, StatusCode::CREATED).await?;
        Memory::from_json(&value)
    }

    async fn create_batch(&self, memories: Vec<Value>) -> Result<(), String> {
        let req = self
            .request(reqwest::Method::POST, "/v1/memories/batch")
            .json(&json!({ "memories": memories }));
        send(req, StatusCode::OK).await.map(drop)
    }

    async fn get(&self, id: &str) -> Result<Memory, String> {
        let req = self.request(reqwest::Method::GET, &format!("/v1/memories/{id}"));
        let value = send_json(req, StatusCode::OK).await?;
        Memory::from_json(&value)
    }

    async fn list(&self, limit: usize) -> Result<(), String> {
        let req = self.request(reqwest::Method::GET, &format!("/v1/memories?limit={limit}"));
        send(req, StatusCode::OK).await.map(drop)
    }

    async fn update(&self, memory: &Memory, content: String) -> Result<Memory, String> {
        let req = self
            .request(
                reqwest::Method::PATCH,
                &format!("/v1/memories/{}", memory.id),
            )
            .header(reqwest::header::IF_MATCH, format!("\"{}\"", memory.version))
            .json(&json!({ "content": content }));
        let value = send_json(req, StatusCode::OK).await?;
        Memory::from_json(&value)
    }
}

/// Sends a request and reads the whole body; any other status is an error.
async fn setup_user(client: &reqwest::Client, server: &Server) -> Api {
    let admin = Api::new(client.clone(), &server.base_url, &server.admin_token);
    let req = admin
        .request(reqwest::Method::POST, "/v1/admin/users")
        .json(&json!({ "uid": "bench-user" }));
    send(req, StatusCode::CREATED)
        .await
        .expect("create bench user");
    let req = admin
        .request(reqwest::Method::POST, "/v1/admin/users/bench-user/keys")
        .json(&json!({ "name": "bench" }));
    let key = send_json(req, StatusCode::CREATED)
        .await
        .expect("create API key");
    let key = key["key"]
        .as_str()
        .expect("key response has a \"key\" string");
    Api::new(client.clone(), &server.base_url, key)
}

// ---------------------------------------------------------------------------
// Content
// ---------------------------------------------------------------------------

const SNIPPETS: &[&str] = &[
    "Met Sam at the climbing gym on Tuesday; he recommended the blue route on the north wall and offered to belay next week",
    "Dentist appointment moved to Thursday at 9:30, bring the insurance card and ask about the night guard for grinding",
    "Lena prefers oat milk in her flat white and hates being called before ten in the morning, text her instead",
    "Idea for the garden: plant tomatoes along the south fence and move the herbs closer to the kitchen door",
    "The quarterly review went well; Priya wants the migration plan written up before the offsite in March",
    "Dad's birthday is on the 14th, he mentioned wanting a new fly fishing reel, the Orvis one from the catalogue",
    "Podcast recommendation from Marco: the episode about sleep and memory consolidation, roughly an hour long",
    "Car needs new winter tyres before November; the garage on Elm Street quoted a fair price last year",
];

static NEXT_CONTENT: AtomicU64 = AtomicU64::new(0);

/// Realistic memory text, unique per call (identical content is deduplicated).
fn unique_content() -> String {
    content_for(NEXT_CONTENT.fetch_add(1, Ordering::Relaxed))
}

fn content_for(n: u64) -> String {
    let snippet = SNIPPETS[n as usize % SNIPPETS.len()];
    format!("{snippet}. #{n}")
}

fn new_memory_body() -> Value {
    let n = NEXT_CONTENT.fetch_add(1, Ordering::Relaxed);
    json!({
        "content": content_for(n),
        "tags": ["bench", format!("t{}", n % 10)],
        "category": "manual",
    })
}

// ---------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------

/// Runs one worker per state until `duration` has passed; each worker returns
/// its tally plus whatever it wants to hand back (created memories, ...).
async fn closed_loop<S, T, F, Fut>(
    states: Vec<S>,
    duration: Duration,
    worker: F,
) -> (Tally, Duration, Vec<T>)
where
    F: Fn(S, Instant) -> Fut,
    Fut: Future<Output = (Tally, T)> + Send + 'static,
    T: Send + 'static,
{
    let started = Instant::now();
    let deadline = started + duration;
    let handles: Vec<_> = states
        .into_iter()
        .map(|state| tokio::spawn(worker(state, deadline)))
        .collect();
    let mut total = Tally::new();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        let (tally, output) = handle.await.expect("worker task panicked");
        total.merge(tally);
        outputs.push(output);
    }
    (total, started.elapsed(), outputs)
}

async fn create_worker(api: Api, deadline: Instant) -> (Tally, Vec<Memory>) {
    let mut tally = Tally::new();
    let mut created = Vec::new();
    while Instant::now() < deadline {
        let body = new_memory_body();
        let start = Instant::now();
        let outcome = api.create(&body).await;
        tally.record(start, &outcome);
        created.extend(outcome.ok());
    }
    (tally, created)
}

async fn get_worker(api: Api, ids: Arc<Vec<String>>, deadline: Instant) -> Tally {
    let mut tally = Tally::new();
    while Instant::now() < deadline {
        let id = &ids[rand::rng().random_range(0..ids.len())];
        let start = Instant::now();
        let outcome = api.get(id).await;
        tally.record(start, &outcome);
    }
    tally
}

async fn list_worker(api: Api, deadline: Instant) -> Tally {
    let mut tally = Tally::new();
    while Instant::now() < deadline {
        let start = Instant::now();
        let outcome = api.list(50).await;
        tally.record(start, &outcome);
    }
    tally
}

/// Updates only the memories this worker owns, so versions never conflict.
async fn update_worker(
    api: Api,
    mut owned: Vec<Memory>,
    deadline: Instant,
) -> (Tally, Vec<Memory>) {
    let mut tally = Tally::new();
    if owned.is_empty() {
        return (tally, owned);
    }
    let mut next = 0;
    while Instant::now() < deadline {
        let index = next % owned.len();
        next += 1;
        let memory = &mut owned[index];
        let start = Instant::now();
        let outcome = api.update(memory, unique_content()).await;
        tally.record(start, &outcome);
        match outcome {
            Ok(updated) => memory.version = updated.version,
            // Resynchronise so one failure does not cascade into 412s.
            Err(_) => {
                if let Ok(current) = api.get(&memory.id).await {
                    memory.version = current.version;
                }
            }
        }
    }
    (tally, owned)
}

/// Closed-loop create/get/list/update with `CLIENTS` workers. Returns the rows
/// and every memory created (with its latest known version).
async fn closed_loop_scenarios(api: &Api, duration: Duration) -> (Vec<(Row, Tally)>, Vec<Memory>) {
    let mut results = Vec::new();

    let states = vec![api.clone(); CLIENTS];
    let (tally, elapsed, created) = closed_loop(states, duration, create_worker).await;
    let mut memories: Vec<Memory> = created.into_iter().flatten().collect();
    results.push(TABLE.finish(&format!("create ({CLIENTS} clients)"), tally, elapsed));

    if memories.is_empty() {
        println!("!!!!! no memories were created; skipping get and update !!!!!");
    } else {
        let ids = memories.iter().map(|m| m.id.clone()).collect();
        let name = format!("get ({CLIENTS} clients)");
        results.push(run_gets(api, ids, &name, duration).await);
    }
    let name = format!("list ({CLIENTS} clients)");
    results.push(run_lists(api, &name, duration).await);

    if !memories.is_empty() {
        let states: Vec<_> = partition(std::mem::take(&mut memories), CLIENTS)
            .into_iter()
            .map(|owned| (api.clone(), owned))
            .collect();
        let (tally, elapsed, owned) = closed_loop(states, duration, |(api, owned), deadline| {
            update_worker(api, owned, deadline)
        })
        .await;
        memories = owned.into_iter().flatten().collect();
        results.push(TABLE.finish(&format!("update ({CLIENTS} clients)"), tally, elapsed));
    }

    (results, memories)
}

async fn run_gets(api: &Api, ids: Vec<String>, name: &str, duration: Duration) -> (Row, Tally) {
    let states = vec![(api.clone(), Arc::new(ids)); CLIENTS];
    let (tally, elapsed, _) = closed_loop(states, duration, |(api, ids), deadline| async move {
        (get_worker(api, ids, deadline).await, ())
    })
    .await;
    TABLE.finish(name, tally, elapsed)
}

async fn run_lists(api: &Api, name: &str, duration: Duration) -> (Row, Tally) {
    let states = vec![api.clone(); CLIENTS];
    let (tally, elapsed, _) = closed_loop(states, duration, |api, deadline| async move {
        (list_worker(api, deadline).await, ())
    })
    .await;
    TABLE.finish(name, tally, elapsed)
}

fn partition<T>(items: Vec<T>, parts: usize) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = (0..parts).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        out[i % parts].push(item);
    }
    out
}

/// Single creates sent on a fixed schedule; latency is measured from the
/// scheduled send time, and each request runs in its own task.
async fn open_loop_create(api: &Api, rate: u64, duration: Duration) -> (Row, Tally, Vec<Memory>) {
    let total = rate * duration.as_secs();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = Instant::now();
    let mut handles = Vec::with_capacity(total as usize);
    for i in 0..total {
        let intended = started + interval.mul_f64(i as f64);
        tokio::time::sleep_until(intended.into()).await;
        let api = api.clone();
        let body = new_memory_body();
        handles.push(tokio::spawn(async move {
            let outcome = api.create(&body).await;
            (intended.elapsed(), outcome)
        }));
    }
    let mut tally = Tally::new();
    let mut created = Vec::new();
    for handle in handles {
        let (latency, outcome) = handle.await.expect("request task panicked");
        tally.record_latency(latency, &outcome);
        created.extend(outcome.ok());
    }
    let (row, tally) = TABLE.finish(
        &format!("create open-loop {rate}/s"),
        tally,
        started.elapsed(),
    );
    (row, tally, created)
}

/// Fills the user up to `target` memories with concurrent batch requests.
/// Returns the row and how many memories were added, or `None` if the user
/// already holds enough.
async fn fill(api: &Api, already: usize, target: usize) -> Option<(Row, Tally, usize)> {
    let remaining = target.checked_sub(already).filter(|&n| n > 0)?;
    println!(
        "fill: adding {remaining} memories ({already} -> {target}) in batches of {FILL_BATCH}"
    );
    let batches = remaining.div_ceil(FILL_BATCH);
    let next_batch = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..FILL_CLIENTS)
        .map(|_| {
            let (api, next_batch, done) = (api.clone(), next_batch.clone(), done.clone());
            tokio::spawn(async move {
                let mut tally = Tally::new();
                loop {
                    let batch = next_batch.fetch_add(1, Ordering::Relaxed);
                    if batch >= batches {
                        return tally;
                    }
                    let size = FILL_BATCH.min(remaining - batch * FILL_BATCH);
                    let items = (0..size).map(|_| new_memory_body()).collect();
                    let start = Instant::now();
                    let outcome = api.create_batch(items).await;
                    tally.record(start, &outcome);
                    if outcome.is_ok() {
                        let before = done.fetch_add(size, Ordering::Relaxed);
                        print_fill_progress(before, before + size, already, remaining, started);
                    }
                }
            })
        })
        .collect();
    let mut tally = Tally::new();
    for handle in handles {
        tally.merge(handle.await.expect("fill task panicked"));
    }
    let name = format!("fill batch x{FILL_BATCH} ({FILL_CLIENTS} cl)");
    let (mut row, tally) = TABLE.finish(&name, tally, started.elapsed());
    let added = done.load(Ordering::Relaxed);
    let note = format!("{:.0} memories/s", added as f64 / row.elapsed_s);
    println!("fill: {added} memories added, {note}");
    row.note = Some(note);
    Some((row, tally, added))
}

/// Prints a line each time the fill crosses another 10 %.
fn print_fill_progress(
    before: usize,
    after: usize,
    already: usize,
    remaining: usize,
    started: Instant,
) {
    let decile = |n: usize| n * 10 / remaining;
    if decile(after) > decile(before) {
        let secs = started.elapsed().as_secs_f64();
        println!(
            "fill: {:>3}% ({} memories, {:.0} memories/s)",
            decile(after) * 10,
            already + after,
            after as f64 / secs
        );
    }
}

/// Get and list latency once the user holds many memories.
async fn sample_at_size(
    api: &Api,
    ids: Vec<String>,
    size: usize,
    duration: Duration,
) -> Vec<(Row, Tally)> {
    let mut results = Vec::new();
    if !ids.is_empty() {
        results.push(run_gets(api, ids, &format!("get @ {size}"), duration).await);
    }
    results.push(run_lists(api, &format!("list @ {size}"), duration).await);
    results
}

// ---------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------

struct ServerMemory {
    peak_rss_kb: Option<u64>,
    rss_kb: Option<u64>,
    memories: usize,
}

struct Results {
    rows: Vec<(Row, Tally)>,
    create_rps: Option<f64>,
    open_loop_p99_ms: Option<f64>,
    server_memory: ServerMemory,
}

impl Results {
    fn errors(&self) -> u64 {
        self.rows.iter().map(|(row, _)| row.errors).sum()
    }

    fn targets(&self) -> Vec<Target> {
        let rss_mb = self.server_memory.rss_kb.map(|kb| kb as f64 / 1024.0);
        vec![
            Target::new(
                "create throughput, 32 clients",
                format!(">= {TARGET_CREATE_RPS:.0} req/s"),
                self.create_rps,
                |v| v >= TARGET_CREATE_RPS,
            ),
            Target::new(
                "single create p99 at 1,000/s",
                format!("< {TARGET_SINGLE_CREATE_P99_MS} ms"),
                self.open_loop_p99_ms,
                |v| v < TARGET_SINGLE_CREATE_P99_MS,
            ),
            Target::new(
                "server RSS after fill",
                format!(
                    "< {TARGET_RSS_MB} MB at {} memories",
                    self.server_memory.memories
                ),
                rss_mb,
                |v| v < TARGET_RSS_MB,
            ),
        ]
    }
}

fn print_summary(results: &Results) {
    println!();
    println!("==================== summary ====================");
    TABLE.print(&results.rows);
    let mem = &results.server_memory;
    println!();
    println!(
        "server memory at {} memories: RSS {}, peak RSS (VmHWM) {}",
        mem.memories,
        megabytes(mem.rss_kb),
        megabytes(mem.peak_rss_kb)
    );
    support::print_targets(&results.targets());
    let errors = results.errors();
    if errors > 0 {
        println!();
        println!(
            "!!!!! {errors} REQUESTS FAILED DURING THE BENCHMARK - RESULTS ARE NOT VALID !!!!!"
        );
    }
}

fn results_json(results: &Results, config: &Config) -> Value {
    let mem = &results.server_memory;
    let targets: Vec<Value> = results.targets().iter().map(Target::to_json).collect();
    json!({
        "generated_at": chrono::Utc::now().to_rfc3339(),
        "config": {
            "seconds": config.seconds,
            "fill": config.fill,
            "clients": CLIENTS,
            "open_loop_rate": OPEN_LOOP_RATE,
            "fill_batch": FILL_BATCH,
            "fill_clients": FILL_CLIENTS,
        },
        "scenarios": results.rows.iter().map(|(row, _)| row.to_json()).collect::<Vec<_>>(),
        "server_memory": {
            "memories": mem.memories,
            "rss_kb": mem.rss_kb,
            "peak_rss_kb": mem.peak_rss_kb,
        },
        "targets": targets,
        "errors": results.errors(),
    })
}

fn write_outputs(results: &Results, config: &Config) {
    support::write_results(
        "http_load",
        &results_json(results, config),
        &svg_chart(results),
    );
}

/// Grouped bar chart: p50 and p99 latency per scenario, throughput underneath.
fn svg_chart(results: &Results) -> String {
    let rows: Vec<ChartRow> = results
        .rows
        .iter()
        .map(|(row, _)| ChartRow::from_row(row, format!("{:.0} req/s", row.rps.unwrap_or(0.0))))
        .collect();
    let mem = &results.server_memory;
    let footer = format!(
        "server RSS at {} memories: {} (peak {}); generated {}",
        mem.memories,
        megabytes(mem.rss_kb),
        megabytes(mem.peak_rss_kb),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    support::svg_chart(
        "angel-memory HTTP latency per scenario (ms, lower is better)",
        &rows,
        &[footer],
    )
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

async fn run(config: &Config) -> Results {
    // `BENCH_EMBEDDING=off` measures the service without the embedding model (the memory target
    // predates semantic search; the model's weights alone are 90 MB).
    let embedding = std::env::var("BENCH_EMBEDDING").map_or(true, |v| v != "off");
    let mut server = Server::spawn_with(|command, _| {
        if !embedding {
            command.env("ANGEL_MEMORY_EMBEDDING__PROVIDER", "off");
        }
    });
    println!(
        "embedding: {}",
        if embedding {
            "on"
        } else {
            "off (BENCH_EMBEDDING=off)"
        }
    );
    let client = build_client(CLIENTS);
    server.wait_ready(&client).await;
    let api = setup_user(&client, &server).await;

    println!();
    println!(
        "closed loop, {CLIENTS} clients, {} s per scenario",
        config.seconds
    );
    println!("{}", TABLE.header());
    let (mut rows, mut memories) = closed_loop_scenarios(&api, config.duration()).await;
    let create_rps = rows.first().and_then(|(row, _)| row.rps);

    println!();
    println!(
        "open loop, single creates at {OPEN_LOOP_RATE}/s for {} s",
        config.seconds
    );
    println!("{}", TABLE.header());
    let (row, tally, created) = open_loop_create(&api, OPEN_LOOP_RATE, config.duration()).await;
    println!(
        "achieved rate {:.0}/s (target {OPEN_LOOP_RATE}/s)",
        row.rps.unwrap_or(0.0)
    );
    let open_loop_p99_ms = Some(row.p99_ms);
    rows.push((row, tally));
    memories.extend(created);

    println!();
    let mut total = memories.len();
    match fill(&api, total, config.fill).await {
        Some((row, tally, added)) => {
            total += added;
            rows.push((row, tally));
        }
        None => println!(
            "fill: user already holds {total} memories (BENCH_FILL={})",
            config.fill
        ),
    }
    let pid = server.pid();
    let server_memory = ServerMemory {
        peak_rss_kb: proc_status_kb(pid, "VmHWM"),
        rss_kb: proc_status_kb(pid, "VmRSS"),
        memories: total,
    };
    println!(
        "server RSS at {total} memories: {} (peak {})",
        megabytes(server_memory.rss_kb),
        megabytes(server_memory.peak_rss_kb)
    );

    println!();
    println!(
        "latency at {total} memories, {CLIENTS} clients, {} s each",
        config.sample_duration().as_secs()
    );
    println!("{}", TABLE.header());
    let ids = memories.into_iter().map(|m| m.id).collect();
    rows.extend(sample_at_size(&api, ids, total, config.sample_duration()).await);

    if let Some(status) = server.exit_status() {
        println!("!!!!! the server exited during the benchmark: {status} !!!!!");
    }
    Results {
        rows,
        create_rps,
        open_loop_p99_ms,
        server_memory,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    angel_memory::tls::install_crypto_provider();
    let config = Config::from_env();
    // Dropping `run` (on Ctrl-C) drops the server guard, which kills the child.
    let Some(results) = support::unless_interrupted(run(&config)).await else {
        return ExitCode::FAILURE;
    };
    print_summary(&results);
    write_outputs(&results, &config);
    if results.errors() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
