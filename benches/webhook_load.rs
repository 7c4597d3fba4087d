//! End-to-end load benchmark for Omi's conversation webhook.
//!
//! Starts the real `angel-memory serve` binary on a loopback port with a fresh temporary data dir and
//! posts realistic ~10 KB conversation bodies (`conversation_created_full.json` from the shared Omi
//! fixtures, compact as Omi sends it, trimmed to ~10 KB, a unique conversation id per request so every
//! request is new work) to `POST /webhooks/omi/conversation`. It measures:
//!
//! * closed-loop acknowledgements/s and latency with 32 concurrent clients for `BENCH_SECONDS`
//!   (default 10), then how long the inbox worker takes to drain the backlog that leaves;
//! * open-loop acknowledgement latency at a fixed 1,000 requests/s for `BENCH_SECONDS`, measured
//!   from the intended send time (no coordinated omission), and the drain after it;
//! * the delay from acknowledgement to a findable summary memory: 50 sampled conversations sent
//!   during a moderate background load, each followed by polling
//!   `GET /v1/memories?source=omi_conversation&conversation_id=<id>` every ~2 ms until it appears.
//!
//! Results are printed as they come, summarised against the targets, and written to
//! `bench-results/webhook_load.json` and `bench-results/webhook_load.svg`.
//!
//! Run: `cargo bench --bench webhook_load`
//! Quick smoke run: `BENCH_SECONDS=2 cargo bench --bench webhook_load`
//! A fixed background rate for the last phase: `BENCH_MODERATE_RATE=300`

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};

use support::{
    ChartRow, Row, Server, Table, Tally, Target, build_client, env_number, megabytes,
    proc_status_kb, send, send_json,
};

mod support;

const CLIENTS: usize = 32;
const OPEN_LOOP_RATE: u64 = 1_000;
/// Background load while sampling the acknowledgement-to-memory delay: a quarter of the closed-loop
/// acknowledgement rate or half the inbox worker's measured rate, whichever is lower, within these
/// bounds.
const MODERATE_RATE_MIN: f64 = 50.0;
const MODERATE_RATE_MAX: f64 = 500.0;
const VISIBILITY_SAMPLES: usize = 50;
const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);
const POLL_INTERVAL: Duration = Duration::from_millis(2);
const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(10);
/// Sampling stops here even if samples are missing (each waits up to `VISIBILITY_TIMEOUT`).
const VISIBILITY_PHASE_LIMIT: Duration = Duration::from_secs(60);
const WARMUP: Duration = Duration::from_secs(1);
const DRAIN_POLL: Duration = Duration::from_millis(10);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(600);
const BODY_TARGET_BYTES: usize = 10 * 1024;
/// The fixtures' Omi user.
const UID: &str = "5Z9Lil2WHl1vvn5iP2pZw0fKm4BR";
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fixtures/omi/conversation_created_full.json"
);

// Targets.
const TABLE: Table = Table {
    name_width: 27,
    rate: "ack/s",
};

const TARGET_ACK_RPS: f64 = 3_000.0;
const TARGET_OPEN_LOOP_P99_MS: f64 = 10.0;

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

struct Config {
    seconds: u64,
    /// `BENCH_EMBEDDING=off` runs the server without embeddings (full-text search only), to
    /// separate the webhook path from the background embedding of every new memory.
    embedding: bool,
}

impl Config {
    fn from_env() -> Self {
        Self {
            seconds: env_number("BENCH_SECONDS", 10).max(1),
            embedding: match std::env::var("BENCH_EMBEDDING") {
                Ok(raw) => match raw.trim() {
                    "on" => true,
                    "off" => false,
                    _ => panic!("BENCH_EMBEDDING must be on or off, got {raw:?}"),
                },
                Err(_) => true,
            },
        }
    }

    fn duration(&self) -> Duration {
        Duration::from_secs(self.seconds)
    }
}

// ---------------------------------------------------------------------------
// Server process
// ---------------------------------------------------------------------------

