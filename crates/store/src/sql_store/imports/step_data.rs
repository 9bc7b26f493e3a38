//! How a step's rows reach its statements: the fields each statement reads, the structs that
//! carry a row's values, and their form on each backend. SQLite reads every statement's rows
//! as one JSONB array of arrays ([`jsonb`]); PostgreSQL reads JSON text objects, or one array
//! per column for the statements of [`super::step_rows::StepRows`].

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Serialize;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::PgTypeInfo;
use sqlx::sqlite::{SqliteArgumentValue, SqliteTypeInfo};
use usher_core::audit::AuditRecord;
use usher_core::clock::to_millis;
use usher_core::import::{ImportStep, ImportUpdate};
use usher_core::people::Profile;
use usher_core::store::{NewPerson, StoreResult};

use super::jsonb_rows::VALUE_COLUMNS;
use super::{jsonb, signed};
use crate::pool::Pool;
use crate::sql::DerivedColumns;
use crate::sql_store::backend;

/// `(field, PostgreSQL type)` of the rows a statement reads, in their order.
pub(super) type Fields = &'static [(&'static str, &'static str)];

/// A FROM item named `j` with one row per row of [`Rows`] bound to `$param`, its columns named
/// after `fields`; `j.ord` is each row's place, from 0, on SQLite, where the rows are read by
/// [`jsonb_rows`](super::jsonb_rows) (`usher_rows`).
pub(super) fn rows_from(pool: &Pool, param: usize, fields: Fields) -> String {
    match pool {
        Pool::Sqlite(_) => {
            assert!(
                fields.len() <= VALUE_COLUMNS,
                "usher_rows hands out {VALUE_COLUMNS} values a row"
            );
            let columns: Vec<String> = fields
                .iter()
                .enumerate()
                .map(|(i, (name, _))| format!("c{i} AS {name}"))
                .collect();
            format!(
                "(SELECT ord, {} FROM usher_rows(${param})) AS j",
                columns.join(", ")
            )
        }
        Pool::Postgres(_) => {
            let columns: Vec<String> = fields
                .iter()
                .map(|(name, kind)| format!("{name} {kind}"))
                .collect();
            format!(
                "json_to_recordset(${param}::json) AS j({})",
                columns.join(", ")
            )
        }
    }
}

/// How a backend's statements read a step's rows.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Form {
    /// SQLite: one JSONB array of arrays.
    Jsonb,
    /// PostgreSQL: one JSON array of objects.
    Json,
}

impl Form {
    pub(super) fn of(pool: &Pool) -> Self {
        match pool {
            Pool::Sqlite(_) => Self::Jsonb,
            Pool::Postgres(_) => Self::Json,
        }
    }
}

/// The rows of one statement of a step, as its backend reads them (see [`rows_from`]).
#[derive(Clone)]
pub(in crate::sql_store) enum Rows {
    /// SQLite: one JSONB array of arrays.
    Jsonb(Vec<u8>),
    /// PostgreSQL: one JSON array of objects.
    Json(String),
}

impl Rows {
    /// `rows` in `form`, or `None` when there are none.
    pub(super) fn of<T: Serialize>(
        form: Form,
        fields: Fields,
        rows: Vec<T>,
    ) -> StoreResult<Option<Self>> {
        if rows.is_empty() {
            return Ok(None);
        }
        let rows = match form {
            Form::Jsonb => Self::Jsonb(jsonb::rows(fields, &rows).map_err(backend)?),
            // Serialised straight from borrowed fields: no `serde_json::Value` per row.
            Form::Json => Self::Json(
                serde_json::to_string(&rows).map_err(|e| backend(format!("step rows: {e}")))?,
            ),
        };
        Ok(Some(rows))
    }
}

impl sqlx::Type<sqlx::Sqlite> for Rows {
    fn type_info() -> SqliteTypeInfo {
        <Vec<u8> as sqlx::Type<sqlx::Sqlite>>::type_info()
    }
}

impl<'q> sqlx::Encode<'q, sqlx::Sqlite> for Rows {
    fn encode_by_ref(
        &self,
        args: &mut Vec<SqliteArgumentValue<'q>>,
    ) -> Result<IsNull, BoxDynError> {
        // The connection's thread takes its own copy of every argument whatever is bound.
        args.push(match self {
            Self::Jsonb(bytes) => SqliteArgumentValue::Blob(Cow::Owned(bytes.clone())),
            Self::Json(text) => SqliteArgumentValue::Text(Cow::Owned(text.clone())),
        });
        Ok(IsNull::No)
    }
}

