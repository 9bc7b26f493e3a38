//! `/metrics` (when `USHER_METRICS` is true): HTTP request counts and durations recorded by a
//! middleware, and figures read from the domain at scrape time, in the Prometheus text format.
//!
//! Served without login, so nothing here may name anyone: requests are labelled with the
//! route's template (`/api/v1/users/{username}`), never the path they asked for.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use usher_core::service::Stats;

use super::AppState;

/// Upper bounds of the duration histogram's buckets, in seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The route label of a request that matched no route (answered by a fallback).
const UNMATCHED: &str = "unmatched";

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Page size assumed to turn `/proc/self/statm` pages into bytes.
const PAGE_BYTES: u64 = 4096;

/// One histogram: the count of observations at or under each bucket's bound (cumulative, as
/// exposed), their sum and their count.
#[derive(Debug, Clone, Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, n) in BUCKETS.iter().zip(self.buckets.iter_mut()) {
            if seconds <= *bound {
                *n += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }
}

#[derive(Debug, Default)]
struct Recorded {
    /// `(method, route, status)` → requests answered.
    requests: BTreeMap<(&'static str, String, u16), u64>,
    /// `(method, route)` → durations.
    durations: BTreeMap<(&'static str, String), Histogram>,
}

/// What the middleware records, shared by every request of one router.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    recorded: Mutex<Recorded>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            recorded: Mutex::default(),
        }
    }
}

impl Metrics {
    fn lock(&self) -> MutexGuard<'_, Recorded> {
        self.recorded.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, method: &'static str, route: &str, status: u16, seconds: f64) {
        let mut recorded = self.lock();
        *recorded
            .requests
            .entry((method, route.to_owned(), status))
            .or_default() += 1;
        recorded
            .durations
            .entry((method, route.to_owned()))
            .or_default()
            .observe(seconds);
    }

    /// The HTTP figures recorded so far, in the text format.
    fn render_http(&self, out: &mut Exposition) {
        let recorded = self.lock();
        out.family(
            "usher_http_requests_total",
            "counter",
            "HTTP requests answered, by method, route template and status.",
        );
        for ((method, route, status), n) in &recorded.requests {
            let status = status.to_string();
            out.sample(
                "usher_http_requests_total",
                &[("method", method), ("route", route), ("status", &status)],
                &n.to_string(),
            );
        }
        out.family(
            "usher_http_request_duration_seconds",
            "histogram",
            "Time to answer an HTTP request (until the response head), by method and route template.",
        );
        for ((method, route), h) in &recorded.durations {
            for (bound, n) in BUCKETS.iter().zip(h.buckets) {
                out.sample(
                    "usher_http_request_duration_seconds_bucket",
                    &[
                        ("method", method),
                        ("route", route),
                        ("le", &bound.to_string()),
                    ],
                    &n.to_string(),
                );
            }
            let labels = [("method", *method), ("route", route.as_str())];
            out.sample(
                "usher_http_request_duration_seconds_bucket",
                &[labels[0], labels[1], ("le", "+Inf")],
                &h.count.to_string(),
            );
            out.sample(
                "usher_http_request_duration_seconds_sum",
                &labels,
                &h.sum.to_string(),
            );
            out.sample(
                "usher_http_request_duration_seconds_count",
                &labels,
                &h.count.to_string(),
            );
        }
    }
}

/// The method as a label: the standard ones by name, any other as `other`, so that a client
/// inventing methods cannot grow the label set.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Adds `GET /metrics` to `routes`, and the middleware that records every request, the
/// fallback's included: call it once every route and the fallback are in place.
pub fn instrument(routes: Router<AppState>) -> Router<AppState> {
    let recorded = Arc::new(Metrics::default());
    let scraped = recorded.clone();
    routes
        .route(
            "/metrics",
            get(move |State(state): State<AppState>| serve(state, scraped)),
        )
        // Applied to each route, after routing: the route's template is known by then.
        .layer(axum::middleware::from_fn_with_state(recorded, track))
}

