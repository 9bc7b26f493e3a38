//! Spaces (product §5): collaboration groups `/spaces/{name}` with members in roles; a space
//! designated for it lets its managers (and administrators) invite people from outside, who
//! register through an emailed link and become `external` people that see only their spaces.

use serde_json::json;

use super::access::LoginSuccess;
use super::{off_runtime, Actor, Usher};
use crate::audit::AuditRecord;
use crate::error::{FieldError, FieldErrors, ServiceError};
use crate::groups::{EXTERNALS, ROLES};
use crate::mail::{MailContext, NewOutboxMessage, Template};
use crate::people::{
    hash_password, Email, Password, Person, PersonName, PersonType, Profile, Source, Username,
};
use crate::store::{NewPerson, NewSpace, Space, SpaceInvitation, StoreError};
use crate::token::{hash_token, new_token};

pub mod space_actions {
    pub const CREATE: &str = "space.create";
    pub const UPDATE: &str = "space.update";
    pub const MEMBER_SET: &str = "space.member_set";
    pub const MEMBER_REMOVE: &str = "space.member_remove";
    pub const INVITE: &str = "space.invite";
    pub const INVITATION_REVOKE: &str = "space.invitation_revoke";
    pub const REGISTER: &str = "user.register";
}

/// What inviting an address to a space did.
#[derive(Debug, Clone)]
pub enum SpaceInviteOutcome {
    /// The address belongs to someone, who is now a member.
    Added(Box<Person>),
    /// A registration link was emailed.
    Invited(SpaceInvitation),
}

/// What the registration page needs to know about a live link.
#[derive(Debug, Clone)]
pub struct Registration {
    pub invitation: SpaceInvitation,
    pub space: Space,
}

/// What a person submits to register.
#[derive(Debug, Clone, Default)]
pub struct RegisterInput {
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    pub password: String,
    pub password_confirmation: String,
}

/// `^[a-z0-9]+(-[a-z0-9]+)*$`, 2–64 characters.
pub fn parse_space_name(input: &str) -> Result<String, Vec<FieldError>> {
    let name = input.trim().to_lowercase();
    let well_formed = !name.is_empty()
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let len = name.chars().count();
    if (2..=64).contains(&len) && well_formed {
        Ok(name)
    } else {
        Err(vec![FieldError::new(
            "invalid_format",
            "Use 2–64 lower-case letters and digits, with single dashes between them (e.g. sales-team).",
        )])
    }
}

fn parse_display_name(input: &str) -> Result<String, Vec<FieldError>> {
    let v = input.trim();
    match v.chars().count() {
        0 => Err(vec![FieldError::new("required", "Enter a name to show.")]),
        n if n > 255 => Err(vec![FieldError::new("too_long", "At most 255 characters.")]),
        _ => Ok(v.to_owned()),
    }
}

impl Usher {
    fn audit(
        &self,
        actor: Option<&Actor>,
        action: &'static str,
        target: String,
        details: serde_json::Value,
    ) -> AuditRecord {
        AuditRecord {
            at: self.clock.now(),
            actor: actor.map(|a| a.username.clone()),
            action,
            target: Some(target),
            details: details.into(),
        }
    }

    pub async fn create_space(
        &self,
        actor: &Actor,
        name: &str,
        display_name: &str,
        external_invitations: bool,
    ) -> Result<Space, ServiceError> {
        actor.require_admin()?;
        let mut errors = FieldErrors::default();
        let name = errors.take("name", parse_space_name(name));
        let display = errors.take("display_name", parse_display_name(display_name));
        let (Some(name), Some(display_name)) = (name, display) else {
            return Err(ServiceError::Validation(errors));
        };
        let new = NewSpace {
            name: name.clone(),
            display_name,
            external_invitations,
            created_at: self.clock.now(),
        };
        let audit = self.audit(
            Some(actor),
            space_actions::CREATE,
            format!("/spaces/{name}"),
            json!({ "display_name": new.display_name, "external_invitations": external_invitations }),
        );
        self.store.insert_space(&new, &audit).await?.ok_or_else(|| {
            ServiceError::Conflict(FieldErrors::single(
                "name",
                FieldError::new("space_taken", "A space with this name exists already."),
            ))
        })
    }

