//! The figures as one markdown table (one column per backend, with the target of issue 6 and
//! whether each backend met it), the machine they were measured on, and `docs/performance.md`.

use std::fmt::Write as _;

use crate::backend::Backend;

/// A measured figure.
#[derive(Debug, Clone)]
pub enum Value {
    Seconds(f64),
    /// A throughput, with what else is worth reading beside it (latencies, share of the
    /// hashing limit).
    Rate {
        per_second: f64,
        unit: &'static str,
        detail: String,
    },
    Latency {
        p50_ms: f64,
        p99_ms: f64,
        detail: String,
    },
    MiB {
        mib: f64,
        detail: String,
    },
    Text(String),
    /// Not measured, and why.
    Missing(String),
}

/// What a figure is compared with.
#[derive(Debug, Clone, Copy)]
pub enum Check {
    None,
    AtMostSeconds(f64),
    AtLeastPerSecond(f64),
    P99AtMostMs(f64),
    AtMostMiB(f64),
}

#[derive(Debug, Clone)]
pub struct Target {
    /// As printed, the same for every backend.
    pub text: String,
    /// Per backend (the import targets differ).
    pub check: Check,
}

impl Target {
    pub fn none() -> Self {
        Self {
            text: "—".into(),
            check: Check::None,
        }
    }

    pub fn new(text: impl Into<String>, check: Check) -> Self {
        Self {
            text: text.into(),
            check,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Row {
    /// The figure's id (`W0`, `W1`, …).
    pub id: &'static str,
    /// What was measured; rows of the backends are matched by it.
    pub what: String,
    pub target: Target,
    pub value: Value,
}

/// One backend's rows, in the order they were measured.
#[derive(Debug)]
pub struct BackendReport {
    pub backend: Backend,
    pub rows: Vec<Row>,
    /// Set when the run stopped on a functional failure.
    pub failure: Option<String>,
    pub version: Option<String>,
    /// The machine's 1-minute load average when the backend's run began and ended: other
    /// work on the machine shows there.
    pub load: (f64, f64),
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn rate(x: f64) -> String {
    if x >= 100.0 {
        thousands(x.round() as u64)
    } else {
        format!("{x:.1}")
    }
}

fn ms(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0} ms")
    } else if x >= 10.0 {
        format!("{x:.1} ms")
    } else {
        format!("{x:.2} ms")
    }
}

impl Value {
    fn render(&self) -> String {
        match self {
            Value::Seconds(s) => format!("{s:.3} s"),
            Value::Rate {
                per_second,
                unit,
                detail,
            } => {
                let mut s = format!("**{} {unit}/s**", rate(*per_second));
                if !detail.is_empty() {
                    let _ = write!(s, " · {detail}");
                }
                s
            }
            Value::Latency {
                p50_ms,
                p99_ms,
                detail,
            } => {
                let mut s = format!("p50 {} · **p99 {}**", ms(*p50_ms), ms(*p99_ms));
                if !detail.is_empty() {
                    let _ = write!(s, " ({detail})");
                }
                s
            }
            Value::MiB { mib, detail } => {
                let mut s = format!("**{mib:.1} MiB**");
                if !detail.is_empty() {
                    let _ = write!(s, " ({detail})");
                }
                s
            }
            Value::Text(t) => t.clone(),
            Value::Missing(why) => format!("not measured: {why}"),
        }
    }

    /// met / missed, or `—` when there is nothing to compare.
    fn verdict(&self, check: Check) -> &'static str {
        let met = match (check, self) {
            (Check::None, _) | (_, Value::Missing(_) | Value::Text(_)) => return "—",
            (Check::AtMostSeconds(max), Value::Seconds(s)) => *s <= max,
            (Check::AtLeastPerSecond(min), Value::Rate { per_second, .. }) => *per_second >= min,
            (Check::P99AtMostMs(max), Value::Latency { p99_ms, .. }) => *p99_ms <= max,
            (Check::AtMostMiB(max), Value::MiB { mib, .. }) => *mib <= max,
            _ => return "—",
        };
        if met {
            "met"
        } else {
            "**missed**"
        }
    }
}

/// The machine: cores, CPU model, memory, kernel.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".to_owned(), |(_, m)| m.trim().to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or("unknown memory".to_owned(), |kib| {
            format!("{:.1} GiB RAM", kib / 1024.0 / 1024.0)
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or(String::new(), |k| format!(", Linux {}", k.trim()));
    format!("{cores} cores (nproc), {model}, {memory}{kernel}")
}

