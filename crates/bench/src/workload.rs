//! The workload itself, per backend, in two phases on fresh stores:
//!
//! - phase A on an empty store: W0 (ready time, idle RSS), W1 and W1b (creations one request
//!   each, 1 then 8 clients), W2 (imports: new without and with passwords, update, unchanged);
//! - phase B on a store loaded with the first people of the generator: W4 (mass disable), W3
//!   (searches, checked exact), then W3m after a 1,000,000-row import, whose peak RSS is W5's.
//!
//! Each step is bounded by a count and a deadline; a failed request, job, wrong total or dead
//! server is an error. Figures are appended to the backend's rows as they are measured, so that
//! a failure keeps what came before it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use usher_core::people::ARGON2_PARAMETERS;

use crate::api::{Api, ImportCounts, ImportUnavailable};
use crate::backend::{Backend, Store};
use crate::people::{csv_file, csv_of, search_text_of, CsvShape, Generator, Person, SEED};
use crate::report::{thousands, Check, Row, Target, Value};
use crate::server::{CpuTime, Launch, Server};
use crate::stats::{self, Latencies};

/// The sizes of a run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub quick: bool,
    pub w1_people: usize,
    pub w2_sizes: Vec<usize>,
    /// The with-password files are cut to this many rows (hashing costs ~cores ÷ hash time).
    pub w2_password_cap: Option<usize>,
    pub w3_stored: usize,
    pub searches: usize,
    pub w3m_stored: Option<usize>,
    pub w4_people: usize,
    pub idle_wait: Duration,
    /// Which phases run (both unless `--phase` says otherwise).
    pub phase_a: bool,
    pub phase_b: bool,
}

impl Plan {
    pub fn full(skip_1m: bool) -> Self {
        Self {
            quick: false,
            w1_people: 2_000,
            w2_sizes: vec![10_000, 100_000],
            w2_password_cap: None,
            w3_stored: 100_000,
            searches: 200,
            w3m_stored: (!skip_1m).then_some(1_000_000),
            w4_people: 1_000,
            idle_wait: Duration::from_secs(10),
            phase_a: true,
            phase_b: true,
        }
    }

    pub fn quick() -> Self {
        Self {
            quick: true,
            w1_people: 200,
            w2_sizes: vec![1_000, 5_000],
            w2_password_cap: Some(100),
            w3_stored: 5_000,
            searches: 50,
            w3m_stored: None,
            w4_people: 1_000,
            idle_wait: Duration::from_secs(2),
            phase_a: true,
            phase_b: true,
        }
    }
}

/// The machine's hashing figures, measured just before the step they stand beside (other
/// work on the machine changes them; the server is idle then).
#[derive(Debug, Clone, Copy)]
pub struct Hashing {
    pub cores: usize,
    pub single: Duration,
    /// Hashes per second with every core hashing and nothing else running
    /// ([`stats::all_cores_hash_rate`]): what the machine gives below the limit.
    pub all_cores: f64,
}

impl Hashing {
    /// Times hashes (see [`stats::machine_hash_time`]), off the runtime.
    pub async fn measure() -> anyhow::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let single = tokio::task::spawn_blocking(stats::machine_hash_time).await?;
        let all_cores =
            tokio::task::spawn_blocking(move || stats::all_cores_hash_rate(cores, 20)).await?;
        Ok(Self {
            cores,
            single,
            all_cores,
        })
    }

    /// The table's row beside the step `id`.
    fn row(&self, id: &'static str, step: &str) -> Row {
        let ms = self.single.as_secs_f64() * 1000.0;
        Row {
            id,
            what: format!(
                "Argon2id parameters · single-hash time on this machine (measured just before \
                 {step}) · hashing limit = cores ÷ hash time"
            ),
            target: Target::none(),
            value: Value::Text(format!(
                "{ARGON2_PARAMETERS} · {ms:.1} ms (median of 11, best of 3 rounds) · {} ÷ \
                 {ms:.1} ms = **{:.1} hashes/s** · {} at once, nothing else running: {:.1} \
                 hashes/s ({:.0}% of the limit)",
                self.cores,
                self.limit(),
                self.cores,
                self.all_cores,
                100.0 * self.all_cores / self.limit()
            )),
        }
    }

    /// Hashes per second the machine can do at most: cores ÷ single-hash time.
    pub fn limit(&self) -> f64 {
        self.cores as f64 / self.single.as_secs_f64()
    }

    fn share(&self, per_second: f64) -> String {
        format!(
            "{:.0}% of the hashing limit",
            100.0 * per_second / self.limit()
        )
    }

    /// How busy the server kept the cores since `before`, and what each of `hashes` hashes
    /// cost on its thread: whether the distance to the limit is the server's or the machine's.
    fn cpu_detail(
        &self,
        server: &Server,
        before: CpuTime,
        elapsed: Duration,
        hashes: usize,
    ) -> String {
        server
            .cpu_time()
            .detail_since(before, elapsed, hashes, self.cores, self.single)
    }

    fn target(&self) -> Target {
        // The limit is measured per store, so the text names no figure.
        Target::new(
            "≥ 80% of the hashing limit",
            Check::AtLeastPerSecond(0.8 * self.limit()),
        )
    }
}

