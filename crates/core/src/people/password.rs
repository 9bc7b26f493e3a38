use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::FieldError;

/// The password rules of a site. Defaults follow current guidance (length over composition);
/// `require_composition` restores Meeds' digit/lower/upper rule for sites that want it.
#[derive(Debug, Clone)]
pub struct PasswordPolicy {
    pub min_length: usize,
    pub max_length: usize,
    pub require_composition: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 12,
            max_length: 256,
            require_composition: false,
        }
    }
}

impl PasswordPolicy {
    /// One sentence for forms, so people see the rule before they break it.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{}–{} characters, not a common password and not containing the username",
            self.min_length, self.max_length
        );
        if self.require_composition {
            s.push_str(", with a digit, a lower-case and an upper-case letter");
        }
        s.push('.');
        s
    }
}

/// A clear-text password that satisfies the policy. It is never stored: only its hash is.
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    pub fn parse(
        input: &str,
        policy: &PasswordPolicy,
        username: Option<&str>,
    ) -> Result<Self, Vec<FieldError>> {
        if input.is_empty() {
            return Err(vec![FieldError::new("required", "Enter a password.")]);
        }
        let mut errors = Vec::new();
        let len = input.chars().count();
        if len < policy.min_length {
            errors.push(FieldError::new(
                "too_short",
                format!("A password has at least {} characters.", policy.min_length),
            ));
        }
        if len > policy.max_length {
            errors.push(FieldError::new(
                "too_long",
                format!("A password has at most {} characters.", policy.max_length),
            ));
        }
        if passwords::analyzer::is_common_password(input)
            || passwords::analyzer::is_common_password(input.to_lowercase())
        {
            errors.push(FieldError::new(
                "password_too_common",
                "This password is among the most common ones; choose another.",
            ));
        }
        if let Some(username) = username.filter(|u| u.len() >= 3) {
            if input.to_lowercase().contains(&username.to_lowercase()) {
                errors.push(FieldError::new(
                    "password_contains_username",
                    "A password must not contain the username.",
                ));
            }
        }
        if policy.require_composition
            && !(input.chars().any(|c| c.is_ascii_digit())
                && input.chars().any(char::is_lowercase)
                && input.chars().any(char::is_uppercase))
        {
            errors.push(FieldError::new(
                "password_composition",
                "A password needs a digit, a lower-case and an upper-case letter.",
            ));
        }
        if errors.is_empty() {
            Ok(Self(input.to_owned()))
        } else {
            Err(errors)
        }
    }

    /// For passwords given by the operator at the shell, and by tests: no policy applies.
    pub fn unchecked(input: impl Into<String>) -> Self {
        Self(input.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Argon2id with m=19 MiB, t=2, p=1 (OWASP's minimum). Hashing costs tens of milliseconds of
/// one core: callers run it off the async runtime (`spawn_blocking`).
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The Argon2id parameters, for benchmarks and docs.
pub const ARGON2_PARAMETERS: &str = "Argon2id m=19456 KiB, t=2, p=1";

/// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
pub fn hash_password(password: &Password) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2()
        .hash_password(password.0.as_bytes(), &salt)
        .expect("Argon2 hashing with valid parameters")
        .to_string()
}

/// Checks a candidate against a PHC string. A malformed hash never matches.
pub fn verify_password(phc: &str, candidate: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => argon2()
            .verify_password(candidate.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash verified against when the account does not exist, so that a login takes as long
/// for an unknown name as for a known one (no enumeration by timing).
pub fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&Password::unchecked("usher-dummy-password")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy() -> PasswordPolicy {
        PasswordPolicy::default()
    }

    #[test]
    fn hashes_are_argon2id_phc_strings_that_verify() {
        let p = Password::parse("correct horse battery", &policy(), None).unwrap();
        let phc = hash_password(&p);
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password(&phc, "correct horse battery"));
        assert!(!verify_password(&phc, "correct horse batterz"));
        assert!(!verify_password("not a hash", "x"));
    }

    #[test]
    fn each_rule_has_its_code() {
        let codes = |s: &str, user: Option<&str>, p: &PasswordPolicy| {
            Password::parse(s, p, user)
                .err()
                .unwrap_or_default()
                .into_iter()
                .map(|e| e.code)
                .collect::<Vec<_>>()
        };
        assert_eq!(codes("", None, &policy()), ["required"]);
        assert_eq!(codes("short-pw", None, &policy()), ["too_short"]);
        assert_eq!(codes(&"x1".repeat(129), None, &policy()), ["too_long"]);
        assert!(codes("password1234", None, &policy()).contains(&"password_too_common"));
        assert_eq!(
            codes("my-jane.doe-secret", Some("jane.doe"), &policy()),
            ["password_contains_username"]
        );
        let strict = PasswordPolicy {
            require_composition: true,
            ..policy()
        };
        assert_eq!(
            codes("only lower case words", None, &strict),
            ["password_composition"]
        );
        assert!(codes("Lower and Upper 42", None, &strict).is_empty());
    }

    proptest! {
        #[test]
        fn length_rule_holds(s in "[a-z ]{0,40}") {
            let accepted = Password::parse(&s, &policy(), None).is_ok();
            if s.chars().count() < 12 {
                prop_assert!(!accepted);
            }
        }
    }
}
