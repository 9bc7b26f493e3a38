//! `usher serve`: open and migrate the store, create the super user on first start, serve HTTP
//! until asked to stop.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use usher_core::clock::{Clock, SystemClock};
use usher_core::service::{Settings, Usher};
use usher_core::store::Store;

use crate::config::Config;
use crate::http::{router, AppState};
use crate::mail::{
    default_data_dir, spawn_worker, transport_from_config, AskamaComposer, WorkerHandle,
    WorkerOptions,
};

/// Opens the store named by the configuration and builds the services over it.
pub async fn open(config: &Config) -> anyhow::Result<Usher> {
    let store = usher_store::connect_and_migrate(&config.database_url)
        .await
        .with_context(|| format!("opening the store at {}", redact(&config.database_url)))?;
    Ok(services(store, Arc::new(SystemClock), config))
}

/// The services over a store, configured as `config` says.
pub fn services(store: Arc<dyn Store>, clock: Arc<dyn Clock>, config: &Config) -> Usher {
    let composer = Arc::new(AskamaComposer::new(&config.platform_name, clock.clone()));
    let settings = Settings {
        link_ttl: time::Duration::try_from(config.invitation_ttl)
            .unwrap_or(time::Duration::hours(24)),
        public_url: config.public_url.trim_end_matches('/').to_owned(),
        platform_name: config.platform_name.clone(),
        ..Settings::default()
    };
    Usher::new(store, clock, settings, composer)
}

/// Starts the mail outbox worker with the transport the configuration asks for.
pub fn start_mail_worker(usher: &Usher, config: &Config) -> anyhow::Result<WorkerHandle> {
    let transport = transport_from_config(config, &default_data_dir(config))
        .context("setting up mail delivery")?;
    Ok(spawn_worker(
        usher.store.clone(),
        transport,
        usher.clock.clone(),
        usher.outbox_signal.clone(),
        WorkerOptions::default(),
    ))
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let usher = open(&config).await?;
    if let Some(password) = usher
        .ensure_super_user(config.admin_password.clone())
        .await
        .context("creating the super user")?
    {
        // Shown once, on standard output, so that the operator can log in the first time. A
        // closed standard output must not stop the server, hence no `println!`.
        let mut out = std::io::stdout();
        let _ = writeln!(
            out,
            "Created the super user `admin` with password: {password}"
        );
        let _ = writeln!(out, "(shown only this once; change it after logging in)");
    }
    usher.start_search_index();
    let mail_worker = start_mail_worker(&usher, &config)?;
    let import_worker = crate::imports::spawn_import_worker(
        usher.clone(),
        crate::imports::ImportWorkerOptions::for_node(crate::imports::node_name(&config.bind)),
    );
    let job_resumer = crate::jobs::spawn_job_resumer(usher.clone(), crate::jobs::JOB_RESUME_EVERY);
    let listener = tokio::net::TcpListener::bind(&config.bind)
        .await
        .with_context(|| format!("listening on {}", config.bind))?;
    tracing::info!(
        "Usher is ready: log in at {}/login (listening on {})",
        config.public_url,
        listener.local_addr()?
    );
    let state = AppState {
        usher,
        config: Arc::new(config),
    };
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("serving HTTP")?;
    job_resumer.shutdown().await;
    import_worker.shutdown().await;
    mail_worker.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