/// The table: one row per figure, one value and verdict column per backend.
pub fn table(reports: &[BackendReport]) -> String {
    let mut order: Vec<(&'static str, String, String)> = Vec::new();
    for report in reports {
        for row in &report.rows {
            if !order.iter().any(|(_, what, _)| *what == row.what) {
                order.push((row.id, row.what.clone(), row.target.text.clone()));
            }
        }
    }
    let mut out = String::from("| | figure | target (issue 6) |");
    for r in reports {
        let _ = write!(out, " {} | met? |", r.backend.name());
    }
    out.push_str("\n|---|---|---|");
    for _ in reports {
        out.push_str("---|---|");
    }
    out.push('\n');
    for (id, what, target) in &order {
        let _ = write!(out, "| {id} | {what} | {target} |");
        for r in reports {
            match r.rows.iter().find(|row| row.what == *what) {
                Some(row) => {
                    let _ = write!(
                        out,
                        " {} | {} |",
                        row.value.render(),
                        row.value.verdict(row.target.check)
                    );
                }
                None => out.push_str(" not run | — |"),
            }
        }
        out.push('\n');
    }
    for r in reports {
        if let Some(failure) = &r.failure {
            let _ = writeln!(
                out,
                "\n**{} stopped on a failure:** {}",
                r.backend.name(),
                failure.lines().next().unwrap_or_default()
            );
        }
    }
    out
}

/// Today's date in UTC, `YYYY-MM-DD`, from the system clock.
pub fn today() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The header printed above the table: when, where, how.
pub fn context(reports: &[BackendReport], command: &str, commit: Option<&str>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "- **Machine:** {}", machine());
    let _ = write!(out, "- **Run:** {}, `{command}`", today());
    if let Some(commit) = commit {
        let _ = write!(out, " on commit `{commit}`");
    }
    out.push('\n');
    for r in reports {
        let _ = write!(out, "- **{}:** ", r.backend.name());
        if let Some(v) = &r.version {
            let _ = write!(out, "{v}; ");
        }
        let _ = writeln!(
            out,
            "load average {:.2} when its run began, {:.2} when it ended",
            r.load.0, r.load.1
        );
    }
    out
}

const INTRO: &str = r#"# Performance

Figures of Usher on the user-management workload (`../shared/bench/WORKLOAD.md`, W0–W5 and W3m),
measured by `usher-bench` (crates/bench) against a real `usher serve` that it starts itself on a
fresh store, on SQLite and on PostgreSQL, talking to 127.0.0.1 only. The targets are those of
issue 6, for this 2-core machine. The table below is the latest full run; run it again with:

```sh
cargo build --release --bin usher
cargo run --release -p usher-bench -- --write docs/performance.md   # both stores; ~30 min on 2 cores
cargo run --release -p usher-bench -- --backend sqlite --skip-1m     # quicker: SQLite, no 1M phase
cargo run --release -p usher-bench -- --phase b --w2-password-cap 100  # one phase: b = W3, W4, W3m
cargo run -p usher-bench -- --quick --usher target/debug/usher       # what CI runs (minutes, no targets)
```

PostgreSQL is reached at `--postgres-url` (default `postgres://postgres@127.0.0.1:5432/postgres`),
where the benchmark creates the database `usher_bench_<pid>` and drops it afterwards. The
benchmark never asserts a duration: it fails only when something functional does (a request
errors, a job fails, a search total is not exact, the server dies).

## What the figures rest on, and where they fall short

- **Search (W3, W3m)** is answered from each node's in-memory index (`crates/core/src/search`,
  README "Search"): bitmaps of the people holding each folded letter, pair and triple, bitmaps
  of each status, and orders of the sort columns built on first use. A search costs a few
  bitmap intersections, a walk of the order to the page, one indexed read of the change feed
  (the people written since the last search) and one read of the page's 20 people. Totals stay
  exact: the benchmark checks every one, and a model-based test and a test against the SQL
  check every filter, sort and page. The SQL search remains for the seconds after a start while
  the index loads; the indexes only it used were dropped (migration `..07`), which made writes
  cheaper.
