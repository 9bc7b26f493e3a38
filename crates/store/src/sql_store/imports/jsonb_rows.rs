//! `usher_rows(?)`: a table-valued function of SQLite, written here, that hands out the rows of
//! one JSONB array of arrays as [`super::jsonb`] writes them: one row per element, its `N`-th
//! value as column `cN`, and its place from 0 as `ord`.
//!
//! SQLite's own functions found each value by walking its row from the start (`v->>N` skips
//! `N` headers, so a 23-field row cost 250 skips) after `json_each` had rendered the row as
//! text and `jsonb()` had parsed it back: profiled in the server, those functions took a fifth
//! of the writer's time while importing 100,000 new people. Here a row's values are located in
//! one pass, and each is handed to SQLite as the integer or text it is.
//!
//! The function is registered on every SQLite connection the process opens
//! ([`register`], before the pools connect), as an eponymous virtual table (no `CREATE
//! VIRTUAL TABLE`). It reads only what [`super::jsonb`] writes: null, true, false, integers
//! and raw text; anything else is refused with an error rather than read as something else.

// The one place of the workspace that talks to SQLite's C interface: sqlx has no way to add a
// virtual table. Every pointer here is one SQLite handed over, used as its interface says.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CString};
use std::ptr;
use std::sync::Once;

use libsqlite3_sys as ffi;

use super::jsonb::{ARRAY, FALSE, INT, NULL, TEXT, TEXT_RAW, TRUE};

/// Value columns `c0`… of a row; a statement's fields must not outnumber them.
pub(super) const VALUE_COLUMNS: usize = 32;
/// Column 0 is `ord`, then the values, then the hidden argument.
const ROWS_ARGUMENT_COLUMN: c_int = VALUE_COLUMNS as c_int + 1;

/// Registers `usher_rows` on every SQLite connection opened from now on (once per process).
pub(crate) fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: the entry point has the signature SQLite calls it with, and lives forever.
        let rc = unsafe { ffi::sqlite3_auto_extension(Some(add_module)) };
        // Fails only if SQLite cannot allocate a few bytes; a statement that uses the
        // function then says "no such table: usher_rows".
        if rc != ffi::SQLITE_OK {
            tracing::error!(rc, "could not register usher_rows with SQLite");
        }
    });
}

unsafe extern "C" fn add_module(
    db: *mut ffi::sqlite3,
    _error: *mut *mut c_char,
    _api: *const ffi::sqlite3_api_routines,
) -> c_int {
    ffi::sqlite3_create_module_v2(db, c"usher_rows".as_ptr(), &MODULE, ptr::null_mut(), None)
}

/// Eponymous-only (no `xCreate`): the function exists on each connection without a CREATE.
static MODULE: ffi::sqlite3_module = ffi::sqlite3_module {
    iVersion: 0,
    xCreate: None,
    xConnect: Some(connect),
    xBestIndex: Some(best_index),
    xDisconnect: Some(disconnect),
    xDestroy: Some(disconnect),
    xOpen: Some(open),
    xClose: Some(close),
    xFilter: Some(filter),
    xNext: Some(next),
    xEof: Some(eof),
    xColumn: Some(column),
    xRowid: Some(rowid),
    xUpdate: None,
    xBegin: None,
    xSync: None,
    xCommit: None,
    xRollback: None,
    xFindFunction: None,
    xRename: None,
    xSavepoint: None,
    xRelease: None,
    xRollbackTo: None,
    xShadowName: None,
    xIntegrity: None,
};

fn schema() -> CString {
    let values: Vec<String> = (0..VALUE_COLUMNS).map(|i| format!("c{i}")).collect();
    CString::new(format!(
        "CREATE TABLE x(ord, {}, rows HIDDEN)",
        values.join(", ")
    ))
    .expect("no NUL in the schema")
}

