//! `usher-bench`: runs the user-management workload (`../shared/bench/WORKLOAD.md`, W0–W5 and
//! W3m) against a real `usher serve` it starts itself, on SQLite and on PostgreSQL, and prints
//! one markdown table of every figure beside the targets of issue 6. `--write` keeps it in
//! `docs/performance.md`. It never asserts a duration: it exits non-zero only when something
//! functional fails (a request, a job, an exact total, the server).

mod api;
mod backend;
mod people;
mod report;
mod server;
mod stats;
mod workload;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};

use crate::backend::Backend;
use crate::report::BackendReport;
use crate::workload::{Plan, Setup};

const HOW_TO_RUN: &str = "Build the server first, then run the benchmark, both in release mode:

    cargo build --release --bin usher
    cargo run --release -p usher-bench -- [OPTIONS]

The quick mode (what CI runs) also accepts a debug server:

    cargo run -p usher-bench -- --quick --usher target/debug/usher";

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendArg {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PhaseArg {
    A,
    B,
    Both,
}

#[derive(Parser)]
#[command(
    name = "usher-bench",
    about = "Runs the user-management workload (W0–W5, W3m) against a real `usher serve` and \
             prints one table of figures",
    after_help = HOW_TO_RUN
)]
struct Args {
    /// The stores to run on.
    #[arg(long, value_enum, default_value = "both")]
    backend: BackendArg,
    /// The `usher` binary [default: `usher` next to this executable, i.e. target/release/usher].
    #[arg(long)]
    usher: Option<PathBuf>,
    /// An administrative connection to PostgreSQL on 127.0.0.1: the benchmark creates the
    /// database `usher_bench_<pid>` there and drops it afterwards.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres_url: String,
    /// A few thousand people instead of 100,000 and 1,000,000, 50 searches instead of 200,
    /// 200 creations instead of 2,000, no W3m; a few minutes in all. Accepts a debug server.
    #[arg(long)]
    quick: bool,
    /// Skips W3m and the 1,000,000-row import (and so W5's import peak).
    #[arg(long)]
    skip_1m: bool,
    /// Cuts W2's with-password files to this many rows (hashing them takes rows × hash time ÷
    /// cores) [default: none; 100 in quick mode].
    #[arg(long)]
    w2_password_cap: Option<usize>,
    /// Runs only one phase: `a` (W0, W1, W1b, W2) or `b` (W3, W4, W3m, W5's import peak), to
    /// measure one part again quickly.
    #[arg(long, value_enum, default_value = "both")]
    phase: PhaseArg,
    /// Also writes the table, with how to read it and the machine, into this file (e.g.
    /// docs/performance.md).
    #[arg(long)]
    write: Option<PathBuf>,
}

/// The server binary: given, or next to our own executable.
fn locate_usher(args: &Args) -> anyhow::Result<PathBuf> {
    let path = match &args.usher {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("the benchmark's own directory")?
            .join("usher"),
    };
    if !path.is_file() {
        bail!("no usher binary at {}.\n{HOW_TO_RUN}", path.display());
    }
    let path = path.canonicalize()?;
    let debug = path
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|d| d == "debug");
    if debug && !args.quick {
        bail!(
            "{} is a debug build: its figures would say nothing of Usher's speed. \
             Use --quick with a debug build, or a release one.\n{HOW_TO_RUN}",
            path.display()
        );
    }
    Ok(path)
}

/// The commit the run is on, read once when it starts: the document the run writes (after
/// each store) is itself a local change, which must not mark the commit as changed.
fn git_commit() -> Option<String> {
    static COMMIT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    COMMIT.get_or_init(read_git_commit).clone()
}

fn read_git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    if commit.is_empty() {
        return None;
    }
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .is_some_and(|o| !o.stdout.is_empty());
    Some(if dirty {
        format!("{commit}, with local changes")
    } else {
        commit
    })
}

async fn run(args: Args) -> anyhow::Result<bool> {
    if cfg!(debug_assertions) && !args.quick {
        bail!(
            "this benchmark is a debug build: its client would slow the figures down.\n{HOW_TO_RUN}"
        );
    }
    let binary = locate_usher(&args)?;
    git_commit();
    let mut plan = if args.quick {
        Plan::quick()
    } else {
        Plan::full(args.skip_1m)
    };
    if let Some(cap) = args.w2_password_cap {
        plan.w2_password_cap = Some(cap);
    }
    if args.skip_1m {
        plan.w3m_stored = None;
    }
    plan.phase_a = args.phase != PhaseArg::B;
    plan.phase_b = args.phase != PhaseArg::A;

    eprintln!(
        "usher-bench: {} (timed before W1 and before W2 on each store)",
        usher_core::people::ARGON2_PARAMETERS
    );

    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let mut backends = Vec::new();
    if args.backend != BackendArg::Postgres {
        backends.push((Backend::Sqlite, None));
    }
    if args.backend != BackendArg::Sqlite {
        match backend::postgres_version(&args.postgres_url).await {
            Ok(version) => {
                backends.push((Backend::Postgres, Some(format!("PostgreSQL {version}"))))
            }
            Err(e) if args.backend == BackendArg::Both && !ci => eprintln!(
                "usher-bench: PostgreSQL is not reachable at {} ({e:#}); skipping it \
                 (with CI=true this fails)",
                args.postgres_url
            ),
            Err(e) => return Err(e.context(format!("PostgreSQL at {}", args.postgres_url))),
        }
    }

    let setup = Setup {
        plan,
        binary,
        postgres_url: args.postgres_url.clone(),
    };
    let mut reports = Vec::new();
    for (backend, version) in backends {
        eprintln!("usher-bench: running on {}", backend.name());
        let mut rows = Vec::new();
        let load_start = report::load_average();
        let outcome = workload::run_backend(&setup, backend, &mut rows).await;
        let failure = outcome.err().map(|e| {
            eprintln!("usher-bench: {} failed: {e:#}", backend.name());
            format!("{e:#}")
        });
        reports.push(BackendReport {
            backend,
            rows,
            failure,
            version,
            load: (load_start, report::load_average()),
        });
        // Written after each backend, so that a long run keeps what it measured.
        if let Some(path) = &args.write {
            write_document(path, &reports, args.quick)?;
        }
    }
    let (context, table) = render(&reports);
    println!("\n{context}\n{table}");
    Ok(reports.iter().all(|r| r.failure.is_none()))
}

/// The context lines and the table.
fn render(reports: &[BackendReport]) -> (String, String) {
    let mut command = String::from("usher-bench");
    for arg in std::env::args().skip(1) {
        command.push(' ');
        command.push_str(&arg);
    }
    let table = report::table(reports);
    let context = report::context(reports, &command, git_commit().as_deref());
    (context, table)
}

fn write_document(path: &Path, reports: &[BackendReport], quick: bool) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let (context, table) = render(reports);
    std::fs::write(path, report::document(&table, &context, quick))
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("usher-bench: wrote {}", path.display());
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn interrupted() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let postgres_url = args.postgres_url.clone();
    // Interrupted, the run is dropped: its server is killed (`Server`'s `Drop`), then the
    // database and directory are removed here.
    let outcome = tokio::select! {
        outcome = run(args) => Some(outcome),
        () = interrupted() => None,
    };
    let Some(outcome) = outcome else {
        eprintln!("usher-bench: interrupted; cleaning up");
        backend::remove_leftovers(&postgres_url).await;
        return ExitCode::from(130);
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("usher-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
