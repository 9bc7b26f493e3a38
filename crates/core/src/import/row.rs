//! One record of an import file read into typed values, with every problem of its cells
//! reported at once (an error stops the row; a warning does not), and the duplicate check
//! across the file: the same username or email twice is an error on the later row.
//!
//! What needs the store (create or update, who owns an address) is decided afterwards, by
//! [`super::plan`].

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use super::csv_stream::RawRecord;
use super::header::{Column, Header};
use super::job::{ImportIssue, Severity};
use crate::error::FieldError;
use crate::groups::{EXTERNALS, ROLES};
use crate::people::{Email, PersonName, Profile, Username, PROFILE_FIELDS};

/// A cell that is optional on update: empty (keep the stored value), invalid (already
/// reported), or a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell<T> {
    Empty,
    Invalid,
    Valid(T),
}

impl<T> Cell<T> {
    fn from_parse(
        cell: &str,
        parse: impl FnOnce(&str) -> Result<T, Vec<FieldError>>,
        errors: &mut Vec<FieldError>,
    ) -> Self {
        if cell.is_empty() {
            return Self::Empty;
        }
        match parse(cell) {
            Ok(v) => Self::Valid(v),
            Err(e) => {
                errors.extend(e);
                Self::Invalid
            }
        }
    }
}

/// A record read into values.
#[derive(Debug, Clone)]
pub struct ParsedRow {
    pub line: u64,
    /// The username as reports show it (lower-cased; what the cell held if unusable).
    pub label: String,
    pub username: Option<Username>,
    pub first_name: Cell<PersonName>,
    pub last_name: Cell<PersonName>,
    pub email: Cell<Email>,
    /// The clear password cell; checked against the policy only when the row creates someone
    /// (on update it is ignored).
    pub password: Option<String>,
    pub enabled: Option<bool>,
    pub onboard: bool,
    /// The profile cells that hold a value.
    pub profile: Profile,
    /// `(group path, role)` entries of the `groups` cell, minus those already refused.
    pub groups: Vec<(String, String)>,
    pub issues: Vec<ImportIssue>,
}

impl ParsedRow {
    pub fn has_errors(&self) -> bool {
        self.issues.iter().any(|i| i.severity == Severity::Error)
    }
}

/// An issue about a row.
pub fn issue(
    line: u64,
    username: &str,
    field: &str,
    severity: Severity,
    code: &str,
    message: impl Into<String>,
) -> ImportIssue {
    ImportIssue {
        line,
        username: report_text(username, 255),
        field: report_text(field, 255),
        severity,
        code: code.to_owned(),
        message: message.into(),
    }
}