/// The middleware: times each request and counts it under its route's template.
async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.record(
        method,
        route.as_deref().unwrap_or(UNMATCHED),
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// `GET /metrics`.
async fn serve(state: AppState, metrics: Arc<Metrics>) -> Response {
    let stats = match state.usher.stats().await {
        Ok(stats) => Some(stats),
        Err(e) => {
            tracing::warn!("metrics: the store did not answer: {e}");
            None
        }
    };
    let body = render(&metrics, stats.as_ref(), resident_memory_bytes());
    let mut response = (StatusCode::OK, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// The whole exposition: build information, process figures, the domain's counts (when the
/// store answered) and the HTTP figures.
fn render(metrics: &Metrics, stats: Option<&Stats>, resident: Option<u64>) -> String {
    let mut out = Exposition::default();
    out.family(
        "usher_build_info",
        "gauge",
        "Always 1; the version of the running Usher is its label.",
    );
    out.sample(
        "usher_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        "1",
    );
    out.family(
        "usher_uptime_seconds",
        "gauge",
        "Seconds since this server started serving.",
    );
    out.sample(
        "usher_uptime_seconds",
        &[],
        &metrics.started.elapsed().as_secs_f64().to_string(),
    );
    if let Some(bytes) = resident {
        out.family(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
        );
        out.sample("process_resident_memory_bytes", &[], &bytes.to_string());
    }
    out.family(
        "usher_store_up",
        "gauge",
        "1 when the store answered this scrape's counts, else 0 (and they are left out).",
    );
    out.sample(
        "usher_store_up",
        &[],
        if stats.is_some() { "1" } else { "0" },
    );
    if let Some(stats) = stats {
        out.family("usher_people", "gauge", "People stored.");
        out.sample("usher_people", &[], &stats.people.to_string());
        if let Some(n) = stats.search_index_people {
            out.family(
                "usher_search_index_people",
                "gauge",
                "People held by this node's in-memory search index.",
            );
            out.sample("usher_search_index_people", &[], &n.to_string());
        }
        out.family(
            "usher_import_jobs",
            "gauge",
            "CSV import jobs stored, by state.",
        );
        for (state, n) in &stats.import_jobs {
            out.sample("usher_import_jobs", &[("state", state)], &n.to_string());
        }
        out.family(
            "usher_outbox_messages",
            "gauge",
            "Emails in the outbox, by delivery state.",
        );
        for (state, n) in &stats.outbox_messages {
            out.sample("usher_outbox_messages", &[("state", state)], &n.to_string());
        }
    }
    metrics.render_http(&mut out);
    out.text
}

/// This process's resident memory, from `/proc/self/statm` (Linux only).
fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * PAGE_BYTES)
}

/// Prometheus text being written.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    /// The `# HELP` and `# TYPE` lines that open a metric family.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: &str) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{label}=\"{}\"", escape_label_value(v));
            }
            self.text.push('}');
        }
        self.text.push(' ');
        self.text.push_str(value);
        self.text.push('\n');
    }
}

/// A label value as the text format quotes it: `\`, `"` and line feeds escaped.
fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Help text as the text format wants it: `\` and line feeds escaped.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label_value("a\\b \"c\"\nd"), "a\\\\b \\\"c\\\"\\nd");
        let mut out = Exposition::default();
        out.family("m", "counter", "Line one\nback\\slash");
        out.sample("m", &[("route", "/x/\"{y}\"\\\n"), ("status", "200")], "3");
        out.sample("m", &[], "4");
        assert_eq!(
            out.text,
            "# HELP m Line one\\nback\\\\slash\n\
             # TYPE m counter\n\
             m{route=\"/x/\\\"{y}\\\"\\\\\\n\",status=\"200\"} 3\n\
             m 4\n"
        );
    }

    #[test]
    fn requests_render_as_counters_and_cumulative_histograms() {
        let metrics = Metrics::default();
        metrics.record("GET", "/api/v1/users/{username}", 200, 0.003_906_25);
        metrics.record("GET", "/api/v1/users/{username}", 200, 0.25);
        metrics.record("GET", "/api/v1/users/{username}", 404, 20.0);
        metrics.record("POST", UNMATCHED, 404, 0.05);
        let stats = Stats {
            people: 7,
            search_index_people: Some(6),
            import_jobs: vec![("queued", 1), ("done", 2)],
            outbox_messages: vec![("sent", 3)],
        };
        let text = render(&metrics, Some(&stats), Some(4096));
        let has = |line: &str| text.lines().any(|l| l == line);
        for line in [
            "usher_http_requests_total{method=\"GET\",route=\"/api/v1/users/{username}\",status=\"200\"} 2",
            "usher_http_requests_total{method=\"GET\",route=\"/api/v1/users/{username}\",status=\"404\"} 1",
            "usher_http_requests_total{method=\"POST\",route=\"unmatched\",status=\"404\"} 1",
            "usher_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/users/{username}\",le=\"0.005\"} 1",
            "usher_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/users/{username}\",le=\"0.25\"} 2",
            "usher_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/users/{username}\",le=\"10\"} 2",
            "usher_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/users/{username}\",le=\"+Inf\"} 3",
            "usher_http_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/users/{username}\"} 3",
            "usher_http_request_duration_seconds_sum{method=\"GET\",route=\"/api/v1/users/{username}\"} 20.25390625",
            "# TYPE usher_http_request_duration_seconds histogram",
            "# TYPE usher_http_requests_total counter",
            "usher_people 7",
            "usher_search_index_people 6",
            "usher_import_jobs{state=\"done\"} 2",
            "usher_outbox_messages{state=\"sent\"} 3",
            "usher_store_up 1",
            "process_resident_memory_bytes 4096",
            &format!("usher_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION")),
        ] {
            assert!(has(line), "missing {line:?} in:\n{text}");
        }
        // Every sample belongs to a family announced by # HELP and # TYPE before it.
        let mut announced = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                announced.push(rest.split(' ').next().unwrap().to_owned());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(
                    announced.iter().any(|f| name == f
                        || name
                            .strip_prefix(f.as_str())
                            .is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s))),
                    "{name} has no # TYPE before it"
                );
            }
        }
        let without_store = render(&metrics, None, None);
        assert!(without_store.contains("usher_store_up 0\n"));
        assert!(!without_store.contains("usher_people"));
    }
}
