//! The columns an import understands and the header line that names them.
//!
//! Names follow the Meeds import file (`userName,firstName,lastName,password,email`, then
//! `groups`, `enabled`, `onboardUser` and profile fields), match case-insensitively, and may
//! also be written in snake_case or with spaces (`user_name`, `First Name`): a header cell is
//! compared with `_`, `-` and spaces removed. Profile fields accept their JSON name and the
//! names Meeds files use (`company` for `organization`, `aboutMe`, `timeZone`).

use super::FileError;
use crate::people::ProfileField;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    UserName,
    FirstName,
    LastName,
    Password,
    Email,
    Groups,
    Enabled,
    OnboardUser,
    Profile(ProfileField),
}

/// The columns every file must have. The password is optional: an account without one joins
/// through an invitation.
pub const REQUIRED: [Column; 4] = [
    Column::UserName,
    Column::FirstName,
    Column::LastName,
    Column::Email,
];

/// The header of `GET /imports/template.csv`, in Meeds' order.
pub const TEMPLATE_HEADER: &[&str] = &[
    "userName",
    "firstName",
    "lastName",
    "password",
    "email",
    "groups",
    "enabled",
    "onboardUser",
    "position",
    "company",
    "department",
    "location",
    "phone",
    "manager",
    "aboutMe",
    "timeZone",
];

const COUNT: usize = 16;

impl Column {
    /// Where the column is kept in a [`Header`].
    fn slot(self) -> usize {
        match self {
            Self::UserName => 0,
            Self::FirstName => 1,
            Self::LastName => 2,
            Self::Password => 3,
            Self::Email => 4,
            Self::Groups => 5,
            Self::Enabled => 6,
            Self::OnboardUser => 7,
            Self::Profile(f) => {
                8 + match f {
                    ProfileField::Position => 0,
                    ProfileField::Organization => 1,
                    ProfileField::Department => 2,
                    ProfileField::Location => 3,
                    ProfileField::Phone => 4,
                    ProfileField::Manager => 5,
                    ProfileField::AboutMe => 6,
                    ProfileField::TimeZone => 7,
                }
            }
        }
    }

    /// The name the template uses.
    pub fn template_name(self) -> &'static str {
        TEMPLATE_HEADER[self.slot()]
    }

    /// The column a header cell names, if any.
    pub fn from_header(cell: &str) -> Option<Self> {
        let key: String = cell
            .chars()
            .filter(|c| !matches!(c, '_' | '-' | ' ' | '\u{feff}'))
            .flat_map(char::to_lowercase)
            .collect();
        Some(match key.as_str() {
            "username" => Self::UserName,
            "firstname" => Self::FirstName,
            "lastname" => Self::LastName,
            "password" => Self::Password,
            "email" => Self::Email,
            "groups" => Self::Groups,
            "enabled" => Self::Enabled,
            "onboarduser" => Self::OnboardUser,
            "position" => Self::Profile(ProfileField::Position),
            "company" | "organization" | "organisation" => {
                Self::Profile(ProfileField::Organization)
            }
            "department" => Self::Profile(ProfileField::Department),
            "location" => Self::Profile(ProfileField::Location),
            "phone" => Self::Profile(ProfileField::Phone),
            "manager" => Self::Profile(ProfileField::Manager),
            "aboutme" => Self::Profile(ProfileField::AboutMe),
            "timezone" => Self::Profile(ProfileField::TimeZone),
            _ => return None,
        })
    }
}

/// Which cell of a record holds which column, and how the file names it.
#[derive(Debug, Clone)]
pub struct Header {
    index: [Option<usize>; COUNT],
    /// The header cells as written, to name fields in reports as the file does.
    names: Vec<String>,
    /// Header cells that name no column, in file order.
    pub unknown: Vec<String>,
}

