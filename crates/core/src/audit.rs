//! The audit log: who did what to whom, when, with the before and after of what changed.

use serde::Serialize;
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
    pub details: AuditDetails,
}

/// An entry's details as the JSON text the store keeps, rendered once where the entry is made.
/// An import writes one entry per row: rendering its details straight from the row
/// ([`AuditDetails::of`]) spares it a `serde_json::Value` tree per row, built, rendered and
/// freed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditDetails(String);

impl AuditDetails {
    /// The JSON text of `details`.
    pub fn of(details: &impl Serialize) -> Self {
        // Serialising plain structs and maps to a string cannot fail.
        Self(serde_json::to_string(details).unwrap_or_else(|_| "null".into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The details as a JSON value, as they read back from the store.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }
}

impl From<Value> for AuditDetails {
    fn from(details: Value) -> Self {
        Self(details.to_string())
    }
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