impl sqlx::Type<sqlx::Postgres> for Rows {
    fn type_info() -> PgTypeInfo {
        <String as sqlx::Type<sqlx::Postgres>>::type_info()
    }
}

impl sqlx::Encode<'_, sqlx::Postgres> for Rows {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        match self {
            Self::Json(text) => <&str as sqlx::Encode<sqlx::Postgres>>::encode(text.as_str(), buf),
            Self::Jsonb(_) => Err("JSONB rows are SQLite's, not PostgreSQL's".into()),
        }
    }
}

/// PostgreSQL: a FROM item named `j` with one row per element of the arrays bound to `$1`,
/// `$2`… (one per field, in the order of `fields`), its columns named after `fields`.
pub(super) fn unnest_rows(fields: Fields) -> String {
    let arrays: Vec<String> = fields
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| format!("${}::{kind}[]", i + 1))
        .collect();
    let names: Vec<&str> = fields.iter().map(|(name, _)| *name).collect();
    format!("unnest({}) AS j({})", arrays.join(", "), names.join(", "))
}

pub(super) const PERSON_FIELDS: Fields = &[
    ("username", "text"),
    ("first_name", "text"),
    ("last_name", "text"),
    ("email", "text"),
    ("email_key", "text"),
    ("first_name_key", "text"),
    ("last_name_key", "text"),
    ("search_text", "text"),
    ("password_hash", "text"),
    ("password_temporary", "boolean"),
    ("enabled", "boolean"),
    ("kind", "text"),
    ("source", "text"),
    ("super_user", "boolean"),
    ("created_at", "bigint"),
    ("position", "text"),
    ("organization", "text"),
    ("department", "text"),
    ("location", "text"),
    ("phone", "text"),
    ("manager", "text"),
    ("about_me", "text"),
    ("time_zone", "text"),
];

/// The columns an import changes on an existing person (never the password).
pub(super) const UPDATE_FIELDS: Fields = &[
    ("id", "bigint"),
    ("first_name", "text"),
    ("last_name", "text"),
    ("email", "text"),
    ("email_key", "text"),
    ("first_name_key", "text"),
    ("last_name_key", "text"),
    ("search_text", "text"),
    ("enabled", "boolean"),
    ("position", "text"),
    ("organization", "text"),
    ("department", "text"),
    ("location", "text"),
    ("phone", "text"),
    ("manager", "text"),
    ("about_me", "text"),
    ("time_zone", "text"),
    ("email_changed", "boolean"),
];

/// The columns of [`UPDATE_FIELDS`] an update writes: all but the id and the flag.
pub(super) fn update_columns() -> impl Iterator<Item = &'static str> {
    UPDATE_FIELDS[1..]
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| *n != "email_changed")
}

pub(super) const MEMBERSHIP_FIELDS: Fields =
    &[("username", "text"), ("grp", "text"), ("role", "text")];
pub(super) const NEW_MEMBERSHIP_FIELDS: Fields =
    &[("person_id", "bigint"), ("grp", "text"), ("role", "text")];

/// The fields of an audit entry, then `$extra`: each backend's step says more about whom an
/// entry is about.
macro_rules! audit_fields {
    ($($extra:expr),* $(,)?) => {
        &[
            ("at", "bigint"),
            ("actor", "text"),
            ("action", "text"),
            ("target", "text"),
            ("details", "text"),
            $($extra,)*
        ]
    };
}

pub(super) const AUDIT_FIELDS: Fields = audit_fields!();

/// PostgreSQL's audit entries also carry their person's id ([`StepPeople`]).
pub(super) const PG_AUDIT_FIELDS: Fields = audit_fields!(("target_id", "bigint"));

/// SQLite's audit entries also say whom they are about: `target_id`, a changed person's id, or
/// `new_person`, the place among the step's new people of the one created.
pub(super) const SQLITE_AUDIT_FIELDS: Fields =
    audit_fields!(("target_id", "bigint"), ("new_person", "bigint"));

