//! People: the validated values a person record is made of ([`Username`], [`PersonName`],
//! [`Email`], [`Password`], [`Profile`]) and the record itself ([`Person`]) with the statuses
//! derived from it. A value of one of these types has passed its rules; nobody checks it again.

mod email;
mod name;
mod password;
mod person;
mod profile;
mod username;

pub use email::Email;
pub use name::PersonName;
pub use password::{
    dummy_hash, hash_password, release_hashing_memory, verify_password, Password, PasswordPolicy,
    ARGON2_PARAMETERS,
};
pub use person::{Enrollment, Person, PersonType, Source};
pub use profile::{Profile, ProfileField, PROFILE_FIELDS};
pub use username::{suggest_username, Username, RESERVED_USERNAMES, SUPER_USER};
