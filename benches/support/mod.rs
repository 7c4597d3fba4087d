//! Shared pieces of the load benchmarks (`http_load`, `webhook_load`): configuration from the
//! environment, the server child process, the HTTP helpers, latency tallies, the result table, the
//! targets, the SVG bar chart and the files under `bench-results/`.
//!
//! Each bench includes this with `mod support;`. A folder below `benches/` is not a bench target of
//! its own; every bench compiles its own copy and uses only part of it, hence the `dead_code` allow.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};

pub const RESULTS_DIR: &str = "bench-results";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// A whole number from the environment, or `default` when the variable is unset.
pub fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(raw) => raw
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, got {raw:?}")),
        Err(_) => default,
    }
}

/// Runs `work` unless Ctrl-C comes first (then `None`). Dropping `work` drops any [`Server`] it
/// holds, which kills the child.
pub async fn unless_interrupted<T>(work: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        output = work => Some(output),
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted");
            None
        }
    }
}

// ---------------------------------------------------------------------------
// Server process
// ---------------------------------------------------------------------------

/// The `angel-memory serve` child process on a loopback port with a fresh temporary data dir.
/// Killed when dropped, including during a panic.
pub struct Server {
    child: Child,
    pub base_url: String,
    pub admin_token: String,
    _data_dir: tempfile::TempDir,
    /// Dropped after the child is killed (fields drop after `Drop::drop`).
    _database: Option<BenchDatabase>,
}

/// `BENCH_DATABASE_URL=postgres://…/db` runs a benchmark on PostgreSQL: on a fresh database created
/// on that server for the run (dropped afterwards). Unset: SQLite in the temporary data dir.
pub struct BenchDatabase {
    pub url: String,
    server: String,
    name: String,
}

/// Runs `work` on a runtime of its own: these helpers are called from the benches' async main,
/// whose runtime cannot block on a future.
fn on_own_runtime<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(work)
    })
    .join()
    .expect("the database helper thread")
}

impl BenchDatabase {
    pub fn from_env() -> Option<Self> {
        use sqlx::Connection;
        let server = std::env::var("BENCH_DATABASE_URL").ok()?;
        let name = format!("angel_bench_{}", uuid::Uuid::new_v4().simple());
        let (admin_url, statement) = (server.clone(), format!("CREATE DATABASE {name}"));
        on_own_runtime(async move {
            let mut admin = sqlx::PgConnection::connect(&admin_url)
                .await
                .expect("connect to BENCH_DATABASE_URL");
            sqlx::query(&statement)
                .execute(&mut admin)
                .await
                .expect("create the benchmark database");
        });
        let base = server
            .rsplit_once('/')
            .map(|(base, _)| base)
            .expect("BENCH_DATABASE_URL needs a database path");
        let url = format!("{base}/{name}");
        println!("database: PostgreSQL, fresh database {name}");
        Some(Self { url, server, name })
    }
}

impl Drop for BenchDatabase {
    fn drop(&mut self) {
        use sqlx::Connection;
        let (server, statement) = (
            self.server.clone(),
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
        on_own_runtime(async move {
            if let Ok(mut admin) = sqlx::PgConnection::connect(&server).await {
                let _ = sqlx::query(&statement).execute(&mut admin).await;
            }
        });
    }
}

impl Server {
    pub fn spawn() -> Self {
        Self::spawn_with(|_, _| {})
    }