pub(super) const ISSUE_FIELDS: Fields = &[
    ("line", "bigint"),
    ("username", "text"),
    ("field", "text"),
    ("severity", "text"),
    ("code", "text"),
    ("message", "text"),
];

pub(super) const ID_FIELDS: Fields = &[("id", "bigint")];
pub(super) const USERNAME_FIELDS: Fields = &[("username", "text")];

/// An audit entry on SQLite: the fields of [`SQLITE_AUDIT_FIELDS`].
#[derive(Serialize)]
struct AuditRow<'a> {
    at: i64,
    actor: Option<&'a str>,
    action: &'a str,
    target: Option<&'a str>,
    details: &'a str,
    target_id: Option<i64>,
    new_person: Option<usize>,
}

/// Whom a step's audit entry is about, among the step's people.
#[derive(Clone, Copy)]
pub(super) enum StepPerson {
    /// The one at this place among the step's new people.
    New(usize),
    /// The changed person with this id.
    Changed(i64),
}

/// The step's people by username, to tell whom each audit entry is about: its person's id is
/// then written with it, rather than looked up by username for each entry (on PostgreSQL,
/// half of a 2,000-entry insert's 28 ms; on SQLite one probe of the username index each).
/// Entries about anyone else are found by their target's text.
pub(super) struct StepPeople<'a>(HashMap<&'a str, StepPerson>);

impl<'a> StepPeople<'a> {
    pub(super) fn of(
        creates: impl IntoIterator<Item = &'a NewPerson>,
        updates: impl IntoIterator<Item = &'a ImportUpdate>,
    ) -> Self {
        let mut people: HashMap<&str, StepPerson> = creates
            .into_iter()
            .enumerate()
            .map(|(place, n)| (n.username.as_str(), StepPerson::New(place)))
            .collect();
        people.extend(
            updates
                .into_iter()
                .map(|u| (u.username.as_str(), StepPerson::Changed(u.id))),
        );
        Self(people)
    }

    /// Whom `audit` is about, when it is a `user.*` entry about one of the step's people.
    pub(super) fn of_entry(&self, audit: &AuditRecord) -> Option<StepPerson> {
        audit
            .target
            .as_deref()
            .filter(|_| audit.action.starts_with("user."))
            .and_then(|t| self.0.get(t).copied())
    }
}

/// The step's audit entries on SQLite, each with whom it is about ([`StepPeople`]); a new
/// person by place, the insert adding the step's first new id.
fn audit_rows<'a>(
    creates: impl IntoIterator<Item = &'a NewPerson>,
    updates: impl IntoIterator<Item = &'a ImportUpdate>,
    audits: impl IntoIterator<Item = &'a AuditRecord>,
) -> StoreResult<Option<Rows>> {
    let people = StepPeople::of(creates, updates);
    let rows = audits
        .into_iter()
        .map(|a| {
            let person = people.of_entry(a);
            AuditRow {
                at: to_millis(a.at),
                actor: a.actor.as_deref(),
                action: a.action,
                target: a.target.as_deref(),
                details: a.details.as_str(),
                target_id: match person {
                    Some(StepPerson::Changed(id)) => Some(id),
                    _ => None,
                },
                new_person: match person {
                    Some(StepPerson::New(place)) => Some(place),
                    _ => None,
                },
            }
        })
        .collect();
    Rows::of(Form::Jsonb, SQLITE_AUDIT_FIELDS, rows)
}

/// A created person: the fields of [`PERSON_FIELDS`].
#[derive(Serialize)]
struct PersonRow<'a> {
    username: &'a str,
    first_name: &'a str,
    last_name: &'a str,
    email: &'a str,
    #[serde(flatten)]
    derived: DerivedColumns,
    password_hash: Option<&'a str>,
    password_temporary: bool,
    enabled: bool,
    kind: &'a str,
    source: &'a str,
    super_user: bool,
    created_at: i64,
    #[serde(flatten)]
    profile: ProfileFields<'a>,
}

/// A changed person: the fields of [`UPDATE_FIELDS`].
#[derive(Serialize)]
struct UpdateRow<'a> {
    id: i64,
    first_name: &'a str,
    last_name: &'a str,
    email: &'a str,
    #[serde(flatten)]
    derived: DerivedColumns,
    enabled: bool,
    #[serde(flatten)]
    profile: ProfileFields<'a>,
    email_changed: bool,
}

