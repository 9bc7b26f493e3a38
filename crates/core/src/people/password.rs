use std::sync::{Mutex, OnceLock};

use argon2::password_hash::{
    self, Output, ParamsString, PasswordHash, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Block, Params, Version};

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
/// one core: callers run it off the async runtime (the service's hashing pool).
fn params() -> Params {
    Params::new(19 * 1024, 2, 1, None).expect("valid Argon2 parameters")
}

fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
}

/// The Argon2id parameters, for benchmarks and docs.
pub const ARGON2_PARAMETERS: &str = "Argon2id m=19456 KiB, t=2, p=1";

/// Argon2 working memories (19 MiB each) not in use, reused by the next hash. Allocating one
/// per hash, as `Argon2::hash_password` does, left glibc's arenas holding freed 19 MiB blocks in
/// ever more heaps: 0.4 GiB of RSS for a few hundred imported passwords on 2 hashing threads
/// (3.4 GiB in the benchmark). There are never more than hashes run at once.
static SPARE_BLOCKS: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());

fn spare_blocks() -> std::sync::MutexGuard<'static, Vec<Vec<Block>>> {
    SPARE_BLOCKS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Gives the spare Argon2 memory back. The hashing pool calls it once idle for a moment, so
/// that an idle server holds none of it (19 MiB per core otherwise, over the 30 MiB an idle
/// server may use) while bursts of hashes still reuse it.
pub fn release_hashing_memory() {
    spare_blocks().clear();
}

/// The raw Argon2id output of `password` with `salt`, in reused memory.
fn argon2_output(
    argon2: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    len: usize,
) -> password_hash::Result<Output> {
    let needed = argon2.params().block_count();
    let spare = spare_blocks().pop().filter(|blocks| blocks.len() == needed);
    let mut blocks = spare.unwrap_or_else(|| vec![Block::default(); needed]);
    let output = Output::init_with(len, |out| {
        argon2
            .hash_password_into_with_memory(password, salt, out, &mut blocks[..])
            .map_err(password_hash::Error::from)
    });
    spare_blocks().push(blocks);
    output
}

/// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
pub fn hash_password(password: &Password) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let mut salt_bytes = [0u8; 64];
    let hashed = (|| {
        let raw_salt = salt.as_salt().decode_b64(&mut salt_bytes)?;
        let output = argon2_output(
            &argon2(),
            password.0.as_bytes(),
            raw_salt,
            Params::DEFAULT_OUTPUT_LEN,
        )?;
        Ok::<_, password_hash::Error>(
            PasswordHash {
                algorithm: Algorithm::Argon2id.ident(),
                version: Some(Version::V0x13.into()),
                params: ParamsString::try_from(&params())?,
                salt: Some(salt.as_salt()),
                hash: Some(output),
            }
            .to_string(),
        )
    })();
    hashed.expect("Argon2 hashing with valid parameters")
}

/// Checks a candidate against a PHC string. A malformed hash never matches.
pub fn verify_password(phc: &str, candidate: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    // Hashes made with this build's parameters are checked in the thread's reused memory;
    // others (older parameters) by the crate, which allocates.
    let ours = parsed.algorithm == Algorithm::Argon2id.ident()
        && parsed.version == Some(Version::V0x13.into())
        && Params::try_from(&parsed).is_ok_and(|p| p == params());
    match (ours, parsed.salt, parsed.hash) {
        (true, Some(salt), Some(expected)) => {
            let mut salt_bytes = [0u8; 64];
            let Ok(raw_salt) = salt.decode_b64(&mut salt_bytes) else {
                return false;
            };
            // `Output` compares in constant time.
            argon2_output(&argon2(), candidate.as_bytes(), raw_salt, expected.len())
                .is_ok_and(|actual| actual == expected)
        }
        _ => argon2()
            .verify_password(candidate.as_bytes(), &parsed)
            .is_ok(),
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
        // What the crate itself makes and checks agrees with ours, both ways.
        let theirs = argon2::password_hash::PasswordHasher::hash_password(
            &argon2(),
            b"correct horse battery",
            &SaltString::generate(&mut rand::rngs::OsRng),
        )
        .unwrap()
        .to_string();
        assert!(verify_password(&theirs, "correct horse battery"));
        assert!(!verify_password(&theirs, "correct horse batterz"));
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(argon2()
            .verify_password(b"correct horse battery", &parsed)
            .is_ok());
        // A hash with other parameters still verifies (through the crate).
        let older = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).unwrap(),
        );
        let older = argon2::password_hash::PasswordHasher::hash_password(
            &older,
            b"correct horse battery",
            &SaltString::generate(&mut rand::rngs::OsRng),
        )
        .unwrap()
        .to_string();
        assert!(verify_password(&older, "correct horse battery"));
        assert!(!verify_password(&older, "correct horse batterz"));
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
