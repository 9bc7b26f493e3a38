//! SQL text both backends understand, and the builder of search conditions.

use usher_core::query::{EnrollmentFilter, Sort, SortColumn, UserFilter};

pub const PERSON_COLUMNS: &str = "id, username, first_name, last_name, email, enabled, kind, \
    source, super_user, created_at, last_login_at, invited_at, joined_at, \
    password_hash IS NOT NULL AS has_password, password_temporary, position, organization, \
    department, location, phone, manager, about_me, time_zone, invitation_state, \
    invitation_attempts, invitation_error, invitation_sent_at";

/// SQLite: a query of one row and one column, the rows of `select` (a query of
/// [`PERSON_COLUMNS`]) as one JSON array of arrays, each in the order of those columns (that of
/// [`crate::rows::PersonRow`]'s fields). sqlx hands each SQLite row over from the connection's
/// thread on its own, a cost that dominates a read of thousands of people (an import's lookup
/// of 1,000 people: 18–22 ms as rows); one text is handed over once.
pub fn people_as_json_array(select: &str) -> String {
    let names: Vec<&str> = PERSON_COLUMNS
        .split(',')
        .filter_map(|column| column.split_whitespace().last())
        .collect();
    format!(
        "SELECT json_group_array(json_array({})) FROM ({select})",
        names.join(", ")
    )
}

/// People with the delivery state of their last invitation (a view joining the outbox).
pub const PEOPLE_VIEW: &str = "people_with_delivery";

/// The id of the person an audit entry of `action` is about, its `target` being their username
/// (every `user.*` action's is), or NULL: the entry is then found by its target's text
/// (migration `..09`). Both arguments are SQL expressions.
pub fn audit_target_person(action: &str, target: &str) -> String {
    format!("(SELECT tp.id FROM people tp WHERE tp.username = {target} AND {action} LIKE 'user.%')")
}

pub const INSERT_AUDIT: &str = "INSERT INTO audit_log (at, actor, action, target, target_id, \
    details) VALUES ($1, $2, $3, $4, \
    (SELECT tp.id FROM people tp WHERE tp.username = $4 AND $3 LIKE 'user.%'), $5)";

pub const INSERT_MESSAGE: &str = "INSERT INTO outbox (recipient, template, subject, body_text, \
    body_html, person_id, created_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
    RETURNING id";

/// Writes an [`usher_core::audit::AuditRecord`] with any executor of either backend, inside
/// the caller's transaction.
macro_rules! insert_audit {
    ($executor:expr, $audit:expr) => {
        sqlx::query($crate::sql::INSERT_AUDIT)
            .bind(::usher_core::clock::to_millis($audit.at))
            .bind($audit.actor.clone())
            .bind($audit.action)
            .bind($audit.target.clone())
            .bind($audit.details.as_str())
            .execute($executor)
            .await
            .map(|_| ())
            .map_err($crate::sql_store::db_error)
    };
}
pub(crate) use insert_audit;

/// Inserts a [`usher_core::mail::NewOutboxMessage`] with any executor of either backend,
/// returning its id.
macro_rules! insert_message {
    ($executor:expr, $m:expr) => {
        sqlx::query_scalar::<_, i64>($crate::sql::INSERT_MESSAGE)
            .bind(&$m.recipient)
            .bind($m.template.as_str())
            .bind(&$m.mail.subject)
            .bind(&$m.mail.text)
            .bind(&$m.mail.html)
            .bind($m.person_id)
            .bind(::usher_core::clock::to_millis($m.created_at))
            .fetch_one($executor)
            .await
            .map_err($crate::sql_store::db_error)
    };
}
pub(crate) use insert_message;

/// The columns the store derives from a person's username, names and email (see the store
/// contract): the lower-cased email that keeps addresses unique, the folded names to sort by,
/// and the folded text to search.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DerivedColumns {
    pub email_key: String,
    pub first_name_key: String,
    pub last_name_key: String,
    pub search_text: String,
}

impl DerivedColumns {
    pub fn of_new(new: &usher_core::store::NewPerson) -> Self {
        Self::of(&new.username, &new.first_name, &new.last_name, &new.email)
    }

    pub fn of(username: &str, first_name: &str, last_name: &str, email: &str) -> Self {
        Self {
            email_key: email.to_lowercase(),
            first_name_key: usher_core::fold::fold(first_name),
            last_name_key: usher_core::fold::fold(last_name),
            search_text: usher_core::fold::search_text(username, first_name, last_name, email),
        }
    }
}