/// The server with a fresh webhook token (returned with it); `embedding: false` turns embedding off.
fn spawn_server(embedding: bool) -> (Server, String) {
    let webhook_token = uuid::Uuid::new_v4().simple().to_string();
    let server = Server::spawn_with(|command, _| {
        command.env("ANGEL_MEMORY_WEBHOOK_TOKEN", &webhook_token);
        if !embedding {
            command.env("ANGEL_MEMORY_EMBEDDING__PROVIDER", "off");
        }
    });
    (server, webhook_token)
}

// ---------------------------------------------------------------------------
// Payloads
// ---------------------------------------------------------------------------

/// Marks where each request's unique token goes in the serialised template.
const PLACEHOLDER: &str = "@@UNIQUE-TOKEN@@";

/// The fixture serialised once with placeholders; a body is its parts joined by a fresh uuid, which
/// becomes the conversation id and a reference in the overview (so the summary memory is unique too).
struct Payloads {
    parts: Vec<String>,
    segments: usize,
    segments_in_fixture: usize,
}

impl Payloads {
    fn load() -> Self {
        let text =
            std::fs::read_to_string(FIXTURE).unwrap_or_else(|e| panic!("read {FIXTURE}: {e}"));
        let mut conversation: Value = serde_json::from_str(&text).expect("fixture is JSON");
        conversation["id"] = json!(PLACEHOLDER);
        let overview = conversation["structured"]["overview"]
            .as_str()
            .expect("fixture overview")
            .to_owned();
        conversation["structured"]["overview"] = json!(format!("{overview} (ref {PLACEHOLDER})"));
        let segments_in_fixture = conversation["transcript_segments"]
            .as_array()
            .expect("fixture transcript")
            .len();
        let token_len = uuid::Uuid::nil().to_string().len();
        // Omi sends compact JSON; drop trailing transcript segments until the body is ~10 KB.
        loop {
            let template = serde_json::to_string(&conversation).expect("serialise fixture");
            let parts: Vec<String> = template.split(PLACEHOLDER).map(str::to_owned).collect();
            let size = parts.iter().map(String::len).sum::<usize>() + (parts.len() - 1) * token_len;
            let segments = conversation["transcript_segments"].as_array_mut().unwrap();
            if size <= BODY_TARGET_BYTES || segments.len() <= 1 {
                return Self {
                    parts,
                    segments: segments.len(),
                    segments_in_fixture,
                };
            }
            segments.pop();
        }
    }

    /// A new conversation: its id and its body.
    fn next(&self) -> (String, Vec<u8>) {
        let id = uuid::Uuid::new_v4().to_string();
        let body = self.parts.join(id.as_str()).into_bytes();
        (id, body)
    }

    fn body_bytes(&self) -> usize {
        self.next().1.len()
    }
}

// ---------------------------------------------------------------------------
// API client
// ---------------------------------------------------------------------------

/// Cheap to clone: one shared connection pool.
#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: Arc<str>,
    webhook_url: Arc<str>,
    admin_auth: Arc<str>,
    /// The bench user's API key, once created.
    user_auth: Option<Arc<str>>,
}

impl Api {
    fn new(client: reqwest::Client, server: &Server, webhook_token: &str) -> Self {
        Self {
            client,
            base: server.base_url.as_str().into(),
            webhook_url: format!(
                "{}/webhooks/omi/conversation?token={}&uid={UID}",
                server.base_url, webhook_token
            )
            .into(),
            admin_auth: format!("Bearer {}", server.admin_token).into(),
            user_auth: None,
        }
    }

    fn admin(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .header(reqwest::header::AUTHORIZATION, &*self.admin_auth)
    }

