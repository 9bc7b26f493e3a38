//! Rows as both backends return them, and their conversion into domain values.

use usher_core::audit::AuditEntry;
use usher_core::clock::{from_millis, to_millis};
use usher_core::mail::{Delivery, DeliveryState};
use usher_core::people::{Person, PersonType, Profile, Source};
use usher_core::store::NewPerson;

use crate::sql_store::backend;

/// A person as read, from a row or (on SQLite, see [`crate::sql::people_as_json_array`]) from a
/// JSON array of the same columns in the same order.
#[derive(sqlx::FromRow, serde::Deserialize)]
pub struct PersonRow {
    id: i64,
    username: String,
    first_name: String,
    last_name: String,
    email: String,
    #[serde(deserialize_with = "sqlite_bool")]
    enabled: bool,
    kind: String,
    source: String,
    #[serde(deserialize_with = "sqlite_bool")]
    super_user: bool,
    created_at: i64,
    last_login_at: Option<i64>,
    invited_at: Option<i64>,
    joined_at: Option<i64>,
    #[serde(deserialize_with = "sqlite_bool")]
    has_password: bool,
    #[serde(deserialize_with = "sqlite_bool")]
    password_temporary: bool,
    position: Option<String>,
    organization: Option<String>,
    department: Option<String>,
    location: Option<String>,
    phone: Option<String>,
    manager: Option<String>,
    about_me: Option<String>,
    time_zone: Option<String>,
    invitation_state: Option<String>,
    invitation_attempts: Option<i64>,
    invitation_error: Option<String>,
    invitation_sent_at: Option<i64>,
}

/// SQLite stores a boolean as the integer 0 or 1, and its JSON functions write it so.
fn sqlite_bool<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    let n: i64 = serde::Deserialize::deserialize(deserializer)?;
    Ok(n != 0)
}

impl TryFrom<PersonRow> for Person {
    type Error = usher_core::store::StoreError;

    fn try_from(r: PersonRow) -> Result<Self, Self::Error> {
        Ok(Person {
            id: r.id,
            kind: PersonType::parse(&r.kind)
                .ok_or_else(|| backend(format!("unknown person type {:?}", r.kind)))?,
            source: Source::parse(&r.source)
                .ok_or_else(|| backend(format!("unknown source {:?}", r.source)))?,
            username: r.username,
            first_name: r.first_name,
            last_name: r.last_name,
            email: r.email,
            enabled: r.enabled,
            super_user: r.super_user,
            created_at: from_millis(r.created_at),
            last_login_at: r.last_login_at.map(from_millis),
            invited_at: r.invited_at.map(from_millis),
            joined_at: r.joined_at.map(from_millis),
            has_password: r.has_password,
            password_temporary: r.password_temporary,
            profile: Profile {
                position: r.position,
                organization: r.organization,
                department: r.department,
                location: r.location,
                phone: r.phone,
                manager: r.manager,
                about_me: r.about_me,
                time_zone: r.time_zone,
            },
            invitation_delivery: r
                .invitation_state
                .as_deref()
                .and_then(DeliveryState::parse)
                .map(|state| Delivery {
                    state,
                    attempts: r
                        .invitation_attempts
                        .unwrap_or(0)
                        .clamp(0, i64::from(u32::MAX)) as u32,
                    last_error: r.invitation_error,
                    sent_at: r.invitation_sent_at.map(from_millis),
                }),
        })
    }
}

/// The person `new` became when its insert returned `id`: what reading the row back would
/// give (times kept to the millisecond, as stored), without that read. A creation is one of
/// the writes an administrator waits on, and on SQLite each statement is a hand-over to the
/// connection's thread and back.
pub fn inserted_person(new: &NewPerson, id: i64, joined_at: Option<i64>) -> Person {
    Person {
        id,
        username: new.username.clone(),
        first_name: new.first_name.clone(),
        last_name: new.last_name.clone(),
        email: new.email.clone(),
        enabled: new.enabled,
        kind: new.kind,
        source: new.source,
        super_user: new.super_user,
        created_at: from_millis(to_millis(new.created_at)),
        // A person's first login is what sets it; joining by a space's link does both.
        last_login_at: joined_at.map(from_millis),
        invited_at: None,
        joined_at: joined_at.map(from_millis),
        has_password: new.password_hash.is_some(),
        password_temporary: new.password_temporary,
        profile: new.profile.clone(),
        invitation_delivery: None,
    }
}

#[derive(sqlx::FromRow)]
pub struct AuditRow {
    id: i64,
    at: i64,
    actor: Option<String>,
    action: String,
    target: Option<String>,
    details: String,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        AuditEntry {
            id: r.id,
            at: from_millis(r.at),
            actor: r.actor,
            action: r.action,
            target: r.target,
            details: serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null),
        }
    }
}