/// Text taken from a file into a report: control characters removed (they break terminals,
/// spreadsheets and PostgreSQL's text), at most `max` characters.
pub fn report_text(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// Reads a record. `seen` remembers the usernames and emails of the earlier rows.
pub fn parse_row(header: &Header, record: &RawRecord, seen: &mut SeenKeys) -> ParsedRow {
    let line = record.line;
    let cell = |c: Column| header.cell(&record.fields, c);
    let name = |c: Column| header.name(c);
    let mut issues = Vec::new();

    let username_cell = cell(Column::UserName);
    let mut errors = Vec::new();
    let username = match Username::parse(username_cell) {
        Ok(u) => Some(u),
        Err(e) => {
            errors = e;
            None
        }
    };
    let label = username
        .as_ref()
        .map_or_else(|| username_cell.to_lowercase(), |u| u.as_str().to_owned());
    let label = report_text(&label, 255);
    let mut add = |field: &str, errs: Vec<FieldError>, severity: Severity| {
        for e in errs {
            issues.push(issue(line, &label, field, severity, e.code, e.message));
        }
    };
    add(name(Column::UserName), errors, Severity::Error);

    let mut errs = Vec::new();
    let first_name = Cell::from_parse(cell(Column::FirstName), PersonName::parse, &mut errs);
    add(
        name(Column::FirstName),
        std::mem::take(&mut errs),
        Severity::Error,
    );
    let last_name = Cell::from_parse(cell(Column::LastName), PersonName::parse, &mut errs);
    add(
        name(Column::LastName),
        std::mem::take(&mut errs),
        Severity::Error,
    );
    let email = Cell::from_parse(cell(Column::Email), Email::parse, &mut errs);
    add(
        name(Column::Email),
        std::mem::take(&mut errs),
        Severity::Error,
    );

    let password = Some(cell(Column::Password))
        .filter(|p| !p.is_empty())
        .map(str::to_owned);

    let enabled = match parse_bool(cell(Column::Enabled)) {
        Ok(v) => v,
        Err(e) => {
            add(name(Column::Enabled), vec![e], Severity::Error);
            None
        }
    };
    let onboard = match parse_bool(cell(Column::OnboardUser)) {
        Ok(v) => v.unwrap_or(false),
        Err(e) => {
            add(name(Column::OnboardUser), vec![e], Severity::Error);
            false
        }
    };

    let mut profile = Profile::default();
    for (field, _, label_text) in PROFILE_FIELDS {
        let column = Column::Profile(*field);
        let value = cell(column);
        if value.is_empty() {
            continue;
        }
        let about = *field == crate::people::ProfileField::AboutMe;
        let limit = if about { 2000 } else { 255 };
        let mut errs = Vec::new();
        if value.chars().count() > limit {
            errs.push(FieldError::new(
                "too_long",
                format!("{label_text} has at most {limit} characters."),
            ));
        }
        if value
            .chars()
            .any(|c| c.is_control() && !(about && matches!(c, '\n' | '\t')))
        {
            errs.push(FieldError::new(
                "invalid_characters",
                format!("{label_text} holds control characters."),
            ));
        }
        if errs.is_empty() {
            *profile.slot(*field) = Some(value.to_owned());
        } else {
            add(name(column), errs, Severity::Error);
        }
    }

    let mut groups = Vec::new();
    let groups_field = name(Column::Groups).to_owned();
    for entry in cell(Column::Groups)
        .split([';', ','])
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let (role, path) = match entry.split_once(':') {
            Some((role, path)) => (role.trim().to_lowercase(), path.trim()),
            None => ("member".to_owned(), entry),
        };
        let shown = report_text(entry, 100);
        if !path.starts_with('/') || path.len() < 2 {
            add(
                &groups_field,
                vec![FieldError::new(
                    "unknown_group",
                    format!("“{shown}” is not a group: write role:/group/path, e.g. member:/spaces/sales."),
                )],
                Severity::Warning,
            );
        } else if !ROLES.contains(&role.as_str()) {
            add(
                &groups_field,
                vec![FieldError::new(
                    "unknown_role",
                    format!(
                        "“{shown}”: the role is not one of {}; this membership was skipped.",
                        ROLES.join(", ")
                    ),
                )],
                Severity::Warning,
            );
        } else if path == EXTERNALS {
            add(
                &groups_field,
                vec![FieldError::new(
                    "externals_skipped",
                    "An import never makes anyone external: /platform/externals was skipped.",
                )],
                Severity::Warning,
            );
        } else if !groups.iter().any(|(p, _): &(String, String)| p == path) {
            groups.push((path.to_owned(), role));
        }
    }

    // Duplicates within the file, whatever the rest of the row.
    let (username_key, email_key) = keys(header, record);
    if let Some(first) = username_key.and_then(|k| seen.note(Kind::Username, &k, line)) {
        add(
            name(Column::UserName),
            vec![FieldError::new(
                "duplicate_username",
                format!("This username is also on line {first}: a person appears once in a file."),
            )],
            Severity::Error,
        );
    }
    if let Some(first) = email_key.and_then(|k| seen.note(Kind::Email, &k, line)) {
        add(
            name(Column::Email),
            vec![FieldError::new(
                "duplicate_email",
                format!("This email address is also on line {first}: each address belongs to one person."),
            )],
            Severity::Error,
        );
    }

    ParsedRow {
        line,
        label,
        username,
        first_name,
        last_name,
        email,
        password,
        enabled,
        onboard,
        profile,
        groups,
        issues,
    }
}