/// What every phase needs.
pub struct Setup {
    pub plan: Plan,
    pub binary: std::path::PathBuf,
    pub postgres_url: String,
}

const ADMIN_PASSWORD: &str = "usher-bench-Admin-42";

/// The ready-made target of the imports that hash nothing.
fn import_target(backend: Backend) -> Target {
    Target::new(
        "≥ 50,000 rows/s (SQLite), ≥ 20,000 (PostgreSQL)",
        Check::AtLeastPerSecond(match backend {
            Backend::Sqlite => 50_000.0,
            Backend::Postgres => 20_000.0,
        }),
    )
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The error, with the server's death and its log when that is the cause.
fn explain(server: &Server, e: anyhow::Error) -> anyhow::Error {
    match server.check_alive() {
        Ok(()) => e,
        Err(dead) => anyhow!("{e:#}\n{dead:#}"),
    }
}

/// Runs every phase on one backend, appending figures to `rows`.
pub async fn run_backend(
    setup: &Setup,
    backend: Backend,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let mut peaks = Peaks::new(backend);
    if setup.plan.phase_a {
        let store = Store::create(backend, "a", &setup.postgres_url).await?;
        let a = phase_a(setup, &store, rows, &mut peaks).await;
        if let Err(e) = store.remove().await {
            eprintln!("usher-bench: cleaning up after phase A: {e:#}");
        }
        a?;
    }
    if setup.plan.phase_b {
        let store = Store::create(backend, "b", &setup.postgres_url).await?;
        let b = phase_b(setup, &store, rows, &mut peaks).await;
        if let Err(e) = store.remove().await {
            eprintln!("usher-bench: cleaning up after phase B: {e:#}");
        }
        b?;
    }
    rows.push(Row {
        id: "W5",
        what: "peak RSS of the server over the whole run (sampled every 100 ms)".into(),
        target: Target::none(),
        value: Value::MiB {
            mib: mib(peaks.sampled),
            detail: format!(
                "during {}; kernel high-water mark {:.1} MiB",
                peaks.top_step,
                mib(peaks.hwm)
            ),
        },
    });
    Ok(())
}

/// The server's peak memory over the run, and the step it was reached in.
struct Peaks {
    backend: Backend,
    sampled: u64,
    hwm: u64,
    top_kib: u64,
    top_step: String,
}

impl Peaks {
    fn new(backend: Backend) -> Self {
        Self {
            backend,
            sampled: 0,
            hwm: 0,
            top_kib: 0,
            top_step: String::new(),
        }
    }

    /// Reports a step that began at `start` on the terminal, with the server's peak memory
    /// during it.
    fn step(&mut self, server: &Server, start: Instant, what: &str) {
        let kib = server.peak_since_kib(start);
        say(
            self.backend,
            &format!("{what} · peak RSS {:.1} MiB", mib(kib)),
        );
        if kib > self.top_kib {
            self.top_kib = kib;
            self.top_step = what.split(':').next().unwrap_or(what).to_owned();
        }
    }

    async fn stop(&mut self, server: Server) {
        let (sampled, hwm) = server.stop().await;
        self.sampled = self.sampled.max(sampled);
        self.hwm = self.hwm.max(hwm.unwrap_or(0));
    }
}

fn launch(setup: &Setup, store: &Store) -> Launch {
    Launch {
        binary: setup.binary.clone(),
        database_url: store.database_url.clone(),
        work_dir: store.work_dir.clone(),
        admin_password: ADMIN_PASSWORD.into(),
    }
}

/// Times one hash (the machine's hashing limit) before `id`, reports it and adds its row.
async fn measure_hashing(
    backend: Backend,
    rows: &mut Vec<Row>,
    id: &'static str,
) -> anyhow::Result<Hashing> {
    let hashing = Hashing::measure().await?;
    say(
        backend,
        &format!(
            "one Argon2id hash {:.1} ms: limit {:.1} hashes/s; {} at once: {:.1} hashes/s \
             ({:.0}% of the limit)",
            hashing.single.as_secs_f64() * 1000.0,
            hashing.limit(),
            hashing.cores,
            hashing.all_cores,
            100.0 * hashing.all_cores / hashing.limit()
        ),
    );
    rows.push(hashing.row(id, id));
    Ok(hashing)
}

fn say(backend: Backend, what: &str) {
    eprintln!("[{}] {what}", backend.name());
}

async fn phase_a(
    setup: &Setup,
    store: &Store,
    rows: &mut Vec<Row>,
    peaks: &mut Peaks,
) -> anyhow::Result<()> {
    let plan = &setup.plan;
    let backend = store.backend;
    let server = Server::spawn(&launch(setup, store))?;
    let ready = server.wait_ready(Duration::from_secs(60)).await?;
    say(
        backend,
        &format!("W0 ready in {:.3} s", ready.as_secs_f64()),
    );
    rows.push(Row {
        id: "W0",
        what: "seconds from spawn to `/readyz` 200, empty store".into(),
        target: Target::new("≤ 0.5 s", Check::AtMostSeconds(0.5)),
        value: Value::Seconds(ready.as_secs_f64()),
    });
    tokio::time::sleep(plan.idle_wait).await;
    server.check_alive()?;
    let idle = server
        .rss_kib()
        .ok_or_else(|| anyhow!("cannot read /proc/{}/status", server.pid))?;
    let wait = plan.idle_wait.as_secs();
    say(backend, &format!("W0 idle RSS {:.1} MiB", mib(idle)));
    rows.push(Row {
        id: "W0",
        what: format!(
            "idle RSS {wait} s after ready{}",
            if plan.quick {
                " (quick mode: 2 s, not 10)"
            } else {
                ""
            }
        ),
        target: Target::new("≤ 30 MiB", Check::AtMostMiB(30.0)),
        value: Value::MiB {
            mib: mib(idle),
            detail: String::new(),
        },
    });
    let token = server.admin_token().await?;
    let api = Api::new(&server.base_url, &token)?;
    let hashing = measure_hashing(backend, rows, "W1").await?;

    let mut generator = Generator::new();
    let n = plan.w1_people;
    for (id, with_password) in [("W1", true), ("W1b", false)] {
        for clients in [1usize, 8] {
            let people = generator.take(n);
            let per_request = if with_password {
                hashing.single * 4 + Duration::from_millis(20)
            } else {
                Duration::from_millis(50)
            };
            let limit = Duration::from_secs(120) + per_request * n as u32;
            let start = Instant::now();
            let cpu = server.cpu_time();
            let (elapsed, latencies) = create_all(&api, people, clients, with_password, limit)
                .await
                .map_err(|e| explain(&server, e))?;
            let per_second = n as f64 / elapsed.as_secs_f64();
            let (p50, p99) = latencies.p50_p99();
            let mut detail = format!("p50 {p50:.1} ms · p99 {p99:.1} ms");
            if with_password {
                detail = format!(
                    "{} · {detail} · {}",
                    hashing.share(per_second),
                    hashing.cpu_detail(&server, cpu, elapsed, n)
                );
            }
            peaks.step(
                &server,
                start,
                &format!("{id} {clients} client(s): {per_second:.1} people/s, {detail}"),
            );
            let target = match (id, clients) {
                ("W1", 8) => hashing.target(),
                ("W1b", 8) => Target::new("≥ 2,000 people/s", Check::AtLeastPerSecond(2_000.0)),
                _ => Target::none(),
            };
            rows.push(Row {
                id,
                what: format!(
                    "create {} people one request each, {}, {clients} client{}",
                    thousands(n as u64),
                    if with_password {
                        "with password"
                    } else {
                        "without password"
                    },
                    if clients == 1 { "" } else { "s" }
                ),
                target,
                value: Value::Rate {
                    per_second,
                    unit: "people",
                    detail,
                },
            });
        }
    }

    let hashing = measure_hashing(backend, rows, "W2").await?;
    for &size in &plan.w2_sizes {
        match w2(
            setup,
            hashing,
            &api,
            &server,
            &mut generator,
            size,
            rows,
            peaks,
        )
        .await
        {
            Ok(()) => {}
            Err(e) if e.downcast_ref::<ImportUnavailable>().is_some() => {
                say(backend, &format!("W2 skipped: {e}"));
                rows.push(Row {
                    id: "W2",
                    what: "CSV import".into(),
                    target: Target::none(),
                    value: Value::Missing(e.to_string()),
                });
                break;
            }
            Err(e) => return Err(explain(&server, e)),
        }
    }
    peaks.stop(server).await;
    Ok(())
}

/// One import, its counts checked: every row is `expect` (created, updated or unchanged).
async fn import_checked(
    api: &Api,
    csv: Vec<u8>,
    rows: usize,
    hashing: Option<Hashing>,
    check: impl Fn(&ImportCounts) -> bool,
) -> anyhow::Result<Duration> {
    let per_row = Duration::from_millis(2) + hashing.map_or(Duration::ZERO, |h| h.single * 3);
    let limit = Duration::from_secs(300) + per_row * rows as u32;
    let (elapsed, counts) = api.import(csv, limit).await?;
    if counts.rows != rows as u64 || counts.failed != 0 || !check(&counts) {
        bail!("the import of {rows} rows ended with unexpected counts: {counts:?}");
    }
    Ok(elapsed)
}

#[allow(clippy::too_many_arguments)]
async fn w2(
    setup: &Setup,
    hashing: Hashing,
    api: &Api,
    server: &Server,
    generator: &mut Generator,
    size: usize,
    rows: &mut Vec<Row>,
    peaks: &mut Peaks,
) -> anyhow::Result<()> {
    let backend = peaks.backend;
    let plain = CsvShape {
        passwords: false,
        changed_last_names: false,
    };
    let with_passwords = CsvShape {
        passwords: true,
        changed_last_names: false,
    };
    // The update and unchanged passes read the first file again, at the workload's full size:
    // the with-password file may be cut short (`--w2-password-cap`), and a pass over a few
    // hundred rows would time the job's fixed cost (upload, queue, poll) rather than the path.
    let changed = CsvShape {
        passwords: false,
        changed_last_names: true,
    };
    let hashed_size = setup.plan.w2_password_cap.map_or(size, |cap| size.min(cap));
    let fresh = generator.take(size);
    let fresh_hashed = generator.take(hashed_size);
    let steps: [(&[Person], CsvShape, &str, bool); 4] = [
        (&fresh, plain, "new people, no passwords", false),
        (
            &fresh_hashed,
            with_passwords,
            "new people, with passwords",
            true,
        ),
        (
            &fresh,
            changed,
            "the first file, every last name changed (update)",
            false,
        ),
        (
            &fresh,
            changed,
            "the first file again, as updated (unchanged)",
            false,
        ),
    ];
    for (i, (people, shape, what, hashes)) in steps.into_iter().enumerate() {
        let n = people.len();
        let csv = csv_of(people, shape);
        let start = Instant::now();
        let cpu = server.cpu_time();
        let elapsed = import_checked(api, csv, n, hashes.then_some(hashing), |c| match i {
            0 | 1 => c.created == n as u64,
            2 => c.updated == n as u64,
            _ => c.unchanged == n as u64,
        })
        .await?;
        server.check_alive()?;
        let per_second = n as f64 / elapsed.as_secs_f64();
        let mut detail = format!("{:.2} s", elapsed.as_secs_f64());
        if hashes {
            detail = format!(
                "{detail} · {} · {}",
                hashing.share(per_second),
                hashing.cpu_detail(server, cpu, elapsed, n)
            );
        }
        peaks.step(
            server,
            start,
            &format!("W2 {n} rows, {what}: {per_second:.0} rows/s ({detail})"),
        );
        // A file cut by --w2-password-cap is named after its series too: the 10,000 and the
        // 100,000 series would otherwise both give "import 1,000 rows…", and the table keeps
        // one row per name.
        let series = if n == size {
            String::new()
        } else {
            format!(" (of the {} series)", thousands(size as u64))
        };
        rows.push(Row {
            id: "W2",
            what: format!("import {} rows{series}: {what}", thousands(n as u64)),
            target: if hashes {
                hashing.target()
            } else {
                import_target(backend)
            },
            value: Value::Rate {
                per_second,
                unit: "rows",
                detail,
            },
        });
    }
    Ok(())
}

/// Creates `people` with `clients` concurrent clients; the wall time and each latency.
async fn create_all(
    api: &Api,
    people: Vec<Person>,
    clients: usize,
    with_password: bool,
    limit: Duration,
) -> anyhow::Result<(Duration, Latencies)> {
    let people = Arc::new(people);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + limit;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (api, people, next) = (api.clone(), people.clone(), next.clone());
        tasks.spawn(async move {
            let mut latencies = Latencies::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(person) = people.get(i) else {
                    return Ok::<_, anyhow::Error>(latencies);
                };
                if Instant::now() > deadline {
                    bail!("creations did not finish within {limit:?} ({i} done)");
                }
                let t = Instant::now();
                api.create_person(person, with_password).await?;
                latencies.push(t.elapsed());
            }
        });
    }
    let mut all = Latencies::default();
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined??);
    }
    let elapsed = start.elapsed();
    if all.len() != people.len() {
        bail!("{} of {} people created", all.len(), people.len());
    }
    Ok((elapsed, all))
}

