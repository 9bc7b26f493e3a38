//! Running CSV imports: the worker inside `usher serve`, and `usher import` on the command
//! line. Both go through the same job code (`Usher::begin_import`, `Usher::run_import`); the
//! report CSV they hand out is written here.
//!
//! The worker takes queued jobs one at a time. On PostgreSQL several nodes share the queue:
//! the store hands each job to one node, under a lease that every committed step extends; a
//! node that dies stops extending it, and another node takes the job over once it runs out.
//! A node that restarts takes back the jobs it held at once (they are its own, and it knows
//! it is no longer running them), which is how a crash resumes when `usher serve` starts
//! again. A node is named after its host and listen address.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use usher_core::import::scan::human_bytes;
use usher_core::import::{FileScanner, ImportCounts, ImportIssue, ImportJob, ImportState};
use usher_core::service::{
    ChunkSource, RunOptions, RunOutcome, UploadError, UploadOptions, Usher, CHUNK_BYTES,
};
use usher_core::ServiceError;

use crate::config::Config;
use crate::http::api::csv_line;

/// The columns of an import report.
pub const REPORT_HEADER: [&str; 6] = ["line", "username", "field", "severity", "code", "message"];

/// One line of the report, cells that a spreadsheet would run as a formula neutralised.
pub fn report_line(i: &ImportIssue) -> String {
    csv_line(&[
        &i.line.to_string(),
        &i.username,
        &i.field,
        i.severity.as_str(),
        &i.code,
        &i.message,
    ])
}

/// Writes a job's whole report, page by page.
pub async fn write_report(usher: &Usher, job_id: i64, out: &mut impl Write) -> anyhow::Result<()> {
    out.write_all(csv_line(&REPORT_HEADER).as_bytes())?;
    let mut after = 0;
    loop {
        let page = usher.store.import_issues(job_id, after, 1000).await?;
        let Some((last, _)) = page.last() else {
            return Ok(());
        };
        after = *last;
        for (_, issue) in &page {
            out.write_all(report_line(issue).as_bytes())?;
        }
    }
}

/// `host:bind`, naming this node in job leases.
pub fn node_name(bind: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{bind}")
}

#[derive(Clone)]
pub struct ImportWorkerOptions {
    /// This node's name (see [`node_name`]).
    pub node: String,
    /// How long a claimed job stays this node's without a committed step.
    pub lease: time::Duration,
    /// How often an idle worker looks for jobs (queued elsewhere, or left by a dead node).
    pub poll_interval: Duration,
    /// How long uploads may stay incomplete before they are purged.
    pub abandoned_after: time::Duration,
    pub run: RunOptions,
}

impl ImportWorkerOptions {
    pub fn for_node(node: String) -> Self {
        Self {
            node,
            lease: time::Duration::minutes(2),
            poll_interval: Duration::from_secs(5),
            abandoned_after: time::Duration::hours(6),
            run: RunOptions::default(),
        }
    }
}