- **Hashing (W1, W2 with passwords)** runs on a fixed pool of one thread per core, each reusing
  one 19 MiB Argon2 block and giving it back after 2 s idle (so W0's idle memory holds none).
  The hashing limit is the ceiling; what is left below it is the request and store work done on
  the same 2 cores, the benchmark's own client, and what two hashes at once cost the machine.
  Each hashing figure says how busy the server kept the cores while it was measured and the
  CPU time each hash took on its hashing thread, beside the time of one hash alone: where the
  server keeps both cores busy and each hash takes longer than alone, the distance to the
  limit is the machine's, not the server's (an import of 1,000 people with passwords, timed
  with `/proc` outside the benchmark: 1.89 of 2 cores busy for 9.9 s, 18.7 ms of CPU per hash
  against 13.7–14.8 alone; two Argon2 passes over 19 MiB each share these 2 cores' 16 MiB of
  L3 cache and their memory). Two hashes at once with nothing else
  running (the Argon2id rows give that rate) reached 97–98% of the limit on one session's
  machine, so that nearly all of the distance from a ratio near 80–90% to the limit was that
  request, store and client work; on another of the same kind they reached 75–105% from one
  measurement to the next, and the ratios moved with them (see "Hashing ratios").
- **Imports (W2)** run in batches that start at 250 rows and double up to the size the store
  chooses (SQLite 8,000 rows, PostgreSQL 4,000), so that writing starts within 10 ms of a job's
  start; each is written as one transaction of a few set-based statements, audited row by row.
  While a step commits, the next batch is read, looked up, planned and prepared in the store's
  form, and a step's rows move into it rather than being copied: timed in the server, the next
  step was always ready when the writer asked for it. On SQLite the steps are written by one
  connection kept for writes (a 16 MiB page cache; 32 MiB: see below), a step stamps the
  change feed itself, and the WAL is checkpointed at 256 MiB. A step's rows reach SQLite as one
  JSONB array of arrays, built while the step before commits, and are handed to SQLite row by
  row by `usher_rows`, a table-valued function of Usher's own
  (`crates/store/src/sql_store/imports/jsonb_rows.rs`), which locates a row's values in one
  pass and hands each over as the integer or text it is. SQLite's JSON functions did that work
  before: `json_each` rendered each row as text, `jsonb()` parsed it back, and each `v->>N`
  walked the row from its start; profiled with `perf` while 100,000 new people were imported,
  they took a fifth of the writing thread's time. In 4 runs of the build before and 5 of this
  one, alternated, each on a fresh store: 10,000 new people went from 40,200–44,800 rows/s to
  62,200–65,200, 100,000 (10,000 stored) from 35,500–36,000 to 48,800–51,700, and their update
  from 56,700–58,500 to 70,200–73,400. The new people's insert returns nothing: sqlx hands
  each row a statement returns over from the connection's thread on its own, which cost a
  4,000-row insert about half as long again (78–109 ms with `RETURNING`, 48–73 without);
  their ids are read back as one JSON text. Each
  audit entry carries its person's id (the step knows it) instead of a username lookup per
  entry (on PostgreSQL 2,000 entries took 27.6 ms with the lookup, 13.8 without, in `psql`),
  and its details are rendered once from the row, without a `serde_json::Value` tree per row.
  That memory, with the binary rows, took a 1,000,000-row SQLite import's peak from 225–232 MiB
  to 171 at 4,000-row batches, and paid for 8,000-row ones (203 MiB; 12,000 rows: 246, too near
  W5's 256). On PostgreSQL the new people, their memberships and audit entries are
  bound as one array per column (`unnest`, which PostgreSQL decodes far faster than it parses
  JSON text); an upload's chunks are stored uncompressed (written once, read once, deleted at
  the job's end: a 100,000-row upload took 167 ms compressed, 73 without); a step's commit does
  not wait for the WAL's flush unless the step queues mail (a step and the job's progress are
  lost together and done again when the job resumes, and the job's end commits flushed: 10,000
  new people went from 19,200 rows/s to 20,200, medians of 3 alternated runs); 4,000-row
  batches rather than 2,000 took 100,000 new people from 19,400–20,900 rows/s to
  20,600–20,900 and their update from 21,100–21,200 to 21,700–22,100; and after a
  large import only the change number's statistics are refreshed, once the job has ended.
  What is left on SQLite is the single writer's B-tree work: with `usher_rows` the writing
  thread spends its time in SQLite's B-trees and page cache (`perf`: the VDBE, index seeks and
  key comparisons, page balancing), most of it on the username and email unique indexes, whose
  keys arrive in random order so that each takes an entry on most of its leaf pages in every
  step and writes them all to the WAL at each commit, and in the checkpoint that copies them
  back (a few hundred milliseconds each; where one falls moves that time between one file's
  figure and the next one's). Checkpointing at 256 MiB rather than 128 took a run of the
  files of 10,000, 1,000, 10,000 and 100,000 new people and the update of the last from
  3.84–4.07 s to 3.33–3.47 (3 alternated runs each). Measured on the same schema without Usher
  (Python's `sqlite3`, the second 100,000 people): 73,000 rows/s with only the username and
  email indexes, 50,000 with everything Usher keeps. At a million people (the import before
  W3m, which the benchmark holds to W2's line although W2's files are of 10,000 and 100,000
  rows) SQLite reaches 27,000–30,000 rows/s: the username and email indexes, some 75 MB by
  then, outgrow the writer's 16 MiB page cache, and a third of the writing thread's time goes
  to the kernel copying 4 KiB pages between SQLite and the file's cache (`perf`); a 32 MiB
  cache made 900,000 new people after 100,000 import 7% faster (29,400–29,800 rows/s against
  27,300–27,900) for 40 MiB more at the peak, and stays 16. A lever measured and not made: the
  email's unique index on a 64-bit hash of the address (entries a third the size: 10–15%
  faster at 4,000-row steps, 4% at 8,000; SQLite cannot drop a column's UNIQUE without
  rebuilding `people`). On PostgreSQL a 2,000-row step of new people spends, by
  `log_min_duration_statement`, 23–28 ms inserting the people, 31–36 ms their memberships and
  16–18 ms the audit entries: each membership is checked against two foreign keys, 22 of a
  2,000-row insert's 28 ms in `psql` (statement-level triggers checking the same with
  transition tables took longer, 31–35 ms). Those three statements alone come to about 40 µs
  a row in the one PostgreSQL process an import writes through, some 25,000 rows/s; the step's
  lookups, its binding and its commit take the rest of the way to the 20,000–21,000 measured.
  Measured and not kept: no checkpoints at all (+15%, and a WAL without bound), checkpoints in
  the background on another connection (within noise, and the WAL grew to 258 MB while the
  writer kept writing), rows sorted by username within a step (no change), the new people bound
  as multi-row `VALUES` (no faster than the JSON text of then), a larger row buffer between
  sqlx's SQLite threads and the server (no change to creations, and the 1,000,000-row import
  then peaked at 254 MiB), glibc limited to two heaps (15% slower), mimalloc (twice the memory
  at 10,000 rows), 16 KiB pages (imports about 20% faster, single creations 40% slower, every
  commit writing whole pages), memberships as a table without rowids (a third fewer B-tree
  writes per membership; through the server within 1% once the checkpoint's place was
  counted).
