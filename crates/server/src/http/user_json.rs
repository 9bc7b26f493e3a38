//! The user as the API shows it (interface: "User JSON").

use serde::Serialize;
use time::OffsetDateTime;
use usher_core::mail::DeliveryState;
use usher_core::people::{Enrollment, Person, PersonType, Profile, Source};

#[derive(Serialize)]
pub struct UserJson {
    pub id: i64,
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub enabled: bool,
    #[serde(rename = "type")]
    pub kind: PersonType,
    pub source: Source,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_login_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub invited_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub joined_at: Option<OffsetDateTime>,
    pub enrollment: Enrollment,
    pub invitation_delivery: Option<DeliveryState>,
    pub super_user: bool,
    pub profile: Profile,
}

impl From<Person> for UserJson {
    fn from(p: Person) -> Self {
        Self {
            enrollment: p.enrollment(),
            invitation_delivery: p.invitation_delivery.as_ref().map(|d| d.state),
            id: p.id,
            username: p.username,
            first_name: p.first_name,
            last_name: p.last_name,
            email: p.email,
            enabled: p.enabled,
            kind: p.kind,
            source: p.source,
            created_at: p.created_at,
            last_login_at: p.last_login_at,
            invited_at: p.invited_at,
            joined_at: p.joined_at,
            super_user: p.super_user,
            profile: p.profile,
        }
    }
}

/// RFC 3339 in UTC, or empty.
pub fn rfc3339(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
    .unwrap_or_default()
}