/// The running worker; [`ImportWorkerHandle::shutdown`] stops it after the step in progress
/// (the job is resumed by the next start, or by another node).
pub struct ImportWorkerHandle {
    stop: Arc<AtomicBool>,
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

impl ImportWorkerHandle {
    pub async fn shutdown(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        if let Err(e) = self.task.await {
            if e.is_panic() {
                tracing::error!("the import worker panicked: {e}");
            }
        }
    }
}

/// Starts the import worker on the current runtime; it wakes when `usher.import_signal` is
/// poked (a job was queued here) and polls for jobs queued elsewhere.
pub fn spawn_import_worker(usher: Usher, options: ImportWorkerOptions) -> ImportWorkerHandle {
    let stop = Arc::new(AtomicBool::new(false));
    let wake = usher.import_signal.clone();
    let task = tokio::spawn(work(usher, options, stop.clone()));
    ImportWorkerHandle { stop, wake, task }
}

async fn work(usher: Usher, options: ImportWorkerOptions, stop: Arc<AtomicBool>) {
    tracing::info!("import worker started as node {}", options.node);
    // Jobs still leased to this node's name were held by its previous run: they are taken back
    // at once, and for as long as such a lease can last, not only on the first look. A job
    // whose row the dead run's last transaction still locks (PostgreSQL ends it only when it
    // notices the connection gone) is skipped by that look, and would otherwise wait for its
    // lease to run out.
    let started = Instant::now();
    let reclaim_for = Duration::try_from(options.lease).unwrap_or_default();
    let mut last_purge: Option<Instant> = None;
    let mut failing = false;
    while !stop.load(Ordering::SeqCst) {
        if last_purge.is_none_or(|t| t.elapsed() > Duration::from_secs(3600)) {
            let before = usher.clock.now() - options.abandoned_after;
            match usher.store.purge_abandoned_imports(before).await {
                Ok(n) if n > 0 => tracing::info!("purged {n} abandoned import upload(s)"),
                Ok(_) => {}
                Err(e) => tracing::warn!("import worker: cannot purge abandoned uploads: {e}"),
            }
            last_purge = Some(Instant::now());
        }
        let mut idle = true;
        let reclaim_own = started.elapsed() < reclaim_for;
        match usher
            .claim_import(&options.node, options.lease, reclaim_own)
            .await
        {
            Ok(Some((job, lease))) => {
                failing = false;
                idle = false;
                let run = RunOptions {
                    stop: Some(stop.clone()),
                    ..options.run.clone()
                };
                run_logged(&usher, job, lease, run).await;
            }
            Ok(None) => failing = false,
            Err(e) => {
                if !failing {
                    tracing::warn!("import worker: cannot look for jobs: {e}");
                    failing = true;
                }
            }
        }
        if idle && !stop.load(Ordering::SeqCst) {
            tokio::select! {
                () = usher.import_signal.notified() => {}
                () = tokio::time::sleep(options.poll_interval) => {}
            }
        }
    }
    tracing::info!("import worker stopped");
}

async fn run_logged(
    usher: &Usher,
    job: ImportJob,
    lease: usher_core::import::ImportLease,
    run: RunOptions,
) {
    let id = job.id;
    if job.counts.processed > 0 {
        tracing::info!(
            job = id,
            "resuming import at row {} of {}",
            job.counts.processed,
            job.counts.rows
        );
    } else {
        tracing::info!(job = id, "starting import of {} rows", job.counts.rows);
    }
    match usher.run_import(job, lease, run).await {
        Ok(RunOutcome::Finished(job)) => {
            let c = job.counts;
            tracing::info!(
                job = id,
                state = job.state.as_str(),
                "import ended: {} created, {} updated, {} unchanged, {} failed, {} warnings",
                c.created,
                c.updated,
                c.unchanged,
                c.failed,
                c.warnings
            );
        }
        Ok(RunOutcome::Stopped) => tracing::info!(job = id, "import paused; it resumes later"),
        Ok(RunOutcome::LeaseLost) => {
            tracing::warn!(job = id, "import taken over by another node; stopped here")
        }
        // The lease runs out and the job is taken up again (by this node or another).
        Err(e) => tracing::error!(job = id, "import interrupted: {e}"),
    }
}

/// Runs every job that is waiting, one after the other, in this task; returns the jobs that
/// ended. What tests and tools use instead of a background worker.
pub async fn run_pending_imports(
    usher: &Usher,
    node: &str,
    lease: time::Duration,
    options: RunOptions,
) -> Result<Vec<ImportJob>, ServiceError> {
    let mut ended = Vec::new();
    while let Some((job, lease)) = usher.claim_import(node, lease, true).await? {
        if let RunOutcome::Finished(job) = usher.run_import(job, lease, options.clone()).await? {
            ended.push(*job);
        } else {
            break;
        }
    }
    Ok(ended)
}

/// A file on disk, read chunk by chunk. Plain blocking reads: they run on the job's reading
/// thread, or in the command line's own task.
struct FileChunks(std::fs::File);

#[async_trait]
impl ChunkSource for FileChunks {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ServiceError> {
        read_chunk(&mut self.0)
            .map_err(|e| ServiceError::Internal(format!("reading the file: {e}")))
    }
}

fn read_chunk(file: &mut std::fs::File) -> std::io::Result<Option<Vec<u8>>> {
    let mut chunk = vec![0; CHUNK_BYTES];
    let mut filled = 0;
    while filled < chunk.len() {
        match file.read(&mut chunk[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    chunk.truncate(filled);
    Ok((filled > 0).then_some(chunk))
}

/// `usher import FILE [--dry-run]`: the exit status of the interface (0 every row applied,
/// 1 some rows failed, 2 the file was refused).
pub async fn cli_import(
    usher: &Usher,
    config: &Config,
    path: &Path,
    dry_run: bool,
) -> anyhow::Result<u8> {
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let refuse = |e: &dyn std::fmt::Display| {
        eprintln!("usher: {} was refused: {e}", path.display());
        Ok(2)
    };
    let (tx, rx) = watch::channel(ImportCounts::default());
    let options = RunOptions {
        progress: Some(tx),
        ..RunOptions::default()
    };
    let started = Instant::now();
    let (counts, report) = if dry_run {
        // Scan first, as a submission would, then validate every row without writing.
        let mut scanner = FileScanner::new(config.import_max_bytes);
        while let Some(chunk) = read_chunk(&mut file)? {
            if let Err(e) = scanner.feed(&chunk) {
                return refuse(&e);
            }
        }
        let summary = match scanner.finish() {
            Ok(s) => s,
            Err(e) => return refuse(&e),
        };
        let (report_path, report_file) = create_report(path)?;
        let mut out = std::io::BufWriter::new(report_file);
        out.write_all(csv_line(&REPORT_HEADER).as_bytes())?;
        let mut write_error = None;
        let bar = progress_bar(rx, summary.rows, true);
        let source = FileChunks(std::fs::File::open(path)?);
        let result = usher
            .dry_run_import(
                Box::new(source),
                summary.rows,
                options,
                Box::new(|issue: &ImportIssue| {
                    if let Err(e) = out.write_all(report_line(issue).as_bytes()) {
                        write_error.get_or_insert(e);
                    }
                }),
            )
            .await;
        bar.abort();
        let counts = match result? {
            Ok(counts) => counts,
            Err(message) => return refuse(&message),
        };
        if let Some(e) = write_error {
            return Err(e).context("writing the report");
        }
        out.flush()?;
        (counts, report_path)
    } else {
        let node = format!("{}:cli:{}", node_name("usher-import"), std::process::id());
        let mut upload = usher
            .begin_import(
                None,
                UploadOptions {
                    dry_run: false,
                    file_name,
                    max_bytes: config.import_max_bytes,
                    run_by: Some(node),
                    ..UploadOptions::default()
                },
            )
            .await?;
        while let Some(chunk) = read_chunk(&mut file)? {
            match upload.write(&chunk).await {
                Ok(()) => {}
                Err(UploadError::File(e)) => return refuse(&e),
                Err(UploadError::Service(e)) => return Err(e.into()),
            }
        }
        let (job, lease) = match upload.finish().await {
            Ok(done) => done,
            Err(UploadError::File(e)) => return refuse(&e),
            Err(UploadError::Service(e)) => return Err(e.into()),
        };
        let lease = lease.context("the job was not claimed")?;
        let bar = progress_bar(rx, job.counts.rows, false);
        let outcome = usher.run_import(job, lease, options).await;
        bar.abort();
        let job = match outcome? {
            RunOutcome::Finished(job) => *job,
            RunOutcome::Stopped | RunOutcome::LeaseLost => {
                anyhow::bail!("the import was taken over by a server; follow it at /admin/imports")
            }
        };
        if job.state == ImportState::Failed {
            eprintln!(
                "usher: the import failed: {}",
                job.error.as_deref().unwrap_or("unknown error")
            );
        }
        let (report_path, report_file) = create_report(path)?;
        let mut out = std::io::BufWriter::new(report_file);
        write_report(usher, job.id, &mut out).await?;
        out.flush()?;
        (job.counts, report_path)
    };
    clear_line();
    print_summary(&counts, dry_run, started.elapsed());
    println!("Report: {}", report.display());
    Ok(if counts.failed > 0 { 1 } else { 0 })
}

/// `users.csv` → `users.report.csv` beside it, or in the working directory when that folder
/// cannot be written.
fn create_report(path: &Path) -> anyhow::Result<(PathBuf, std::fs::File)> {
    let stem = path
        .file_stem()
        .map_or_else(|| "import".into(), |s| s.to_string_lossy().into_owned());
    let name = format!("{stem}.report.csv");
    let beside = path.with_file_name(&name);
    match std::fs::File::create(&beside) {
        Ok(f) => Ok((beside, f)),
        Err(_) => {
            let here = PathBuf::from(&name);
            let f = std::fs::File::create(&here)
                .with_context(|| format!("creating the report {}", here.display()))?;
            Ok((here, f))
        }
    }
}

fn print_summary(c: &ImportCounts, dry_run: bool, elapsed: Duration) {
    let secs = elapsed.as_secs_f64().max(0.001);
    let verb = if dry_run {
        "Checked (dry run, nothing written)"
    } else {
        "Imported"
    };
    let would = if dry_run { "would be " } else { "" };
    println!(
        "{verb}: {} rows in {:.1} s ({:.0} rows/s): {} {would}created, {} {would}updated, \
         {} unchanged, {} failed, {} warnings.",
        c.processed,
        secs,
        c.processed as f64 / secs,
        c.created,
        c.updated,
        c.unchanged,
        c.failed,
        c.warnings
    );
}

/// A one-line progress bar on standard error, redrawn as steps commit; nothing when standard
/// error is not a terminal (logs stay clean).
fn progress_bar(mut rx: watch::Receiver<ImportCounts>, rows: u64, dry_run: bool) -> JoinHandle<()> {
    let terminal = std::io::stderr().is_terminal();
    tokio::spawn(async move {
        if !terminal {
            return;
        }
        let started = Instant::now();
        let label = if dry_run { "Checking" } else { "Importing" };
        while rx.changed().await.is_ok() {
            let c = *rx.borrow();
            let done = c.processed.min(rows);
            let fraction = if rows == 0 {
                1.0
            } else {
                done as f64 / rows as f64
            };
            let width = 30;
            let filled = (fraction * width as f64).round() as usize;
            let rate = done as f64 / started.elapsed().as_secs_f64().max(0.001);
            let left = if rate > 0.0 {
                format!("{:.0} s left", (rows - done) as f64 / rate)
            } else {
                String::new()
            };
            let mut err = std::io::stderr();
            let _ = write!(
                err,
                "\r{label} [{}{}] {:>3.0}% {done}/{rows} rows · {:.0} rows/s · {left}   ",
                "#".repeat(filled),
                ".".repeat(width - filled),
                fraction * 100.0,
                rate
            );
            let _ = err.flush();
        }
    })
}

fn clear_line() {
    if std::io::stderr().is_terminal() {
        let mut err = std::io::stderr();
        let _ = write!(err, "\r{}\r", " ".repeat(100));
        let _ = err.flush();
    }
}

/// How large a file the server takes, for messages.
pub fn max_size_text(config: &Config) -> String {
    human_bytes(config.import_max_bytes)
}