- **Updates and unchanged files (W2)** read the first file again, at its full size, rather
  than the with-password file, which `--w2-password-cap` may cut to 1,000 rows: on 1,000 rows
  the job's fixed cost (the upload stored, the job queued and claimed, 5–7 ms; the
  benchmark's poll after it ends, 4–9 ms) was most of what was timed. Each batch first reads
  the people its rows name; on SQLite they come back as one JSON text of arrays
  (`json_group_array`), parsed by the server, instead of one row each: sqlx hands every SQLite
  row over from the connection's thread on its own, and 1,000 people took 18–22 ms that way.
  That took the unchanged 100,000-row file from 76,000 rows/s to 155,000–196,000 on SQLite. A
  step's updates write the email's key only for the people whose address changed: SQLite
  rewrites the entry of every index whose column a SET names, changed or not (in Python on the
  same schema, 1,000 updates without the key took 17 ms against 21 and committed in 19 ms
  against 27). On PostgreSQL a changed last name moves each row out of a heap-only update, so
  every index of `people` takes a new entry (`EXPLAIN ANALYZE` of 1,000 updates: 7 ms finding
  the rows, 15 ms writing them); binding the rows as arrays instead of JSON measured within
  noise in `psql`.
- **Creations without password (W1b)** read the caller, their token and their role in one
  query, then write. On PostgreSQL the person, their membership and the audit entry are one
  statement (data-modifying CTEs) with no transaction around it, and a pooled connection is
  tested only after 5 s idle, not before every query. On SQLite they are one transaction whose
  statements reach the writing connection in one call (sqlx runs them in turn). Uniqueness is checked by the insert itself (the fields are checked only
  after a clash, to report every clash at once), and the answer is built from what was written
  instead of read back. On SQLite about half of the request threads' time still goes to
  switching threads: sqlx runs each SQLite connection on a thread of its own and hands it every
  statement.
- **Hashing ratios (W1, W2 with passwords)** divide a throughput by a single-hash time
  measured alone on the same shared machine, which moves from run to run (12.6–15.3 ms in one
  session's runs, 13.5–20.6 ms in another's, where one build's 8-client W1 on PostgreSQL
  made 89–108 people/s, 65–99% of the limits measured just before). Two hashes at once on the 2 cores take about 7% longer each
  than one alone (14.5 against 13.5 ms, measured with the same crate and parameters), so a
  server doing nothing but hashing would reach about 93% of this limit; the request and store
  work and the benchmark's 8 clients share the same 2 cores.

