use std::str::FromStr;

use crate::error::FieldError;

/// An email address checked by a real parser (`email_address`, RFC 5321/5322), at most 254
/// characters. Uniqueness is case-insensitive; [`Email::key`] is the form compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Self, Vec<FieldError>> {
        let value = input.trim();
        if value.is_empty() {
            return Err(vec![FieldError::new("required", "Enter an email address.")]);
        }
        if value.chars().count() > 254 {
            return Err(vec![FieldError::new(
                "too_long",
                "An email address has at most 254 characters.",
            )]);
        }
        // The parser accepts display forms ("Jane <j@x>"); a record holds the bare address.
        match email_address::EmailAddress::from_str(value) {
            Ok(parsed) if parsed.as_str() == value && !value.contains(['<', '>', ' ']) => {
                Ok(Self(value.to_owned()))
            }
            _ => Err(vec![FieldError::new(
                "invalid_email",
                "Enter an email address like name@example.org.",
            )]),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// The case-insensitive identity of an address.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_real_addresses() {
        for good in [
            "jane@example.org",
            "a.b+c@sub.example.co.uk",
            "admin@localhost",
        ] {
            assert!(Email::parse(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn refuses_malformed_addresses() {
        for bad in [
            "jane",
            "jane@",
            "@example.org",
            "a b@c.d",
            "Jane <jane@example.org>",
            "a@@b.c",
        ] {
            assert_eq!(
                Email::parse(bad).unwrap_err()[0].code,
                "invalid_email",
                "{bad}"
            );
        }
    }

    #[test]
    fn bounds_length() {
        let long = format!("{}@example.org", "a".repeat(250));
        assert_eq!(Email::parse(&long).unwrap_err()[0].code, "too_long");
    }

    #[test]
    fn key_ignores_case() {
        assert_eq!(
            Email::parse("Jane@Example.ORG").unwrap().key(),
            "jane@example.org"
        );
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_accepts_only_bare_addresses(s in "\\PC{0,60}") {
            if let Ok(e) = Email::parse(&s) {
                prop_assert!(e.as_str().contains('@'));
                prop_assert!(e.as_str().chars().count() <= 254);
            }
        }

        #[test]
        fn simple_addresses_are_accepted(local in "[a-z][a-z0-9.]{0,10}[a-z0-9]", domain in "[a-z]{2,10}\\.[a-z]{2,4}") {
            prop_assume!(!local.contains(".."));
            let addr = format!("{local}@{domain}");
            prop_assert!(Email::parse(&addr).is_ok(), "{}", addr);
        }
    }
}
