//! Application services: the use cases an administrator, a person or the operator performs,
//! written once against the [`Store`] trait and a [`Clock`]. HTTP handlers and CLI commands
//! translate their input, call one of these, and translate the answer back.

mod access;
mod audit_log;
mod bulk;
mod imports;
mod invitations;
mod people;
mod spaces;

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

/// Who is acting. Built by the access layer from a session or an API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub id: i64,
    pub username: String,
    pub admin: bool,
    pub super_user: bool,
}

impl Actor {
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
        }
    }
}

/// Runs CPU-heavy work (password hashing) on the blocking pool, so that it never stalls the
/// async runtime and spreads over every core.
pub(crate) async fn off_runtime<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, crate::ServiceError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| crate::ServiceError::Internal(format!("blocking task failed: {e}")))
}