/// The insert of a [`usher_core::store::NewPerson`]'s row, `$1`…`$24` (`$24`: the joining
/// time, also the last login), without its RETURNING clause. A reserved username inserts
/// nothing: checked in the same statement.
const INSERT_PERSON_ROW: &str = "INSERT INTO people (username, first_name, last_name, email, \
    email_key, first_name_key, last_name_key, search_text, password_hash, password_temporary, \
    enabled, kind, source, super_user, created_at, position, organization, department, \
    location, phone, manager, about_me, time_zone, last_login_at, joined_at) \
    SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
    $19, $20, $21, $22, $23, $24, $24 \
    WHERE NOT EXISTS (SELECT 1 FROM deleted_usernames WHERE username = $1)";

/// The placeholders from `first` on: `(group, role)` pairs, then the audit entry's five
/// values.
fn membership_and_audit_placeholders(
    first: usize,
    memberships: usize,
) -> (Vec<(usize, usize)>, [usize; 5]) {
    let pairs = (0..memberships)
        .map(|k| (first + 2 * k, first + 2 * k + 1))
        .collect();
    let audit = first + 2 * memberships;
    (pairs, std::array::from_fn(|i| audit + i))
}

/// SQLite: the person's row, their memberships and the audit entry as statements run in turn in
/// one call (sqlx runs each statement of a text, `$N` being the N-th argument in every one),
/// answering the new id from the first; none when the username is reserved (and what the other
/// statements wrote is rolled back with the transaction). An unknown group gives a NULL group
/// id, which fails its statement.
pub fn insert_person_sqlite(memberships: usize) -> String {
    let (pairs, [at, actor, action, target, details]) =
        membership_and_audit_placeholders(25, memberships);
    let mut sql = format!("{INSERT_PERSON_ROW} RETURNING id; ");
    for (group, role) in pairs {
        sql.push_str(&format!(
            "INSERT INTO memberships (person_id, group_id, role) \
             SELECT p.id, (SELECT g.id FROM user_groups g WHERE g.path = ${group}), ${role} \
             FROM people p WHERE p.username = $1; "
        ));
    }
    sql.push_str(&format!(
        "INSERT INTO audit_log (at, actor, action, target, target_id, details) \
         VALUES (${at}, ${actor}, ${action}, ${target}, {}, ${details})",
        audit_target_person(&format!("${action}"), &format!("${target}"))
    ));
    sql
}

/// PostgreSQL: the person's row, their memberships and the audit entry in one statement
/// (data-modifying CTEs), answering the new id and how many memberships were granted; no row
/// when the username is reserved.
pub fn insert_person_postgres(memberships: usize) -> String {
    let (pairs, [at, actor, action, target, details]) =
        membership_and_audit_placeholders(25, memberships);
    let (memberships_cte, granted) = if pairs.is_empty() {
        (String::new(), "0::bigint")
    } else {
        let values: Vec<String> = pairs
            .iter()
            .map(|(group, role)| format!("(${group}::text, ${role}::text)"))
            .collect();
        (
            format!(
                // An unknown group gives a NULL group id, which fails the whole statement:
                // nothing of the person is left, without a transaction around it.
                "m AS (INSERT INTO memberships (person_id, group_id, role) \
                 SELECT p.id, (SELECT g.id FROM user_groups g WHERE g.path = r.grp), r.role \
                 FROM p CROSS JOIN (VALUES {}) AS r (grp, role) RETURNING 1), ",
                values.join(", ")
            ),
            "(SELECT count(*) FROM m)",
        )
    };
    format!(
        "WITH p AS ({INSERT_PERSON_ROW} RETURNING id), {memberships_cte}\
         a AS (INSERT INTO audit_log (at, actor, action, target, target_id, details) \
               SELECT ${at}, ${actor}, ${action}, ${target}, p.id, ${details} FROM p) \
         SELECT p.id, {granted} AS granted FROM p"
    )
}