    /// One conversation webhook; acknowledged means 200 `{}`.
    async fn post_conversation(&self, body: Vec<u8>) -> Result<(), String> {
        let req = self
            .client
            .post(&*self.webhook_url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        let answer = send(req, StatusCode::OK).await?;
        if answer != b"{}" {
            return Err(format!(
                "unexpected acknowledgement: {}",
                String::from_utf8_lossy(&answer)
            ));
        }
        Ok(())
    }

    /// Creates an API key for the bench user (created by its first webhook).
    async fn with_user_key(mut self) -> Self {
        let req = self
            .admin(
                reqwest::Method::POST,
                &format!("/v1/admin/users/{UID}/keys"),
            )
            .json(&json!({ "name": "bench" }));
        let key = send_json(req, StatusCode::CREATED)
            .await
            .expect("create API key");
        let key = key["key"]
            .as_str()
            .expect("key response has a \"key\" string");
        self.user_auth = Some(format!("Bearer {key}").into());
        self
    }

    /// Whether the summary memory of this conversation can be found.
    async fn memory_visible(&self, conversation_id: &str) -> Result<bool, String> {
        let auth = self.user_auth.as_deref().expect("user key created");
        let req = self
            .client
            .get(format!(
                "{}/v1/memories?source=omi_conversation&conversation_id={conversation_id}",
                self.base
            ))
            .header(reqwest::header::AUTHORIZATION, auth);
        let page = send_json(req, StatusCode::OK).await?;
        let items = page["items"]
            .as_array()
            .ok_or_else(|| format!("no items in {page}"))?;
        Ok(!items.is_empty())
    }

    /// Whether the server loaded an embedding model (every new memory is then embedded).
    async fn semantic_available(&self) -> Result<bool, String> {
        let auth = self.user_auth.as_deref().expect("user key created");
        let req = self
            .client
            .get(format!("{}/v1/memories/search?q=kiosk&limit=1", self.base))
            .header(reqwest::header::AUTHORIZATION, auth);
        let answer = send_json(req, StatusCode::OK).await?;
        answer["semantic_available"]
            .as_bool()
            .ok_or_else(|| format!("no semantic_available in {answer}"))
    }

    async fn pending_is_empty(&self) -> Result<bool, String> {
        let req = self.admin(
            reqwest::Method::GET,
            "/v1/admin/inbox?state=pending&limit=1",
        );
        let page = send_json(req, StatusCode::OK).await?;
        Ok(page["items"].as_array().is_some_and(Vec::is_empty))
    }

    async fn dead_events(&self) -> Result<usize, String> {
        let req = self.admin(reqwest::Method::GET, "/v1/admin/inbox?state=dead&limit=200");
        let page = send_json(req, StatusCode::OK).await?;
        Ok(page["items"].as_array().map_or(0, Vec::len))
    }

    /// Conversation events accepted as new and processed so far, from the Prometheus counters.
    async fn inbox_counters(&self) -> Option<InboxCounters> {
        let req = self.admin(reqwest::Method::GET, "/metrics");
        let text = String::from_utf8(send(req, StatusCode::OK).await.ok()?).ok()?;
        Some(InboxCounters {
            accepted: metric_sum(
                &text,
                "webhook_events_total",
                &["kind=\"conversation\"", "outcome=\"new\""],
            ),
            processed: metric_sum(
                &text,
                "inbox_events_total",
                &["kind=\"conversation\"", "outcome=\"done\""],
            ),
        })
    }
}

#[derive(Clone, Copy, Debug)]
struct InboxCounters {
    accepted: f64,
    processed: f64,
}

/// Sums the samples of a Prometheus metric whose labels include all of `labels`.
fn metric_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(series, _)| {
            series
                .strip_prefix(name)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('{'))
                && labels.iter().all(|label| series.contains(label))
        })
        .filter_map(|(_, value)| value.trim().parse::<f64>().ok())
        .sum()
}

// ---------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------

async fn ack_worker(api: Api, payloads: Arc<Payloads>, deadline: Instant) -> Tally {
    let mut tally = Tally::new();
    while Instant::now() < deadline {
        let (_, body) = payloads.next();
        let start = Instant::now();
        let outcome = api.post_conversation(body).await;
        tally.record(start, &outcome);
    }
    tally
}

