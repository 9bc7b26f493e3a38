use crate::error::FieldError;
use crate::fold::fold;

/// Words that would clash with routes (`/admin/users/new`, `/api/…`) or with the super user.
pub const RESERVED_USERNAMES: &[&str] = &["new", "bulk", "me", "api", "admin"];

/// The super user's name, created by the system at first start (and so exempt from the
/// reserved words, which only bind people creating accounts).
pub const SUPER_USER: &str = "admin";

/// A username: 3–255 characters, lower-case ASCII letters and digits with single `. _ - @`
/// between them. Input is trimmed and lower-cased first.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    pub fn parse(input: &str) -> Result<Self, Vec<FieldError>> {
        let value = input.trim().to_lowercase();
        let mut errors = Vec::new();
        if value.is_empty() {
            return Err(vec![FieldError::new("required", "Enter a username.")]);
        }
        let len = value.chars().count();
        if len < 3 {
            errors.push(FieldError::new(
                "too_short",
                "A username has at least 3 characters.",
            ));
        }
        if len > 255 {
            errors.push(FieldError::new(
                "too_long",
                "A username has at most 255 characters.",
            ));
        }
        if !is_well_formed(&value) {
            errors.push(FieldError::new(
                "invalid_format",
                "Use lower-case letters a–z and digits, with a single . _ - or @ between them (e.g. jane.doe).",
            ));
        }
        if errors.is_empty() {
            Ok(Self(value))
        } else {
            Err(errors)
        }
    }

    /// For values read back from the store, which only ever holds parsed usernames.
    pub fn from_trusted(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    pub fn is_reserved_word(&self) -> bool {
        RESERVED_USERNAMES.contains(&self.0.as_str())
    }
}

impl std::fmt::Display for Username {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_separator(c: char) -> bool {
    matches!(c, '.' | '_' | '-' | '@')
}

/// `^[a-z0-9]+([._@-][a-z0-9]+)*$` without a regex engine.
fn is_well_formed(value: &str) -> bool {
    let mut previous_was_separator = true; // the first character must not be a separator
    for c in value.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            previous_was_separator = false;
        } else if is_separator(c) && !previous_was_separator {
            previous_was_separator = true;
        } else {
            return false;
        }
    }
    !previous_was_separator
}

/// `first.last` from the names, accents folded, other characters dropped or turned into a
/// single `-` (`Élodie Näf` → `elodie.naf`, `Jean Pierre O'Neil` → `jean-pierre.oneil`).
/// Returns `None` when the names leave nothing usable.
pub fn suggest_username(first_name: &str, last_name: &str) -> Option<String> {
    let first = username_part(first_name);
    let last = username_part(last_name);
    let candidate = match (first.is_empty(), last.is_empty()) {
        (true, true) => return None,
        (false, true) => first,
        (true, false) => last,
        (false, false) => format!("{first}.{last}"),
    };
    Username::parse(&candidate).ok().map(Username::into_string)
}

fn username_part(name: &str) -> String {
    let mut out = String::new();
    let mut pending_dash = false;
    for c in fold(name).chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            if pending_dash && !out.is_empty() {
                out.push('-');
            }
            pending_dash = false;
            out.push(c);
        } else if c == ' ' || c == '-' {
            pending_dash = true;
        }
        // apostrophes and anything else vanish: O'Neil → oneil
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn trims_and_lowercases() {
        assert_eq!(Username::parse("  John.Doe ").unwrap().as_str(), "john.doe");
    }

    #[test]
    fn rejects_bad_shapes() {
        for bad in [
            "ab",
            "john..doe",
            ".john",
            "john.",
            "jo hn",
            "jöhn",
            "a_-b",
            "-ab",
        ] {
            assert!(Username::parse(bad).is_err(), "{bad} should be refused");
        }
        for good in ["abc", "john.doe", "j_doe-2", "me@example", "a1b", "x.y.z"] {
            assert!(Username::parse(good).is_ok(), "{good} should be accepted");
        }
    }

    #[test]
    fn length_bounds() {
        assert!(Username::parse(&"a".repeat(255)).is_ok());
        let errs = Username::parse(&"a".repeat(256)).unwrap_err();
        assert_eq!(errs[0].code, "too_long");
        assert_eq!(Username::parse("").unwrap_err()[0].code, "required");
    }

    #[test]
    fn reserved_words_are_known() {
        assert!(Username::parse("Admin").unwrap().is_reserved_word());
        assert!(!Username::parse("admins").unwrap().is_reserved_word());
    }

    #[test]
    fn suggestion_folds_accents() {
        assert_eq!(
            suggest_username("Élodie", "Näf").as_deref(),
            Some("elodie.naf")
        );
        assert_eq!(
            suggest_username("Jean Pierre", "O'Neil").as_deref(),
            Some("jean-pierre.oneil")
        );
        assert_eq!(suggest_username("", "").as_deref(), None);
    }

    proptest! {
        #[test]
        fn accepted_usernames_match_the_pattern(s in "\\PC{0,40}") {
            if let Ok(u) = Username::parse(&s) {
                let v = u.as_str();
                prop_assert!(v.len() >= 3 && v.len() <= 255);
                prop_assert!(v.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || is_separator(c)));
                prop_assert!(!v.starts_with(is_separator) && !v.ends_with(is_separator));
                prop_assert!(!v.chars().zip(v.chars().skip(1)).any(|(a, b)| is_separator(a) && is_separator(b)));
            }
        }

        #[test]
        fn generated_valid_usernames_are_accepted(s in "[a-z0-9]{1,5}([._@-][a-z0-9]{1,5}){0,4}") {
            prop_assume!(s.len() >= 3);
            let parsed = Username::parse(&s.to_uppercase()).unwrap();
            prop_assert_eq!(parsed.as_str(), s.as_str());
        }

        #[test]
        fn suggestions_are_always_valid(first in "\\PC{0,20}", last in "\\PC{0,20}") {
            if let Some(s) = suggest_username(&first, &last) {
                prop_assert!(Username::parse(&s).is_ok());
            }
        }
    }
}