#[derive(Serialize)]
struct ProfileFields<'a> {
    position: Option<&'a str>,
    organization: Option<&'a str>,
    department: Option<&'a str>,
    location: Option<&'a str>,
    phone: Option<&'a str>,
    manager: Option<&'a str>,
    about_me: Option<&'a str>,
    time_zone: Option<&'a str>,
}

impl<'a> From<&'a Profile> for ProfileFields<'a> {
    fn from(p: &'a Profile) -> Self {
        Self {
            position: p.position.as_deref(),
            organization: p.organization.as_deref(),
            department: p.department.as_deref(),
            location: p.location.as_deref(),
            phone: p.phone.as_deref(),
            manager: p.manager.as_deref(),
            about_me: p.about_me.as_deref(),
            time_zone: p.time_zone.as_deref(),
        }
    }
}

/// A membership granted by username: the fields of [`MEMBERSHIP_FIELDS`].
#[derive(Serialize)]
struct MembershipRow<'a> {
    username: &'a str,
    grp: &'a str,
    role: &'a str,
}

/// A new person's membership: the fields of [`NEW_MEMBERSHIP_FIELDS`].
#[derive(Serialize)]
struct NewMembershipRow<'a> {
    person_id: i64,
    grp: &'a str,
    role: &'a str,
}

/// The memberships of the people a step created, `(person id, group path, role)`, given the
/// ids their insert returned.
pub(super) fn new_memberships<'a>(
    step: &'a ImportStep,
    ids: &[(i64, String)],
) -> Vec<(i64, &'a str, &'a str)> {
    let ids: std::collections::HashMap<&str, i64> =
        ids.iter().map(|(id, u)| (u.as_str(), *id)).collect();
    step.creates
        .iter()
        .filter_map(|n| ids.get(n.username.as_str()).map(|id| (*id, n)))
        .flat_map(|(person_id, n)| {
            n.memberships
                .iter()
                .map(move |(group, role)| (person_id, group.as_str(), role.as_str()))
        })
        .collect()
}

/// [`new_memberships`] as the rows of SQLite's statement.
pub(super) fn new_membership_rows(
    step: &ImportStep,
    ids: &[(i64, String)],
) -> StoreResult<Option<Rows>> {
    let rows = new_memberships(step, ids)
        .into_iter()
        .map(|(person_id, grp, role)| NewMembershipRow {
            person_id,
            grp,
            role,
        })
        .collect();
    Rows::of(Form::Jsonb, NEW_MEMBERSHIP_FIELDS, rows)
}

/// A report line: the fields of [`ISSUE_FIELDS`].
#[derive(Serialize)]
struct IssueRow<'a> {
    line: i64,
    username: &'a str,
    field: &'a str,
    severity: &'a str,
    code: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct IdRow {
    id: i64,
}

#[derive(Serialize)]
struct UsernameRow<'a> {
    username: &'a str,
}

/// What [`super::SqlStore::prepare_rows`] makes of a step's new people, changed people and
/// audit entries ahead of its turn to commit ([`ImportStep::prepared`]).
pub(in crate::sql_store) enum PreparedStepRows {
    /// SQLite: their rows, encoded.
    Rows {
        people: Option<Rows>,
        updates: Option<Rows>,
        audits: Option<Rows>,
    },
    /// PostgreSQL: the derived columns of the new people; its arrays borrow the rest from the
    /// step.
    Columns { derived: Vec<DerivedColumns> },
}

impl PreparedStepRows {
    pub(super) fn of(step: &ImportStep) -> Option<&Self> {
        step.prepared.as_ref().and_then(|p| p.get::<Self>())
    }

    /// SQLite's rows of these new people, changes and audit entries.
    pub(super) fn sqlite(
        creates: &[&NewPerson],
        updates: &[&ImportUpdate],
        audits: &[&AuditRecord],
    ) -> StoreResult<Self> {
        Ok(Self::Rows {
            people: people_rows(Form::Jsonb, creates.iter().copied())?,
            updates: update_rows(Form::Jsonb, updates.iter().copied())?,
            audits: audit_rows(
                creates.iter().copied(),
                updates.iter().copied(),
                audits.iter().copied(),
            )?,
        })
    }
}

