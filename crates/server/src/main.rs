//! The `usher` binary.

use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use usher_server::cli::{self, Cli};
use usher_server::Config;

fn main() -> std::process::ExitCode {
    map_large_blocks();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("usher: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(run())
}

/// Has glibc map large blocks (from 128 KiB) from the system and give them back when they are
/// freed. By default it raises that threshold by itself after each large free, up to 32 MiB,
/// and the blocks it then carves from its per-thread heaps stay there once freed: an import
/// step's buffers, a few MiB each, left the server's memory well above what it held. Measured
/// on a 1,000,000-row SQLite import: a peak of 209 MiB by default, 180 MiB with the threshold
/// fixed, at the same speed (which is what pays for SQLite's larger import batches).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn map_large_blocks() {
    // SAFETY: `mallopt` sets one of the allocator's parameters under the allocator's own
    // lock; it is called once, before any thread of the runtime exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn map_large_blocks() {}

async fn run() -> std::process::ExitCode {
    let cli = Cli::parse();
    let loaded = match Config::load() {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("usher: configuration error: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(log_filter(&loaded.config.log))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    match cli::run(cli, loaded.config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            if let Some(cli::Exit(code)) = e.downcast_ref::<cli::Exit>() {
                return std::process::ExitCode::from(*code);
            }
            eprintln!("usher: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The configured filter, with PostgreSQL's chatter about already-applied migrations kept out
/// unless asked for.
fn log_filter(configured: &str) -> EnvFilter {
    let directives = if configured.contains("sqlx") {
        configured.to_owned()
    } else {
        format!("{configured},sqlx::postgres::notice=warn")
    };
    EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info"))
}
