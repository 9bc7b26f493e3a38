//! Parsing list parameters shared by the API and the pages (`q`, filters, sort, paging), with
//! an error per bad parameter rather than a silent default.

use usher_core::error::{FieldError, FieldErrors};
use usher_core::people::{PersonType, Source};
use usher_core::query::{
    EnrollmentFilter, Sort, UserFilter, UserQuery, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE,
};

/// Query-string pairs, in order.
pub type Pairs = Vec<(String, String)>;

pub fn get<'a>(pairs: &'a Pairs, key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn parse_bool(errors: &mut FieldErrors, key: &str, value: Option<&str>) -> Option<bool> {
    match value? {
        "true" => Some(true),
        "false" => Some(false),
        _ => {
            errors.add(key, FieldError::new("invalid_value", "Use true or false."));
            None
        }
    }
}

fn parse_with<T>(
    errors: &mut FieldErrors,
    key: &str,
    value: Option<&str>,
    parse: impl Fn(&str) -> Option<T>,
    allowed: &str,
) -> Option<T> {
    let value = value?;
    let parsed = parse(value);
    if parsed.is_none() {
        errors.add(
            key,
            FieldError::new("invalid_value", format!("Use one of: {allowed}.")),
        );
    }
    parsed
}

/// The filters of a people search.
pub fn user_filter(pairs: &Pairs, errors: &mut FieldErrors) -> UserFilter {
    UserFilter {
        q: get(pairs, "q").map(str::to_owned),
        enabled: parse_bool(errors, "enabled", get(pairs, "enabled")),
        connected: parse_bool(errors, "connected", get(pairs, "connected")),
        enrollment: parse_with(
            errors,
            "enrollment",
            get(pairs, "enrollment"),
            EnrollmentFilter::parse,
            "enrolled, never_enrolled, not_possible",
        ),
        kind: parse_with(
            errors,
            "type",
            get(pairs, "type"),
            PersonType::parse,
            "internal, external",
        ),
        source: parse_with(
            errors,
            "source",
            get(pairs, "source"),
            Source::parse,
            "internal, ldap",
        ),
    }
}

pub fn sort(pairs: &Pairs, errors: &mut FieldErrors) -> Sort {
    parse_with(
        errors,
        "sort",
        get(pairs, "sort"),
        Sort::parse,
        "username, first_name, last_name, email, last_login_at, created_at (prefix - to reverse)",
    )
    .unwrap_or_default()
}

/// A number in `range`, or an error naming the range.
pub fn number(
    pairs: &Pairs,
    errors: &mut FieldErrors,
    key: &str,
    min: u64,
    max: u64,
) -> Option<u64> {
    let value = get(pairs, key)?;
    match value.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Some(n),
        _ => {
            errors.add(
                key,
                FieldError::new(
                    "out_of_range",
                    format!("Use a whole number from {min} to {max}."),
                ),
            );
            None
        }
    }
}

/// The API's `GET /users` query: `limit` 1–500, `offset` ≥ 0.
pub fn user_query(pairs: &Pairs) -> Result<UserQuery, FieldErrors> {
    let mut errors = FieldErrors::default();
    let filter = user_filter(pairs, &mut errors);
    let sort = sort(pairs, &mut errors);
    let limit = number(pairs, &mut errors, "limit", 1, u64::from(MAX_PAGE_SIZE))
        .map_or(DEFAULT_PAGE_SIZE, |n| n as u32);
    let offset = number(pairs, &mut errors, "offset", 0, i64::MAX as u64).unwrap_or(0);
    if errors.is_empty() {
        Ok(UserQuery {
            filter,
            sort,
            limit,
            offset,
        })
    } else {
        Err(errors)
    }
}