impl Header {
    /// Reads the header line. File-level errors: `no_header` when no cell names a column (the
    /// first line is data), `missing_column`, `duplicate_column`.
    pub fn parse(cells: &[String]) -> Result<Self, FileError> {
        let mut index = [None; COUNT];
        let mut unknown = Vec::new();
        let mut duplicates = Vec::new();
        for (i, cell) in cells.iter().enumerate() {
            match Column::from_header(cell) {
                Some(column) => {
                    let slot = &mut index[column.slot()];
                    if slot.is_some() {
                        duplicates.push(cell.clone());
                    } else {
                        *slot = Some(i);
                    }
                }
                None if cell.is_empty() => {}
                None => unknown.push(cell.clone()),
            }
        }
        if index.iter().all(Option::is_none) {
            return Err(FileError::new(
                "no_header",
                format!(
                    "The first line must name the columns ({}); it names none of them.",
                    TEMPLATE_HEADER[..5].join(", ")
                ),
            ));
        }
        if !duplicates.is_empty() {
            return Err(FileError::new(
                "duplicate_column",
                format!(
                    "The header names a column twice: {}. Keep one of each.",
                    duplicates.join(", ")
                ),
            ));
        }
        let missing: Vec<&str> = REQUIRED
            .iter()
            .filter(|c| index[c.slot()].is_none())
            .map(|c| c.template_name())
            .collect();
        if !missing.is_empty() {
            return Err(FileError::new(
                "missing_column",
                format!(
                    "The header lacks the column{} {}; the required columns are {}.",
                    if missing.len() > 1 { "s" } else { "" },
                    missing.join(", "),
                    REQUIRED.map(Column::template_name).join(", ")
                ),
            ));
        }
        Ok(Self {
            index,
            names: cells.to_vec(),
            unknown,
        })
    }

    pub fn has(&self, column: Column) -> bool {
        self.index[column.slot()].is_some()
    }

    /// The trimmed cell of `column` in a record; empty when the column or the cell is absent.
    pub fn cell<'a>(&self, fields: &'a [String], column: Column) -> &'a str {
        self.index[column.slot()]
            .and_then(|i| fields.get(i))
            .map_or("", String::as_str)
    }

    /// The column's name as the file writes it (the template's name if absent).
    pub fn name(&self, column: Column) -> &str {
        self.index[column.slot()]
            .and_then(|i| self.names.get(i))
            .map_or(column.template_name(), String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(line: &str) -> Result<Header, FileError> {
        let cells: Vec<String> = line.split(',').map(|c| c.trim().to_owned()).collect();
        Header::parse(&cells)
    }

    #[test]
    fn a_meeds_header_is_understood() {
        let h = header("userName,firstName,lastName,password,email").unwrap();
        assert!(h.has(Column::Password));
        assert!(!h.has(Column::Groups));
        assert!(h.unknown.is_empty());
        let fields: Vec<String> = ["jd", "John", "Doe", "pw", "j@x.org"]
            .map(String::from)
            .to_vec();
        assert_eq!(h.cell(&fields, Column::Email), "j@x.org");
        assert_eq!(h.cell(&fields, Column::Groups), "");
    }

    #[test]
    fn names_match_in_any_case_and_in_snake_case() {
        let h =
            header("EMAIL,user_name,First Name,LAST_NAME,about_me,time_zone,Company,onboard_user")
                .unwrap();
        assert!(h.has(Column::OnboardUser));
        assert!(h.has(Column::Profile(ProfileField::AboutMe)));
        assert!(h.has(Column::Profile(ProfileField::TimeZone)));
        assert!(h.has(Column::Profile(ProfileField::Organization)));
        assert_eq!(h.name(Column::UserName), "user_name");
    }

    #[test]
    fn unknown_columns_are_listed_not_refused() {
        let h = header("userName,firstName,lastName,email,shoeSize,,favouriteColour").unwrap();
        assert_eq!(h.unknown, ["shoeSize", "favouriteColour"]);
    }

    #[test]
    fn header_problems_are_file_level_errors() {
        assert_eq!(header("jd,John,Doe,j@x.org").unwrap_err().code, "no_header");
        let missing = header("userName,firstName,password").unwrap_err();
        assert_eq!(missing.code, "missing_column");
        assert!(missing.message.contains("lastName, email"));
        assert_eq!(
            header("userName,firstName,lastName,email,Email")
                .unwrap_err()
                .code,
            "duplicate_column"
        );
        assert_eq!(
            header("userName,firstName,lastName,email,company,organization")
                .unwrap_err()
                .code,
            "duplicate_column"
        );
    }

    #[test]
    fn the_template_header_names_every_column() {
        let h = header(&TEMPLATE_HEADER.join(",")).unwrap();
        assert!(h.unknown.is_empty());
        for name in TEMPLATE_HEADER {
            let column = Column::from_header(name).unwrap();
            assert_eq!(column.template_name(), *name);
        }
    }
}
