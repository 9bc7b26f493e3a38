//! The `usher` binary.

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
        .with_env_filter(
            EnvFilter::try_new(&loaded.config.log).unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    match cli::run(cli, loaded.config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("usher: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
