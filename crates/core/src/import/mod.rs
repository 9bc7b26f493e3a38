//! Bulk import from CSV (product §6): the rules, without HTTP or SQL.
//!
//! A file goes through three stages, each in its own module:
//! 1. [`scan`]: while it is submitted, file-level checks (size, UTF-8, header, rows) that
//!    refuse it whole with one [`FileError`] and change nothing;
//! 2. [`row`]: each record read into values, every problem of a row reported, duplicates
//!    within the file caught on the later row;
//! 3. [`plan`]: with what the store knows about a batch of rows, each row becomes a create,
//!    an update, `unchanged` or a failure.
//!
//! The job that drives them batch by batch (stored, resumable, with progress) is
//! `service::imports`; [`job`] holds the values it exchanges with the store. Records come from
//! [`csv_stream`], which parses a file that arrives in pieces.

pub mod csv_stream;
pub mod header;
pub mod job;
pub mod plan;
pub mod row;
pub mod scan;

pub use header::{Column, Header, TEMPLATE_HEADER};
pub use job::{
    ImportCounts, ImportIssue, ImportJob, ImportKeys, ImportLease, ImportLookup, ImportState,
    ImportStep, ImportUpdate, NewImport, PreparedRows, Severity,
};
pub use scan::{FileScanner, FileSummary};

/// A problem with the file as a whole: it is refused and nothing changes. `code` is part of
/// the API (`empty_file`, `not_utf8`, `no_header`, `missing_column`, `duplicate_column`,
/// `record_too_long`, `too_many_columns`, `too_large`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub code: &'static str,
    pub message: String,
}

impl FileError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// Whether the problem is the file's size (HTTP 413) rather than its content (422).
    pub fn is_too_large(&self) -> bool {
        self.code == "too_large"
    }
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for FileError {}

/// `GET /imports/template.csv`: the header alone, with CRLF like the files Meeds writes.
pub fn template_csv() -> String {
    format!("{}\r\n", TEMPLATE_HEADER.join(","))
}

/// The warning a file's unknown columns give, once for the whole file (line 1).
pub fn unknown_columns_issue(unknown: &[String]) -> Option<ImportIssue> {
    if unknown.is_empty() {
        return None;
    }
    let names: Vec<String> = unknown.iter().map(|n| row::report_text(n, 100)).collect();
    Some(row::issue(
        1,
        "",
        &names.join(", "),
        Severity::Warning,
        "unknown_column",
        format!(
            "Column{} not used by the import and ignored: {}.",
            if names.len() > 1 { "s" } else { "" },
            names.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::people::PasswordPolicy;
    use proptest::prelude::*;

    #[test]
    fn the_template_is_a_meeds_header() {
        assert!(template_csv().starts_with("userName,firstName,lastName,password,email,"));
        assert!(template_csv().ends_with("\r\n"));
    }

    proptest! {
        /// Whatever bytes arrive, the scanner and the row rules answer without panicking.
        #[test]
        fn arbitrary_bytes_never_panic_the_importer(
            head in prop_oneof![
                Just(b"userName,firstName,lastName,email,password,groups,enabled,onboardUser,aboutMe\n".to_vec()),
                Just(b"\xEF\xBB\xBFuser_name;first_name;last_name;email\r\n".to_vec()),
                Just(Vec::new()),
            ],
            body in proptest::collection::vec(any::<u8>(), 0..600),
            piece in 1usize..64,
        ) {
            let mut file = head;
            file.extend(body);
            let mut scanner = FileScanner::new(1 << 20);
            let mut ok = true;
            for p in file.chunks(piece) {
                if scanner.feed(p).is_err() {
                    ok = false;
                    break;
                }
            }
            if ok {
                let _ = scanner.finish();
            }
            // The rows, as a job reads them, even from a file the scanner would refuse.
            if let Ok(records) = csv_stream::parse_all(&file) {
                if let Some((first, rest)) = records.split_first() {
                    if let Ok(header) = Header::parse(&first.fields) {
                        let mut seen = row::SeenKeys::default();
                        let policy = PasswordPolicy::default();
                        let lookup = plan::BatchLookup::default();
                        let ctx = plan::PlanContext { header: &header, policy: &policy, actor_id: None };
                        for r in rest {
                            let parsed = row::parse_row(&header, r, &mut seen);
                            let _ = plan::plan_row(parsed, &lookup, &ctx);
                        }
                    }
                }
            }
        }

        /// Cells made of anything printable (quotes, delimiters, newlines in quotes) too.
        #[test]
        fn arbitrary_cells_never_panic_the_row_rules(
            cells in proptest::collection::vec("\\PC{0,40}", 9),
        ) {
            let mut writer = csv::Writer::from_writer(Vec::new());
            writer.write_record(["userName","firstName","lastName","password","email","groups","enabled","onboardUser","aboutMe"]).unwrap();
            writer.write_record(&cells).unwrap();
            let bytes = writer.into_inner().unwrap();
            let records = csv_stream::parse_all(&bytes).unwrap();
            let header = Header::parse(&records[0].fields).unwrap();
            let mut seen = row::SeenKeys::default();
            let policy = PasswordPolicy::default();
            let lookup = plan::BatchLookup::default();
            let ctx = plan::PlanContext { header: &header, policy: &policy, actor_id: None };
            for r in &records[1..] {
                let planned = plan::plan_row(row::parse_row(&header, r, &mut seen), &lookup, &ctx);
                for i in &planned.issues {
                    prop_assert!(!i.username.chars().any(char::is_control));
                }
            }
        }
    }
}