    /// Like [`Server::spawn`]; `configure` may add to the command (environment) and is given the
    /// data dir.
    pub fn spawn_with(configure: impl FnOnce(&mut Command, &Path)) -> Self {
        let data_dir = tempfile::tempdir().expect("create temporary data dir");
        let port = free_port();
        let admin_token = uuid::Uuid::new_v4().simple().to_string();
        let database = BenchDatabase::from_env();
        let mut command = Command::new(env!("CARGO_BIN_EXE_angel-memory"));
        command
            .arg("serve")
            .env("ANGEL_MEMORY_LISTEN", format!("127.0.0.1:{port}"))
            .env("ANGEL_MEMORY_DATA_DIR", data_dir.path())
            .env("ANGEL_MEMORY_ADMIN_TOKEN", &admin_token)
            .env("ANGEL_MEMORY_RATE_LIMIT__ENABLED", "false")
            .env("RUST_LOG", "warn");
        if let Some(database) = &database {
            command.env("ANGEL_MEMORY_DATABASE_URL", &database.url);
        }
        configure(&mut command, data_dir.path());
        let child = command.spawn().expect("spawn angel-memory serve");
        println!(
            "server: pid {} on 127.0.0.1:{port}, data dir {}",
            child.id(),
            data_dir.path().display()
        );
        Self {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            admin_token,
            _data_dir: data_dir,
            _database: database,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("query server process status")
    }

    pub async fn wait_ready(&mut self, client: &reqwest::Client) {
        let url = format!("{}/readyz", self.base_url);
        let started = Instant::now();
        loop {
            if let Some(status) = self.exit_status() {
                panic!("server exited before becoming ready: {status}");
            }
            if let Ok(resp) = client.get(&url).send().await
                && resp.status() == StatusCode::OK
            {
                println!("server: ready after {:.2?}", started.elapsed());
                return;
            }
            assert!(
                started.elapsed() < READY_TIMEOUT,
                "server did not answer 200 on /readyz within {READY_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Ignore errors: the process may already have exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
    listener.local_addr().expect("read local address").port()
}

/// Reads a `kB` field such as `VmRSS` from `/proc/<pid>/status`.
pub fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

pub fn megabytes(kb: Option<u64>) -> String {
    kb.map_or("n/a".to_string(), |kb| {
        format!("{:.1} MB", kb as f64 / 1024.0)
    })
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/// Sends a request and reads the whole body; any other status is an error.
pub async fn send(req: RequestBuilder, expected: StatusCode) -> Result<Vec<u8>, String> {
    let resp = req
        .send()
        .await
        .map_err(|e| format!("transport error: {e}"))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| format!("reading body ({status}): {e}"))?;
    if status != expected {
        let text = String::from_utf8_lossy(&body);
        let text: String = text.chars().take(300).collect();
        return Err(format!("expected {expected}, got {status}: {text}"));
    }
    Ok(body.to_vec())
}

pub async fn send_json(req: RequestBuilder, expected: StatusCode) -> Result<Value, String> {
    let body = send(req, expected).await?;
    serde_json::from_slice(&body).map_err(|e| format!("invalid JSON response: {e}"))
}

/// One connection pool for up to `clients` concurrent workers.
pub fn build_client(clients: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(clients * 4)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build HTTP client")
}

// ---------------------------------------------------------------------------
// Measurement
// ---------------------------------------------------------------------------

/// Latencies (µs) and outcome counts gathered by one or more workers.
pub struct Tally {
    pub hist: Histogram<u64>,
    pub ok: u64,
    pub errors: u64,
    pub error_samples: Vec<String>,
}

impl Tally {
    const MAX_SAMPLES: usize = 5;

    pub fn new() -> Self {
        Self {
            hist: Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds"),
            ok: 0,
            errors: 0,
            error_samples: Vec::new(),
        }
    }

    /// Records one request that was meant to start at `since`.
    pub fn record<T>(&mut self, since: Instant, outcome: &Result<T, String>) {
        self.record_latency(since.elapsed(), outcome);
    }

    pub fn record_latency<T>(&mut self, latency: Duration, outcome: &Result<T, String>) {
        let micros = latency.as_micros().try_into().unwrap_or(u64::MAX);
        self.hist.saturating_record(micros);
        match outcome {
            Ok(_) => self.ok += 1,
            Err(e) => self.record_error(e.clone()),
        }
    }

    /// An error with no latency to record (the thing measured never completed).
    pub fn record_error(&mut self, error: String) {
        self.errors += 1;
        if self.error_samples.len() < Self::MAX_SAMPLES {
            self.error_samples.push(error);
        }
    }

    pub fn merge(&mut self, other: Tally) {
        self.hist.add(&other.hist).expect("merge histograms");
        self.ok += other.ok;
        self.errors += other.errors;
        let room = Self::MAX_SAMPLES.saturating_sub(self.error_samples.len());
        self.error_samples
            .extend(other.error_samples.into_iter().take(room));
    }
}

/// One line of the summary.
pub struct Row {
    pub name: String,
    pub ok: u64,
    pub errors: u64,
    pub elapsed_s: f64,
    /// Successes per second; `None` where a rate means nothing (e.g. a delay sampled one at a time).
    pub rps: Option<f64>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Extra context shown under the throughput (e.g. memories/s for batches).
    pub note: Option<String>,
}

impl Row {
    pub fn new(name: &str, tally: &Tally, elapsed: Duration) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        let elapsed_s = elapsed.as_secs_f64();
        let recorded = !tally.hist.is_empty();
        Self {
            name: name.to_string(),
            ok: tally.ok,
            errors: tally.errors,
            elapsed_s,
            rps: Some(tally.ok as f64 / elapsed_s),
            p50_ms: if recorded {
                ms(tally.hist.value_at_quantile(0.50))
            } else {
                0.0
            },
            p99_ms: if recorded {
                ms(tally.hist.value_at_quantile(0.99))
            } else {
                0.0
            },
            max_ms: ms(tally.hist.max()),
            note: None,
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "scenario": self.name,
            "ok": self.ok,
            "errors": self.errors,
            "elapsed_s": self.elapsed_s,
            "req_per_s": self.rps,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "note": self.note,
        })
    }
}

/// The printed result table: how wide the scenario column is and what the rate column is called.
pub struct Table {
    pub name_width: usize,
    /// Heading of the rate column, e.g. `req/s`.
    pub rate: &'static str,
}

impl Table {
    pub fn header(&self) -> String {
        format!(
            "{:<width$} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "scenario",
            self.rate,
            "p50 ms",
            "p99 ms",
            "max ms",
            "errors",
            width = self.name_width
        )
    }

    pub fn line(&self, row: &Row) -> String {
        let rps = row.rps.map_or("-".to_string(), |r| format!("{r:.0}"));
        format!(
            "{:<width$} {:>9} {:>8.2} {:>8.2} {:>8.2} {:>8}",
            row.name,
            rps,
            row.p50_ms,
            row.p99_ms,
            row.max_ms,
            row.errors,
            width = self.name_width
        )
    }

    /// The header, then a line per row.
    pub fn print(&self, rows: &[(Row, Tally)]) {
        println!("{}", self.header());
        for (row, _) in rows {
            println!("{}", self.line(row));
        }
    }

    /// Prints a finished scenario, shouting if any request failed.
    pub fn report(&self, row: &Row, tally: &Tally) {
        println!("{}", self.line(row));
        if tally.errors > 0 {
            println!(
                "!!!!! {} ERRORS in scenario '{}' ({} ok) - these numbers are NOT valid !!!!!",
                tally.errors, row.name, tally.ok
            );
            for sample in &tally.error_samples {
                println!("!!!!!   {sample}");
            }
        }
    }

    /// The row of a finished scenario, reported.
    pub fn finish(&self, name: &str, tally: Tally, elapsed: Duration) -> (Row, Tally) {
        let row = Row::new(name, &tally, elapsed);
        self.report(&row, &tally);
        (row, tally)
    }
}

// ---------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------

pub struct Target {
    pub name: &'static str,
    pub goal: String,
    pub actual: Option<f64>,
    pub met: bool,
}

impl Target {
    pub fn new(
        name: &'static str,
        goal: String,
        actual: Option<f64>,
        ok: impl Fn(f64) -> bool,
    ) -> Self {
        Self {
            name,
            goal,
            met: actual.is_some_and(ok),
            actual,
        }
    }

    pub fn to_json(&self) -> Value {
        json!({ "target": self.name, "goal": self.goal, "actual": self.actual, "met": self.met })
    }
}

/// A blank line, then each target with its verdict.
pub fn print_targets(targets: &[Target]) {
    println!();
    println!("targets:");
    for target in targets {
        let actual = target
            .actual
            .map_or("n/a".to_string(), |v| format!("{v:.2}"));
        let verdict = if target.met { "MET" } else { "NOT MET" };
        println!(
            "  {:<32} {:<28} actual {:>10}  {verdict}",
            target.name, target.goal, actual
        );
    }
}

/// Writes `bench-results/<stem>.json` (pretty, with a final newline) and `bench-results/<stem>.svg`.
pub fn write_results(stem: &str, results: &Value, svg: &str) {
    let dir = Path::new(RESULTS_DIR);
    std::fs::create_dir_all(dir).expect("create bench-results directory");
    let json = serde_json::to_string_pretty(results).expect("serialise results");
    for (file, contents) in [
        (format!("{stem}.json"), json + "\n"),
        (format!("{stem}.svg"), svg.to_string()),
    ] {
        std::fs::write(dir.join(&file), contents).unwrap_or_else(|e| panic!("write {file}: {e}"));
    }
    println!("wrote {RESULTS_DIR}/{stem}.json and {RESULTS_DIR}/{stem}.svg");
}

// ---------------------------------------------------------------------------
// SVG chart
// ---------------------------------------------------------------------------

const P50_COLOUR: &str = "#4e79a7";
const P99_COLOUR: &str = "#f28e2b";

/// One group of bars in the chart.
pub struct ChartRow {
    pub name: String,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Shown under the name, e.g. `1234 req/s`.
    pub throughput: String,
    /// Shown under the throughput.
    pub note: Option<String>,
    /// Shown in red under the note when not zero.
    pub errors: u64,
}

impl ChartRow {
    pub fn new(name: &str, p50_ms: f64, p99_ms: f64, throughput: String) -> Self {
        Self {
            name: name.to_string(),
            p50_ms,
            p99_ms,
            throughput,
            note: None,
            errors: 0,
        }
    }

    /// A result row with its note and error count.
    pub fn from_row(row: &Row, throughput: String) -> Self {
        Self {
            note: row.note.clone(),
            errors: row.errors,
            ..Self::new(&row.name, row.p50_ms, row.p99_ms, throughput)
        }
    }
}

/// Grouped bar chart: p50 and p99 latency per row, throughput underneath, `footer` lines at the
/// bottom.
pub fn svg_chart(title: &str, rows: &[ChartRow], footer: &[String]) -> String {
    let (left, top, plot_h, group_w, bar_w) = (70.0, 70.0, 320.0, 160.0, 44.0);
    let width = left + group_w * rows.len().max(1) as f64 + 20.0;
    let height = top + plot_h + 90.0 + 20.0 * footer.len() as f64;
    let y_max = nice_ceiling(rows.iter().map(|r| r.p99_ms).fold(0.0, f64::max));
    let y = |ms: f64| ((top + plot_h - ms / y_max * plot_h) * 10.0).round() / 10.0;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{left}" y="24" font-size="16" font-weight="bold">{}</text>"#,
        xml_escape(title)
    );
    legend(&mut svg, left, 46.0);

    // Y axis with gridlines.
    for i in 0..=5 {
        let value = y_max * i as f64 / 5.0;
        let gy = y(value);
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{gy}" x2="{}" y2="{gy}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
            width - 20.0,
            left - 6.0,
            gy + 4.0,
            format_ms(value)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text transform="translate(18 {}) rotate(-90)" text-anchor="middle">latency (ms)</text>"#,
        top + plot_h / 2.0
    );

    for (i, row) in rows.iter().enumerate() {
        let gx = left + group_w * i as f64;
        let centre = gx + group_w / 2.0;
        bar(
            &mut svg,
            centre - bar_w - 2.0,
            bar_w,
            y(row.p50_ms),
            y(0.0),
            row.p50_ms,
            P50_COLOUR,
        );
        bar(
            &mut svg,
            centre + 2.0,
            bar_w,
            y(row.p99_ms),
            y(0.0),
            row.p99_ms,
            P99_COLOUR,
        );
        let base = top + plot_h;
        let _ = writeln!(
            svg,
            r#"<text x="{centre}" y="{}" text-anchor="middle" font-weight="bold">{}</text>"#,
            base + 20.0,
            xml_escape(&row.name)
        );
        let _ = writeln!(
            svg,
            r#"<text x="{centre}" y="{}" text-anchor="middle">{}</text>"#,
            base + 38.0,
            xml_escape(&row.throughput)
        );
        if let Some(note) = &row.note {
            let _ = writeln!(
                svg,
                r#"<text x="{centre}" y="{}" text-anchor="middle">{}</text>"#,
                base + 56.0,
                xml_escape(note)
            );
        }
        if row.errors > 0 {
            let _ = writeln!(
                svg,
                r#"<text x="{centre}" y="{}" text-anchor="middle" fill="red">{} errors!</text>"#,
                base + 74.0,
                row.errors
            );
        }
    }
    let _ = writeln!(
        svg,
        r##"<line x1="{left}" y1="{0}" x2="{1}" y2="{0}" stroke="#333"/>"##,
        top + plot_h,
        width - 20.0
    );
    let last = footer.len() as f64 - 1.0;
    for (i, line) in footer.iter().enumerate() {
        let _ = writeln!(
            svg,
            r##"<text x="{left}" y="{}" fill="#555">{}</text>"##,
            height - 16.0 - 18.0 * (last - i as f64),
            xml_escape(line)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn legend(svg: &mut String, x: f64, y: f64) {
    for (i, (label, colour)) in [("p50", P50_COLOUR), ("p99", P99_COLOUR)]
        .iter()
        .enumerate()
    {
        let lx = x + 80.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<rect x="{lx}" y="{}" width="14" height="14" fill="{colour}"/><text x="{}" y="{y}">{label}</text>"#,
            y - 11.0,
            lx + 20.0
        );
    }
}

fn bar(svg: &mut String, x: f64, w: f64, y_top: f64, y_base: f64, value: f64, colour: &str) {
    let h = ((y_base - y_top) * 10.0).round().max(10.0) / 10.0;
    let _ = writeln!(
        svg,
        r#"<rect x="{x}" y="{}" width="{w}" height="{h}" fill="{colour}"/><text x="{}" y="{}" text-anchor="middle" font-size="11">{}</text>"#,
        y_base - h,
        x + w / 2.0,
        y_base - h - 4.0,
        format_ms(value)
    );
}

/// Rounds up to 1, 2 or 5 times a power of ten, for a tidy axis.
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|step| step * magnitude)
        .find(|&candidate| candidate >= value)
        .unwrap_or(10.0 * magnitude)
}

fn format_ms(value: f64) -> String {
    if value == 0.0 {
        "0".to_string()
    } else if value >= 10.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