/// Inserts a [`usher_core::store::NewPerson`] (its row with the derived search columns, and its
/// memberships) and its audit entry with any executor of either backend, inside the caller's
/// transaction, and evaluates to its id. Refuses a reserved username. `$joined_at`
/// (milliseconds, or `None`) sets the last login and the joining time of someone who joins as
/// they are created.
///
/// A creation is a write an administrator waits on: it takes one call to the database on
/// either backend.
macro_rules! insert_new_person {
    ($tx:ident, $new:expr, $joined_at:expr, $audit:expr) => {{
        let new: &::usher_core::store::NewPerson = $new;
        let joined_at: Option<i64> = $joined_at;
        let audit: &::usher_core::audit::AuditRecord = $audit;
        let derived = $crate::sql::DerivedColumns::of(
            &new.username,
            &new.first_name,
            &new.last_name,
            &new.email,
        );
        // The person's row: `$1`…`$24` of either backend's statement.
        macro_rules! bind_row {
            ($query:expr) => {{
                let query = $crate::sql::bind_derived!(
                    $query
                        .bind(&new.username)
                        .bind(&new.first_name)
                        .bind(&new.last_name)
                        .bind(&new.email),
                    derived
                );
                $crate::sql::bind_profile!(
                    query
                        .bind(&new.password_hash)
                        .bind(new.password_temporary)
                        .bind(new.enabled)
                        .bind(new.kind.as_str())
                        .bind(new.source.as_str())
                        .bind(new.super_user)
                        .bind(::usher_core::clock::to_millis(new.created_at)),
                    &new.profile
                )
                .bind(joined_at)
            }};
        }
        // The memberships' pairs, then the audit entry: the placeholders after the row.
        macro_rules! bind_rest {
            ($query:expr) => {{
                let mut query = $query;
                for (group, role) in &new.memberships {
                    query = query.bind(group).bind(role);
                }
                query
                    .bind(::usher_core::clock::to_millis(audit.at))
                    .bind(audit.actor.clone())
                    .bind(audit.action)
                    .bind(audit.target.clone())
                    .bind(audit.details.as_str())
            }};
        }
        let reserved = || {
            ::usher_core::store::StoreError::Conflict(
                ::usher_core::store::Conflict::UsernameReserved,
            )
        };
        let unknown_group =
            || $crate::sql_store::backend(format!("unknown group among {:?}", new.memberships));
        let wanted = new.memberships.len() as i64;
        if $crate::sql_store::runs_several_statements_per_call(&*$tx) {
            let sql = $crate::sql::insert_person_sqlite(new.memberships.len());
            // Every statement must run: `fetch_all`, not `fetch_optional`, which would stop
            // at the first row.
            let ids: Vec<i64> = bind_rest!(bind_row!(sqlx::query_scalar(&sql)))
                .fetch_all(&mut *$tx)
                .await
                .map_err($crate::sql_store::db_error)?;
            ids.first().copied().ok_or_else(reserved)?
        } else {
            let sql = $crate::sql::insert_person_postgres(new.memberships.len());
            let row: Option<(i64, i64)> = bind_rest!(bind_row!(sqlx::query_as(&sql)))
                .fetch_optional(&mut *$tx)
                .await
                .map_err($crate::sql_store::db_error)?;
            let (id, granted) = row.ok_or_else(reserved)?;
            if granted != wanted {
                return Err(unknown_group());
            }
            id
        }
    }};
}
pub(crate) use insert_new_person;

/// Binds the four [`DerivedColumns`] in their column order (email key, first and last name
/// keys, search text) to the next placeholders of `$query`.
macro_rules! bind_derived {
    ($query:expr, $derived:expr) => {{
        let derived: $crate::sql::DerivedColumns = $derived;
        $query
            .bind(derived.email_key)
            .bind(derived.first_name_key)
            .bind(derived.last_name_key)
            .bind(derived.search_text)
    }};
}
pub(crate) use bind_derived;

/// Binds the eight fields of a [`usher_core::people::Profile`] in their column order
/// (position, organization, department, location, phone, manager, about me, time zone).
macro_rules! bind_profile {
    ($query:expr, $profile:expr) => {{
        let profile: &::usher_core::people::Profile = $profile;
        $query
            .bind(&profile.position)
            .bind(&profile.organization)
            .bind(&profile.department)
            .bind(&profile.location)
            .bind(&profile.phone)
            .bind(&profile.manager)
            .bind(&profile.about_me)
            .bind(&profile.time_zone)
    }};
}
pub(crate) use bind_profile;