## How it runs

People are generated deterministically (seed 42): `first.last` usernames from syllables (with a
numeric suffix where taken), `username@example.test`, passwords `Temp-` + 12 letters and digits.
Each backend runs in two phases, each on a fresh store and a fresh server:

1. **W0, W1, W1b, W2** on an empty store: the time from spawning `usher serve` to `/readyz`
   answering 200, the resident memory (`VmRSS`) after 10 s idle, then creations one request each
   (`POST /api/v1/users`), then CSV imports (`POST /api/v1/imports`, polled until done).
2. **W4, W3, W3m, W5** on a store loaded by import with the first 100,000 people: 1,000 of them
   disabled in one mass action (`POST /api/v1/users/bulk`, so that the `enabled=false` filter
   has something to find), 200 searches, then a 1,000,000-row file imported (its first 100,000
   rows are the stored people, unchanged; 900,000 are new) and the searches again at 1,000,000.

## What each row means

- **W0** ready: seconds from spawning the process to the first 200 from `/readyz` (migrations of
  an empty store and the super user included). Idle RSS: `VmRSS` 10 s later, no request made.
- **Argon2id**: the parameters Usher hashes with and the time of one hash on this machine,
  measured in the benchmark's process with Usher's own code just before W1 and again before W2,
  the server idle: the median of 11 hashes, the best of 3 rounds (other work on the machine slows
  some rounds). The hashing limit is cores ÷ that time, as issue 6 defines it: no server can
  create people with passwords faster on this machine. Beside it, what the machine gives with
  every core hashing and nothing else running (a thread per core, 20 hashes each, the best of 2
  rounds): how close two cores sharing caches and memory bandwidth come to the limit.
- **W1** creates distinct people one `POST /api/v1/users` each, with a password, first from one
  client (sequential requests), then from 8 concurrent clients; people/s and request latency.
  **W1b** is the same without a password (accounts that join by invitation; no email is sent).
- **W2** imports CSV files (`userName,firstName,lastName[,password],email`) of new people: first
  without passwords, then with; then the first file (without passwords, at its full size) again
  with every last name changed (the update path), then once more unchanged. Seconds from the start of the upload to the job reported `done`; rows/s.
- **W3** at 100,000 stored (**W3m** at 1,000,000): searches of the first 2 or 3 letters of a
  stored person's first or last name (a contains-search: `te` also matches every
  `…@example.test`), first page of 20 with the exact total, one client, sequential; then the same
  with a status filter (alternately `enabled=false` and `connected=false`). Every total is checked
  against the generated people; a wrong one fails the run. Latency is measured at the client.
- **W4**: 1,000 given usernames disabled by one `POST /api/v1/users/bulk`, until done.
- **W5**: the server's peak `VmRSS`, sampled every 100 ms over both phases (the kernel's
  high-water mark `VmHWM` beside it), and the peak sampled while the 1,000,000-row file is
  imported (received, stored and applied).

The benchmark runs on the same 2 cores as the server, so client time counts against it: figures
are those an administrator's script on the same machine would see.
"#;

/// `docs/performance.md`.
pub fn document(table: &str, context: &str, quick: bool) -> String {
    let mut out = String::from(INTRO);
    out.push_str("\n## Latest figures\n\n");
    if quick {
        out.push_str(
            "**Quick mode** (a few thousand people): sizes differ from the workload's, so the \
             verdicts do not speak for the targets.\n\n",
        );
    }
    out.push_str(context);
    out.push('\n');
    out.push_str(table);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_dates_read_well() {
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(rate(12_345.6), "12,346");
        assert_eq!(rate(41.26), "41.3");
        assert_eq!(today().len(), 10);
    }

    #[test]
    fn the_table_has_a_column_per_backend() {
        let row = |v: Value| Row {
            id: "W4",
            what: "disable 1,000".into(),
            target: Target::new("≤ 0.5 s", Check::AtMostSeconds(0.5)),
            value: v,
        };
        let t = table(&[
            BackendReport {
                backend: Backend::Sqlite,
                rows: vec![row(Value::Seconds(0.2))],
                failure: None,
                version: None,
                load: (0.0, 0.0),
            },
            BackendReport {
                backend: Backend::Postgres,
                rows: vec![row(Value::Seconds(0.9))],
                failure: None,
                version: None,
                load: (0.0, 0.0),
            },
        ]);
        assert!(
            t.contains("| W4 | disable 1,000 | ≤ 0.5 s | 0.200 s | met | 0.900 s | **missed** |")
        );
    }
}