unsafe extern "C" fn connect(
    db: *mut ffi::sqlite3,
    _aux: *mut c_void,
    _argc: c_int,
    _argv: *const *const c_char,
    table: *mut *mut ffi::sqlite3_vtab,
    _error: *mut *mut c_char,
) -> c_int {
    let rc = ffi::sqlite3_declare_vtab(db, schema().as_ptr());
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    // Reads nothing but its argument: safe in triggers and views too.
    ffi::sqlite3_vtab_config(db, ffi::SQLITE_VTAB_INNOCUOUS);
    // SAFETY (for SQLite): a zeroed sqlite3_vtab is what xConnect must hand back.
    *table = Box::into_raw(Box::new(std::mem::zeroed::<ffi::sqlite3_vtab>()));
    ffi::SQLITE_OK
}

unsafe extern "C" fn disconnect(table: *mut ffi::sqlite3_vtab) -> c_int {
    let table = Box::from_raw(table);
    if !table.zErrMsg.is_null() {
        ffi::sqlite3_free(table.zErrMsg.cast());
    }
    ffi::SQLITE_OK
}

/// The one plan: the rows come from the argument, which must be given.
unsafe extern "C" fn best_index(
    _table: *mut ffi::sqlite3_vtab,
    info: *mut ffi::sqlite3_index_info,
) -> c_int {
    let info = &mut *info;
    let count = usize::try_from(info.nConstraint).unwrap_or(0);
    for i in 0..count {
        let constraint = &*info.aConstraint.add(i);
        if constraint.iColumn != ROWS_ARGUMENT_COLUMN {
            continue;
        }
        if constraint.op != ffi::SQLITE_INDEX_CONSTRAINT_EQ as u8 || constraint.usable == 0 {
            // Another plan may give the argument; this one cannot run.
            return ffi::SQLITE_CONSTRAINT;
        }
        let usage = &mut *info.aConstraintUsage.add(i);
        usage.argvIndex = 1;
        usage.omit = 1;
        info.idxNum = 1;
        info.estimatedCost = 1000.0;
        info.estimatedRows = 1000;
        return ffi::SQLITE_OK;
    }
    // `usher_rows` without its argument: `filter` refuses it.
    info.idxNum = 0;
    info.estimatedCost = 1e12;
    ffi::SQLITE_OK
}

/// Where one value of the current row lies in the cursor's copy of the rows.
#[derive(Clone, Copy)]
struct Value {
    kind: u8,
    start: usize,
    len: usize,
}

#[repr(C)]
struct Cursor {
    /// First, as SQLite reads the cursor through a pointer to it.
    base: ffi::sqlite3_vtab_cursor,
    /// The argument, copied: SQLite's own copy may not outlive `filter`.
    data: Vec<u8>,
    /// Where the outer array's payload ends.
    end: usize,
    /// Where the next row's header starts.
    next: usize,
    /// The current row's place, and its values.
    ord: i64,
    values: Vec<Value>,
    eof: bool,
}

unsafe extern "C" fn open(
    _table: *mut ffi::sqlite3_vtab,
    cursor: *mut *mut ffi::sqlite3_vtab_cursor,
) -> c_int {
    let new = Box::new(Cursor {
        base: std::mem::zeroed(),
        data: Vec::new(),
        end: 0,
        next: 0,
        ord: -1,
        values: Vec::with_capacity(VALUE_COLUMNS),
        eof: true,
    });
    *cursor = Box::into_raw(new).cast();
    ffi::SQLITE_OK
}

unsafe extern "C" fn close(cursor: *mut ffi::sqlite3_vtab_cursor) -> c_int {
    drop(Box::from_raw(cursor.cast::<Cursor>()));
    ffi::SQLITE_OK
}