/// `clients` workers posting new conversations back to back until `duration` has passed.
async fn closed_loop(
    api: &Api,
    payloads: &Arc<Payloads>,
    clients: usize,
    duration: Duration,
) -> (Tally, Duration) {
    let started = Instant::now();
    let deadline = started + duration;
    let handles: Vec<_> = (0..clients)
        .map(|_| tokio::spawn(ack_worker(api.clone(), payloads.clone(), deadline)))
        .collect();
    let mut total = Tally::new();
    for handle in handles {
        total.merge(handle.await.expect("worker task panicked"));
    }
    (total, started.elapsed())
}

/// New conversations sent on a fixed schedule, each in its own task; latency is measured from the
/// scheduled send time. Sends for `duration`, or until `stop` is set.
async fn open_loop(
    api: Api,
    payloads: Arc<Payloads>,
    rate: f64,
    duration: Duration,
    stop: Option<Arc<AtomicBool>>,
) -> (Tally, Duration) {
    let total = (rate * duration.as_secs_f64()).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let mut handles = Vec::with_capacity(total as usize);
    for i in 0..total {
        let intended = started + interval.mul_f64(i as f64);
        tokio::time::sleep_until(intended.into()).await;
        if stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) {
            break;
        }
        let api = api.clone();
        let (_, body) = payloads.next();
        handles.push(tokio::spawn(async move {
            let outcome = api.post_conversation(body).await;
            (intended.elapsed(), outcome)
        }));
    }
    let mut tally = Tally::new();
    for handle in handles {
        let (latency, outcome) = handle.await.expect("request task panicked");
        tally.record_latency(latency, &outcome);
    }
    (tally, started.elapsed())
}

