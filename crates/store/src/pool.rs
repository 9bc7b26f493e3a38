//! One pool type for both backends, and the macro that runs the same code on either.

/// A connection pool to one of the supported databases.
#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// Runs `$body` with `$p` bound to the native pool of whichever backend `$pool` is.
///
/// The body is expanded once per backend, so each expansion is type-checked against that
/// backend's driver: shared SQL stays written once without going through a dynamic driver.
/// SQL run this way uses `$1, $2, …` placeholders, which both drivers bind by number.
macro_rules! on_pool {
    ($pool:expr, |$p:ident| $body:expr) => {
        match $pool {
            $crate::pool::Pool::Sqlite($p) => $body,
            $crate::pool::Pool::Postgres($p) => $body,
        }
    };
}
pub(crate) use on_pool;