/// Sets the table's error message (SQLite frees the previous one and reports this one).
unsafe fn fail(cursor: *mut ffi::sqlite3_vtab_cursor, message: &str) -> c_int {
    let table = (*cursor).pVtab;
    if !(*table).zErrMsg.is_null() {
        ffi::sqlite3_free((*table).zErrMsg.cast());
    }
    let text = CString::new(format!("usher_rows: {message}")).unwrap_or_default();
    (*table).zErrMsg = ffi::sqlite3_mprintf(c"%s".as_ptr(), text.as_ptr());
    ffi::SQLITE_ERROR
}

unsafe extern "C" fn filter(
    cursor: *mut ffi::sqlite3_vtab_cursor,
    plan: c_int,
    _plan_text: *const c_char,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) -> c_int {
    let state = &mut *cursor.cast::<Cursor>();
    state.data.clear();
    state.values.clear();
    state.ord = -1;
    state.eof = true;
    if plan != 1 || argc != 1 {
        return fail(cursor, "the rows must be given: usher_rows(?)");
    }
    let argument = *argv;
    let bytes = ffi::sqlite3_value_blob(argument).cast::<u8>();
    let len = usize::try_from(ffi::sqlite3_value_bytes(argument)).unwrap_or(0);
    if !bytes.is_null() {
        state
            .data
            .extend_from_slice(std::slice::from_raw_parts(bytes, len));
    }
    match state.open_outer() {
        Ok(()) => match state.advance() {
            Ok(()) => ffi::SQLITE_OK,
            Err(message) => fail(cursor, &message),
        },
        Err(message) => fail(cursor, &message),
    }
}

unsafe extern "C" fn next(cursor: *mut ffi::sqlite3_vtab_cursor) -> c_int {
    match (*cursor.cast::<Cursor>()).advance() {
        Ok(()) => ffi::SQLITE_OK,
        Err(message) => fail(cursor, &message),
    }
}

unsafe extern "C" fn eof(cursor: *mut ffi::sqlite3_vtab_cursor) -> c_int {
    c_int::from((*cursor.cast::<Cursor>()).eof)
}

unsafe extern "C" fn rowid(cursor: *mut ffi::sqlite3_vtab_cursor, rowid: *mut i64) -> c_int {
    *rowid = (*cursor.cast::<Cursor>()).ord;
    ffi::SQLITE_OK
}

unsafe extern "C" fn column(
    cursor: *mut ffi::sqlite3_vtab_cursor,
    context: *mut ffi::sqlite3_context,
    index: c_int,
) -> c_int {
    let state = &*cursor.cast::<Cursor>();
    if index == 0 {
        ffi::sqlite3_result_int64(context, state.ord);
        return ffi::SQLITE_OK;
    }
    let value = usize::try_from(index - 1)
        .ok()
        .and_then(|i| state.values.get(i));
    let Some(value) = value else {
        // A column past the row's values, or the hidden argument.
        ffi::sqlite3_result_null(context);
        return ffi::SQLITE_OK;
    };
    let payload = &state.data[value.start..value.start + value.len];
    match value.kind {
        TRUE => ffi::sqlite3_result_int64(context, 1),
        FALSE => ffi::sqlite3_result_int64(context, 0),
        INT => match parse_int(payload) {
            Some(n) => ffi::sqlite3_result_int64(context, n),
            None => return fail(cursor, "an integer that is not one"),
        },
        TEXT | TEXT_RAW => {
            let Ok(len) = c_int::try_from(payload.len()) else {
                return fail(cursor, "a value over 2 GiB");
            };
            // Copied by SQLite: the cursor's copy goes at the next filter or close.
            ffi::sqlite3_result_text(
                context,
                payload.as_ptr().cast(),
                len,
                ffi::SQLITE_TRANSIENT(),
            );
        }
        _ => ffi::sqlite3_result_null(context),
    }
    ffi::SQLITE_OK
}

