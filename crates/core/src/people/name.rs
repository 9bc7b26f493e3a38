use crate::error::FieldError;

/// A first or last name: 3–255 characters after trimming, each a Unicode letter, a space, `'`
/// or `-`. Every character is checked, the last one included (Meeds skipped it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    pub fn parse(input: &str) -> Result<Self, Vec<FieldError>> {
        let value = input.trim();
        if value.is_empty() {
            return Err(vec![FieldError::new("required", "Enter a name.")]);
        }
        let mut errors = Vec::new();
        let len = value.chars().count();
        if len < 3 {
            errors.push(FieldError::new(
                "too_short",
                "A name has at least 3 characters.",
            ));
        }
        if len > 255 {
            errors.push(FieldError::new(
                "too_long",
                "A name has at most 255 characters.",
            ));
        }
        if let Some(bad) = value
            .chars()
            .find(|c| !(c.is_alphabetic() || matches!(c, ' ' | '\'' | '-')))
        {
            let what = if bad.is_numeric() {
                "digits".to_owned()
            } else {
                format!("“{bad}”")
            };
            errors.push(FieldError::new(
                "invalid_characters",
                format!("A name holds only letters, spaces, ' and -; remove {what}."),
            ));
        }
        if errors.is_empty() {
            Ok(Self(value.to_owned()))
        } else {
            Err(errors)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_letters_spaces_apostrophes_and_dashes() {
        for good in [
            "Élodie",
            "Jean-Pierre",
            "O'Neil",
            "Mary Ann",
            "Zoë",
            "李小龍",
        ] {
            assert!(PersonName::parse(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn checks_the_last_character_too() {
        let errs = PersonName::parse("John1").unwrap_err();
        assert_eq!(errs[0].code, "invalid_characters");
        assert!(errs[0].message.contains("digits"));
    }

    #[test]
    fn trims_and_bounds_length() {
        assert_eq!(PersonName::parse("  Ann  ").unwrap().as_str(), "Ann");
        assert_eq!(PersonName::parse("Al").unwrap_err()[0].code, "too_short");
        assert_eq!(PersonName::parse("   ").unwrap_err()[0].code, "required");
        assert_eq!(
            PersonName::parse(&"a".repeat(256)).unwrap_err()[0].code,
            "too_long"
        );
    }

    proptest! {
        #[test]
        fn accepted_names_hold_only_allowed_characters(s in "\\PC{0,30}") {
            if let Ok(n) = PersonName::parse(&s) {
                prop_assert!(n.as_str().chars().all(|c| c.is_alphabetic() || matches!(c, ' ' | '\'' | '-')));
                prop_assert!(n.as_str().chars().count() >= 3);
                prop_assert_eq!(n.as_str(), n.as_str().trim());
            }
        }

        #[test]
        fn any_digit_is_refused(prefix in "[a-zA-Z]{3,10}", d in 0u8..10, suffix in "[a-z]{0,5}") {
            let name = format!("{prefix}{d}{suffix}");
            prop_assert!(PersonName::parse(&name).is_err());
        }
    }
}