    pub async fn update_space(
        &self,
        actor: &Actor,
        name: &str,
        display_name: Option<&str>,
        external_invitations: Option<bool>,
    ) -> Result<Space, ServiceError> {
        actor.require_admin()?;
        let before = self.find_space(name).await?;
        let mut space = before.clone();
        if let Some(d) = display_name {
            match parse_display_name(d) {
                Ok(d) => space.display_name = d,
                Err(e) => {
                    let mut errors = FieldErrors::default();
                    errors.extend("display_name", e);
                    return Err(ServiceError::Validation(errors));
                }
            }
        }
        if let Some(x) = external_invitations {
            space.external_invitations = x;
        }
        let audit = self.audit(
            Some(actor),
            space_actions::UPDATE,
            space.group_path(),
            json!({
                "before": { "display_name": before.display_name, "external_invitations": before.external_invitations },
                "after": { "display_name": space.display_name, "external_invitations": space.external_invitations },
            }),
        );
        self.store.update_space(&space, &audit).await?;
        Ok(space)
    }

    async fn find_space(&self, name: &str) -> Result<Space, ServiceError> {
        self.store
            .space(&name.trim().to_lowercase())
            .await?
            .ok_or(ServiceError::NotFound)
    }

    /// Administrators see every space; others only those they belong to.
    pub async fn spaces_for(&self, actor: &Actor) -> Result<Vec<Space>, ServiceError> {
        let member = (!actor.admin).then_some(actor.id);
        Ok(self.store.spaces(member).await?)
    }

    /// A space and the caller's role in it. Only administrators and members may see a space.
    pub async fn space_for(
        &self,
        actor: &Actor,
        name: &str,
    ) -> Result<(Space, Option<String>), ServiceError> {
        let space = self.find_space(name).await?;
        let role = self.store.role_in(actor.id, &space.group_path()).await?;
        if role.is_none() && !actor.admin {
            return Err(ServiceError::forbidden(
                "not_a_member",
                "You are not a member of this space.",
            ));
        }
        Ok((space, role))
    }

    /// Administrators, and managers of the space, manage its members and invitations.
    async fn managed_space(&self, actor: &Actor, name: &str) -> Result<Space, ServiceError> {
        let (space, role) = self.space_for(actor, name).await?;
        if actor.admin || role.as_deref() == Some("manager") {
            Ok(space)
        } else {
            Err(ServiceError::forbidden(
                "not_a_manager",
                "Only the space's managers can do this.",
            ))
        }
    }

    pub async fn space_members(
        &self,
        actor: &Actor,
        name: &str,
    ) -> Result<Vec<(Person, String)>, ServiceError> {
        let (space, _) = self.space_for(actor, name).await?;
        Ok(self.store.space_members(&space).await?)
    }

    pub async fn set_space_member(
        &self,
        actor: &Actor,
        name: &str,
        username: &str,
        role: &str,
    ) -> Result<(), ServiceError> {
        let space = self.managed_space(actor, name).await?;
        if !ROLES.contains(&role) {
            return Err(ServiceError::Validation(FieldErrors::single(
                "role",
                FieldError::new(
                    "invalid_value",
                    "Use member, manager, redactor or publisher.",
                ),
            )));
        }
        let person = self
            .store
            .person_by_username(&username.trim().to_lowercase())
            .await?
            .ok_or(ServiceError::NotFound)?;
        let audit = self.audit(
            Some(actor),
            space_actions::MEMBER_SET,
            space.group_path(),
            json!({ "username": person.username, "role": role }),
        );
        Ok(self
            .store
            .set_membership(person.id, &space.group_path(), role, &audit)
            .await?)
    }

    pub async fn remove_space_member(
        &self,
        actor: &Actor,
        name: &str,
        username: &str,
    ) -> Result<(), ServiceError> {
        let space = self.managed_space(actor, name).await?;
        let person = self
            .store
            .person_by_username(&username.trim().to_lowercase())
            .await?
            .ok_or(ServiceError::NotFound)?;
        let audit = self.audit(
            Some(actor),
            space_actions::MEMBER_REMOVE,
            space.group_path(),
            json!({ "username": person.username }),
        );
        if self
            .store
            .remove_membership(person.id, &space.group_path(), &audit)
            .await?
        {
            Ok(())
        } else {
            Err(ServiceError::NotFound)
        }
    }