/// Waits until no event is pending, counting from `since`.
async fn drain(api: &Api, since: Instant) -> Result<Duration, String> {
    loop {
        match api.pending_is_empty().await {
            Ok(true) => return Ok(since.elapsed()),
            Ok(false) => {}
            Err(e) => return Err(format!("reading the inbox: {e}")),
        }
        if since.elapsed() > DRAIN_TIMEOUT {
            return Err(format!(
                "events still pending {DRAIN_TIMEOUT:?} after the load stopped"
            ));
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

/// How long the backlog a phase left took to drain.
struct Drain {
    after: String,
    seconds: Option<f64>,
    /// Accepted but not yet processed when the load stopped.
    backlog: Option<f64>,
    /// Conversation events processed per second from the start of the load until drained.
    worker_rate: Option<f64>,
}

impl Drain {
    fn to_json(&self) -> Value {
        json!({
            "after": self.after,
            "seconds": self.seconds,
            "backlog_events": self.backlog,
            "worker_events_per_s": self.worker_rate,
        })
    }

    fn describe(&self) -> String {
        let seconds = self
            .seconds
            .map_or("n/a (FAILED)".to_string(), |s| format!("{s:.2} s"));
        let backlog = self
            .backlog
            .map_or("n/a".to_string(), |b| format!("{b:.0} events"));
        let rate = self
            .worker_rate
            .map_or("n/a".to_string(), |r| format!("{r:.0} events/s"));
        format!(
            "drain after {}: {seconds} (backlog {backlog}; worker {rate} over load + drain)",
            self.after
        )
    }
}

/// Runs a load phase, then measures the drain of what it left. `before` are the counters read just
/// before the phase started.
async fn measure_drain(
    api: &Api,
    name: &str,
    load_started: Instant,
    before: Option<InboxCounters>,
    problems: &mut Vec<String>,
) -> Drain {
    let stopped = Instant::now();
    let at_stop = api.inbox_counters().await;
    let outcome = drain(api, stopped).await;
    let after = api.inbox_counters().await;
    let seconds = match outcome {
        Ok(elapsed) => Some(elapsed.as_secs_f64()),
        Err(e) => {
            println!("!!!!! drain after {name} failed: {e} !!!!!");
            problems.push(format!("drain after {name}: {e}"));
            None
        }
    };
    let worker_rate = match (before, after, seconds) {
        (Some(b), Some(a), Some(_)) => {
            Some((a.processed - b.processed) / load_started.elapsed().as_secs_f64())
        }
        _ => None,
    };
    let result = Drain {
        after: name.to_string(),
        seconds,
        backlog: at_stop.map(|c| c.accepted - c.processed),
        worker_rate,
    };
    println!("{}", result.describe());
    result
}

/// One sampled conversation: its acknowledgement, then the delay until its memory was findable.
struct Sample {
    ack_latency: Duration,
    ack: Result<(), String>,
    /// Delay after the acknowledgement and polls it took; `None` when it was not acknowledged.
    findable: Option<Result<(Duration, u32), String>>,
}

async fn visibility_sample(api: Api, payloads: Arc<Payloads>) -> Sample {
    let (id, body) = payloads.next();
    let start = Instant::now();
    let outcome = api.post_conversation(body).await;
    let ack_latency = start.elapsed();
    if outcome.is_err() {
        return Sample {
            ack_latency,
            ack: outcome,
            findable: None,
        };
    }
    let acked = Instant::now();
    let mut polls = 0;
    let delay = loop {
        polls += 1;
        match api.memory_visible(&id).await {
            Ok(true) => break Ok((acked.elapsed(), polls)),
            Ok(false) => {}
            Err(e) => break Err(format!("polling the memory of {id}: {e}")),
        }
        if acked.elapsed() > VISIBILITY_TIMEOUT {
            break Err(format!(
                "the memory of {id} was not findable {VISIBILITY_TIMEOUT:?} after the acknowledgement"
            ));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    };
    Sample {
        ack_latency,
        ack: outcome,
        findable: Some(delay),
    }
}

/// Samples the acknowledgement-to-memory delay while a background open loop runs at `rate`. One
/// sample at a time, so the bench's own polling stays a light read load even when delays are long.
async fn visibility(api: &Api, payloads: &Arc<Payloads>, rate: f64) -> Vec<(Row, Tally)> {
    let stop = Arc::new(AtomicBool::new(false));
    let background = tokio::spawn(open_loop(
        api.clone(),
        payloads.clone(),
        rate,
        VISIBILITY_PHASE_LIMIT + VISIBILITY_TIMEOUT,
        Some(stop.clone()),
    ));
    // Let the background load settle first.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let started = Instant::now();
    let mut acks = Tally::new();
    let mut delays = Tally::new();
    let mut polls = 0;
    for i in 0..VISIBILITY_SAMPLES {
        if started.elapsed() > VISIBILITY_PHASE_LIMIT {
            let missing = VISIBILITY_SAMPLES - i;
            println!(
                "!!!!! sampling stopped after {VISIBILITY_PHASE_LIMIT:?}: {missing} samples not taken !!!!!"
            );
            delays.record_error(format!(
                "{missing} samples not taken within {VISIBILITY_PHASE_LIMIT:?}"
            ));
            break;
        }
        tokio::time::sleep_until((started + SAMPLE_INTERVAL * i as u32).into()).await;
        let sample = visibility_sample(api.clone(), payloads.clone()).await;
        acks.record_latency(sample.ack_latency, &sample.ack);
        match sample.findable {
            Some(Ok((delay, n))) => {
                delays.record_latency(delay, &Ok::<(), String>(()));
                polls += n;
            }
            Some(Err(e)) => delays.record_error(e),
            None => delays.record_error("not acknowledged".to_string()),
        }
    }
    let sampled = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (bg_tally, bg_elapsed) = background.await.expect("background load panicked");
    let mut results = vec![TABLE.finish(&format!("background {rate:.0}/s"), bg_tally, bg_elapsed)];
    let (mut row, acks) = TABLE.finish("sampled acks", acks, sampled);
    row.note = Some(format!("{VISIBILITY_SAMPLES} samples"));
    results.push((row, acks));
    let mut row = Row::new("ack -> memory findable", &delays, sampled);
    row.rps = None;
    row.note = Some(format!(
        "{} samples, {:.1} polls each",
        delays.ok,
        f64::from(polls) / delays.ok.max(1) as f64
    ));
    TABLE.report(&row, &delays);
    results.push((row, delays));
    results
}

// ---------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------
struct Results {
    rows: Vec<(Row, Tally)>,
    ack_rps: Option<f64>,
    open_loop_p99_ms: Option<f64>,
    visible_p50_ms: Option<f64>,
    visible_p99_ms: Option<f64>,
    drains: Vec<Drain>,
    moderate_rate: f64,
    body_bytes: usize,
    segments: (usize, usize),
    /// Whether the server loaded an embedding model; `None` if it could not be told.
    embedding: Option<bool>,
    rss_kb: Option<u64>,
    peak_rss_kb: Option<u64>,
    /// Failures outside the request tallies: drains that never finished, dead events, a dead server.
    problems: Vec<String>,
}

impl Results {
    fn errors(&self) -> u64 {
        self.rows.iter().map(|(row, _)| row.errors).sum::<u64>() + self.problems.len() as u64
    }

    fn targets(&self) -> Vec<Target> {
        vec![
            Target::new(
                "acknowledgements, 32 clients",
                format!(">= {TARGET_ACK_RPS:.0} conversations/s"),
                self.ack_rps,
                |v| v >= TARGET_ACK_RPS,
            ),
            Target::new(
                "acknowledgement p99 at 1,000/s",
                format!("< {TARGET_OPEN_LOOP_P99_MS} ms"),
                self.open_loop_p99_ms,
                |v| v < TARGET_OPEN_LOOP_P99_MS,
            ),
        ]
    }
}

fn print_summary(results: &Results) {
    println!();
    println!("==================== summary ====================");
    println!(
        "payload: {} bytes per conversation ({} of {} transcript segments), unique id each",
        results.body_bytes, results.segments.0, results.segments.1
    );
    println!("embedding: {}", describe_embedding(results.embedding));
    TABLE.print(&results.rows);
    println!();
    for drain in &results.drains {
        println!("{}", drain.describe());
    }
    println!(
        "ack -> memory findable under {:.0}/s background load: p50 {} ms, p99 {} ms",
        results.moderate_rate,
        results
            .visible_p50_ms
            .map_or("n/a".to_string(), |v| format!("{v:.2}")),
        results
            .visible_p99_ms
            .map_or("n/a".to_string(), |v| format!("{v:.2}")),
    );
    println!(
        "server memory at the end: RSS {}, peak RSS (VmHWM) {}",
        megabytes(results.rss_kb),
        megabytes(results.peak_rss_kb)
    );
    support::print_targets(&results.targets());
    for problem in &results.problems {
        println!("!!!!! {problem} !!!!!");
    }
    let errors = results.errors();
    if errors > 0 {
        println!();
        println!("!!!!! {errors} FAILURES DURING THE BENCHMARK - RESULTS ARE NOT VALID !!!!!");
    }
}

fn results_json(results: &Results, config: &Config) -> Value {
    let targets: Vec<Value> = results.targets().iter().map(Target::to_json).collect();
    json!({
        "generated_at": chrono::Utc::now().to_rfc3339(),
        "config": {
            "seconds": config.seconds,
            "clients": CLIENTS,
            "open_loop_rate": OPEN_LOOP_RATE,
            "moderate_rate": results.moderate_rate,
            "visibility_samples": VISIBILITY_SAMPLES,
            "poll_interval_ms": POLL_INTERVAL.as_secs_f64() * 1000.0,
            "body_bytes": results.body_bytes,
            "transcript_segments": results.segments.0,
            "embedding": config.embedding,
        },
        "embedding_model_loaded": results.embedding,
        "scenarios": results.rows.iter().map(|(row, _)| row.to_json()).collect::<Vec<_>>(),
        "drains": results.drains.iter().map(Drain::to_json).collect::<Vec<_>>(),
        "ack_to_memory_ms": {
            "p50": results.visible_p50_ms,
            "p99": results.visible_p99_ms,
        },
        "server_memory": {
            "rss_kb": results.rss_kb,
            "peak_rss_kb": results.peak_rss_kb,
        },
        "targets": targets,
        "problems": results.problems,
        "errors": results.errors(),
    })
}

fn write_outputs(results: &Results, config: &Config) {
    support::write_results(
        "webhook_load",
        &results_json(results, config),
        &svg_chart(results),
    );
}

/// Grouped bar chart: p50 and p99 per scenario, throughput underneath.
fn svg_chart(results: &Results) -> String {
    let rows: Vec<ChartRow> = results
        .rows
        .iter()
        .map(|(row, _)| {
            let throughput = row.rps.map_or("delay after the 200".to_string(), |r| {
                format!("{r:.0} ack/s")
            });
            ChartRow::from_row(row, throughput)
        })
        .collect();
    support::svg_chart(
        "angel-memory Omi conversation webhook: acknowledgement latency (ms, lower is better)",
        &rows,
        &footer(results),
    )
}

fn footer(results: &Results) -> Vec<String> {
    let drains: Vec<String> = results
        .drains
        .iter()
        .map(|d| {
            let seconds = d
                .seconds
                .map_or("FAILED".to_string(), |s| format!("{s:.2} s"));
            format!("{}: {seconds}", d.after)
        })
        .collect();
    vec![
        format!(
            "inbox drain time - {}; embedding {}",
            drains.join(", "),
            match results.embedding {
                Some(true) => "on (model loaded)",
                Some(false) => "off (no model)",
                None => "unknown",
            }
        ),
        format!(
            "{} B bodies; server RSS {} (peak {}); generated {}",
            results.body_bytes,
            megabytes(results.rss_kb),
            megabytes(results.peak_rss_kb),
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
        ),
    ]
}

fn describe_embedding(loaded: Option<bool>) -> &'static str {
    match loaded {
        Some(true) => "model loaded: every summary memory is also embedded in the background",
        Some(false) => "no model: full-text search only, nothing embedded",
        None => "unknown",
    }
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

async fn run(config: &Config) -> Results {
    let payloads = Arc::new(Payloads::load());
    let body_bytes = payloads.body_bytes();
    println!(
        "payload: {body_bytes} bytes per conversation ({} of {} transcript segments of {FIXTURE}), unique id each",
        payloads.segments, payloads.segments_in_fixture
    );
    let (mut server, webhook_token) = spawn_server(config.embedding);
    let client = build_client(CLIENTS);
    server.wait_ready(&client).await;
    let api = Api::new(client, &server, &webhook_token);
    let mut problems = Vec::new();

    // Warm-up: creates the user (with its first webhooks, concurrently) and the connections.
    let (warmup, _) = closed_loop(&api, &payloads, CLIENTS, WARMUP).await;
    if warmup.errors > 0 {
        println!(
            "!!!!! {} warm-up requests failed, e.g. {:?} !!!!!",
            warmup.errors, warmup.error_samples
        );
        problems.push(format!("{} warm-up requests failed", warmup.errors));
    }
    let api = api.with_user_key().await;
    if let Err(e) = drain(&api, Instant::now()).await {
        problems.push(format!("warm-up drain: {e}"));
    }
    println!("warm-up: {} conversations in {WARMUP:?}", warmup.ok);
    let embedding = api
        .semantic_available()
        .await
        .map_err(|e| problems.push(format!("asking the search endpoint: {e}")))
        .ok();
    println!(
        "embedding: {} (BENCH_EMBEDDING={})",
        describe_embedding(embedding),
        if config.embedding { "on" } else { "off" }
    );

    println!();
    println!(
        "closed loop, {CLIENTS} clients, {} s, a new conversation per request",
        config.seconds
    );
    println!("{}", TABLE.header());
    let before = api.inbox_counters().await;
    let started = Instant::now();
    let (tally, elapsed) = closed_loop(&api, &payloads, CLIENTS, config.duration()).await;
    let mut rows = vec![TABLE.finish(&format!("ack closed-loop ({CLIENTS} cl)"), tally, elapsed)];
    let ack_rps = rows[0].0.rps;
    let mut drains = vec![measure_drain(&api, "closed loop", started, before, &mut problems).await];

    println!();
    println!(
        "open loop, new conversations at {OPEN_LOOP_RATE}/s for {} s (latency from the intended send time)",
        config.seconds
    );
    println!("{}", TABLE.header());
    let before = api.inbox_counters().await;
    let started = Instant::now();
    let (tally, elapsed) = open_loop(
        api.clone(),
        payloads.clone(),
        OPEN_LOOP_RATE as f64,
        config.duration(),
        None,
    )
    .await;
    let (row, tally) = TABLE.finish(&format!("ack open-loop {OPEN_LOOP_RATE}/s"), tally, elapsed);
    println!(
        "achieved rate {:.0}/s (target {OPEN_LOOP_RATE}/s)",
        row.rps.unwrap_or(0.0)
    );
    let open_loop_p99_ms = Some(row.p99_ms);
    rows.push((row, tally));
    drains.push(measure_drain(&api, "open loop", started, before, &mut problems).await);

    let worker_rate = drains[0].worker_rate.unwrap_or(f64::MAX);
    // BENCH_MODERATE_RATE fixes the rate, to compare runs whose worker rates differ.
    let moderate_rate = match env_number("BENCH_MODERATE_RATE", 0) {
        0 => (ack_rps.unwrap_or(0.0) / 4.0)
            .min(worker_rate / 2.0)
            .clamp(MODERATE_RATE_MIN, MODERATE_RATE_MAX),
        fixed => fixed as f64,
    };
    println!();
    println!(
        "acknowledgement -> findable summary memory: {VISIBILITY_SAMPLES} samples, one at a time, at most one every {SAMPLE_INTERVAL:?}, \
         polled every {POLL_INTERVAL:?}, under a {moderate_rate:.0}/s background load"
    );
    println!("{}", TABLE.header());
    let before = api.inbox_counters().await;
    let started = Instant::now();
    let visible = visibility(&api, &payloads, moderate_rate).await;
    let (visible_p50_ms, visible_p99_ms) = visible
        .last()
        .filter(|(row, _)| row.ok > 0)
        .map_or((None, None), |(row, _)| {
            (Some(row.p50_ms), Some(row.p99_ms))
        });
    rows.extend(visible);
    drains.push(measure_drain(&api, "visibility", started, before, &mut problems).await);

    match api.dead_events().await {
        Ok(0) => {}
        Ok(n) => {
            println!("!!!!! {n} events are dead-lettered !!!!!");
            problems.push(format!("{n} dead-lettered events"));
        }
        Err(e) => problems.push(format!("reading dead events: {e}")),
    }
    let pid = server.pid();
    let rss_kb = proc_status_kb(pid, "VmRSS");
    let peak_rss_kb = proc_status_kb(pid, "VmHWM");
    if let Some(status) = server.exit_status() {
        println!("!!!!! the server exited during the benchmark: {status} !!!!!");
        problems.push(format!("the server exited: {status}"));
    }
    Results {
        rows,
        ack_rps,
        open_loop_p99_ms,
        visible_p50_ms,
        visible_p99_ms,
        drains,
        moderate_rate,
        body_bytes,
        segments: (payloads.segments, payloads.segments_in_fixture),
        embedding,
        rss_kb,
        peak_rss_kb,
        problems,
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