/// What the store holds, to check every search total against.
struct Truth {
    search_texts: Vec<String>,
    disabled: HashSet<usize>,
    /// The super user's search text (it is in the store too, enabled, never connected
    /// unless it logged in).
    admin: (String, bool, bool),
    cache: HashMap<(String, Option<&'static str>), u64>,
}

impl Truth {
    fn total(&mut self, term: &str, filter: Option<&'static str>) -> u64 {
        let key = (term.to_owned(), filter);
        if let Some(&n) = self.cache.get(&key) {
            return n;
        }
        let mut n = self
            .search_texts
            .iter()
            .enumerate()
            .filter(|(i, text)| {
                text.contains(term)
                    && match filter {
                        Some("enabled") => self.disabled.contains(i),
                        // Nobody generated ever logs in.
                        _ => true,
                    }
            })
            .count() as u64;
        let (admin_text, admin_enabled, admin_connected) = &self.admin;
        if admin_text.contains(term)
            && match filter {
                Some("enabled") => !admin_enabled,
                Some("connected") => !admin_connected,
                _ => true,
            }
        {
            n += 1;
        }
        self.cache.insert(key, n);
        n
    }
}

/// A search term: the first 2 or 3 letters of a stored person's first or last name.
#[derive(Clone, Copy)]
struct TermChoice {
    index: usize,
    first_name: bool,
    letters: usize,
}

fn term_choices(rng: &mut StdRng, stored: usize, count: usize) -> Vec<TermChoice> {
    (0..count)
        .map(|_| TermChoice {
            index: rng.gen_range(0..stored),
            first_name: rng.gen_bool(0.5),
            letters: rng.gen_range(2..=3),
        })
        .collect()
}

fn terms_of(
    choices: &[TermChoice],
    kept: &std::collections::BTreeMap<usize, Person>,
) -> Vec<String> {
    choices
        .iter()
        .map(|c| {
            let p = &kept[&c.index];
            let name = if c.first_name {
                &p.first_name
            } else {
                &p.last_name
            };
            name[..c.letters].to_ascii_lowercase()
        })
        .collect()
}

const WARM_UP: usize = 5;

async fn phase_b(
    setup: &Setup,
    store: &Store,
    rows: &mut Vec<Row>,
    peaks: &mut Peaks,
) -> anyhow::Result<()> {
    let plan = &setup.plan;
    let backend = store.backend;
    let server = Server::spawn(&launch(setup, store))?;
    server.wait_ready(Duration::from_secs(60)).await?;
    let token = server.admin_token().await?;
    let api = Api::new(&server.base_url, &token)?;
    let admin = api
        .get_user("admin")
        .await
        .map_err(|e| explain(&server, e))?;

    let stored = plan.w3_stored;
    let mut rng = StdRng::seed_from_u64(SEED + 1);
    let disable: Vec<usize> =
        rand::seq::index::sample(&mut rng, stored, plan.w4_people.min(stored)).into_vec();
    let searches = 2 * plan.searches + WARM_UP;
    let choices = term_choices(&mut rng, stored, searches);
    let keep: Vec<usize> = disable
        .iter()
        .copied()
        .chain(choices.iter().map(|c| c.index))
        .collect();

    // The store of W3: the first `stored` people, by import (or one request each when this
    // build has no import).
    let plain = CsvShape {
        passwords: false,
        changed_last_names: false,
    };
    let file = csv_file(stored, plain, &keep);
    let load_start = Instant::now();
    let load = import_checked(&api, file.bytes, stored, None, |c| {
        c.created == stored as u64
    })
    .await;
    let (kept, search_texts, how) = match load {
        Ok(elapsed) => {
            let per_second = stored as f64 / elapsed.as_secs_f64();
            peaks.step(
                &server,
                load_start,
                &format!("loaded {stored} people by import: {per_second:.0} rows/s"),
            );
            rows.push(Row {
                id: "W3",
                what: format!(
                    "load {} people by import for W3 (no passwords)",
                    thousands(stored as u64)
                ),
                target: import_target(backend),
                value: Value::Rate {
                    per_second,
                    unit: "rows",
                    detail: format!("{:.2} s", elapsed.as_secs_f64()),
                },
            });
            (file.kept, file.search_texts, "import")
        }
        Err(e) if e.downcast_ref::<ImportUnavailable>().is_some() => {
            say(backend, &format!("{e}; loading people one request each"));
            let people = Generator::new().take(stored);
            let limit = Duration::from_secs(120) + Duration::from_millis(50) * stored as u32;
            create_all(&api, people.clone(), 8, false, limit)
                .await
                .map_err(|e| explain(&server, e))?;
            let texts = people.iter().map(|p| search_text_of(p, plain)).collect();
            let kept = keep.iter().map(|&i| (i, people[i].clone())).collect();
            (kept, texts, "POST /users (import not available)")
        }
        Err(e) => return Err(explain(&server, e)),
    };
    if plan.quick {
        rows.push(w5_import_row(&server, load_start, stored, true));
    }

    // W4: 1,000 given people disabled in one mass action.
    let usernames: Vec<String> = disable.iter().map(|i| kept[i].username.clone()).collect();
    let start = Instant::now();
    let (elapsed, changed) = api
        .bulk_disable(&usernames, Duration::from_secs(300))
        .await
        .map_err(|e| explain(&server, e))?;
    if changed != usernames.len() as u64 {
        bail!(
            "the mass action disabled {changed} of {} people",
            usernames.len()
        );
    }
    peaks.step(
        &server,
        start,
        &format!(
            "W4 disabled {changed} people in {:.3} s",
            elapsed.as_secs_f64()
        ),
    );
    rows.push(Row {
        id: "W4",
        what: format!(
            "disable {} given people by one mass action ({} stored)",
            thousands(changed),
            thousands(stored as u64)
        ),
        target: Target::new("≤ 0.5 s", Check::AtMostSeconds(0.5)),
        value: Value::Seconds(elapsed.as_secs_f64()),
    });

    let mut truth = Truth {
        search_texts,
        disabled: disable.iter().copied().collect(),
        admin,
        cache: HashMap::new(),
    };
    let terms = terms_of(&choices, &kept);
    w3(
        &api, &server, peaks, "W3", stored, &terms, &mut truth, how, rows,
    )
    .await?;

    if let Some(big) = plan.w3m_stored {
        let mut rng = StdRng::seed_from_u64(SEED + 2);
        let choices = term_choices(&mut rng, big, searches);
        let keep: Vec<usize> = choices.iter().map(|c| c.index).collect();
        if how != "import" {
            rows.push(Row {
                id: "W3m",
                what: "searches at 1,000,000 stored".into(),
                target: Target::none(),
                value: Value::Missing("import not available".into()),
            });
        } else {
            say(backend, &format!("generating the {big}-row file"));
            let file = csv_file(big, plain, &keep);
            truth.search_texts = file.search_texts;
            truth.cache.clear();
            let start = Instant::now();
            let elapsed = import_checked(&api, file.bytes, big, None, |c| {
                c.created == (big - stored) as u64 && c.unchanged == stored as u64
            })
            .await
            .map_err(|e| explain(&server, e))?;
            let per_second = big as f64 / elapsed.as_secs_f64();
            peaks.step(
                &server,
                start,
                &format!("imported {big} rows: {per_second:.0} rows/s"),
            );
            rows.push(Row {
                id: "W3m",
                what: format!(
                    "import {} rows for W3m ({} new, {} unchanged)",
                    thousands(big as u64),
                    thousands((big - stored) as u64),
                    thousands(stored as u64)
                ),
                target: import_target(backend),
                value: Value::Rate {
                    per_second,
                    unit: "rows",
                    detail: format!("{:.1} s", elapsed.as_secs_f64()),
                },
            });
            rows.push(w5_import_row(&server, start, big, false));
            let terms = terms_of(&choices, &file.kept);
            w3(
                &api, &server, peaks, "W3m", big, &terms, &mut truth, how, rows,
            )
            .await?;
        }
    }
    peaks.stop(server).await;
    Ok(())
}

fn w5_import_row(server: &Server, start: Instant, rows: usize, quick: bool) -> Row {
    let peak = server.peak_since_kib(start);
    Row {
        id: "W5",
        what: format!(
            "peak RSS while importing a {}-row CSV{}",
            thousands(rows as u64),
            if quick { " (quick mode)" } else { "" }
        ),
        target: if quick {
            Target::new("(≤ 256 MiB at 1,000,000 rows)", Check::None)
        } else {
            Target::new("≤ 256 MiB", Check::AtMostMiB(256.0))
        },
        value: Value::MiB {
            mib: mib(peak),
            detail: String::new(),
        },
    }
}

/// The searches of W3 (or W3m): warm-up, plain, then with a status filter; every total
/// checked.
#[allow(clippy::too_many_arguments)]
async fn w3(
    api: &Api,
    server: &Server,
    peaks: &mut Peaks,
    id: &'static str,
    stored: usize,
    terms: &[String],
    truth: &mut Truth,
    how: &str,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let count = (terms.len() - WARM_UP) / 2;
    let start = Instant::now();
    let limit = Duration::from_secs(60) + Duration::from_secs(5) * terms.len() as u32;
    let deadline = Instant::now() + limit;
    let mut plain = Latencies::default();
    let mut filtered = Latencies::default();
    let mut by_filter: [Latencies; 2] = Default::default();
    for (i, term) in terms.iter().enumerate() {
        if Instant::now() > deadline {
            bail!("{id}: the searches did not finish within {limit:?} ({i} done)");
        }
        let filter: Option<(&'static str, &str)> = if i < WARM_UP + count {
            None
        } else if (i - WARM_UP - count) % 2 == 0 {
            Some(("enabled", "false"))
        } else {
            Some(("connected", "false"))
        };
        let start = Instant::now();
        let answer = api
            .search(term, filter)
            .await
            .map_err(|e| explain(server, e))?;
        let took = start.elapsed();
        let expected = truth.total(term, filter.map(|f| f.0));
        if answer.total != expected || answer.page as u64 != expected.min(20) {
            bail!(
                "{id}: the search {term:?} {filter:?} answered a total of {} and {} on the page; \
                 the store holds {expected} matching people",
                answer.total,
                answer.page
            );
        }
        match filter {
            _ if i < WARM_UP => {}
            None => plain.push(took),
            Some((name, _)) => {
                filtered.push(took);
                by_filter[usize::from(name == "connected")].push(took);
            }
        }
    }
    let (p50, p99) = plain.p50_p99();
    let (fp50, fp99) = filtered.p50_p99();
    peaks.step(
        server,
        start,
        &format!(
            "{id} at {stored} stored: p50 {p50:.1} ms p99 {p99:.1} ms; \
             filtered p50 {fp50:.1} ms p99 {fp99:.1} ms (totals exact)"
        ),
    );
    let loaded = if how == "import" {
        String::new()
    } else {
        format!(", loaded by {how}")
    };
    let target = || Target::new("p99 ≤ 20 ms", Check::P99AtMostMs(20.0));
    rows.push(Row {
        id,
        what: format!(
            "{count} contains-searches of 2–3 letters at {} stored, page of 20 + exact total{loaded}",
            thousands(stored as u64)
        ),
        target: target(),
        value: Value::Latency {
            p50_ms: p50,
            p99_ms: p99,
            detail: String::new(),
        },
    });
    rows.push(Row {
        id,
        what: format!(
            "{count} of the same with a status filter (alternately `enabled=false`, \
             `connected=false`) at {} stored",
            thousands(stored as u64)
        ),
        target: target(),
        value: Value::Latency {
            p50_ms: fp50,
            p99_ms: fp99,
            detail: format!(
                "p99 `enabled=false` {:.1} ms, `connected=false` {:.1} ms",
                by_filter[0].percentile_ms(0.99),
                by_filter[1].percentile_ms(0.99)
            ),
        },
    });
    Ok(())
}
