//! The `usher` binary.

use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use usher_server::cli::{self, Cli};
use usher_server::Config;

#[tokio::main]
async fn main() -> std::process::ExitCode {
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
