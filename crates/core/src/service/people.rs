//! Creating, finding, changing and deleting people, with every rule of product §1, §3 and §9.

use serde_json::{json, Map, Value};

use super::{off_runtime, Actor, Usher};
use crate::audit::{actions, AuditRecord};
use crate::error::{FieldError, FieldErrors, ServiceError};
use crate::groups::{self, Membership};
use crate::people::{
    hash_password, suggest_username, Email, Password, Person, PersonName, PersonType, Profile,
    Source, Username, SUPER_USER,
};
use crate::query::{Page, UserQuery};
use crate::store::{Conflict, NewPerson, PasswordChange, PersonUpdate, StoreError};
use crate::token::new_token;

/// What an administrator (form or API) submits to create a person.
#[derive(Debug, Clone, Default)]
pub struct CreatePerson {
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub password: Option<String>,
    /// The form's second password field; `None` where there is none (API).
    pub password_confirmation: Option<String>,
    /// The admin form makes the password mandatory; the API does not (invitation instead).
    pub password_required: bool,
    pub enabled: bool,
    pub profile: Profile,
}

/// A partial change; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct PatchPerson {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
    pub password_confirmation: Option<String>,
    pub enabled: Option<bool>,
    pub profile: Option<Profile>,
}

/// A username suggested for a pair of names, and whether it is still free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    pub username: Option<String>,
    pub available: bool,
}

impl Usher {
    pub async fn create_person(
        &self,
        actor: &Actor,
        input: CreatePerson,
    ) -> Result<Person, ServiceError> {
        actor.require_admin()?;
        let mut errors = FieldErrors::default();
        let username = errors.take("username", Username::parse(&input.username));
        let first = errors.take("first_name", PersonName::parse(&input.first_name));
        let last = errors.take("last_name", PersonName::parse(&input.last_name));
        let email = errors.take("email", Email::parse(&input.email));
        let profile = input.profile.normalized(&mut errors);
        let password = self.check_new_password(
            &mut errors,
            input.password.as_deref(),
            input.password_confirmation.as_deref(),
            username.as_ref().map(Username::as_str),
            input.password_required,
        );
        let (Some(username), Some(first), Some(last), Some(email), true) =
            (username, first, last, email, errors.is_empty())
        else {
            return Err(ServiceError::Validation(errors));
        };
        // A password costs a hash: any clash is found before it is spent. Without one, the
        // insert's constraints find clashes, and the check runs only after one, to report
        // every clash at once (one read fewer on every creation that succeeds).
        let password_hash = match password {
            Some(p) => {
                self.check_free(&username, &email).await?;
                Some(off_runtime(move || hash_password(&p)).await?)
            }
            None => {
                if username.is_reserved_word() {
                    return Err(ServiceError::Conflict(FieldErrors::single(
                        "username",
                        conflict_field_error(Conflict::UsernameReserved),
                    )));
                }
                None
            }
        };
        let now = self.clock.now();
        let new = NewPerson {
            username: username.as_str().to_owned(),
            first_name: first.into_string(),
            last_name: last.into_string(),
            email: email.as_str().to_owned(),
            // Set by someone else: the person chooses their own at first login.
            password_temporary: password_hash.is_some(),
            password_hash,
            enabled: input.enabled,
            kind: PersonType::Internal,
            source: Source::Internal,
            super_user: false,
            profile,
            created_at: now,
            memberships: vec![(groups::USERS.to_owned(), "member".to_owned())],
        };
        let audit = AuditRecord {
            at: now,
            actor: Some(actor.username.clone()),
            action: actions::USER_CREATE,
            target: Some(new.username.clone()),
            details: json!({ "after": person_snapshot_of_new(&new) }).into(),
        };
        match self.store.insert_person(&new, &audit).await {
            Err(StoreError::Conflict(conflict)) => {
                self.check_free(&username, &email).await?;
                // Gone again by the time of the check: the insert's own finding stands.
                Err(conflict_error(StoreError::Conflict(conflict)))
            }
            result => result.map_err(conflict_error),
        }
    }