/// The keys a record is compared on: its username and email, normalised as their parsers
/// do (trimmed, lower-cased), whether or not they are valid.
fn keys(header: &Header, record: &RawRecord) -> (Option<String>, Option<String>) {
    let key =
        |c: Column| Some(header.cell(&record.fields, c).to_lowercase()).filter(|k| !k.is_empty());
    (key(Column::UserName), key(Column::Email))
}

/// `true/false`, also `yes/no`, `1/0`, any case; `None` when empty.
pub fn parse_bool(cell: &str) -> Result<Option<bool>, FieldError> {
    match cell.to_lowercase().as_str() {
        "" => Ok(None),
        "true" | "yes" | "y" | "1" => Ok(Some(true)),
        "false" | "no" | "n" | "0" => Ok(Some(false)),
        _ => Err(FieldError::new("invalid_boolean", "Write true or false.")),
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Username,
    Email,
}

/// The usernames and emails of the rows read so far, as 64-bit hashes with the line where
/// each first appeared: 12 bytes a key instead of the text, so that a million-row file costs
/// tens of megabytes, not the file (two tables of 2²¹ slots: 55 MB, against 71 MB when an
/// entry was a `(u64, u32)`, which alignment pads to 16 bytes). Two different keys hashing
/// alike (odds about n²/2⁶⁵) would report a false duplicate; the hash is fixed, so a resumed
/// job finds the same ones.
#[derive(Default)]
pub struct SeenKeys {
    usernames: HashMap<KeyHash, u32, BuildHasherDefault<KeyHasher>>,
    emails: HashMap<KeyHash, u32, BuildHasherDefault<KeyHasher>>,
}

/// A key's 64-bit hash as two halves: aligned to 4 bytes, so that an entry with its line
/// takes 12.
#[derive(Clone, Copy, PartialEq, Eq)]
struct KeyHash([u32; 2]);

impl KeyHash {
    fn of(hash: u64) -> Self {
        // Truncations intended: the low and the high half.
        Self([hash as u32, (hash >> 32) as u32])
    }
}

impl Hash for KeyHash {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(u64::from(self.0[0]) | (u64::from(self.0[1]) << 32));
    }
}

impl SeenKeys {
    /// Room for `rows` rows, so that the maps never grow (and copy) mid-file.
    pub fn with_capacity(rows: usize) -> Self {
        Self {
            usernames: HashMap::with_capacity_and_hasher(rows, Default::default()),
            emails: HashMap::with_capacity_and_hasher(rows, Default::default()),
        }
    }

    /// Remembers the keys of a row without reading the rest of it: what a resumed job does
    /// for the rows applied before the interruption.
    pub fn remember(&mut self, header: &Header, record: &RawRecord) {
        let (username, email) = keys(header, record);
        if let Some(k) = username {
            self.note(Kind::Username, &k, record.line);
        }
        if let Some(k) = email {
            self.note(Kind::Email, &k, record.line);
        }
    }

    /// Records `key` on `line`; the line it was first seen on if it was.
    fn note(&mut self, kind: Kind, key: &str, line: u64) -> Option<u64> {
        // `DefaultHasher::new()` has fixed keys: the same on every run, so a resumed job
        // agrees with the run it resumes.
        let mut h = std::hash::DefaultHasher::new();
        key.hash(&mut h);
        let map = match kind {
            Kind::Username => &mut self.usernames,
            Kind::Email => &mut self.emails,
        };
        let line = u32::try_from(line).unwrap_or(u32::MAX);
        match map.entry(KeyHash::of(h.finish())) {
            std::collections::hash_map::Entry::Occupied(e) => Some(u64::from(*e.get())),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(line);
                None
            }
        }
    }
}

