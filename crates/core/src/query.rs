//! What a search asks for: text, the status filters of product §2 (all combinable), a sort
//! and a page. Stores answer it exactly, total included.

use crate::people::{PersonType, Source};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollmentFilter {
    /// An invitation was sent.
    Enrolled,
    /// Could still be invited: not invited, never connected, internal, not from LDAP.
    NeverEnrolled,
    /// External, LDAP, or connected without ever being invited.
    NotPossible,
}

impl EnrollmentFilter {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "enrolled" => Some(Self::Enrolled),
            "never_enrolled" => Some(Self::NeverEnrolled),
            "not_possible" => Some(Self::NotPossible),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enrolled => "enrolled",
            Self::NeverEnrolled => "never_enrolled",
            Self::NotPossible => "not_possible",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortColumn {
    Username,
    FirstName,
    LastName,
    Email,
    LastLoginAt,
    CreatedAt,
}

impl SortColumn {
    /// Every column, in the order forms list them.
    pub const ALL: [SortColumn; 6] = [
        Self::Username,
        Self::FirstName,
        Self::LastName,
        Self::Email,
        Self::LastLoginAt,
        Self::CreatedAt,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "username" => Self::Username,
            "first_name" => Self::FirstName,
            "last_name" => Self::LastName,
            "email" => Self::Email,
            "last_login_at" => Self::LastLoginAt,
            "created_at" => Self::CreatedAt,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Username => "username",
            Self::FirstName => "first_name",
            Self::LastName => "last_name",
            Self::Email => "email",
            Self::LastLoginAt => "last_login_at",
            Self::CreatedAt => "created_at",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub column: SortColumn,
    pub descending: bool,
}

impl Default for Sort {
    fn default() -> Self {
        Self {
            column: SortColumn::LastName,
            descending: false,
        }
    }
}

impl Sort {
    /// `last_name`, `-created_at`, …
    pub fn parse(s: &str) -> Option<Self> {
        let (descending, name) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        SortColumn::parse(name).map(|column| Self { column, descending })
    }

    pub fn to_param(self) -> String {
        format!(
            "{}{}",
            if self.descending { "-" } else { "" },
            self.column.as_str()
        )
    }
}

/// The filters of a search, without paging: also what mass actions select with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFilter {
    pub q: Option<String>,
    pub enabled: Option<bool>,
    pub connected: Option<bool>,
    pub enrollment: Option<EnrollmentFilter>,
    pub kind: Option<PersonType>,
    pub source: Option<Source>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserQuery {
    pub filter: UserFilter,
    pub sort: Sort,
    pub limit: u32,
    pub offset: u64,
}

pub const MAX_PAGE_SIZE: u32 = 500;
pub const DEFAULT_PAGE_SIZE: u32 = 20;

impl Default for UserQuery {
    fn default() -> Self {
        Self {
            filter: UserFilter::default(),
            sort: Sort::default(),
            limit: DEFAULT_PAGE_SIZE,
            offset: 0,
        }
    }
}

/// One page of results and the exact number of matches.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
}