    /// Invites an address to a designated space: an existing person is added at once; anyone
    /// else gets a registration link.
    pub async fn invite_to_space(
        &self,
        actor: &Actor,
        name: &str,
        email: &str,
    ) -> Result<SpaceInviteOutcome, ServiceError> {
        let space = self.managed_space(actor, name).await?;
        if !space.external_invitations {
            return Err(ServiceError::state(
                "external_invitations_disabled",
                "This space does not accept external invitations; an administrator can allow them.",
            ));
        }
        let email = Email::parse(email).map_err(|e| {
            let mut errors = FieldErrors::default();
            errors.extend("email", e);
            ServiceError::Validation(errors)
        })?;
        if let Some(person) = self.store.person_by_email(email.as_str()).await? {
            if self
                .store
                .role_in(person.id, &space.group_path())
                .await?
                .is_none()
            {
                let audit = self.audit(
                    Some(actor),
                    space_actions::MEMBER_SET,
                    space.group_path(),
                    json!({ "username": person.username, "role": "member", "via": "invitation" }),
                );
                self.store
                    .set_membership(person.id, &space.group_path(), "member", &audit)
                    .await?;
            }
            return Ok(SpaceInviteOutcome::Added(Box::new(person)));
        }
        let invitation = SpaceInvitation {
            id: 0,
            space_id: space.id,
            email: email.as_str().to_owned(),
            state: "pending".into(),
            invited_by: Some(actor.username.clone()),
            invited_at: self.clock.now(),
            expires_at: self.clock.now() + self.settings.link_ttl,
            accepted_at: None,
        };
        let id = self.send_registration(actor, &space, &invitation).await?;
        let invitation = self
            .store
            .space_invitation(id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        Ok(SpaceInviteOutcome::Invited(invitation))
    }

    async fn send_registration(
        &self,
        actor: &Actor,
        space: &Space,
        invitation: &SpaceInvitation,
    ) -> Result<i64, ServiceError> {
        let token = new_token();
        let context = MailContext {
            platform_name: self.settings.platform_name.clone(),
            link: Some(format!("{}/register/{token}", self.settings.public_url)),
            expires_at: Some(invitation.expires_at),
            space_name: Some(space.display_name.clone()),
            ..MailContext::default()
        };
        let message = NewOutboxMessage {
            recipient: invitation.email.clone(),
            template: Template::Registration,
            mail: self.composer.compose(Template::Registration, &context),
            person_id: None,
            created_at: invitation.invited_at,
        };
        let audit = self.audit(
            Some(actor),
            space_actions::INVITE,
            space.group_path(),
            json!({ "email": invitation.email, "resend": invitation.id != 0 }),
        );
        let id = self
            .store
            .record_space_invitation(invitation, &hash_token(&token), &message, &audit)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => {
                    ServiceError::state("not_pending", "This invitation is no longer pending.")
                }
                e => e.into(),
            })?;
        self.outbox_signal.notify_one();
        Ok(id)
    }

    pub async fn space_invitations(
        &self,
        actor: &Actor,
        name: &str,
    ) -> Result<Vec<SpaceInvitation>, ServiceError> {
        let space = self.managed_space(actor, name).await?;
        Ok(self.store.space_invitations(&space).await?)
    }

    async fn invitation_of(&self, space: &Space, id: i64) -> Result<SpaceInvitation, ServiceError> {
        self.store
            .space_invitation(id)
            .await?
            .filter(|i| i.space_id == space.id)
            .ok_or(ServiceError::NotFound)
    }

    /// Sends a new link (the older one stops working) with a new 24-hour lifetime.
    pub async fn resend_space_invitation(
        &self,
        actor: &Actor,
        name: &str,
        id: i64,
    ) -> Result<SpaceInvitation, ServiceError> {
        let space = self.managed_space(actor, name).await?;
        let mut invitation = self.invitation_of(&space, id).await?;
        if invitation.state != "pending" {
            return Err(ServiceError::state(
                "not_pending",
                "Only pending invitations can be resent.",
            ));
        }
        invitation.invited_at = self.clock.now();
        invitation.expires_at = invitation.invited_at + self.settings.link_ttl;
        invitation.invited_by = Some(actor.username.clone());
        self.send_registration(actor, &space, &invitation).await?;
        self.invitation_of(&space, id).await
    }

    pub async fn revoke_space_invitation(
        &self,
        actor: &Actor,
        name: &str,
        id: i64,
    ) -> Result<(), ServiceError> {
        let space = self.managed_space(actor, name).await?;
        let invitation = self.invitation_of(&space, id).await?;
        let audit = self.audit(
            Some(actor),
            space_actions::INVITATION_REVOKE,
            space.group_path(),
            json!({ "email": invitation.email }),
        );
        self.store
            .revoke_space_invitation(id, &audit)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => {
                    ServiceError::state("not_pending", "Only pending invitations can be revoked.")
                }
                e => e.into(),
            })
    }

    /// The live registration behind a link; unknown, used, revoked and expired links all
    /// answer `NotFound`.
    pub async fn registration(&self, token: &str) -> Result<Registration, ServiceError> {
        let invitation = self
            .store
            .space_invitation_by_token(&hash_token(token))
            .await?
            .filter(|i| i.shown_state(self.clock.now()) == "pending")
            .ok_or(ServiceError::NotFound)?;
        let space = self
            .store
            .spaces(None)
            .await?
            .into_iter()
            .find(|s| s.id == invitation.space_id)
            .ok_or(ServiceError::NotFound)?;
        Ok(Registration { invitation, space })
    }

    /// Creates the external person of a registration, member of `/platform/externals` and of
    /// the space (not of `/platform/users`), and logs them in.
    pub async fn register(
        &self,
        token: &str,
        input: RegisterInput,
    ) -> Result<LoginSuccess, ServiceError> {
        let registration = self.registration(token).await?;
        let mut errors = FieldErrors::default();
        let username = errors.take("username", Username::parse(&input.username));
        let first = errors.take("first_name", PersonName::parse(&input.first_name));
        let last = errors.take("last_name", PersonName::parse(&input.last_name));
        let password = errors.take(
            "password",
            Password::parse(
                &input.password,
                &self.settings.password_policy,
                username.as_ref().map(Username::as_str),
            ),
        );
        if input.password != input.password_confirmation {
            errors.add(
                "password_confirmation",
                FieldError::new("password_mismatch", "The two passwords differ."),
            );
        }
        let (Some(username), Some(first), Some(last), Some(password), true) =
            (username, first, last, password, errors.is_empty())
        else {
            return Err(ServiceError::Validation(errors));
        };
        let email =
            Email::parse(&registration.invitation.email).map_err(|_| ServiceError::NotFound)?;
        self.check_free_public(&username, &email).await?;
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
            kind: PersonType::External,
            source: Source::Internal,
            super_user: false,
            profile: Profile::default(),
            created_at: now,
            memberships: vec![
                (EXTERNALS.to_owned(), "member".to_owned()),
                (registration.space.group_path(), "member".to_owned()),
            ],
        };
        let audit = AuditRecord {
            at: now,
            actor: Some(new.username.clone()),
            action: space_actions::REGISTER,
            target: Some(new.username.clone()),
            details: json!({ "space": registration.space.group_path(), "email": new.email }).into(),
        };
        let person = self
            .store
            .accept_space_invitation(registration.invitation.id, &new, &audit)
            .await
            .map_err(super::people::conflict_error)?;
        let (session_token, csrf_token, expires_at) = self.open_session(person.id).await?;
        Ok(LoginSuccess {
            person,
            session_token,
            csrf_token,
            expires_at,
        })
    }

    /// The spaces of a person, for `/me`.
    pub async fn my_spaces(&self, person: &Person) -> Result<Vec<Space>, ServiceError> {
        Ok(self.store.spaces(Some(person.id)).await?)
    }
}
