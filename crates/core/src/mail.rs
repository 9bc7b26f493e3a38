//! Email as the domain sees it: which messages exist ([`Template`]), what fills them
//! ([`MailContext`]), and the [`Composer`] that turns both into a [`ComposedMail`]. Rendering
//! (templates) and delivery (SMTP, files) belong to the server; the services only decide what
//! to send and commit it to the outbox with the change that causes it.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Template {
    /// "Join {platform}": a link to choose a password.
    Invitation,
    /// An external person's link to create their account (spaces).
    Registration,
    /// "Reset your password".
    PasswordReset,
    /// Sent to the old address when someone else changed a person's email.
    EmailChanged,
    /// Sent when an administrator set a person's password.
    PasswordChangedByAdmin,
}

impl Template {
    pub const ALL: &'static [Template] = &[
        Self::Invitation,
        Self::Registration,
        Self::PasswordReset,
        Self::EmailChanged,
        Self::PasswordChangedByAdmin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invitation => "invitation",
            Self::Registration => "registration",
            Self::PasswordReset => "password_reset",
            Self::EmailChanged => "email_changed",
            Self::PasswordChangedByAdmin => "password_changed_by_admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.as_str() == s)
    }
}

/// What a message may mention. Fields a template does not use stay empty.
#[derive(Debug, Clone, Default)]
pub struct MailContext {
    pub platform_name: String,
    /// The recipient's name, or empty when unknown (registration).
    pub first_name: String,
    pub last_name: String,
    pub username: String,
    /// The clear link of an invitation, registration or reset.
    pub link: Option<String>,
    /// When the link stops working.
    pub expires_at: Option<OffsetDateTime>,
    /// For `EmailChanged`: the new address.
    pub new_email: Option<String>,
    /// For `Registration`: the space the person is invited to.
    pub space_name: Option<String>,
}

/// A rendered message, ready for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposedMail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Renders templates. Implemented by the server (askama templates).
pub trait Composer: Send + Sync + 'static {
    fn compose(&self, template: Template, context: &MailContext) -> ComposedMail;
}

/// Delivery state of an outbox message (and so of a person's last invitation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Queued,
    Sent,
    /// Given up after retrying for the whole retry period.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(Self::Queued),
            "sent" => Some(Self::Sent),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// How the delivery of one message stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub state: DeliveryState,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub sent_at: Option<OffsetDateTime>,
}

/// A message for the outbox.
#[derive(Debug, Clone)]
pub struct NewOutboxMessage {
    pub recipient: String,
    pub template: Template,
    pub mail: ComposedMail,
    /// The person it concerns, if any.
    pub person_id: Option<i64>,
    pub created_at: OffsetDateTime,
}

/// A message claimed from the outbox for delivery.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub id: i64,
    pub recipient: String,
    pub template: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Attempts made before this one.
    pub attempts: u32,
    pub created_at: OffsetDateTime,
}

/// Retry schedule: the first retry within a minute, then doubling up to an hour between
/// tries; a message is given up once it has been failing for a day.
pub fn next_attempt(
    created_at: OffsetDateTime,
    attempts_made: u32,
    now: OffsetDateTime,
) -> Option<OffsetDateTime> {
    if now - created_at >= time::Duration::hours(24) {
        return None;
    }
    let exponent = attempts_made.saturating_sub(1).min(7);
    let delay = (30i64 << exponent).min(3600);
    Some(now + time::Duration::seconds(delay))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn retries_start_within_a_minute_grow_and_stop_after_a_day() {
        let t0 = datetime!(2026-01-01 0:00 UTC);
        assert_eq!(
            next_attempt(t0, 1, t0),
            Some(t0 + time::Duration::seconds(30))
        );
        assert_eq!(
            next_attempt(t0, 2, t0),
            Some(t0 + time::Duration::seconds(60))
        );
        assert_eq!(
            next_attempt(t0, 5, t0),
            Some(t0 + time::Duration::seconds(480))
        );
        assert_eq!(
            next_attempt(t0, 20, t0),
            Some(t0 + time::Duration::hours(1))
        );
        assert_eq!(next_attempt(t0, 3, t0 + time::Duration::hours(24)), None);
    }

    #[test]
    fn template_names_round_trip() {
        for t in Template::ALL {
            assert_eq!(Template::parse(t.as_str()), Some(*t));
        }
    }
}