/// An integer's payload is its decimal text, as [`super::jsonb`] writes it.
fn parse_int(digits: &[u8]) -> Option<i64> {
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A header's element type, and where its payload starts and ends.
fn header(data: &[u8], at: usize) -> Result<(u8, usize, usize), String> {
    let first = *data.get(at).ok_or("rows cut short")?;
    let kind = first & 0x0f;
    let (size_len, size) = match first >> 4 {
        small @ 0..=11 => (0, usize::from(small)),
        code => {
            let size_len = match code {
                12 => 1,
                13 => 2,
                14 => 4,
                _ => 8,
            };
            let bytes = data
                .get(at + 1..at + 1 + size_len)
                .ok_or("rows cut short")?;
            let size = bytes.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b));
            (
                size_len,
                usize::try_from(size).map_err(|_| "a value too large")?,
            )
        }
    };
    let start = at + 1 + size_len;
    let end = start
        .checked_add(size)
        .filter(|end| *end <= data.len())
        .ok_or("rows cut short")?;
    Ok((kind, start, end))
}

impl Cursor {
    /// Positions before the first row of the outer array.
    fn open_outer(&mut self) -> Result<(), String> {
        if self.data.is_empty() {
            // NULL or an empty blob: no rows.
            self.next = 0;
            self.end = 0;
            return Ok(());
        }
        let (kind, start, end) = header(&self.data, 0)?;
        if kind != ARRAY {
            return Err("the rows are not a JSONB array".into());
        }
        self.next = start;
        self.end = end;
        Ok(())
    }

    /// Moves to the next row, locating its values.
    fn advance(&mut self) -> Result<(), String> {
        self.values.clear();
        if self.next >= self.end {
            self.eof = true;
            return Ok(());
        }
        let (kind, start, end) = header(&self.data, self.next)?;
        if kind != ARRAY || end > self.end {
            return Err(format!("row {} is not an array", self.ord + 1));
        }
        let mut at = start;
        while at < end {
            let (kind, value_start, value_end) = header(&self.data, at)?;
            if !matches!(kind, NULL | TRUE | FALSE | INT | TEXT | TEXT_RAW) || value_end > end {
                return Err(format!(
                    "row {} holds a value other than null, a boolean, an integer or text",
                    self.ord + 1
                ));
            }
            if self.values.len() == VALUE_COLUMNS {
                return Err(format!(
                    "row {} has more than {VALUE_COLUMNS} values",
                    self.ord + 1
                ));
            }
            self.values.push(Value {
                kind,
                start: value_start,
                len: value_end - value_start,
            });
            at = value_end;
        }
        self.next = end;
        self.ord += 1;
        self.eof = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde::Serialize;
    use sqlx::{Connection, Row, SqliteConnection};

    use super::super::jsonb;
    use super::*;

    #[derive(Serialize)]
    struct Person<'a> {
        name: &'a str,
        note: Option<&'a str>,
        enabled: bool,
        joined: bool,
        at: i64,
    }

    const FIELDS: super::super::Fields = &[
        ("name", "text"),
        ("note", "text"),
        ("enabled", "boolean"),
        ("joined", "boolean"),
        ("at", "bigint"),
    ];

    async fn connection() -> SqliteConnection {
        register();
        SqliteConnection::connect("sqlite::memory:")
            .await
            .expect("in-memory SQLite")
    }