    /// Validates a new password and its confirmation, recording errors; `None` when absent.
    fn check_new_password(
        &self,
        errors: &mut FieldErrors,
        password: Option<&str>,
        confirmation: Option<&str>,
        username: Option<&str>,
        required: bool,
    ) -> Option<Password> {
        let password = password.filter(|p| !p.is_empty());
        let Some(password) = password else {
            if required {
                errors.add(
                    "password",
                    FieldError::new("required", "Enter a temporary password."),
                );
            }
            return None;
        };
        let parsed = errors.take(
            "password",
            Password::parse(password, &self.settings.password_policy, username),
        );
        if let Some(confirmation) = confirmation {
            if confirmation != password {
                errors.add(
                    "password_confirmation",
                    FieldError::new("password_mismatch", "The two passwords differ."),
                );
            }
        }
        parsed
    }

    /// The uniqueness checks of [`Self::check_free`], for other services.
    pub(crate) async fn check_free_public(
        &self,
        username: &Username,
        email: &Email,
    ) -> Result<(), ServiceError> {
        self.check_free(username, email).await
    }

    /// Uniqueness, checked before writing so that every clash is reported at once; the
    /// store's constraints still settle races.
    async fn check_free(&self, username: &Username, email: &Email) -> Result<(), ServiceError> {
        let mut errors = FieldErrors::default();
        let in_use = self
            .store
            .identity_in_use(username.as_str(), email.as_str())
            .await?;
        if username.is_reserved_word() || in_use.username_reserved {
            errors.add("username", conflict_field_error(Conflict::UsernameReserved));
        } else if in_use.username_taken {
            errors.add("username", conflict_field_error(Conflict::UsernameTaken));
        }
        if in_use.email_taken {
            errors.add("email", conflict_field_error(Conflict::EmailTaken));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ServiceError::Conflict(errors))
        }
    }

    pub async fn person(&self, actor: &Actor, username: &str) -> Result<Person, ServiceError> {
        if !actor.admin && actor.username != username {
            return Err(ServiceError::forbidden(
                "forbidden",
                "This needs an administrator.",
            ));
        }
        self.find(username).await
    }

    async fn find(&self, username: &str) -> Result<Person, ServiceError> {
        self.store
            .person_by_username(&username.trim().to_lowercase())
            .await?
            .ok_or(ServiceError::NotFound)
    }

    pub async fn search_people(
        &self,
        actor: &Actor,
        query: &UserQuery,
    ) -> Result<Page<Person>, ServiceError> {
        actor.require_admin()?;
        self.find_people(query).await
    }

    pub async fn roles(
        &self,
        actor: &Actor,
        username: &str,
    ) -> Result<Vec<Membership>, ServiceError> {
        let person = self.person(actor, username).await?;
        Ok(self.store.memberships(person.id).await?)
    }

    /// `first.last` for the names, with a number added when taken (`jane.doe2`).
    pub async fn suggest_username(
        &self,
        first_name: &str,
        last_name: &str,
    ) -> Result<Suggestion, ServiceError> {
        let Some(base) = suggest_username(first_name, last_name) else {
            return Ok(Suggestion {
                username: None,
                available: false,
            });
        };
        for n in 1..=50u32 {
            let candidate = if n == 1 {
                base.clone()
            } else {
                format!("{base}{n}")
            };
            let Ok(parsed) = Username::parse(&candidate) else {
                break;
            };
            let taken = parsed.is_reserved_word()
                || self.store.username_was_deleted(&candidate).await?
                || self.store.person_by_username(&candidate).await?.is_some();
            if !taken {
                return Ok(Suggestion {
                    username: Some(candidate),
                    available: true,
                });
            }
        }
        Ok(Suggestion {
            username: Some(base),
            available: false,
        })
    }

    /// Changes a person (admin edit form, `PATCH`, enable/disable). Rules: LDAP accounts are
    /// read-only; nobody disables themselves or the super user; a new email stays unique; a
    /// new password follows the policy, is temporary, and ends that person's sessions, as
    /// disabling does.
    pub async fn patch_person(
        &self,
        actor: &Actor,
        username: &str,
        patch: PatchPerson,
    ) -> Result<Person, ServiceError> {
        actor.require_admin()?;
        let person = self.find(username).await?;
        if person.source == Source::Ldap {
            return Err(ServiceError::state(
                "read_only",
                "This account is synchronised from LDAP and is read-only here.",
            ));
        }
        let mut errors = FieldErrors::default();
        let mut update = PersonUpdate::from_person(&person);
        if let Some(v) = &patch.first_name {
            if let Some(n) = errors.take("first_name", PersonName::parse(v)) {
                update.first_name = n.into_string();
            }
        }
        if let Some(v) = &patch.last_name {
            if let Some(n) = errors.take("last_name", PersonName::parse(v)) {
                update.last_name = n.into_string();
            }
        }
        let mut new_email = None;
        if let Some(v) = &patch.email {
            if let Some(e) = errors.take("email", Email::parse(v)) {
                update.email = e.as_str().to_owned();
                new_email = Some(e);
            }
        }
        if let Some(profile) = &patch.profile {
            update.profile = person.profile.merged_with(profile).normalized(&mut errors);
        }
        let password = self.check_new_password(
            &mut errors,
            patch.password.as_deref(),
            patch.password_confirmation.as_deref(),
            Some(&person.username),
            false,
        );
        if let Some(enabled) = patch.enabled {
            if !enabled && person.enabled {
                if person.id == actor.id {
                    return Err(ServiceError::state(
                        "self",
                        "You cannot disable your own account.",
                    ));
                }
                if person.super_user {
                    return Err(ServiceError::state(
                        "super_user",
                        "The super user cannot be disabled.",
                    ));
                }
            }
            update.enabled = enabled;
        }
        if !errors.is_empty() {
            return Err(ServiceError::Validation(errors));
        }
        if let Some(email) = &new_email {
            if let Some(owner) = self.store.person_by_email(email.as_str()).await? {
                if owner.id != person.id {
                    return Err(ServiceError::Conflict(FieldErrors::single(
                        "email",
                        conflict_field_error(Conflict::EmailTaken),
                    )));
                }
            }
        }
        let password_changed = password.is_some();
        if let Some(p) = password {
            let hash = off_runtime(move || hash_password(&p)).await?;
            update.password = Some(PasswordChange {
                hash,
                temporary: true,
            });
        }
        let (before, after) = diff(&person, &update);
        let action = if person.enabled && !update.enabled {
            actions::USER_DISABLE
        } else if !person.enabled && update.enabled {
            actions::USER_ENABLE
        } else {
            actions::USER_UPDATE
        };
        let audit = AuditRecord {
            at: self.clock.now(),
            actor: Some(actor.username.clone()),
            action,
            target: Some(person.username.clone()),
            details: json!({ "before": before, "after": after }).into(),
        };
        let notices = self.change_notices(
            &person,
            new_email.as_ref().map(Email::as_str),
            password_changed,
        );
        let updated = self
            .store
            .update_person_notifying(person.id, &update, &audit, &notices)
            .await
            .map_err(conflict_error)?;
        if !notices.is_empty() {
            self.outbox_signal.notify_one();
        }
        if !updated.enabled || password_changed {
            self.store.delete_sessions_of(person.id, None).await?;
        }
        Ok(updated)
    }

    /// Deletes a person; only the super user may, and never themselves. The username stays
    /// reserved.
    pub async fn delete_person(&self, actor: &Actor, username: &str) -> Result<(), ServiceError> {
        if !actor.super_user {
            return Err(ServiceError::forbidden(
                "super_user_only",
                "Only the super user can delete accounts.",
            ));
        }
        let person = self.find(username).await?;
        if person.id == actor.id || person.super_user {
            return Err(ServiceError::state(
                "self",
                "You cannot delete your own account.",
            ));
        }
        let audit = AuditRecord {
            at: self.clock.now(),
            actor: Some(actor.username.clone()),
            action: actions::USER_DELETE,
            target: Some(person.username.clone()),
            details: json!({ "before": snapshot(&person) }).into(),
        };
        Ok(self.store.delete_person(person.id, &audit).await?)
    }

    /// Creates the super user `admin` on an empty store. Returns the generated password when
    /// none was given, so that it can be printed once. Safe when several nodes start at once.
    pub async fn ensure_super_user(
        &self,
        password: Option<String>,
    ) -> Result<Option<String>, ServiceError> {
        if self.store.count_people().await? > 0 {
            return Ok(None);
        }
        let (password, generated) = match password.filter(|p| !p.is_empty()) {
            Some(p) => (p, false),
            None => (new_token()[..24].to_owned(), true),
        };
        let p = Password::unchecked(password.clone());
        let hash = off_runtime(move || hash_password(&p)).await?;
        let now = self.clock.now();
        let new = NewPerson {
            username: SUPER_USER.to_owned(),
            first_name: "Platform".to_owned(),
            last_name: "Administrator".to_owned(),
            email: "admin@localhost".to_owned(),
            password_hash: Some(hash),
            password_temporary: false,
            enabled: true,
            kind: PersonType::Internal,
            source: Source::Internal,
            super_user: true,
            profile: Profile::default(),
            created_at: now,
            memberships: admin_memberships(),
        };
        let audit = AuditRecord {
            at: now,
            actor: None,
            action: actions::USER_CREATE,
            target: Some(SUPER_USER.to_owned()),
            details: json!({ "after": person_snapshot_of_new(&new), "reason": "first start" })
                .into(),
        };
        match self.store.insert_person(&new, &audit).await {
            Ok(_) => Ok(generated.then_some(password)),
            // Another node created it first.
            Err(StoreError::Conflict(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// `usher admin create`: an administrator whose password the operator typed (not
    /// temporary, but still held to the policy).
    pub async fn create_admin_from_shell(
        &self,
        username: &str,
        email: &str,
        first_name: &str,
        last_name: &str,
        password: &str,
    ) -> Result<Person, ServiceError> {
        let mut errors = FieldErrors::default();
        let username = errors.take("username", Username::parse(username));
        let first = errors.take("first_name", PersonName::parse(first_name));
        let last = errors.take("last_name", PersonName::parse(last_name));
        let email = errors.take("email", Email::parse(email));
        let password = self.check_new_password(
            &mut errors,
            Some(password),
            None,
            username.as_ref().map(Username::as_str),
            true,
        );
        let (Some(username), Some(first), Some(last), Some(email), Some(password)) =
            (username, first, last, email, password)
        else {
            return Err(ServiceError::Validation(errors));
        };
        self.check_free(&username, &email).await?;
        let hash = off_runtime(move || hash_password(&password)).await?;
        let now = self.clock.now();
        let new = NewPerson {
            username: username.into_string(),
            first_name: first.into_string(),
            last_name: last.into_string(),
            email: email.into_string(),
            password_hash: Some(hash),
            password_temporary: false,
            enabled: true,
            kind: PersonType::Internal,
            source: Source::Internal,
            super_user: false,
            profile: Profile::default(),
            created_at: now,
            memberships: admin_memberships(),
        };
        let audit = AuditRecord {
            at: now,
            actor: None,
            action: actions::USER_CREATE,
            target: Some(new.username.clone()),
            details: json!({ "after": person_snapshot_of_new(&new), "via": "shell" }).into(),
        };
        self.store
            .insert_person(&new, &audit)
            .await
            .map_err(conflict_error)
    }

    /// `usher admin reset-password`: sets a password the operator typed and ends the person's
    /// sessions. Not temporary; still held to the policy.
    pub async fn reset_password_from_shell(
        &self,
        username: &str,
        password: &str,
    ) -> Result<(), ServiceError> {
        let person = self.find(username).await?;
        let mut errors = FieldErrors::default();
        let Some(password) = self.check_new_password(
            &mut errors,
            Some(password),
            None,
            Some(&person.username),
            true,
        ) else {
            return Err(ServiceError::Validation(errors));
        };
        let hash = off_runtime(move || hash_password(&password)).await?;
        let mut update = PersonUpdate::from_person(&person);
        update.password = Some(PasswordChange {
            hash,
            temporary: false,
        });
        let audit = AuditRecord {
            at: self.clock.now(),
            actor: None,
            action: actions::USER_PASSWORD_SET,
            target: Some(person.username.clone()),
            details: json!({ "via": "shell" }).into(),
        };
        self.store.update_person(person.id, &update, &audit).await?;
        self.store.delete_sessions_of(person.id, None).await?;
        Ok(())
    }
}

fn admin_memberships() -> Vec<(String, String)> {
    vec![
        (groups::ADMINISTRATORS.to_owned(), "manager".to_owned()),
        (groups::USERS.to_owned(), "member".to_owned()),
    ]
}

pub(crate) fn conflict_field_error(conflict: Conflict) -> FieldError {
    match conflict {
        Conflict::UsernameTaken => {
            FieldError::new("username_taken", "This username is already taken.")
        }
        Conflict::UsernameReserved => FieldError::new(
            "username_reserved",
            "This username is reserved and cannot be used; choose another.",
        ),
        Conflict::EmailTaken => FieldError::new(
            "email_taken",
            "Another account already uses this email address.",
        ),
    }
}

/// A store conflict (a race past the checks) as the same field error the checks give.
pub(crate) fn conflict_error(e: StoreError) -> ServiceError {
    match e {
        StoreError::Conflict(c) => {
            let field = if c == Conflict::EmailTaken {
                "email"
            } else {
                "username"
            };
            ServiceError::Conflict(FieldErrors::single(field, conflict_field_error(c)))
        }
        StoreError::NotFound => ServiceError::NotFound,
        other => ServiceError::Store(other),
    }
}

fn snapshot(p: &Person) -> Value {
    json!({
        "username": p.username, "first_name": p.first_name, "last_name": p.last_name,
        "email": p.email, "enabled": p.enabled, "profile": p.profile,
    })
}

fn person_snapshot_of_new(p: &NewPerson) -> Value {
    json!({
        "username": p.username, "first_name": p.first_name, "last_name": p.last_name,
        "email": p.email, "enabled": p.enabled, "profile": p.profile,
        "password": if p.password_hash.is_some() { "set" } else { "none" },
        "memberships": p.memberships,
    })
}

/// The fields that change, before and after; a password shows only as "changed".
fn diff(p: &Person, u: &PersonUpdate) -> (Value, Value) {
    let mut before = Map::new();
    let mut after = Map::new();
    let mut field = |name: &str, old: Value, new: Value| {
        if old != new {
            before.insert(name.to_owned(), old);
            after.insert(name.to_owned(), new);
        }
    };
    field("first_name", json!(p.first_name), json!(u.first_name));
    field("last_name", json!(p.last_name), json!(u.last_name));
    field("email", json!(p.email), json!(u.email));
    field("enabled", json!(p.enabled), json!(u.enabled));
    field("profile", json!(p.profile), json!(u.profile));
    if u.password.is_some() {
        before.insert("password".into(), json!("(hidden)"));
        after.insert("password".into(), json!("changed"));
    }
    (Value::Object(before), Value::Object(after))
}
