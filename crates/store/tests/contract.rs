//! The store contract ([`usher_core::store::Store`]), run against SQLite and PostgreSQL.
//!
//! Every test runs twice, as `<module>::<name>::sqlite` and `<module>::<name>::postgres`, each on
//! a fresh, migrated, empty database (see [`usher_store::testing`]). PostgreSQL tests need the
//! server named by `USHER_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); without it they are skipped with a notice,
//! except under `CI=true`, where they fail.

#[path = "contract/support.rs"]
mod support;

#[path = "contract/audit.rs"]
mod audit;
#[path = "contract/changes.rs"]
mod changes;
#[path = "contract/imports.rs"]
mod imports;
#[path = "contract/outbox.rs"]
mod outbox;
#[path = "contract/people.rs"]
mod people;
#[path = "contract/search.rs"]
mod search;
#[path = "contract/sessions.rs"]
mod sessions;
#[path = "contract/tokens.rs"]
mod tokens;