    #[tokio::test]
    async fn rows_come_out_with_their_places_and_types() {
        let mut db = connection().await;
        let long = "é".repeat(300);
        let rows = [
            Person {
                name: "ada",
                note: None,
                enabled: true,
                joined: false,
                at: -3,
            },
            Person {
                name: &long,
                note: Some(""),
                enabled: false,
                joined: true,
                at: i64::MAX,
            },
        ];
        let bytes = jsonb::rows(FIELDS, &rows).unwrap();
        let out = sqlx::query(
            "SELECT ord, c0, c1, typeof(c1), c2, c3, c4, typeof(c4), c5 FROM usher_rows($1)",
        )
        .bind(bytes)
        .fetch_all(&mut db)
        .await
        .unwrap();
        assert_eq!(out.len(), 2);
        let first = &out[0];
        assert_eq!(first.get::<i64, _>(0), 0);
        assert_eq!(first.get::<String, _>(1), "ada");
        assert_eq!(first.get::<Option<String>, _>(2), None);
        assert_eq!(first.get::<String, _>(3), "null");
        assert_eq!((first.get::<i64, _>(4), first.get::<i64, _>(5)), (1, 0));
        assert_eq!(first.get::<i64, _>(6), -3);
        assert_eq!(first.get::<String, _>(7), "integer");
        // Past the row's values.
        assert_eq!(first.get::<Option<String>, _>(8), None);
        let second = &out[1];
        assert_eq!(second.get::<i64, _>(0), 1);
        assert_eq!(second.get::<String, _>(1), long);
        assert_eq!(second.get::<Option<String>, _>(2).as_deref(), Some(""));
        assert_eq!((second.get::<i64, _>(4), second.get::<i64, _>(5)), (0, 1));
        assert_eq!(second.get::<i64, _>(6), i64::MAX);
    }

    #[tokio::test]
    async fn rows_feed_an_insert_as_sqlite_functions_did() {
        let mut db = connection().await;
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, at INTEGER)")
            .execute(&mut db)
            .await
            .unwrap();
        let rows: Vec<Person> = (0..5000)
            .map(|i| Person {
                name: if i % 2 == 0 { "even" } else { "odd" },
                note: None,
                enabled: true,
                joined: false,
                at: i,
            })
            .collect();
        let bytes = jsonb::rows(FIELDS, &rows).unwrap();
        let sql = format!(
            "INSERT INTO t (id, name, at) SELECT j.ord + 1, j.name, j.at FROM {}",
            "(SELECT ord, c0 AS name, c4 AS at FROM usher_rows($1)) AS j"
        );
        sqlx::query(&sql)
            .bind(&bytes)
            .execute(&mut db)
            .await
            .unwrap();
        let (count, sum, odd): (i64, i64, i64) =
            sqlx::query_as("SELECT count(*), sum(at), sum(name = 'odd') FROM t WHERE id = at + 1")
                .fetch_one(&mut db)
                .await
                .unwrap();
        assert_eq!((count, sum, odd), (5000, 4999 * 5000 / 2, 2500));
    }

    #[tokio::test]
    async fn no_rows_and_null_give_nothing() {
        let mut db = connection().await;
        let empty = jsonb::rows(FIELDS, Vec::<Person>::new()).unwrap();
        for bound in [Some(empty), None] {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM usher_rows($1)")
                .bind(bound)
                .fetch_one(&mut db)
                .await
                .unwrap();
            assert_eq!(n, 0);
        }
    }

    #[tokio::test]
    async fn what_it_cannot_read_is_an_error() {
        let mut db = connection().await;
        let cases: [(&[u8], &str); 4] = [
            // Not an array.
            (&[0x13, b'7'], "not a JSONB array"),
            // An array whose size runs past the end.
            (&[0x5b, 0x3b], "cut short"),
            // A row that is not an array.
            (&[0x2b, 0x13, b'7'], "row 0 is not an array"),
            // A float (type 5) in a row.
            (&[0x4b, 0x3b, 0x25, b'1', b'5'], "a value other than"),
        ];
        for (bytes, expected) in cases {
            let error = sqlx::query("SELECT * FROM usher_rows($1)")
                .bind(bytes)
                .fetch_all(&mut db)
                .await
                .map(|rows| rows.len())
                .expect_err("refused");
            assert!(error.to_string().contains(expected), "{expected}: {error}");
        }
        let error = sqlx::query("SELECT * FROM usher_rows")
            .fetch_all(&mut db)
            .await
            .map(|rows| rows.len())
            .expect_err("refused");
        assert!(error.to_string().contains("must be given"), "{error}");
    }
}