/// A value bound to a placeholder of dynamically built SQL.
#[derive(Debug, Clone)]
pub enum Bind {
    Text(String),
    Bool(bool),
    Int(i64),
}

/// Binds a list of [`Bind`] values to a query of either backend.
macro_rules! bind_all {
    ($query:expr, $binds:expr) => {{
        let mut q = $query;
        for b in $binds {
            q = match b {
                $crate::sql::Bind::Text(v) => q.bind(v.clone()),
                $crate::sql::Bind::Bool(v) => q.bind(*v),
                $crate::sql::Bind::Int(v) => q.bind(*v),
            };
        }
        q
    }};
}
pub(crate) use bind_all;

/// Collects conditions and their values, numbering placeholders as it goes.
#[derive(Default)]
pub struct Conditions {
    clauses: Vec<String>,
    pub binds: Vec<Bind>,
}

impl Conditions {
    /// Adds a clause whose `?` is replaced by the next placeholder.
    pub fn push(&mut self, clause: &str, value: Bind) {
        self.binds.push(value);
        let placeholder = format!("${}", self.binds.len());
        self.clauses.push(clause.replace('?', &placeholder));
    }

    pub fn push_plain(&mut self, clause: &str) {
        self.clauses.push(clause.to_owned());
    }

    pub fn next_placeholder(&self) -> String {
        format!("${}", self.binds.len() + 1)
    }

    pub fn where_clause(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }
}

/// Escapes LIKE wildcards so that a search for `50%` finds that text.
pub fn like_contains(word: &str) -> String {
    let mut out = String::with_capacity(word.len() + 2);
    out.push('%');
    for c in word.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// The WHERE conditions of a people search: every word contained, every filter matched.
pub fn person_conditions(filter: &UserFilter) -> Conditions {
    let mut c = Conditions::default();
    if let Some(q) = &filter.q {
        for word in usher_core::fold::search_words(q) {
            c.push(
                "search_text LIKE ? ESCAPE '\\'",
                Bind::Text(like_contains(&word)),
            );
        }
    }
    if let Some(enabled) = filter.enabled {
        c.push("enabled = ?", Bind::Bool(enabled));
    }
    match filter.connected {
        Some(true) => c.push_plain("last_login_at IS NOT NULL"),
        Some(false) => c.push_plain("last_login_at IS NULL"),
        None => {}
    }
    match filter.enrollment {
        Some(EnrollmentFilter::Enrolled) => c.push_plain("invited_at IS NOT NULL"),
        Some(EnrollmentFilter::NeverEnrolled) => c.push_plain(
            "(invited_at IS NULL AND last_login_at IS NULL AND kind = 'internal' AND source = 'internal')",
        ),
        Some(EnrollmentFilter::NotPossible) => c.push_plain(
            "(kind = 'external' OR source = 'ldap' OR (last_login_at IS NOT NULL AND invited_at IS NULL))",
        ),
        None => {}
    }
    if let Some(kind) = filter.kind {
        c.push("kind = ?", Bind::Text(kind.as_str().to_owned()));
    }
    if let Some(source) = filter.source {
        c.push("source = ?", Bind::Text(source.as_str().to_owned()));
    }
    c
}

/// ORDER BY for a sort, with the username as tie-breaker so that pages never overlap, and
/// absent times last in either direction on both backends.
pub fn order_by(sort: Sort) -> String {
    let column = match sort.column {
        SortColumn::Username => "username",
        SortColumn::FirstName => "first_name_key",
        SortColumn::LastName => "last_name_key",
        SortColumn::Email => "email_key",
        SortColumn::LastLoginAt => "last_login_at",
        SortColumn::CreatedAt => "created_at",
    };
    let dir = if sort.descending { "DESC" } else { "ASC" };
    if column == "username" {
        format!(" ORDER BY username {dir}")
    } else {
        format!(" ORDER BY {column} {dir} NULLS LAST, username {dir}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_contains("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }

    #[test]
    fn conditions_number_placeholders() {
        let filter = UserFilter {
            q: Some("Éva Dupont".into()),
            enabled: Some(true),
            ..Default::default()
        };
        let c = person_conditions(&filter);
        assert_eq!(
            c.where_clause(),
            " WHERE search_text LIKE $1 ESCAPE '\\' AND search_text LIKE $2 ESCAPE '\\' AND enabled = $3"
        );
        assert_eq!(c.binds.len(), 3);
    }
}
