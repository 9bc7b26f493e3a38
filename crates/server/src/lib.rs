//! The `usher` server: configuration, the command line, and the HTTP surface (JSON API and
//! server-rendered pages) over the services of `usher-core`.

pub mod cli;
pub mod config;
pub mod http;
pub mod imports;
pub mod jobs;
pub mod mail;
pub mod serve;

pub use config::Config;
pub use http::{router, AppState};
