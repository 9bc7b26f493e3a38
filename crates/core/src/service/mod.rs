//! Application services: the use cases an administrator, a person or the operator performs,
//! written once against the [`Store`] trait and a [`Clock`]. HTTP handlers and CLI commands
//! translate their input, call one of these, and translate the answer back.

mod access;
mod audit_log;
mod bulk;
mod imports;
mod invitations;
mod people;
mod search;
mod spaces;
mod stats;

use std::sync::Arc;

use time::Duration;

use tokio::sync::Notify;

use crate::clock::Clock;
use crate::mail::Composer;
use crate::people::PasswordPolicy;
use crate::store::Store;

pub use access::{Authenticated, ClientThrottle, LoginError, LoginSuccess};
pub use bulk::{
    BulkAction, BulkOutcome, BulkResult, Selection, SkipReason, Skipped, BULK_SYNC_LIMIT,
};
pub use imports::{
    ChunkSource, ImportUpload, IssueSink, RunOptions, RunOutcome, UploadError, UploadOptions,
    CHUNK_BYTES,
};
pub use invitations::{check_invitable, LinkHolder};
pub use people::{CreatePerson, PatchPerson, Suggestion};
pub use spaces::{
    parse_space_name, space_actions, RegisterInput, Registration, SpaceInviteOutcome,
};
pub use stats::Stats;

/// Who is acting. Built by the access layer from a session or an API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub id: i64,
    pub username: String,
    pub admin: bool,
    pub super_user: bool,
}

impl Actor {
    /// `person` acting, an administrator or not.
    pub fn of(person: &crate::people::Person, admin: bool) -> Self {
        Self {
            id: person.id,
            username: person.username.clone(),
            admin,
            super_user: person.super_user,
        }
    }

    pub fn require_admin(&self) -> Result<(), crate::ServiceError> {
        if self.admin {
            Ok(())
        } else {
            Err(crate::ServiceError::forbidden(
                "forbidden",
                "This needs an administrator.",
            ))
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub password_policy: PasswordPolicy,
    pub session_ttl: Duration,
    /// Lifetime of invitation and reset links.
    pub link_ttl: Duration,
    /// Base of the links in emails, without a trailing slash.
    pub public_url: String,
    pub platform_name: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            password_policy: PasswordPolicy::default(),
            session_ttl: Duration::hours(12),
            link_ttl: Duration::hours(24),
            public_url: "http://127.0.0.1:8080".into(),
            platform_name: "Usher".into(),
        }
    }
}

/// The services, sharing one store, one clock and one mail composer.
#[derive(Clone)]
pub struct Usher {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<Settings>,
    pub composer: Arc<dyn Composer>,
    /// Poked whenever a message is queued, so that the outbox worker sends it at once.
    pub outbox_signal: Arc<Notify>,
    /// Poked whenever an import is queued, so that the import worker starts it at once.
    pub import_signal: Arc<Notify>,
    client_throttle: Arc<ClientThrottle>,
    reset_throttle: Arc<ClientThrottle>,
    people_index: Arc<search::PeopleIndex>,
}

impl Usher {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        settings: Settings,
        composer: Arc<dyn Composer>,
    ) -> Self {
        Self {
            store,
            clock,
            settings: Arc::new(settings),
            composer,
            outbox_signal: Arc::new(Notify::new()),
            import_signal: Arc::new(Notify::new()),
            client_throttle: Arc::new(ClientThrottle::new(30)),
            reset_throttle: Arc::new(ClientThrottle::new(10)),
            people_index: Arc::default(),
        }
    }
}

/// Runs CPU-heavy work (password hashing and checking) off the async runtime, on a fixed pool
/// of one thread per core. A fixed pool, not tokio's blocking pool, because each Argon2 hash
/// takes 19 MiB: hundreds of short-lived blocking threads would each keep that much in their
/// allocator arena (seen: 3 GiB of RSS under 8 concurrent creators), and more hashes in flight
/// than cores only queue anyway.
pub(crate) async fn off_runtime<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, crate::ServiceError> {
    finished(submit(f)).await
}

/// Starts `f` on the hashing pool at once; [`finished`] waits for its result. Submitting
/// several before waiting runs them in parallel.
pub(crate) fn submit<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> tokio::sync::oneshot::Receiver<T> {
    let (done, result) = tokio::sync::oneshot::channel();
    hashing_pool().run(Box::new(move || {
        let _ = done.send(f());
    }));
    result
}

pub(crate) async fn finished<T>(
    result: tokio::sync::oneshot::Receiver<T>,
) -> Result<T, crate::ServiceError> {
    result
        .await
        .map_err(|_| crate::ServiceError::Internal("a hashing task failed".into()))
}

type Job = Box<dyn FnOnce() + Send>;

/// How long a hashing thread waits for work before giving its Argon2 memory back.
const IDLE_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// One thread per core, fed through a channel.
struct HashingPool {
    jobs: std::sync::Mutex<std::sync::mpsc::Sender<Job>>,
}

impl HashingPool {
    fn start() -> Self {
        let (sender, receiver) = std::sync::mpsc::channel::<Job>();
        let receiver = Arc::new(std::sync::Mutex::new(receiver));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        for n in 0..cores {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("usher-hash-{n}"))
                .spawn(move || loop {
                    let job = match receiver.lock() {
                        Ok(r) => r.recv_timeout(IDLE_AFTER),
                        Err(_) => return,
                    };
                    match job {
                        // A panicking job drops its sender: the caller sees an error, the
                        // thread lives on.
                        Ok(job) => {
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                            crate::people::release_hashing_memory();
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                })
                .expect("start a hashing thread");
        }
        Self {
            jobs: std::sync::Mutex::new(sender),
        }
    }

    fn run(&self, job: Job) {
        if let Ok(jobs) = self.jobs.lock() {
            let _ = jobs.send(job);
        }
    }
}

fn hashing_pool() -> &'static HashingPool {
    static POOL: std::sync::OnceLock<HashingPool> = std::sync::OnceLock::new();
    POOL.get_or_init(HashingPool::start)
}
