//! The audit log: who did what to whom, when, with the before and after of what changed.

use serde_json::Value;
use time::OffsetDateTime;

/// An entry to write, in the same transaction as the change it records.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub at: OffsetDateTime,
    /// The acting username, or `None` for the system (first start, shell commands).
    pub actor: Option<String>,
    pub action: &'static str,
    pub target: Option<String>,
    pub details: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: i64,
    pub at: OffsetDateTime,
    pub actor: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub details: Value,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub target: Option<String>,
    pub action: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    pub limit: u32,
    pub offset: u64,
}

/// Action names, kept in one place so filters and pages agree.
pub mod actions {
    pub const USER_CREATE: &str = "user.create";
    pub const USER_UPDATE: &str = "user.update";
    pub const USER_DISABLE: &str = "user.disable";
    pub const USER_ENABLE: &str = "user.enable";
    pub const USER_DELETE: &str = "user.delete";
    pub const USER_PASSWORD_SET: &str = "user.password_set";
    pub const USER_INVITE: &str = "user.invite";
    pub const USER_JOIN: &str = "user.join";
    pub const USER_PASSWORD_RESET: &str = "user.password_reset";
    pub const TOKEN_CREATE: &str = "token.create";
    /// A CSV import was submitted (its people get their own `user.*` entries).
    pub const IMPORT_SUBMIT: &str = "import.submit";
    /// A CSV import ended, with its counts.
    pub const IMPORT_FINISH: &str = "import.finish";
    pub const ALL: &[&str] = &[
        USER_CREATE,
        USER_UPDATE,
        USER_DISABLE,
        USER_ENABLE,
        USER_DELETE,
        USER_PASSWORD_SET,
        USER_INVITE,
        USER_JOIN,
        USER_PASSWORD_RESET,
        TOKEN_CREATE,
        IMPORT_SUBMIT,
        IMPORT_FINISH,
    ];
}
