//! Builders and raw-SQL helpers shared by the contract tests.

use serde_json::json;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use usher_core::audit::{actions, AuditRecord};
use usher_core::clock::to_millis;
use usher_core::people::{Person, PersonType, Profile, Source};
use usher_core::query::{Page, UserFilter, UserQuery, MAX_PAGE_SIZE};
use usher_core::store::{NewPerson, SessionRecord, Store};
use usher_store::{Pool, SqlStore};

/// The store never reads the clock: every time in these tests is fixed.
pub const T0: OffsetDateTime = datetime!(2026-01-01 0:00 UTC);

pub fn at(minutes: i64) -> OffsetDateTime {
    T0 + Duration::minutes(minutes)
}

/// An enabled internal person without password, memberships or profile, created at [`T0`],
/// with the email `<username>@example.org`.
pub fn new_person(username: &str, first_name: &str, last_name: &str) -> NewPerson {
    NewPerson {
        username: username.to_owned(),
        first_name: first_name.to_owned(),
        last_name: last_name.to_owned(),
        email: format!("{username}@example.org"),
        password_hash: None,
        password_temporary: false,
        enabled: true,
        kind: PersonType::Internal,
        source: Source::Internal,
        super_user: false,
        profile: Profile::default(),
        created_at: T0,
        memberships: Vec::new(),
    }
}

pub fn full_profile() -> Profile {
    Profile {
        position: Some("Engineer".into()),
        organization: Some("Usher Inc.".into()),
        department: Some("Platform".into()),
        location: Some("Lausanne".into()),
        phone: Some("+41 21 000 00 00".into()),
        manager: Some("Marie Curie".into()),
        about_me: Some("Likes «quotes» and emoji 🎉".into()),
        time_zone: Some("Europe/Zurich".into()),
    }
}

pub fn audit(action: &'static str, target: &str, at: OffsetDateTime) -> AuditRecord {
    AuditRecord {
        at,
        actor: Some("admin".into()),
        action,
        target: Some(target.to_owned()),
        details: json!({ "target": target }).into(),
    }
}

/// Inserts `new`, recording a `user.create` entry at its creation time.
pub async fn insert(store: &SqlStore, new: NewPerson) -> Person {
    let record = audit(actions::USER_CREATE, &new.username, new.created_at);
    store
        .insert_person(&new, &record)
        .await
        .unwrap_or_else(|e| panic!("inserting {}: {e}", new.username))
}

/// Inserts a plain person named after their username.
pub async fn insert_named(store: &SqlStore, username: &str) -> Person {
    insert(store, new_person(username, "First", "Last")).await
}

pub fn session(token_hash: &str, person_id: i64, expires_at: OffsetDateTime) -> SessionRecord {
    SessionRecord {
        token_hash: token_hash.to_owned(),
        person_id,
        csrf_token: format!("csrf-{token_hash}"),
        created_at: T0,
        expires_at,
    }
}

/// A query for everyone matching `filter`, in one page, sorted by the default sort.
pub fn query(filter: UserFilter) -> UserQuery {
    UserQuery {
        filter,
        limit: MAX_PAGE_SIZE,
        ..UserQuery::default()
    }
}

pub fn q(text: &str) -> UserQuery {
    query(UserFilter {
        q: Some(text.to_owned()),
        ..UserFilter::default()
    })
}

/// The usernames of a page, in its order.
pub fn usernames(page: &Page<Person>) -> Vec<&str> {
    page.items.iter().map(|p| p.username.as_str()).collect()
}

/// The usernames a query finds, checking that the total agrees with the single page.
pub async fn found(store: &SqlStore, query: &UserQuery) -> Vec<String> {
    let page = store.search_people(query).await.expect("search");
    assert_eq!(
        page.total,
        page.items.len() as u64,
        "total of a query whose results fit one page: {query:?}"
    );
    page.items.into_iter().map(|p| p.username).collect()
}

/// What only an invitation sets, which no store method writes: `UPDATE people SET invited_at`.
pub async fn set_invited_at(store: &SqlStore, person_id: i64, invited_at: OffsetDateTime) {
    let sql = "UPDATE people SET invited_at = $1 WHERE id = $2";
    let done = match store.pool() {
        Pool::Sqlite(p) => sqlx::query(sql)
            .bind(to_millis(invited_at))
            .bind(person_id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()),
        Pool::Postgres(p) => sqlx::query(sql)
            .bind(to_millis(invited_at))
            .bind(person_id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()),
    }
    .expect("set invited_at");
    assert_eq!(done, 1, "person {person_id} exists");
}

/// How many rows of `table` belong to a person (any table with a `person_id` column).
pub async fn rows_of(store: &SqlStore, table: &str, person_id: i64) -> i64 {
    let sql = format!("SELECT count(*) FROM {table} WHERE person_id = $1");
    match store.pool() {
        Pool::Sqlite(p) => {
            sqlx::query_scalar::<_, i64>(&sql)
                .bind(person_id)
                .fetch_one(p)
                .await
        }
        Pool::Postgres(p) => {
            sqlx::query_scalar::<_, i64>(&sql)
                .bind(person_id)
                .fetch_one(p)
                .await
        }
    }
    .expect("count rows")
}

/// When an API token was last used, in epoch milliseconds.
pub async fn token_last_used_at(store: &SqlStore, token_hash: &str) -> Option<i64> {
    let sql = "SELECT last_used_at FROM api_tokens WHERE token_hash = $1";
    match store.pool() {
        Pool::Sqlite(p) => {
            sqlx::query_scalar::<_, Option<i64>>(sql)
                .bind(token_hash)
                .fetch_one(p)
                .await
        }
        Pool::Postgres(p) => {
            sqlx::query_scalar::<_, Option<i64>>(sql)
                .bind(token_hash)
                .fetch_one(p)
                .await
        }
    }
    .expect("token row")
}
