//! Usher's domain: who a person is, which values are valid, what their statuses mean, and the
//! services that change them. Nothing here knows about HTTP or SQL: the store is a trait
//! ([`store::Store`]) that `usher-store` implements, and time comes from a [`clock::Clock`]
//! so that expiry and throttling are tested without sleeping.

pub mod audit;
pub mod clock;
pub mod error;
pub mod fold;
pub mod groups;
pub mod import;
pub mod mail;
pub mod people;
pub mod query;
pub mod search;
pub mod service;
pub mod store;
pub mod token;

pub use error::{FieldError, FieldErrors, ServiceError};