fn people_rows<'a>(
    form: Form,
    creates: impl IntoIterator<Item = &'a NewPerson>,
) -> StoreResult<Option<Rows>> {
    let people = creates
        .into_iter()
        .map(|n| PersonRow {
            username: &n.username,
            first_name: &n.first_name,
            last_name: &n.last_name,
            email: &n.email,
            derived: DerivedColumns::of(&n.username, &n.first_name, &n.last_name, &n.email),
            password_hash: n.password_hash.as_deref(),
            password_temporary: n.password_temporary,
            enabled: n.enabled,
            kind: n.kind.as_str(),
            source: n.source.as_str(),
            super_user: n.super_user,
            created_at: to_millis(n.created_at),
            profile: (&n.profile).into(),
        })
        .collect();
    Rows::of(form, PERSON_FIELDS, people)
}

fn update_rows<'a>(
    form: Form,
    updates: impl IntoIterator<Item = &'a ImportUpdate>,
) -> StoreResult<Option<Rows>> {
    let updates = updates
        .into_iter()
        .map(|u| {
            let n = &u.update;
            UpdateRow {
                id: u.id,
                first_name: &n.first_name,
                last_name: &n.last_name,
                email: &n.email,
                derived: DerivedColumns::of(&u.username, &n.first_name, &n.last_name, &n.email),
                enabled: n.enabled,
                profile: (&n.profile).into(),
                email_changed: u.email_changed,
            }
        })
        .collect();
    Rows::of(form, UPDATE_FIELDS, updates)
}

/// The rows of one step's statements: those prepared ahead when they were, the others built
/// before the transaction. The new people and the audit entries are left out where the
/// backend takes them as column arrays ([`super::step_rows::StepRows`]).
pub(super) struct StepData<'a> {
    pub(super) people: Option<Cow<'a, Rows>>,
    pub(super) added_memberships: Option<Rows>,
    pub(super) updates: Option<Cow<'a, Rows>>,
    pub(super) end_sessions: Option<Rows>,
    pub(super) audits: Option<Cow<'a, Rows>>,
    pub(super) issues: Option<Rows>,
    pub(super) invites: Option<Rows>,
}

impl<'a> StepData<'a> {
    pub(super) fn new(step: &'a ImportStep, pool: &Pool) -> StoreResult<Self> {
        let form = Form::of(pool);
        // The statements of `StepRows` read these rows on SQLite only (column arrays on
        // PostgreSQL).
        let step_rows_encoded = form == Form::Jsonb;
        let (people, updates, audits) = match PreparedStepRows::of(step) {
            Some(PreparedStepRows::Rows {
                people,
                updates,
                audits,
            }) => (
                people.as_ref().map(Cow::Borrowed),
                updates.as_ref().map(Cow::Borrowed),
                audits.as_ref().map(Cow::Borrowed),
            ),
            _ => (
                if step_rows_encoded {
                    people_rows(form, &step.creates)?.map(Cow::Owned)
                } else {
                    None
                },
                update_rows(form, &step.updates)?.map(Cow::Owned),
                if step_rows_encoded {
                    audit_rows(&step.creates, &step.updates, &step.audits)?.map(Cow::Owned)
                } else {
                    None
                },
            ),
        };
        let memberships = step
            .updates
            .iter()
            .flat_map(|u| u.add_memberships.iter().map(move |m| (&u.username, m)))
            .map(|(username, (group, role))| MembershipRow {
                username,
                grp: group,
                role,
            })
            .collect();
        let end_sessions = step
            .updates
            .iter()
            .filter(|u| u.end_sessions)
            .map(|u| IdRow { id: u.id })
            .collect();
        let issues = step
            .issues
            .iter()
            .map(|i| IssueRow {
                line: signed(i.line),
                username: &i.username,
                field: &i.field,
                severity: i.severity.as_str(),
                code: &i.code,
                message: &i.message,
            })
            .collect();
        let invites = step
            .invites
            .iter()
            .map(|u| UsernameRow { username: u })
            .collect();
        Ok(Self {
            people,
            added_memberships: Rows::of(form, MEMBERSHIP_FIELDS, memberships)?,
            updates,
            end_sessions: Rows::of(form, ID_FIELDS, end_sessions)?,
            audits,
            issues: Rows::of(form, ISSUE_FIELDS, issues)?,
            invites: Rows::of(form, USERNAME_FIELDS, invites)?,
        })
    }
}