/// The keys are hashes already.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::csv_stream::parse_all;

    fn rows(file: &str) -> Vec<ParsedRow> {
        let records = parse_all(file.as_bytes()).unwrap();
        let header = Header::parse(&records[0].fields).unwrap();
        let mut seen = SeenKeys::default();
        records[1..]
            .iter()
            .map(|r| parse_row(&header, r, &mut seen))
            .collect()
    }

    fn codes(row: &ParsedRow) -> Vec<(&str, &str)> {
        row.issues
            .iter()
            .map(|i| (i.field.as_str(), i.code.as_str()))
            .collect()
    }

    #[test]
    fn a_good_row_becomes_values() {
        let r = &rows(
            "userName,firstName,lastName,email,enabled,onboardUser,company,aboutMe,groups\n\
             John.Doe,John,Doe,john@example.org,false,yes,Acme,\"Hi,\nthere\",\"manager:/spaces/sales;/spaces/hr\"\n",
        )[0];
        assert!(r.issues.is_empty(), "{:?}", r.issues);
        assert_eq!(r.label, "john.doe");
        assert_eq!(r.enabled, Some(false));
        assert!(r.onboard);
        assert_eq!(r.profile.organization.as_deref(), Some("Acme"));
        assert_eq!(r.profile.about_me.as_deref(), Some("Hi,\nthere"));
        assert_eq!(
            r.groups,
            [
                ("/spaces/sales".to_owned(), "manager".to_owned()),
                ("/spaces/hr".to_owned(), "member".to_owned())
            ]
        );
    }

    #[test]
    fn every_error_of_a_row_is_reported_with_its_field_as_the_file_names_it() {
        let r =
            &rows("user_name,first_name,last_name,email,enabled\nx,J1,D,not-an-email,maybe\n")[0];
        assert_eq!(
            codes(r),
            [
                ("user_name", "too_short"),
                ("first_name", "too_short"),
                ("first_name", "invalid_characters"),
                ("last_name", "too_short"),
                ("email", "invalid_email"),
                ("enabled", "invalid_boolean"),
            ]
        );
        assert!(r.issues.iter().all(|i| i.line == 2 && i.username == "x"));
    }

    #[test]
    fn empty_optional_cells_are_empty_not_errors() {
        let r = &rows("userName,firstName,lastName,email,password,enabled\njdoe,,,,,\n")[0];
        assert!(r.issues.is_empty());
        assert_eq!(r.first_name, Cell::Empty);
        assert_eq!(r.email, Cell::Empty);
        assert_eq!(r.password, None);
        assert_eq!(r.enabled, None);
    }

    #[test]
    fn group_problems_are_warnings() {
        let r = &rows(
            "userName,firstName,lastName,email,groups\n\
             jdoe,John,Doe,j@x.org,\"member:/platform/externals;boss:/spaces/a;nonsense;member:/spaces/b\"\n",
        )[0];
        assert_eq!(
            codes(r),
            [
                ("groups", "externals_skipped"),
                ("groups", "unknown_role"),
                ("groups", "unknown_group")
            ]
        );
        assert!(!r.has_errors());
        assert_eq!(r.groups, [("/spaces/b".to_owned(), "member".to_owned())]);
    }

    #[test]
    fn the_same_username_or_email_twice_is_an_error_on_the_later_row() {
        let rs = rows(
            "userName,firstName,lastName,email\n\
             jdoe,John,Doe,john@x.org\n\
             JDOE,Jim,Doe,jim@x.org\n\
             jim,Jim,Doe,JOHN@x.org\n",
        );
        assert!(rs[0].issues.is_empty());
        assert_eq!(codes(&rs[1]), [("userName", "duplicate_username")]);
        assert!(rs[1].issues[0].message.contains("line 2"));
        assert_eq!(codes(&rs[2]), [("email", "duplicate_email")]);
    }

    #[test]
    fn remembered_rows_count_as_seen() {
        let records = parse_all(
            b"userName,firstName,lastName,email\njdoe,John,Doe,j@x.org\njdoe,John,Doe,k@x.org\n",
        )
        .unwrap();
        let header = Header::parse(&records[0].fields).unwrap();
        let mut seen = SeenKeys::with_capacity(2);
        seen.remember(&header, &records[1]);
        let r = parse_row(&header, &records[2], &mut seen);
        assert_eq!(codes(&r), [("userName", "duplicate_username")]);
    }

    #[test]
    fn report_text_drops_control_characters() {
        assert_eq!(report_text("a\u{0}b\r\nc", 10), "abc");
        assert_eq!(report_text("abcdef", 3), "abc");
    }
}
