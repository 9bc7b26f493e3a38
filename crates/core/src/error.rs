//! The domain's error type. Field errors carry a stable `code` (part of the API contract) and a
//! message a person can act on; the HTTP layer decides status codes, not this one.

use serde::Serialize;
use std::collections::BTreeMap;

use crate::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub code: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Errors per field name, in a stable order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct FieldErrors(pub BTreeMap<String, Vec<FieldError>>);

impl FieldErrors {
    pub fn add(&mut self, field: &str, error: FieldError) {
        self.0.entry(field.to_owned()).or_default().push(error);
    }

    pub fn extend(&mut self, field: &str, errors: Vec<FieldError>) {
        for e in errors {
            self.add(field, e);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn single(field: &str, error: FieldError) -> Self {
        let mut errors = Self::default();
        errors.add(field, error);
        errors
    }

    /// The first error of a field, as forms show it in place.
    pub fn first(&self, field: &str) -> Option<&FieldError> {
        self.0.get(field).and_then(|v| v.first())
    }

    /// Turns a parse result into its value, recording the errors under `field`.
    pub fn take<T>(&mut self, field: &str, result: Result<T, Vec<FieldError>>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(errs) => {
                self.extend(field, errs);
                None
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Input breaks a rule; every field's errors at once.
    #[error("invalid input")]
    Validation(FieldErrors),
    /// Input is valid but clashes with stored state (`username_taken`, `email_taken`, …).
    #[error("conflict")]
    Conflict(FieldErrors),
    /// An action the current state forbids (`already_joined`, `not_invitable`, …).
    #[error("{message}")]
    State { code: &'static str, message: String },
    #[error("not found")]
    NotFound,
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("too many attempts")]
    Throttled { retry_after_secs: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::Forbidden {
            code,
            message: message.into(),
        }
    }

    pub fn state(code: &'static str, message: impl Into<String>) -> Self {
        Self::State {
            code,
            message: message.into(),
        }
    }
}
